"""Where the offline stack reaches into moto: every patch of moto's internals, in one place.

Five kinds live here, all tied to the pinned moto (`PINNED_MOTO`, the version whose internals
were read and measured; docs/design.md says why the offline stack follows the service):

- **Defects**: places where moto 5.2.5 answers differently from AWS in a way the coordinator
  meets. Each patch says what moto does wrong and what AWS does, and
  `tests/unit/test_moto_patches.py` shows the defect without the patch and its fix with it.
- **Missing APIs**: an API moto 5.2.5 answers with NotImplementedError that the coordinator and
  its operators call (RedriveExecution), built on moto's own interpreter the way AWS behaves;
  the tests show the gap without the patch and each behaviour with it.
- **Costs**: places where moto does work proportional to a whole queue for every message, or
  to a whole table for every Query, so a load run (`bench/load.py`, thousands of messages in
  flight, tens of thousands of items) goes quadratic in moto rather than in the coordinator.
  Each patch gives the same answers as moto's own code (the tests compare them) with work
  proportional to what was asked.
- **The Lambda invoke point**: moto runs Lambda code only in Docker. `LambdaFunction._invoke_lambda`
  is the one method every invocation passes through (the Invoke API, and so the Lambda tasks of
  state machines), so routing it to an in-process handler covers every caller at once.
- **The execution status point**: Step Functions puts a status-change event on EventBridge when
  an execution starts and when it ends; moto emits nothing. Every executing-mode execution
  starts in `Execution.start` and ends in `BaseExecutionWorkerCommunication.terminated` (its
  worker thread calls it whatever the end: success, failure, timeout, StopExecution), so a
  listener called there hears of every change as it happens, the way EventBridge is told,
  instead of listing every running execution over and over (`status_events`).

Nothing is patched at import. `apply()` patches for good (the offline stack); `patched()` patches
for the duration of a `with` block and restores moto after (the tests).
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
# Called with an execution's ARN when it starts and when it ends (the status point).
StatusListener = Callable[[str], None]
_status_listener: StatusListener | None = None


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
# Defect: StartExecution accepts an input over 256 KiB.
# Step Functions refuses an execution input over 256 KiB of UTF-8 (262,144 bytes; the API's
# `input` constraint, answered with a ValidationException); moto 5.2.5 starts the execution, so
# offline a payload runs that the service would refuse. Checked at the API (the response layer),
# before moto's backend sees the call.
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
# Defect: a state machine's Step Functions tasks (`arn:aws:states:::states:startExecution`, and
# its .sync forms) fail with States.Runtime "'StateMachineArn'".
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
        original(self, parameters, boto_service_name, service_action_name)
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
        original(self, response, boto_service_name, service_action_name)
        if not isinstance(response, dict):
            return
        operation = _api_operation("stepfunctions", self._get_boto_service_action(service_action_name))
        renamed = _renamed_by_shape(response, operation.output_shape, _pascal_case)
        response.clear()
        response.update(renamed)

    return normalise_response


# ---------------------------------------------------------------------------------------------
# Defect: StopExecution does not stop an execution waiting on a task token.
# A `.waitForTaskToken` task (the backfill's RunTick) blocks on its callback for the task's
# whole timeout (a day) and does not look at the execution's state: after StopExecution the
# execution stays RUNNING until every token is answered, and then ends FAILED, because the
# error the aborted Map raises overwrites the stop. AWS ends it at once, ABORTED, with the
# stop's error and cause, and a token of it answered later is a closed token (TaskTimedOut;
# moto answers InvalidToken, closed too).
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
# Cost: ReceiveMessage computes every attribute of the queue for every message it returns.
# `SQSBackend.is_message_valid_based_on_retention_period` asks `get_queue_attributes` for the
# retention period, which builds `Queue.attributes` three times, and each build counts the
# visible, in-flight and delayed messages of the whole queue: a receive of 10 from a queue of
# n messages does about 100·n clock reads. The retention period is an attribute of the queue
# itself; reading it there gives the same answer at no cost.
# ---------------------------------------------------------------------------------------------
def _retention_check_reads_the_queue(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


# ---------------------------------------------------------------------------------------------
# Cost: SendMessage builds `Queue.attributes`, which counts the visible, in-flight and delayed
# messages of the whole queue (three passes, two clock reads per message), only to read the
# ContentBasedDeduplication flag, and throws the counts away. Inside SendMessage the three
# counts are not computed (the properties answer 0 on that thread, for that call only); every
# other reader of the counts, GetQueueAttributes first, still gets moto's own count.
# ---------------------------------------------------------------------------------------------
@contextmanager
def _for_this_call(local: threading.local, name: str, value: Any) -> Iterator[None]:
    """`local.name` is `value` on this thread while one call of moto's runs, then unset again."""
    setattr(local, name, value)
    try:
        yield
    finally:
        setattr(local, name, None)


