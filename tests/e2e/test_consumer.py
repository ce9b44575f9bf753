"""examples/consumer/: a team's own stack with the coordinator nested in it. Its state machine,
deployed next to the offline coordinator as its template wires it, waits on its two
dependencies through the coordinator and runs to success."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coordinator_tools.kit.template import load_template
from coordinator_tools.local import OfflineStack

pytestmark = pytest.mark.e2e

CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer"


def consumer_template() -> dict[str, Any]:
    return load_template(CONSUMER / "template.yaml")


def deploy_nightly_report(stack: OfflineStack, *, dependency_workflow: str | None = None) -> str:
    """The consumer's state machine with its DefinitionSubstitutions resolved against this
    coordinator: the nested stack's ProcessQueueUrl output is the offline stack's."""
    template = consumer_template()
    machine = template["Resources"]["NightlyReportStateMachine"]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert substitutions["ProcessQueueUrl"] == {"Fn::GetAtt": ["Coordinator", "Outputs.ProcessQueueUrl"]}
    values = {
        "ProcessQueueUrl": stack.outputs["ProcessQueueUrl"],
        "DependencyWorkflow": dependency_workflow or template["Parameters"]["DependencyWorkflow"]["Default"],
    }
    definition = (CONSUMER / machine["DefinitionUri"]).read_text()
    for name, value in values.items():
        definition = definition.replace("${" + name + "}", value)
    name = "nightly-report" if dependency_workflow is None else f"nightly-report-{dependency_workflow}"
    return str(
        stack.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=f"arn:aws:iam::{stack.account_id}:role/nightly-report",
        )["stateMachineArn"]
    )


def test_the_nested_coordinator_shares_the_consumers_workflow_prefix() -> None:
    coordinator = consumer_template()["Resources"]["Coordinator"]

    assert coordinator["Type"] == "AWS::Serverless::Application"
    assert (CONSUMER / coordinator["Properties"]["Location"]).resolve() == (
        CONSUMER.parents[1] / "template.yaml"
    )
    assert coordinator["Properties"]["Parameters"]["WorkflowPrefix"] == {"Ref": "WorkflowPrefix"}


def test_the_nightly_report_has_a_schedule_of_its_own() -> None:
    events = consumer_template()["Resources"]["NightlyReportStateMachine"]["Properties"]["Events"]

    assert [event["Type"] for event in events.values()] == ["ScheduleV2"]


def test_the_nightly_report_runs_once_both_dependencies_succeeded(stack: OfflineStack) -> None:
    arn = deploy_nightly_report(stack)
    sfn = stack.client("stepfunctions")

    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"day": "2024-05-01"}))
    ended = stack.wait_for_execution(execution["executionArn"], timeout=60)

    assert ended["status"] == "SUCCEEDED", ended
    assert json.loads(ended["output"]) == {"day": "2024-05-01", "report": "ready"}
    for dependency in ("orders/2024-05-01", "customers/2024-05-01"):
        assert (stack.payload_state(dependency) or {}).get("state") == "SUCCEEDED", dependency


def test_the_nightly_report_fails_when_a_dependency_cannot_run(stack: OfflineStack) -> None:
    # No state machine runs this workflow: its payloads end INVALID, and the waits fail.
    arn = deploy_nightly_report(stack, dependency_workflow="no-such-workflow")
    sfn = stack.client("stepfunctions")

    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"day": "2024-05-02"}))
    ended = stack.wait_for_execution(execution["executionArn"], timeout=60)

    assert ended["status"] == "FAILED"
    assert ended["error"] == "DependencyNotMet"
