"""The process message: what a feeder or a waiting state machine puts on the process queue.

Two shapes are accepted. The native one:

    {"workflow": "ingest", "input": {...}, "id": "...", "scheduleTime": "...", "replace": false,
     "rerun": "new_attempt",
     "callback": {"token": "...", "waiter": "<execution arn>", "waiter_payload_id": "...",
                  "timeout_seconds": 3600}}

and a cirrus process payload (a STAC ItemCollection with a `process` array), so cirrus feeders
can point here unchanged. Both become a `PayloadRequest`: a payload with its deterministic id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from coordinator.errors import InvalidMessage
from coordinator.identity import (
    METADATA_KEY,
    content_payload_id,
    format_utc,
    input_digest,
    scheduled_payload_id,
)
from coordinator.messages.after import (
    MAX_UPSTREAMS,
    AfterEntry,
    AfterPayload,
    AfterPrevious,
    AfterWindow,
    Upstream,
)
from coordinator.messages.cirrus import CirrusPayload
from coordinator.messages.fields import (
    EXECUTION_INPUT_MAX_BYTES,
    PAYLOAD_ID_MAX_BYTES,
    Callback,
    PayloadId,
    TickSchedule,
    WorkflowName,
)
from coordinator.schedule import data_interval, ticks_between
from coordinator.states import Rerun


class ProcessMessage(BaseModel):
    """The native process message."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    workflow: WorkflowName
    input: dict[str, Any] = Field(default_factory=dict)
    id: PayloadId | None = None
    schedule_time: AwareDatetime | None = Field(default=None, alias="scheduleTime")
    schedule: TickSchedule | None = None
    replace: bool = False
    # How a payload that ended without success runs again: a new attempt, or its execution
    # redriven from the failed state (`coordinator.redrive`).
    rerun: Rerun = Rerun.NEW_ATTEMPT
    callback: Callback | None = None
    # Upstream payloads that must succeed before this one starts (`coordinator.gate`).
    after: list[AfterEntry] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _schedule_time_is_a_tick(self) -> ProcessMessage:
        if self.schedule is not None:
            if self.schedule_time is None:
                raise ValueError("schedule: needs a scheduleTime, the tick of it this payload runs")
            self.schedule.interval(self.schedule_time)
        return self

    @field_validator("input")
    @classmethod
    def _metadata_key_is_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
        if METADATA_KEY in value:
            raise ValueError(f"input.{METADATA_KEY} is reserved for the coordinator's metadata")
        return value

    def payload_id(self) -> str:
        """Explicit id; else workflow + schedule time; else workflow + hash of the input."""
        if self.id is not None:
            return self.id
        if self.schedule_time is not None:
            return scheduled_payload_id(self.workflow, self.schedule_time)
        return content_payload_id(self.workflow, self.input)

    def upstreams(self) -> tuple[Upstream, ...]:
        """The `after` entries as the payloads they name, each once (its shortest timeout)."""
        found: dict[str, Upstream] = {}
        for entry in self.after or ():
            for upstream in self._resolve(entry):
                known = found.get(upstream.payload_id)
                if known is None or upstream.timeout_seconds < known.timeout_seconds:
                    found[upstream.payload_id] = upstream
        if self.payload_id() in found:
            raise ValueError(f"after: payload {self.payload_id()!r} cannot wait for itself")
        if len(found) > MAX_UPSTREAMS:
            raise ValueError(f"after: {len(found)} upstream payloads, over the limit of {MAX_UPSTREAMS}")
        return tuple(found.values())

    def _resolve(self, entry: AfterPayload | AfterWindow | AfterPrevious) -> list[Upstream]:
        if isinstance(entry, AfterPayload):
            if entry.workflow is None:
                assert entry.id is not None
                return [Upstream(entry.id, entry.timeout_seconds)]
            message = ProcessMessage(
                workflow=entry.workflow,
                input=entry.input or {},
                id=entry.id,
                schedule_time=entry.schedule_time,
                schedule=entry.schedule,
            )
            return [Upstream(message.payload_id(), entry.timeout_seconds, request_of(message))]
        if self.schedule is None or self.schedule_time is None:
            kind = "previous" if isinstance(entry, AfterPrevious) else "within"
            raise ValueError(f"after: a `{kind}` entry needs this payload's scheduleTime and schedule")
        start, end = data_interval(
            self.schedule.expression, self.schedule.timezone, self.schedule_time, anchor=self.schedule.start
        )
        if isinstance(entry, AfterPrevious):
            if start is None or (entry.first is not None and self.schedule_time <= entry.first):
                return []
            return [Upstream(scheduled_payload_id(self.workflow, start), entry.timeout_seconds)]
        if start is None:
            raise ValueError("after: `within` needs a data interval, and this tick has no previous tick")
        window = entry.schedule
        upstreams = []
        for tick in ticks_between(window.expression, window.timezone, start, end, anchor=window.start):
            submit = None
            if entry.input is not None:
                submit = request_of(
                    ProcessMessage(
                        workflow=entry.workflow, input=entry.input, schedule_time=tick, schedule=window
                    )
                )
            upstreams.append(
                Upstream(scheduled_payload_id(entry.workflow, tick), entry.timeout_seconds, submit)
            )
        return upstreams