_not_counting = threading.local()


def _send_without_counting(original: Callable[..., Any]) -> Callable[..., Any]:
    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _for_this_call(_not_counting, "active", True):
            return original(self, *args, **kwargs)

    return send_message


def _count_unless_sending(original: property) -> property:
    def count(self: Any) -> int:
        if getattr(_not_counting, "active", None):
            return 0
        return int(original.fget(self))  # type: ignore[misc]

    return property(count)


# ---------------------------------------------------------------------------------------------
# Cost: the server lists moto's own package folder for every request. To route a request,
# `DomainDispatcherApplication.get_backend_for_host` asks `backends.list_of_moto_modules()`,
# which reads the folder and stats each of its ~160 entries, every time; under load that is a
# tenth of the server's time. The folder does not change while moto runs: list it once.
# ---------------------------------------------------------------------------------------------
def _modules_listed_once(original: Callable[[], Any]) -> Callable[[], Any]:
    listed: list[str] = []

    def list_of_moto_modules() -> Iterator[str]:
        if not listed:
            listed.extend(original())
        return iter(listed)

    return list_of_moto_modules


# ---------------------------------------------------------------------------------------------
# Cost: a Query on a table's own key reads and sorts the whole table. `Table.query` takes its
# candidates from `all_items()`, which sorts every item of every partition, and only then keeps
# those whose hash key matches: each Query costs n·log n of the table, however small its
# partition. moto keeps each partition apart already (`Table.items[hash][range]`); inside a
# Query of the table's own key (no index), `all_items()` answers that partition's items alone,
# in the same order. Index queries (by_pending) still read every item: an index has no such map.
# ---------------------------------------------------------------------------------------------
_querying = threading.local()


def _query_reads_its_partition(original: Callable[..., Any]) -> Callable[..., Any]:
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # moto's backend passes index_name as the 8th positional argument (7th after hash_key).
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if hash_key is None or index_name is not None:
            return original(self, hash_key, *args, **kwargs)
        with _for_this_call(_querying, "partition", (self, hash_key)):
            return original(self, hash_key, *args, **kwargs)

    return query


def _all_items_of_the_queried_partition(original: Callable[..., Any]) -> Callable[..., Any]:
    def all_items(self: Any) -> Any:
        partition = getattr(_querying, "partition", None)
        if partition is None or partition[0] is not self:
            return original(self)
        stored = self.items.get(partition[1])  # .get: the defaultdict must not grow a partition
        if stored is None:
            return []
        if not self.range_key_attr:
            return [stored]
        return sorted(stored.values(), key=lambda item: item.range_key)

    return all_items


