"""Races beyond two actors, by enumeration: two waiters, a finish, a stale event, a duplicated record.

Payload P failed its attempt 1 and runs attempt 2. Concurrently:

- W1, W2: process registers a waiter on P (two messages, two tokens);
- U: update-state settles attempt 2 SUCCEEDED;
- S: attempt 1's FAILED event arrives again, late (stale);
- D1, D2: the dispatcher receives W1's resolved stream record twice (a duplicated record). They
  are given the NewImage the stream would carry once W1's waiter has moved, and are not
  runnable before that row exists (the stream only carries what was written).

Every interleaving at AWS-call granularity is the product of 17 steps, about 10^10 orders, so the
explorer keeps one representative per class of equivalent orders (partial-order reduction):
two adjacent steps of different actors that touch different items, or only read a common one,
commute, and only the order with the alphabetically first actor first is explored. Each step's
footprint (the items it reads and writes) is taken from the call's own parameters, so the
reduction is exact, not a guess about the code.

The normal run takes a fixed, seeded sample of those representatives; `RELIABILITY_FULL=1`
enumerates them all (docs/reliability.md records the figures).
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from coordinator.dispatch import ResolvedWaiter, dispatch
from coordinator.identity import execution_name, token_digest, token_key
from coordinator.process import process_request
from coordinator.services import Services
from coordinator.settle import settle
from coordinator.states import State, WaiterState
from tests.reliability.conftest import Lab, World
from tests.support.crashes import PARAMS, CallLog, remember_params
from tests.support.factories import callback, request
from tests.support.interleavings import SchedulerStuck, Turnstile

PAYLOAD = "ingest/P"
STREAM_RECORD = "StreamRecord"  # a dispatcher's first step: its record arrives (no AWS call)
SAMPLE = 24
SEED = 20260105
FULL = os.environ.get("RELIABILITY_FULL") == "1"
TOKEN_W1 = "AQCEAAAAKgAAAAMAAAAAAAAAAW1" + "x" * 200
TOKEN_W2 = "AQCEAAAAKgAAAAMAAAAAAAAAAW2" + "x" * 200
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "SendTaskSuccess", "SendTaskFailure"})


@dataclass(frozen=True)
class Footprint:
    """The items one step reads and writes (`P/WAITER#*` reads every waiter of P)."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()

    def conflicts(self, other: Footprint) -> bool:
        return _overlap(self.writes, other.reads | other.writes) or _overlap(other.writes, self.reads)


def _overlap(mine: frozenset[str], theirs: frozenset[str]) -> bool:
    return any(_same(a, b) for a in mine for b in theirs)


def _same(a: str, b: str) -> bool:
    if a.endswith("*") or b.endswith("*"):
        return a.rstrip("*").startswith(b.rstrip("*")) or b.rstrip("*").startswith(a.rstrip("*"))
    return a == b


def footprint(operation: str, params: dict[str, Any]) -> Footprint:
    if "taskToken" in params:
        return Footprint(writes=frozenset({f"token:{token_digest(params['taskToken'])}"}))
    key = params.get("Key") or params.get("Item")
    if key is not None:
        item = frozenset({f"{key['payload_id']['S']}/{key['sk']['S']}"})
        return Footprint(writes=item) if operation in WRITES else Footprint(reads=item)
    if operation == "Query":
        payload = params["ExpressionAttributeValues"][":p"]["S"]
        return Footprint(reads=frozenset({f"{payload}/WAITER#*"}))
    # Anything else (StartExecution, DescribeExecution...) conflicts with everything.
    return Footprint(reads=frozenset({"*"}), writes=frozenset({"*"}))


@dataclass
class Step:
    actor: str
    operation: str
    footprint: Footprint


@dataclass
class Run:
    schedule: list[Step]
    alternatives: list[list[str]]  # per step: the other actors whose choice there is canonical
    redundant_from: int | None = None  # the prefix stopped being canonical here
    violations: list[str] = field(default_factory=list)


