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
from dataclasses import dataclass, field
from typing import Any

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
from coordinator.states import ACTIVE, FAILURE_OF, RETRYABLE, State, WaiterState
from coordinator.table import pending_shards
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
WORKFLOW_OF = {"P1": "ingest", "P2": "ingest", "X": "nowhere"}
PAYLOADS = st.sampled_from(sorted(WORKFLOW_OF))
FINAL_STATUSES = st.sampled_from(["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"])
# None: no crash; else a crash just before or after the call at that index (if reached).
CRASHES = st.none() | st.builds(
    lambda index, phase: CrashPoint(index, phase, "?"), st.integers(0, 7), st.sampled_from(list(Phase))
)
OUTPUT = '{"done": true}'
MAX_WAITERS = 12


@dataclass
class Attempt:
    number: int
    started: bool  # an execution exists (a workflow that cannot start never has one)
    recorded: State  # what the coordinator has recorded: CLAIMED (any active) or final
    fate: State | None = None  # how its execution really ended; None while it runs
    waiters: list[str] = field(default_factory=list)


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
    status: str


class ProtocolModel(RuleBasedStateMachine):
    lab: Lab  # set by the test before the machine runs

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

    @staticmethod
    def rerunnable(attempt: Attempt) -> bool:
        """A later message claims a new attempt without `replace`: the attempt failed, or could
        not start because its state machine was missing (a cause outside the message)."""
        return attempt.recorded in RETRYABLE or (attempt.recorded is State.INVALID and not attempt.started)

    def new_attempt(self, payload_id: str, message_id: str) -> Attempt:
        attempts = self.attempts.setdefault(payload_id, [])
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

    def status_event(self, payload_id: str, number: int, status: str) -> dict[str, Any]:
        arn = self.arn(payload_id, number)
        detail: dict[str, Any] = {}
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
        """The execution really ends: Step Functions' record says so (DescribeExecution)."""
        attempt.fate = State(status)
        account = self.lab.machine_prefix.split(":")[4]
        execution = stepfunctions_backends[account][REGION].describe_execution(
            self.arn(payload_id, attempt.number)
        )
        execution.status, execution.stop_date = status, utcnow()
        if status == "SUCCEEDED":
            execution.output = OUTPUT
        else:
            execution.error, execution.cause = "Boom", json.dumps({"status": status})

    def apply_final_event(self, payload_id: str, number: int) -> None:
        """A final event was delivered: it counts if it is the current attempt's, still open."""
        attempt = self.attempts[payload_id][number - 1]
        if attempt is self.last(payload_id) and attempt.recorded in ACTIVE and attempt.fate is not None:
            self.record(payload_id, attempt, attempt.fate)

    # -- process messages --------------------------------------------------------------------

    @rule(
        payload_id=PAYLOADS,
        with_waiter=st.booleans(),
        waiter_payload_id=st.none() | PAYLOADS,
        replace=st.booleans(),
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
        twice: bool,
        echo: bool,
        crash: CrashPoint | None,
    ) -> None:
        """A message for a payload, maybe with a waiter. `twice`: SQS delivers it again. `echo`:
        when it re-runs the payload, EventBridge delivers the previous attempt's final event
        once more right after (at least once delivery), while the new attempt runs."""
        attempts_before = len(self.attempts.get(payload_id, []))
        hook = None
        if with_waiter and len(self.waiters) < MAX_WAITERS:
            hook = callback(waiter_payload_id=waiter_payload_id) if waiter_payload_id else callback()
        message = body(WORKFLOW_OF[payload_id], id=payload_id, replace=replace)
        if hook is not None:
            message["callback"] = hook
        message_id = f"m-{next(self.messages)}"
        self.expect_submission(payload_id, hook, waiter_payload_id, replace, message_id)
        event = sqs_event(message, message_ids=[message_id])
        self.deliver(sqs_delivery(self.world, event), crash)
        if twice:  # the same message (same id) once more: it must change nothing
            self.deliver(sqs_delivery(self.world, sqs_event(message, message_ids=[message_id])), None)
        previous = self.attempts[payload_id][attempts_before - 1] if attempts_before else None
        rerun = previous is not None and self.last(payload_id) is not previous
        if echo and rerun and previous is not None and previous.fate is not None:
            self.eventbridge(self.status_event(payload_id, previous.number, str(previous.fate)), None)

    def expect_submission(
        self,
        payload_id: str,
        hook: dict[str, Any] | None,
        waiter_payload_id: str | None,
        replace: bool,
        message_id: str,
    ) -> None:
        """The model's answer to a message: the attempt it claims, if any, and its waiter's fate."""
        token = hook["token"] if hook is not None else None
        if token is not None:
            cycle = waiter_payload_id is not None and self.closes_a_cycle(waiter_payload_id, payload_id)
            self.waiters[token] = Waiter(payload_id, waiter_payload_id)
            if cycle:  # refused before any claim
                self.waiters[token].expected = WaiterState.CYCLE
                return
        last = self.last(payload_id)
        if last is None or (last.recorded not in ACTIVE and (self.rerunnable(last) or replace)):
            last = self.new_attempt(payload_id, message_id)
        if token is not None:
            last.waiters.append(token)
            if last.recorded not in ACTIVE:
                self.waiters[token].expected = WaiterState(last.recorded)

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
        if how == "later":
            self.delayed.append(Delayed(payload_id, attempt.number, status))
            return
        if how == "lost":
            return
        for _ in range(2 if how == "twice" else 1):
            self.eventbridge(self.status_event(payload_id, attempt.number, status), crash)
            self.apply_final_event(payload_id, attempt.number)
            crash = None

    @precondition(lambda self: bool(self.delayed))
    @rule(data=st.data(), crash=CRASHES)
    def delayed_event_arrives(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        late = self.delayed.pop(data.draw(st.integers(0, len(self.delayed) - 1), label="which"))
        self.eventbridge(self.status_event(late.payload_id, late.attempt, late.status), crash)
        self.apply_final_event(late.payload_id, late.attempt)

    @precondition(lambda self: any(a.started for attempts in self.attempts.values() for a in attempts))
    @rule(data=st.data(), crash=CRASHES)
    def running_event(self, data: st.DataObject, crash: CrashPoint | None) -> None:
        """RUNNING of any attempt: early, repeated, or long after the attempt ended."""
        started = [(p, a) for p, attempts in sorted(self.attempts.items()) for a in attempts if a.started]
        payload_id, attempt = data.draw(st.sampled_from(started), label="attempt")
        self.eventbridge(self.status_event(payload_id, attempt.number, "RUNNING"), crash)

    @precondition(
        lambda self: any(a.fate is not None for attempts in self.attempts.values() for a in attempts[:-1])
    )
    @rule(data=st.data())
    def stale_event(self, data: st.DataObject) -> None:
        """The final event of an older attempt, arriving again after a re-run."""
        older = [
            (p, a)
            for p, attempts in sorted(self.attempts.items())
            for a in attempts[:-1]
            if a.fate is not None
        ]
        payload_id, attempt = data.draw(st.sampled_from(older), label="attempt")
        assert attempt.fate is not None
        self.eventbridge(self.status_event(payload_id, attempt.number, str(attempt.fate)), None)

    # -- the dispatcher ----------------------------------------------------------------------

    @rule(twice=st.booleans(), crash=CRASHES)
    def stream_delivers(self, twice: bool, crash: CrashPoint | None) -> None:
        """The stream carries every waiter that left WAITING since its last delivery."""
        self.dispatch(twice, crash)

    def dispatch(self, twice: bool, crash: CrashPoint | None) -> None:
        moved = resolutions(self.world)
        self.world.delivered = len(self.lab.calls.calls)
        if not moved:
            return
        rows = {(r["payload_id"], r["sk"]): r for r in self.world.waiters()}
        images = [
            {k: v for k, v in rows[key].items() if k not in ("notified_at", "outcome")} for key in moved
        ]
        for _ in range(2 if twice else 1):
            self.deliver(stream_delivery(self.world, stream_event(*images)), crash)
            crash = None
        self.world.delivered = len(self.lab.calls.calls)

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

        self.deliver(invoke, crash)
        for payload_id, attempts in self.attempts.items():
            last = attempts[-1]
            if last.recorded in ACTIVE and last.fate is not None:
                self.record(payload_id, last, last.fate)

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
            recorded = "active" if row.state in ACTIVE else str(row.state)
            expected = "active" if last.recorded in ACTIVE else str(last.recorded)
            assert (row.attempt, recorded) == (last.number, expected), payload_id

    @invariant()
    def no_state_went_back(self) -> None:
        assert regressions(self.world.history) == []

    @invariant()
    def no_token_was_closed_twice(self) -> None:
        for token in [*self.waiters, *self.rejected_tokens]:
            assert self.lab.tokens.closes(token) <= 1

    def teardown(self) -> None:
        """Quiescence: everything that is still to happen happens; then the final promises."""
        for payload_id, attempt in self.running_attempts():
            self.end_execution(payload_id, attempt, "SUCCEEDED")
            self.eventbridge(self.status_event(payload_id, attempt.number, "SUCCEEDED"), None)
            self.apply_final_event(payload_id, attempt.number)
        while self.delayed:
            late = self.delayed.pop()
            self.eventbridge(self.status_event(late.payload_id, late.attempt, late.status), None)
            self.apply_final_event(late.payload_id, late.attempt)
        self.reconcile(None)
        self.dispatch(twice=False, crash=None)
        self.the_table_records_what_the_model_does()
        self.no_state_went_back()
        self.every_waiter_was_told_once_with_its_outcome()
        self.the_executions_are_the_started_attempts()
        self.nothing_is_pending()
        self.rejected_records_were_dead_lettered()

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
        left = [
            row
            for row in self.world.rows()
            if row.get("waiter_state") == WaiterState.WAITING or row.get("state") in {str(s) for s in ACTIVE}
        ]
        assert left == []
        table, now = self.world.services.table, self.world.clock()
        assert [row for shard in pending_shards() for row in table.pending(shard, now, 100)] == []

    def rejected_records_were_dead_lettered(self) -> None:
        parked = self.world.dead_letters()
        assert all("reason" in message.get("MessageAttributes", {}) for message in parked)
        assert {m["MessageAttributes"]["message_id"]["StringValue"] for m in parked} == self.dead_lettered


def test_random_histories_keep_every_promise_of_the_protocol(lab: Lab) -> None:
    ProtocolModel.lab = lab
    run_state_machine_as_test(
        ProtocolModel, settings=fuzz_settings(40, FUZZ_MODEL_EXAMPLES, stateful_step_count=30)
    )
