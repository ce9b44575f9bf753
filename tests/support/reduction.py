"""One interleaving of each class of equivalent ones: source-set DPOR with sleep sets.

Two steps of different actors are *independent* when neither writes what the other reads or
writes (`Access`). Made in either order from the same state, they reach the same state and
each gets the same answer. So two orders that differ only by swapping adjacent independent
steps (Mazurkiewicz-equivalent orders) end in the same world, with every actor having seen
the same answers: a property of the final world and of the answers holds for one of them iff
it holds for all. Exploring one order per class loses nothing.

The explorer is stateless and replays: every run starts from the initial world, replays a
prefix of steps, then extends it, always with the first actor (by name) not asleep. After
each run it looks at every pair of steps in a *race*: dependent, of different actors, and
not ordered by anything between them. For each race it makes sure that the other order will
be tried: at the state before the first step, it adds to the backtrack set an actor that can
start an order in which the second step comes first, unless one is there already (a source
set: Abdulla, Aronis, Jonsson and Sagonas, "Optimal dynamic partial order reduction",
POPL 2014, Algorithm 1). Sleep sets stop it from trying twice what it tried once: an actor
explored from a state sleeps in the later branches from that state until a step dependent on
its own wakes it. A run whose every enabled actor is asleep is equivalent to an order already
tried: it is abandoned unchecked and counted apart, as redundant.

The accesses are those the steps actually had (a conditional write that failed changed
nothing: it only read), which is what makes the relation exact. An actor asleep keeps the
access its step had where it was explored: it sleeps only while every step taken commutes
with that one, so its step would still have the same access.

An actor may be unable to run for a while (a dispatcher has no record before the waiter's
move). The argument then needs two things, which the explorer checks and refuses to go on
without (`Unsupported`): an actor able to run stays able until it steps, and the step that
made it able conflicts with its next one. That race cannot be reversed, so it is not tried.

An actor may fork others (`parent>1`: settle's concurrent moves). A fork's steps come after
its parent's steps before the fork, and the parent's steps after it has waited for its forks
come after theirs: the program orders them as it orders one actor's steps, and the explorer
treats them so (`in_program_order`). Forks of one parent are not ordered by each other.

`every_order` runs every order without reduction; the tests compare both on systems small
enough for it (tests/reliability/test_reduction.py, test_races.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

ANY = "*"
FORK = ">"


def in_program_order(a: str, b: str) -> bool:
    """Whether the program orders every step of actor `a` with every step of actor `b`: they
    are one actor, or one is a fork (or a fork of a fork) of the other."""
    return a == b or a.startswith(b + FORK) or b.startswith(a + FORK)


@dataclass(frozen=True)
class Access:
    """The items one step read and wrote. `X*` stands for every item whose name starts with X;
    `*` alone for everything."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()

    def conflicts(self, other: Access) -> bool:
        return _overlap(self.writes, other.reads | other.writes) or _overlap(other.writes, self.reads)


EVERYTHING = Access(reads=frozenset({ANY}), writes=frozenset({ANY}))


def _overlap(mine: frozenset[str], theirs: frozenset[str]) -> bool:
    return any(_same(a, b) for a in mine for b in theirs)


def _same(a: str, b: str) -> bool:
    if a.endswith("*") or b.endswith("*"):
        return a.rstrip("*").startswith(b.rstrip("*")) or b.rstrip("*").startswith(a.rstrip("*"))
    return a == b


@dataclass(frozen=True)
class Event:
    """One step taken: who, what (for reading a run), and what it touched."""

    actor: str
    label: str
    access: Access

    def __str__(self) -> str:
        return f"{self.actor}:{self.label}"


class Execution(Protocol):
    """One run of the system under test, driven a step at a time by the explorer."""

    def enabled(self) -> Collection[str]:
        """The actors that can take a step now (none: the run is complete)."""

    def step(self, actor: str) -> Event:
        """Let `actor` take its next step; the event it was."""

    def abandon(self) -> None:
        """Stop a redundant run part way."""

    def verdict(self) -> list[str]:
        """After a complete run: the violations of the properties checked (none: it held)."""


class Nondeterminism(AssertionError):
    """A replayed prefix did not do what it did before: the explorer's premise is broken."""


class Unsupported(AssertionError):
    """The system does something the explorer's soundness argument does not cover."""


@dataclass
class Node:
    """A state on the current path: who could go, who sleeps, who must still be tried."""

    enabled: frozenset[str]
    sleep: dict[str, Access]  # asleep on arrival, with the access their step has here
    backtrack: set[str] = field(default_factory=set)
    done: dict[str, Access] = field(default_factory=dict)  # explored from here

    def next_to_try(self) -> str | None:
        left = self.backtrack - self.done.keys() - self.sleep.keys()
        return min(left) if left else None


@dataclass
class Run:
    events: list[Event]
    violations: list[str]

    def order(self) -> list[str]:
        return [str(event) for event in self.events]


@dataclass
class Exploration:
    complete: list[Run] = field(default_factory=list)  # one per class of equivalent orders
    redundant: int = 0  # runs abandoned in a state where every enabled actor slept

    @property
    def runs(self) -> int:
        return len(self.complete) + self.redundant

    @property
    def violating(self) -> list[Run]:
        return [run for run in self.complete if run.violations]


