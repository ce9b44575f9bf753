"""The one Logger, Tracer and Metrics of every handler (service name and namespace from env),
and the names of the metrics they publish."""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


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
