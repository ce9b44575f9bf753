"""The AWS clients and settings a flow works with, built once per Lambda container.

Flows take a `Services` rather than reaching for globals, so tests hand them moto-backed or
stubbed clients and a fixed clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from typing import Any

import boto3
from botocore.config import Config

from coordinator.identity import now_utc
from coordinator.settings import Settings, settings
from coordinator.table import PayloadTable

# Standard retry mode backs off on throttling and 5xx before a record is given up on.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@dataclass
class Services:
    settings: Settings
    dynamodb: Any
    stepfunctions: Any
    sqs: Any
    clock: Callable[[], datetime] = field(default=now_utc)
    # State machine ARN -> its type (STANDARD or EXPRESS), learnt once per container: a
    # state machine's type cannot change (`coordinator.process.refuse_express`).
    machine_types: dict[str, str] = field(default_factory=dict)

    @cached_property
    def table(self) -> PayloadTable:
        """The table over `dynamodb`, built on first use and kept (a copy made with
        `dataclasses.replace` builds its own)."""
        return PayloadTable(self.dynamodb, self.settings.table_name)

    @classmethod
    def from_settings(cls, config: Settings, **clients: Any) -> Services:
        return cls(
            settings=config,
            dynamodb=clients.get("dynamodb") or boto3.client("dynamodb", config=CLIENT_CONFIG),
            stepfunctions=clients.get("stepfunctions") or boto3.client("stepfunctions", config=CLIENT_CONFIG),
            sqs=clients.get("sqs") or boto3.client("sqs", config=CLIENT_CONFIG),
        )


@cache
def services() -> Services:
    """The container's services, created on first use (not at import: cold start stays cheap)."""
    return Services.from_settings(settings())
