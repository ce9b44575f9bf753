"""Enumerate every interleaving, at AWS-call granularity, of actors running the real code.

Each actor runs in its own thread with its own boto3 clients. A `before-call` hook on those
clients parks the actor before every AWS call until the scheduler grants it one step: the
call it is parked on, and everything up to its next call. So one run is a sequence of actor
names, one per AWS call, and the explorer replays prefixes (depth first, a fresh moto each
run) until every sequence has been tried: stateless model checking over the real handlers.

An actor may fork: settle moves a page's waiters on a thread pool. `ActorPool` stands in for
that pool under the explorer and makes each submitted move an actor of its own, named after
its parent (`U>1`, `U>2`): it parks before its call like any actor, and its parent, waiting
for the moves, is quiet (neither runnable nor running) until the last of them has ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.reduction import FORK  # a fork's name: its parent's, FORK, its number

STEP_TIMEOUT = 20.0
_acting = threading.local()  # the turnstile and the actor of the current thread, once it parked


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
        self.forks: dict[str, str] = {}  # a forked actor: its parent
        self.joining: set[str] = set()  # parents waiting for their forks to end

    def hook(self, actor: str) -> Callable[..., None]:
        def before_call(model: Any, **_: Any) -> None:
            self.checkpoint(actor, model.name)

        return before_call

    def checkpoint(self, actor: str, operation: str) -> None:
        _acting.turnstile, _acting.actor = self, actor
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

    def fork(self, parent: str, child: str) -> None:
        with self._cond:
            self.forks[child] = parent
            self._cond.notify_all()

    @contextmanager
    def join(self, parent: str) -> Iterator[None]:
        """While `parent` waits for its forks: quiet as long as one of them has not ended."""
        with self._cond:
            self.joining.add(parent)
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self.joining.discard(parent)
                self._cond.notify_all()

    def _waits_for_forks(self, actor: str) -> bool:
        return actor in self.joining and any(
            parent == actor and child not in self.finished for child, parent in self.forks.items()
        )

    def _quiet(self, actor: str) -> bool:
        return actor in self.parked or actor in self.finished or self._waits_for_forks(actor)

    def wait_quiet(self, actors: list[str]) -> None:
        """Until every actor, and every fork of one, is parked before a call, has finished, or
        waits for forks of its own that have not ended."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: all(self._quiet(a) for a in [*actors, *self.forks]), timeout=STEP_TIMEOUT
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
                lambda: (
                    self.arrivals.get(actor, 0) > seen
                    or actor in self.finished
                    or self._waits_for_forks(actor)
                ),
                timeout=STEP_TIMEOUT,
            ):
                raise SchedulerStuck(f"{actor} did not come back after its step")


def acting_as(actor: str) -> str:
    """Who makes a call on `actor`'s clients: a fork of it, on the fork's thread."""
    fork = getattr(_acting, "fork", None)
    return fork if isinstance(fork, str) else actor


class ActorPool(ThreadPoolExecutor):
    """A thread pool whose every task is an actor forked by the one that made the pool.

    Each task runs on a thread of its own (a task per worker, so that none queues: a queued
    task would be an actor that can neither run nor be told apart from one running). Its calls
    park under its fork's name; the parent, in `Future.result`, is quiet until every fork ended.
    """

    def __init__(
        self, turnstile: Turnstile, parent: str, max_workers: int, thread_name_prefix: str = ""
    ) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._turnstile, self._parent, self._workers, self._forked = turnstile, parent, max_workers, 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._forked == self._workers:
            raise SchedulerStuck(f"{self._parent} forks more than {self._workers} workers: one would queue")
        self._forked += 1
        child = f"{self._parent}{FORK}{self._forked}"
        turnstile = self._turnstile
        turnstile.fork(self._parent, child)

        def forked() -> Any:
            _acting.fork = child
            try:
                return fn(*args, **kwargs)
            finally:
                _acting.fork = None
                turnstile.finish(child)

        return Joined(super().submit(forked), turnstile, self._parent)


class Joined(Future[Any]):
    """A fork's future, whose `result` tells the turnstile that its parent waits for forks."""

    def __init__(self, inner: Future[Any], turnstile: Turnstile, parent: str) -> None:
        super().__init__()
        self._inner, self._turnstile, self._parent = inner, turnstile, parent

    def result(self, timeout: float | None = None) -> Any:
        with self._turnstile.join(self._parent):
            return self._inner.result(timeout)

    def cancel(self) -> bool:
        return self._inner.cancel()


def pool_for_actors(max_workers: int, thread_name_prefix: str = "") -> ThreadPoolExecutor:
    """A pool made on an actor's thread is an `ActorPool`; anywhere else, a plain one."""
    turnstile = getattr(_acting, "turnstile", None)
    if isinstance(turnstile, Turnstile) and getattr(_acting, "fork", None) is None:
        return ActorPool(turnstile, _acting.actor, max_workers, thread_name_prefix)
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix)


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
