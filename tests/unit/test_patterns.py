"""The template's own event patterns, matched offline as EventBridge and Lambda match them.

Each case is an event and whether AWS delivers it (the status-change rule) or keeps it (the
dispatcher's stream filter); the offline matcher must agree on every one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from coordinator_tools.kit.template import load_template
from coordinator_tools.local import patterns
from coordinator_tools.local.cloudformation import Intrinsics

ACCOUNT, REGION = "123456789012", "us-east-1"
PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:coordinator-dev-"


def template_pattern(logical_id: str, *path: str) -> Any:
    """The pattern at `path` of a resource's properties, its intrinsics resolved as deployed."""
    template = load_template()
    intrinsics = Intrinsics(
        template,
        {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT},
        physical=lambda logical: logical,
        attribute=lambda logical, name: f"{logical}.{name}",
    )
    found: Any = template["Resources"][logical_id]["Properties"]
    for key in path:
        found = found[key]
    return intrinsics.resolve(found)


def status_change(**detail: Any) -> dict[str, Any]:
    return {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"stateMachineArn": f"{PREFIX}example", "status": "SUCCEEDED", **detail},
    }


RULE_CASES = [
    ("a coordinated machine's status change", status_change(), True),
    ("another machine's", status_change(stateMachineArn=f"{PREFIX[:-4]}other-example"), False),
    ("another source", {**status_change(), "source": "aws.batch"}, False),
    ("another detail-type", {**status_change(), "detail-type": "Step Functions State Change"}, False),
    ("no detail", {"source": "aws.states", "detail-type": "Step Functions Execution Status Change"}, False),
    ("an ARN that is not a string", status_change(stateMachineArn=42), False),
]


def waiter_record(**image: Any) -> dict[str, Any]:
    new_image = {"sk": {"S": "WAITER#w-1"}, "waiter_state": {"S": "NOTIFIED"}, **image}
    return {"eventName": "MODIFY", "dynamodb": {"NewImage": {k: v for k, v in new_image.items() if v}}}


FILTER_CASES = [
    ("a waiter that left WAITING, not yet notified", waiter_record(), True),
    ("one with notified_at NULL (no S)", waiter_record(notified_at={"NULL": True}), True),
    ("a waiter still WAITING", waiter_record(waiter_state={"S": "WAITING"}), False),
    ("one already notified", waiter_record(notified_at={"S": "2026-01-05T12:00:00Z"}), False),
    ("a row that is not a waiter", waiter_record(sk={"S": "STATE#p-1"}), False),
    ("a waiter without a state", waiter_record(waiter_state=None), False),
    ("a removal", {"eventName": "REMOVE", "dynamodb": {"Keys": {"sk": {"S": "WAITER#"}}}}, False),
]


@pytest.mark.parametrize(("case", "event", "delivered"), RULE_CASES, ids=[case for case, *_ in RULE_CASES])
def test_the_status_change_rule_delivers_what_eventbridge_delivers(
    case: str, event: dict[str, Any], delivered: bool
) -> None:
    pattern = patterns.load_pattern(template_pattern("ExecutionStatusChangeRule", "EventPattern"))
    assert patterns.matches(pattern, event) is delivered, case


@pytest.mark.parametrize(("case", "record", "kept"), FILTER_CASES, ids=[case for case, *_ in FILTER_CASES])
def test_the_dispatcher_filter_keeps_what_lambda_keeps(case: str, record: dict[str, Any], kept: bool) -> None:
    filters = template_pattern(
        "DispatcherFunction", "Events", "WaiterResolved", "Properties", "FilterCriteria", "Filters"
    )
    loaded = [patterns.load_pattern(item["Pattern"]) for item in filters]
    assert patterns.matches_any(loaded, record) is kept, case


def test_an_operator_moto_does_not_know_is_refused_when_loaded_since_moto_would_match_everything() -> None:
    pattern = {"detail": {"size": [{"contains": "x"}]}}
    assert EventPattern(json.dumps(pattern), pattern).matches_event({"detail": {"size": "abc"}})
    with pytest.raises(patterns.UnsupportedPattern, match="contains"):
        patterns.load_pattern(pattern)


def test_exists_sees_a_field_holding_an_object_as_absent_so_patterns_keep_exists_on_leaves() -> None:
    pattern = patterns.load_pattern({"detail": {"state": [{"exists": False}]}})
    assert patterns.matches(pattern, {"detail": {"state": {"name": "running"}}})
    assert not patterns.matches(pattern, {"detail": {"state": "running"}})
