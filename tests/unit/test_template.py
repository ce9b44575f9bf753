"""template.yaml as a specification: the contracts other code relies on, read from the template."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coordinator.observability import Metric
from coordinator_tools.kit.template import (
    function_environment,
    load_template,
    properties,
    resource,
    resources,
    table_create_kwargs,
    table_ttl_specification,
    with_parameters,
)

DISPATCHER_FILTER = {
    "dynamodb": {
        "NewImage": {
            "sk": {"S": [{"prefix": "WAITER#"}]},
            "waiter_state": {"S": [{"anything-but": ["WAITING"]}]},
            # `exists` only applies to a leaf: the attribute's type key (notified_at is a string).
            "notified_at": {"S": [{"exists": False}]},
        }
    }
}


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield node
            return
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _statements(value)


def _arn_target(value: Any) -> str | None:
    """Logical id behind `!GetAtt X.Arn` (or `!Ref X`), else None."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
        if "Ref" in value:
            return str(value["Ref"])
    return None


def _dead_letter_targets(node: Any) -> Iterator[str]:
    """Every queue the template uses as a dead-letter or on-failure destination."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"deadLetterTargetArn", "TargetArn", "Destination"}:
                target = _arn_target(value)
                if target:
                    yield target
            if key == "DeadLetterConfig" and isinstance(value, dict):
                target = _arn_target(value.get("Arn"))
                if target:
                    yield target
            yield from _dead_letter_targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dead_letter_targets(value)


def _consumed_queues() -> dict[str, str]:
    """queue logical id -> consuming function, from SAM SQS events and event source mappings."""
    consumed = {}
    for name, body in resources("AWS::Serverless::Function").items():
        for event in body["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                consumed[_arn_target(event["Properties"]["Queue"]) or ""] = name
    for name, body in resources("AWS::Lambda::EventSourceMapping").items():
        target = _arn_target(body["Properties"].get("EventSourceArn"))
        if target in resources("AWS::SQS::Queue"):
            consumed[target] = name
    return consumed


def _function_timeout(logical_id: str) -> int:
    globals_timeout = load_template().get("Globals", {}).get("Function", {}).get("Timeout", 3)
    return int(properties(logical_id).get("Timeout", globals_timeout))


def test_table_made_from_the_template_has_its_keys_indexes_stream_and_ttl() -> None:
    template_table = properties("CoordinatorTable")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**table_create_kwargs(table_name="coordinator"))
        client.update_time_to_live(TableName="coordinator", TimeToLiveSpecification=table_ttl_specification())

        table = client.describe_table(TableName="coordinator")["Table"]
        ttl = client.describe_time_to_live(TableName="coordinator")["TimeToLiveDescription"]

    assert table["KeySchema"] == template_table["KeySchema"]
    assert {i["IndexName"]: i["KeySchema"] for i in table["GlobalSecondaryIndexes"]} == {
        i["IndexName"]: i["KeySchema"] for i in template_table["GlobalSecondaryIndexes"]
    }
    assert set(table["GlobalSecondaryIndexes"][0]) >= {"IndexName", "KeySchema", "Projection"}
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl["AttributeName"] == "expiration_time"


def test_table_keys_and_indexes_are_the_protocol_ones() -> None:
    table = properties("CoordinatorTable")

    assert [k["AttributeName"] for k in table["KeySchema"]] == ["payload_id", "sk"]
    indexes = {
        i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "by_waiter": ["waiter_payload_id", "payload_id"],
        "by_pending": ["pending_shard", "pending_since"],
    }


def test_no_policy_grants_a_wildcard_action() -> None:
    offending = [
        (name, action)
        for name, body in resources().items()
        for statement in _statements(body.get("Properties", {}))
        for action in (
            statement.get("Action")
            if isinstance(statement.get("Action"), list)
            else [statement.get("Action")]
        )
        if isinstance(action, str) and (action == "*" or action.endswith(":*"))
    ]
    not_actions = [name for name, body in resources().items() for s in _statements(body) if "NotAction" in s]

    assert offending == []
    assert not_actions == []


def test_every_consumed_queue_has_a_redrive() -> None:
    consumed = _consumed_queues()

    assert "ProcessQueue" in consumed
    for queue in consumed:
        redrive = properties(queue).get("RedrivePolicy", {})
        assert _arn_target(redrive.get("deadLetterTargetArn")) in resources("AWS::SQS::Queue"), queue


def test_every_queue_is_consumed_or_is_a_dead_letter_queue() -> None:
    dead_letter_queues = set(_dead_letter_targets(resources()))
    consumed = set(_consumed_queues())

    unaccounted = set(resources("AWS::SQS::Queue")) - dead_letter_queues - consumed

    assert unaccounted == set()
    assert consumed.isdisjoint(dead_letter_queues)


def test_dead_letter_queues_keep_messages_fourteen_days() -> None:
    for queue in set(_dead_letter_targets(resources())) & set(resources("AWS::SQS::Queue")):
        assert properties(queue)["MessageRetentionPeriod"] == 1_209_600, queue


def test_every_queue_is_encrypted() -> None:
    for name, body in resources("AWS::SQS::Queue").items():
        props = body["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name


def test_process_queue_visibility_is_at_least_six_times_the_process_timeout() -> None:
    assert properties("ProcessQueue")["VisibilityTimeout"] >= 6 * _function_timeout("ProcessFunction")


def test_process_messages_are_reported_per_record() -> None:
    event = properties("ProcessFunction")["Events"]["ProcessMessages"]

    assert event["Type"] == "SQS"
    assert _arn_target(event["Properties"]["Queue"]) == "ProcessQueue"
    assert event["Properties"]["BatchSize"] == 10
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_dispatcher_filters_new_images_with_the_contract_pattern() -> None:
    (event,) = properties("DispatcherFunction")["Events"].values()
    stream = event["Properties"]
    (pattern_filter,) = stream["FilterCriteria"]["Filters"]
    pattern = json.loads(pattern_filter["Pattern"])

    assert pattern == DISPATCHER_FILTER
    assert "Keys" not in pattern["dynamodb"]
    assert _arn_target(stream["Stream"]) == "CoordinatorTable"
    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 < stream["MaximumRetryAttempts"] <= 10
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert _arn_target(stream["DestinationConfig"]["OnFailure"]["Destination"]) == "DispatcherFailureQueue"


def test_status_change_rule_targets_update_state_with_a_dead_letter_queue_and_retries() -> None:
    rule = properties("ExecutionStatusChangeRule")
    (target,) = rule["Targets"]

    assert rule["EventPattern"]["source"] == ["aws.states"]
    assert rule["EventPattern"]["detail-type"] == ["Step Functions Execution Status Change"]
    (prefix,) = rule["EventPattern"]["detail"]["stateMachineArn"]
    assert prefix["prefix"]["Fn::Sub"].endswith(":stateMachine:${WorkflowPrefix}")
    assert _arn_target(target["Arn"]) == "UpdateStateFunction"
    assert _arn_target(target["DeadLetterConfig"]["Arn"]) == "UpdateStateDeadLetterQueue"
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_update_state_keeps_events_that_fail_after_lambda_retries() -> None:
    function = properties("UpdateStateFunction")

    assert _arn_target(function["DeadLetterQueue"]["TargetArn"]) == "UpdateStateDeadLetterQueue"


@pytest.mark.parametrize(
    ("function", "variables"),
    [
        (
            "ProcessFunction",
            {"TABLE_NAME", "STATE_MACHINE_ARN_PREFIX", "DEAD_LETTER_QUEUE_URL", "RETENTION_DAYS"},
        ),
        ("UpdateStateFunction", {"TABLE_NAME"}),
        ("DispatcherFunction", {"TABLE_NAME", "RETENTION_DAYS", "DISPATCH_CONCURRENCY"}),
        (
            "ReconcileFunction",
            {
                "TABLE_NAME",
                "STATE_MACHINE_ARN_PREFIX",
                "RETENTION_DAYS",
                "RECONCILE_LEASE_SECONDS",
                "RECONCILE_BATCH_SIZE",
            },
        ),
        ("RangeFunction", set()),
    ],
)
def test_function_gets_the_settings_it_reads(function: str, variables: set[str]) -> None:
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    runtime = {"PYDANTIC_DISABLE_PLUGINS"}

    assert set(function_environment(function)) == variables | powertools | runtime


def test_functions_share_runtime_tracing_and_the_layer() -> None:
    function_globals = load_template()["Globals"]["Function"]
    layer = resource("CoordinatorLayer")

    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "CoordinatorLayer"}]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Properties"]["ContentUri"] == "layers/coordinator/"
    for name, body in resources("AWS::Serverless::Function").items():
        assert body["Properties"]["CodeUri"].startswith("functions/"), name
        assert body["Properties"].get("Handler", function_globals["Handler"]) == "app.lambda_handler"


def test_outputs_name_what_tools_and_tests_read() -> None:
    assert set(load_template()["Outputs"]) >= {
        "ProcessQueueUrl",
        "ProcessQueueArn",
        "TableName",
        "ExampleTargetStateMachineArn",
        "ExampleWaiterStateMachineArn",
        "BackfillStateMachineArn",
        "RangeFunctionArn",
        "WorkflowPrefix",
    }


def test_live_schedule_stamps_each_tick_with_its_scheduled_time() -> None:
    target = properties("ExampleSchedule")["Target"]
    message = json.loads(with_parameters(target["Input"]))

    assert _arn_target(target["Arn"]) == "ProcessQueue"
    assert message["scheduleTime"] == "<aws.scheduler.scheduled-time>"
    assert message["workflow"] == "example-target"
    assert _arn_target(target["DeadLetterConfig"]["Arn"]) == "ScheduleDeadLetterQueue"
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0


def test_every_alarm_on_a_coordinator_metric_watches_one_the_code_publishes() -> None:
    """The alarms' metric names are a contract with the code (`coordinator.observability.Metric`):
    a metric renamed in one place only would leave an alarm that never fires."""
    watched = {
        body["Properties"]["MetricName"]
        for body in resources("AWS::CloudWatch::Alarm").values()
        if "CallbackCoordinator" in json.dumps(body["Properties"].get("Namespace", ""))
    }

    assert watched == {Metric.OLDEST_CLAIM_SECONDS, Metric.OLDEST_WAITING_SECONDS}
    assert watched <= {str(metric) for metric in Metric}


def test_the_dashboard_draws_only_metrics_the_code_publishes() -> None:
    """Every coordinator metric on the dashboard is a `Metric`: a literal renamed in the code
    (or mistyped in the template) would draw an empty line."""
    [dashboard] = resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    text = body["Fn::Sub"] if isinstance(body, dict) else body
    if isinstance(text, list):  # !Sub [text, variables]
        text = text[0]
    drawn = set(re.findall(r'\["\$\{Namespace\}", "(\w+)"', text))

    assert len(drawn) > 5
    assert drawn <= {str(metric) for metric in Metric}
