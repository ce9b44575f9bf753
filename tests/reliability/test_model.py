"""A model-based test of the whole protocol: random histories against a reference model.

Hypothesis drives the real handlers (process, update-state, dispatcher, reconcile) through
random sequences of what the world can do to them:

- process messages: new payloads, duplicates, `replace`, re-runs of failed payloads, waiters,
  waiters that would close a cycle, a payload whose workflow does not exist, malformed records;
- status events: RUNNING (early, late, repeated), final events delivered at once, twice,
  later and out of order with others, or lost; late events of older attempts;
- dispatcher deliveries of the waiters that left WAITING, duplicated, and tokens that closed on
  their own (timed out) before the coordinator told them;
- a crash of the invocation just before or just after any of its AWS calls (the source then
  redelivers, as SQS, the stream and EventBridge do);
- reconcile runs (past the lease) and clock advances.

The model is what the README promises, written independently of the code: a payload's attempts
and what the coordinator has recorded of each, the true fate of each execution, and for every
waiter the outcome it must be told. It decides from what the coordinator *has recorded* (a lost
event leaves the payload running until reconcile reads the execution's end), as the protocol
does. After every step: the table's STATE rows are the model's, no row ever went back, no
token was closed twice. At quiescence (the executions finish, delayed events arrive, reconcile
runs, the stream delivers everything): every waiter was told exactly once with its payload's
outcome, the executions are exactly the started attempts, the rejected records are in the DLQ,
and nothing is pending.

`make test` runs a short fixed-seed sample; `make fuzz` a long random one (tests/support/fuzzing).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from moto.core.utils import utcnow
from moto.stepfunctions.models import stepfunctions_backends

from coordinator.identity import execution_arn, execution_name, token_key
from coordinator.states import ACTIVE, FAILURE_OF, REDRIVABLE, RETRYABLE, State, WaiterState
from coordinator.table import gate_key, pending_shards
from coordinator_tools.kit.events import body, callback, sqs_event, status_event, stream_event
from tests.conftest import REGION
from tests.reliability.conftest import Lab, World
from tests.reliability.test_crash_injection import (
    MAX_REDELIVERIES,
    regressions,
    resolutions,
    sqs_delivery,
    stream_delivery,
)
from tests.support.crashes import CrashPoint, LambdaCrash, Phase, crash_at
from tests.support.fuzzing import FUZZ_MODEL_EXAMPLES, fuzz_settings

# Few payloads, so that histories meet themselves: re-runs, late events of older attempts,
# waiters on each other. X's state machine is missing.
# G is gated: it starts once P1 and P2 have succeeded (`after`), holding no execution meanwhile.
WORKFLOW_OF = {"P1": "ingest", "P2": "ingest", "X": "nowhere", "G": "ingest"}
PAYLOADS = st.sampled_from(["P1", "P2", "X"])
GATED, UPSTREAMS = "G", ("P1", "P2")
FINAL_STATUSES = st.sampled_from(["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"])
# None: no crash; else a crash just before or after the call at that index (if reached).
CRASHES = st.none() | st.builds(
    lambda index, phase: CrashPoint(index, phase, "?"), st.integers(0, 7), st.sampled_from(list(Phase))
)
OUTPUT = '{"done": true}'
MAX_WAITERS = 12


@dataclass
class Gate:
    """A gated attempt's gate: how each upstream's gate row was moved (None while it waits),
    and which of those moves the gated row has acted on (heard)."""

    told: dict[str, State | None]
    heard: set[str] = field(default_factory=set)


@dataclass
class Attempt:
    number: int
    started: bool  # an execution exists (a workflow that cannot start never has one)
    recorded: State  # what the coordinator has recorded: CLAIMED (any active) or final
    waiters: list[str] = field(default_factory=list)
    runs: int = 0  # Step Functions' redrive count of its execution
    recorded_run: int = 0  # the run the coordinator's record is of
    ends: dict[int, State] = field(default_factory=dict)  # how each run really ended
    gate: Gate | None = None  # a gated attempt's

    @property
    def fate(self) -> State | None:
        """How its execution's current run really ended; None while it runs."""
        return self.ends.get(self.runs)

    def hears_end(self, run: int) -> bool:
        """Whether the record takes the end of `run`: the fence (execution ARN, redrive count)
        lets a run's end settle its own open record, or any record of an earlier run."""
        return run in self.ends and (
            run > self.recorded_run or (run == self.recorded_run and self.recorded in ACTIVE)
        )

    def redrivable(self) -> bool:
        """Step Functions would redrive it, and the coordinator has recorded how it ended."""
        return (
            self.started
            and self.fate in REDRIVABLE
            and self.recorded is self.fate
            and self.recorded_run == self.runs
        )


@dataclass
class Waiter:
    payload_id: str
    waiter_payload_id: str | None
    expected: WaiterState | None = None  # what it must be told; None while it waits
    timed_out: bool = False  # its token closed on its own before it was told


