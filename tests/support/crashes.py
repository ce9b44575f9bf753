"""Crash injection at AWS-call granularity: a Lambda that dies just before or just after a call.

A Lambda can die anywhere (timeout, out of memory, host lost), and the only places where that
matters to the protocol are the AWS calls: between two of them nothing outside the Lambda
changes. So a crash is placed by call: `before` call N (a `before-call` hook raises, the call
never happens) or `after` call N (an `after-call` hook raises: the call took effect, its answer
was lost with the Lambda). The scenario is first run without a crash to record its calls, then
once per (call, before/after): the crash points are enumerated, not picked by hand.

`LambdaCrash` derives from BaseException so no `except Exception` in the code or in Powertools'
batch processor can take it for a record failure: like a real crash, it ends the invocation.

Two observers stand for what AWS itself knows after a run:

- `CallLog` records every call made through the clients and what came of it (a successful
  conditional write is an effect that took place, whether or not the Lambda lived to see it).
- `TaskTokens` is Step Functions' side of task tokens: the first SendTaskSuccess/Failure closes
  a token and later ones meet `TaskTimedOut`, as AWS answers for a task already closed (moto
  accepts any token any number of times when it does not execute state machines).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.awsrequest import AWSResponse

_ids = itertools.count(1)
PARAMS = "reliability.params"
CALL_INDEX = "reliability.call_index"


def remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep a call's API parameters in its request context, where after-call hooks find them."""
    context[PARAMS] = dict(params)


class LambdaCrash(BaseException):
    """The Lambda died here. Nothing may catch it: the invocation ends, the event is retried."""


class Phase(StrEnum):
    BEFORE = "before"
    AFTER = "after"


@dataclass(frozen=True)
class CrashPoint:
    index: int  # 0-based, counting every AWS call of the invocation
    phase: Phase
    operation: str

    def __str__(self) -> str:
        return f"{self.phase} call {self.index} ({self.operation})"


def crash_points(operations: list[str]) -> list[CrashPoint]:
    """Every place a run with these calls can die: just before and just after each call."""
    return [
        CrashPoint(index, phase, operation)
        for index, operation in enumerate(operations)
        for phase in (Phase.BEFORE, Phase.AFTER)
    ]


@dataclass
class CrashSwitch:
    """Counts the calls of one invocation and crashes it at `point` (None: only count)."""

    point: CrashPoint | None
    operations: list[str] = field(default_factory=list)
    crashed: bool = False
    # settle makes its moves on pool threads: calls are numbered in the order they start,
    # under a lock, and each call's after-hook finds its own number in its request context.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        with self._lock:
            index = len(self.operations)
            self.operations.append(model.name)
            context[CALL_INDEX] = index
            due = self._due(index, Phase.BEFORE)
        if due:
            raise LambdaCrash(f"crash before call {index} ({model.name})")

    def after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        index = context[CALL_INDEX]
        with self._lock:
            due = self._due(index, Phase.AFTER)
        if due:
            raise LambdaCrash(f"crash after call {index} ({model.name})")

    def _due(self, index: int, phase: Phase) -> bool:
        due = (
            not self.crashed
            and self.point is not None
            and (self.point.index, self.point.phase) == (index, phase)
        )
        self.crashed = self.crashed or due
        return due


@contextmanager
def crash_at(clients: list[Any], point: CrashPoint | None) -> Iterator[CrashSwitch]:
    """Arm a crash on these clients for one invocation; the hooks go away with the block.

    The `before` hook runs first among before-call handlers (ahead of any stub answering the
    call), the `after` hook last among after-call handlers (after the observers have seen the
    call's effect).
    """
    switch = CrashSwitch(point)
    tag = next(_ids)
    for client in clients:
        events = client.meta.events
        events.register_first("before-call.*.*", switch.before, unique_id=f"crash-before-{tag}")
        events.register_last("after-call.*.*", switch.after, unique_id=f"crash-after-{tag}")
    try:
        yield switch
    finally:
        for client in clients:
            events = client.meta.events
            events.unregister("before-call.*.*", unique_id=f"crash-before-{tag}")
            events.unregister("after-call.*.*", unique_id=f"crash-after-{tag}")


@dataclass(frozen=True)
class Call:
    """One AWS call and what AWS answered (status 200: it took effect)."""

    operation: str
    params: dict[str, Any]
    status: int
    code: str | None


