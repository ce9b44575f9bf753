"""The one Logger, Tracer and Metrics of every handler (service name and namespace from env),
the names of the metrics they publish, and how work on a pool's thread stays in the trace."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

P = ParamSpec("P")
R = TypeVar("R")


def in_current_trace(work: Callable[P, R]) -> Callable[P, R]:
    """`work`, to be run on a pool's thread, traced inside the X-Ray entity current here.

    The X-Ray SDK keeps the current segment and subsegment per thread. In Lambda a thread that
    has none makes its own from `_X_AMZN_TRACE_ID`, so its AWS calls are still in the
    invocation's trace, but hang off the function's segment beside the handler's subsegment
    instead of inside it. So the entity current on the submitting thread (the handler's
    subsegment, or a traced method's) is read here and set on the worker for the length of
    `work`, as the SDK documents for a ThreadPoolExecutor, then cleared, so a reused worker
    never carries it into its next task; run on this same thread, `work` runs as it is. With
    tracing disabled (tests, the offline stack) `work` itself is returned.
    """
    if tracer.disabled:
        return work
    recorder: Any = tracer.provider  # the X-Ray recorder (Powertools' escape hatch)
    entity = recorder.get_trace_entity()
    home = threading.get_ident()

    @functools.wraps(work)
    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        if threading.get_ident() == home:
            return work(*args, **kwargs)
        recorder.set_trace_entity(entity)
        try:
            return work(*args, **kwargs)
        finally:
            recorder.clear_trace_entities()

    return traced


class Metric(StrEnum):
    """Every metric the coordinator publishes. `OldestClaimSeconds` and `OldestWaitingSeconds`
    are a contract with template.yaml, whose alarms watch them (tests/unit/test_template.py)."""

    CALLBACKS_FAILED = "CallbacksFailed"
    CALLBACKS_SENT = "CallbacksSent"
    CYCLES_REFUSED = "CyclesRefused"
    EXECUTIONS_REDRIVEN = "ExecutionsRedriven"
    EXECUTIONS_STARTED = "ExecutionsStarted"
    GATES_ARMED = "GatesArmed"
    GATES_ENDED = "GatesEnded"
    GATES_OPENED = "GatesOpened"
    INVALID_MESSAGES = "InvalidMessages"
    OLDEST_CLAIM_SECONDS = "OldestClaimSeconds"
    OLDEST_WAITING_SECONDS = "OldestWaitingSeconds"
    PAYLOADS_CLAIMED = "PayloadsClaimed"
    RANGE_TICKS = "RangeTicks"
    RECONCILE_REPAIRS = "ReconcileRepairs"
    REDRIVES_REFUSED = "RedrivesRefused"
    WAITERS_REGISTERED = "WaitersRegistered"
    WAITERS_RESOLVED = "WaitersResolved"
