"""Never lost, under crashes: every handler dies just before and just after every AWS call it makes.

Each scenario puts one invocation of a real handler (process, update-state, dispatcher,
reconcile) in a world where something is pending. It runs once without a crash to record the
invocation's AWS calls, then once per crash point (before and after each of those calls) in a
fresh world, followed by what AWS does after a crashed invocation:

- SQS redelivers the batch (same message ids) after the visibility timeout;
- the DynamoDB stream retries the same batch of records;
- EventBridge (an async Lambda invocation) retries the same event;
- reconcile simply runs again on its next schedule, after the lease.

Then the world is drained the way time would drain it: a reconcile run past the lease, the
running executions finish (their SUCCEEDED status events arrive), and the dispatcher receives
one stream record per waiter that left WAITING. Afterwards these must hold:

1. every payload's execution was started at most once per attempt, and every attempt started
   (list_executions per state machine against the STATE row's attempt);
2. no STATE row ever went back (attempt, then CLAIMED < PROCESSING < final, a final state
   never changed within its attempt);
3. every waiter left WAITING exactly once in effect (successful conditional moves), its token
   was closed exactly once (Step Functions' side), and the dispatcher's outcome was recorded
   once, by the first invocation that lived to record it;
4. nothing is left WAITING, CLAIMED or PROCESSING; rejected records are in the DLQ with a
   reason and their waiter failed with DependencyInvalid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from coordinator.identity import execution_name, token_key
from coordinator.states import ACTIVE, FAILURE_OF, State, WaiterState
from coordinator.table import WAITER_PREFIX
from coordinator_tools.kit.events import body, callback, request, sqs_event, stream_event
from tests.reliability.conftest import Lab, World
from tests.support.crashes import Call, CrashPoint, LambdaCrash, Phase, crash_at, crash_points

MAX_REDELIVERIES = 5
RANK = {State.GATED: 0, State.CLAIMED: 1, State.PROCESSING: 2}
FINAL_RANK = 3
DONE_OUTPUT = '{"done": true}'  # what a running execution ends with when the drain finishes it


@dataclass
class Case:
    """One pending situation and the invocation under test."""

    invoke: Callable[[], bool]  # one delivery of the event; True when its source is done with it
    retry: Callable[[], None] = lambda: None  # what passes before the source retries
    rejected_tokens: list[str] = field(default_factory=list)  # tokens of records that can never succeed
    dead_letters: int = 0  # records that must end in the DLQ
    expect: dict[str, tuple[State, int]] = field(default_factory=dict)  # payload -> (final state, attempt)
    outputs: dict[str, str] = field(default_factory=dict)  # payload -> the output its final state must carry
    # Redelivery alone must repair a crash of this invocation; reconcile is only the safety net.
    self_healing: bool = True
    redrives: dict[str, int] = field(default_factory=dict)  # payload -> redrives of its execution


Setup = Callable[[World], Case]


# -- the invocations, as their event sources deliver them -----------------------------------


def sqs_delivery(world: World, event: dict[str, Any]) -> Callable[[], bool]:
    """SQS: the records not reported as failures are deleted; the others come back."""
    pending = {"event": event}

    def invoke() -> bool:
        response = world.process(pending["event"])
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        pending["event"] = {"Records": [r for r in pending["event"]["Records"] if r["messageId"] in failed]}
        return not failed

    return invoke


def stream_delivery(world: World, event: dict[str, Any]) -> Callable[[], bool]:
    """The stream: a failed record is retried with the rest of its batch after it."""
    pending = {"event": event}

    def invoke() -> bool:
        response = world.dispatcher(pending["event"])
        failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        if not failed:
            return True
        first = min(failed, key=int)
        pending["event"] = {
            "Records": [
                r for r in pending["event"]["Records"] if int(r["dynamodb"]["SequenceNumber"]) >= int(first)
            ]
        }
        return False

    return invoke


def eventbridge_delivery(world: World, event: dict[str, Any]) -> Callable[[], bool]:
    def invoke() -> bool:
        world.update_state(event)
        return True

    return invoke


def reconcile_schedule(world: World) -> tuple[Callable[[], bool], Callable[[], None]]:
    def invoke() -> bool:
        world.reconcile()
        return True

    def later() -> None:
        world.clock.advance(world.services.settings.lease_seconds + 1)

    return invoke, later


# -- setting a world up (never under a crash) -----------------------------------------------


def submit(world: World, message: dict[str, Any], message_id: str) -> None:
    response = world.process(sqs_event(message, message_ids=[message_id]))
    assert response == {"batchItemFailures": []}


def finish(world: World, payload_id: str, status: str, **detail: Any) -> None:
    world.update_state(world.status_of(payload_id, status, **detail))


def waiter_image(world: World, payload_id: str, token: str) -> dict[str, Any]:
    """The NewImage the stream carries for a waiter that just left WAITING."""
    [row] = [r for r in world.waiters() if r["payload_id"] == payload_id and r["sk"] == token_key(token)]
    return {k: v for k, v in row.items() if k not in ("notified_at", "outcome")}


# -- process ---------------------------------------------------------------------------------


def process_batch_of_new_payloads(world: World) -> Case:
    """A batch: a new payload with a waiter, one without, and an invalid record with a token."""
    hook, bad = callback(), callback()
    event = sqs_event(
        body(id="P", callback=hook),
        body(id="Q"),
        {"workflow": "ingest", "wrkflow": "typo", "callback": bad},
        message_ids=["m-p", "m-q", "m-bad"],
    )
    return Case(
        sqs_delivery(world, event),
        rejected_tokens=[bad["token"]],
        dead_letters=1,
        expect={"P": (State.SUCCEEDED, 1), "Q": (State.SUCCEEDED, 1)},
    )


def process_waiter_on_running_payload(world: World) -> Case:
    submit(world, body(id="P"), "m-producer")
    finish(world, "P", "RUNNING")
    event = sqs_event(body(id="P", callback=callback()), message_ids=["m-waiter"])
    return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)})


def process_waiter_on_succeeded_payload(world: World) -> Case:
    submit(world, body(id="P"), "m-producer")
    finish(world, "P", "SUCCEEDED", output='{"items": 3}')
    event = sqs_event(body(id="P", callback=callback()), message_ids=["m-waiter"])
    return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)})


def process_waiter_reruns_failed_payload(world: World) -> Case:
    submit(world, body(id="P"), "m-producer")
    finish(world, "P", "FAILED", error="Boom", cause="disk full")
    event = sqs_event(body(id="P", callback=callback()), message_ids=["m-rerun"])
    return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 2)})


def process_replace_of_succeeded_payload(world: World) -> Case:
    """A deliberate re-run: its redelivery must not start a third attempt."""
    submit(world, body(id="P"), "m-producer")
    finish(world, "P", "SUCCEEDED", output="{}")
    event = sqs_event(body(id="P", replace=True), message_ids=["m-replace"])
    return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 2)})


def process_unknown_workflow(world: World) -> Case:
    """StartExecution can never succeed: INVALID, waiter moved, record dead-lettered."""
    event = sqs_event(body("nowhere", id="X", callback=callback()), message_ids=["m-nowhere"])
    return Case(sqs_delivery(world, event), dead_letters=1, expect={"X": (State.INVALID, 1)})


def process_waiter_closing_a_cycle(world: World) -> Case:
    """Y waits on X already; X waiting on Y is refused at once (DependencyCycle)."""
    submit(world, body(id="X", callback=callback(waiter_payload_id="Y")), "m-y-waits-on-x")
    event = sqs_event(body(id="Y", callback=callback(waiter_payload_id="X")), message_ids=["m-x-waits-on-y"])
    return Case(sqs_delivery(world, event), expect={"X": (State.SUCCEEDED, 1)})


# -- update-state ----------------------------------------------------------------------------


def update_state_succeeded_with_two_waiters(world: World) -> Case:
    """The crash between finalize and the waiter moves: the repeated event still moves them."""
    submit(world, body(id="P"), "m-producer")
    finish(world, "P", "RUNNING")
    submit(world, body(id="P", callback=callback()), "m-waiter-a")
    submit(world, body(id="P", callback=callback()), "m-waiter-b")
    event = world.status_of("P", "SUCCEEDED", output='{"items": 3}')
    return Case(eventbridge_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)})


def update_state_five_waiters_three_moves_at_once(world: World) -> Case:
    """settle's moves on its pool, bounded below the page (3 threads, 5 moves): a crash
    before or after any of them, while others are in flight, is repaired by the retried event."""
    world.services.settings = world.services.settings.model_copy(update={"move_concurrency": 3})
    submit(world, body(id="P"), "m-producer")
    finish(world, "P", "RUNNING")
    for index in range(5):
        submit(world, body(id="P", callback=callback()), f"m-waiter-{index}")
    event = world.status_of("P", "SUCCEEDED", output='{"items": 5}')
    return Case(eventbridge_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)})


def update_state_failed_with_dropped_input(world: World) -> Case:
    """Input and output over EventBridge's limit: the input is read back with DescribeExecution."""
    submit(world, body(id="P", callback=callback()), "m-producer")
    event = world.status_of(
        "P",
        "FAILED",
        error="States.TaskFailed",
        cause="boom",
        inputDetails={"included": False},
        outputDetails={"included": False},
    )
    event["detail"]["input"] = None
    return Case(eventbridge_delivery(world, event), expect={"P": (State.FAILED, 1)})


