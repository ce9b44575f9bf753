"""A missing API: RedriveExecution, which moto 5.2.5 answers with NotImplementedError and which the
coordinator and its operators call. Built on moto's own interpreter the way AWS behaves; the
tests show the gap without the patch and each behaviour with it. Adds
moto.stepfunctions.responses.StepFunctionResponse.redrive_execution and wraps its
.describe_execution.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from coordinator_tools.local.moto_patches.hooks import tell_status
from coordinator_tools.local.moto_patches.patch import Patch

# ---------------------------------------------------------------------------------------------
# RedriveExecution. moto 5.2.5 has no `redrive_execution` (a call answers HTTP 500,
# NotImplementedError) and its DescribeExecution has no redrive fields. AWS restarts a FAILED,
# ABORTED or TIMED_OUT standard execution under the same ARN at the state that did not finish,
# with the input that state was given (the states that succeeded are not run again, and the
# history keeps their events and goes on after an `ExecutionRedriven` event); `redriveCount`
# goes up by one, `redriveDate` is the redrive's moment, and DescribeExecution answers both with
# `redriveStatus` (REDRIVABLE, or NOT_REDRIVABLE with a `redriveStatusReason`). A RUNNING or
# SUCCEEDED execution, or one that ended more than 14 days ago, is `ExecutionNotRedrivable`.
# `clientToken` makes the call idempotent: the last 10 tokens that redrove an execution, each
# for 15 minutes, answer the same `redriveDate` without redriving again.
# Resumption is at the top level of the definition: a failure inside a Parallel or Map state
# restarts that whole state (AWS reruns only its failed branches or iterations).
# ---------------------------------------------------------------------------------------------
REDRIVABLE_FOR = timedelta(days=14)
_redriving = threading.Lock()
TOKENS_KEPT = 10
TOKEN_VALID_FOR = timedelta(minutes=15)


def _not_redrivable_reason(execution: Any, now: datetime) -> str | None:
    """Why AWS would refuse to redrive `execution` now (its `redriveStatusReason`), or None."""
    status = execution.status
    if status in ("RUNNING", "SUCCEEDED"):
        return f"Execution is {status} and cannot be redriven"
    if execution.stop_date is not None and now - execution.stop_date > REDRIVABLE_FOR:
        return "Execution redrivable period exceeded"
    return None


def _unfinished_state(definition: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str, Any]:
    """The top-level state the execution entered last and never left, and the input it was given."""
    top_level = set(definition["States"])
    unfinished: tuple[str, Any] | None = None
    for event in events:
        if event["type"] == "ExecutionRedriven":
            continue
        entered = event.get("stateEnteredEventDetails")
        if entered and entered["name"] in top_level:
            unfinished = (entered["name"], json.loads(entered.get("input") or "{}"))
        exited = event.get("stateExitedEventDetails")
        if exited and unfinished is not None and exited["name"] == unfinished[0]:
            unfinished = None
    if unfinished is None:  # it ended before entering any state (or between two): start again
        return definition["StartAt"], None
    return unfinished


def _redrive(execution: Any) -> datetime:
    """Resume an ended execution at its unfinished state, on a new worker sharing its history."""
    from moto.stepfunctions.parser.api import (
        ExecutionRedrivenEventDetails,
        ExecutionStatus,
        HistoryEventType,
    )
    from moto.stepfunctions.parser.asl.eval.evaluation_details import EvaluationDetails, StateMachineDetails
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.utils import TMP_THREADS

    previous = execution.exec_worker.env
    events = previous.event_manager.get_event_history()
    definition = json.loads(execution.state_machine.definition)
    resume_at, resume_input = _unfinished_state(definition, events)
    machine = execution.get_start_state_machine_details()
    resumed = StateMachineDetails(
        arn=machine.arn,
        name=machine.name,
        typ=machine.typ,
        definition=json.dumps({**definition, "StartAt": resume_at}),
    )
    worker = ExecutionWorker(
        evaluation_details=EvaluationDetails(
            aws_execution_details=execution._get_start_aws_execution_details(),
            execution_details=execution.get_start_execution_details(),
            state_machine_details=resumed,
        ),
        exec_comm=execution._get_start_execution_worker_comm(),
        cloud_watch_logging_session=execution._cloud_watch_logging_session,
        activity_store=execution._activity_store,
    )
    env = worker._get_evaluation_environment()
    env.event_manager = previous.event_manager  # one history, its event ids going on
    last_event = max((event["id"] for event in events), default=0)
    # moto declares it Final; a redrive's environment goes on with the history it continues.
    env.event_history_context = EventHistoryContext(previous_event_id=last_event)  # type: ignore[misc]
    if resume_input is not None:
        env.states.reset(input_value=resume_input)
    count = getattr(execution, "redrive_count", 0) + 1
    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType.ExecutionRedriven,
        # moto's EventDetails names every kind of details but the redrive's own.
        event_details=cast(
            EventDetails,
            {"executionRedrivenEventDetails": ExecutionRedrivenEventDetails(redriveCount=count)},
        ),
    )
    worker.env = env
    program = worker._get_evaluation_entrypoint()

    def run() -> None:
        program.eval(env)
        worker._execution_communication.terminated()

    moment = datetime.now(tz=UTC)
    execution.redrive_count = count
    execution.redrive_date = moment
    execution.stop_date = execution.output = execution.error = execution.cause = None
    execution.exec_worker = worker
    execution.exec_status = ExecutionStatus.RUNNING
    thread = threading.Thread(target=run, daemon=True)
    TMP_THREADS.append(thread)
    thread.start()
    tell_status(execution.exec_arn)
    return moment


def _redrive_execution(self: Any) -> Any:
    from moto.core.exceptions import AWSError
    from moto.core.responses import ActionResult

    class ExecutionNotRedrivable(AWSError):
        TYPE = "ExecutionNotRedrivable"
        STATUS = 400

    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    token = self._get_param("clientToken")
    now = datetime.now(tz=UTC)
    with _redriving:
        tokens: dict[str, datetime] = getattr(execution, "redrive_tokens", {})
        for used, moment in list(tokens.items()):
            if now - moment > TOKEN_VALID_FOR:
                del tokens[used]
        if token is not None and token in tokens:
            return ActionResult({"redriveDate": tokens[token]})
        reason = _not_redrivable_reason(execution, now)
        if reason is not None:
            raise ExecutionNotRedrivable(reason)
        moment = _redrive(execution)
        if token is not None:
            tokens[token] = moment
            while len(tokens) > TOKENS_KEPT:
                del tokens[next(iter(tokens))]
            execution.redrive_tokens = tokens
    return ActionResult({"redriveDate": moment})


def _described_with_redrive(original: Callable[..., Any]) -> Callable[..., Any]:
    def describe_execution(self: Any) -> Any:
        result = original(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        described = result.result
        described["redriveCount"] = getattr(execution, "redrive_count", 0)
        if getattr(execution, "redrive_date", None) is not None:
            described["redriveDate"] = execution.redrive_date
        reason = _not_redrivable_reason(execution, datetime.now(tz=UTC))
        described["redriveStatus"] = "REDRIVABLE" if reason is None else "NOT_REDRIVABLE"
        if reason is not None:
            described["redriveStatusReason"] = reason
        return result

    return describe_execution


def patches() -> list[Patch]:
    from moto.stepfunctions.responses import StepFunctionResponse

    return [
        Patch(StepFunctionResponse, "redrive_execution", _redrive_execution),
        Patch(
            StepFunctionResponse,
            "describe_execution",
            _described_with_redrive(StepFunctionResponse.describe_execution),
        ),
    ]
