"""`after`: the upstream payloads a process message waits for before it starts (`coordinator.gate`).

An entry names a payload by id (or a message submitting it), another schedule's ticks inside
this payload's data interval, or this payload's own previous tick; `ProcessMessage.upstreams`
resolves them into `Upstream`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from coordinator.messages.fields import MAX_WAIT_SECONDS, PayloadId, TickSchedule, WorkflowName

if TYPE_CHECKING:
    from coordinator.messages import PayloadRequest

# A gate waits this long for its upstream payloads unless an `after` entry says otherwise.
DEFAULT_GATE_TIMEOUT_SECONDS = 86_400
# The most upstream payloads one gate counts (a month of hourly ticks is 744): the gated row
# keeps their ids, and a DynamoDB item is at most 400 KB.
MAX_UPSTREAMS = 1_000

GateTimeout = Annotated[int, Field(ge=1, le=MAX_WAIT_SECONDS)]


class AfterPayload(BaseModel):
    """`after` entry: a payload by id (`{"id"}`), or one to submit if absent (a process
    message's own fields: `workflow`, `input`, `scheduleTime`, `schedule`, `id`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: PayloadId | None = None
    workflow: WorkflowName | None = None
    input: dict[str, Any] | None = None
    schedule_time: AwareDatetime | None = Field(default=None, alias="scheduleTime")
    schedule: TickSchedule | None = None
    timeout_seconds: GateTimeout = DEFAULT_GATE_TIMEOUT_SECONDS

    @model_validator(mode="after")
    def _an_id_or_a_message(self) -> Self:
        if self.workflow is None:
            if self.id is None:
                raise ValueError("an after entry names a payload: `id`, or a `workflow` to submit")
            if self.input is not None or self.schedule_time is not None or self.schedule is not None:
                raise ValueError("an after entry with `input`, `scheduleTime` or `schedule` needs `workflow`")
        return self


class AfterWindow(BaseModel):
    """`after` entry: another schedule's ticks inside this payload's data interval, each the
    payload its live schedule and backfills run (`<workflow>/<tick>`); with `input`, the ticks
    not yet submitted are submitted with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: WorkflowName
    schedule: TickSchedule
    within: Literal["data_interval"]
    input: dict[str, Any] | None = None
    timeout_seconds: GateTimeout = DEFAULT_GATE_TIMEOUT_SECONDS


class AfterPrevious(BaseModel):
    """`after` entry: this payload's own previous tick (Airflow's depends_on_past).

    The previous tick is the schedule's tick before this one (`data_interval_start`), waited
    for whether or not it has been submitted yet, so ticks submitted out of order start in
    order. A tick at or before `first` has no previous tick to wait for: the chain's first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    previous: Literal[True]
    first: AwareDatetime | None = None
    timeout_seconds: GateTimeout = DEFAULT_GATE_TIMEOUT_SECONDS


def _after_kind(entry: Any) -> str:
    if isinstance(entry, dict):
        if "previous" in entry:
            return "previous"
        if "within" in entry:
            return "window"
    return "payload"


AfterEntry = Annotated[
    Annotated[AfterPayload, Tag("payload")]
    | Annotated[AfterWindow, Tag("window")]
    | Annotated[AfterPrevious, Tag("previous")],
    Discriminator(_after_kind),
]


@dataclass(frozen=True)
class Upstream:
    """One payload a gated payload waits for, with how long, and the message that submits it
    if it is absent (None: it is left to its own sender)."""

    payload_id: str
    timeout_seconds: int
    submit: PayloadRequest | None = None
