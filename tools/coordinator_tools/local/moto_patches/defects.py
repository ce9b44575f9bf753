"""Defects: places where moto 5.2.5 answers differently from AWS in a way the coordinator meets.

Each patch says what moto does wrong and what AWS does, and names the moto code it replaces;
`tests/unit/test_moto_patches.py` shows each defect without the patch and its fix with it, so a
moto release that fixes one fails that test: drop the patch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from coordinator_tools.local.moto_patches.patch import Patch


# ---------------------------------------------------------------------------------------------
# SendTaskFailure drops `cause`. Replaces moto.stepfunctions.responses.StepFunctionResponse
# .send_task_failure, which reads taskToken and error from the request but never `cause`, so the
# waiting task fails with cause None; a Catch then sees no `Cause`, and a Fail state with
# `CausePath` has nothing to copy. AWS passes the cause through to the task's failure (and on to
# the execution's `cause` when nothing catches it).
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
# StartExecution without a name names the execution "None". Wraps
# moto.stepfunctions.parser.models.StepFunctionsParserBackend.start_execution: in executing mode
# moto builds the execution ARN from `name` as given, so every unnamed execution of a state
# machine is `...:execution:<machine>:None`, and the second one collides with the first
# (ExecutionAlreadyExists). AWS names an unnamed execution with a fresh UUID. A user driving
# `local up` with `aws stepfunctions start-execution` and no --name meets this.
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
            state_machine_arn=state_machine_arn,
            name=name or str(uuid.uuid4()),
            execution_input=execution_input,
            trace_header=trace_header,
        )

    return start_execution


# ---------------------------------------------------------------------------------------------
# StartExecution accepts an input over 256 KiB. Wraps moto.stepfunctions.responses
# .StepFunctionResponse.start_execution. Step Functions refuses an execution input over 256 KiB
# of UTF-8 (262,144 bytes; the API's `input` constraint, answered with a ValidationException);
# moto 5.2.5 starts the execution, so offline a payload runs that the service would refuse.
# Checked at the API (the response layer), before moto's backend sees the call.
# ---------------------------------------------------------------------------------------------
EXECUTION_INPUT_MAX_BYTES = 262_144


def _start_execution_input_bounded(original: Callable[..., Any]) -> Callable[..., Any]:
    def start_execution(self: Any) -> Any:
        from moto.stepfunctions.exceptions import ValidationException

        execution_input = self._get_param("input")
        if execution_input is not None and len(execution_input.encode()) > EXECUTION_INPUT_MAX_BYTES:
            raise ValidationException(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: "
                f"Member must have length less than or equal to {EXECUTION_INPUT_MAX_BYTES}"
            )
        return original(self)

    return start_execution


# ---------------------------------------------------------------------------------------------
# A state machine's Step Functions tasks (`arn:aws:states:::states:startExecution`, and its .sync
# forms) fail with States.Runtime "'StateMachineArn'". Wraps StateTaskServiceSfn
# ._normalise_parameters and ._normalise_response (moto.stepfunctions.parser.asl.component.state
# .exec.state_task.service.state_task_service_sfn).
# Step Functions' own integration takes its parameters in PascalCase (`StateMachineArn`, `Input`,
# `Name`) and answers in PascalCase (`ExecutionArn`, `StartDate`), as every AWS SDK integration
# does. moto 5.2.5's `StateTaskServiceSfn` hands the PascalCase parameters to a botocore client
# unchanged, but the Step Functions API's own members are camelCase, and botocore's serializer
# (run without parameter validation) fails on the unknown key. The patch renames the parameters
# to the API's members and the answer's members back, both by the API's shapes in botocore, and
# writes the answer's dates as the service does, in epoch milliseconds (moto would keep Python
# datetimes, which no execution output can hold).
# ---------------------------------------------------------------------------------------------
def _api_operation(service: str, action: str) -> Any:
    """The botocore operation model of `service`'s snake_case `action` (start_execution)."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    name = next(name for name in model.operation_names if xform_name(name) == action)
    return model.operation_model(name)


def _renamed_by_shape(value: Any, shape: Any, name_of: Callable[[str], str]) -> Any:
    """`value` with the member names of every structure in it renamed by `name_of`."""
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {
            name_of(key): _renamed_by_shape(item, members.get(key), name_of) for key, item in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_renamed_by_shape(item, shape.member, name_of) for item in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: _renamed_by_shape(item, shape.value, name_of) for key, item in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, datetime):
        # The service writes an integration's dates as epoch milliseconds ("StartDate": 1601331744063).
        return round(value.timestamp() * 1000)
    return value


def _pascal_case(name: str) -> str:
    return name[:1].upper() + name[1:]


def _sfn_task_parameters_in_the_api_case(original: Callable[..., Any]) -> Callable[..., Any]:
    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original(
            self,
            parameters,
            boto_service_name=boto_service_name,
            service_action_name=service_action_name,
        )
        operation = _api_operation("stepfunctions", self._get_boto_service_action(service_action_name))
        members = {member.lower(): member for member in operation.input_shape.members}
        renamed = {members.get(key.lower(), key): item for key, item in parameters.items()}
        parameters.clear()
        parameters.update(renamed)

    return normalise_parameters


