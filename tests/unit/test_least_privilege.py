"""Each function's role allows exactly the actions it needs: no extra, no wildcard.

The lists say why each action is there. An action added to the code without its policy, or to
a policy without a use, fails here (and in AWS the first would fail at run time).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordinator_tools.kit.template import properties, resources, state_machine_definitions

# What every function needs to run: its own log group (X-Ray comes from the shared tracing policy).
RUNTIME = {"logs:CreateLogStream", "logs:PutLogEvents"}

NEEDED: dict[str, set[str]] = {
    "ProcessFunctionRole": RUNTIME
    | {
        "dynamodb:PutItem",  # register_waiter
        "dynamodb:UpdateItem",  # claim_payload, move_waiter, settle (INVALID)
        "dynamodb:Query",  # cycle walk on by_waiter, settle's waiter query
        "dynamodb:GetItem",  # settle: the row again between pages of over 100 waiters
        "dynamodb:BatchGetItem",  # arm: the upstreams' STATE rows of a gate
        "states:StartExecution",  # start_attempt
        "states:DescribeStateMachine",  # refuse_express, once per workflow per container
        "states:DescribeExecution",  # follow_redrive before a re-run
        "states:RedriveExecution",  # send_redrive (rerun "redrive")
        "states:SendTaskFailure",  # reject: fail the waiter of an unfixable message
        "sqs:SendMessage",  # reject: the record to the process DLQ with its reason
        "sqs:ReceiveMessage",  # the SQS event source mapping polls as the function
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    },
    "UpdateStateFunctionRole": RUNTIME
    | {
        "dynamodb:UpdateItem",  # record_status, move_waiter
        "dynamodb:Query",  # waiting_pages
        "dynamodb:GetItem",  # settle: the row again between pages of over 100 waiters
        "states:DescribeExecution",  # input dropped by EventBridge
        "sqs:SendMessage",  # its async-invoke dead-letter queue
    },
    "DispatcherFunctionRole": RUNTIME
    | {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "dynamodb:UpdateItem",  # mark_notified; a gate's count, opening or end
        "dynamodb:Query",  # settle of a gate that ended: its waiters
        "dynamodb:GetItem",  # settle: the row again between pages of over 100 waiters
        "states:StartExecution",  # a gate opened by its last upstream starts its payload
        "dynamodb:DescribeStream",  # the stream event source mapping reads as the function
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "sqs:SendMessage",  # the stream's on-failure destination
    },
    "ReconcileFunctionRole": RUNTIME
    | {
        "dynamodb:Query",  # by_pending pages, settle's waiter query
        "dynamodb:GetItem",  # the STATE row behind a stale index entry
        "dynamodb:UpdateItem",  # settle, move_waiter, touch_pending
        "dynamodb:PutItem",  # arm: a gate row a crash left unput
        "dynamodb:BatchGetItem",  # arm: the upstreams' STATE rows of a gate
        "states:DescribeExecution",
        "states:StartExecution",  # a claim whose start was lost
        "states:RedriveExecution",  # a redrive claim whose redrive was lost
    },
    "RangeFunctionRole": RUNTIME,
    "ExampleScheduleRole": {"sqs:SendMessage"},  # the process queue and its own DLQ
}


def allowed_actions(role: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement.get("Effect") == "Allow", "deny statements are not expected here"
            assert "NotAction" not in statement
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


@pytest.mark.parametrize("role_id", sorted(NEEDED))
def test_role_allows_exactly_what_its_function_needs(role_id: str) -> None:
    role = resources("AWS::IAM::Role")[role_id]

    actions = allowed_actions(role)

    assert not [a for a in actions if "*" in a], "no wildcard action"
    assert actions - NEEDED[role_id] == set(), "actions nothing uses"
    assert NEEDED[role_id] - actions == set(), "actions the function needs but is not allowed"


def test_every_role_in_the_template_is_accounted_for() -> None:
    assert set(resources("AWS::IAM::Role")) == set(NEEDED)


def test_managed_policies_are_only_the_shared_tracing_policy() -> None:
    for role_id, role in resources("AWS::IAM::Role").items():
        for managed in role["Properties"].get("ManagedPolicyArns", []):
            assert managed == {"Ref": "FunctionTracingPolicy"}, role_id
    tracing = resources()["FunctionTracingPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {a for s in tracing for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} == {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def state_machine_actions(logical_id: str) -> dict[str, str]:
    """Each action a state machine's inline statements allow, with its resource's !Sub text."""
    allowed: dict[str, str] = {}
    for policy in properties(logical_id)["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            action = statement["Action"]
            resource = statement["Resource"]
            text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else str(resource)
            for name in [action] if isinstance(action, str) else action:
                allowed[name] = text
    return allowed


def distributed_maps(states: dict[str, Any]) -> list[str]:
    """The names of the Distributed Map states in `states`, nested ones included."""
    found: list[str] = []
    for name, state in states.items():
        processor = state.get("ItemProcessor")
        if processor is None:
            continue
        if processor["ProcessorConfig"].get("Mode") == "DISTRIBUTED":
            found.append(name)
        found += distributed_maps(processor["States"])
    return found


def test_backfill_may_start_follow_and_stop_its_distributed_map_children_and_nothing_else() -> None:
    definition = json.loads(state_machine_definitions()["BackfillStateMachine"]["text"])
    allowed = state_machine_actions("BackfillStateMachine")

    assert distributed_maps(definition["States"]) == ["RunPages", "RunPageTicks"]
    assert set(allowed) == {
        "sqs:SendMessage",  # RunTick
        "lambda:InvokeFunction",  # ReadPage, ReadPages, ReadPageTicks
        "states:StartExecution",  # ContinueAsNewExecution, and the Map Runs' children
        "states:DescribeExecution",  # the Map Runs' children
        "states:StopExecution",
    }
    assert allowed["states:StartExecution"].endswith(":stateMachine:${WorkflowPrefix}backfill")
    for action in ("states:DescribeExecution", "states:StopExecution"):
        assert allowed[action].endswith(":execution:${WorkflowPrefix}backfill/*")
