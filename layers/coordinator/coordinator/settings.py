"""One settings model, read from the Lambda environment once.

The variable names are the contract with `template.yaml` (each function's `Environment`) and
with the offline stack, which sets the same variables from the template.
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

DAY = 86_400


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    table_name: str = Field(alias="TABLE_NAME")
    # ARN of a state machine minus the workflow name: workflow "ingest" runs `<prefix>ingest`.
    state_machine_arn_prefix: str = Field(default="", alias="STATE_MACHINE_ARN_PREFIX")
    # Where process sends records that can never succeed, with their reason.
    dead_letter_queue_url: str = Field(default="", alias="DEAD_LETTER_QUEUE_URL")
    # How long the audit trail of a resolved waiter is kept before TTL removes it.
    retention_days: int = Field(default=30, ge=1, alias="RETENTION_DAYS")
    # A CLAIMED row older than this with no execution is started again by reconcile.
    lease_seconds: int = Field(default=300, ge=1, alias="RECONCILE_LEASE_SECONDS")
    # Most rows reconcile looks at in one run, so a run always ends well inside its timeout.
    reconcile_batch: int = Field(default=200, ge=1, alias="RECONCILE_BATCH_SIZE")
    # Outputs up to this size travel inline to waiters; larger ones by reference.
    output_inline_bytes: int = Field(default=32_768, ge=0, le=200_000, alias="OUTPUT_INLINE_BYTES")
    # Incoming process messages above this size are rejected as invalid.
    max_message_bytes: int = Field(default=262_144, ge=1, alias="MAX_MESSAGE_BYTES")
    # How many waiter moves settle has in flight at once (threads over one boto3 client). Each
    # move is one conditional write to the payload's partition; 8 keep it at its 1,000 WCU/s
    # at ~5-10 ms a write (docs/scaling.md). 1 moves them one at a time.
    move_concurrency: int = Field(default=8, ge=1, le=64, alias="SETTLE_MOVE_CONCURRENCY")
    # How many records of one stream batch the dispatcher handles at once (threads over the
    # container's clients; a record's own calls stay in order). 1 handles them one after another;
    # the template sets 10, which lets one shard's ten batches reach SendTaskSuccess's refill.
    dispatch_concurrency: int = Field(default=1, ge=1, le=64, alias="DISPATCH_CONCURRENCY")

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * DAY

    @classmethod
    def from_env(cls) -> Settings:
        return cls.model_validate(dict(os.environ))


@cache
def settings() -> Settings:
    """The process-wide settings, read once per Lambda container."""
    return Settings.from_env()
