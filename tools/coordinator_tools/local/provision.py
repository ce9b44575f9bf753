"""Create the translated template's resources in moto: the offline `CloudFormation create-stack`.

Resources are created on first reference (a function's role before the function, a queue's
dead-letter queue before the queue), by type:

- tables (keys, GSIs, stream, TTL), queues (attributes, redrive), roles (trust policy),
- Lambda functions: a zip of `functions/<dir>/` (moto needs one; the code it holds is what
  the in-process runtime imports) with the function's resolved Environment,
- state machines: the ASL file with its DefinitionSubstitutions resolved to local ARNs,
- the EventBridge rule and the EventBridge Scheduler schedules, as data for the pollers too.

Event source mappings are *not* created in moto: moto runs them synchronously inside
SendMessage and PutItem, which no AWS event source does. Their resolved properties go to the
pollers in `sources`. Alarms, dashboards, keys, topics, log groups and managed policies have no
offline behaviour and are listed as skipped.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator_tools.local.cloudformation import Intrinsics, TemplateError, local_path
from coordinator_tools.local.runtime import FunctionCode

logger = logging.getLogger(__name__)

# Template properties of AWS::SQS::Queue that are SetQueueAttributes names as they stand.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


def create_table_request(props: dict[str, Any], table_name: str) -> dict[str, Any]:
    """`create_table` arguments from an `AWS::DynamoDB::Table`'s Properties: keys, attributes,
    indexes, stream and billing (TTL is a separate call). Intrinsics are left as they are."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in _INDEX_KEYS if key in index}
            for index in props["GlobalSecondaryIndexes"]
        ]
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
    if stream := props.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


@dataclass
class Provisioned:
    """What was created, by logical id, and what the pollers need to act like AWS."""

    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    functions: dict[str, FunctionCode] = field(default_factory=dict)  # by logical id
    event_source_mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    function_configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # resolved, by logical id
    # Asynchronous invocation settings (MaximumRetryAttempts, ...) by function name.
    invoke_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def function_by_arn(self, arn: str) -> FunctionCode | None:
        return next((code for code in self.functions.values() if code.arn == arn), None)

    # -- what EventBridge needs to deliver to a function target (`status_events.FunctionTargets`)

    def function_of(self, arn: str) -> str | None:
        code = self.function_by_arn(arn)
        return code.name if code else None

    def retries_of(self, function_name: str) -> int:
        """Lambda retries a failed asynchronous invocation twice unless the function says otherwise."""
        return int(self.invoke_configs.get(function_name, {}).get("MaximumRetryAttempts", 2))

    def dead_letter_of(self, function_name: str) -> str | None:
        for logical_id, code in self.functions.items():
            if code.name == function_name:
                target = self.function_configs[logical_id].get("DeadLetterConfig", {})
                return target.get("TargetArn") if isinstance(target, dict) else None
        return None