def update_state_running(world: World) -> Case:
    submit(world, body(id="P", callback=callback()), "m-producer")
    event = world.status_of("P", "RUNNING")
    return Case(eventbridge_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)})


def update_state_stale_event_of_older_attempt(world: World) -> Case:
    """Attempt 1 FAILED, attempt 2 running with a waiter: attempt 1's late SUCCEEDED arrives."""
    submit(world, body(id="P"), "m-producer")
    stale = world.status_of("P", "SUCCEEDED", output='{"stale": true}')
    finish(world, "P", "FAILED", error="Boom")
    submit(world, body(id="P", callback=callback()), "m-rerun")
    assert world.state("P").attempt == 2
    return Case(
        eventbridge_delivery(world, stale), expect={"P": (State.SUCCEEDED, 2)}, outputs={"P": DONE_OUTPUT}
    )


# -- redrive (coordinator.redrive) -----------------------------------------------------------


def failed_and_redrivable(world: World, *, waiter: bool = True) -> str:
    """P ran and FAILED (a waiter was told); Step Functions may redrive it. Its ARN."""
    submit(world, body(id="P", callback=callback() if waiter else None), "m-producer")
    finish(world, "P", "FAILED", error="UpstreamDown", cause="not there yet")
    return world.redrivable("P")


