"""Fuzzed input through the real handlers: whatever arrives, nothing escapes and nothing is silent.

- process (SQS batches): native and cirrus messages, valid and broken (malformed JSON, wrong
  types, unknown fields, huge bodies, any unicode SQS can carry). A batch response always
  comes back; good records start their execution whatever their neighbours are; every record
  is either accepted (its payload has a STATE row) or dead-lettered with a `reason` attribute
  and a log line naming its message id, and its waiter, when a token can be recovered, is
  failed with DependencyInvalid.
- dispatcher (stream records): INSERT/MODIFY/REMOVE, missing images, any waiter state, notified
  or not, odd causes and outputs. A batch response always comes back; the good records are
  dispatched and recorded whatever else is in the batch.
- update-state (EventBridge events): every status (known or not), inputs without the
  coordinator key, dropped inputs and outputs, stale and unknown executions, fields missing.
  It applies the change, or ignores it with a log line; it raises a validation error only for
  an event that is not a status change at all, and never moves a final state.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from pydantic import ValidationError

from coordinator.errors import InvalidMessage
from coordinator.identity import execution_name
from coordinator.messages import parse_process_message
from coordinator.observability import logger
from coordinator.states import State, WaiterState
from coordinator_tools.kit.events import body, callback, sqs_event, status_event, stream_event
from tests.reliability.conftest import Lab, World
from tests.support.fuzzing import fuzz_settings

MAX_BYTES = 262_144
FUZZ = fuzz_settings(short_run=40)
_ids = itertools.count(1)

# Everything SQS accepts in a body: #x9 #xA #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF.
sqs_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("\t\n\r"),
        st.characters(min_codepoint=0x20, exclude_categories=("Cs",)).filter(
            lambda c: c not in "\ufffe\uffff"
        ),
    ),
    max_size=40,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | sqs_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(sqs_text, inner, max_size=3),
    max_leaves=8,
)
workflows = st.sampled_from(["ingest", "nowhere", "bad name!", "", "ingest" * 11])
tokens = st.one_of(st.just(""), sqs_text, st.builds(lambda: callback()["token"]))
callbacks = st.fixed_dictionaries(
    {"token": tokens},
    optional={
        "timeout_seconds": st.integers(-5, 40_000_000) | sqs_text,
        "waiter": sqs_text,
        "waiter_payload_id": sqs_text,
        "unknown": json_values,
    },
)
native = st.fixed_dictionaries(
    {"workflow": workflows | json_values},
    optional={
        "input": st.dictionaries(sqs_text, json_values, max_size=3) | json_values,
        "id": sqs_text | st.integers() | st.text(min_size=1025, max_size=1100, alphabet="ab"),
        "scheduleTime": st.sampled_from(["2026-01-05T12:00:00Z", "2026-01-05T12:00:00", "yesterday"]),
        "replace": st.booleans() | sqs_text,
        "callback": callbacks | json_values,
        "wrkflow": json_values,
    },
)
cirrus = st.fixed_dictionaries(
    {
        "type": st.just("FeatureCollection"),
        "process": st.lists(
            st.fixed_dictionaries({"workflow": workflows}, optional={"replace": st.booleans()}), max_size=2
        ),
    },
    optional={
        "id": sqs_text,
        "features": st.lists(
            st.fixed_dictionaries({"id": sqs_text}, optional={"collection": sqs_text}), max_size=3
        ),
        "callback": callbacks,
    },
)
huge = st.builds(
    lambda extra, hook: {**body(id=f"huge-{next(_ids)}", input={"blob": "x" * extra}), **hook},
    st.integers(MAX_BYTES - 200, MAX_BYTES + 200),
    st.just({}) | st.builds(lambda: {"callback": callback()}),
)
bodies = st.one_of(
    native.map(json.dumps),
    cirrus.map(json.dumps),
    json_values.map(json.dumps),
    sqs_text,
    native.map(lambda message: json.dumps(message)[:-1]),  # truncated
    huge.map(json.dumps),
)


class Captured(logging.Handler):
    """The coordinator's log records of one example (Powertools keeps the extra keys on them)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [str(record.msg) for record in self.records]

    def about(self, key: str, value: str) -> list[str]:
        return [str(record.msg) for record in self.records if getattr(record, key, None) == value]


@pytest.fixture
def logs() -> Iterator[Captured]:
    handler = Captured()
    stdlib = logger._logger
    stdlib.addHandler(handler)
    yield handler
    stdlib.removeHandler(handler)


