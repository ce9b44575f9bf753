"""The reduced explorer against brute force, on small systems whose every order can be run.

A toy system is a few actors, each a short program over shared cells: reads, writes,
compare-and-set (a conditional write: a read when it fails), a branch on a value, and a flag
an actor may wait for (it cannot run before the flag is set, as a dispatcher cannot run
before its stream record exists). An actor may also fork others and wait for them to end, as
settle does with its moves (`Forking`). For random systems from a fixed seed, `explore` must reach
exactly the classes of equivalent orders that running every order reaches, each once, and so
every final state that any order reaches.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.support.reduction import (
    FORK,
    Access,
    Event,
    Unsupported,
    equivalence_class,
    every_order,
    explore,
)

CELLS = ("a", "b", "c")
SYSTEMS = 250
SEED = 20260105

Op = tuple[str, ...]  # ("read", cell) ("write", cell) ("cas", cell, expect, new) ("skip_if_zero", cell)
#                       ("set", flag) ("wait", flag) ("clear", flag)


@dataclass
class Toy:
    """One run of a toy system (`reduction.Execution`)."""

    programs: dict[str, list[Op]]
    cells: Counter[str] = field(default_factory=Counter)
    pc: Counter[str] = field(default_factory=Counter)
    seen: dict[str, list[int]] = field(default_factory=dict)

    def enabled(self) -> list[str]:
        return [
            actor
            for actor, program in self.programs.items()
            if self.pc[actor] < len(program)
            and (program[self.pc[actor]][0] != "wait" or self.cells[program[self.pc[actor]][1]])
        ]

    def program(self, actor: str) -> list[Op]:
        return self.programs[actor]

    def step(self, actor: str) -> Event:
        op = self.program(actor)[self.pc[actor]]
        self.pc[actor] += 1
        seen = self.seen.setdefault(actor, [])
        kind, cell = op[0], op[1]
        if kind in ("read", "wait"):
            seen.append(self.cells[cell])
            return Event(actor, " ".join(op), Access(reads=frozenset({cell})))
        if kind == "skip_if_zero":
            seen.append(self.cells[cell])
            if not self.cells[cell]:
                self.pc[actor] += 1
            return Event(actor, " ".join(op), Access(reads=frozenset({cell})))
        if kind == "cas":
            held = self.cells[cell] == int(op[2])
            seen.append(int(held))
            if not held:
                return Event(actor, f"{' '.join(op)} failed", Access(reads=frozenset({cell})))
            self.cells[cell] = int(op[3])
        elif kind == "write":
            self.cells[cell] = seen[-1] + 1 if seen else 1  # what it writes depends on what it read
        else:
            self.cells[cell] = int(kind == "set")
        return Event(actor, " ".join(op), Access(writes=frozenset({cell})))

    def abandon(self) -> None:
        pass

    def verdict(self) -> list[str]:
        return [f"ends {sorted(self.cells.items())} having seen {sorted(self.seen.items())}"]


def random_system(rng: random.Random) -> dict[str, list[Op]]:
    actors = rng.randint(2, 4)
    budget = rng.randint(actors + 1, 8)  # steps in all: every order stays in the thousands
    lengths = [1] * actors
    for _ in range(budget - actors):
        lengths[rng.randrange(actors)] += 1
    programs: dict[str, list[Op]] = {}
    for index, length in enumerate(lengths):
        program: list[Op] = []
        for _ in range(length):
            cell = rng.choice(CELLS)
            program.append(
                rng.choice(
                    [
                        ("read", cell),
                        ("write", cell),
                        ("cas", cell, str(rng.randint(0, 1)), str(rng.randint(1, 3))),
                        ("skip_if_zero", cell),
                        ("set", "flag"),
                        ("wait", "flag"),
                    ]
                )
            )
        programs[f"T{index}"] = program
    return programs


def test_the_reduction_reaches_every_class_of_orders_once_on_random_systems() -> None:
    rng = random.Random(SEED)
    for _ in range(SYSTEMS):
        programs = random_system(rng)

        found = explore(lambda programs=programs: Toy(programs))  # type: ignore[misc]
        every = every_order(lambda programs=programs: Toy(programs))  # type: ignore[misc]

        reduced = [equivalence_class(run.events) for run in found.complete]
        assert len(set(reduced)) == len(reduced), programs
        assert set(reduced) == {equivalence_class(run.events) for run in every}, programs
        assert {v for run in found.complete for v in run.violations} == {
            v for run in every for v in run.violations
        }, programs


def test_the_random_systems_are_not_trivial() -> None:
    rng = random.Random(SEED)
    systems = [random_system(rng) for _ in range(SYSTEMS)]

    sizes = [len(every_order(lambda p=programs: Toy(p))) for programs in systems]  # type: ignore[misc]

    assert max(sizes) > 500
    assert sum(size > 50 for size in sizes) > SYSTEMS // 4


class Counters(Toy):
    """Two actors each read a counter and write it back plus one: the classic lost update."""

    def __init__(self) -> None:
        super().__init__({"T1": [("read", "a"), ("write", "a")], "T2": [("read", "a"), ("write", "a")]})

    def verdict(self) -> list[str]:
        return [] if self.cells["a"] == 2 else [f"a lost update: a = {self.cells['a']}"]


def test_the_reduction_finds_a_lost_update() -> None:
    found = explore(Counters)

    assert [run.order() for run in found.violating] == [
        ["T1:read a", "T2:read a", "T1:write a", "T2:write a"],
        ["T1:read a", "T2:read a", "T2:write a", "T1:write a"],
    ]
    assert len(found.complete) == 4


def test_an_actor_stopped_by_another_is_refused() -> None:
    # The soundness argument needs an actor able to run to stay able until it steps.
    programs: dict[str, list[Op]] = {"T1": [("set", "flag"), ("clear", "flag")], "T2": [("wait", "flag")]}

    with pytest.raises(Unsupported, match="stopped"):
        explore(lambda: Toy(programs))


@dataclass
class Forking(Toy):
    """A toy whose actors may fork: ("fork",) starts the actor's forks (`T0>1`, `T0>2`), each a
    program of its own, and the actor's next op waits until all of them have ended (a join)."""

    forks: dict[str, dict[str, list[Op]]] = field(default_factory=dict)
    forked: set[str] = field(default_factory=set)

    def program(self, actor: str) -> list[Op]:
        parent = actor.rpartition(FORK)[0]
        return self.forks[parent][actor] if parent else self.programs[actor]

    def _joining(self, actor: str) -> bool:
        return actor in self.forked and any(
            self.pc[fork] < len(program) for fork, program in self.forks[actor].items()
        )

    def enabled(self) -> list[str]:
        running = [*self.programs, *(fork for parent in self.forked for fork in self.forks[parent])]
        enabled = []
        for actor in running:
            program, pc = self.program(actor), self.pc[actor]
            if pc >= len(program) or self._joining(actor):
                continue
            if program[pc][0] == "wait" and not self.cells[program[pc][1]]:
                continue
            enabled.append(actor)
        return enabled

    def step(self, actor: str) -> Event:
        if self.program(actor)[self.pc[actor]][0] != "fork":
            return super().step(actor)
        self.pc[actor] += 1
        self.forked.add(actor)
        return Event(actor, "fork", Access())  # it touches nothing: only the program orders it