def process_rerun_redrive_of_a_failed_payload(world: World) -> Case:
    """Claim for redrive, then RedriveExecution: a crash between them never redrives twice."""
    failed_and_redrivable(world)
    event = sqs_event(body(id="P", rerun="redrive", callback=callback()), message_ids=["m-redrive"])
    return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)}, redrives={"P": 1})


def process_waiter_during_an_operators_redrive(world: World) -> Case:
    """Redriven from the console, its RUNNING event not yet here: the waiter waits for that run."""
    world.lab.redrives.redrive(failed_and_redrivable(world))
    event = sqs_event(body(id="P", callback=callback()), message_ids=["m-waiter"])
    return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)}, redrives={"P": 1})


def update_state_running_of_a_redriven_run(world: World) -> Case:
    world.lab.redrives.redrive(failed_and_redrivable(world))
    event = world.status_of("P", "RUNNING")
    return Case(eventbridge_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)}, redrives={"P": 1})


def update_state_late_event_after_a_redrive(world: World) -> Case:
    """The failed run's FAILED event, duplicated, arrives while the redriven run goes on."""
    arn = failed_and_redrivable(world)
    late = world.status_of("P", "FAILED", error="UpstreamDown", cause="not there yet")
    world.lab.redrives.redrive(arn)
    finish(world, "P", "RUNNING")
    submit(world, body(id="P", callback=callback()), "m-waiter-during")
    return Case(eventbridge_delivery(world, late), expect={"P": (State.SUCCEEDED, 1)}, redrives={"P": 1})


def reconcile_redrive_claimed_never_sent(world: World) -> Case:
    """The process Lambda claimed the redrive and died; its message was lost."""
    failed_and_redrivable(world)
    world.services.table.claim_redrive(world.state("P"), world.clock(), request_id="m-lost")
    invoke, later = reconcile_schedule(world)
    later()
    return Case(
        invoke, retry=later, self_healing=False, expect={"P": (State.SUCCEEDED, 1)}, redrives={"P": 1}
    )


# -- dispatcher ------------------------------------------------------------------------------


def resolved_waiters(world: World, status: str, count: int, **detail: Any) -> list[dict[str, Any]]:
    tokens = [callback() for _ in range(count)]
    submit(world, body(id="P"), "m-producer")
    for index, hook in enumerate(tokens):
        submit(world, body(id="P", callback=hook), f"m-waiter-{index}")
    finish(world, "P", status, **detail)
    return [waiter_image(world, "P", hook["token"]) for hook in tokens]


def dispatcher_two_succeeded_waiters(world: World) -> Case:
    """The crash between SendTaskSuccess and mark_notified: the retry meets a closed token."""
    images = resolved_waiters(world, "SUCCEEDED", 2, output='{"items": 3}')
    world.delivered = len(world.lab.calls.calls)  # the stream records under test are these
    return Case(stream_delivery(world, stream_event(*images)), expect={"P": (State.SUCCEEDED, 1)})


def dispatcher_five_waiters_three_records_at_once(world: World) -> Case:
    """The dispatcher's records of one batch on 3 threads: a crash at any send or stamp."""
    world.services.settings = world.services.settings.model_copy(update={"dispatch_concurrency": 3})
    images = resolved_waiters(world, "SUCCEEDED", 5, output='{"items": 3}')
    world.delivered = len(world.lab.calls.calls)
    return Case(stream_delivery(world, stream_event(*images)), expect={"P": (State.SUCCEEDED, 1)})


def dispatcher_failed_waiter(world: World) -> Case:
    [image] = resolved_waiters(world, "FAILED", 1, error="States.TaskFailed", cause='{"why": "x"}')
    world.delivered = len(world.lab.calls.calls)
    return Case(stream_delivery(world, stream_event(image)), expect={"P": (State.FAILED, 1)})


