"""`OfflineStack`: the whole application from template.yaml, on an embedded moto server.

    with OfflineStack() as stack:
        stack.submit({"workflow": "example-target", "id": "p-1"})
        state = stack.wait_for_payload("p-1")

What runs: a moto server on a free loopback port, executing state machines for real; the
template translated and provisioned into it (`provision`); the handlers of `functions/` run in
this process behind moto's Lambda (`runtime`); and the event sources AWS would run, as pollers
(`sources`, `status_events`). Anything that speaks the AWS API can drive it at `endpoint_url`.

The process environment is the stack's while it runs: fake credentials, the region, and
AWS_ENDPOINT_URL pointing every boto3 client (the handlers' included) at the moto server.
`stop` puts back what it found, moto's configuration included, so a test session can go on
with in-memory moto afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import boto3
from botocore.config import Config

from coordinator.states import FINAL, FINAL_STATUSES
from coordinator_tools.local import moto_patches
from coordinator_tools.local.cloudformation import translate
from coordinator_tools.local.provision import Provisioned, Provisioner
from coordinator_tools.local.runtime import FunctionRuntime
from coordinator_tools.local.sources import Poller, QueuePoller, ScheduleTicker, StreamPoller
from coordinator_tools.local.status_events import ExecutionStatusPoller

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]

# Clients of the tool itself: no retries hiding a broken stack, generous reads for long polls.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, read_timeout=300)


class StackTimeout(TimeoutError):
    """Something the caller waited for did not happen in time."""


@dataclass(frozen=True)
class Intervals:
    """How often the offline event sources look for work (seconds). They set the latencies."""

    queue: float = 0.05
    stream: float = 0.05
    status: float = 0.1
    reconcile: float = 5.0


class OfflineStack:
    def __init__(
        self,
        *,
        root: Path = ROOT,
        template: str = "template.yaml",
        region: str = "us-east-1",
        stack_name: str = "offline",
        parameters: dict[str, str] | None = None,
        intervals: Intervals | None = None,
        visibility_timeout: int | None = None,
        function_log: TextIO | None = None,
    ) -> None:
        self.root = root
        self.template_path = root / template
        self.region = region
        self.stack_name = stack_name
        self.parameters = dict(parameters or {})
        self.intervals = intervals or Intervals()
        self.visibility_timeout = visibility_timeout
        self.runtime = FunctionRuntime(root, log_stream=function_log)
        self.endpoint_url = ""
        self.account_id = ""
        self.provisioned = Provisioned()
        self.pollers: list[Poller] = []
        self.status_poller: ExecutionStatusPoller | None = None
        self._server: Any = None
        self._saved_environment: dict[str, str | None] = {}
        self._saved_sfn_config: dict[str, Any] | None = None
        self._clients: dict[str, Any] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> OfflineStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> OfflineStack:
        from moto.server import ThreadedMotoServer

        moto_patches.ensure_pinned_moto()
        # One line per request of every poller would bury everything else, and the interpreter
        # logs every error an execution meets (caught ones too) with its whole parse tree.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._set_environment(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                # botocore 1.44 sends DynamoDB Streams to an account-id endpoint moto does not serve.
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                # The state machine interpreter calls back into moto on this port.
                "MOTO_PORT": str(port),
            }
        )
        # moto's backends are process-wide: a stack starts from an empty account.
        self._post_moto("reset", {})
        self._saved_sfn_config = self._moto_config().get("stepfunctions")
        self._post_moto_config({"stepfunctions": {"execute_state_machine": True}})
        moto_patches.apply(self.runtime.route)
        self.account_id = self.client("sts").get_caller_identity()["Account"]
        started = time.monotonic()
        template = translate(
            self.template_path,
            region=self.region,
            account_id=self.account_id,
            stack_name=self.stack_name,
            parameters=self.parameters,
        )
        self.provisioned = Provisioner(
            template,
            root=self.root,
            clients=self.client,
            pseudo={
                "AWS::Region": self.region,
                "AWS::AccountId": self.account_id,
                "AWS::StackName": self.stack_name,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
            parameters=self.parameters,
            register_function=self.runtime.register,
        ).provision()
        logger.info(
            "offline stack provisioned endpoint=%s seconds=%.2f",
            self.endpoint_url,
            time.monotonic() - started,
        )
        self._start_pollers()
        return self

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        moto_patches.revert()
        if self._server is not None:
            if self._saved_sfn_config is not None:
                self._post_moto_config({"stepfunctions": self._saved_sfn_config})
            self._post_moto("reset", {})
            self._server.stop()
            self._server = None
        self.runtime.shutdown()
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()
        self._clients.clear()

    def _set_environment(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _moto_config(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/config", timeout=10) as response:  # noqa: S310 - our own loopback server
            return dict(json.loads(response.read()))

    def _post_moto_config(self, config: dict[str, Any]) -> None:
        self._post_moto("config", config)

    def _post_moto(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{self.endpoint_url}/moto-api/{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own loopback server
            pass

    def _start_pollers(self) -> None:
        provisioned = self.provisioned
        for logical_id, mapping in provisioned.event_source_mappings.items():
            source = mapping["EventSourceArn"]
            function_name = mapping["FunctionName"]
            if source.startswith("arn:aws:sqs:"):
                queue_url = self.client("sqs").get_queue_url(QueueName=source.rsplit(":", 1)[1])["QueueUrl"]
                poller: Poller = QueuePoller(
                    sqs=self.client("sqs"),
                    lambda_client=self.client("lambda"),
                    queue_url=queue_url,
                    queue_arn=source,
                    function_name=function_name,
                    mapping=mapping,
                    region=self.region,
                    interval=self.intervals.queue,
                    visibility_timeout=self.visibility_timeout,
                )
            elif ":dynamodb:" in source and "/stream/" in source:
                poller = StreamPoller(
                    streams=self.client("dynamodbstreams"),
                    sqs=self.client("sqs"),
                    lambda_client=self.client("lambda"),
                    stream_arn=source,
                    function_name=function_name,
                    mapping=mapping,
                    region=self.region,
                    interval=self.intervals.stream,
                )
            else:
                logger.warning("event source not offline mapping=%s source=%s", logical_id, source)
                continue
            self.pollers.append(poller)
        self.status_poller = ExecutionStatusPoller(
            stepfunctions=self.client("stepfunctions"),
            sqs=self.client("sqs"),
            lambda_client=self.client("lambda"),
            rules=provisioned.rules,
            functions=provisioned,
            account=self.account_id,
            region=self.region,
            interval=self.intervals.status,
        )
        moto_patches.apply(status_listener=self.status_poller.told)
        self.pollers.append(self.status_poller)
        self.pollers.append(
            ScheduleTicker(
                schedules=provisioned.schedules,
                lambda_client=self.client("lambda"),
                sqs=self.client("sqs"),
                is_function=provisioned.function_of,
                interval=self.intervals.reconcile,
            )
        )
        for poller in self.pollers:
            poller.start()

    # -- using it -----------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """A boto3 client of the moto server (cached per service; clients are thread-safe)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto accepts any key
                config=_CLIENT_CONFIG,
            )
        return self._clients[service]

    @property
    def outputs(self) -> dict[str, str]:
        """The template's Outputs, resolved to the local resources."""
        return dict(self.provisioned.outputs)

    def state_machine_arn(self, workflow: str) -> str:
        """The ARN of coordinated workflow `workflow` (`<WorkflowPrefix><workflow>`)."""
        prefix = self.outputs["WorkflowPrefix"]
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{prefix}{workflow}"

    def submit(self, message: dict[str, Any] | str) -> str:
        """Send one process message to the process queue; returns the SQS message id."""
        body = message if isinstance(message, str) else json.dumps(message)
        response = self.client("sqs").send_message(QueueUrl=self.outputs["ProcessQueueUrl"], MessageBody=body)
        return str(response["MessageId"])

    def start_execution(
        self, state_machine_arn: str, execution_input: dict[str, Any], name: str | None = None
    ) -> str:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "input": json.dumps(execution_input)}
        if name:
            kwargs["name"] = name
        return str(self.client("stepfunctions").start_execution(**kwargs)["executionArn"])

    def payload_state(self, payload_id: str) -> dict[str, Any] | None:
        """The payload's STATE row as plain values, or None if it has none yet."""
        from boto3.dynamodb.types import TypeDeserializer

        item = (
            self.client("dynamodb")
            .get_item(
                TableName=self.outputs["TableName"],
                Key={"payload_id": {"S": payload_id}, "sk": {"S": "STATE"}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if item is None:
            return None
        deserializer = TypeDeserializer()
        return {key: deserializer.deserialize(value) for key, value in item.items()}

    def wait_for_payload(self, payload_id: str, timeout: float = 30.0, poll: float = 0.05) -> dict[str, Any]:
        """Wait until the payload's STATE is final; returns the row."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.payload_state(payload_id)
            if state is not None and state.get("state") in FINAL:
                return state
            time.sleep(poll)
        raise StackTimeout(
            f"payload {payload_id} not final after {timeout}s: {self.payload_state(payload_id)}"
        )

    def wait_for_execution(
        self, execution_arn: str, timeout: float = 30.0, poll: float = 0.05
    ) -> dict[str, Any]:
        """Wait until the execution has ended; returns DescribeExecution's answer."""
        deadline = time.monotonic() + timeout
        sfn = self.client("stepfunctions")
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] in FINAL_STATUSES:
                return dict(described)
            time.sleep(poll)
        raise StackTimeout(f"execution {execution_arn} still running after {timeout}s")

    def executions(self, workflow: str) -> list[dict[str, Any]]:
        """Every execution of coordinated workflow `workflow`, newest first."""
        paginator = self.client("stepfunctions").get_paginator("list_executions")
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(stateMachineArn=self.state_machine_arn(workflow)):
            found.extend(page["executions"])
        return found

    def dead_letters(self, queue_output: str = "ProcessQueueUrl") -> list[dict[str, Any]]:
        """Messages on the process dead-letter queue (received, then left visible again)."""
        sqs = self.client("sqs")
        dlq_arn = json.loads(
            sqs.get_queue_attributes(QueueUrl=self.outputs[queue_output], AttributeNames=["RedrivePolicy"])[
                "Attributes"
            ]["RedrivePolicy"]
        )["deadLetterTargetArn"]
        url = sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[1])["QueueUrl"]
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        return list(messages)