def canonical(previous: Step | None, actor: str, step: Footprint) -> bool:
    """False when `actor` commutes with the previous step and sorts before it: the swapped order
    is the one explored."""
    if previous is None or previous.actor <= actor:
        return True
    return previous.footprint.conflicts(step)


class Stage:
    """Shared between a run's actor threads and its scheduler."""

    def __init__(self) -> None:
        self.turnstile = Turnstile()
        self.footprints: dict[str, Footprint] = {}
        self.no_record = False  # W1's waiter never moved: no stream record will ever come

    def park(self, actor: str, operation: str, step: Footprint) -> None:
        self.footprints[actor] = step
        self.turnstile.checkpoint(actor, operation)


class Actors:
    """Per-actor clients, made once for all runs (client creation is the slow part)."""

    NAMES = ("D1", "D2", "S", "U", "W1", "W2")

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.stage = Stage()
        self.calls = CallLog()
        self.clients: dict[str, tuple[Any, Any]] = {}
        for name in self.NAMES:
            pair = (boto3.client("dynamodb"), boto3.client("stepfunctions"))
            for client in pair:
                client.meta.events.register("before-parameter-build.*.*", remember_params, unique_id="params")
                client.meta.events.register_first("before-call.*.*", self._hook(name), unique_id="turnstile")
                self.calls.attach(client)
            lab.tokens.attach(pair[1])
            self.clients[name] = pair

    def _hook(self, actor: str) -> Callable[..., None]:
        def before_call(model: Any, context: dict[str, Any], **_: Any) -> None:
            self.stage.park(actor, model.name, footprint(model.name, context.get(PARAMS, {})))

        return before_call

    def services(self, name: str, world: World) -> Services:
        dynamodb, stepfunctions = self.clients[name]
        return Services(
            settings=world.services.settings,
            dynamodb=dynamodb,
            stepfunctions=stepfunctions,
            sqs=self.lab.sqs,
            clock=world.clock,
        )


@dataclass
class Scene:
    world: World
    tokens: tuple[str, str]
    stale_arn: str
    running_arn: str


def set_scene(lab: Lab) -> Scene:
    """P: attempt 1 FAILED, attempt 2 claimed, started and PROCESSING."""
    world = lab.fresh()
    base = world.services
    process_request(base, request(id=PAYLOAD), request_id="m-producer")
    first = world.state(PAYLOAD).execution_arn
    settle(base, PAYLOAD, first, State.FAILED, error="Boom")
    process_request(base, request(id=PAYLOAD), request_id="m-rerun")
    second = world.state(PAYLOAD).execution_arn
    settle(base, PAYLOAD, second, State.PROCESSING)
    # Fixed tokens: their hashes order the waiters' rows, so a replayed prefix meets the same world.
    return Scene(world, (TOKEN_W1, TOKEN_W2), first, second)


def run_one(actors: Actors, lab: Lab, prefix: list[str], chooser: random.Random | None = None) -> Run:
    scene = set_scene(lab)
    world = scene.world
    actors.calls.reset()
    stage = actors.stage = Stage()
    first_sk = token_key(scene.tokens[0])

    def waiter(name: str, token: str) -> Callable[[], None]:
        def act() -> None:
            message = request(id=PAYLOAD, callback=callback(token))
            process_request(actors.services(name, world), message, request_id=f"m-{name}")

        return act

    def update_state() -> None:
        settle(actors.services("U", world), PAYLOAD, scene.running_arn, State.SUCCEEDED, output='{"n": 2}')

    def stale() -> None:
        settle(actors.services("S", world), PAYLOAD, scene.stale_arn, State.FAILED, error="Boom")

    def dispatcher(name: str) -> Callable[[], None]:
        def act() -> None:
            stage.park(name, STREAM_RECORD, Footprint(reads=frozenset({f"{PAYLOAD}/{first_sk}"})))
            if stage.no_record:
                return
            image = next(r for r in world.waiters() if r["sk"] == first_sk)
            resolved = ResolvedWaiter.from_image({k: v for k, v in image.items() if k != "notified_at"})
            if resolved is None:
                raise AssertionError(f"{name} got a record of a waiter still {image['waiter_state']}")
            dispatch(actors.services(name, world), resolved)

        return act

    bodies = {
        "D1": dispatcher("D1"),
        "D2": dispatcher("D2"),
        "S": stale,
        "U": update_state,
        "W1": waiter("W1", scene.tokens[0]),
        "W2": waiter("W2", scene.tokens[1]),
    }
    run = schedule(stage, bodies, prefix, chooser, gate=lambda: _moved(actors.calls, first_sk))
    run.violations = check(world, scene, actors.calls, lab)
    return run


