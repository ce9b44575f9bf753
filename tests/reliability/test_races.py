"""Races beyond two actors, by enumeration: two waiters, a finish, a stale event, a duplicated record.

Payload P failed its attempt 1 and runs attempt 2. Concurrently:

- W1, W2: process registers a waiter on P (two messages, two tokens);
- U: update-state settles attempt 2 SUCCEEDED;
- S: attempt 1's FAILED event arrives again, late (stale);
- D1, D2: the dispatcher receives W1's resolved stream record twice (a duplicated record). Each
  first takes a `StreamRecord` step, runnable only once W1's waiter has moved: the stream only
  carries what was written. Its record is the row as that move left it (the NewImage).

Each actor runs the real flow in its own thread and parks before every AWS call. A step is one
call. All orders of the 15-17 steps are about 10^10; `tests/support/reduction.py` explores one
of each class of equivalent orders (source-set DPOR with sleep sets). Two steps are dependent
when one writes what the other reads or writes. What a step read and wrote is taken from the
call itself as it was made (`access_of`): its table key, a Query's key prefix, its task token;
a conditional write whose condition failed, and a send to a token already closed, changed
nothing and count as reads. So the reduction rests on what DynamoDB and Step Functions do with
these calls, not on assumptions about the code.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from coordinator.dispatch import ResolvedWaiter, dispatch
from coordinator.identity import execution_name, token_digest, token_key
from coordinator.messages import PayloadRequest
from coordinator.process import process_request
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator.table import from_item
from coordinator_tools.kit.events import callback, request
from tests.conftest import TABLE
from tests.functional.test_interleavings import process_as_cirrus_draft
from tests.reliability.conftest import Lab, World
from tests.support.crashes import Call, CallLog, remember_params
from tests.support.interleavings import Abandoned, Turnstile, acting_as
from tests.support.reduction import (
    EVERYTHING,
    FORK,
    Access,
    Event,
    Exploration,
    equivalence_class,
    every_order,
    explore,
)
from tests.support.reduction import (
    Run as ReducedRun,
)

PAYLOAD = "ingest/P"
STREAM_RECORD = "StreamRecord"  # a dispatcher's first step: its record arrives (no AWS call)
CAST = ("D1", "D2", "S", "U", "W1", "W2")
FULL = os.environ.get("RELIABILITY_FULL") == "1"
TOKENS = {
    "W1": "AQCEAAAAKgAAAAMAAAAAAAAAAW1" + "x" * 200,
    "W2": "AQCEAAAAKgAAAAMAAAAAAAAAAW2" + "x" * 200,
}
OUTPUT = '{"n": 2}'
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
MOVE = "#waiter_state = :waiting"  # the condition of a waiter's move out of WAITING


def reads(item: str) -> Access:
    return Access(reads=frozenset({item}))


def writes(item: str) -> Access:
    return Access(writes=frozenset({item}))


def item_of(params: dict[str, Any]) -> str:
    key = params.get("Key") or params["Item"]
    return f"{key['payload_id']['S']}/{key['sk']['S']}"


def access_of(call: Call) -> Access:
    """What one call read and wrote, from its parameters and its answer."""
    params = call.params
    changed = call.status < 300  # a refused call (condition failed, token closed) changed nothing
    if "taskToken" in params:
        token = f"token:{token_digest(params['taskToken'])}"
        return writes(token) if changed else reads(token)
    if "Key" in params or "Item" in params:
        item = item_of(params)
        return writes(item) if changed and call.operation in WRITES else reads(item)
    if call.operation in {"DescribeExecution", "RedriveExecution"}:
        # Only a redrive that took effect changes the execution (`Redrives` answers both).
        execution = f"execution:{params['executionArn']}"
        return writes(execution) if changed and call.operation == "RedriveExecution" else reads(execution)
    if call.operation == "Query":
        values = params["ExpressionAttributeValues"]
        return reads(f"{values[':p']['S']}/{values.get(':w', {}).get('S', '')}*")
    return EVERYTHING  # anything else (StartExecution...) is taken to conflict with everything


class Actors:
    """Per-actor clients, made once for all runs (client creation is the slow part)."""

    def __init__(self, lab: Lab, cast: tuple[str, ...] = CAST) -> None:
        self.lab = lab
        self.turnstile = Turnstile()
        self.calls = CallLog()
        self.clients: dict[str, tuple[Any, Any]] = {}
        for name in cast:
            pair = (boto3.client("dynamodb"), boto3.client("stepfunctions"))
            for client in pair:
                client.meta.events.register("before-parameter-build.*.*", remember_params, unique_id="params")
                client.meta.events.register_first("before-call.*.*", self._hook(name), unique_id="turnstile")
                self.calls.attach(client)
            lab.tokens.attach(pair[1])
            lab.redrives.attach(pair[1])
            self.clients[name] = pair

    def _hook(self, actor: str) -> Callable[..., None]:
        def before_call(model: Any, **_: Any) -> None:
            self.turnstile.checkpoint(acting_as(actor), model.name)

        return before_call

    def services(self, name: str, world: World) -> Services:
        dynamodb, stepfunctions = self.clients[name]
        return Services(
            # settle moves a page's waiters concurrently, as deployed: each move is an actor
            # of its own, forked by the settling one (`U>1`, `U>2`; `ActorPool`).
            settings=world.services.settings,
            dynamodb=dynamodb,
            stepfunctions=stepfunctions,
            sqs=self.lab.sqs,
            clock=world.clock,
            # A warm container: it knows the workflow is STANDARD (asked once per container,
            # it touches no row: not a step of any race).
            machine_types={f"{self.lab.machine_prefix}ingest": "STANDARD"},
        )


@dataclass
class Scene:
    """The world every run starts from, and the rows to put back before the next run."""

    world: World
    stale_arn: str
    running_arn: str
    rows: list[dict[str, Any]]
    attempt: int = 2  # the attempt P must end at
    # The running run is an operator's redrive (count 1) of the failed execution itself; the
    # stale event is of the failed run (count 0). `redrives` is Step Functions' side of it.
    redriven: bool = False
    redrives: dict[str, dict[str, Any]] | None = None


def set_scene(lab: Lab) -> Scene:
    """P: attempt 1 FAILED, attempt 2 claimed, started and PROCESSING."""
    world = lab.fresh()
    base = world.services
    process_request(base, request(id=PAYLOAD), request_id="m-producer")
    first = world.state(PAYLOAD).execution_arn
    apply_status(base, PAYLOAD, first, State.FAILED, error="Boom")
    process_request(base, request(id=PAYLOAD), request_id="m-rerun")
    second = world.state(PAYLOAD).execution_arn
    apply_status(base, PAYLOAD, second, State.PROCESSING)
    return Scene(world, first, second, _scan(lab))


def set_redrive_scene(lab: Lab) -> Scene:
    """P: attempt 1 FAILED; an operator redrove its execution, which runs again (count 1), and
    none of that run's events has arrived yet."""
    world = lab.fresh()
    base = world.services
    process_request(base, request(id=PAYLOAD), request_id="m-producer")
    arn = world.state(PAYLOAD).execution_arn
    apply_status(base, PAYLOAD, arn, State.FAILED, error="Boom")
    world.redrivable(PAYLOAD)
    lab.redrives.redrive(arn)
    return Scene(
        world,
        arn,
        arn,
        _scan(lab),
        attempt=1,
        redriven=True,
        redrives={name: dict(known) for name, known in lab.redrives.executions.items()},
    )


