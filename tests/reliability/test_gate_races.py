"""A gate's races, by enumeration: two upstreams finishing at once, their records, a duplicate,
and a re-arm racing a finish.

G waits (GATED) for U1 and U2, both running. Concurrently:

- F1, F2: update-state settles U1, U2 SUCCEEDED (each moves G's gate row on its upstream);
- H1, H2: the dispatcher hears each gate row, once it has moved (its first step, a
  `StreamRecord`, is runnable only then: the stream carries what was written);
- H2x: U2's record delivered a second time (a duplicated stream record).

Each actor runs the real flow in its own thread and parks before every AWS call; the explorer
of tests/reliability/test_races.py runs one order of each class of equivalent orders. After
every order: G was opened (GATED -> CLAIMED) exactly once and then started, both upstreams are
counted, and each gate row left WAITING once and had its outcome recorded once.

The re-arm (`ReArmScene`): G's attempt 1 was ended DependencyFailed by U's failure, and U is
re-run (attempt 2, PROCESSING). Concurrently:

- R: process gets G's message again: claims attempt 2 GATED and arms it (a cycle query, its
  gate row on U, U's state read, and the move and count itself if U has ended);
- F: update-state settles U's attempt 2 SUCCEEDED (moves attempt 2's gate row, if put yet);
- H: the dispatcher hears attempt 2's gate row once it has moved (by F or by R);
- Hx: attempt 1's gate row (FAILED) delivered again, late: it must not end attempt 2.

After every order: G is at attempt 2, opened exactly once and started (or still GATED while U
runs), attempt 1 never started, U counted once, attempt 2's gate row moved and recorded once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from coordinator.dispatch import dispatch_gate
from coordinator.gate import Heard
from coordinator.identity import execution_name
from coordinator.process import process_request
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.table import from_item, gate_key
from coordinator_tools.kit.events import request
from tests.conftest import TABLE
from tests.reliability.conftest import Lab
from tests.reliability.test_races import (
    MOVE,
    STREAM_RECORD,
    Actors,
    _scan,
    access_of,
    reads,
    writes,
)
from tests.support.crashes import Call
from tests.support.interleavings import Abandoned, Turnstile
from tests.support.reduction import ANY, Access, Event, equivalence_class, explore

GATED = "ingest/G"
UPSTREAMS = {"1": "ingest/U1", "2": "ingest/U2"}
CASTS = {
    "two upstreams at once": ("F1", "F2", "H1", "H2"),
    "a duplicated record": ("F2", "H2", "H2x"),
    "both at once, one record duplicated": ("F1", "F2", "H1", "H2", "H2x"),
}
EVERY_ACTOR = ("F1", "F2", "H1", "H2", "H2x")
UPSTREAM = "ingest/U"
ENDED = "ended"  # the record of attempt 1's gate row (FAILED), delivered again
REARM_CASTS = {
    "a re-arm racing the finish": ("R", "F", "H"),
    "a re-arm racing the ended gate's record": ("R", "Hx"),
    "a re-arm racing the finish and the ended gate's record": ("R", "F", "Hx"),
}
REARM_ACTORS = ("R", "F", "H", "Hx")


class GateScene:
    def __init__(self, lab: Lab) -> None:
        world = lab.fresh()
        base = world.services
        for upstream in UPSTREAMS.values():
            process_request(base, request(id=upstream), request_id=f"m-{upstream}")
            apply_status(base, upstream, world.state(upstream).execution_arn, State.PROCESSING)
        after = [{"id": upstream} for upstream in UPSTREAMS.values()]
        process_request(base, request(id=GATED, after=after), request_id="m-gated")
        self.world = world
        self.gated_arn = world.state(GATED).execution_arn
        self.arns = {upstream: world.state(upstream).execution_arn for upstream in UPSTREAMS.values()}
        self.rows = _scan(lab)


class ReArmScene:
    """G's attempt 1 ended DependencyFailed by U's failure (heard, recorded); U's attempt 2 runs."""

    def __init__(self, lab: Lab) -> None:
        world = lab.fresh()
        base = world.services
        process_request(base, request(id=UPSTREAM), request_id="m-u")
        process_request(base, request(id=GATED, after=[{"id": UPSTREAM}]), request_id="m-gated")
        self.ended_arn = world.state(GATED).execution_arn
        apply_status(base, UPSTREAM, world.state(UPSTREAM).execution_arn, State.FAILED, error="Boom")
        self.ended_record = gate_row(lab, UPSTREAM, self.ended_arn)
        heard = Heard.from_image(self.ended_record)
        assert heard is not None
        dispatch_gate(base, heard)
        assert world.state(GATED).state is State.FAILED
        process_request(base, request(id=UPSTREAM), request_id="m-u-rerun")
        self.arn = world.state(UPSTREAM).execution_arn
        apply_status(base, UPSTREAM, self.arn, State.PROCESSING)
        self.world = world
        self.rows = _scan(lab)


