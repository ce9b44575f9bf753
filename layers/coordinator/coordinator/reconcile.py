"""reconcile: on a schedule, repair what a lost event or a crash left pending.

Each run pages the sparse `by_pending` index (CLAIMED, PROCESSING and WAITING rows, oldest
first, spread over shards) and acts on rows older than the lease:

- CLAIMED whose execution does not exist: its claimer crashed before StartExecution; start
  it now under the same name (at most once: Step Functions refuses a second execution).
- CLAIMED for a redrive (`coordinator.redrive`) whose execution was not redriven: its claimer
  crashed before RedriveExecution; send it now with the same client token.
- CLAIMED or PROCESSING whose execution has ended: the status event was lost; settle it
  exactly as update-state would have, for the run DescribeExecution names (its redrive count).
  A redrive whose events were lost is found the same way, or, if its row had ended, by the
  next message for the payload (`follow_redrive`).
- GATED (`coordinator.gate`): past a missing upstream's deadline, ended DependencyTimedOut;
  else armed again (a gate row a crash left unput is put, one whose upstream ended is moved,
  moved ones are heard), so a lost stream record or a crash never holds a gate shut.
- WAITING whose payload is already final: move the waiter on (the dispatcher does the rest).
- anything still legitimately in progress is sent to the back of the queue (`touch_pending`).

Work per run is bounded by `RECONCILE_BATCH_SIZE` rows, so a run ends inside its timeout
however large the backlog; the next run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from coordinator.errors import CoordinatorError
from coordinator.gate import arm, expire
from coordinator.observability import Metric, logger, metrics
from coordinator.process import start_attempt
from coordinator.redrive import apply_described, describe, redrive_count_of, send_redrive
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import STATE_OF_STATUS, State, WaiterState
from coordinator.table import STATE_KEY, Outcome, pending_shards


@dataclass
class ReconcileReport:
    examined: int = 0
    restarted: int = 0
    settled: int = 0
    waiters_moved: int = 0
    deferred: int = 0
    oldest_waiting_seconds: float = 0.0
    oldest_claim_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def reconcile(services: Services) -> ReconcileReport:
    config = services.settings
    now = services.clock()
    lease_start = now - timedelta(seconds=config.lease_seconds)
    shards = _shard_order(now)
    per_shard = max(1, -(-config.reconcile_batch // len(shards)))
    report = ReconcileReport()
    for shard in shards:
        budget = config.reconcile_batch - report.examined
        if budget <= 0:
            break
        for row in services.table.pending(shard, now, min(per_shard, budget)):
            since = datetime.fromisoformat(row["pending_since"])
            age = (now - since).total_seconds()
            is_state = row["sk"] == STATE_KEY
            if is_state:
                report.oldest_claim_seconds = max(report.oldest_claim_seconds, age)
            else:
                report.oldest_waiting_seconds = max(report.oldest_waiting_seconds, age)
            if since >= lease_start:
                break  # oldest first: the rest of this shard is within its lease
            report.examined += 1
            try:
                if is_state:
                    _repair_state(services, row, report)
                else:
                    _repair_waiter(services, row, report)
            except (ClientError, CoordinatorError) as error:
                # One row's trouble must not end the run, nor hold the head of its shard: it
                # goes to the back and is tried again on a later run.
                code = (
                    error.response.get("Error", {}).get("Code")
                    if isinstance(error, ClientError)
                    else type(error).__name__
                )
                report.errors.append(f"{row['payload_id']}: {code}")
                _defer(services, row, report)
                logger.warning(
                    "reconcile row failed", payload_id=row["payload_id"], sk=row["sk"], error=str(error)
                )
    metrics.add_metric(
        name=Metric.OLDEST_WAITING_SECONDS, unit="Seconds", value=report.oldest_waiting_seconds
    )
    metrics.add_metric(name=Metric.OLDEST_CLAIM_SECONDS, unit="Seconds", value=report.oldest_claim_seconds)
    repairs = report.restarted + report.settled + report.waiters_moved
    if repairs:
        metrics.add_metric(name=Metric.RECONCILE_REPAIRS, unit="Count", value=repairs)
    logger.info(
        "reconcile run", **{k: v for k, v in vars(report).items() if k != "errors"}, errors=len(report.errors)
    )
    return report


def _shard_order(now: datetime) -> list[str]:
    """Payload shards first (settling a payload moves its waiters, so waiter rows behind it
    need no work of their own), then waiter shards; each kind starts at a shard that rotates
    every minute, so a batch smaller than the shard count still reaches every shard in turn.
    """
    shards = pending_shards()
    kinds = [
        [s for s in shards if s.startswith(STATE_KEY)],
        [s for s in shards if not s.startswith(STATE_KEY)],
    ]
    first = int(now.timestamp() // 60)
    return [shard for kind in kinds for shard in kind[first % len(kind) :] + kind[: first % len(kind)]]


def _repair_state(services: Services, row: dict[str, Any], report: ReconcileReport) -> None:
    arn = row["execution_arn"]
    payload_id = row["payload_id"]
    if row.get("state") == State.GATED:
        _repair_gate(services, row, report)
        return
    described = describe(services, arn)
    # The index row lacks the redrive count: the STATE row itself, read consistently.
    current = services.table.get_state(payload_id)
    if current is None or current.execution_arn != arn or current.state.is_final:
        return  # moved on since the index was read
    if described is None:
        if current.state is State.CLAIMED and not current.is_redrive_claim:
            start_attempt(services, current)
            report.restarted += 1
            logger.info("claimed attempt restarted", payload_id=payload_id, execution_arn=arn)
            return  # its RUNNING event (or the next run, seeing it RUNNING) moves the row on
        # PROCESSING with no execution (history expired, state machine deleted): nothing
        # here can settle it; keep it visible to `coordinator stuck` but not in the way.
        logger.warning(
            "execution of a pending payload does not exist", payload_id=payload_id, execution_arn=arn
        )
        _defer(services, row, report)
        return
    count = redrive_count_of(described)
    if current.is_redrive_claim and current.redrive_count > count:
        # A redrive claimed but never sent: its claimer crashed between the two calls.
        send_redrive(services, current)
        report.restarted += 1
        logger.info("claimed redrive sent", payload_id=payload_id, execution_arn=arn, redrive_count=count)
        return
    state = STATE_OF_STATUS.get(described["status"])
    if state is None or state is State.PROCESSING:
        if state is State.PROCESSING and (current.state is State.CLAIMED or current.redrive_count < count):
            apply_status(
                services, payload_id, arn, State.PROCESSING, redrive_count=count
            )  # moves pending_since on
            report.deferred += 1
        else:
            _defer(services, row, report)
        return
    settled = apply_described(services, payload_id, described)
    report.settled += 1
    report.waiters_moved += settled.waiters_moved
    logger.info(
        "missed status settled",
        payload_id=payload_id,
        execution_arn=arn,
        state=str(state),
        redrive_count=count,
    )


def _repair_gate(services: Services, row: dict[str, Any], report: ReconcileReport) -> None:
    gated = services.table.get_state(row["payload_id"])
    if gated is None or gated.state is not State.GATED or gated.execution_arn != row["execution_arn"]:
        return  # moved on since the index was read
    if expire(services, gated) is not None:
        report.settled += 1
        logger.info("gate timed out", payload_id=gated.payload_id)
        return
    after = arm(services, gated, None, request_id="reconcile")
    if after is not None and after.state is not State.GATED:
        report.restarted += 1
        return
    _defer(services, row, report)


def _repair_waiter(services: Services, row: dict[str, Any], report: ReconcileReport) -> None:
    if row.get("waiter_state") != WaiterState.WAITING:
        return
    current = services.table.get_state(row["payload_id"])
    if current is None or not current.state.is_final:
        _defer(services, row, report)
        return
    if services.table.move_waiter(row["payload_id"], row["sk"], Outcome.of(current), services.clock()):
        report.waiters_moved += 1
        logger.info("waiter moved by reconcile", payload_id=row["payload_id"], state=str(current.state))


def _defer(services: Services, row: dict[str, Any], report: ReconcileReport) -> None:
    if services.table.touch_pending(row["payload_id"], row["sk"], row["pending_since"], services.clock()):
        report.deferred += 1
