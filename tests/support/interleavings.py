"""Enumerate every interleaving, at AWS-call granularity, of actors running the real code.

Each actor runs in its own thread with its own boto3 clients. A `before-call` hook on those
clients parks the actor before every AWS call until the scheduler grants it one step: the
call it is parked on, and everything up to its next call. So one run is a sequence of actor
names, one per AWS call, and the explorer replays prefixes (depth first, a fresh moto each
run) until every sequence has been tried: stateless model checking over the real handlers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

STEP_TIMEOUT = 20.0


class SchedulerStuck(RuntimeError):
    """An actor neither parked nor finished in time: a deadlock or a hang in the code."""


class Abandoned(BaseException):
    """Raised in a parked actor when the run is given up: it unwinds like a crash, uncaught."""


class Turnstile:
    """Lets exactly one actor make its next AWS call at a time, in the order it is told."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._granted: str | None = None
        self.parked: dict[str, str] = {}
        self.arrivals: dict[str, int] = {}
        self.finished: set[str] = set()
        self.abandoned = False

    def hook(self, actor: str) -> Callable[..., None]:
        def before_call(model: Any, **_: Any) -> None:
            self.checkpoint(actor, model.name)

        return before_call

    def checkpoint(self, actor: str, operation: str) -> None:
        with self._cond:
            self.parked[actor] = operation
            self.arrivals[actor] = self.arrivals.get(actor, 0) + 1
            self._cond.notify_all()
            if not self._cond.wait_for(
                lambda: self._granted == actor or self.abandoned, timeout=STEP_TIMEOUT
            ):
                raise SchedulerStuck(f"{actor} was never granted {operation}")
            if self.abandoned:
                raise Abandoned(actor)
            self._granted = None
            del self.parked[actor]

    def finish(self, actor: str) -> None:
        with self._cond:
            self.finished.add(actor)
            self._cond.notify_all()

    def wait_quiet(self, actors: list[str]) -> None:
        """Until every actor is parked before a call or has finished."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: all(a in self.parked or a in self.finished for a in actors), timeout=STEP_TIMEOUT
            ):
                raise SchedulerStuck(f"actors did not settle: parked={self.parked} finished={self.finished}")

    def abandon(self) -> None:
        """Every parked actor, and any that parks later, raises `Abandoned`."""
        with self._cond:
            self.abandoned = True
            self._cond.notify_all()

    def grant(self, actor: str) -> None:
        """Let `actor` make the call it is parked on, and wait for it to park again or end."""
        with self._cond:
            seen = self.arrivals.get(actor, 0)
            self._granted = actor
            self._cond.notify_all()
            if not self._cond.wait_for(
                lambda: self.arrivals.get(actor, 0) > seen or actor in self.finished, timeout=STEP_TIMEOUT
            ):
                raise SchedulerStuck(f"{actor} did not come back after its step")


@dataclass
class Run:
    """One explored interleaving: who made each call, what it was, and the verdict."""

    schedule: list[str]
    calls: list[tuple[str, str]]
    options: list[list[str]]
    violations: list[str] = field(default_factory=list)


Actor = Callable[[Callable[[Any], Any]], None]


def run_schedule(
    actors: dict[str, Actor], prefix: list[str], instrument: Callable[[str, Turnstile], Callable[[Any], Any]]
) -> tuple[list[str], list[tuple[str, str]], list[list[str]]]:
    """Run the actors once, following `prefix` and then always the first runnable actor.

    `instrument(actor, turnstile)` returns a function that registers the turnstile's hook on a
    client and returns it; each actor calls it on every client it makes.
    """
    turnstile = Turnstile()
    errors: dict[str, BaseException] = {}
    names = list(actors)

    def body(name: str) -> None:
        try:
            actors[name](instrument(name, turnstile))
        except BaseException as error:  # noqa: BLE001 - carried to the main thread and re-raised
            errors[name] = error
        finally:
            turnstile.finish(name)

    threads = [threading.Thread(target=body, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    schedule: list[str] = []
    calls: list[tuple[str, str]] = []
    options: list[list[str]] = []
    while True:
        turnstile.wait_quiet(names)
        runnable = sorted(turnstile.parked)
        if not runnable:
            break
        step = len(schedule)
        choice = prefix[step] if step < len(prefix) else runnable[0]
        if choice not in runnable:
            raise SchedulerStuck(f"prefix wants {choice} at step {step}, runnable are {runnable}")
        calls.append((choice, turnstile.parked[choice]))
        options.append(runnable)
        schedule.append(choice)
        turnstile.grant(choice)
    for thread in threads:
        thread.join(STEP_TIMEOUT)
    if errors:
        name, error = next(iter(errors.items()))
        raise AssertionError(f"actor {name} raised") from error
    return schedule, calls, options


def explore(run_one: Callable[[list[str]], Run]) -> Iterator[Run]:
    """Every interleaving, depth first: each run's untaken alternatives become new prefixes."""
    pending: list[list[str]] = [[]]
    while pending:
        prefix = pending.pop()
        run = run_one(prefix)
        for step in range(len(prefix), len(run.schedule)):
            for alternative in run.options[step]:
                if alternative != run.schedule[step]:
                    pending.append([*run.schedule[:step], alternative])
        yield run