def _sfn_task_response_in_pascal_case(original: Callable[..., Any]) -> Callable[..., Any]:
    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original(
            self,
            response,
            boto_service_name=boto_service_name,
            service_action_name=service_action_name,
        )
        if not isinstance(response, dict):
            return
        operation = _api_operation("stepfunctions", self._get_boto_service_action(service_action_name))
        renamed = _renamed_by_shape(response, operation.output_shape, _pascal_case)
        response.clear()
        response.update(renamed)

    return normalise_response


# ---------------------------------------------------------------------------------------------
# Defect: StopExecution does not stop an execution waiting on a task token.
# Wraps moto.stepfunctions.parser.asl.component.state.exec.state_task.service.
# state_task_service_callback.StateTaskServiceCallback._eval_wait_for_task_token and
# moto.stepfunctions.parser.asl.eval.environment.Environment.set_error.
# A `.waitForTaskToken` task (the backfill's RunTick) blocks on its callback for the task's
# whole timeout (a day) and does not look at the execution's state: after StopExecution the
# execution stays RUNNING until every token is answered, and then ends FAILED, because the
# error the aborted Map raises overwrites the stop. AWS ends it at once, ABORTED, and a token of
# it answered later is a closed token (TaskTimedOut; moto answers InvalidToken, closed too).
# (moto's StopExecution still drops the error and cause.)
# The patch waits for the callback in short slices while the execution runs, and keeps a stop
# from being overwritten by an error raised while it unwinds.
# ---------------------------------------------------------------------------------------------
_STOP_CHECK_SECONDS = 0.1


def _wait_for_task_token_until_stopped(original: Callable[..., Any]) -> Callable[..., Any]:
    def eval_wait_for_task_token(
        self: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        if heartbeat_endpoint is not None:
            return original(self, env, timeout_seconds, callback_endpoint, heartbeat_endpoint)
        from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeTimedOut

        deadline = datetime.now(UTC) + timedelta(seconds=timeout_seconds)
        while env.is_running() and (left := (deadline - datetime.now(UTC)).total_seconds()) > 0:
            outcome = callback_endpoint.wait(timeout=min(left, _STOP_CHECK_SECONDS))
            if outcome is not None:
                return outcome
        return CallbackOutcomeTimedOut(callback_id=callback_endpoint.callback_id)

    return eval_wait_for_task_token


def _error_keeps_a_stop(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_error(self: Any, error: Any) -> None:
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

        if isinstance(self.program_state(), ProgramStopped):
            return
        original(self, error)

    return set_error


# ---------------------------------------------------------------------------------------------
# A Distributed Map whose workers each have more than about 1,000 items never ends. Replaces
# moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor
# .distributed_item_processor_worker.DistributedItemProcessorWorker._eval_pool, which calls
# itself once per item a worker takes: a page of 5,000 ticks at MaxConcurrency 4 is 1,250 calls
# deep, the worker thread dies of RecursionError and the execution stays RUNNING for good. AWS
# runs any number of items at any MaxConcurrency. The patch takes the same steps in a loop.
# ---------------------------------------------------------------------------------------------
def _distributed_worker_eval_pool_in_a_loop(self: Any, job: Any, worker_frame: Any) -> None:
    while job is not None:
        job_frame = worker_frame.open_inner_frame()
        self._eval_job(env=job_frame, job=job)
        worker_frame.delete_frame(job_frame)
        # The worker ends on a failed job, on a stop, or when the pool has no job left.
        if isinstance(job.job_output, Exception) or self.stopped():
            break
        next_job = self._job_pool.next_job()
        if next_job is None:
            break
        self._job_pool.close_job(job)
        job = next_job
    # The frame closes before the last job: the Map awaits its jobs, not its workers.
    self._env.delete_frame(worker_frame)
    if job is not None:
        self._job_pool.close_job(job)


def patches() -> list[Patch]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    callback_task = state_task_service_callback.StateTaskServiceCallback
    return [
        Patch(StepFunctionResponse, "send_task_failure", _send_task_failure_with_cause),
        Patch(
            StepFunctionResponse,
            "start_execution",
            _start_execution_input_bounded(StepFunctionResponse.start_execution),
        ),
        Patch(
            StepFunctionsParserBackend,
            "start_execution",
            _start_execution_named(StepFunctionsParserBackend.start_execution),
        ),
        Patch(
            StateTaskServiceSfn,
            "_normalise_parameters",
            _sfn_task_parameters_in_the_api_case(StateTaskServiceSfn._normalise_parameters),
        ),
        Patch(
            StateTaskServiceSfn,
            "_normalise_response",
            _sfn_task_response_in_pascal_case(StateTaskServiceSfn._normalise_response),
        ),
        Patch(
            callback_task,
            "_eval_wait_for_task_token",
            _wait_for_task_token_until_stopped(callback_task._eval_wait_for_task_token),
        ),
        Patch(Environment, "set_error", _error_keeps_a_stop(Environment.set_error)),
        Patch(
            distributed_item_processor_worker.DistributedItemProcessorWorker,
            "_eval_pool",
            _distributed_worker_eval_pool_in_a_loop,
        ),
    ]