class Provisioner:
    def __init__(
        self,
        template: dict[str, Any],
        *,
        root: Path,
        clients: Callable[[str], Any],
        pseudo: dict[str, str],
        parameters: dict[str, Any],
        register_function: Callable[[FunctionCode], None],
    ) -> None:
        self.template = template
        self.root = root
        self.client = clients
        self.stack_name = pseudo["AWS::StackName"]
        self.result = Provisioned()
        self.register_function = register_function
        self._creating: set[str] = set()
        self.intrinsics = Intrinsics(
            template, pseudo, physical=self.physical, attribute=self.attribute, parameters=dict(parameters)
        )
        self._creators: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::IAM::Role": self._role,
            "AWS::Lambda::Function": self._function,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::Events::Rule": self._rule,
            "AWS::Scheduler::Schedule": self._schedule,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
        }

    # -- the whole stack --------------------------------------------------------------------
    def provision(self) -> Provisioned:
        for logical_id, body in self.template["Resources"].items():
            if "Condition" in body and not self.intrinsics.condition(body["Condition"]):
                continue
            if body["Type"] in self._creators:
                self.physical(logical_id)
            else:
                self.result.skipped.append(f"{logical_id} ({body['Type']})")
        for name, output in self.template.get("Outputs", {}).items():
            if "Condition" in output and not self.intrinsics.condition(output["Condition"]):
                continue
            try:
                self.result.outputs[name] = str(self.intrinsics.resolve(output["Value"]))
            except TemplateError as missing:
                # An output of something with no offline form (the alarm topic): left out.
                logger.info("output not offline output=%s reason=%s", name, missing)
        logger.info(
            "stack provisioned resources=%d skipped=%d",
            len(self.result.physical),
            len(self.result.skipped),
        )
        return self.result

    # -- references: create on first use ----------------------------------------------------
    def physical(self, logical_id: str) -> str:
        if logical_id not in self.result.physical:
            self._create(logical_id)
        return self.result.physical[logical_id]

    def attribute(self, logical_id: str, name: str) -> str:
        if logical_id not in self.result.physical:
            self._create(logical_id)
        try:
            return self.result.attributes[logical_id][name]
        except KeyError:
            raise TemplateError(f"offline stack does not know {logical_id}.{name}") from None

    def _create(self, logical_id: str) -> None:
        body = self.template["Resources"].get(logical_id)
        if body is None:
            raise TemplateError(f"no resource {logical_id}")
        creator = self._creators.get(body["Type"])
        if creator is None:
            raise TemplateError(f"{logical_id} ({body['Type']}) is referenced but has no offline form")
        if logical_id in self._creating:
            raise TemplateError(f"circular reference through {logical_id}")
        self._creating.add(logical_id)
        try:
            creator(logical_id, body.get("Properties", {}))
        finally:
            self._creating.discard(logical_id)

    def _name(self, logical_id: str, limit: int = 64) -> str:
        return f"{self.stack_name}-{logical_id}"[:limit]

    def _resolve(self, value: Any) -> Any:
        return self.intrinsics.resolve(value)

    # -- resource types ---------------------------------------------------------------------
    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        dynamodb = self.client("dynamodb")
        name = self._resolve(props.get("TableName")) or self._name(logical_id, 255)
        kwargs = create_table_request(props, name)
        table = dynamodb.create_table(**self._resolve(kwargs))["TableDescription"]
        if ttl := props.get("TimeToLiveSpecification"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl["Enabled"]),
                },
            )
        self._record(
            logical_id,
            name,
            Arn=table["TableArn"],
            StreamArn=table.get("LatestStreamArn", ""),
        )

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        sqs = self.client("sqs")
        name = self._resolve(props.get("QueueName")) or self._name(logical_id, 80)
        attributes = {
            key: str(self._resolve(props[key])).lower()
            if isinstance(props[key], bool)
            else str(self._resolve(props[key]))
            for key in _QUEUE_ATTRIBUTES
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(self._resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._record(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    def _role(self, logical_id: str, props: dict[str, Any]) -> None:
        # Only the trust policy: moto does not enforce permissions, so inline policies offline
        # would be unresolvable noise (log group ARNs, ...), not protection.
        name = self._resolve(props.get("RoleName")) or self._name(logical_id)
        role = self.client("iam").create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(self._resolve(props["AssumeRolePolicyDocument"])),
        )["Role"]
        self._record(logical_id, name, Arn=role["Arn"], RoleId=role["RoleId"])

    def _function(self, logical_id: str, props: dict[str, Any]) -> None:
        code_dir = local_path(props.get("Code"))
        if code_dir is None:
            raise TemplateError(f"{logical_id} has no local code directory")
        name = self._resolve(props.get("FunctionName")) or self._name(logical_id)
        environment = {
            key: str(value)
            for key, value in self._resolve(props.get("Environment", {}).get("Variables", {})).items()
        }
        function = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.13"),
            Role=self._resolve(props["Role"]),
            Handler=props.get("Handler", "app.lambda_handler"),
            Code={"ZipFile": _zip_directory(self.root / code_dir)},
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Environment={"Variables": environment},
            Architectures=props.get("Architectures", ["x86_64"]),
        )
        code = FunctionCode(
            name=name,
            logical_id=logical_id,
            code_dir=code_dir,
            handler=props.get("Handler", "app.lambda_handler"),
            timeout_seconds=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            arn=function["FunctionArn"],
        )
        self.register_function(code)
        self.result.functions[logical_id] = code
        self.result.function_configs[logical_id] = {
            "DeadLetterConfig": self._resolve(props.get("DeadLetterConfig", {})),
            "Environment": environment,
        }
        self._record(logical_id, name, Arn=function["FunctionArn"])

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> None:
        definition_file = local_path(props.get("DefinitionS3Location"))
        if definition_file is not None:
            definition = (self.root / definition_file).read_text(encoding="utf-8")
        elif "Definition" in props:
            definition = json.dumps(self._resolve(props["Definition"]))
        else:
            raise TemplateError(f"{logical_id} has neither a local definition file nor a Definition")
        for placeholder, value in self._resolve(props.get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + placeholder + "}", str(value))
        name = self._resolve(props.get("StateMachineName")) or self._name(logical_id, 80)
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=self._resolve(props["RoleArn"]),
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        self._record(logical_id, arn, Arn=arn, Name=name)

    def _rule(self, logical_id: str, props: dict[str, Any]) -> None:
        events = self.client("events")
        name = self._resolve(props.get("Name")) or self._name(logical_id)
        pattern = self._resolve(props["EventPattern"])
        state = self._resolve(props.get("State", "ENABLED"))
        arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern), State=state)["RuleArn"]
        self._record(logical_id, name, Arn=arn)
        targets = self._resolve(props.get("Targets", []))
        if targets:
            events.put_targets(Rule=name, Targets=targets)
        self.result.rules[logical_id] = {"name": name, "pattern": pattern, "state": state, "targets": targets}

    def _schedule(self, logical_id: str, props: dict[str, Any]) -> None:
        resolved = self._resolve(props)
        name = resolved.get("Name") or self._name(logical_id)
        arn = self.client("scheduler").create_schedule(
            Name=name,
            ScheduleExpression=resolved["ScheduleExpression"],
            FlexibleTimeWindow=resolved["FlexibleTimeWindow"],
            Target={key: value for key, value in resolved["Target"].items() if key in _SCHEDULE_TARGET_KEYS},
            State=resolved.get("State", "ENABLED"),
            **(
                {"ScheduleExpressionTimezone": resolved["ScheduleExpressionTimezone"]}
                if "ScheduleExpressionTimezone" in resolved
                else {}
            ),
        )["ScheduleArn"]
        self._record(logical_id, name, Arn=arn)
        self.result.schedules[logical_id] = {
            **resolved,
            "Name": name,
            "State": resolved.get("State", "ENABLED"),
        }

    def _event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> None:
        resolved = self._resolve(props)
        self.result.event_source_mappings[logical_id] = resolved
        self._record(logical_id, logical_id)

    def _event_invoke_config(self, logical_id: str, props: dict[str, Any]) -> None:
        resolved = self._resolve(props)
        self.result.invoke_configs[resolved["FunctionName"]] = resolved
        self._record(logical_id, logical_id)

    def _record(self, logical_id: str, physical: str, **attributes: str) -> None:
        self.result.physical[logical_id] = physical
        self.result.attributes[logical_id] = attributes
        logger.debug("resource created logical_id=%s physical=%s", logical_id, physical)


_SCHEDULE_TARGET_KEYS = ("Arn", "RoleArn", "Input", "RetryPolicy", "DeadLetterConfig")


def _zip_directory(directory: Path) -> bytes:
    """The function's deployment package, as `sam build` would zip it (minus the layer)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()
