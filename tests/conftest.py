"""Fixtures that build on each other: environment, then moto, then the table made from
template.yaml's own definition, then the coordinator's services over it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coordinator import services as services_module
from coordinator import settings as settings_module
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator_tools.kit.environment import REGION, Clock, FakeContext, use_fake_environment
from coordinator_tools.kit.resources import create_table, create_workflow

TABLE = "coordinator-test"
WORKFLOW_PREFIX = "cc-test-"

# Fake credentials and a region before anything creates a client; Powertools without X-Ray.
use_fake_environment(metrics_namespace="CallbackCoordinatorTest")


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
    create_table(client, TABLE)
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
        return create_workflow(self.stepfunctions, f"{WORKFLOW_PREFIX}{workflow}", self.account_id)

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


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()