@dataclass
class Delayed:
    payload_id: str
    attempt: int
    run: int
    status: str


class ProtocolModel(RuleBasedStateMachine):
    lab: Lab  # set by the test before the machine runs
    paths: ClassVar[Counter[str]] = Counter()  # over every history of the run: see `saw`

    def __init__(self) -> None:
        super().__init__()
        self.world: World = self.lab.fresh()
        self.attempts: dict[str, list[Attempt]] = {}
        self.waiters: dict[str, Waiter] = {}
        self.rejected_tokens: list[str] = []
        self.dead_lettered: set[str] = set()  # message ids (a crash may park a record twice)
        self.delayed: list[Delayed] = []
        self.messages = itertools.count(1)
        self.world.snapshot()

    def saw(self, path: str) -> None:
        """Note that a history took one of the rarer paths (the test checks each was taken)."""
        self.paths[path] += 1

    # -- the model's own reading of the promises --------------------------------------------

    def last(self, payload_id: str) -> Attempt | None:
        attempts = self.attempts.get(payload_id)
        return attempts[-1] if attempts else None

    def waiting_on(self) -> dict[str, set[str]]:
        """payload -> the payloads it waits on now (waiters not yet moved, with a waiter id)."""
        edges: dict[str, set[str]] = {}
        for waiter in self.waiters.values():
            if waiter.expected is None and waiter.waiter_payload_id:
                edges.setdefault(waiter.waiter_payload_id, set()).add(waiter.payload_id)
        return edges

    def closes_a_cycle(self, waiter_payload_id: str, payload_id: str) -> bool:
        if waiter_payload_id == payload_id:
            return True
        edges, seen, frontier = self.waiting_on(), {payload_id}, [payload_id]
        while frontier:
            for upstream in edges.get(frontier.pop(), ()):
                if upstream == waiter_payload_id:
                    return True
                if upstream not in seen:
                    seen.add(upstream)
                    frontier.append(upstream)
        return False

    def record(self, payload_id: str, attempt: Attempt, state: State) -> None:
        """The coordinator records an attempt's final state: its waiters must hear it."""
        attempt.recorded = state
        for token in attempt.waiters:
            waiter = self.waiters[token]
            if waiter.expected is None:
                waiter.expected = WaiterState(state)
        for gated in self.attempts.get(GATED, []):
            if gated.gate is not None and gated.gate.told.get(payload_id, State.SUCCEEDED) is None:
                gated.gate.told[payload_id] = state  # settle's query moves the gate's row too

    def hear(self, gated: Attempt, upstream: str) -> None:
        """The gated row acts on an upstream's moved gate row (the dispatcher, arm, reconcile):
        a success is counted and the last one opens the gate; any other end ends it."""
        assert gated.gate is not None
        told = gated.gate.told[upstream]
        assert told is not None
        gated.gate.heard.add(upstream)
        if gated is not self.last(GATED) or gated.recorded is not State.GATED:
            return  # counting and ending are conditional on GATED at the attempt
        if told is not State.SUCCEEDED:
            self.saw("a failed upstream ended the gate")
            self.record(GATED, gated, State.FAILED)
        elif all(gated.gate.told[u] is State.SUCCEEDED and u in gated.gate.heard for u in UPSTREAMS):
            self.saw("the last upstream opened the gate")
            gated.recorded, gated.started = State.CLAIMED, True

    def hear_every_move(self) -> None:
        """Every gate row moved so far is heard (after a stream delivery, or reconcile)."""
        for gated in self.attempts.get(GATED, []):
            for upstream in self.unheard(gated):
                self.hear(gated, upstream)

    def arm(self, gated: Attempt) -> None:
        """process arms a new gated attempt: a gate row per upstream; one already ended is
        moved and heard at once."""
        told: dict[str, State | None] = {}
        for upstream in UPSTREAMS:
            last = self.last(upstream)
            told[upstream] = last.recorded if last is not None and last.recorded not in ACTIVE else None
        gated.gate = Gate(told)
        self.hear_every_move()

    @staticmethod
    def rerunnable(attempt: Attempt) -> bool:
        """A later message claims a new attempt without `replace`: the attempt failed, or could
        not start because its state machine was missing (a cause outside the message)."""
        return attempt.recorded in RETRYABLE or (attempt.recorded is State.INVALID and not attempt.started)

    def new_attempt(self, payload_id: str, message_id: str) -> Attempt:
        attempts = self.attempts.setdefault(payload_id, [])
        if payload_id == GATED:  # every attempt of a message with `after` waits at its gate
            attempt = Attempt(len(attempts) + 1, started=False, recorded=State.GATED)
            attempts.append(attempt)
            self.arm(attempt)
            return attempt
        startable = WORKFLOW_OF[payload_id] in self.world.workflows
        attempt = Attempt(len(attempts) + 1, started=startable, recorded=State.CLAIMED)
        attempts.append(attempt)
        if not startable:
            attempt.recorded = State.INVALID
            self.dead_lettered.add(message_id)
        return attempt

    # -- delivering, as each event source does ----------------------------------------------

    def deliver(self, invoke: Any, crash: CrashPoint | None) -> None:
        """One delivery under a possible crash, then the source's redeliveries until done."""
        with crash_at(self.lab.clients, crash):
            try:
                done = invoke()
            except LambdaCrash:
                done = False
        for _ in range(MAX_REDELIVERIES):
            if done:
                break
            self.world.clock.advance(1)
            try:
                done = invoke()
            except LambdaCrash:  # pragma: no cover - redeliveries are never crashed
                done = False
        assert done, "the source's redeliveries never completed"
        self.world.snapshot()

    def status_event(self, payload_id: str, number: int, status: str, run: int) -> dict[str, Any]:
        """The status change of a run of the attempt's execution (`redriveCount` = run)."""
        arn = self.arn(payload_id, number)
        detail: dict[str, Any] = {"redriveCount": run}
        if status == "SUCCEEDED":
            detail["output"] = OUTPUT
        elif status != "RUNNING":
            detail.update(error="Boom", cause=json.dumps({"status": status}))
        return status_event(arn, status, self.world.execution_input(arn), **detail)

    def arn(self, payload_id: str, number: int) -> str:
        machine = f"{self.lab.machine_prefix}{WORKFLOW_OF[payload_id]}"
        return execution_arn(machine, execution_name(payload_id, number))

    def eventbridge(self, event: dict[str, Any], crash: CrashPoint | None) -> None:
        def invoke() -> bool:
            self.world.update_state(event)
            return True

        self.deliver(invoke, crash)

    def end_execution(self, payload_id: str, attempt: Attempt, status: str) -> None:
        """The execution's run really ends: Step Functions' record says so (DescribeExecution,
        answered by moto, or by the lab's redrive stand-in once the execution may be redriven)."""
        attempt.ends[attempt.runs] = State(status)
        arn = self.arn(payload_id, attempt.number)
        account = self.lab.machine_prefix.split(":")[4]
        execution = stepfunctions_backends[account][REGION].describe_execution(arn)
        execution.status, execution.stop_date = status, utcnow()
        ended: dict[str, str] = {}
        if status == "SUCCEEDED":
            execution.output = ended["output"] = OUTPUT
        else:
            execution.error, execution.cause = ended["error"], ended["cause"] = (
                "Boom",
                json.dumps({"status": status}),
            )
        self.lab.redrives.ended(arn, self.world.execution_input(arn), status, **ended)

    def status_change(
        self, payload_id: str, number: int, status: str, run: int, crash: CrashPoint | None = None
    ) -> None:
        """EventBridge delivers a status change of a run; the model takes what the record takes."""
        self.eventbridge(self.status_event(payload_id, number, status, run), crash)
        if status == "RUNNING":
            self.apply_running_event(payload_id, number, run)
        else:
            self.apply_final_event(payload_id, number, run)

    def redrive_outside(
        self, payload_id: str, attempt: Attempt, *, heard: bool, crash: CrashPoint | None
    ) -> None:
        """Step Functions redrives the attempt's execution for someone else; `heard`: its RUNNING
        event arrives now."""
        assert self.lab.redrives.redrive(self.arn(payload_id, attempt.number))
        attempt.runs += 1
        if heard:
            self.status_change(payload_id, attempt.number, "RUNNING", attempt.runs, crash)

    def apply_final_event(self, payload_id: str, number: int, run: int) -> None:
        """A final event of a run was delivered: it counts if it is of the current attempt and
        gets past the fence."""
        attempt = self.attempts[payload_id][number - 1]
        if attempt is self.last(payload_id) and attempt.hears_end(run):
            if run > 0:
                self.saw("a redriven run's end was recorded")
            attempt.recorded_run = run
            self.record(payload_id, attempt, attempt.ends[run])

    def apply_running_event(self, payload_id: str, number: int, run: int) -> None:
        """RUNNING of a later run of the current attempt (a redrive) reopens its record."""
        attempt = self.attempts[payload_id][number - 1]
        if attempt is self.last(payload_id) and run > attempt.recorded_run:
            self.saw("a redriven run's RUNNING reopened the record")
            attempt.recorded, attempt.recorded_run = State.PROCESSING, run

    # -- process messages --------------------------------------------------------------------

    @rule(
        payload_id=PAYLOADS,
        with_waiter=st.booleans(),
        waiter_payload_id=st.none() | PAYLOADS,
        replace=st.booleans(),
        redrive=st.booleans(),
        twice=st.booleans(),
        echo=st.booleans(),
        crash=CRASHES,
    )
    def submit(
        self,
        payload_id: str,
        with_waiter: bool,
        waiter_payload_id: str | None,
        replace: bool,
        redrive: bool,
        twice: bool,
        echo: bool,
        crash: CrashPoint | None,
    ) -> None:
        """A message for a payload, maybe with a waiter, maybe `"rerun": "redrive"`. `twice`: SQS
        delivers it again. `echo`: when it re-runs the payload, EventBridge delivers the previous
        attempt's final event once more right after (at least once delivery), while the new
        attempt runs."""
        attempts_before = len(self.attempts.get(payload_id, []))
        runs_before = self.attempts[payload_id][-1].runs if attempts_before else 0
        hook = None
        if with_waiter and len(self.waiters) < MAX_WAITERS:
            hook = callback(waiter_payload_id=waiter_payload_id) if waiter_payload_id else callback()
        message = body(WORKFLOW_OF[payload_id], id=payload_id, replace=replace)
        if redrive:
            message["rerun"] = "redrive"
        if hook is not None:
            message["callback"] = hook
        message_id = f"m-{next(self.messages)}"
        self.expect_submission(payload_id, hook, waiter_payload_id, replace, redrive, message_id)
        event = sqs_event(message, message_ids=[message_id])
        self.deliver(sqs_delivery(self.world, event), crash)
        if twice:  # the same message (same id) once more: it must change nothing
            self.deliver(sqs_delivery(self.world, sqs_event(message, message_ids=[message_id])), None)
        previous = self.attempts[payload_id][attempts_before - 1] if attempts_before else None
        rerun = previous is not None and self.last(payload_id) is not previous
        if echo and rerun and previous is not None and previous.fate is not None:
            self.status_change(payload_id, previous.number, str(previous.fate), previous.runs)
        redriven = previous is not None and not rerun and previous.runs > runs_before
        if echo and redriven and previous is not None and runs_before in previous.ends:
            # The end of the run before the redrive, once more: stale behind the fence.
            self.status_change(payload_id, previous.number, str(previous.ends[runs_before]), runs_before)

    def expect_submission(
        self,
        payload_id: str,
        hook: dict[str, Any] | None,
        waiter_payload_id: str | None,
        replace: bool,
        redrive: bool,
        message_id: str,
    ) -> None:
        """The model's answer to a message: the attempt it claims (or the redrive of the last
        one), if any, and its waiter's fate."""
        token = hook["token"] if hook is not None else None
        if token is not None:
            cycle = waiter_payload_id is not None and self.closes_a_cycle(waiter_payload_id, payload_id)
            self.waiters[token] = Waiter(payload_id, waiter_payload_id)
            if cycle:  # refused before any claim
                self.waiters[token].expected = WaiterState.CYCLE
                return
        last = self.last(payload_id)
        if last is None:
            last = self.new_attempt(payload_id, message_id)
        elif last.recorded is State.GATED:
            self.hear_every_move()  # the message arms its gate again: idempotent, and it hears
        elif last.recorded not in ACTIVE and (self.rerunnable(last) or replace):
            # Before running it again, process reads its execution: a redrive the record has not
            # heard of is taken up first, and the message is answered by that run.
            followed = last.recorded in REDRIVABLE and last.started and last.runs > last.recorded_run
            if followed:
                self.saw("a message followed a redrive it had not heard of")
                last.recorded_run = last.runs
                if last.fate is None:
                    last.recorded = State.PROCESSING
                else:
                    self.record(payload_id, last, last.fate)
            if not followed or (last.recorded not in ACTIVE and (self.rerunnable(last) or replace)):
                if redrive and last.recorded in REDRIVABLE and last.started:
                    self.saw("a message redrove the execution")
                    last.runs += 1  # claimed, then RedriveExecution: the same execution, run + 1
                    last.recorded, last.recorded_run = State.CLAIMED, last.runs
                else:
                    last = self.new_attempt(payload_id, message_id)
        if token is not None:
            last.waiters.append(token)
            if last.recorded not in ACTIVE:
                self.waiters[token].expected = WaiterState(last.recorded)

    @rule(
        with_waiter=st.booleans(),
        replace=st.booleans(),
        redrive=st.booleans(),
        twice=st.booleans(),
        crash=CRASHES,
    )
    def submit_gated(
        self, with_waiter: bool, replace: bool, redrive: bool, twice: bool, crash: CrashPoint | None
    ) -> None:
        """G's message: `after` P1 and P2 (waiting for them, not submitting them)."""
        hook = callback() if with_waiter and len(self.waiters) < MAX_WAITERS else None
        message = body(WORKFLOW_OF[GATED], id=GATED, replace=replace, after=[{"id": u} for u in UPSTREAMS])
        if redrive:
            message["rerun"] = "redrive"
        if hook is not None:
            message["callback"] = hook
        message_id = f"m-{next(self.messages)}"
        self.expect_submission(GATED, hook, None, replace, redrive, message_id)
        self.deliver(sqs_delivery(self.world, sqs_event(message, message_ids=[message_id])), crash)
        if twice:
            self.deliver(sqs_delivery(self.world, sqs_event(message, message_ids=[message_id])), None)

    @rule(text=st.sampled_from(["{not json", '{"workflow": 3}', '{"workflow": "ingest", "wrkflow": 1}']))
    def malformed(self, text: str) -> None:
        """A record that can never succeed; its token is recovered when it can be."""
        hook = callback()
        raw = text if text.startswith("{not") else json.dumps({**json.loads(text), "callback": hook})
        if not text.startswith("{not"):
            self.rejected_tokens.append(hook["token"])
        message_id = f"m-{next(self.messages)}"
        self.dead_lettered.add(message_id)
        self.deliver(sqs_delivery(self.world, sqs_event(raw, message_ids=[message_id])), None)

    # -- status events -----------------------------------------------------------------------

    def running_attempts(self) -> list[tuple[str, Attempt]]:
        return [
            (payload_id, attempts[-1])
            for payload_id, attempts in sorted(self.attempts.items())
            if attempts[-1].started and attempts[-1].fate is None
        ]

    @precondition(lambda self: bool(self.running_attempts()))
    @rule(data=st.data(), status=FINAL_STATUSES, how=st.sampled_from(["now", "twice", "later", "lost"]))
    def execution_ends(self, data: st.DataObject, status: str, how: str) -> None:
        payload_id, attempt = data.draw(st.sampled_from(self.running_attempts()), label="execution")
        crash = data.draw(CRASHES, label="crash")
        self.end_execution(payload_id, attempt, status)
        run = attempt.runs
        if how == "later":
            self.delayed.append(Delayed(payload_id, attempt.number, run, status))
            return
        if how == "lost":
            return
        for _ in range(2 if how == "twice" else 1):
            self.status_change(payload_id, attempt.number, status, run, crash)
            crash = None

    @precondition(lambda self: bool(self.delayed))
    @rule(data=st.data(), crash=CRASHES)
    def delayed_event_arrives(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        late = self.delayed.pop(data.draw(st.integers(0, len(self.delayed) - 1), label="which"))
        self.status_change(late.payload_id, late.attempt, late.status, late.run, crash)

    @precondition(lambda self: any(a.started for attempts in self.attempts.values() for a in attempts))
    @rule(data=st.data(), crash=CRASHES)
    def running_event(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        """RUNNING of any run of any attempt: early, repeated, or long after the run ended; a
        redriven run's reopens the record."""
        started = [(p, a) for p, attempts in sorted(self.attempts.items()) for a in attempts if a.started]
        payload_id, attempt = data.draw(st.sampled_from(started), label="attempt")
        run = data.draw(st.integers(0, attempt.runs), label="run")
        self.status_change(payload_id, attempt.number, "RUNNING", run, crash)

    def ended_runs(self) -> list[tuple[str, Attempt, int]]:
        """Every run that ended and was heard of, but the current attempt's last one."""
        return [
            (p, a, run)
            for p, attempts in sorted(self.attempts.items())
            for a in attempts
            for run in sorted(a.ends)
            if a is not attempts[-1] or run < a.recorded_run
        ]

    @precondition(lambda self: bool(self.ended_runs()))
    @rule(data=st.data())
    def stale_event(self, data: st.DataObject) -> None:
        """The final event of an older attempt, or of a run before a redrive, arriving again."""
        payload_id, attempt, run = data.draw(st.sampled_from(self.ended_runs()), label="run")
        self.status_change(payload_id, attempt.number, str(attempt.ends[run]), run)

    def redrivable(self) -> list[tuple[str, Attempt]]:
        last = [(p, attempts[-1]) for p, attempts in sorted(self.attempts.items())]
        return [(p, attempt) for p, attempt in last if attempt.redrivable()]

    @precondition(lambda self: bool(self.redrivable()))
    @rule(data=st.data(), heard=st.booleans(), crash=CRASHES)
    def operator_redrives(self, data: st.DataObject, heard: bool, crash: CrashPoint | None) -> None:
        """Someone redrives a failed execution outside the coordinator (the console's button):
        the record must follow it, from its events, a later message or reconcile. `heard`: its
        RUNNING event arrives now (else later, from `running_event`, or never)."""
        payload_id, attempt = data.draw(st.sampled_from(self.redrivable()), label="execution")
        self.redrive_outside(payload_id, attempt, heard=heard, crash=crash)

    # -- the dispatcher ----------------------------------------------------------------------

    @rule(twice=st.booleans(), crash=CRASHES)
    def stream_delivers(self, twice: bool, crash: CrashPoint | None) -> None:
        """The stream carries every waiter that left WAITING since its last delivery."""
        self.dispatch(twice, crash)

    def dispatch(self, twice: bool, crash: CrashPoint | None) -> bool:
        """Deliver what moved since the last delivery; whether anything had."""
        moved = resolutions(self.world)
        self.world.delivered = len(self.lab.calls.calls)
        if not moved:
            return False
        rows = {(r["payload_id"], r["sk"]): r for r in self.world.waiters()}
        images = [
            {k: v for k, v in rows[key].items() if k not in ("notified_at", "outcome")} for key in moved
        ]
        for _ in range(2 if twice else 1):
            self.deliver(stream_delivery(self.world, stream_event(*images)), crash)
            crash = None
        # Not marked delivered: what the dispatcher moved itself (a gate it ended moves the
        # gated payload's waiters) is on the stream for the next delivery.
        self.hear_every_move()  # the dispatcher heard the gate rows among them
        return True

    @precondition(lambda self: any(w.expected is None and not w.timed_out for w in self.waiters.values()))
    @rule(data=st.data())
    def token_times_out(self, data: st.DataObject) -> None:
        """A waiting task's own timeout closes its token before the coordinator tells it."""
        open_tokens = sorted(t for t, w in self.waiters.items() if w.expected is None and not w.timed_out)
        token = data.draw(st.sampled_from(open_tokens), label="token")
        self.waiters[token].timed_out = True
        self.lab.tokens.time_out(token)

    # -- reconcile and time ------------------------------------------------------------------

    @rule(crash=CRASHES)
    def reconcile_runs(self, crash: CrashPoint | None) -> None:
        self.reconcile(crash)

    def reconcile(self, crash: CrashPoint | None) -> None:
        """A scheduled run past the lease: it reads the executions whose events were lost."""

        def invoke() -> bool:
            self.world.clock.advance(self.world.services.settings.lease_seconds + 1)
            self.world.reconcile()
            return True

        gated = self.last(GATED)
        told_before = self.unheard(gated)
        self.deliver(invoke, crash)
        self.saw("reconcile ran")
        for payload_id, attempts in self.attempts.items():
            last = attempts[-1]
            if last.recorded in ACTIVE and last.fate is not None:
                last.recorded_run = last.runs
                self.record(payload_id, last, last.fate)
        if gated is None or gated.recorded is not State.GATED:
            return
        # reconcile re-arms the GATED row it visits: it hears every gate row moved before it
        # ran; a row it moved itself in this run (an upstream's lost end) is heard now or by the
        # stream, as the order of its visits fell: the table says which.
        for upstream in told_before:
            self.hear(gated, upstream)
        row = self.world.states()[GATED]
        if gated.recorded is State.GATED and row.attempt == gated.number and row.state is not State.GATED:
            self.hear_every_move()

    @staticmethod
    def unheard(gated: Attempt | None) -> list[str]:
        if gated is None or gated.gate is None:
            return []
        gate = gated.gate
        return [u for u in UPSTREAMS if gate.told[u] is not None and u not in gate.heard]

    @rule(seconds=st.integers(1, 600))
    def time_passes(self, seconds: int) -> None:
        self.world.clock.advance(seconds)

    # -- what must hold after every step ----------------------------------------------------

    @invariant()
    def the_table_records_what_the_model_does(self) -> None:
        states = self.world.states()
        assert set(states) == set(self.attempts)
        for payload_id, attempts in self.attempts.items():
            row, last = states[payload_id], attempts[-1]
            recorded, expected = self.stage(row.state), self.stage(last.recorded)
            assert (row.attempt, recorded) == (last.number, expected), payload_id

    @staticmethod
    def stage(state: State) -> str:
        """What the model tells apart: gated, active (claimed or running), or which end."""
        return "gated" if state is State.GATED else "active" if state in ACTIVE else str(state)

    @invariant()
    def no_state_went_back(self) -> None:
        assert regressions(self.world.history) == []

    @invariant()
    def each_redrive_was_sent_once(self) -> None:
        """Step Functions redrove each execution exactly as often as the model says it was."""
        for payload_id, attempts in self.attempts.items():
            for attempt in attempts:
                arn = self.arn(payload_id, attempt.number)
                assert self.lab.redrives.redrives_of(arn) == attempt.runs, (payload_id, attempt.number)

    @invariant()
    def no_token_was_closed_twice(self) -> None:
        for token in [*self.waiters, *self.rejected_tokens]:
            assert self.lab.tokens.closes(token) <= 1

    def teardown(self) -> None:
        """Quiescence: everything that is still to happen happens; then the final promises."""
        # Until quiet: a gate that opens at the end starts an execution, which then ends too,
        # and a gate that ends in the dispatcher moves its own waiters for the next delivery.
        for _ in range(4):
            gated = self.last(GATED)
            if gated is not None and gated.recorded is State.GATED:
                for upstream in UPSTREAMS:  # an upstream it waits for is submitted at last
                    if upstream not in self.attempts:
                        self.submit(upstream, False, None, False, False, False, False, None)
            for payload_id, attempt in self.running_attempts():
                self.end_execution(payload_id, attempt, "SUCCEEDED")
                self.status_change(payload_id, attempt.number, "SUCCEEDED", attempt.runs)
            while self.delayed:
                late = self.delayed.pop()
                self.status_change(late.payload_id, late.attempt, late.status, late.run)
            self.reconcile(None)
            if not self.dispatch(twice=False, crash=None) and not self.running_attempts():
                break
        self.every_gate_row_was_moved_once_with_its_upstreams_end()
        self.the_table_records_what_the_model_does()
        self.no_state_went_back()
        self.every_waiter_was_told_once_with_its_outcome()
        self.the_executions_are_the_started_attempts()
        self.nothing_is_pending()
        self.rejected_records_were_dead_lettered()

    def every_gate_row_was_moved_once_with_its_upstreams_end(self) -> None:
        rows = {(row["payload_id"], row["sk"]): row for row in self.world.waiters()}
        for gated in self.attempts.get(GATED, []):
            assert gated.gate is not None
            for upstream, told in gated.gate.told.items():
                row = rows[(upstream, gate_key(self.arn(GATED, gated.number)))]
                if told is None:  # an upstream never submitted: its row, retired, awaits its TTL
                    assert gated.recorded is not State.GATED, (gated.number, upstream)
                    assert (row["waiter_state"], "pending_shard" in row) == (WaiterState.WAITING, False)
                    continue
                assert row["waiter_state"] == WaiterState(told), (gated.number, upstream, row)

    def every_waiter_was_told_once_with_its_outcome(self) -> None:
        rows = {row["sk"]: row for row in self.world.waiters()}
        tokens = self.lab.tokens
        for token, waiter in self.waiters.items():
            assert waiter.expected is not None, f"the model left a waiter of {waiter.payload_id} open"
            row = rows[token_key(token)]
            assert row["waiter_state"] == waiter.expected, (waiter, row["waiter_state"])
            assert tokens.closes(token) == 1, (waiter, tokens.closes(token))
            accepted = [s for s in tokens.sends if s.token == token and s.answer == "ok"]
            if waiter.timed_out:
                assert accepted == []
                continue
            [send] = accepted
            if waiter.expected is WaiterState.SUCCEEDED:
                assert send.operation == "SendTaskSuccess"
            else:
                assert (send.operation, send.error) == ("SendTaskFailure", FAILURE_OF[waiter.expected])
            told = "resumed" if waiter.expected is WaiterState.SUCCEEDED else "failed"
            # TaskTimedOut: the dispatcher died between its send and its record, and its retry
            # met the token it had closed.
            assert row.get("outcome") in (told, "TaskTimedOut"), (waiter, row.get("outcome"))
        for token in self.rejected_tokens:
            [send] = [s for s in tokens.sends if s.token == token]
            assert send.error == "DependencyInvalid"

    def the_executions_are_the_started_attempts(self) -> None:
        for workflow in set(self.world.workflows):
            names = sorted(e["name"] for e in self.world.executions(workflow))
            expected = sorted(
                execution_name(payload_id, attempt.number)
                for payload_id, attempts in self.attempts.items()
                if WORKFLOW_OF[payload_id] == workflow
                for attempt in attempts
                if attempt.started
            )
            assert names == expected

    def nothing_is_pending(self) -> None:
        def retired(row: dict[str, Any]) -> bool:
            """A gate row its ended gate took out of the queue (its upstream never ran): TTL's."""
            return "gate_payload_id" in row and "pending_shard" not in row

        left = [
            row
            for row in self.world.rows()
            if (row.get("waiter_state") == WaiterState.WAITING and not retired(row))
            or row.get("state") in {str(s) for s in ACTIVE}
        ]
        assert left == []
        table, now = self.world.services.table, self.world.clock()
        assert [row for shard in pending_shards() for row in table.pending(shard, now, 100)] == []

    def rejected_records_were_dead_lettered(self) -> None:
        parked = self.world.dead_letters()
        assert all("reason" in message.get("MessageAttributes", {}) for message in parked)
        assert {m["MessageAttributes"]["message_id"]["StringValue"] for m in parked} == self.dead_lettered


# The rarer paths, each taken by a named history below; the random ones log how often they took
# them (`-o log_cli=true --log-cli-level=INFO`).
PATHS = (
    "a message redrove the execution",
    "a message followed a redrive it had not heard of",
    "a redriven run's RUNNING reopened the record",
    "a redriven run's end was recorded",
    "the last upstream opened the gate",
    "a failed upstream ended the gate",
    "reconcile ran",
)


def test_random_histories_keep_every_promise_of_the_protocol(lab: Lab) -> None:
    ProtocolModel.lab = lab
    ProtocolModel.paths = Counter()
    run_state_machine_as_test(
        ProtocolModel, settings=fuzz_settings(40, FUZZ_MODEL_EXAMPLES, stateful_step_count=30)
    )
    # Which histories a run draws depends on more than this file (a full suite draws others than
    # this test alone), so the paths are logged, not asserted: the named histories below take
    # each one for certain.
    logging.getLogger(__name__).info("model paths taken: %s", dict(sorted(ProtocolModel.paths.items())))


# -- named histories: each rare path once, deterministically, under the same checks ----------


def checked(model: ProtocolModel) -> None:
    """What the state machine checks after every step."""
    model.the_table_records_what_the_model_does()
    model.no_state_went_back()
    model.each_redrive_was_sent_once()
    model.no_token_was_closed_twice()


def finish(model: ProtocolModel, payload_id: str, status: str, *, heard: bool = True) -> None:
    """The payload's current run ends; its final event is delivered (or lost)."""
    attempt = model.last(payload_id)
    assert attempt is not None
    assert attempt.fate is None
    model.end_execution(payload_id, attempt, status)
    if heard:
        model.status_change(payload_id, attempt.number, status, attempt.runs)
    checked(model)


def message(model: ProtocolModel, payload_id: str, *, redrive: bool = False, echo: bool = False) -> None:
    model.submit(payload_id, True, None, False, redrive, False, echo, None)
    checked(model)


def gated_message(model: ProtocolModel, *, redrive: bool = False) -> None:
    model.submit_gated(True, False, redrive, False, None)
    checked(model)


def stream(model: ProtocolModel) -> None:
    model.dispatch(twice=True, crash=None)
    checked(model)


def operator_redrive(model: ProtocolModel, payload_id: str, *, heard: bool) -> None:
    attempt = model.last(payload_id)
    assert attempt is not None
    assert attempt.redrivable()
    model.redrive_outside(payload_id, attempt, heard=heard, crash=None)
    checked(model)


def redrive_by_message(model: ProtocolModel) -> None:
    """Failed; a message redrives it (the failed run's end arrives again); the run succeeds."""
    message(model, "P1")
    finish(model, "P1", "FAILED")
    message(model, "P1", redrive=True, echo=True)
    finish(model, "P1", "SUCCEEDED")


def operator_redrive_heard(model: ProtocolModel) -> None:
    """The console's redrive reopens the record; the waiter told of the failure stays told,
    one registered during the redriven run hears its end."""
    message(model, "P1")
    finish(model, "P1", "TIMED_OUT")
    operator_redrive(model, "P1", heard=True)
    message(model, "P1")
    finish(model, "P1", "SUCCEEDED")


def operator_redrive_unheard_then_a_message(model: ProtocolModel) -> None:
    """Its events lost, the redrive is found by the next message, which waits for its run."""
    message(model, "P1")
    finish(model, "P1", "FAILED")
    operator_redrive(model, "P1", heard=False)
    message(model, "P1")
    finish(model, "P1", "FAILED", heard=False)


def operator_redrive_ended_unheard_then_a_message(model: ProtocolModel) -> None:
    """The redriven run succeeded with every event lost: the next message takes its end."""
    message(model, "P2")
    finish(model, "P2", "ABORTED")
    operator_redrive(model, "P2", heard=False)
    finish(model, "P2", "SUCCEEDED", heard=False)
    message(model, "P2")


def gate_opens_on_its_last_upstream(model: ProtocolModel) -> None:
    """G waits for P1 and P2, absent at first; it starts once, when the second succeeds."""
    gated_message(model)
    for upstream in UPSTREAMS:
        message(model, upstream)
        finish(model, upstream, "SUCCEEDED")
        stream(model)
    finish(model, GATED, "SUCCEEDED")


def gate_ended_by_a_failed_upstream_then_rearmed(model: ProtocolModel) -> None:
    """P1 fails: G ends without running. P1 is re-run and succeeds, G's message comes again:
    attempt 2 opens at once (P2 succeeded meanwhile) and runs."""
    message(model, "P2")
    finish(model, "P2", "SUCCEEDED")
    gated_message(model)
    message(model, "P1")
    finish(model, "P1", "FAILED")
    stream(model)
    message(model, "P1")
    finish(model, "P1", "SUCCEEDED")
    gated_message(model, redrive=True)


@pytest.mark.parametrize(
    "history",
    [
        gate_opens_on_its_last_upstream,
        gate_ended_by_a_failed_upstream_then_rearmed,
        redrive_by_message,
        operator_redrive_heard,
        operator_redrive_unheard_then_a_message,
        operator_redrive_ended_unheard_then_a_message,
    ],
)
def test_named_histories_keep_every_promise_of_the_protocol(
    lab: Lab, history: Callable[[ProtocolModel], None]
) -> None:
    ProtocolModel.lab = lab
    ProtocolModel.paths = Counter()
    model = ProtocolModel()
    history(model)
    model.teardown()
    assert any(path in ProtocolModel.paths for path in PATHS[:6]), dict(ProtocolModel.paths)