class CallLog:
    """Every call made through the attached clients, in order, with its answer."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build.*.*", remember_params, unique_id="remember-params")
        events.register_first("after-call.*.*", self._record, unique_id=f"call-log-{id(self)}")

    def reset(self) -> None:
        self.calls = []

    def _record(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        code = parsed.get("Error", {}).get("Code") if http_response.status_code >= 300 else None
        self.calls.append(Call(model.name, context.get(PARAMS, {}), http_response.status_code, code))


@dataclass
class Send:
    token: str
    operation: str  # SendTaskSuccess | SendTaskFailure
    error: str | None  # the DependencyX error of a failure
    answer: str  # "ok" or the error code Step Functions answered


class TaskTokens:
    """Step Functions' side of task tokens: each closes once; later sends meet TaskTimedOut."""

    OPERATIONS = ("SendTaskSuccess", "SendTaskFailure")

    def __init__(self) -> None:
        self.closed: dict[str, str] = {}  # token -> how it closed
        self.sends: list[Send] = []

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build.*.*", remember_params, unique_id="remember-params")
        events.register("before-call.*.*", self._answer, unique_id=f"task-tokens-{id(self)}")

    def reset(self) -> None:
        self.closed = {}
        self.sends = []

    def time_out(self, token: str) -> None:
        """The waiting task timed out on its own (its TimeoutSeconds passed)."""
        self.closed[token] = "TaskTimedOut"

    def closes(self, token: str) -> int:
        """How many times the token was closed: by a send that was accepted, or by timing out."""
        accepted = sum(1 for send in self.sends if send.token == token and send.answer == "ok")
        return accepted + (self.closed.get(token) == "TaskTimedOut")

    def _answer(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name not in self.OPERATIONS:
            return None
        params = context.get(PARAMS, {})
        token = params["taskToken"]
        if token in self.closed:
            self.sends.append(Send(token, model.name, params.get("error"), "TaskTimedOut"))
            error = {"Code": "TaskTimedOut", "Message": "Task Timed Out: the task is already closed"}
            return AWSResponse(None, 400, {}, None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        self.closed[token] = model.name
        self.sends.append(Send(token, model.name, params.get("error"), "ok"))
        return AWSResponse(None, 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}}


REDRIVABLE_STATUSES = ("FAILED", "ABORTED", "TIMED_OUT")


class Redrives:
    """Step Functions' side of redrives, for the executions a test says it may redrive.

    moto 5.2.5 has no RedriveExecution and describes no redrive count (the offline stack patches
    its executing backend; the lab records executions without running them), so the service's
    answers come from a `before-call` hook, as `TaskTokens` gives them: calls through the lab's
    clients are still logged and crashed like any other. For an execution known here:

    - DescribeExecution answers its status, error, cause, output and `redriveCount`;
    - RedriveExecution restarts a FAILED, ABORTED or TIMED_OUT one (count + 1, RUNNING), once
      per client token (the same token again answers as the first call did), and refuses any
      other with ExecutionNotRedrivable.

    `sent` lists every redrive that took effect, so a check can count them per execution.
    """

    OPERATIONS = ("DescribeExecution", "RedriveExecution")

    def __init__(self) -> None:
        self.executions: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str | None]] = []  # (execution ARN, client token) per redrive
        self._tokens: set[tuple[str, str]] = set()

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build.*.*", remember_params, unique_id="remember-params")
        events.register("before-call.*.*", self._answer, unique_id=f"redrives-{id(self)}")

    def reset(self) -> None:
        self.executions = {}
        self.sent = []
        self._tokens = set()

    def ended(self, execution_arn: str, execution_input: str, status: str, **fields: Any) -> None:
        """The execution's run ended (`fields`: error, cause, output); its count is kept."""
        known = self.executions.setdefault(execution_arn, {"redriveCount": 0, "input": execution_input})
        for name in ("error", "cause", "output"):
            known.pop(name, None)
        known.update(status=status, **{name: value for name, value in fields.items() if value is not None})

    def redrive(self, execution_arn: str, token: str | None = None) -> bool:
        """Redrive it as Step Functions would (an operator's redrive has no token); False if refused."""
        known = self.executions[execution_arn]
        if known["status"] not in REDRIVABLE_STATUSES:
            return False
        known.update(status="RUNNING", redriveCount=known["redriveCount"] + 1)
        for name in ("error", "cause", "output"):
            known.pop(name, None)
        self.sent.append((execution_arn, token))
        return True

    def count_of(self, execution_arn: str) -> int:
        return int(self.executions.get(execution_arn, {}).get("redriveCount", 0))

    def redrives_of(self, execution_arn: str) -> int:
        return sum(1 for arn, _ in self.sent if arn == execution_arn)

    def _answer(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name not in self.OPERATIONS:
            return None
        arn = context.get(PARAMS, {}).get("executionArn")
        known = self.executions.get(arn) if arn else None
        if known is None:
            return None  # not one of ours: moto answers
        if model.name == "DescribeExecution":
            return _ok({"executionArn": arn, **known})
        token = context.get(PARAMS, {}).get("clientToken")
        if token is not None and (arn, token) in self._tokens:
            return _ok({"redriveDate": "2026-01-05T12:00:00Z"})
        if not self.redrive(arn, token):
            error = {"Code": "ExecutionNotRedrivable", "Message": f"Execution is {known['status']}"}
            return AWSResponse(None, 400, {}, None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        if token is not None:
            self._tokens.add((arn, token))
        return _ok({"redriveDate": "2026-01-05T12:00:00Z"})


def _ok(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}
