"""The quota simulation's fan-in: one payload's 100,000 waiters, settled and resumed.

Every actor runs on one clock, in time order (a discrete-event loop over generators): settle's
query and move threads, the dispatcher's batches and their record threads all draw on the same
token buckets, so the moves and the stamps share the payload's partition as they do in
DynamoDB, each call at the moment it is made.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from bench.quota_model import (
    DYNAMODB_LATENCY,
    PARTITION_RCU,
    PARTITION_WCU,
    SEND_TASK,
    STATES_LATENCY,
    STREAM_DELAY,
    WAITER_ROW_BYTES,
    TokenBucket,
    Waits,
)

PAGE_ROWS = 100  # the settle query's page (coordinator.table.WAITER_PAGE)
POLL_EVERY = 0.25  # Lambda polls a stream shard about four times a second


@dataclass(frozen=True)
class FanOutSetup:
    label: str
    update_state_timeout: float  # UpdateStateFunction's Timeout (else the Globals one)
    async_attempts: int  # Lambda's asynchronous invocation: the first and its retries
    parallelization_factor: int  # DispatcherFunction's stream event source (default 1)
    batch_size: int  # the same event source's BatchSize
    reconcile_every: float  # ReconcileFunction's schedule
    reconcile_rows_per_shard: int  # RECONCILE_BATCH_SIZE over the by_pending shards
    waiters: int = 100_000
    retry_delays: tuple[float, ...] = (60.0, 120.0)  # Lambda retries about 1, then 2 minutes later
    move_workers: int = 1  # settle's SETTLE_MOVE_CONCURRENCY
    dispatch_workers: int = 1  # the dispatcher's DISPATCH_CONCURRENCY: records of a batch at once
    shared_partition: bool = True  # the dispatcher's stamps share the moves' partition WCU


def as_deployed() -> FanOutSetup:
    """The fan-out setup template.yaml deploys."""
    from coordinator.schedule import RateSchedule, compile_schedule
    from coordinator.table import pending_shards
    from coordinator_tools.kit.template import function_environment, properties

    update_state = properties("UpdateStateFunction")
    retries = update_state.get("EventInvokeConfig", {}).get("MaximumRetryAttempts", 2)
    stream = _event(properties("DispatcherFunction"), "DynamoDB")
    schedule = compile_schedule(_event(properties("ReconcileFunction"), "ScheduleV2")["ScheduleExpression"])
    if not isinstance(schedule, RateSchedule):
        raise ValueError("the simulation models reconcile on a rate(...) schedule")
    batch = int(function_environment("ReconcileFunction")["RECONCILE_BATCH_SIZE"])
    timeout = float(update_state.get("Timeout", globals_timeout()))
    factor = int(stream.get("ParallelizationFactor", 1))
    workers = move_concurrency(function_environment("UpdateStateFunction"))
    dispatchers = dispatch_concurrency(function_environment("DispatcherFunction"))
    return FanOutSetup(
        label=(
            f"as deployed ({timeout:.0f} s update-state, {workers} moves at a time, PF {factor}, "
            f"{dispatchers} records of a batch at once)"
        ),
        move_workers=workers,
        dispatch_workers=dispatchers,
        update_state_timeout=timeout,
        async_attempts=1 + int(retries),
        parallelization_factor=factor,
        batch_size=int(stream["BatchSize"]),
        reconcile_every=schedule.every.total_seconds(),
        reconcile_rows_per_shard=batch // len(pending_shards()),
    )


def move_concurrency(environment: dict[str, Any]) -> int:
    """How many moves settle has in flight in a function with this environment (Settings)."""
    return int(_settings(environment, "SETTLE_MOVE_CONCURRENCY").move_concurrency)


def dispatch_concurrency(environment: dict[str, Any]) -> int:
    """How many records of a batch the dispatcher handles at once with this environment."""
    return int(_settings(environment, "DISPATCH_CONCURRENCY").dispatch_concurrency)


def _settings(environment: dict[str, Any], name: str) -> Any:
    from coordinator.settings import Settings

    given = {key: value for key, value in environment.items() if key == name}
    return Settings.model_validate({"TABLE_NAME": "-", **given})


def globals_timeout() -> float:
    """The Timeout template.yaml's Globals give a function that sets none of its own."""
    from coordinator_tools.kit.template import load_template

    return float(load_template()["Globals"]["Function"]["Timeout"])


def _event(function: dict[str, Any], kind: str) -> dict[str, Any]:
    """The properties of a function's one event source of a kind (SAM `Events`)."""
    (found,) = (event["Properties"] for event in function["Events"].values() if event["Type"] == kind)
    return dict(found)


