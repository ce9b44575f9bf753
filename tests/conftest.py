"""Fixtures that build on each other: environment, then moto, then the table made from
template.yaml's own definition, then the coordinator's services over it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coordinator import services as services_module
from coordinator import settings as settings_module
from coordinator.services import Services
from coordinator.settings import Settings
from tests.support.template import table_create_kwargs, table_ttl_specification

EVENTS = Path(__file__).parent / "events"
REGION = "us-east-1"
TABLE = "coordinator-test"
WORKFLOW_PREFIX = "cc-test-"

# Fake credentials and a region before anything creates a client; Powertools without X-Ray.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_SERVICE_NAME": "callback-coordinator",
    "POWERTOOLS_METRICS_NAMESPACE": "CallbackCoordinatorTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}.items():
    os.environ[_name] = _value


def load_event(name: str) -> dict[str, Any]:
    """A named sample event from tests/events/."""
    return json.loads((EVENTS / f"{name}.json").read_text())


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def aws() -> Iterator[None]:
    # moto's config is process-wide and the offline stack (e2e) turns execution on: say what
    # these tests rely on, that moto records executions without running them.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        yield


@pytest.fixture
def account_id(aws: None) -> str:
    return str(boto3.client("sts").get_caller_identity()["Account"])


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb")
    client.create_table(**table_create_kwargs(table_name=TABLE))
    client.update_time_to_live(TableName=TABLE, TimeToLiveSpecification=table_ttl_specification())
    return client


@pytest.fixture
def stepfunctions(aws: None) -> Any:
    return boto3.client("stepfunctions")


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs")


@pytest.fixture
def dead_letter_queue(sqs: Any) -> str:
    return str(sqs.create_queue(QueueName="coordinator-test-process-dlq")["QueueUrl"])


@pytest.fixture
def settings(account_id: str, dead_letter_queue: str) -> Settings:
    return Settings(
        TABLE_NAME=TABLE,
        STATE_MACHINE_ARN_PREFIX=f"arn:aws:states:{REGION}:{account_id}:stateMachine:{WORKFLOW_PREFIX}",
        DEAD_LETTER_QUEUE_URL=dead_letter_queue,
        RETENTION_DAYS=7,
        RECONCILE_LEASE_SECONDS=300,
        RECONCILE_BATCH_SIZE=160,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(settings: Settings, dynamodb: Any, stepfunctions: Any, sqs: Any, clock: Clock) -> Services:
    return Services(settings=settings, dynamodb=dynamodb, stepfunctions=stepfunctions, sqs=sqs, clock=clock)


@dataclass
class Workflows:
    """State machines named as coordinated workflows (moto records executions, runs nothing)."""

    stepfunctions: Any
    account_id: str

    def create(self, workflow: str) -> str:
        definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
        response = self.stepfunctions.create_state_machine(
            name=f"{WORKFLOW_PREFIX}{workflow}",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{self.account_id}:role/coordinator-test-workflow",
        )
        return str(response["stateMachineArn"])

    def executions(self, workflow: str) -> list[dict[str, Any]]:
        arn = f"arn:aws:states:{REGION}:{self.account_id}:stateMachine:{WORKFLOW_PREFIX}{workflow}"
        return list(self.stepfunctions.list_executions(stateMachineArn=arn)["executions"])


@pytest.fixture
def workflows(stepfunctions: Any, account_id: str) -> Workflows:
    registry = Workflows(stepfunctions, account_id)
    registry.create("ingest")
    return registry


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    """The handlers' environment, as the template sets it, with the cached services reset."""
    for field, value in settings.model_dump(by_alias=True).items():
        monkeypatch.setenv(field, str(value))
    settings_module.settings.cache_clear()
    services_module.services.cache_clear()
    yield
    settings_module.settings.cache_clear()
    services_module.services.cache_clear()


@dataclass
class FakeContext:
    """The parts of a Lambda context Powertools reads."""

    function_name: str = "coordinator-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:coordinator-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()