def dispatcher_token_already_timed_out(world: World) -> Case:
    [image] = resolved_waiters(world, "SUCCEEDED", 1, output="{}")
    world.lab.tokens.time_out(image["task_token"])
    world.delivered = len(world.lab.calls.calls)
    return Case(stream_delivery(world, stream_event(image)), expect={"P": (State.SUCCEEDED, 1)})


# -- gates (coordinator.gate) ----------------------------------------------------------------


def gate_image(world: World, upstream: str, gated: str) -> dict[str, Any]:
    """The NewImage the stream carries for the gate row of `gated` on `upstream` that moved."""
    [row] = [r for r in world.waiters() if r["payload_id"] == upstream and r.get("gate_payload_id") == gated]
    return {k: v for k, v in row.items() if k not in ("notified_at", "outcome")}


def gated_on_two(world: World, *, waiter: bool = True) -> None:
    """G after U1 and U2, both running; G has a waiter of its own."""
    submit(world, body(id="U1"), "m-u1")
    submit(world, body(id="U2"), "m-u2")
    gate = body(id="G", after=[{"id": "U1"}, {"id": "U2"}], callback=callback() if waiter else None)
    submit(world, {k: v for k, v in gate.items() if v is not None}, "m-g")


def process_gated_payload_whose_upstreams_succeeded(world: World) -> Case:
    """One invocation arms the gate, moves its rows, counts both, opens it and starts G."""
    submit(world, body(id="U1"), "m-u1")
    submit(world, body(id="U2"), "m-u2")
    finish(world, "U1", "SUCCEEDED", output="{}")
    finish(world, "U2", "SUCCEEDED", output="{}")
    world.delivered = len(world.lab.calls.calls)
    event = sqs_event(
        body(id="G", after=[{"id": "U1"}, {"id": "U2"}], callback=callback()), message_ids=["m-g"]
    )
    return Case(sqs_delivery(world, event), expect={"G": (State.SUCCEEDED, 1), "U1": (State.SUCCEEDED, 1)})


def dispatcher_last_upstream_opens_the_gate(world: World) -> Case:
    """The crash between the count and the opening, and between the opening and the start."""
    gated_on_two(world)
    finish(world, "U1", "SUCCEEDED", output="{}")
    deliver_resolutions(world)
    finish(world, "U2", "SUCCEEDED", output="{}")
    image = gate_image(world, "U2", "G")
    world.delivered = len(world.lab.calls.calls)
    return Case(stream_delivery(world, stream_event(image)), expect={"G": (State.SUCCEEDED, 1)})


def dispatcher_two_upstreams_at_once(world: World) -> Case:
    """Both upstreams end before either is heard: one batch of both records opens it once."""
    gated_on_two(world)
    finish(world, "U1", "SUCCEEDED", output="{}")
    finish(world, "U2", "SUCCEEDED", output="{}")
    images = [gate_image(world, upstream, "G") for upstream in ("U1", "U2")]
    world.delivered = len(world.lab.calls.calls)
    return Case(stream_delivery(world, stream_event(*images)), expect={"G": (State.SUCCEEDED, 1)})


def dispatcher_failed_upstream_ends_the_gate(world: World) -> Case:
    """U1 fails: G ends FAILED DependencyFailed, no execution, its waiter failed once."""
    gated_on_two(world)
    finish(world, "U1", "FAILED", error="Boom", cause="disk full")
    image = gate_image(world, "U1", "G")
    world.delivered = len(world.lab.calls.calls)
    return Case(
        stream_delivery(world, stream_event(image)),
        expect={"G": (State.FAILED, 1), "U1": (State.FAILED, 1), "U2": (State.SUCCEEDED, 1)},
    )


# -- reconcile -------------------------------------------------------------------------------


def reconcile_backlog(world: World) -> Case:
    """Four payloads a crash or a lost event left pending, repaired in one run.

    A: claimed, never started (process died between claim and StartExecution, message lost).
    B: PROCESSING, its execution ended (aborted) and the status event was lost.
    C: SUCCEEDED, a waiter left WAITING (the move was lost).
    D: CLAIMED, running, the RUNNING event lost.
    Each has a waiter.
    """
    table, now = world.services.table, world.clock()
    a = request(id="A", callback=callback())
    assert a.callback is not None
    table.register_waiter("A", a.callback, now, retention_seconds=60)
    table.claim_payload(a, f"{world.lab.machine_prefix}ingest", now, request_id="m-lost")
    submit(world, body(id="B", callback=callback()), "m-b")
    finish(world, "B", "RUNNING")
    world.lab.look.stepfunctions.stop_execution(executionArn=world.state("B").execution_arn)
    submit(world, body(id="C"), "m-c")
    finish(world, "C", "SUCCEEDED", output="{}")
    late = request(id="C", callback=callback())
    assert late.callback is not None
    table.register_waiter("C", late.callback, now, retention_seconds=60)
    submit(world, body(id="D", callback=callback()), "m-d")
    invoke, later = reconcile_schedule(world)
    later()
    return Case(
        invoke,
        retry=later,
        self_healing=False,
        expect={
            "A": (State.SUCCEEDED, 1),
            "B": (State.ABORTED, 1),
            "C": (State.SUCCEEDED, 1),
            "D": (State.SUCCEEDED, 1),
        },
    )