def _scan(lab: Lab) -> list[dict[str, Any]]:
    return list(lab.look.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"])


def restore(lab: Lab, scene: Scene) -> None:
    """Put the table back as the scene left it. Nothing else changes in a run: no claim can
    succeed on P, so no execution is started; the task tokens' side is reset."""
    for item in _scan(lab):
        key = {"payload_id": item["payload_id"], "sk": item["sk"]}
        lab.look.dynamodb.delete_item(TableName=TABLE, Key=key)
    for item in scene.rows:
        lab.look.dynamodb.put_item(TableName=TABLE, Item=item)
    lab.tokens.reset()
    if scene.redrives is not None:
        lab.redrives.reset()
        lab.redrives.executions = {name: dict(known) for name, known in scene.redrives.items()}
        lab.redrives.sent = [(scene.running_arn, None)]  # the operator's redrive


WaiterFlow = Callable[[Services, PayloadRequest, str], None]


def process_waiter(services: Services, message: PayloadRequest, request_id: str) -> None:
    process_request(services, message, request_id=request_id)


def draft_waiter(services: Services, message: PayloadRequest, _: str) -> None:
    process_as_cirrus_draft(services, message)


class Race:
    """One run of the cast in the scene, a step at a time (`reduction.Execution`)."""

    def __init__(
        self, lab: Lab, actors: Actors, scene: Scene, cast: tuple[str, ...], waiter: WaiterFlow
    ) -> None:
        restore(lab, scene)
        actors.calls.reset()
        self.lab, self.actors, self.scene, self.cast = lab, actors, scene, cast
        self.turnstile = actors.turnstile = Turnstile()
        self.record: dict[str, Any] | None = None  # W1's row as its move left it
        self.no_record = False  # W1's waiter never moved: no record will ever come
        self.errors: dict[str, BaseException] = {}
        self.short = {"STATE": "STATE"}
        for name, token in TOKENS.items():
            self.short[token_key(token)] = f"waiter {name}"
            self.short[f"token:{token_digest(token)}"] = f"token {name}"
        world = scene.world
        run = 1 if scene.redriven else 0  # the running run's redrive count
        flows: dict[str, Callable[[], None]] = {
            "S": lambda: self._settle("S", scene.stale_arn, State.FAILED, 0, error="Boom"),
            "R": lambda: self._settle("R", scene.running_arn, State.PROCESSING, run),
            "U": lambda: self._settle("U", scene.running_arn, State.SUCCEEDED, run, output=OUTPUT),
        }
        for name, token in TOKENS.items():
            # In the redrive scene W2 asks for a redrive itself, racing the operator's.
            rerun = "redrive" if scene.redriven and name == "W2" else "new_attempt"
            message = request(id=PAYLOAD, rerun=rerun, callback=callback(token))
            flows[name] = lambda name=name, message=message: waiter(  # type: ignore[misc]
                actors.services(name, world), message, f"m-{name}"
            )
        for name in ("D1", "D2"):
            flows[name] = lambda name=name: self._dispatch(name)  # type: ignore[misc]
        self.threads = [
            threading.Thread(target=self._body, args=(name, flows[name]), daemon=True) for name in cast
        ]
        for thread in self.threads:
            thread.start()

    def _settle(self, name: str, arn: str, state: State, redrive_count: int, **details: str) -> None:
        services = self.actors.services(name, self.scene.world)
        apply_status(services, PAYLOAD, arn, state, redrive_count=redrive_count, **details)

    def _dispatch(self, name: str) -> None:
        self.turnstile.checkpoint(name, STREAM_RECORD)
        if self.record is None:
            return
        resolved = ResolvedWaiter.from_image(self.record)
        if resolved is None:
            raise AssertionError(f"{name} got a record of a waiter still {self.record['waiter_state']}")
        dispatch(self.actors.services(name, self.scene.world), resolved)

    def _body(self, name: str, flow: Callable[[], None]) -> None:
        try:
            flow()
        except Abandoned:
            pass
        except BaseException as error:  # noqa: BLE001 - carried to the main thread
            self.errors[name] = error
        finally:
            self.turnstile.finish(name)

    # -- reduction.Execution ---------------------------------------------------------------

    def enabled(self) -> list[str]:
        self.turnstile.wait_quiet(list(self.cast))
        parked = dict(self.turnstile.parked)
        runnable = [a for a in parked if parked[a] != STREAM_RECORD or self.record is not None]
        if not runnable and parked:
            # Only dispatchers wait, for a record that cannot come any more: let them go empty.
            self.no_record = True
            runnable = list(parked)
        return sorted(runnable)

    def step(self, actor: str) -> Event:
        self.turnstile.wait_quiet(list(self.cast))
        operation = self.turnstile.parked[actor]
        made = len(self.actors.calls.calls)
        self.turnstile.grant(actor)
        if operation == STREAM_RECORD:
            return Event(actor, STREAM_RECORD, EVERYTHING if self.no_record else reads(self._record_item()))
        calls = self.actors.calls.calls[made:]
        if len(calls) != 1:
            raise AssertionError(f"{actor} made {len(calls)} calls in one step")
        call = calls[0]
        access = access_of(call)
        if self._moves_w1(call):
            look = self.lab.look.dynamodb
            self.record = from_item(
                look.get_item(TableName=TABLE, Key=call.params["Key"], ConsistentRead=True)["Item"]
            )
            access = Access(access.reads, access.writes | {self._record_item()})
        return Event(actor, self._label(call), access)

    def abandon(self) -> None:
        self.turnstile.abandon()
        self._join()

    def verdict(self) -> list[str]:
        self._join()
        return check(self.scene, self.actors.calls, self.lab, self.cast)

    # --------------------------------------------------------------------------------------

    def _join(self) -> None:
        for thread in self.threads:
            thread.join(10)
        if self.errors:
            name, error = next(iter(self.errors.items()))
            raise AssertionError(f"actor {name} raised") from error

    def _record_item(self) -> str:
        return f"record:{PAYLOAD}/{token_key(TOKENS['W1'])}"

    def _moves_w1(self, call: Call) -> bool:
        return (
            call.status < 300
            and call.operation == "UpdateItem"
            and call.params.get("ConditionExpression") == MOVE
            and call.params["Key"]["sk"]["S"] == token_key(TOKENS["W1"])
        )

    def _label(self, call: Call) -> str:
        params = call.params
        if "taskToken" in params:
            target = f"token:{token_digest(params['taskToken'])}"
        elif "Key" in params or "Item" in params:
            target = item_of(params).removeprefix(f"{PAYLOAD}/")
        else:
            target = ""
        answer = "" if call.status < 300 else f" -> {call.code}"
        return f"{call.operation} {self.short.get(target, target)}{answer}".strip()


def check(scene: Scene, calls: CallLog, lab: Lab, cast: tuple[str, ...]) -> list[str]:
    """What must hold after any run: P settled once by attempt 2, every waiter moved once to
    it, W1's token closed once and its outcome recorded once."""
    world = scene.world
    violations = []
    state = world.state(PAYLOAD)
    if (state.state, state.attempt, state.execution_arn) != (
        State.SUCCEEDED,
        scene.attempt,
        scene.running_arn,
    ):
        violations.append(f"P ended {state.state} at attempt {state.attempt}")
    if state.output != OUTPUT or state.error is not None:
        violations.append(f"P carries output {state.output!r} and error {state.error!r}")
    names = sorted(e["name"] for e in world.executions("ingest"))
    if names != sorted(execution_name(PAYLOAD, a) for a in range(1, scene.attempt + 1)):
        violations.append(f"executions {names}")
    if scene.redriven:
        redrives = lab.redrives.redrives_of(scene.running_arn)
        if (state.redrive_count, redrives) != (1, 1):
            violations.append(f"P redrive count {state.redrive_count}, execution redriven {redrives} times")
    moves: dict[str, int] = {}
    marks: dict[str, int] = {}
    for call in calls.calls:
        condition = call.params.get("ConditionExpression", "")
        if call.status < 300 and call.operation == "UpdateItem":
            sk = call.params["Key"]["sk"]["S"]
            if condition == MOVE:
                moves[sk] = moves.get(sk, 0) + 1
            elif "attribute_not_exists(#notified_at)" in condition:
                marks[sk] = marks.get(sk, 0) + 1
    rows = {row["sk"]: row for row in world.waiters()}
    waiters = [name for name in TOKENS if name in cast]
    if sorted(rows) != sorted(token_key(TOKENS[name]) for name in waiters):
        violations.append(f"{len(rows)} waiter rows for {waiters}")
    told_the_failure = {
        name for name in waiters if scene.redriven and _registered_before_the_redrive_was_known(calls, name)
    }
    for name in waiters:
        sk = token_key(TOKENS[name])
        row = rows.get(sk, {})
        if name in told_the_failure and row.get("waiter_state") == WaiterState.FAILED:
            # Registered while the row still said FAILED (the redrive not yet heard of), it may be
            # told that failure, by the failed run's late event: the latest run known to it.
            if (row.get("dependency_execution_arn"), row.get("dependency_error")) != (
                scene.stale_arn,
                "Boom",
            ):
                violations.append(f"{name} waiter failed by {row.get('dependency_execution_arn')}")
        elif row.get("waiter_state") != WaiterState.SUCCEEDED:
            violations.append(f"{name} waiter ended {row.get('waiter_state')}")
        elif (row.get("dependency_execution_arn"), row.get("dependency_output")) != (
            scene.running_arn,
            OUTPUT,
        ):
            violations.append(f"{name} waiter resolved by {row.get('dependency_execution_arn')}")
        if moves.get(sk, 0) != 1:
            violations.append(f"{name} waiter moved {moves.get(sk, 0)} times")
    dispatchers = [name for name in ("D1", "D2") if name in cast]
    first = TOKENS["W1"]
    closes = lab.tokens.closes(first)
    w1_failed = (
        rows.get(token_key(first), {}).get("waiter_state") == WaiterState.FAILED and "W1" in told_the_failure
    )
    expected_close = "SendTaskFailure" if w1_failed else "SendTaskSuccess"
    if closes != (1 if dispatchers else 0) or (dispatchers and lab.tokens.closed[first] != expected_close):
        violations.append(f"W1 token closed {closes} times ({lab.tokens.closed.get(first)})")
    if not dispatchers:
        return violations
    w1 = token_key(first)
    if marks.get(w1, 0) != 1:
        violations.append(f"W1 outcome recorded {marks.get(w1, 0)} times")
    outcome = rows.get(w1, {}).get("outcome")
    # A duplicate's TaskTimedOut may be recorded first: it is recorded only if nothing was.
    told = "failed" if w1_failed else "resumed"
    if outcome not in (told, "TaskTimedOut") or (len(dispatchers) == 1 and outcome != told):
        violations.append(f"W1 outcome {outcome}")
    return violations


def _registered_before_the_redrive_was_known(calls: CallLog, name: str) -> bool:
    """Whether the waiter's row was put before the STATE row first recorded the redriven run."""
    sk = token_key(TOKENS[name])
    put = learned = None
    for index, call in enumerate(calls.calls):
        params = call.params
        if (
            put is None
            and call.operation == "PutItem"
            and params.get("Item", {}).get("sk", {}).get("S") == sk
        ):
            put = index
        recorded = params.get("ExpressionAttributeValues", {}).get(":recorded", {}).get("N")
        if learned is None and call.operation == "UpdateItem" and call.status < 300 and recorded == "1":
            learned = index
    return put is not None and (learned is None or put < learned)


@dataclass
class Explorer:
    lab: Lab
    actors: Actors
    scene: Scene

    def race(self, cast: tuple[str, ...], waiter: WaiterFlow) -> Callable[[], Race]:
        return lambda: Race(self.lab, self.actors, self.scene, cast, waiter)

    def run(
        self, cast: tuple[str, ...] = CAST, waiter: WaiterFlow = process_waiter, report: str | None = None
    ) -> Exploration:
        started = time.monotonic()

        def progress(found: Exploration) -> None:
            if report and (found.runs % 50 == 0):
                _report(report, found, time.monotonic() - started, done=False)

        found = explore(self.race(cast, waiter), progress)
        if report:
            _report(report, found, time.monotonic() - started, done=True)
        return found


def _report(path: str, found: Exploration, seconds: float, *, done: bool) -> None:
    """The figures so far (docs/reliability.md quotes them)."""
    figures = {
        "classes": len(found.complete),
        "redundant_runs": found.redundant,
        "runs": found.runs,
        "violating": len(found.violating),
        "seconds": round(seconds, 1),
        "done": done,
    }
    with open(path, "w") as out:
        json.dump(figures, out)


@pytest.fixture
def explorer(lab: Lab) -> Explorer:
    return Explorer(lab, Actors(lab), set_scene(lab))


REDRIVE_CAST = ("D1", "D2", "R", "S", "U", "W1", "W2")


@pytest.fixture
def redrive_explorer(lab: Lab) -> Explorer:
    return Explorer(lab, Actors(lab, REDRIVE_CAST), set_redrive_scene(lab))


def test_every_interleaving_of_six_actors_loses_nothing(explorer: Explorer) -> None:
    found = explorer.run(report=os.environ.get("RELIABILITY_REPORT"))

    assert [(run.order(), run.violations) for run in found.violating] == []
    classes = [equivalence_class(run.events) for run in found.complete]
    assert len(set(classes)) == len(classes)  # no class of orders explored twice
    assert len(classes) > 100
    assert sum(moves_apart(run) for run in found.complete) > 10  # settle's moves ran concurrently


def moves_apart(run: ReducedRun) -> bool:
    """Whether a settle's moves were steps of their own (forks, `U>1`): another actor's step
    came between two of them, or the second submitted moved before the first."""
    forks = [index for index, event in enumerate(run.events) if FORK in event.actor]
    order = [run.events[index].actor for index in forks]
    return len(forks) > 1 and (forks[-1] - forks[0] >= len(forks) or order != sorted(order))


REDRIVE_CASTS = {
    # the redriven run's RUNNING (R) and SUCCEEDED (U), the failed run's FAILED again, late (S),
    # a waiter (W1) and a waiter asking for a redrive itself (W2)
    "events": ("R", "S", "U", "W1", "W2"),
    # W1's resolved record delivered twice (D1, D2) while the redriven run's events arrive
    "duplicate record": ("D1", "D2", "R", "U", "W1"),
}


@pytest.mark.parametrize("cast", list(REDRIVE_CASTS.values()), ids=list(REDRIVE_CASTS))
def test_every_interleaving_of_an_operators_redrive_with_waiters_and_late_events_loses_nothing(
    redrive_explorer: Explorer, cast: tuple[str, ...]
) -> None:
    """P failed and an operator redrove its execution; none of the redriven run's events has
    arrived. Whatever the order: P ends SUCCEEDED by that run (attempt 1, redrive count 1), no
    second execution and no second redrive exist, and every waiter is moved to it once."""
    report = os.environ.get("RELIABILITY_REDRIVE_REPORT")
    found = redrive_explorer.run(cast, report=f"{report}.{'-'.join(cast)}" if report else None)

    assert [(run.order(), run.violations) for run in found.violating] == []
    classes = [equivalence_class(run.events) for run in found.complete]
    assert len(set(classes)) == len(classes)
    assert len(classes) > 10


@pytest.mark.parametrize(
    ("cast", "waiter"),
    [(("D1", "U", "W1"), process_waiter), (("S", "U", "W1"), process_waiter), (("U", "W1"), draft_waiter)],
    ids=["dispatcher", "stale", "draft"],
)
def test_the_reduction_misses_no_order_of_a_smaller_cast(
    explorer: Explorer, cast: tuple[str, ...], waiter: WaiterFlow
) -> None:
    """Every order run one by one, against the reduced exploration, on the real code."""
    every = every_order(explorer.race(cast, waiter))
    found = explorer.run(cast, waiter)

    assert {equivalence_class(run.events) for run in found.complete} == {
        equivalence_class(run.events) for run in every
    }
    assert {equivalence_class(run.events) for run in found.violating} == {
        equivalence_class(run.events) for run in every if run.violations
    }


@pytest.mark.skipif(not FULL, reason="every order of a larger cast runs with RELIABILITY_FULL=1 (minutes)")
@pytest.mark.parametrize("cast", [("U", "W1", "W2"), ("D1", "D2", "U", "W1")], ids=["waiters", "duplicate"])
def test_the_reduction_misses_no_order_of_a_larger_cast(explorer: Explorer, cast: tuple[str, ...]) -> None:
    every = every_order(explorer.race(cast, process_waiter))
    found = explorer.run(cast)

    assert {equivalence_class(run.events) for run in found.complete} == {
        equivalence_class(run.events) for run in every
    }


def test_the_reduced_explorer_finds_the_cirrus_draft_losing_wake_ups(explorer: Explorer) -> None:
    found = explorer.run(("U", "W1", "W2"), draft_waiter)

    assert found.violating
    # Each one is the draft's loss: a waiter read P running, update-state then finished P and
    # queried its waiters before the waiter wrote its row, so nothing will ever move it.
    for run in found.violating:
        assert any(v.endswith("waiter ended WAITING") for v in run.violations), run.order()


def test_what_a_call_touched_is_read_from_the_call_and_its_answer() -> None:
    state = {"Key": {"payload_id": {"S": "P"}, "sk": {"S": "STATE"}}}
    waiter = {"Item": {"payload_id": {"S": "P"}, "sk": {"S": "WAITER#a"}}}
    query = {"ExpressionAttributeValues": {":p": {"S": "P"}, ":w": {"S": "WAITER#"}}}
    token = {"taskToken": "t"}

    assert access_of(Call("PutItem", waiter, 200, None)) == writes("P/WAITER#a")
    assert access_of(Call("UpdateItem", state, 200, None)) == writes("P/STATE")
    assert access_of(Call("UpdateItem", state, 400, "ConditionalCheckFailedException")) == reads("P/STATE")
    assert access_of(Call("GetItem", state, 200, None)) == reads("P/STATE")
    assert access_of(Call("Query", query, 200, None)) == reads("P/WAITER#*")
    closed = f"token:{token_digest('t')}"
    assert access_of(Call("SendTaskSuccess", token, 200, None)) == writes(closed)
    assert access_of(Call("SendTaskSuccess", token, 400, "TaskTimedOut")) == reads(closed)
    assert access_of(Call("StartExecution", {}, 200, None)) == EVERYTHING
    assert access_of(Call("Query", query, 200, None)).conflicts(access_of(Call("PutItem", waiter, 200, None)))
    assert not reads("P/STATE").conflicts(reads("P/STATE"))
