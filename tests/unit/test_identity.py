"""Deterministic identities: execution names Step Functions accepts, and the ARNs they get."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.identity import (
    EXECUTION_NAME_MAX,
    execution_arn,
    execution_name,
    execution_name_of,
    format_utc,
    scheduled_payload_id,
    state_machine_of,
    token_digest,
    token_key,
)

VALID_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:cc-ingest"


def test_execution_name_keeps_a_readable_slug_of_the_payload_id() -> None:
    name = execution_name("ingest/granule 1", 1)

    assert name.startswith("ingest-granule-1-a1-")
    assert VALID_NAME.fullmatch(name)


def test_execution_name_is_the_same_for_the_same_id_and_attempt() -> None:
    assert execution_name("ingest/G1", 3) == execution_name("ingest/G1", 3)


def test_each_attempt_of_a_payload_has_its_own_name() -> None:
    names = {execution_name("ingest/G1", attempt) for attempt in range(1, 51)}

    assert len(names) == 50


def test_ids_that_slug_alike_have_different_names() -> None:
    assert execution_name("a/b", 1) != execution_name("a-b", 1)


def test_long_ids_differing_only_past_the_slug_have_different_names() -> None:
    common = "collection/" + "x" * 200

    assert execution_name(common + "/item-1", 1) != execution_name(common + "/item-2", 1)


def test_name_of_a_very_long_id_is_cut_to_the_step_functions_limit() -> None:
    name = execution_name("p" * 5_000, 9_999)

    assert len(name) == EXECUTION_NAME_MAX
    assert VALID_NAME.fullmatch(name)


def test_id_with_no_name_characters_still_gets_a_valid_name() -> None:
    assert VALID_NAME.fullmatch(execution_name("///ünï©ødé///", 1))


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        execution_name("p1", attempt)


payload_ids = st.one_of(
    st.text(min_size=1, max_size=1024),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=1024),
    st.text(alphabet="/-_ .:", min_size=1, max_size=120),
)


@given(payload_id=payload_ids, attempt=st.integers(min_value=1, max_value=10_000))
def test_every_payload_id_and_attempt_gives_a_valid_deterministic_name(payload_id: str, attempt: int) -> None:
    name = execution_name(payload_id, attempt)

    assert VALID_NAME.fullmatch(name), name
    assert execution_name(payload_id, attempt) == name


@given(payload_id=payload_ids, attempts=st.lists(st.integers(1, 10_000), min_size=2, max_size=2, unique=True))
def test_two_attempts_of_any_payload_never_share_a_name(payload_id: str, attempts: list[int]) -> None:
    first, second = attempts

    assert execution_name(payload_id, first) != execution_name(payload_id, second)


def test_execution_arn_is_derived_from_the_state_machine_arn() -> None:
    arn = execution_arn(STATE_MACHINE, "p1-a1-abc")

    assert arn == "arn:aws:states:us-east-1:123456789012:execution:cc-ingest:p1-a1-abc"


def test_execution_arn_needs_a_state_machine_arn() -> None:
    with pytest.raises(ValueError, match="not a state machine ARN"):
        execution_arn("arn:aws:states:us-east-1:123456789012:activity:cc-ingest", "p1-a1-abc")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=80))
def test_an_execution_arn_gives_back_its_state_machine_and_its_name(name: str) -> None:
    arn = execution_arn(STATE_MACHINE, name)

    assert (state_machine_of(arn), execution_name_of(arn)) == (STATE_MACHINE, name)


@pytest.mark.parametrize(
    "arn",
    [
        STATE_MACHINE,
        "arn:aws:states:us-east-1:123456789012:execution:cc-ingest:",
        "p1-a1-abc",
    ],
    ids=["a state machine", "no name", "a bare name"],
)
def test_only_an_execution_arn_has_an_execution_name(arn: str) -> None:
    with pytest.raises(ValueError, match="not an execution ARN"):
        execution_name_of(arn)


def test_format_utc_writes_any_aware_instant_in_utc_with_z() -> None:
    moment = datetime(2022, 2, 15, 2, 0, 30, 999_999, tzinfo=timezone(timedelta(hours=1)))

    assert format_utc(moment) == "2022-02-15T01:00:30Z"


def test_format_utc_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_utc(datetime(2022, 2, 15, 1))


def test_scheduled_payload_id_refuses_a_naive_schedule_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        scheduled_payload_id("wf", datetime(2022, 2, 15, 1))


def test_scheduled_payload_id_is_workflow_and_utc_time() -> None:
    assert scheduled_payload_id("wf", datetime(2022, 2, 15, 1, tzinfo=UTC)) == "wf/2022-02-15T01:00:00Z"


def test_waiter_key_is_the_hash_of_the_token_never_the_token() -> None:
    token = "AQCEAAAAKgAAAAMAAAAAAAAAA" + "x" * 300

    key = token_key(token)

    assert key == "WAITER#" + token_digest(token)
    assert token not in key
    assert len(key) == len("WAITER#") + 64