SCENARIOS: dict[str, Setup] = {
    "process: batch of new payloads, one invalid": process_batch_of_new_payloads,
    "process: waiter on a running payload": process_waiter_on_running_payload,
    "process: waiter on a succeeded payload": process_waiter_on_succeeded_payload,
    "process: waiter re-runs a failed payload": process_waiter_reruns_failed_payload,
    "process: replace of a succeeded payload": process_replace_of_succeeded_payload,
    "process: unknown workflow": process_unknown_workflow,
    "process: waiter closing a cycle": process_waiter_closing_a_cycle,
    "update-state: succeeded with two waiters": update_state_succeeded_with_two_waiters,
    "update-state: failed, input and output dropped": update_state_failed_with_dropped_input,
    "update-state: five waiters, three moves at once": update_state_five_waiters_three_moves_at_once,
    "update-state: running": update_state_running,
    "update-state: stale event of an older attempt": update_state_stale_event_of_older_attempt,
    "process: rerun redrive of a failed payload": process_rerun_redrive_of_a_failed_payload,
    "process: waiter during an operator's redrive": process_waiter_during_an_operators_redrive,
    "update-state: running of a redriven run": update_state_running_of_a_redriven_run,
    "update-state: failed run's late event after a redrive": update_state_late_event_after_a_redrive,
    "reconcile: redrive claimed, never sent": reconcile_redrive_claimed_never_sent,
    "dispatcher: two succeeded waiters": dispatcher_two_succeeded_waiters,
    "dispatcher: five waiters, three records at once": dispatcher_five_waiters_three_records_at_once,
    "dispatcher: failed waiter": dispatcher_failed_waiter,
    "dispatcher: token already timed out": dispatcher_token_already_timed_out,
    "reconcile: backlog of four repairs": reconcile_backlog,
    "process: gated payload whose upstreams succeeded": process_gated_payload_whose_upstreams_succeeded,
    "dispatcher: last upstream opens the gate": dispatcher_last_upstream_opens_the_gate,
    "dispatcher: two upstreams of a gate at once": dispatcher_two_upstreams_at_once,
    "dispatcher: failed upstream ends the gate": dispatcher_failed_upstream_ends_the_gate,
}

# Calls each scenario's invocation makes when nothing crashes (its crash points are twice this).
# A change here means a path changed: look at the new sequence before updating the figure.
CALLS = {
    # + DescribeStateMachine: the world's first message for the workflow asks its type
    "process: batch of new payloads, one invalid": 8,
    "process: waiter on a running payload": 2,
    "process: waiter on a succeeded payload": 3,
    # + DescribeExecution: is the failed execution being redriven?
    "process: waiter re-runs a failed payload": 5,
    "process: replace of a succeeded payload": 3,
    "process: unknown workflow": 8,
    "process: waiter closing a cycle": 2,
    "update-state: succeeded with two waiters": 4,
    # finalize, query, five moves
    "update-state: five waiters, three moves at once": 7,
    "update-state: failed, input and output dropped": 4,
    "update-state: running": 1,
    "update-state: stale event of an older attempt": 1,
    # put waiter, claim refused, DescribeExecution, claim the redrive, RedriveExecution
    "process: rerun redrive of a failed payload": 5,
    # put waiter, claim refused, DescribeExecution (RUNNING, count 1), reopen to PROCESSING
    "process: waiter during an operator's redrive": 4,
    "update-state: running of a redriven run": 1,
    "update-state: failed run's late event after a redrive": 1,
    # 16 shard pages; DescribeExecution, GetItem, RedriveExecution
    "reconcile: redrive claimed, never sent": 19,
    "dispatcher: two succeeded waiters": 4,
    "dispatcher: five waiters, three records at once": 10,
    "dispatcher: failed waiter": 2,
    "dispatcher: token already timed out": 2,
    # + GetItem for B and D: the STATE row's redrive count (the index does not carry it)
    "reconcile: backlog of four repairs": 33,
    # put waiter, claim GATED; per upstream a cycle query and its gate row; BatchGetItem; per
    # upstream the move of its gate row and its count; open the gate, StartExecution
    "process: gated payload whose upstreams succeeded": 13,
    # count, open, StartExecution, mark notified
    "dispatcher: last upstream opens the gate": 4,
    # count, mark; count, open, StartExecution, mark
    "dispatcher: two upstreams of a gate at once": 6,
    # end the gate (the final write), the waiters' query, the move, retire U2's gate row (still
    # awaited: out of reconcile's queue), mark notified: no settle's finalize after end_gate (it
    # was refused: the row was final already)
    "dispatcher: failed upstream ends the gate": 5,
}


