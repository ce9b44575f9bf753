"""Where the offline stack reaches into moto: every patch of moto's internals, in one place.

Two kinds live here, both tied to the pinned moto (`PINNED_MOTO`, the version whose internals
were read and measured; see BRIEF §6):

- **Defects**: places where moto 5.2.5 answers differently from AWS in a way the coordinator
  meets. Each patch says what moto does wrong and what AWS does, and
  `tests/unit/test_moto_patches.py` shows the defect without the patch and its fix with it.
- **The Lambda invoke point**: moto runs Lambda code only in Docker. `LambdaFunction._invoke_lambda`
  is the one method every invocation passes through (the Invoke API, and so the Lambda tasks of
  state machines), so routing it to an in-process handler covers every caller at once.

Nothing is patched at import. `apply()` patches for good (the offline stack); `patched()` patches
for the duration of a `with` block and restores moto after (the tests).
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import moto

PINNED_MOTO = "5.2.5"

logger = logging.getLogger(__name__)


class UnsupportedMoto(RuntimeError):
    """The installed moto is not the version these patches were written against."""


def ensure_pinned_moto() -> None:
    """Refuse to patch any other moto: its internals may have moved, or the defect been fixed."""
    if moto.__version__ != PINNED_MOTO:
        raise UnsupportedMoto(
            f"the offline stack patches moto {PINNED_MOTO} internals, but moto {moto.__version__} is "
            "installed; re-check each patch in coordinator_tools/local/moto_patches.py and update the pin"
        )


@dataclass(frozen=True)
class Invocation:
    """What a routed Lambda invocation answers, in the shape moto's `invoke` expects."""

    payload: str
    errored: bool
    logs: str = ""


# Given the function's name, its configured environment and the event, run it.
LambdaRouter = Callable[[str, dict[str, str], Any], Invocation]


@dataclass
class _Patch:
    owner: Any
    attribute: str
    replacement: Any
    original: Any = None


_lock = threading.Lock()
_router: LambdaRouter | None = None


# ---------------------------------------------------------------------------------------------
# Defect: SendTaskFailure drops `cause`.
# moto's StepFunctionResponse.send_task_failure reads taskToken and error from the request but
# never `cause`, so the waiting task fails with cause None; a Catch then sees no `Cause`, and a
# Fail state with `CausePath` has nothing to copy. AWS passes the cause through to the task's
# failure (and on to the execution's `cause` when nothing catches it).
# ---------------------------------------------------------------------------------------------
def _send_task_failure_with_cause(self: Any) -> Any:
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    backend = self.stepfunction_backend
    task_token = self._get_param("taskToken")
    error = self._get_param("error")
    if isinstance(backend, StepFunctionsParserBackend):
        # Only the executing backend takes a cause; the recording one ignores failures anyway.
        backend.send_task_failure(task_token, error=error, cause=self._get_param("cause"))
    else:
        backend.send_task_failure(task_token, error=error)
    return EmptyResult()


# ---------------------------------------------------------------------------------------------
# Defect: StartExecution without a name names the execution "None".
# In executing mode moto builds the execution ARN from `name` as given, so every unnamed
# execution of a state machine is `...:execution:<machine>:None`, and the second one collides
# with the first (ExecutionAlreadyExists). AWS names an unnamed execution with a fresh UUID.
# A user driving `local up` with `aws stepfunctions start-execution` and no --name meets this.
# ---------------------------------------------------------------------------------------------
def _start_execution_named(original: Callable[..., Any]) -> Callable[..., Any]:
    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        return original(
            self,
            state_machine_arn,
            name or str(uuid.uuid4()),
            execution_input,
            trace_header,
        )

    return start_execution


# ---------------------------------------------------------------------------------------------
# The invoke point: run the function in this process instead of a Docker container.
# ---------------------------------------------------------------------------------------------
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


def _patches() -> list[_Patch]:
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    return [
        _Patch(StepFunctionResponse, "send_task_failure", _send_task_failure_with_cause),
        _Patch(
            StepFunctionsParserBackend,
            "start_execution",
            _start_execution_named(StepFunctionsParserBackend.start_execution),
        ),
        _Patch(LambdaFunction, "_invoke_lambda", _invoke_in_process),
    ]


_applied: list[_Patch] = []


def apply(router: LambdaRouter | None = None) -> None:
    """Patch moto for the life of the process (idempotent); `router` runs Lambda invocations."""
    global _router
    ensure_pinned_moto()
    with _lock:
        if router is not None:
            _router = router
        if _applied:
            return
        for patch in _patches():
            patch.original = patch.owner.__dict__[patch.attribute]
            setattr(patch.owner, patch.attribute, patch.replacement)
            _applied.append(patch)
    logger.debug("moto patched version=%s patches=%d", moto.__version__, len(_applied))


def revert() -> None:
    """Undo `apply`: moto as shipped, and no router."""
    global _router
    with _lock:
        while _applied:
            patch = _applied.pop()
            setattr(patch.owner, patch.attribute, patch.original)
        _router = None


@contextmanager
def patched(router: LambdaRouter | None = None) -> Iterator[None]:
    """moto patched inside the block only (for tests that compare with and without)."""
    apply(router)
    try:
        yield
    finally:
        revert()