def random_forking_system(rng: random.Random) -> Forking:
    """Two or three actors of a few ops, one of which forks two of one or two ops each."""
    programs = random_system(rng)
    while sum(map(len, programs.values())) > 4:  # every order stays in the thousands
        longest = max(programs, key=lambda actor: len(programs[actor]))
        programs[longest].pop()
    parent = rng.choice(sorted(programs))
    programs[parent].insert(rng.randint(0, len(programs[parent])), ("fork",))
    forks = {f"{parent}{FORK}{n}": random_system(rng)["T0"][: rng.randint(1, 2)] for n in (1, 2)}
    return Forking(programs, forks={parent: forks})


def test_the_reduction_orders_a_fork_after_its_parent_and_the_join_after_its_forks() -> None:
    rng = random.Random(SEED + 1)
    sizes = []
    for _ in range(FORKING_SYSTEMS):
        system = random_forking_system(rng)

        def start(system: Forking = system) -> Forking:
            return Forking({a: list(p) for a, p in system.programs.items()}, forks=system.forks)

        found = explore(start)
        every = every_order(start)
        sizes.append(len(every))

        reduced = [equivalence_class(run.events) for run in found.complete]
        shown = (system.programs, system.forks)
        assert len(set(reduced)) == len(reduced), shown
        assert set(reduced) == {equivalence_class(run.events) for run in every}, shown
        assert {v for run in found.complete for v in run.violations} == {
            v for run in every for v in run.violations
        }, shown
    assert max(sizes) > 200  # not trivial: forks and the others interleave in many orders


FORKING_SYSTEMS = 100