# -- one run: crash, redeliver, drain, check --------------------------------------------------


@dataclass
class Outcome:
    operations: list[str]
    crashed: bool
    violations: list[str]
    needed_reconcile: bool = False


def run(lab: Lab, setup: Setup, point: CrashPoint | None) -> Outcome:
    world = lab.fresh()
    case = setup(world)
    world.snapshot()
    with crash_at(lab.clients, point) as switch:
        try:
            done = case.invoke()
        except LambdaCrash:
            done = False
    world.snapshot()
    violations = []
    if point is not None and not switch.crashed:
        violations.append(f"{point} was never reached")
    for _ in range(MAX_REDELIVERIES):
        if done:
            break
        case.retry()
        done = case.invoke()
        world.snapshot()
    if not done:
        violations.append("redelivery never completed")
    left = stuck(world)
    if left and case.self_healing:
        violations.append(f"redelivery left {left} for reconcile")
    drain(world)
    violations.extend(check(world, case))
    return Outcome(switch.operations, switch.crashed, violations, bool(left))


def drain(world: World) -> bool:
    """What time does: reconcile after the lease (if anything is stuck), executions finish, the
    stream delivers each waiter that moved. Returns whether reconcile had to repair something."""
    needed = bool(stuck(world))
    if needed:
        world.clock.advance(world.services.settings.lease_seconds + 1)
        world.reconcile()
        world.snapshot()
    # A gate opened by a delivery starts an execution that then finishes in its turn.
    for _ in range(3):
        _finish_running(world)
        deliver_resolutions(world)
    return needed


def _finish_running(world: World) -> None:
    for payload_id, state in world.states().items():
        if state.state in ACTIVE and state.execution_arn.rsplit(":", 1)[1] in {
            e["name"] for e in world.executions(state.workflow)
        }:
            if state.execution_arn in world.lab.redrives.executions:
                world.lab.redrives.ended(
                    state.execution_arn,
                    world.execution_input(state.execution_arn),
                    "SUCCEEDED",
                    output=DONE_OUTPUT,
                )
            world.update_state(world.status_of(payload_id, "SUCCEEDED", output=DONE_OUTPUT))
    world.snapshot()


def stuck(world: World) -> list[str]:
    """What redelivery alone left for reconcile: a claim never started, a waiter on a final payload."""
    states = world.states()
    redrives = world.lab.redrives
    found = [
        payload_id
        for payload_id, state in states.items()
        if state.state in ACTIVE
        and state.state is not State.GATED
        and (
            state.execution_arn.rsplit(":", 1)[1] not in {e["name"] for e in world.executions(state.workflow)}
            or (state.is_redrive_claim and redrives.count_of(state.execution_arn) < state.redrive_count)
        )
    ]
    for row in world.waiters():
        payload = states.get(row["payload_id"])
        if row["waiter_state"] == WaiterState.WAITING and payload is not None and payload.state.is_final:
            found.append(f"{row['payload_id']}/{row['sk']}")
    return found


def resolutions(world: World) -> list[tuple[str, str]]:
    """Waiters that left WAITING, one per effective write (what the stream would carry)."""
    found = []
    for call in world.lab.calls.calls[world.delivered :]:
        key = _waiter_resolution(call)
        if key is not None:
            found.append(key)
    return found


def _waiter_resolution(call: Call) -> tuple[str, str] | None:
    if call.status >= 300:
        return None
    params = call.params
    if call.operation == "UpdateItem" and params.get("ConditionExpression") == "#waiter_state = :waiting":
        return params["Key"]["payload_id"]["S"], params["Key"]["sk"]["S"]
    item = params.get("Item", {})
    if (
        call.operation == "PutItem"
        and item.get("sk", {}).get("S", "").startswith(WAITER_PREFIX)
        and item.get("waiter_state", {}).get("S") != WaiterState.WAITING
    ):
        return item["payload_id"]["S"], item["sk"]["S"]
    return None


def deliver_resolutions(world: World) -> None:
    moved = resolutions(world)
    world.delivered = len(world.lab.calls.calls)
    rows = {(r["payload_id"], r["sk"]): r for r in world.waiters()}
    for key in moved:
        image = {k: v for k, v in rows[key].items() if k not in ("notified_at", "outcome")}
        deliver = stream_delivery(world, stream_event(image))
        for _ in range(MAX_REDELIVERIES):
            if deliver():
                break


