"""Costs: places where moto does work proportional to a whole queue for every message, or to a
whole table for every Query, or to every execution for every task token.

A load run (`bench/load.py`: thousands of messages in flight, tens of thousands of items) would go
quadratic in moto rather than in the coordinator; nothing else needs these. Each patch gives the
same answers as moto's own code (`tests/unit/test_moto_patches.py` compares them) with work
proportional to what was asked, and names the moto code it replaces.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from coordinator_tools.local.moto_patches.patch import Patch


@contextmanager
def _for_this_call(local: threading.local, name: str, value: Any) -> Iterator[None]:
    """`local.name` is `value` on this thread while one call of moto's runs, then unset again."""
    setattr(local, name, value)
    try:
        yield
    finally:
        setattr(local, name, None)


# ---------------------------------------------------------------------------------------------
# ReceiveMessage computes every attribute of the queue for every message it returns. Replaces
# moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period, which asks
# `get_queue_attributes` for the retention period; that builds `Queue.attributes` three times,
# and each build counts the visible, in-flight and delayed messages of the whole queue: a receive
# of 10 from a queue of n messages does about 100·n clock reads. The retention period is an
# attribute of the queue itself; reading it there gives the same answer at no cost.
# ---------------------------------------------------------------------------------------------
def _retention_check_reads_the_queue(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


# ---------------------------------------------------------------------------------------------
# SendMessage builds `Queue.attributes`, which counts the visible, in-flight and delayed messages
# of the whole queue (three passes, two clock reads per message), only to read the
# ContentBasedDeduplication flag, and throws the counts away. Wraps
# moto.sqs.models.SQSBackend.send_message and the three count properties of moto.sqs.models.Queue
# (`approximate_number_of_messages`, `..._not_visible`, `..._delayed`): inside SendMessage the
# counts are not computed (the properties answer 0 on that thread, for that call only); every
# other reader of the counts, GetQueueAttributes first, still gets moto's own count.
# ---------------------------------------------------------------------------------------------
_QUEUE_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages_delayed",
)
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
# The server lists moto's own package folder for every request. Wraps
# moto.backends.list_of_moto_modules, which `DomainDispatcherApplication.get_backend_for_host`
# asks to route a request: it reads the folder and stats each of its ~160 entries, every time;
# under load that is a tenth of the server's time. The folder does not change while moto runs:
# list it once.
# ---------------------------------------------------------------------------------------------
def _modules_listed_once(original: Callable[[], Any]) -> Callable[[], Any]:
    listed: list[str] = []

    def list_of_moto_modules() -> Iterator[str]:
        if not listed:
            listed.extend(original())
        return iter(listed)

    return list_of_moto_modules


# ---------------------------------------------------------------------------------------------
# A Query on a table's own key reads and sorts the whole table. Wraps
# moto.dynamodb.models.table.Table.query and Table.all_items: `query` takes its candidates from
# `all_items()`, which sorts every item of every partition, and only then keeps those whose hash
# key matches: each Query costs n·log n of the table, however small its partition. moto keeps
# each partition apart already (`Table.items[hash][range]`); inside a Query of the table's own
# key (no index), `all_items()` answers that partition's items alone, in the same order. Index
# queries (by_pending) still read every item: an index has no such map.
# ---------------------------------------------------------------------------------------------
_querying = threading.local()


def _query_reads_its_partition(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)  # moto's backend passes most of them by position
        hash_key = bound.arguments["hash_key"]
        if hash_key is None or bound.arguments.get("index_name") is not None:
            return original(self, *args, **kwargs)
        with _for_this_call(_querying, "partition", (self, hash_key)):
            return original(self, *args, **kwargs)

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
# SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat look through every execution for the
# token. Wraps moto.stepfunctions.parser.models.StepFunctionsParserBackend.send_task_success,
# .send_task_failure, .send_task_heartbeat and ._get_executions, moto.stepfunctions.parser.asl
# .eval.callback.callback.CallbackPoolManager.add and moto.stepfunctions.parser.backend
# .execution_worker.ExecutionWorker._get_evaluation_environment.
# Each send lists every execution of every state machine (`_get_executions`) and asks each one's
# callback pool for the token in turn: with 10,000 waiters parked, every resume asks up to 10,000
# pools. Tokens are unique, so the pool that issued one is the only one that can answer: the
# pools are indexed by token as they issue them, each pool knows its execution, and the call runs
# moto's own code over that one execution (still one of this backend's, and still filtered by
# status as moto filters). A token no pool issued falls through to moto's full search.
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
    signature = inspect.signature(original)

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        pool = _token_pools.get(signature.bind(self, *args, **kwargs).arguments["task_token"])
        owner = getattr(pool, "coordinator_execution", None)
        execution = owner() if owner is not None else None
        if execution is None:
            return original(self, *args, **kwargs)
        with _for_this_call(_narrowed, "execution", execution):
            return original(self, *args, **kwargs)

    return send


def patches() -> list[Patch]:
    from moto import backends
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import Queue, SQSBackend
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackPoolManager
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    return [
        Patch(backends, "list_of_moto_modules", _modules_listed_once(backends.list_of_moto_modules)),
        Patch(SQSBackend, "is_message_valid_based_on_retention_period", _retention_check_reads_the_queue),
        Patch(SQSBackend, "send_message", _send_without_counting(SQSBackend.send_message)),
        *(Patch(Queue, name, _count_unless_sending(Queue.__dict__[name])) for name in _QUEUE_COUNTS),
        Patch(Table, "query", _query_reads_its_partition(Table.query)),
        Patch(Table, "all_items", _all_items_of_the_queried_partition(Table.all_items)),
        Patch(CallbackPoolManager, "add", _pool_indexes_its_tokens(CallbackPoolManager.add)),
        Patch(
            ExecutionWorker,
            "_get_evaluation_environment",
            _pool_knows_its_execution(ExecutionWorker._get_evaluation_environment),
        ),
        Patch(
            StepFunctionsParserBackend,
            "_get_executions",
            _executions_narrowed(StepFunctionsParserBackend._get_executions),
        ),
        *(
            Patch(
                StepFunctionsParserBackend,
                name,
                _token_found_by_its_pool(getattr(StepFunctionsParserBackend, name)),
            )
            for name in ("send_task_success", "send_task_failure", "send_task_heartbeat")
        ),
    ]