# ---------------------------------------------------------------------------------------------
# Cost: SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat look through every execution for
# the token. Each lists every execution of every state machine (`_get_executions`) and asks each
# one's callback pool for the token in turn: with 10,000 waiters parked, every resume asks up to
# 10,000 pools. Tokens are unique, so the pool that issued one is the only one that can answer:
# the pools are indexed by token as they issue them, each pool knows its execution, and the call
# runs moto's own code over that one execution (still one of this backend's, and still filtered
# by status as moto filters). A token no pool issued falls through to moto's full search.
# ---------------------------------------------------------------------------------------------
_token_pools: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_narrowed = threading.local()


def _pool_indexes_its_tokens(original: Callable[..., Any]) -> Callable[..., Any]:
    def add(self: Any, callback_id: str) -> Any:
        endpoint = original(self, callback_id)
        _token_pools[callback_id] = self
        return endpoint

    return add


def _pool_knows_its_execution(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_evaluation_environment(self: Any) -> Any:
        env = original(self)
        env.callback_pool_manager.coordinator_execution = weakref.ref(self._execution_communication.execution)
        return env

    return get_evaluation_environment


def _executions_narrowed(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_executions(self: Any, execution_status: Any = None) -> list[Any]:
        execution = getattr(_narrowed, "execution", None)
        if execution is None:
            return list(original(self, execution_status))
        if not any(execution in machine.executions for machine in self.state_machines):
            return []  # not this backend's (another account or Region, or its machine deleted)
        return [execution] if execution_status is None or execution_status == execution.status else []

    return get_executions


def _token_found_by_its_pool(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, task_token: str, *args: Any, **kwargs: Any) -> Any:
        pool = _token_pools.get(task_token)
        owner = getattr(pool, "coordinator_execution", None)
        execution = owner() if owner is not None else None
        if execution is None:
            return original(self, task_token, *args, **kwargs)
        with _for_this_call(_narrowed, "execution", execution):
            return original(self, task_token, *args, **kwargs)

    return send


# ---------------------------------------------------------------------------------------------
# The status point: tell the listener of every execution start and end.
# ---------------------------------------------------------------------------------------------
def _start_told(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: Any) -> None:
        original(self)
        _tell_status(self.exec_arn)

    return start


def _terminated_told(original: Callable[..., Any]) -> Callable[..., Any]:
    def terminated(self: Any) -> None:
        original(self)
        _tell_status(self.execution.exec_arn)

    return terminated


def _tell_status(execution_arn: str) -> None:
    listener = _status_listener
    if listener is None:
        return
    try:
        listener(execution_arn)
    except Exception:  # a listener's bug must not kill moto's execution thread
        logger.exception("execution status listener failed execution_arn=%s", execution_arn)


# ---------------------------------------------------------------------------------------------
# Missing: RedriveExecution. moto 5.2.5 has no `redrive_execution` (a call answers HTTP 500,
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
    env.event_history_context = EventHistoryContext(previous_event_id=last_event)
    if resume_input is not None:
        env.states.reset(input_value=resume_input)
    count = getattr(execution, "redrive_count", 0) + 1
    env.event_manager.add_event(
        context=env.event_history_context,
        event_type=HistoryEventType.ExecutionRedriven,
        event_details=EventDetails(
            executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=count)
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
    _tell_status(execution.exec_arn)
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


_QUEUE_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages_delayed",
)


def _patches() -> list[_Patch]:
    from moto import backends
    from moto.awslambda.models import LambdaFunction
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import Queue, SQSBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackPoolManager
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    return [
        _Patch(backends, "list_of_moto_modules", _modules_listed_once(backends.list_of_moto_modules)),
        _Patch(SQSBackend, "is_message_valid_based_on_retention_period", _retention_check_reads_the_queue),
        _Patch(SQSBackend, "send_message", _send_without_counting(SQSBackend.send_message)),
        *(_Patch(Queue, name, _count_unless_sending(Queue.__dict__[name])) for name in _QUEUE_COUNTS),
        _Patch(Table, "query", _query_reads_its_partition(Table.query)),
        _Patch(Table, "all_items", _all_items_of_the_queried_partition(Table.all_items)),
        _Patch(CallbackPoolManager, "add", _pool_indexes_its_tokens(CallbackPoolManager.add)),
        _Patch(
            ExecutionWorker,
            "_get_evaluation_environment",
            _pool_knows_its_execution(ExecutionWorker._get_evaluation_environment),
        ),
        _Patch(
            StepFunctionsParserBackend,
            "_get_executions",
            _executions_narrowed(StepFunctionsParserBackend._get_executions),
        ),
        *(
            _Patch(
                StepFunctionsParserBackend,
                name,
                _token_found_by_its_pool(getattr(StepFunctionsParserBackend, name)),
            )
            for name in ("send_task_success", "send_task_failure", "send_task_heartbeat")
        ),
        _Patch(Execution, "start", _start_told(Execution.start)),
        _Patch(
            BaseExecutionWorkerCommunication,
            "terminated",
            _terminated_told(BaseExecutionWorkerCommunication.terminated),
        ),
        _Patch(StepFunctionResponse, "send_task_failure", _send_task_failure_with_cause),
        _Patch(
            StepFunctionResponse,
            "start_execution",
            _start_execution_input_bounded(StepFunctionResponse.start_execution),
        ),
        _Patch(
            StepFunctionsParserBackend,
            "start_execution",
            _start_execution_named(StepFunctionsParserBackend.start_execution),
        ),
        _Patch(
            StateTaskServiceSfn,
            "_normalise_parameters",
            _sfn_task_parameters_in_the_api_case(StateTaskServiceSfn._normalise_parameters),
        ),
        _Patch(
            StateTaskServiceSfn,
            "_normalise_response",
            _sfn_task_response_in_pascal_case(StateTaskServiceSfn._normalise_response),
        ),
        _Patch(
            state_task_service_callback.StateTaskServiceCallback,
            "_eval_wait_for_task_token",
            _wait_for_task_token_until_stopped(
                state_task_service_callback.StateTaskServiceCallback._eval_wait_for_task_token
            ),
        ),
        _Patch(Environment, "set_error", _error_keeps_a_stop(Environment.set_error)),
        _Patch(LambdaFunction, "_invoke_lambda", _invoke_in_process),
        _Patch(StepFunctionResponse, "redrive_execution", _redrive_execution),
        _Patch(
            StepFunctionResponse,
            "describe_execution",
            _described_with_redrive(StepFunctionResponse.describe_execution),
        ),
    ]


_applied: list[_Patch] = []
_ABSENT = object()


def apply(router: LambdaRouter | None = None, status_listener: StatusListener | None = None) -> None:
    """Patch moto for the life of the process (idempotent); `router` runs Lambda invocations,
    `status_listener` hears of every execution start and end."""
    global _router, _status_listener
    ensure_pinned_moto()
    with _lock:
        if router is not None:
            _router = router
        if status_listener is not None:
            _status_listener = status_listener
        if _applied:
            return
        for patch in _patches():
            patch.original = patch.owner.__dict__.get(patch.attribute, _ABSENT)
            setattr(patch.owner, patch.attribute, patch.replacement)
            _applied.append(patch)
    logger.debug("moto patched version=%s patches=%d", moto.__version__, len(_applied))


def revert() -> None:
    """Undo `apply`: moto as shipped, no router and no status listener."""
    global _router, _status_listener
    with _lock:
        while _applied:
            patch = _applied.pop()
            if patch.original is _ABSENT:  # an API moto lacks: gone again
                delattr(patch.owner, patch.attribute)
            else:
                setattr(patch.owner, patch.attribute, patch.original)
        _router = None
        _status_listener = None


@contextmanager
def patched(
    router: LambdaRouter | None = None, status_listener: StatusListener | None = None
) -> Iterator[None]:
    """moto patched inside the block only (for tests that compare with and without)."""
    apply(router, status_listener)
    try:
        yield
    finally:
        revert()