def check(world: World, case: Case) -> list[str]:
    violations: list[str] = []
    states = world.states()
    calls = world.lab.calls.calls
    tokens = world.lab.tokens

    # 1. at most once per attempt, and every attempt started (unless it could never start)
    for payload_id, state in states.items():
        names = {e["name"] for e in world.executions(state.workflow)}
        ours = [a for a in range(1, state.attempt + 3) if execution_name(payload_id, a) in names]
        if any(a > state.attempt for a in ours):
            violations.append(f"{payload_id}: execution started for an attempt never claimed: {ours}")
        if state.never_started:
            if ours:
                violations.append(f"{payload_id}: its gate ended, yet executions of {ours}")
        elif state.state is not State.INVALID and ours != list(range(1, state.attempt + 1)):
            violations.append(f"{payload_id}: attempts {state.attempt} but executions of {ours}")
    # 1b. every redrive sent once, and the row's count is the execution's
    for payload_id, state in states.items():
        sent = world.lab.redrives.redrives_of(state.execution_arn)
        if sent != state.redrive_count or sent != case.redrives.get(payload_id, 0):
            violations.append(
                f"{payload_id}: redriven {sent} times, row count {state.redrive_count}, "
                f"expected {case.redrives.get(payload_id, 0)}"
            )
    for payload_id, (expected, attempt) in case.expect.items():
        got = states.get(payload_id)
        if got is None or (got.state, got.attempt) != (expected, attempt):
            violations.append(
                f"{payload_id}: ended {got and (str(got.state), got.attempt)}, expected {expected}"
            )

    for payload_id, output in case.outputs.items():
        if states[payload_id].output != output:
            violations.append(f"{payload_id}: output {states[payload_id].output!r} is not its attempt's")

    # 2. no STATE row ever went back
    violations.extend(regressions(world.history))

    # 3. and 4. every waiter resolved, told and recorded exactly once
    moves: dict[tuple[str, str], int] = {}
    for call in calls:
        key = _waiter_resolution(call)
        if key is not None:
            moves[key] = moves.get(key, 0) + 1
    for row in world.waiters():
        key = (row["payload_id"], row["sk"])
        where = f"waiter {row['payload_id']}/{row['sk'][7:15]}"
        if row["waiter_state"] == WaiterState.WAITING:
            violations.append(f"{where} left WAITING")
            continue
        if moves.get(key, 0) != 1:
            violations.append(f"{where} left WAITING {moves.get(key, 0)} times")
        violations.extend(f"{where}: {problem}" for problem in notification_problems(row, calls, tokens))
    for payload_id, state in states.items():
        if state.state in ACTIVE:
            violations.append(f"{payload_id} left {state.state}")

    # rejected records: waiter failed once with DependencyInvalid, body in the DLQ with a reason
    for token in case.rejected_tokens:
        sends = [s for s in tokens.sends if s.token == token]
        if tokens.closes(token) != 1 or sends[0].error != "DependencyInvalid":
            violations.append(f"rejected token closed {tokens.closes(token)} times: {sends}")
    parked = world.dead_letters()
    if case.dead_letters and not parked:
        violations.append("rejected record not in the DLQ")
    if any("reason" not in message.get("MessageAttributes", {}) for message in parked):
        violations.append("dead letter without a reason")
    if not case.dead_letters and parked:
        violations.append(f"unexpected dead letters: {[m['Body'][:80] for m in parked]}")
    return violations


def notification_problems(row: dict[str, Any], calls: list[Call], tokens: Any) -> list[str]:
    problems = []
    if "gate_payload_id" in row:  # a gate's callback is its count; the row is stamped once
        marks = [c for c in calls if _notification_of(c) == (row["payload_id"], row["sk"]) and c.status < 300]
        return [] if len(marks) == 1 else [f"gate outcome recorded {len(marks)} times"]
    token = row["task_token"]
    if tokens.closes(token) != 1:
        problems.append(f"token closed {tokens.closes(token)} times")
    accepted = [s for s in tokens.sends if s.token == token and s.answer == "ok"]
    expected_operation = (
        "SendTaskSuccess" if row["waiter_state"] == WaiterState.SUCCEEDED else "SendTaskFailure"
    )
    for send in accepted:
        if send.operation != expected_operation:
            problems.append(f"{send.operation} for a {row['waiter_state']} dependency")
        if send.operation == "SendTaskFailure" and send.error != FAILURE_OF[WaiterState(row["waiter_state"])]:
            problems.append(f"failed with {send.error}")
    marks = [c for c in calls if _notification_of(c) == (row["payload_id"], row["sk"])]
    recorded = [c for c in marks if c.status < 300]
    if len(recorded) != 1:
        problems.append(f"outcome recorded {len(recorded)} times")
        return problems
    outcome = recorded[0].params["ExpressionAttributeValues"][":outcome"]["S"]
    if row.get("outcome") != outcome:
        problems.append(f"outcome {row.get('outcome')} overwrote {outcome}")
    first = (
        {"SendTaskSuccess": "resumed", "SendTaskFailure": "failed"}[accepted[0].operation]
        if accepted
        else None
    )
    attempted = {c.params["ExpressionAttributeValues"][":outcome"]["S"] for c in marks}
    # The accepted send's outcome is recorded whenever its invocation lived to write it; a
    # retry's TaskTimedOut is recorded only when nothing was.
    if first is not None and first in attempted and outcome != first:
        problems.append(f"recorded {outcome} although {first} was written")
    if accepted and outcome not in (first, "TaskTimedOut"):
        problems.append(f"recorded {outcome} for an accepted {accepted[0].operation}")
    return problems


