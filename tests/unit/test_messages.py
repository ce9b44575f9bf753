"""The process message: what is accepted, what is refused and why, and the id each payload gets."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from coordinator.errors import InvalidMessage
from coordinator.identity import canonical_json
from coordinator.messages import (
    CirrusPayload,
    PayloadRequest,
    ProcessMessage,
    parse_process_message,
)

MAX_BYTES = 262_144


def parse(message: dict[str, Any] | str, *, max_bytes: int = MAX_BYTES) -> PayloadRequest:
    body = message if isinstance(message, str) else json.dumps(message)
    return parse_process_message(body, max_bytes=max_bytes)


def rejection(message: dict[str, Any] | str, *, max_bytes: int = MAX_BYTES) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as raised:
        parse(message, max_bytes=max_bytes)
    return raised.value


def cirrus_payload(**fields: Any) -> dict[str, Any]:
    """A cirrus process payload of two items of one collection, every member explicit."""
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": "item-b", "collection": "sentinel-2-l2a", "properties": {}},
            {"type": "Feature", "id": "item-a", "collection": "sentinel-2-l2a", "properties": {}},
        ],
        "process": [{"workflow": "cog", "replace": False, "upload_options": {"bucket": "b"}}],
        **fields,
    }


def feature(item_id: str, collection: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "Feature", "id": item_id, "properties": {}}
    if collection is not None:
        item["collection"] = collection
    return item


# -- refusals --------------------------------------------------------------------------------


def test_unknown_top_level_field_is_refused_by_name() -> None:
    problem = rejection({"workflow": "x", "wrkflow": 1})

    assert "unknown field 'wrkflow'" in problem.reason


def test_unknown_callback_field_is_refused_by_its_path() -> None:
    problem = rejection({"workflow": "x", "callback": {"token": "t", "tokn": "t"}})

    assert "unknown field 'callback.tokn'" in problem.reason


def test_every_unknown_field_is_named_in_one_reason() -> None:
    problem = rejection({"workflow": "x", "wrkflow": 1, "inptu": {}})

    assert "unknown field 'wrkflow'" in problem.reason
    assert "unknown field 'inptu'" in problem.reason


def test_missing_workflow_is_refused() -> None:
    problem = rejection({"input": {"granule": "G1"}})

    assert problem.reason.startswith("workflow: ")
    assert "required" in problem.reason


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "ünïcode", "x" * 61])
def test_workflow_name_outside_the_state_machine_alphabet_is_refused(name: str) -> None:
    problem = rejection({"workflow": name})

    assert problem.reason.startswith("workflow: ")


@pytest.mark.parametrize("body", ["[1, 2]", '"ingest"', "42", "null"])
def test_body_that_is_not_a_json_object_is_refused(body: str) -> None:
    problem = rejection(body)

    assert problem.reason == "body is not a JSON object"


def test_unparseable_body_is_refused() -> None:
    problem = rejection('{"workflow": "x",')

    assert problem.reason == "body is not a JSON object"


def test_body_over_the_size_limit_is_refused_with_both_sizes() -> None:
    body = json.dumps({"workflow": "x", "input": {"blob": "y" * 200}})

    problem = rejection(body, max_bytes=100)

    assert f"{len(body.encode())} bytes" in problem.reason
    assert "limit of 100" in problem.reason


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    body = json.dumps({"workflow": "x", "input": {"s": "é" * 40}}, ensure_ascii=False)
    assert len(body) <= 100 < len(body.encode())

    problem = rejection(body, max_bytes=100)

    assert "over the limit" in problem.reason


def test_body_at_exactly_the_size_limit_is_accepted() -> None:
    body = json.dumps({"workflow": "x"})

    assert parse(body, max_bytes=len(body.encode())).workflow == "x"


def test_coordinator_key_of_the_input_is_reserved() -> None:
    problem = rejection({"workflow": "x", "input": {"coordinator": {"attempt": 9}}})

    assert "input" in problem.reason
    assert "input.coordinator is reserved" in problem.reason


def test_schedule_time_without_a_timezone_is_refused() -> None:
    problem = rejection({"workflow": "x", "scheduleTime": "2022-02-15T02:00:00"})

    assert problem.reason.startswith("scheduleTime: ")
    assert "timezone" in problem.reason


@pytest.mark.parametrize("seconds", [0, 366 * 86_400 + 1])
def test_callback_timeout_outside_a_step_functions_wait_is_refused(seconds: int) -> None:
    problem = rejection({"workflow": "x", "callback": {"token": "t", "timeout_seconds": seconds}})

    assert problem.reason.startswith("callback.timeout_seconds: ")


# -- the waiter of a refused message ---------------------------------------------------------


def test_token_of_an_invalid_message_is_recovered_so_its_waiter_can_be_failed() -> None:
    problem = rejection({"wrkflow": "x", "callback": {"token": "the-token", "waiter": "arn"}})

    assert problem.token == "the-token"


def test_token_is_recovered_even_when_the_callback_itself_is_invalid() -> None:
    problem = rejection({"workflow": "x", "callback": {"token": "the-token", "tokn": 1}})

    assert problem.token == "the-token"


def test_token_is_recovered_from_an_oversized_message() -> None:
    body = json.dumps({"workflow": "x", "input": {"blob": "y" * 200}, "callback": {"token": "the-token"}})

    assert rejection(body, max_bytes=100).token == "the-token"


@pytest.mark.parametrize(
    "message",
    [
        {"wrkflow": "x"},
        {"wrkflow": "x", "callback": "not-an-object"},
        {"wrkflow": "x", "callback": {"token": ""}},
        {"wrkflow": "x", "callback": {"token": 42}},
        '{"workflow": "x", "callback": {"token": "t"',
        '["not", "an", "object"]',
    ],
)
def test_no_token_is_recovered_when_the_message_holds_none(message: dict[str, Any] | str) -> None:
    assert rejection(message).token is None


# -- native payload ids ----------------------------------------------------------------------


def test_explicit_id_wins_over_schedule_time_and_input() -> None:
    request = parse(
        {"workflow": "wf", "id": "my/own-id", "scheduleTime": "2022-02-15T02:00:00Z", "input": {"a": 1}}
    )

    assert request.payload_id == "my/own-id"


def test_scheduled_run_is_identified_by_workflow_and_utc_schedule_time() -> None:
    request = parse({"workflow": "wf", "scheduleTime": "2022-02-15T02:00:00+01:00", "input": {"a": 1}})

    assert request.payload_id == "wf/2022-02-15T01:00:00Z"


def test_one_instant_written_in_two_offsets_is_one_payload() -> None:
    paris = parse({"workflow": "wf", "scheduleTime": "2022-02-15T02:00:00+01:00"})
    new_york = parse({"workflow": "wf", "scheduleTime": "2022-02-14T20:00:00-05:00"})

    assert paris.payload_id == new_york.payload_id


def test_schedule_time_decides_the_id_whatever_the_input() -> None:
    first = parse({"workflow": "wf", "scheduleTime": "2022-02-15T01:00:00Z", "input": {"a": 1}})
    second = parse({"workflow": "wf", "scheduleTime": "2022-02-15T01:00:00Z", "input": {"a": 2}})

    assert first.payload_id == second.payload_id


def test_unscheduled_run_without_id_is_identified_by_the_hash_of_its_canonical_input() -> None:
    payload_input = {"granule": "G1", "options": {"level": 2}}

    request = parse({"workflow": "wf", "input": payload_input})

    digest = hashlib.sha256(canonical_json(payload_input).encode()).hexdigest()
    assert request.payload_id == f"wf/sha256-{digest}"


def test_key_order_of_the_input_does_not_change_its_id() -> None:
    first = parse('{"workflow": "wf", "input": {"a": 1, "b": {"x": 1, "y": 2}}}')
    second = parse('{"workflow": "wf", "input": {"b": {"y": 2, "x": 1}, "a": 1}}')

    assert first.payload_id == second.payload_id


def test_different_inputs_have_different_ids() -> None:
    first = parse({"workflow": "wf", "input": {"granule": "G1"}})
    second = parse({"workflow": "wf", "input": {"granule": "G2"}})

    assert first.payload_id != second.payload_id


def test_same_input_to_two_workflows_is_two_payloads() -> None:
    first = parse({"workflow": "wf-a", "input": {"granule": "G1"}})
    second = parse({"workflow": "wf-b", "input": {"granule": "G1"}})

    assert first.payload_id != second.payload_id


def test_native_message_becomes_a_request_with_its_fields() -> None:
    request = parse(
        {
            "workflow": "wf",
            "id": "p1",
            "input": {"a": 1},
            "replace": True,
            "scheduleTime": "2022-02-15T01:00:00Z",
            "callback": {"token": "t", "waiter": "arn:w", "waiter_payload_id": "p0"},
        }
    )

    assert (request.workflow, request.input, request.replace) == ("wf", {"a": 1}, True)
    assert request.schedule_time == datetime(2022, 2, 15, 1, tzinfo=UTC)
    assert request.callback is not None
    assert (request.callback.token, request.callback.waiter_payload_id) == ("t", "p0")


def test_process_message_accepts_schedule_time_by_field_name_too() -> None:
    message = ProcessMessage.model_validate({"workflow": "wf", "schedule_time": "2022-02-15T01:00:00Z"})

    assert message.payload_id() == "wf/2022-02-15T01:00:00Z"


# -- cirrus process payloads -----------------------------------------------------------------


def test_cirrus_payload_id_is_collections_workflow_and_sorted_item_ids() -> None:
    request = parse(cirrus_payload())

    assert request.payload_id == "sentinel-2-l2a/workflow-cog/item-a/item-b"
    assert request.workflow == "cog"


def test_cirrus_collections_are_sorted_and_deduplicated() -> None:
    payload = cirrus_payload(
        features=[feature("i2", "landsat"), feature("i1", "aster"), feature("i3", "landsat")]
    )

    assert parse(payload).payload_id == "aster/landsat/workflow-cog/i1/i2/i3"


def test_cirrus_items_without_a_collection_are_in_collection_none() -> None:
    payload = cirrus_payload(features=[feature("i1"), feature("i2")])

    assert parse(payload).payload_id == "none/workflow-cog/i1/i2"


def test_cirrus_process_collections_override_the_items_collections() -> None:
    payload = cirrus_payload(process=[{"workflow": "cog", "collections": "my-collections"}])

    assert parse(payload).payload_id == "my-collections/workflow-cog/item-a/item-b"


def test_cirrus_explicit_id_is_kept() -> None:
    assert parse(cirrus_payload(id="given/id")).payload_id == "given/id"


def test_cirrus_execution_input_is_the_payload_itself_with_its_id_set() -> None:
    payload = cirrus_payload()

    request = parse(payload)

    assert request.input == {**payload, "id": "sentinel-2-l2a/workflow-cog/item-a/item-b"}


def test_cirrus_callback_is_taken_out_of_the_execution_input() -> None:
    request = parse(cirrus_payload(callback={"token": "t", "waiter_payload_id": "p0"}))

    assert "callback" not in request.input
    assert request.callback is not None
    assert request.callback.token == "t"


def test_cirrus_null_members_of_the_payload_reach_the_execution_unchanged() -> None:
    # GeoJSON requires `geometry` on a Feature and allows it to be null; STAC items use it.
    payload = cirrus_payload(features=[{"type": "Feature", "id": "i1", "geometry": None, "properties": {}}])

    request = parse(payload)

    assert request.input["features"][0]["geometry"] is None


def test_cirrus_execution_input_has_no_members_the_sender_did_not_write() -> None:
    payload = {"features": [feature("i1", "c")], "process": [{"workflow": "cog"}]}

    request = parse(payload)

    assert request.input == {**payload, "id": "c/workflow-cog/i1"}


def test_cirrus_replace_is_taken_from_the_first_process_step() -> None:
    request = parse(cirrus_payload(process=[{"workflow": "cog", "replace": True}, {"workflow": "next"}]))

    assert request.replace is True


def test_cirrus_payload_is_recognised_by_its_type_alone() -> None:
    problem = rejection({"type": "FeatureCollection", "features": [feature("i1")]})

    assert problem.reason.startswith("process: ")


def test_cirrus_payload_without_features_and_without_id_is_refused() -> None:
    problem = rejection(cirrus_payload(features=[]))

    assert "needs `features`" in problem.reason


def test_cirrus_payload_without_features_but_with_an_id_is_accepted() -> None:
    assert parse(cirrus_payload(features=[], id="given")).payload_id == "given"


@pytest.mark.parametrize("process", [[], {"workflow": "cog"}, None])
def test_cirrus_process_must_be_a_non_empty_list(process: Any) -> None:
    problem = rejection(cirrus_payload(process=process))

    assert problem.reason.startswith("process: ")


def test_cirrus_workflow_name_is_checked_like_a_native_one() -> None:
    problem = rejection(cirrus_payload(process=[{"workflow": "bad name"}]))

    assert problem.reason.startswith("process.0.workflow: ")


def test_cirrus_invalid_payload_gives_back_its_token() -> None:
    problem = rejection(cirrus_payload(process=[], callback={"token": "the-token"}))

    assert problem.token == "the-token"


def test_cirrus_payload_model_derives_the_same_id_as_the_parser() -> None:
    payload = cirrus_payload()

    assert CirrusPayload.model_validate(payload).payload_id() == parse(payload).payload_id


# -- the execution input ---------------------------------------------------------------------


def test_execution_input_is_the_same_text_for_the_same_attempt() -> None:
    first = parse({"workflow": "wf", "input": {"b": 2, "a": 1}})
    second = parse('{"input": {"a": 1, "b": 2}, "workflow": "wf"}')

    assert first.execution_input(3) == second.execution_input(3)


def test_execution_input_carries_the_coordinators_metadata() -> None:
    request = parse({"workflow": "wf", "input": {"a": 1}, "scheduleTime": "2022-02-15T02:00:00+01:00"})

    document = json.loads(request.execution_input(2))

    assert document == {
        "a": 1,
        "coordinator": {
            "payload_id": "wf/2022-02-15T01:00:00Z",
            "attempt": 2,
            "workflow": "wf",
            "schedule_time": "2022-02-15T01:00:00Z",
        },
    }


def test_execution_input_of_an_unscheduled_run_has_no_schedule_time() -> None:
    document = json.loads(parse({"workflow": "wf", "id": "p1"}).execution_input(1))

    assert document["coordinator"]["schedule_time"] is None


def test_execution_inputs_of_two_attempts_differ_only_in_the_attempt() -> None:
    request = parse({"workflow": "wf", "id": "p1", "input": {"a": 1}})

    first, second = (json.loads(request.execution_input(n)) for n in (1, 2))

    assert first != second
    second["coordinator"]["attempt"] = 1
    assert first == second
