"""`template.yaml` as data, so tests and benchmarks build their resources from the template's own
definitions.

The template is parsed with cfn-lint's decoder, which understands the CloudFormation short tags
(`!Ref`, `!Sub`, `!GetAtt`...) and returns them in their long form (`{"Fn::Sub": ...}`). Nothing
here copies a schema: change the table in the template and every fixture follows.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from coordinator_tools.kit import ROOT
from coordinator_tools.local.cloudformation import Intrinsics
from coordinator_tools.local.provision import create_table_request

TEMPLATE_PATH = ROOT / "template.yaml"
STATEMACHINES_DIR = ROOT / "statemachines"


class TemplateError(Exception):
    """template.yaml could not be parsed, or lacks what a caller asked for."""


def _plain(value: Any) -> Any:
    """cfn-lint's node classes (dict/list/str subclasses carrying line marks) as plain Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


@cache
def _load(path: Path) -> dict[str, Any]:
    template, matches = decode(str(path))
    if matches or template is None:
        raise TemplateError(f"{path.name} does not parse: {[str(m) for m in matches]}")
    plain: dict[str, Any] = _plain(template)
    return plain


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The whole template as plain dicts and lists (a fresh copy: callers may mutate it)."""
    copied: dict[str, Any] = json.loads(json.dumps(_load(path)))
    return copied


def resources(resource_type: str | None = None) -> dict[str, dict[str, Any]]:
    """Resources by logical id, optionally only those of one `Type`."""
    found: dict[str, dict[str, Any]] = load_template()["Resources"]
    if resource_type is None:
        return found
    return {name: body for name, body in found.items() if body["Type"] == resource_type}


def resource(logical_id: str) -> dict[str, Any]:
    """One resource (`Type`, `Properties`, ...) by logical id."""
    try:
        return resources()[logical_id]
    except KeyError:
        raise TemplateError(f"template.yaml has no resource {logical_id}") from None


def properties(logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = resource(logical_id).get("Properties", {})
    return found


def with_parameters(value: Any, template: dict[str, Any] | None = None, **parameters: str) -> Any:
    """`value` with its `Ref`s and `Fn::Sub`s of parameters resolved as CloudFormation would,
    from `parameters` or else the defaults of `template` (template.yaml unless given);
    resources and attributes stay symbolic."""
    intrinsics = Intrinsics(
        template or load_template(),
        pseudo={},
        physical=lambda logical_id: logical_id,
        attribute=lambda logical_id, name: f"{logical_id}.{name}",
        parameters=dict(parameters),
    )
    return intrinsics.resolve(value)


def table_create_kwargs(
    logical_id: str = "CoordinatorTable", table_name: str | None = None
) -> dict[str, Any]:
    """boto3 `create_table` kwargs made from the template's table definition.

    Keys, attribute definitions, global secondary indexes, stream and billing mode come from the
    template. Time to live is not a `create_table` argument: callers follow up with
    `update_time_to_live(TableName=..., TimeToLiveSpecification=table_ttl_specification())`.
    """
    table = resource(logical_id)
    if table["Type"] != "AWS::DynamoDB::Table":
        raise TemplateError(f"{logical_id} is a {table['Type']}, not a DynamoDB table")
    props = table["Properties"]
    return create_table_request(props, table_name or props.get("TableName") or logical_id)


def table_ttl_specification(logical_id: str = "CoordinatorTable") -> dict[str, Any]:
    """`TimeToLiveSpecification` for `update_time_to_live`, from the template."""
    spec = properties(logical_id).get("TimeToLiveSpecification")
    if not spec:
        raise TemplateError(f"{logical_id} has no TimeToLiveSpecification")
    return {"AttributeName": spec["AttributeName"], "Enabled": bool(spec["Enabled"])}


def function_environment(logical_id: str) -> dict[str, Any]:
    """A function's environment: Globals' variables overlaid by the function's own (unresolved)."""
    template = load_template()
    globals_function = template.get("Globals", {}).get("Function", {})
    variables = dict(globals_function.get("Environment", {}).get("Variables", {}))
    variables.update(properties(logical_id).get("Environment", {}).get("Variables", {}))
    return variables


def state_machine_definitions() -> dict[str, dict[str, Any]]:
    """Each `AWS::Serverless::StateMachine` by logical id: its ASL file, text and substitutions.

    Returns `{logical_id: {"path": Path, "text": str, "substitutions": {...}}}`; the text still
    holds its `${Placeholders}` (see `substitute`).
    """
    found: dict[str, dict[str, Any]] = {}
    for name, body in resources("AWS::Serverless::StateMachine").items():
        props = body["Properties"]
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str):
            raise TemplateError(f"{name} must keep its ASL in a file (DefinitionUri), not inline")
        path = ROOT / uri
        found[name] = {
            "path": path,
            "text": path.read_text(encoding="utf-8"),
            "substitutions": props.get("DefinitionSubstitutions", {}),
        }
    return found


def substitute(text: str, values: dict[str, str]) -> str:
    """Fill `${Name}` placeholders of an ASL file the way DefinitionSubstitutions does."""
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text