@dataclass(frozen=True)
class PayloadRequest:
    """What process acts on, whatever shape the message had.

    Built only from a message model that was just validated, so a plain value: validating it
    again would copy the input once more per record and build one more model at cold start.
    """

    payload_id: str
    workflow: str
    input: dict[str, Any]
    schedule_time: datetime | None = None
    schedule: TickSchedule | None = None
    replace: bool = False
    rerun: Rerun = Rerun.NEW_ATTEMPT
    callback: Callback | None = None
    # The upstream payloads it starts after (empty: it starts at once).
    after: tuple[Upstream, ...] = ()
    # The sender named the id (`id`): it then also stands for this input (see `identity_conflict`).
    explicit_id: bool = False
    # Execution inputs built so far, by attempt: the parse checks attempt 1's size and the claim
    # writes it, from one build. A `dataclasses.replace` copy starts with none of them.
    _inputs: dict[int, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def input_sha256(self) -> str:
        """The digest of the payload's own input (canonical JSON), kept on STATE to compare."""
        return input_digest(self.input)

    def execution_input(self, attempt: int) -> str:
        """The execution's input: the payload's input plus the coordinator's metadata.

        Deterministic for a given attempt, so a redelivered message restarting the same
        attempt passes StartExecution's same-name-same-input idempotency check.
        """
        if (built := self._inputs.get(attempt)) is not None:
            return built
        metadata: dict[str, Any] = {
            "payload_id": self.payload_id,
            "workflow": self.workflow,
            "attempt": attempt,
            "schedule_time": format_utc(self.schedule_time) if self.schedule_time else None,
        }
        if self.schedule is not None and self.schedule_time is not None:
            metadata.update(self.schedule.interval(self.schedule_time))
        built = json.dumps({**self.input, METADATA_KEY: metadata}, sort_keys=True, separators=(",", ":"))
        self._inputs[attempt] = built
        return built


def parse_process_message(body: str, *, max_bytes: int) -> PayloadRequest:
    """Parse an SQS body into a `PayloadRequest`, or raise `InvalidMessage` saying why.

    The reason names every offending field (unknown fields included), and the task token is
    recovered from a message that fails validation whenever it is there, so its waiter can
    be failed at once rather than left to time out.
    """
    if len(body.encode()) > max_bytes:
        raise InvalidMessage(
            f"message is {len(body.encode())} bytes, over the limit of {max_bytes}",
            token=_token_in(_loads_or_none(body)),
        )
    raw = _loads_or_none(body)
    if not isinstance(raw, dict):
        raise InvalidMessage("body is not a JSON object")
    try:
        if "process" in raw or raw.get("type") == "FeatureCollection":
            cirrus = CirrusPayload.model_validate(raw)
            payload_id = cirrus.payload_id()
            # The payload reaches its workflow as it was sent (nulls kept, no defaults added),
            # less our callback and with the id cirrus would have given it.
            payload = {name: value for name, value in raw.items() if name != "callback"}
            payload["id"] = payload_id
            step = cirrus.process[0]
            return within_limits(
                PayloadRequest(
                    payload_id=payload_id,
                    workflow=step.workflow,
                    input=payload,
                    replace=step.replace,
                    callback=cirrus.callback,
                    explicit_id=cirrus.id is not None,
                )
            )
        return request_of(ProcessMessage.model_validate(raw))
    except ValidationError as error:
        raise InvalidMessage(describe(error), token=_token_in(raw)) from error
    except ValueError as error:
        raise InvalidMessage(str(error), token=_token_in(raw)) from error


def request_of(message: ProcessMessage) -> PayloadRequest:
    """The request a validated native message stands for (its `after` resolved), within limits."""
    return within_limits(
        PayloadRequest(
            payload_id=message.payload_id(),
            workflow=message.workflow,
            input=message.input,
            schedule_time=message.schedule_time,
            schedule=message.schedule,
            replace=message.replace,
            rerun=message.rerun,
            callback=message.callback,
            after=message.upstreams(),
            explicit_id=message.id is not None,
        )
    )


def within_limits(request: PayloadRequest) -> PayloadRequest:
    """The request, if every field that becomes a key or the execution's input fits AWS's limit.

    Checked in bytes, where AWS counts them, on the id as derived (a cirrus id grows with its
    items), so nothing reaches a call that would refuse it with a ValidationException.
    """
    ids = [("payload id", request.payload_id)]
    ids += [("after: upstream payload id", upstream.payload_id) for upstream in request.after]
    if request.callback is not None and request.callback.waiter_payload_id is not None:
        ids.append(("callback.waiter_payload_id", request.callback.waiter_payload_id))
    for name, value in ids:
        if (size := len(value.encode())) > PAYLOAD_ID_MAX_BYTES:
            raise ValueError(f"{name} is {size} bytes of UTF-8, over the limit of {PAYLOAD_ID_MAX_BYTES}")
    if problem := execution_input_problem(request.execution_input(1)):
        raise ValueError(problem)
    return request


def execution_input_problem(execution_input: str) -> str | None:
    """Why an execution input cannot be started (re-checked at each attempt's claim), or None."""
    if (size := len(execution_input.encode())) > EXECUTION_INPUT_MAX_BYTES:
        return (
            f"execution input is {size} bytes with the coordinator block, "
            f"over Step Functions' limit of {EXECUTION_INPUT_MAX_BYTES}"
        )
    return None


def describe(error: ValidationError) -> str:
    """One line naming each bad field: `unknown field 'wrkflow'; workflow: Field required`."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "message"
        if problem["type"] == "extra_forbidden":
            parts.append(f"unknown field '{where}'")
        else:
            parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def _loads_or_none(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _token_in(raw: Any) -> str | None:
    callback = raw.get("callback") if isinstance(raw, dict) else None
    token = callback.get("token") if isinstance(callback, dict) else None
    return token if isinstance(token, str) and token else None


__all__ = [
    "AfterPayload",
    "AfterPrevious",
    "AfterWindow",
    "Callback",
    "CirrusPayload",
    "PayloadRequest",
    "ProcessMessage",
    "TickSchedule",
    "Upstream",
    "execution_input_problem",
    "parse_process_message",
    "request_of",
    "within_limits",
]
