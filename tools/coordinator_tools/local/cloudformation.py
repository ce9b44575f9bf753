"""template.yaml as CloudFormation: the SAM transform run offline, and intrinsics resolved locally.

The offline stack provisions from the template itself, never from a second description of the
infrastructure. aws-sam-translator expands the `AWS::Serverless::*` resources exactly as the
deploy-time transform does (functions, their event source mappings, schedules, state machines
and roles); `Intrinsics` then resolves `Ref`, `Fn::GetAtt`, `Fn::Sub` and friends to the local
resources, provisioning each referenced resource on first use (so references order creation).

The translator wants S3 locations where the template has local paths (`sam build` and
`sam package` normally rewrite them): they are swapped for `s3://offline/<path>` before the
transform and read back from the result, so the stack knows each function's and state
machine's directory or file in the checkout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

OFFLINE_BUCKET = "offline"
PSEUDO_PARAMETERS = ("AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::Partition", "AWS::URLSuffix")

# The property of each serverless resource that names a local path.
_LOCAL_PATH_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


class TemplateError(Exception):
    """The template cannot be translated or resolved offline (an unsupported construct)."""


def no_managed_policies() -> dict[str, str]:
    """The managed-policy loader: offline there is no IAM to list AWS managed policies from.

    The translator calls it only for policies named by their AWS managed name; the template
    names none (it refers to its own `AWS::IAM::ManagedPolicy` resources), so it stays empty.
    """
    return {}


def translate(
    template_path: Path, *, region: str, account_id: str, stack_name: str, parameters: Mapping[str, str]
) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of `template_path`."""
    sam = yaml_parse(template_path.read_text(encoding="utf-8"))
    for body in sam.get("Resources", {}).values():
        path_property = _LOCAL_PATH_PROPERTY.get(body.get("Type", ""))
        properties = body.get("Properties", {})
        local = properties.get(path_property) if path_property else None
        if isinstance(local, str) and not local.startswith("s3://"):
            properties[path_property] = f"s3://{OFFLINE_BUCKET}/{local}"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    values: dict[str, Any] = {"AWS::AccountId": account_id, "AWS::StackName": stack_name, **parameters}
    try:
        translated: dict[str, Any] = translator.translate(
            sam, parameter_values=values, get_managed_policy_map=no_managed_policies
        )
        return translated
    finally:
        # The translator counts its own usage for a publisher that, offline, discards it; left
        # unpublished, it warns "There are unpublished metrics" whenever it is collected.
        translator.metrics.publish()


def local_path(location: Any) -> str | None:
    """The checkout path behind an `s3://offline/...` location the translation left behind."""
    if isinstance(location, dict):
        bucket = location.get("Bucket", location.get("S3Bucket"))
        key = location.get("Key", location.get("S3Key"))
        if bucket == OFFLINE_BUCKET and isinstance(key, str):
            return key
    return None


@dataclass
class Intrinsics:
    """CloudFormation's intrinsic functions over local resources.

    `physical(logical_id)` and `attribute(logical_id, name)` come from the provisioner: asking
    for a resource that does not exist yet creates it.
    """

    template: dict[str, Any]
    pseudo: dict[str, str]
    physical: Callable[[str], str]
    attribute: Callable[[str, str], str]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, definition in self.template.get("Parameters", {}).items():
            if name not in self.parameters and "Default" in definition:
                self.parameters[name] = definition["Default"]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": lambda arg: str(self.resolve(arg[0])).join(str(p) for p in self.resolve(arg[1])),
            "Fn::If": self._if,
            "Fn::Equals": lambda arg: self.resolve(arg[0]) == self.resolve(arg[1]),
            "Fn::Not": lambda arg: not self.resolve(arg[0]),
            "Condition": lambda name: self.condition(name),
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Resources", {}):
            return self.physical(name)
        raise TemplateError(f"Ref to unknown name {name!r}")

    def _get_att(self, argument: Any) -> str:
        logical_id, name = argument.split(".", 1) if isinstance(argument, str) else argument
        return self.attribute(logical_id, self.resolve(name))

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self.resolve(item) for key, item in variables.items()}
        out: list[str] = []
        position = 0
        while (start := text.find("${", position)) != -1:
            out.append(text[position:start])
            end = text.index("}", start)
            name = text[start + 2 : end]
            if name.startswith("!"):  # ${!Literal} is the escape for a literal ${Literal}
                out.append("${" + name[1:] + "}")
            elif name in values:
                out.append(str(values[name]))
            elif "." in name and name.split(".", 1)[0] in self.template.get("Resources", {}):
                out.append(self._get_att(name))
            else:
                out.append(str(self._ref(name)))
            position = end + 1
        out.append(text[position:])
        return "".join(out)