def explore(
    start: Callable[[], Execution], progress: Callable[[Exploration], None] | None = None
) -> Exploration:
    """Every class of equivalent orders of the system `start()` makes, one run each."""
    found = Exploration()
    path: list[Node] = []
    events: list[Event] = []
    diverge = 0  # the depth where this run leaves the previous one
    choice: str | None = None  # the actor tried at that depth (None: the very first run)
    while True:
        execution = start()
        complete = _run(execution, path, events, diverge, choice)
        _add_backtracks(path, events, diverge)
        if complete:
            found.complete.append(Run(list(events), execution.verdict()))
        else:
            execution.abandon()
            found.redundant += 1
        if progress:
            progress(found)
        for depth in range(len(path) - 1, -1, -1):
            choice = path[depth].next_to_try()
            if choice is not None:
                diverge = depth
                del path[depth + 1 :]
                del events[depth:]
                break
        else:
            return found


def every_order(start: Callable[[], Execution]) -> list[Run]:
    """Every order, without reduction: one run each (to check the reduction against)."""
    runs: list[Run] = []
    pending: list[list[str]] = [[]]
    while pending:
        prefix = pending.pop()
        execution = start()
        events: list[Event] = []
        while enabled := sorted(execution.enabled()):
            if len(events) < len(prefix):
                choice = prefix[len(events)]
            else:
                choice = enabled[0]
                taken = [event.actor for event in events]
                pending.extend([*taken, other] for other in enabled[1:])
            events.append(execution.step(choice))
        runs.append(Run(events, execution.verdict()))
    return runs


Step = tuple[str, int, str]  # an actor, its n-th step, what the step was


def equivalence_class(events: list[Event]) -> frozenset[tuple[Step, Step]]:
    """What all orders equivalent to this one share: the steps, and the order of every pair of
    them that are dependent (the same actor's, or conflicting)."""
    taken: dict[str, int] = {}
    steps: list[Step] = []
    for event in events:
        taken[event.actor] = taken.get(event.actor, 0) + 1
        steps.append((event.actor, taken[event.actor], event.label))
    return frozenset(
        (steps[i], steps[j])
        for j in range(len(events))
        for i in range(j + 1)
        if i == j
        or in_program_order(events[i].actor, events[j].actor)
        or events[i].access.conflicts(events[j].access)
    )


def _run(
    execution: Execution, path: list[Node], events: list[Event], diverge: int, choice: str | None
) -> bool:
    """Replay `events[:diverge]`, take `choice` there, then go on; False if the run went to sleep."""
    for depth, event in enumerate(events[:diverge]):
        again = execution.step(event.actor)
        if again != event or frozenset(execution.enabled()) != path[depth + 1].enabled:
            raise Nondeterminism(f"step {depth}: {again} replayed where {event} was")
    if not path:
        path.append(Node(frozenset(execution.enabled()), {}))
    depth = diverge
    while True:
        node = path[depth]
        if choice is None:
            if not node.enabled:
                return True
            awake = sorted(node.enabled - node.sleep.keys())
            if not awake:
                return False
            choice = awake[0]
            node.backtrack.add(choice)
        event = execution.step(choice)
        events.append(event)
        asleep = {**node.sleep, **node.done}
        node.done[choice] = event.access
        enabled = frozenset(execution.enabled())
        if stopped := node.enabled - {choice} - enabled:
            raise Unsupported(f"{event} stopped {sorted(stopped)} from running")
        # An actor asleep stays asleep while the steps taken commute with its own.
        path.append(
            Node(enabled, {a: step for a, step in asleep.items() if not step.conflicts(event.access)})
        )
        depth += 1
        choice = None


def _add_backtracks(path: list[Node], events: list[Event], start: int) -> None:
    """For each race whose second step is new in this run, plan the reversed order."""
    count = len(events)
    dependent = [
        [
            i < j
            and (
                in_program_order(events[i].actor, events[j].actor)
                or events[i].access.conflicts(events[j].access)
            )
            for j in range(count)
        ]
        for i in range(count)
    ]
    before = [[False] * count for _ in range(count)]  # happens-before: the transitive closure
    for j in range(count):
        for i in range(j - 1, -1, -1):
            before[i][j] = dependent[i][j] or any(before[i][k] and dependent[k][j] for k in range(i + 1, j))
    for j in range(start, count):
        enabler = _enabler(path, events, j)
        if enabler is not None and not dependent[enabler][j]:
            raise Unsupported(f"{events[enabler]} let {events[j]} run without conflicting with it")
        for i in range(j):
            if in_program_order(events[i].actor, events[j].actor) or not dependent[i][j] or i == enabler:
                continue  # program order, independent, or the first step is what let the second run
            if any(before[i][k] and before[k][j] for k in range(i + 1, j)):
                continue  # not a race: something between orders them
            later = [k for k in range(i + 1, j) if not before[i][k]] + [j]
            starters = {
                events[k].actor for n, k in enumerate(later) if not any(before[m][k] for m in later[:n])
            }
            if not starters <= path[i].enabled:
                raise Unsupported(f"{sorted(starters - path[i].enabled)} cannot start at step {i}")
            if not starters & path[i].backtrack:
                path[i].backtrack.add(events[j].actor if events[j].actor in starters else min(starters))


def _enabler(path: list[Node], events: list[Event], j: int) -> int | None:
    """The step that let `events[j]`'s actor run, when another actor's step did."""
    actor = events[j].actor
    own = max((k for k in range(j) if events[k].actor == actor), default=-1)
    node = j
    while node > own + 1 and actor in path[node - 1].enabled:
        node -= 1
    return node - 1 if node > own + 1 else None
