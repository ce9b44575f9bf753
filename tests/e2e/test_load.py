"""The load benchmark's own harness (`bench/load.py`, `make load`), small enough for `make test`.

The 10,000-waiter runs are too long for every commit; these show that the same shapes hold at
a small size, and that the checks the big runs rely on do catch a lost wake-up.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bench import load


@pytest.mark.parametrize("shape", sorted(load.SHAPES))
def test_a_small_load_holds_every_check(shape: str) -> None:
    run = load.measure(shape, 12, timeout=120)

    assert run.held, load.report([run])
    assert run.checks["waiter executions SUCCEEDED"] == (12, 12)
    assert run.invocations["DispatcherFunction"] >= 1


def test_the_checks_catch_a_waiter_whose_callback_was_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    import functions.dispatcher.app as dispatcher_app
    from coordinator.dispatch import Dispatched

    real_dispatch = dispatcher_app.dispatch
    lost: list[str] = []
    choosing = threading.Lock()

    def dispatch_losing_the_first(services: Any, waiter: Any) -> str:
        """Record the first waiter as resumed without sending its callback: a lost wake-up. Every
        delivery of that waiter is lost, redeliveries included (the dispatcher handles a batch's
        records concurrently, and a batch retried from an earlier failed record carries it again);
        the lock makes "the first" one waiter whatever thread asks."""
        with choosing:
            if not lost:
                lost.append(waiter.sk)
            losing = waiter.sk == lost[0]
        if losing:
            services.table.mark_notified(
                waiter.payload_id,
                waiter.sk,
                Dispatched.RESUMED.value,
                services.clock(),
                retention_seconds=services.settings.retention_seconds,
            )
            return Dispatched.RESUMED.value
        return str(real_dispatch(services, waiter))

    monkeypatch.setattr(dispatcher_app, "dispatch", dispatch_losing_the_first)
    run = load.measure("fan-out", 4, timeout=20)

    assert lost
    assert not run.held
    assert "every waiter ended" in run.stalled
    assert run.checks["waiter executions SUCCEEDED"] == (3, 4)
    assert run.checks["waiters resumed with their dependency met"] == (3, 4)
    # What the table says is what the dispatcher recorded: the check on rows cannot see it,
    # which is why the run is judged by the waiters' executions first.
    assert run.checks["WAITER rows resolved SUCCEEDED and notified once (outcome resumed)"] == (4, 4)