def _notification_of(call: Call) -> tuple[str, str] | None:
    if call.operation == "UpdateItem" and "attribute_not_exists(#notified_at)" in call.params.get(
        "ConditionExpression", ""
    ):
        return call.params["Key"]["payload_id"]["S"], call.params["Key"]["sk"]["S"]
    return None


def regressions(history: list[dict[str, tuple[int, int, str, str]]]) -> list[str]:
    found = []
    last: dict[str, tuple[int, int, str, str]] = {}
    for snapshot in history:
        for payload_id, now in snapshot.items():
            before = last.get(payload_id)
            if before is not None and _went_back(before, now):
                found.append(f"{payload_id} went from {before[:3]} back to {now[:3]}")
            last[payload_id] = now
        for payload_id in set(last) - set(snapshot):
            found.append(f"{payload_id} disappeared")
    return found


def _went_back(before: tuple[int, int, str, str], now: tuple[int, int, str, str]) -> bool:
    """Backwards: an earlier (attempt, redrive count), or within one run an earlier state, or a
    final state that changed. A redrive (a higher count, same attempt) may reopen a final state."""
    if now[:2] != before[:2]:
        return now[:2] < before[:2]
    rank_before = RANK.get(State(before[2]), FINAL_RANK)
    rank_now = RANK.get(State(now[2]), FINAL_RANK)
    return rank_now < rank_before or (rank_before == FINAL_RANK and now[2:] != before[2:])


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_crash_point_is_recovered_by_redelivery(lab: Lab, name: str) -> None:
    setup = SCENARIOS[name]
    baseline = run(lab, setup, None)
    assert baseline.violations == [], f"{name} fails without any crash: {baseline.violations}"
    assert len(baseline.operations) == CALLS[name], baseline.operations

    failures = {}
    for point in crash_points(baseline.operations):
        outcome = run(lab, setup, point)
        if outcome.violations:
            failures[str(point)] = outcome.violations

    assert failures == {}


def test_a_crash_between_claim_and_start_is_restarted_under_the_same_name(lab: Lab) -> None:
    def new_payload_with_waiter(world: World) -> Case:
        event = sqs_event(body(id="P", callback=callback()), message_ids=["m-p"])
        return Case(sqs_delivery(world, event), expect={"P": (State.SUCCEEDED, 1)})

    outcome = run(lab, new_payload_with_waiter, CrashPoint(1, Phase.AFTER, "UpdateItem"))

    assert outcome.violations == []
    assert not outcome.needed_reconcile  # the redelivery itself restarted it
    assert [e["name"] for e in current(lab).executions("ingest")] == [execution_name("P", 1)]


def test_a_crash_between_send_and_record_lets_the_retry_record_its_closed_token(lab: Lab) -> None:
    """SendTaskSuccess took effect and the Lambda died before mark_notified: the stream's retry
    meets a closed token and records TaskTimedOut, since no outcome was recorded."""
    outcome = run(lab, dispatcher_failed_waiter, CrashPoint(0, Phase.AFTER, "SendTaskFailure"))

    assert outcome.violations == []
    [row] = current(lab).waiters()
    assert row["outcome"] == "TaskTimedOut"
    assert [send.answer for send in lab.tokens.sends] == ["ok", "TaskTimedOut"]


def test_a_crash_after_the_record_keeps_the_first_outcome(lab: Lab) -> None:
    outcome = run(lab, dispatcher_failed_waiter, CrashPoint(1, Phase.AFTER, "UpdateItem"))

    assert outcome.violations == []
    [row] = current(lab).waiters()
    assert row["outcome"] == "failed"
    assert [send.answer for send in lab.tokens.sends] == ["ok", "TaskTimedOut"]


def test_a_crash_after_the_invalid_state_still_dead_letters_the_record(lab: Lab) -> None:
    """Found by this sweep (fixed in 841454c): the redelivery used to ack the record as
    already_done, and its body never reached the DLQ."""
    outcome = run(lab, process_unknown_workflow, CrashPoint(3, Phase.AFTER, "UpdateItem"))

    assert outcome.violations == []


def current(lab: Lab) -> World:
    assert lab.world is not None
    return lab.world
