"""The coordinator from Python: `Coordinator(...).submit(...)` and the rest, for a team's own code.

Messages are the process Lambda's own models (`coordinator.messages`), so a message process
would refuse fails here, in the caller's code, and not later in the dead-letter queue.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from coordinator.messages import Callback, ProcessMessage, TickSchedule
from coordinator.schedule import MAX_INLINE_LIMIT, MapMode
from coordinator.states import ACTIVE, FINAL
from coordinator_tools import backfills, inspection, sending
from coordinator_tools.inspection import NotFound, Policy
from coordinator_tools.target import Target, resolve

__all__ = [
    "Callback",
    "Coordinator",
    "NotFound",
    "ProcessMessage",
    "StillRunning",
    "TickSchedule",
    "TimedOut",
]


class TimedOut(TimeoutError):
    """A payload not final within the time `wait` was given."""


class StillRunning(Exception):
    """A re-run asked of a payload still CLAIMED or PROCESSING: process would drop it."""


class Coordinator:
    """One coordinator stack: its process queue, table and backfill state machine."""

    def __init__(self, target: Target) -> None:
        self.target = target

    @classmethod
    def from_stack(
        cls, stack_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> Coordinator:
        """A deployed stack, its resources read from its CloudFormation Outputs."""
        return cls(resolve(stack_name=stack_name, endpoint_url=endpoint_url, local=False, region=region))

    @classmethod
    def local(cls) -> Coordinator:
        """The offline stack `coordinator local up` is running (the CLI's `--local`)."""
        return cls(resolve(stack_name=None, endpoint_url=None, local=True, region=None))

    @classmethod
    def from_outputs(
        cls, outputs: dict[str, str], *, region: str, endpoint_url: str | None = None
    ) -> Coordinator:
        """A stack whose Outputs the caller already has (an in-process offline stack)."""
        return cls(Target(outputs=dict(outputs), region=region, endpoint_url=endpoint_url))

    def submit(
        self,
        message: ProcessMessage | str,
        input: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        schedule_time: datetime | str | None = None,
        replace: bool = False,
    ) -> str:
        """Send a payload (a `ProcessMessage`, or a workflow name and its fields); its id."""
        if isinstance(message, str):
            message = ProcessMessage.model_validate(
                {
                    "workflow": message,
                    "input": input or {},
                    "id": id,
                    "scheduleTime": schedule_time,
                    "replace": replace,
                }
            )
        body = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        payload_id = sending.submission(body)
        sending.check_submission(self.target, body)
        sending.send(self.target, body)
        return payload_id

    def status(self, payload_id: str) -> dict[str, Any]:
        """The payload's state, attempt, execution, timestamps and error (`NotFound` if none)."""
        return inspection.payload_status(self.target, payload_id)

    def wait(
        self,
        payload_id: str,
        timeout: float = 600.0,
        poll: float = 0.5,
        on_state: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The payload's status once it is final; `TimedOut` if it is not within `timeout`.
        `on_state` hears each state it passes through (QUEUED until process has its message)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                status = self.status(payload_id)
            except NotFound:
                status = {"state": "QUEUED"}
            if status["state"] != last:
                last = status["state"]
                if on_state:
                    on_state(last)
            if status["state"] in FINAL:
                return status
            if time.monotonic() >= deadline:
                raise TimedOut(f"{payload_id} not final after {timeout}s (last state {last})")
            time.sleep(poll)

    def rerun(self, payload_id: str, *, redrive: bool = False) -> str:
        """Run an ended payload again: a new attempt, or (`redrive`) its failed execution
        redriven from the failed state (`sending.NotRedrivable` says why not). The SQS message id."""
        current = self.status(payload_id)
        if current["state"] in ACTIVE:
            raise StillRunning(
                f"{payload_id} is still {current['state']} (attempt {current['attempt']}): nothing sent, "
                "a re-run is dropped until it ends"
            )
        body = (
            sending.redrive_message(self.target, payload_id)
            if redrive
            else sending.rerun_message(self.target, payload_id)
        )
        return sending.send(self.target, body)

    def backfill(
        self,
        workflow: str,
        *,
        schedule: str,
        start: str,
        stop: str,
        timezone: str = "UTC",
        policy: Policy | str = Policy.MISSING,
        input: dict[str, Any] | None = None,
        map_mode: MapMode | str = MapMode.AUTO,
        inline_limit: int | None = None,
        max_concurrency: int | None = None,
        newest_first: bool = False,
        page_size: int | None = None,
        pages_per_execution: int | None = None,
        name: str | None = None,
    ) -> str:
        """Start a backfill of the schedule's ticks in [start, stop); its id (the first
        execution's ARN), for `backfill_status`.

        `map_mode` "auto" runs inline up to `inline_limit` ticks and distributed past it. What
        is left None takes the state machine's default for the mode that runs (inline: 10 at
        once, pages of 50, 20 an execution; distributed: 1,000 at once, pages of 5,000, 50)."""
        if policy not in set(Policy):
            raise ValueError(f"policy is {', '.join(Policy)}")
        if map_mode not in set(MapMode):
            raise ValueError(f"map_mode is {', '.join(MapMode)}")
        if inline_limit is not None and not 0 <= inline_limit <= MAX_INLINE_LIMIT:
            raise ValueError(f"inline_limit is 0..{MAX_INLINE_LIMIT:,}")
        inspection.tick_count(
            schedule=schedule, start=start, stop=stop, timezone=timezone
        )  # checks the range
        request: dict[str, Any] = {
            "workflow": workflow,
            "input": input or {},
            "start": start,
            "stop": stop,
            "schedule": schedule,
            "timezone": timezone,
            "policy": str(policy),
            "map_mode": str(map_mode),
            "order": "desc" if newest_first else "asc",
        }
        chosen = {
            "inline_limit": inline_limit,
            "max_concurrency": max_concurrency,
            "page_size": page_size,
            "pages_per_execution": pages_per_execution,
        }
        request |= {key: value for key, value in chosen.items() if value is not None}
        return backfills.start(self.target, request, name or f"backfill-{workflow}-{uuid.uuid4().hex[:12]}")

    def backfill_status(self, backfill_id: str) -> backfills.Backfill:
        """A backfill followed across its continuations: its status and counts."""
        return backfills.load(self.target, backfill_id)