# A step yields the time it next runs, or a list of steps to run side by side (it resumes when
# the last of them ends).
Step = Generator["float | list[Step]", None, None]


class Clock:
    """Runs steps in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Step]] = []
        # a child's number -> its parent, the parent's number, and how many of its children run
        self._parents: dict[int, tuple[Step, int, list[int]]] = {}
        self._count = 0

    def start(self, step: Step, at: float) -> None:
        self._count += 1
        heapq.heappush(self._queue, (at, self._count, step))

    def run(self) -> None:
        while self._queue:
            self.now, number, step = heapq.heappop(self._queue)
            try:
                wake = next(step)
            except StopIteration:
                self._ended(number)
                continue
            if not isinstance(wake, list):
                heapq.heappush(self._queue, (wake, number, step))
            elif not wake:
                heapq.heappush(self._queue, (self.now, number, step))
            else:
                left = [len(wake)]
                for child in wake:
                    self.start(child, self.now)
                    self._parents[self._count] = (step, number, left)

    def _ended(self, number: int) -> None:
        found = self._parents.pop(number, None)
        if found is None:
            return
        parent, parent_number, left = found
        left[0] -= 1
        if not left[0]:
            heapq.heappush(self._queue, (self.now, parent_number, parent))


def call(
    clock: Clock,
    bucket: TokenBucket,
    latency: float,
    waits: Waits,
    name: str,
    rng: random.Random,
    need: float = 1,
) -> Step:
    """One call, refused while its bucket is short (taking nothing) and retried with botocore's
    standard backoff (full jitter, base 2, at most 20 s); ends when it completes."""
    attempt = 0
    while not bucket.take(clock.now, need):
        attempt += 1
        pause = latency + rng.random() * min(20.0, 2.0**attempt)  # the refused round trip, the sleep
        waits.add(name, pause)
        yield clock.now + pause
    yield clock.now + latency


@dataclass
class Flow:
    """What one fan-in run shares: the clock, the buckets, the stream, what was held back."""

    setup: FanOutSetup
    rng: random.Random
    clock: Clock = field(default_factory=Clock)
    waits: Waits = field(default_factory=Waits)
    stream: list[float] = field(default_factory=list)  # heap: when each moved row reaches the dispatcher
    moved: int = 0
    by_update_state: int = 0  # of them, moved by update-state (the rest by reconcile)
    attempts: int = 0
    notified: int = 0
    settle_end: float = 0.0
    notified_end: float = 0.0

    def __post_init__(self) -> None:
        self.moves_wcu = TokenBucket(PARTITION_WCU, PARTITION_WCU)
        # Before issue 19 the simulation gave the dispatcher's stamps a partition of their own.
        self.stamps_wcu = (
            self.moves_wcu if self.setup.shared_partition else TokenBucket(PARTITION_WCU, PARTITION_WCU)
        )
        self.rcu = TokenBucket(PARTITION_RCU, PARTITION_RCU)
        self.send_task = TokenBucket(*SEND_TASK)

    def dynamodb(self, bucket: TokenBucket, name: str, need: float = 1) -> Step:
        return call(self.clock, bucket, DYNAMODB_LATENCY, self.waits, name, self.rng, need)


def settle_attempt(flow: Flow, deadline: float) -> Step:
    """One update-state invocation: the finalize, then the query a page at a time and each
    page's moves, `move_workers` at once, until the waiters are moved or the timeout."""
    yield from flow.dynamodb(flow.moves_wcu, "partition WCU")
    page_rcu = math.ceil(PAGE_ROWS * WAITER_ROW_BYTES / 4096)
    left = flow.setup.waiters - flow.moved
    for _ in range(math.ceil(flow.setup.waiters / PAGE_ROWS)):  # resolved rows fill pages too
        if flow.clock.now >= deadline:
            return
        yield from flow.dynamodb(flow.rcu, "partition RCU", page_rcu)
        batch = min(PAGE_ROWS, left)
        left -= batch
        if batch:
            workers = min(flow.setup.move_workers, batch)
            yield [mover(flow, batch // workers + (w < batch % workers), deadline) for w in range(workers)]


def mover(flow: Flow, moves: int, deadline: float) -> Step:
    """A move thread: its share of a page, one conditional write (1 WCU) each."""
    for _ in range(moves):
        if flow.clock.now >= deadline:
            return
        yield from flow.dynamodb(flow.moves_wcu, "partition WCU")
        flow.moved += 1
        flow.settle_end = flow.clock.now
        heapq.heappush(flow.stream, flow.clock.now + STREAM_DELAY)


def settle(flow: Flow) -> Step:
    """update-state and Lambda's asynchronous retries, then reconcile for what is left."""
    setup = flow.setup
    for attempt in range(setup.async_attempts):
        if flow.moved == setup.waiters:
            break
        flow.attempts = attempt + 1
        if attempt:
            yield flow.clock.now + setup.retry_delays[min(attempt - 1, len(setup.retry_delays) - 1)]
        deadline = flow.clock.now + setup.update_state_timeout
        yield [settle_attempt(flow, deadline)]
        yield max(flow.clock.now, deadline) if flow.moved < setup.waiters else flow.clock.now
    # Whatever is left is moved by reconcile, a few rows per run of the one shard they share.
    flow.by_update_state = flow.moved
    left = setup.waiters - flow.moved
    if left:
        runs = math.ceil(left / setup.reconcile_rows_per_shard)
        flow.waits.add("reconcile sweep", runs * setup.reconcile_every)
        for index in range(left):
            moved_at = flow.clock.now + setup.reconcile_every * (1 + index // setup.reconcile_rows_per_shard)
            heapq.heappush(flow.stream, moved_at + STREAM_DELAY)
        flow.settle_end = flow.clock.now + runs * setup.reconcile_every
        flow.moved = setup.waiters


def consumer(flow: Flow) -> Step:
    """One of the shard's `parallelization_factor` concurrent batches: it takes up to
    `batch_size` records that have arrived, handles `dispatch_workers` at once, then polls."""
    setup = flow.setup
    while flow.notified < setup.waiters:
        batch = 0
        while flow.stream and flow.stream[0] <= flow.clock.now and batch < setup.batch_size:
            heapq.heappop(flow.stream)
            batch += 1
        if not batch:
            upcoming = flow.stream[0] if flow.stream and flow.moved == setup.waiters else 0.0
            yield max(flow.clock.now + POLL_EVERY, upcoming)
            continue
        flow.notified += batch
        workers = min(setup.dispatch_workers, batch)
        yield [notifier(flow, batch // workers + (w < batch % workers)) for w in range(workers)]
        flow.notified_end = max(flow.notified_end, flow.clock.now)


def notifier(flow: Flow, records: int) -> Step:
    """A record thread: SendTaskSuccess, then the notified stamp (1 WCU), per record."""
    for _ in range(records):
        yield from call(
            flow.clock, flow.send_task, STATES_LATENCY, flow.waits, "SendTaskSuccess rate", flow.rng
        )
        yield from flow.dynamodb(flow.stamps_wcu, "partition WCU")


def simulate_fanout(setup: FanOutSetup, seed: int = 7) -> dict[str, object]:
    flow = Flow(setup, random.Random(seed))
    flow.clock.start(settle(flow), 0.0)
    for _ in range(setup.parallelization_factor):
        flow.clock.start(consumer(flow), 0.0)
    flow.clock.run()
    return {
        "setup": setup,
        "moved_by_settle": flow.by_update_state,
        "attempts": flow.attempts,
        "settle_end": flow.settle_end,
        "all_moved": flow.settle_end,
        "all_notified": flow.notified_end,
        "waits": flow.waits,
    }


def fanouts() -> list[FanOutSetup]:
    """As deployed, then the changes docs/scaling.md discusses, one step at a time."""
    deployed = as_deployed()
    default = globals_timeout()
    setups = [deployed, before_issue_19(deployed)]
    if deployed.update_state_timeout != default:
        # What the template's own update-state timeout buys over the Globals one.
        setups.append(
            replace(
                deployed,
                label=f"update-state at the Globals timeout ({default:.0f} s)",
                update_state_timeout=default,
            )
        )
    setups += [
        replace(deployed, label="as deployed, moves one at a time", move_workers=1),
        replace(deployed, label="as deployed, 16 moves at a time", move_workers=16),
        replace(deployed, label="as deployed, the dispatcher's records one at a time", dispatch_workers=1),
    ]
    return setups


def before_issue_19(deployed: FanOutSetup) -> FanOutSetup:
    """The template before settle moved waiters concurrently: one move at a time, PF 1, and the
    dispatcher's stamps on a partition of their own, as this simulation had them."""
    return replace(
        deployed,
        label="before: one move at a time, PF 1",
        move_workers=1,
        parallelization_factor=1,
        dispatch_workers=1,
        shared_partition=False,
    )
