"""The two points where the offline stack hooks into moto: Lambda invocations and execution
status changes. Both are how the stack works, not fixes: without them nothing runs offline.

- **The invoke point** replaces `moto.awslambda.models.LambdaFunction._invoke_lambda`. moto runs
  Lambda code only in Docker; this method is the one every invocation passes through (the
  Invoke API, and so the Lambda tasks of state machines), so routing it to an in-process
  handler covers every caller at once.
- **The status point** wraps `moto.stepfunctions.parser.backend.execution.Execution.start` and
  `...execution.BaseExecutionWorkerCommunication.terminated`. Step Functions puts a
  status-change event on EventBridge when an execution starts and when it ends; moto emits
  nothing. Every executing-mode execution starts in `Execution.start` and ends in `terminated`
  (its worker thread calls it whatever the end: success, failure, timeout, StopExecution), so a
  listener called there hears of every change as it happens, the way EventBridge is told,
  instead of listing every running execution over and over (`status_events`).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator_tools.local.moto_patches.patch import Patch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invocation:
    """What a routed Lambda invocation answers, in the shape moto's `invoke` expects."""

    payload: str
    errored: bool
    logs: str = ""


# Given the function's name, its configured environment and the event, run it.
LambdaRouter = Callable[[str, dict[str, str], Any], Invocation]
# Called with an execution's ARN when it starts and when it ends.
StatusListener = Callable[[str], None]

_router: LambdaRouter | None = None
_status_listener: StatusListener | None = None


def listen(router: LambdaRouter | None, status_listener: StatusListener | None) -> None:
    """Route invocations to `router` and tell `status_listener`; None keeps the current one."""
    global _router, _status_listener
    if router is not None:
        _router = router
    if status_listener is not None:
        _status_listener = status_listener


def stop_listening() -> None:
    """No router and no status listener: what moto had before `listen`."""
    global _router, _status_listener
    _router = None
    _status_listener = None


# Replaces moto.awslambda.models.LambdaFunction._invoke_lambda: run the function in this process
# instead of a Docker container.
def _invoke_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
    router = _router
    if router is None:
        message = f"no in-process handler is routed for {self.function_name}"
        return json.dumps({"errorType": "Runtime.HandlerNotFound", "errorMessage": message}), True, ""
    try:
        invocation = router(self.function_name, dict(self.environment_vars or {}), event or {})
    except Exception as error:  # noqa: BLE001 - a router bug is reported as the invocation's error, as Lambda does
        return (
            json.dumps(
                {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error),
                }
            ),
            True,
            "",
        )
    return invocation.payload, invocation.errored, invocation.logs


# Wraps moto.stepfunctions.parser.backend.execution.Execution.start: told once it has started.
def _start_told(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: Any) -> None:
        original(self)
        tell_status(self.exec_arn)

    return start


# Wraps moto.stepfunctions.parser.backend.execution.BaseExecutionWorkerCommunication.terminated:
# told once the execution's status is final.
def _terminated_told(original: Callable[..., Any]) -> Callable[..., Any]:
    def terminated(self: Any) -> None:
        original(self)
        tell_status(self.execution.exec_arn)

    return terminated


def tell_status(execution_arn: str) -> None:
    """Tell the status listener, if any, that `execution_arn` changed status."""
    listener = _status_listener
    if listener is None:
        return
    try:
        listener(execution_arn)
    except Exception:  # a listener's bug must not kill moto's execution thread
        logger.exception("execution status listener failed execution_arn=%s", execution_arn)


def patches() -> list[Patch]:
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    return [
        Patch(LambdaFunction, "_invoke_lambda", _invoke_in_process),
        Patch(Execution, "start", _start_told(Execution.start)),
        Patch(
            BaseExecutionWorkerCommunication,
            "terminated",
            _terminated_told(BaseExecutionWorkerCommunication.terminated),
        ),
    ]
