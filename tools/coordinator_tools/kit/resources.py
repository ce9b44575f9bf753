"""The coordinator's resources on moto: its table, made from template.yaml's own definition, and
the state machines that coordinated workflows run as."""

from __future__ import annotations

import json
from typing import Any

from coordinator_tools.kit.environment import ACCOUNT
from coordinator_tools.kit.template import table_create_kwargs, table_ttl_specification


def create_table(client: Any, name: str) -> None:
    """The coordinator table as template.yaml defines it, time to live included."""
    client.create_table(**table_create_kwargs(table_name=name))
    client.update_time_to_live(TableName=name, TimeToLiveSpecification=table_ttl_specification())


def create_workflow(stepfunctions: Any, name: str, account: str = ACCOUNT) -> str:
    """A state machine a coordinated workflow runs as (moto records executions, runs nothing)."""
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    response = stepfunctions.create_state_machine(
        name=name,
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{account}:role/coordinator-workflow",
    )
    return str(response["stateMachineArn"])
