"""Project rules for cfn-lint (`cfn-lint --append-rules tools/lint/cfnlint_rules`).

cfn-lint hands appended rules the template as written (before the SAM transform), so the rules
read SAM's own shapes too: `Policies` statements of serverless resources and `SQS` events of
serverless functions, as well as plain IAM resources and event source mappings. Stock checks
miss both mistakes below: checkov flags `service:*` only together with `Resource: "*"`, and
nothing flags a consumed queue without a dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _statements(node: Any, path: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    """Every IAM statement (a dict with Effect and Action) anywhere under `node`."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield node, path
            return
        for key, value in node.items():
            yield from _statements(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _statements(value, [*path, index])


def _is_wildcard(action: Any) -> bool:
    return isinstance(action, str) and (action == "*" or action.endswith(":*"))


class NoWildcardAction(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "No wildcard IAM action"
    description = 'Every policy names its actions: no "*" or "service:*" action, and no NotAction'
    source_url = "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html"
    tags: ClassVar[list[str]] = ["resources", "iam", "coordinator"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for name, resource in cfn.template.get("Resources", {}).items():
            where = ["Resources", name, "Properties"]
            for statement, path in _statements(resource.get("Properties", {}), where):
                if "NotAction" in statement:
                    message = f"{name}: NotAction grants everything else"
                    matches.append(RuleMatch([*path, "NotAction"], message))
                actions = statement.get("Action", [])
                for action in actions if isinstance(actions, list) else [actions]:
                    if _is_wildcard(action):
                        matches.append(RuleMatch([*path, "Action"], f"{name}: wildcard action {action!r}"))
        return matches


class ConsumedQueueHasDeadLetterQueue(CloudFormationLintRule):
    id = "E9102"
    shortdesc = "A consumed SQS queue has a redrive policy"
    description = (
        "Every SQS queue a Lambda event source mapping reads has a RedrivePolicy with a "
        "deadLetterTargetArn, so a poison message ends in a dead-letter queue, not in a loop"
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html"
    tags: ClassVar[list[str]] = ["resources", "sqs", "coordinator"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        resources = cfn.template.get("Resources", {})
        matches = []
        for name, source in _event_sources(resources):
            queue = _queue_of(source, resources)
            if queue is None:
                continue
            redrive = resources[queue].get("Properties", {}).get("RedrivePolicy") or {}
            if "deadLetterTargetArn" not in redrive:
                matches.append(
                    RuleMatch(
                        ["Resources", queue, "Properties"],
                        f"{queue} is consumed by {name} but has no RedrivePolicy.deadLetterTargetArn",
                    )
                )
        return matches


def _event_sources(resources: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(consumer, source ARN expression) for event source mappings and SAM SQS events."""
    for name, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            yield name, properties.get("EventSourceArn")
        elif resource.get("Type") == "AWS::Serverless::Function":
            for event in (properties.get("Events") or {}).values():
                if event.get("Type") == "SQS":
                    yield name, event.get("Properties", {}).get("Queue")


def _queue_of(source: Any, resources: dict[str, Any]) -> str | None:
    """The logical id of the SQS queue an `EventSourceArn` points at, if it is one of ours."""
    if isinstance(source, dict) and "Fn::GetAtt" in source:
        target = source["Fn::GetAtt"]
        name = target[0] if isinstance(target, list) else str(target).split(".")[0]
        if resources.get(name, {}).get("Type") == "AWS::SQS::Queue":
            return str(name)
    return None
