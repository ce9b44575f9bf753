"""One offline stack per test module: template.yaml on embedded moto, the real ASL files running.

Starting a stack takes a few seconds, so a module's tests share one and keep apart by using
their own payload ids and backfill dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from coordinator_tools.local import OfflineStack
from coordinator_tools.local.runtime import FunctionRuntime
from coordinator_tools.local.stack import Intervals


@pytest.fixture(scope="module")
def stack() -> Iterator[OfflineStack]:
    # Reconcile ticks rarely: these tests show the event-driven path, not its repairs.
    with OfflineStack(intervals=Intervals(reconcile=60.0)) as running:
        yield running


def executions_of(stack: OfflineStack, workflow: str, payload_id: str) -> list[dict[str, object]]:
    """The executions started for one payload (every attempt), found by their deterministic names."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", payload_id).strip("-")
    return [item for item in stack.executions(workflow) if str(item["name"]).startswith(f"{slug}-a")]


class StackCliRunner(CliRunner):
    """A CliRunner whose captured output holds the command's output only, never a handler's.

    The offline stack's handlers run in this process, on other threads, and print (Powertools'
    metrics line) to whatever `sys.stdout` is when they do; CliRunner swaps its capture in for the
    whole command, so a handler still running, or starting, meanwhile wrote into the command's
    output (a `--json` document followed by a metrics line). The swap is made with the stack's
    invocations paused: none is then between looking `sys.stdout` up and writing to it, and one
    that starts during the command puts its own redirect over the capture (`FunctionRuntime`),
    sending its writes to the stack's function log.
    """

    def __init__(self, runtime: FunctionRuntime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime

    @contextmanager
    def isolation(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with ExitStack() as isolated:
            with self.runtime.paused():
                streams = isolated.enter_context(super().isolation(*args, **kwargs))
            yield streams
