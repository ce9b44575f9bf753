"""Deterministic identities: payload ids, execution names and execution ARNs.

Identity is what makes re-submission idempotent: the same payload always has the same id, and
attempt N of it always has the same execution name, so its execution ARN is known before the
execution is started and Step Functions itself refuses a second execution of that attempt.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

# The reserved key of an execution's input that carries the coordinator's metadata
# (payload id, attempt...): update-state reads the payload id back from it.
METADATA_KEY = "coordinator"

# Step Functions names: 1-80 characters; this subset is valid everywhere (ARNs, CloudWatch, URLs).
EXECUTION_NAME_MAX = 80
_NOT_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_-]+")


def canonical_json(value: Any) -> str:
    """One JSON text per value: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_utc(moment: datetime) -> str:
    """`2022-02-15T01:00:00Z`: the one textual form of an instant in ids and outputs."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: an instant needs a timezone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_payload_id(workflow: str, schedule_time: datetime) -> str:
    """The id of a scheduled run: the same for the live schedule, a retry and a backfill."""
    return f"{workflow}/{format_utc(schedule_time)}"


def input_digest(payload_input: Any) -> str:
    """sha256 of the canonical JSON of a payload's input: what it runs on, in 64 characters."""
    return hashlib.sha256(canonical_json(payload_input).encode()).hexdigest()


def content_payload_id(workflow: str, payload_input: Any) -> str:
    """The id of an unscheduled run without an explicit id: what it runs on, hashed."""
    return f"{workflow}/sha256-{input_digest(payload_input)}"


def execution_name(payload_id: str, attempt: int) -> str:
    """`<readable part of the id>-a<attempt>-<hash of id and attempt>`, at most 80 characters.

    The hash keeps two ids that slug alike apart; the readable prefix is for humans in the
    console. Deterministic, so a redelivered message computes the same name and StartExecution
    answers with the existing execution instead of starting a second one.
    """
    if attempt < 1:
        raise ValueError("attempts count from 1")
    digest = hashlib.sha256(f"{payload_id}\n{attempt}".encode()).hexdigest()[:24]
    suffix = f"-a{attempt}-{digest}"
    slug = _NOT_NAME_CHARACTER.sub("-", payload_id).strip("-")
    return f"{slug[: EXECUTION_NAME_MAX - len(suffix)]}{suffix}".lstrip("-")


def state_machine_arn(prefix: str, workflow: str) -> str:
    return f"{prefix}{workflow}"


def execution_arn(state_machine: str, name: str) -> str:
    """The ARN Step Functions gives an execution of `state_machine` named `name`."""
    head, separator, machine = state_machine.rpartition(":stateMachine:")
    if not separator:
        raise ValueError("not a state machine ARN")
    return f"{head}:execution:{machine}:{name}"


def state_machine_of(execution: str) -> str:
    """The ARN of the state machine an execution ARN belongs to."""
    head, _ = _split_execution(execution)
    return head.replace(":execution:", ":stateMachine:", 1)


def execution_name_of(execution: str) -> str:
    """The name an execution ARN ends with (what StartExecution was given)."""
    return _split_execution(execution)[1]


def _split_execution(execution: str) -> tuple[str, str]:
    head, separator, name = execution.rpartition(":")
    if ":execution:" not in head or not separator or not name:
        raise ValueError("not an execution ARN")
    return head, name


def redrive_client_token(payload_id: str, attempt: int, redrive_count: int) -> str:
    """RedriveExecution's `clientToken` for redrive `redrive_count` of an attempt (64 characters).

    Deterministic, so every try of that one redrive (a redelivered message, reconcile) sends
    the same token and Step Functions redrives once.
    """
    return hashlib.sha256(f"{payload_id}\n{attempt}\nredrive {redrive_count}".encode()).hexdigest()


def token_key(task_token: str) -> str:
    """Sort key of a waiter: the token's hash (tokens are long, and secret enough not to log)."""
    return "WAITER#" + token_digest(task_token)


def token_digest(task_token: str) -> str:
    return hashlib.sha256(task_token.encode()).hexdigest()


def now_utc() -> datetime:
    return datetime.now(UTC)