def _moved(calls: CallLog, sk: str) -> bool:
    return any(
        c.status < 300
        and c.operation == "UpdateItem"
        and c.params.get("ConditionExpression") == "waiter_state = :waiting"
        and c.params["Key"]["sk"]["S"] == sk
        for c in calls.calls
    )


def schedule(
    stage: Stage,
    bodies: dict[str, Callable[[], None]],
    prefix: list[str],
    chooser: random.Random | None,
    gate: Callable[[], bool],
) -> Run:
    """Run the actors once: `prefix` first, then the first canonical runnable actor (or a random
    one with `chooser`). A dispatcher is runnable once its record exists (`gate`)."""
    turnstile = stage.turnstile
    errors: dict[str, BaseException] = {}
    names = sorted(bodies)

    def body(name: str) -> None:
        try:
            bodies[name]()
        except BaseException as error:  # noqa: BLE001 - carried to the main thread
            errors[name] = error
        finally:
            turnstile.finish(name)

    threads = [threading.Thread(target=body, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    run = Run([], [])
    while True:
        turnstile.wait_quiet(names)
        parked = dict(turnstile.parked)
        runnable = [a for a in sorted(parked) if parked[a] != STREAM_RECORD or gate()]
        if not runnable and parked:
            # Only dispatchers wait, for a record that cannot come any more: let them go empty.
            stage.no_record = True
            runnable = sorted(parked)
        if not runnable:
            break
        previous = run.schedule[-1] if run.schedule else None
        good = [a for a in runnable if canonical(previous, a, stage.footprints[a])]
        step = len(run.schedule)
        if step < len(prefix):
            choice = prefix[step]
            if choice not in good:
                raise SchedulerStuck(f"prefix wants {choice} at step {step}, canonical are {good}")
        elif good:
            choice = chooser.choice(good) if chooser else good[0]
        else:
            choice = runnable[0]
            if run.redundant_from is None:
                run.redundant_from = step
        if run.redundant_from is None:
            run.alternatives.append([a for a in good if a != choice])
        run.schedule.append(Step(choice, parked[choice], stage.footprints[choice]))
        turnstile.grant(choice)
    for thread in threads:
        thread.join(10)
    if errors:
        name, error = next(iter(errors.items()))
        raise AssertionError(f"actor {name} raised") from error
    return run


def check(world: World, scene: Scene, calls: CallLog, lab: Lab) -> list[str]:
    violations = []
    state = world.state(PAYLOAD)
    if (state.state, state.attempt, state.execution_arn) != (State.SUCCEEDED, 2, scene.running_arn):
        violations.append(f"P ended {state.state} at attempt {state.attempt}")
    if state.output != '{"n": 2}':
        violations.append(f"P carries output {state.output!r}")
    names = sorted(e["name"] for e in world.executions("ingest"))
    if names != sorted(execution_name(PAYLOAD, a) for a in (1, 2)):
        violations.append(f"executions {names}")
    moves: dict[str, int] = {}
    marks: dict[str, int] = {}
    for call in calls.calls:
        condition = call.params.get("ConditionExpression", "")
        if call.status < 300 and call.operation == "UpdateItem":
            sk = call.params["Key"]["sk"]["S"]
            if condition == "waiter_state = :waiting":
                moves[sk] = moves.get(sk, 0) + 1
            elif "attribute_not_exists(notified_at)" in condition:
                marks[sk] = marks.get(sk, 0) + 1
    rows = {row["sk"]: row for row in world.waiters()}
    for index, token in enumerate(scene.tokens, start=1):
        sk = token_key(token)
        row = rows.get(sk)
        if row is None or row["waiter_state"] != WaiterState.SUCCEEDED:
            violations.append(f"W{index} waiter ended {row and row['waiter_state']}")
        if moves.get(sk, 0) != 1:
            violations.append(f"W{index} waiter moved {moves.get(sk, 0)} times")
    first = scene.tokens[0]
    if lab.tokens.closes(first) != 1:
        violations.append(f"W1 token closed {lab.tokens.closes(first)} times")
    if marks.get(token_key(first), 0) != 1:
        violations.append(f"W1 outcome recorded {marks.get(token_key(first), 0)} times")
    outcome = rows.get(token_key(first), {}).get("outcome")
    # A duplicate's TaskTimedOut may be recorded first: it is recorded only if nothing was.
    if outcome not in ("resumed", "TaskTimedOut"):
        violations.append(f"W1 outcome {outcome}")
    return violations


def explore_all(actors: Actors, lab: Lab, progress: Callable[[list[Run], int], None]) -> list[Run]:
    """Depth first over canonical prefixes; `progress(runs, pending)` hears of every run."""
    runs: list[Run] = []
    pending: list[list[str]] = [[]]
    while pending:
        prefix = pending.pop()
        run = run_one(actors, lab, prefix)
        for step, others in enumerate(run.alternatives):
            if step >= len(prefix):
                pending.extend([*[s.actor for s in run.schedule[:step]], other] for other in others)
        runs.append(run)
        progress(runs, len(pending))
    return runs


@pytest.fixture
def actors(lab: Lab) -> Actors:
    return Actors(lab)


def test_a_sample_of_interleavings_of_six_actors_loses_nothing(lab: Lab, actors: Actors) -> None:
    chooser = random.Random(SEED)
    runs = [run_one(actors, lab, [], chooser) for _ in range(SAMPLE)]

    assert [(_order(run), run.violations) for run in runs if run.violations] == []
    assert len({tuple(_order(run)) for run in runs}) > SAMPLE // 2  # the sample is not one order


@pytest.mark.skipif(not FULL, reason="the full enumeration runs with RELIABILITY_FULL=1")
def test_every_interleaving_of_six_actors_loses_nothing(lab: Lab, actors: Actors) -> None:
    runs = explore_all(actors, lab, _report)

    explored = [run for run in runs if run.redundant_from is None]
    assert [(_order(run), run.violations) for run in runs if run.violations] == []
    assert len({tuple(_order(run)) for run in explored}) == len(explored)


def _report(runs: list[Run], pending: int) -> None:
    """With RELIABILITY_REPORT=<file>, the figures so far (a full run takes a while)."""
    path = os.environ.get("RELIABILITY_REPORT")
    if path and (len(runs) % 50 == 0 or not pending):
        figures = {
            "runs": len(runs),
            "canonical": sum(run.redundant_from is None for run in runs),
            "violating": sum(bool(run.violations) for run in runs),
            "pending_prefixes": pending,
        }
        with open(path, "w") as out:
            json.dump(figures, out)


def test_the_reduction_keeps_conflicting_orders_apart() -> None:
    put = footprint("PutItem", {"Item": {"payload_id": {"S": "P"}, "sk": {"S": "WAITER#a"}}})
    query = footprint("Query", {"ExpressionAttributeValues": {":p": {"S": "P"}}})
    claim = footprint("UpdateItem", {"Key": {"payload_id": {"S": "P"}, "sk": {"S": "STATE"}}})
    read = footprint("GetItem", {"Key": {"payload_id": {"S": "P"}, "sk": {"S": "STATE"}}})

    assert put.conflicts(query)
    assert query.conflicts(put)
    assert claim.conflicts(read)
    assert not read.conflicts(read)
    assert not put.conflicts(claim)
    assert not query.conflicts(claim)
    assert not canonical(Step("W2", "PutItem", put), "W1", claim)
    assert canonical(Step("W2", "PutItem", put), "U", query)


def _order(run: Run) -> list[str]:
    return [f"{step.actor}:{step.operation}" for step in run.schedule]