def _token_of(text: str) -> str | None:
    """The task token a human would read in the body (the oracle for 'its waiter is failed')."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    hook = raw.get("callback") if isinstance(raw, dict) else None
    token = hook.get("token") if isinstance(hook, dict) else None
    return token if isinstance(token, str) and token else None


def _accepted_payload(text: str) -> str | None:
    try:
        return parse_process_message(text, max_bytes=MAX_BYTES).payload_id
    except InvalidMessage:
        return None


# -- process -----------------------------------------------------------------------------------


@FUZZ
@given(fuzzed=st.lists(bodies, min_size=1, max_size=4), good_at=st.integers(0, 4))
def test_process_batches_answer_and_account_for_every_record(
    lab: Lab, logs: Captured, fuzzed: list[str], good_at: int
) -> None:
    world = lab.fresh()
    logs.records.clear()
    good_id = f"good-{next(_ids)}"
    texts = list(fuzzed)
    texts.insert(min(good_at, len(texts)), json.dumps(body(id=good_id, callback=callback())))
    ids = [f"m-{index}" for index in range(len(texts))]

    response = world.process(sqs_event(*texts, message_ids=ids))

    assert response == {"batchItemFailures": []}
    started = {e["name"] for e in world.executions("ingest")}
    assert execution_name(good_id, 1) in started
    parked = {m["MessageAttributes"]["message_id"]["StringValue"]: m for m in world.dead_letters()}
    states = world.states()
    failed_tokens = {s.token for s in lab.tokens.sends if s.error == "DependencyInvalid"}
    for message_id, text in zip(ids, texts, strict=True):
        payload_id = _accepted_payload(text)
        event(f"process: {'dead-lettered' if message_id in parked else 'accepted'}")
        if message_id in parked:
            assert parked[message_id]["MessageAttributes"]["reason"]["StringValue"]
            assert "invalid message dead-lettered" in logs.about("message_id", message_id)
            if payload_id is None and _token_of(text) is not None:
                assert _token_of(text) in failed_tokens
            if payload_id is not None:  # valid, but its workflow can never start
                assert states[payload_id].state is State.INVALID
        else:
            assert payload_id is not None, f"{message_id} neither accepted nor dead-lettered"
            assert payload_id in states


# -- dispatcher --------------------------------------------------------------------------------

event_names = st.sampled_from(["INSERT", "MODIFY", "REMOVE"])
waiter_states = st.sampled_from([*(str(s) for s in WaiterState), "BOGUS"])
odd_images = st.fixed_dictionaries(
    {"payload_id": sqs_text.filter(bool), "sk": st.sampled_from(["STATE", "WAITER#x", "WAITER#y", "OTHER"])},
    optional={
        "task_token": tokens,
        "waiter_state": waiter_states,
        "notified_at": st.just("2026-01-05T12:00:00+00:00"),
        "already_done": st.booleans(),
        "dependency_output": sqs_text | json_values.map(json.dumps),
        "dependency_output_ref": sqs_text,
        "dependency_error": sqs_text,
        "dependency_cause": sqs_text | json_values.map(json.dumps),
        "dependency_execution_arn": sqs_text,
    },
)


def good_waiters(world: World, count: int, state: str) -> list[dict[str, Any]]:
    """Waiters registered by process and moved by update-state: what the stream really carries."""
    payload_id = f"p-{next(_ids)}"
    hooks = [callback() for _ in range(count)]
    world.process(sqs_event(body(id=payload_id), message_ids=["m-producer"]))
    for index, hook in enumerate(hooks):
        world.process(sqs_event(body(id=payload_id, callback=hook), message_ids=[f"m-{index}"]))
    world.update_state(world.status_of(payload_id, state, output='{"n": 1}', error="E", cause="c"))
    sks = {r["sk"]: r for r in world.waiters() if r["payload_id"] == payload_id}
    return list(sks.values())


@FUZZ
@given(
    odd=st.lists(
        st.tuples(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]), odd_images | st.none()), max_size=4
    ),
    good=st.integers(1, 2),
    state=st.sampled_from(["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"]),
    good_at=st.integers(0, 4),
)
def test_dispatcher_batches_answer_and_good_records_are_dispatched(
    lab: Lab, odd: list[tuple[str, dict[str, Any] | None]], good: int, state: str, good_at: int
) -> None:
    world = lab.fresh()
    rows = good_waiters(world, good, state)
    records = []
    for event_name, image in odd:
        record = stream_event(image or {"payload_id": "x", "sk": "WAITER#x"}, event_name=event_name)[
            "Records"
        ][0]
        if image is None:
            record["dynamodb"].pop("NewImage", None)
            record["dynamodb"].pop("OldImage", None)
        records.append(record)
    for row in rows:
        records.insert(min(good_at, len(records)), stream_event(row)["Records"][0])
    for sequence, record in enumerate(records, start=1):
        record["dynamodb"]["SequenceNumber"] = str(sequence)

    response = world.dispatcher({"Records": records})

    assert set(response) == {"batchItemFailures"}
    event(f"dispatcher: {len(response['batchItemFailures'])} failed records")
    after = {r["sk"]: r for r in world.waiters()}
    for row in rows:
        assert after[row["sk"]]["outcome"] == ("resumed" if state == "SUCCEEDED" else "failed")
        assert lab.tokens.closes(row["task_token"]) == 1


# -- update-state ------------------------------------------------------------------------------

statuses = st.sampled_from(
    ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE", "WEIRD"]
)
# Weighted towards events that apply, so every branch is reached within the examples.
inputs = st.sampled_from(["own", "own", "own", "none_dropped", "no_key", "not_json", "wrong_type", "null"])
executions = st.sampled_from(["current", "current", "current", "older", "foreign", "unknown_payload"])
removals = st.just(set()) | st.sets(
    st.sampled_from(["executionArn", "stateMachineArn", "status", "detail"]), max_size=1
)


@FUZZ
@given(
    status=statuses,
    given_input=inputs,
    execution=executions,
    output=st.none() | sqs_text | st.just("x" * 40_000),
    output_dropped=st.booleans(),
    removed=removals,
)
def test_update_state_applies_or_explains_and_never_moves_a_final_state(
    lab: Lab,
    logs: Captured,
    status: str,
    given_input: str,
    execution: str,
    output: str | None,
    output_dropped: bool,
    removed: set[str],
) -> None:
    world = lab.fresh()
    logs.records.clear()
    payload_id = f"p-{next(_ids)}"
    world.process(sqs_event(body(id=payload_id, callback=callback()), message_ids=["m-1"]))
    older = world.state(payload_id).execution_arn
    world.update_state(world.status_of(payload_id, "FAILED", error="Boom"))
    world.process(sqs_event(body(id=payload_id), message_ids=["m-2"]))
    current = world.state(payload_id).execution_arn
    foreign = lab.stepfunctions.start_execution(
        stateMachineArn=f"{lab.machine_prefix}ingest", name=f"foreign-{next(_ids)}", input='{"a": 1}'
    )["executionArn"]
    if execution == "unknown_payload":
        ghost = json.loads(world.execution_input(current))
        ghost["coordinator"]["payload_id"] = f"ghost-{next(_ids)}"
        arn, execution_input = current, json.dumps(ghost)
    else:
        arn = {"current": current, "older": older, "foreign": foreign}[execution]
        execution_input = world.execution_input(arn)
    detail: dict[str, Any] = {"outputDetails": {"included": not output_dropped}}
    execution_input = {
        "own": execution_input,
        "none_dropped": None,
        "no_key": json.dumps({"granule": "G1"}),
        "not_json": "{not json",
        "wrong_type": json.dumps({"coordinator": {"payload_id": 7}}),
        "null": "null",
    }[given_input]
    if given_input == "none_dropped":
        detail["inputDetails"] = {"included": False}
    change = status_event(arn, status, execution_input, output=None if output_dropped else output, **detail)
    for name in removed:
        (change if name == "detail" else change["detail"]).pop(name)
    before = world.state(payload_id)

    if removed:
        event("update-state: not a status change")
        with pytest.raises(ValidationError):
            world.update_state(change)
        return
    result = world.update_state(change)

    after = world.state(payload_id)
    if before.state.is_final:
        assert after == before
    assert after.attempt == before.attempt
    settled = result["settled"]
    event(f"update-state: {settled}")
    said = logs.messages()
    if settled is None:
        assert {"status without a payload state", "execution not started by the coordinator"} & set(said)
    elif settled == "stale":
        assert "stale status ignored" in said
    elif settled == "unknown":
        assert "status for unknown payload" in said
    else:
        assert settled in ("applied", "repeated")
        assert arn == current
        assert after.state.value == {"RUNNING": "PROCESSING"}.get(status, status)