def gate_row(lab: Lab, upstream: str, gated_arn: str) -> dict[str, Any]:
    key = {"payload_id": {"S": upstream}, "sk": {"S": gate_key(gated_arn)}}
    return from_item(lab.look.dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"])


def restore(lab: Lab, scene: GateScene | ReArmScene) -> None:
    for item in _scan(lab):
        lab.look.dynamodb.delete_item(
            TableName=TABLE, Key={"payload_id": item["payload_id"], "sk": item["sk"]}
        )
    for item in scene.rows:
        lab.look.dynamodb.put_item(TableName=TABLE, Item=item)


def gate_access(call: Call) -> Access:
    """As the main explorer reads a call, but a StartExecution touches only its own execution."""
    if call.operation == "StartExecution":
        return writes(f"execution:{call.params['name']}")
    if call.operation == "BatchGetItem":
        [keys] = [request["Keys"] for request in call.params["RequestItems"].values()]
        return Access(reads=frozenset(f"{k['payload_id']['S']}/{k['sk']['S']}" for k in keys))
    if call.operation == "Query" and "IndexName" in call.params:
        # The cycle check's by_waiter query reads rows on any partition: taken to read all.
        return reads(ANY)
    return access_of(call)


class GateRace:
    """One run of the cast in the scene, a step at a time (`reduction.Execution`)."""

    def __init__(self, lab: Lab, actors: Actors, scene: Any, cast: tuple[str, ...]) -> None:
        restore(lab, scene)
        actors.calls.reset()
        self.lab, self.actors, self.scene, self.cast = lab, actors, scene, cast
        self.turnstile = actors.turnstile = Turnstile()
        self.records: dict[str, dict[str, Any]] = {}  # upstream -> its gate row as the move left it
        self.errors: dict[str, BaseException] = {}
        flows = self.flows()
        self.threads = [threading.Thread(target=self._body, args=(n, flows[n]), daemon=True) for n in cast]
        for thread in self.threads:
            thread.start()

    def flows(self) -> dict[str, Callable[[], None]]:
        actors, scene = self.actors, self.scene
        flows: dict[str, Callable[[], None]] = {}
        for digit, upstream in UPSTREAMS.items():
            flows[f"F{digit}"] = lambda upstream=upstream, digit=digit: apply_status(  # type: ignore[misc]
                actors.services(f"F{digit}", scene.world), upstream, scene.arns[upstream], State.SUCCEEDED
            )
            flows[f"H{digit}"] = lambda upstream=upstream, digit=digit: self._hear(f"H{digit}", upstream)  # type: ignore[misc]
        flows["H2x"] = lambda: self._hear("H2x", UPSTREAMS["2"])
        return flows

    def _hear(self, name: str, upstream: str) -> None:
        self.turnstile.checkpoint(name, f"{STREAM_RECORD} {upstream}")
        heard = Heard.from_image(self.records[upstream])
        assert heard is not None
        dispatch_gate(self.actors.services(name, self.scene.world), heard)

    def _body(self, name: str, flow: Callable[[], None]) -> None:
        try:
            flow()
        except Abandoned:
            pass
        except BaseException as error:  # noqa: BLE001 - carried to the main thread
            self.errors[name] = error
        finally:
            self.turnstile.finish(name)

    def enabled(self) -> list[str]:
        self.turnstile.wait_quiet(list(self.cast))
        parked = dict(self.turnstile.parked)
        return sorted(
            actor
            for actor, operation in parked.items()
            if not operation.startswith(STREAM_RECORD) or operation.split()[1] in self.records
        )

    def step(self, actor: str) -> Event:
        self.turnstile.wait_quiet(list(self.cast))
        operation = self.turnstile.parked[actor]
        made = len(self.actors.calls.calls)
        self.turnstile.grant(actor)
        if operation.startswith(STREAM_RECORD):
            return Event(actor, operation, reads(f"record:{operation.split()[1]}"))
        [call] = self.actors.calls.calls[made:]
        access = gate_access(call)
        if call.status < 300 and call.params.get("ConditionExpression") == MOVE:
            upstream = call.params["Key"]["payload_id"]["S"]
            look = self.lab.look.dynamodb
            self.records[upstream] = from_item(
                look.get_item(TableName=TABLE, Key=call.params["Key"], ConsistentRead=True)["Item"]
            )
            access = Access(access.reads, access.writes | {f"record:{upstream}"})
        target = call.params.get("Key", {}).get("payload_id", {}).get("S", call.params.get("name", ""))
        answer = "" if call.status < 300 else f" -> {call.code}"
        return Event(actor, f"{call.operation} {target}{answer}", access)

    def abandon(self) -> None:
        self.turnstile.abandon()
        self._join()

    def verdict(self) -> list[str]:
        self._join()
        return self.check()

    def check(self) -> list[str]:
        return check(self)

    def _join(self) -> None:
        for thread in self.threads:
            thread.join(10)
        if self.errors:
            name, error = next(iter(self.errors.items()))
            raise AssertionError(f"actor {name} raised") from error


class ReArmRace(GateRace):
    """The re-arm's cast in `ReArmScene` (R, F, H, Hx of the module's docstring)."""

    def flows(self) -> dict[str, Callable[[], None]]:
        actors, scene = self.actors, self.scene
        self.records[ENDED] = scene.ended_record  # delivered already once: runnable from the start
        again = request(id=GATED, after=[{"id": UPSTREAM}])
        return {
            "R": lambda: process_request(actors.services("R", scene.world), again, request_id="m-again"),
            "F": lambda: apply_status(
                actors.services("F", scene.world), UPSTREAM, scene.arn, State.SUCCEEDED
            ),
            "H": lambda: self._hear("H", UPSTREAM),
            "Hx": lambda: self._hear("Hx", ENDED),
        }

    def check(self) -> list[str]:
        return check_rearm(self)


def check_rearm(race: GateRace) -> list[str]:
    world, scene, calls = race.scene.world, race.scene, race.actors.calls.calls
    violations = []
    finished = "F" in race.cast
    gated = world.state(GATED)
    row = gate_row(race.lab, UPSTREAM, gated.execution_arn)
    # Without H, G opens only if R heard U's end itself (it read U final); else the row F moved
    # waits for its stream record: not lost, it is moved and not yet recorded (checked below).
    waits_for_record = finished and "H" not in race.cast and gated.state is State.GATED
    opens = finished and not waits_for_record
    expected_state = State.CLAIMED if opens else State.GATED
    if gated.state is not expected_state or gated.attempt != 2:
        violations.append(f"G ended {gated.state} at attempt {gated.attempt}")
    if gated.gate_met != (frozenset({UPSTREAM}) if opens else frozenset()):
        violations.append(f"G counted {sorted(gated.gate_met)}")
    opened = [
        c
        for c in calls
        if c.status < 300
        and ":gated" in c.params.get("ExpressionAttributeValues", {})
        and c.params["ExpressionAttributeValues"].get(":claimed", {}).get("S") == State.CLAIMED
    ]
    starts = [c.params["name"] for c in calls if c.operation == "StartExecution"]
    if execution_name(GATED, 1) in starts:
        violations.append("G's ended attempt 1 started")
    if opens and (len(opened) != 1 or execution_name(GATED, 2) not in starts):
        violations.append(f"G opened {len(opened)} times, StartExecution asked for {starts}")
    if not opens and (opened or starts):
        violations.append("G opened before U's end was heard")
    moves = [c for c in calls if c.status < 300 and c.params.get("ConditionExpression") == MOVE]
    moved_state, moved = (WaiterState.SUCCEEDED, 1) if finished else (WaiterState.WAITING, 0)
    if row["waiter_state"] != moved_state or len(moves) != moved:
        violations.append(f"attempt 2's gate row {row['waiter_state']}, moved {len(moves)} times")
    marks = [
        c
        for c in calls
        if c.status < 300
        and "attribute_not_exists(#notified_at)" in c.params.get("ConditionExpression", "")
        and c.params["Key"]["payload_id"]["S"] == UPSTREAM
    ]
    recorded = 1 if finished and "H" in race.cast else 0
    if len(marks) != recorded or (recorded and row.get("outcome") != "counted"):
        violations.append(f"attempt 2's gate row recorded {len(marks)} times ({row.get('outcome')})")
    ended = gate_row(race.lab, UPSTREAM, scene.ended_arn)
    if ended["waiter_state"] != WaiterState.FAILED or ended.get("notified_at") is None:
        violations.append(f"attempt 1's gate row now {ended['waiter_state']}")
    return violations


def check(race: GateRace) -> list[str]:
    world, scene, calls = race.scene.world, race.scene, race.actors.calls.calls
    violations = []
    upstreams = [UPSTREAMS[actor[1]] for actor in race.cast if actor.startswith("F")]
    gated = world.state(GATED)
    # With both upstreams ending G opens; with one (the duplicate's cast) it must wait on.
    expected_state = State.CLAIMED if sorted(upstreams) == sorted(UPSTREAMS.values()) else State.GATED
    if gated.state is not expected_state or gated.attempt != 1:
        violations.append(f"G ended {gated.state} at attempt {gated.attempt}")
    if gated.gate_met != frozenset(upstreams):
        violations.append(f"G counted {sorted(gated.gate_met)}, not {sorted(upstreams)}")
    opened = [  # the gate's GATED -> CLAIMED write, as it took effect
        c
        for c in calls
        if c.status < 300
        and ":gated" in c.params.get("ExpressionAttributeValues", {})
        and c.params["ExpressionAttributeValues"].get(":claimed", {}).get("S") == State.CLAIMED
    ]
    starts = [
        c for c in calls if c.operation == "StartExecution" and c.params["name"] == execution_name(GATED, 1)
    ]
    if expected_state is State.CLAIMED and (len(opened) != 1 or not starts):
        violations.append(f"G opened {len(opened)} times, StartExecution asked {len(starts)} times")
    if expected_state is State.GATED and (opened or starts):
        violations.append("G opened with an upstream still running")
    for upstream in upstreams:
        sk = gate_key(scene.gated_arn)
        row = from_item(
            race.lab.look.dynamodb.get_item(
                TableName=TABLE, Key={"payload_id": {"S": upstream}, "sk": {"S": sk}}, ConsistentRead=True
            )["Item"]
        )
        moves = [
            c
            for c in calls
            if c.status < 300
            and c.params.get("ConditionExpression") == MOVE
            and c.params["Key"]["payload_id"]["S"] == upstream
        ]
        marks = [
            c
            for c in calls
            if c.status < 300
            and "attribute_not_exists(#notified_at)" in c.params.get("ConditionExpression", "")
            and c.params["Key"]["payload_id"]["S"] == upstream
        ]
        if row["waiter_state"] != WaiterState.SUCCEEDED or len(moves) != 1:
            violations.append(f"gate row on {upstream} {row['waiter_state']}, moved {len(moves)} times")
        if len(marks) != 1 or row.get("outcome") != "counted":
            violations.append(f"gate row on {upstream} recorded {len(marks)} times ({row.get('outcome')})")
    return violations


@pytest.mark.parametrize("cast", list(CASTS.values()), ids=list(CASTS))
def test_every_interleaving_of_a_gates_upstreams_and_their_records_loses_nothing(
    lab: Lab, cast: tuple[str, ...]
) -> None:
    actors = Actors(lab, EVERY_ACTOR)
    scene = GateScene(lab)
    found = explore(lambda: GateRace(lab, actors, scene, cast))

    assert [(run.order(), run.violations) for run in found.violating] == []
    classes = [equivalence_class(run.events) for run in found.complete]
    assert len(set(classes)) == len(classes)
    assert len(classes) > 1


@pytest.mark.parametrize("cast", list(REARM_CASTS.values()), ids=list(REARM_CASTS))
def test_every_interleaving_of_a_re_arm_and_its_upstreams_finish_starts_the_new_attempt_once(
    lab: Lab, cast: tuple[str, ...]
) -> None:
    actors = Actors(lab, REARM_ACTORS)
    scene = ReArmScene(lab)
    found = explore(lambda: ReArmRace(lab, actors, scene, cast))

    assert [(run.order(), run.violations) for run in found.violating] == []
    classes = [equivalence_class(run.events) for run in found.complete]
    assert len(set(classes)) == len(classes)
    assert len(classes) > 1
