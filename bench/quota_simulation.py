"""A discrete-event replay of two large loads against an account's quotas (no AWS involved).

1. One payload with 100,000 waiters finishes: update-state settles it (one finalize, a page
   of 100 rows per Query, one conditional move per waiter, all in one invocation), the stream
   carries each moved row to the dispatcher (SendTaskSuccess, then the notified stamp).
2. A backfill of 1,000,000 ticks: the Map state sends one process message per tick (with a
   task token) and waits; process claims and starts the tick's workflow; its end reaches
   update-state, the dispatcher resumes the Map iteration.

The limits are token buckets and partition throughput with the numbers docs/scaling.md cites
(Step Functions "Quotas", DynamoDB per-partition throughput, Lambda event source settings);
call latencies are assumptions, named below. The deployment's own settings (update-state's
timeout and asynchronous retries, the dispatcher's batch size and parallelization factor,
reconcile's schedule and batch size) are read from template.yaml, so "as deployed" follows it.
Everything the design does at a limit is modelled: botocore's standard-mode backoff on
throttling, the update-state invocation's timeout and Lambda's asynchronous retries,
reconcile's bounded sweep afterwards, the stream's parallelization factor, Map concurrency.
It reports the time to drain and which limit held the flow back.

    .venv/bin/python -m bench.quota_simulation
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any

from bench.report import Report, Row, emit, prose, table

COMMAND = ".venv/bin/python -m bench.quota_simulation"

# Quotas (us-east-1, us-west-2, eu-west-1 for Step Functions; see docs/scaling.md for sources).
START_EXECUTION = (1_300, 300.0)  # standard workflows: bucket, refill per second
START_EXECUTION_EXPRESS = (6_000, 6_000.0)
SEND_TASK = (3_000, 500.0)  # SendTaskSuccess / SendTaskFailure
STATE_TRANSITIONS = (5_000, 1_500.0)  # standard workflows
PARTITION_WCU = 1_000.0  # per partition per second (table or GSI)
PARTITION_RCU = 3_000.0
INLINE_MAP_CONCURRENCY = 40
HISTORY_EVENTS = 25_000

FANIN_TARGET = 240.0  # 100,000 waiters of one payload all resumed (issue 19)
BACKFILL_TARGET = 7_200.0  # 1,000,000 ticks of a 60 s workflow

# Assumptions (not quotas): call latency and how the template is set.
RANGE_SECONDS_PER_TICK = 13e-6  # bench.backfill_scaling: about 6.4 ms per page of 500 ticks
LAMBDA_LATENCY = 0.050  # a range invocation's round trip, besides its walk
DYNAMODB_LATENCY = 0.005
STATES_LATENCY = 0.020
STREAM_DELAY = 0.5  # from a write to the dispatcher seeing it
WAITER_ROW_BYTES = 600  # measured by bench.calls_and_capacity: WAITER rows are 0.5-0.7 KB


class TokenBucket:
    """A bucket of `capacity` tokens refilled at `rate` per second, starting full."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens, self.at = capacity, 0.0

    def refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def ready_at(self, now: float, need: float = 1.0) -> float:
        """The earliest time `need` tokens are there (taking them then)."""
        self.refill(now)
        if self.tokens >= need:
            self.tokens -= need
            return now
        wait = (need - self.tokens) / self.rate
        self.tokens = 0.0
        self.at = now + wait
        return now + wait


@dataclass
class Waits:
    """Seconds a flow spent held back, by the limit that held it."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, name: str, seconds: float) -> None:
        if seconds > 0:
            self.seconds[name] += seconds

    def text(self) -> str:
        total = sum(self.seconds.values())
        if not total:
            return "nothing (latency-bound)"
        return ", ".join(f"{name} {value / total:.0%}" for name, value in most_common(self.seconds, 3))


def throttled_call(
    now: float,
    bucket: TokenBucket,
    latency: float,
    waits: Waits,
    name: str,
    rng: random.Random,
    need: float = 1,
) -> float:
    """A call that is throttled until its bucket has tokens, retried with botocore's standard
    backoff (full jitter, base 2, at most 20 s); returns when it completes."""
    attempt = 0
    while True:
        ready = bucket.ready_at(now, need)
        if ready <= now:
            return now + latency
        attempt += 1
        # The throttled call itself took a round trip, then the client sleeps.
        backoff = rng.random() * min(20.0, 2.0**attempt)
        waits.add(name, latency + backoff)
        now += latency + backoff
        bucket.refill(now)


# -- 1. one payload, many waiters ----------------------------------------------------------------


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
    return FanOutSetup(
        label=f"as deployed ({timeout:.0f} s update-state, {workers} moves at a time, PF {factor})",
        move_workers=workers,
        update_state_timeout=timeout,
        async_attempts=1 + int(retries),
        parallelization_factor=factor,
        batch_size=int(stream["BatchSize"]),
        reconcile_every=schedule.every.total_seconds(),
        reconcile_rows_per_shard=batch // len(pending_shards()),
    )


def move_concurrency(environment: dict[str, Any]) -> int:
    """How many moves settle has in flight in a function with this environment (Settings)."""
    from coordinator.settings import Settings

    given = {name: value for name, value in environment.items() if name == "SETTLE_MOVE_CONCURRENCY"}
    return Settings.model_validate({"TABLE_NAME": "-", **given}).move_concurrency


def globals_timeout() -> float:
    """The Timeout template.yaml's Globals give a function that sets none of its own."""
    from coordinator_tools.kit.template import load_template

    return float(load_template()["Globals"]["Function"]["Timeout"])


def _event(function: dict[str, Any], kind: str) -> dict[str, Any]:
    """The properties of a function's one event source of a kind (SAM `Events`)."""
    (found,) = (event["Properties"] for event in function["Events"].values() if event["Type"] == kind)
    return dict(found)


def simulate_fanout(setup: FanOutSetup, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    # The payload's partition. Settle's moves and the dispatcher's stamps both write it and,
    # the stream being half a second behind, they overlap nearly all along: each flow is given
    # half of it (pessimistic while only one of them runs). Without `shared_partition`, each
    # gets all of it, as this simulation had it before.
    share = PARTITION_WCU / 2 if setup.shared_partition else PARTITION_WCU
    table_wcu = TokenBucket(share, share)
    index_wcu = TokenBucket(PARTITION_WCU, PARTITION_WCU)  # by_pending's WAITER#<bucket> entry
    rcu = TokenBucket(PARTITION_RCU, PARTITION_RCU)
    waits = Waits()
    moved_at: list[float] = []
    waiting = setup.waiters
    now = 0.0
    attempts_used = 0
    page_rcu = math.ceil(100 * WAITER_ROW_BYTES / 4096)
    for attempt in range(setup.async_attempts):
        if not waiting:
            break
        attempts_used += 1
        if attempt:
            now += setup.retry_delays[min(attempt - 1, len(setup.retry_delays) - 1)]
        deadline = now + setup.update_state_timeout
        now = throttled_call(now, table_wcu, DYNAMODB_LATENCY, waits, "partition WCU", rng)
        pages = math.ceil(setup.waiters / 100)  # resolved rows still fill pages (filter after read)
        left_in_attempt = waiting
        for _ in range(pages):
            if now >= deadline:
                break
            now = throttled_call(now, rcu, DYNAMODB_LATENCY, waits, "partition RCU", rng, page_rcu)
            batch = min(100, left_in_attempt) if left_in_attempt else 0
            left_in_attempt -= batch
            # `move_workers` moves in flight at once, each one table write and one index write.
            workers = [now] * setup.move_workers
            for index in range(batch):
                slot = index % setup.move_workers
                start = workers[slot]
                if start >= deadline:
                    break
                done = throttled_call(start, table_wcu, DYNAMODB_LATENCY, waits, "partition WCU", rng)
                index_wcu.ready_at(done)
                workers[slot] = done
                moved_at.append(done)
                waiting -= 1
            now = max(workers)
        now = max(now, deadline) if waiting else now
    settle_end = max(moved_at) if moved_at else now
    # Whatever is left is moved by reconcile, a few rows per run of the one shard they share.
    reconcile_runs = math.ceil(waiting / setup.reconcile_rows_per_shard) if waiting else 0
    reconcile_end = now + reconcile_runs * setup.reconcile_every
    if waiting:
        step = setup.reconcile_every / setup.reconcile_rows_per_shard
        moved_at += [
            now + setup.reconcile_every * (1 + i // setup.reconcile_rows_per_shard) for i in range(waiting)
        ]
        waits.add("reconcile sweep", reconcile_runs * setup.reconcile_every)
        del step

    # The dispatcher: one shard (one partition), `parallelization_factor` batches at a time.
    # Its stamps write to the same partition as settle's moves; simulated after settle, with
    # its share of the partition (see above).
    table_wcu = TokenBucket(share, share)
    send_task = TokenBucket(*SEND_TASK)
    arrivals = sorted(t + STREAM_DELAY for t in moved_at)
    consumers = [0.0] * setup.parallelization_factor
    heapq.heapify(consumers)
    notified_end = 0.0
    for start in range(0, len(arrivals), setup.batch_size):
        arrived = arrivals[start : start + setup.batch_size]
        free = heapq.heappop(consumers)
        clock = max(free, arrived[-1])  # a batch is handed over once its records are there
        for _ in arrived:
            clock = throttled_call(clock, send_task, STATES_LATENCY, waits, "SendTaskSuccess rate", rng)
            clock = throttled_call(clock, table_wcu, DYNAMODB_LATENCY, waits, "partition WCU", rng)
        notified_end = max(notified_end, clock)
        heapq.heappush(consumers, clock)
    return {
        "setup": setup,
        "moved_by_settle": setup.waiters - waiting,
        "attempts": attempts_used,
        "settle_end": settle_end,
        "all_moved": max(reconcile_end, settle_end),
        "all_notified": notified_end,
        "waits": waits,
    }


# -- 2. a backfill of a million ticks --------------------------------------------------------------


@dataclass(frozen=True)
class BackfillSetup:
    label: str
    ticks: int = 1_000_000
    concurrency: int = INLINE_MAP_CONCURRENCY
    run_seconds: float = 60.0  # how long each tick's workflow runs
    start_execution: tuple[float, float] = START_EXECUTION
    parent_transitions: int = 4  # per iteration: enter the wait task, send, resume, end
    child_transitions: int = 4  # a small coordinated workflow
    already_done: bool = False  # every tick already SUCCEEDED: no StartExecution, resolved at once
    dt: float = 0.25
    # A Distributed Map backfill in pages (None: one continuous pool of `concurrency` ticks).
    pages: PagedBackfill | None = None


@dataclass(frozen=True)
class PagedBackfill:
    """backfill.asl.json's map_mode "distributed": a read of `pages_per_read` page cursors, then
    `pages_at_once` pages at a time, each a Map Run of its `page_size` ticks with `max_concurrency`
    at once; a page ends when its last tick does, a read when its last page does."""

    page_size: int
    max_concurrency: int
    pages_at_once: int
    pages_per_read: int


def backfill_defaults() -> dict[str, Any]:
    """backfill.asl.json's defaults for map_mode "distributed" (its Defaults state)."""
    from coordinator_tools.kit.template import state_machine_definitions

    definition = json.loads(state_machine_definitions()["BackfillStateMachine"]["text"])
    defaults = dict(definition["States"]["Defaults"]["Result"])
    return {**defaults, **defaults["distributed"]}


def deployed_backfill(**changes: Any) -> BackfillSetup:
    """The backfill template.yaml deploys in map_mode "distributed", with its defaults."""
    defaults = backfill_defaults()
    paged = PagedBackfill(
        page_size=int(defaults["page_size"]),
        max_concurrency=int(defaults["max_concurrency"]),
        pages_at_once=int(defaults["pages_at_once"]),
        pages_per_read=int(defaults["pages_per_read"]),
    )
    paged = replace(paged, **changes)
    at_once = paged.pages_at_once * min(paged.max_concurrency, paged.page_size)
    label = (
        f"map_mode distributed, its defaults: {paged.pages_at_once} pages of {paged.page_size:,} at once, "
        f"MaxConcurrency {paged.max_concurrency:,} ({at_once:,} ticks)"
    )
    return BackfillSetup(label, concurrency=at_once, pages=paged)


def simulate_backfill(setup: BackfillSetup) -> dict[str, object]:
    if setup.pages is not None:
        return simulate_paged_backfill(setup, setup.pages)
    start_bucket = TokenBucket(*setup.start_execution)
    transitions = TokenBucket(*STATE_TRANSITIONS)
    send_task = TokenBucket(*SEND_TASK)
    held: defaultdict[str, float] = defaultdict(float)
    running: list[tuple[float, int]] = []  # (finishes at, how many)
    in_flight = 0
    started = finished = 0
    now = 0.0
    run = 0.0 if setup.already_done else setup.run_seconds
    per_tick_transitions = setup.parent_transitions + (0 if setup.already_done else setup.child_transitions)
    while finished < setup.ticks:
        now += setup.dt
        for bucket in (start_bucket, transitions, send_task):
            bucket.refill(now)
        # Resume the iterations whose workflow ended, as SendTaskSuccess tokens allow.
        due = 0
        while running and running[0][0] <= now:
            due += heapq.heappop(running)[1]
        resumable = min(due, int(send_task.tokens))
        if resumable < due:
            held["SendTaskSuccess rate"] += setup.dt
            heapq.heappush(running, (now + setup.dt, due - resumable))
        send_task.tokens -= resumable
        finished += resumable
        in_flight -= resumable
        # Start new iterations as Map concurrency, StartExecution and state transitions allow.
        want = min(setup.concurrency - in_flight, setup.ticks - started)
        if want <= 0:
            held["Map concurrency"] += setup.dt if started < setup.ticks else 0
            continue
        can = want
        limits = {"state transitions": int(transitions.tokens // per_tick_transitions)}
        if not setup.already_done:
            limits["StartExecution rate"] = int(start_bucket.tokens)
        for name, limit in limits.items():
            if limit < can:
                can = limit
                held[name] += setup.dt
        if can == want and want < setup.ticks - started:
            held["Map concurrency"] += setup.dt
        if can <= 0:
            continue
        if not setup.already_done:
            start_bucket.tokens -= can
        transitions.tokens -= can * per_tick_transitions
        started += can
        in_flight += can
        heapq.heappush(running, (now + run + STATES_LATENCY * 3, can))
    executions = math.ceil(setup.ticks / max(1, HISTORY_EVENTS // 8)) if setup.concurrency <= 40 else 1
    return {"setup": setup, "seconds": now, "held": held, "executions": executions}


def simulate_paged_backfill(setup: BackfillSetup, paged: PagedBackfill) -> dict[str, object]:
    """`simulate_backfill` with the Distributed Map's pages: each page a Map Run, the ticks of
    a page and the pages of a read bounded as backfill.asl.json bounds them."""
    start_bucket = TokenBucket(*setup.start_execution)
    transitions = TokenBucket(*STATE_TRANSITIONS)
    send_task = TokenBucket(*SEND_TASK)
    held: defaultdict[str, float] = defaultdict(float)
    running: list[tuple[float, int, int]] = []  # (finishes at, page, how many)
    run = 0.0 if setup.already_done else setup.run_seconds
    per_tick_transitions = setup.parent_transitions + (0 if setup.already_done else setup.child_transitions)
    left = setup.ticks  # ticks not yet in a read
    to_start: dict[int, int] = {}  # open page -> ticks not started
    in_flight: dict[int, int] = {}
    unfinished: dict[int, int] = {}
    waiting_pages: list[int] = []  # pages of the current read not yet open
    opens_at: dict[int, float] = {}
    next_page = 0
    finished = 0
    read_done_at = 0.0
    now = 0.0
    while finished < setup.ticks:
        now += setup.dt
        for bucket in (start_bucket, transitions, send_task):
            bucket.refill(now)
        if not unfinished and not waiting_pages and left and now >= read_done_at:
            # Read the next pages' cursors: the range function walks every one of their ticks.
            read = min(left, paged.page_size * paged.pages_per_read)
            walk = read * RANGE_SECONDS_PER_TICK + LAMBDA_LATENCY
            held["range reads"] += walk
            for _ in range(math.ceil(read / paged.page_size)):
                size = min(paged.page_size, left)
                left -= size
                waiting_pages.append(next_page)
                to_start[next_page] = unfinished[next_page] = size
                in_flight[next_page] = 0
                next_page += 1
            read_done_at = now + walk
            continue
        if now < read_done_at:
            continue
        while waiting_pages and len(opens_at) < paged.pages_at_once:
            # The page's own execution reads its ticks (one range call), then starts its Map Run.
            opens_at[waiting_pages.pop(0)] = now + LAMBDA_LATENCY + STATES_LATENCY
        due: defaultdict[int, int] = defaultdict(int)
        while running and running[0][0] <= now:
            _, page, count = heapq.heappop(running)
            due[page] += count
        for page, count in due.items():
            resumable = min(count, int(send_task.tokens))
            if resumable < count:
                held["SendTaskSuccess rate"] += setup.dt
                heapq.heappush(running, (now + setup.dt, page, count - resumable))
            send_task.tokens -= resumable
            finished += resumable
            in_flight[page] -= resumable
            unfinished[page] -= resumable
            if not unfinished[page]:
                del unfinished[page], opens_at[page]
        blocked = False
        for page, opened in sorted(opens_at.items()):
            if opened > now:
                continue
            want = min(paged.max_concurrency - in_flight[page], to_start[page])
            if want <= 0:
                continue
            can = min(want, int(transitions.tokens // per_tick_transitions))
            if not setup.already_done:
                can = min(can, int(start_bucket.tokens))
            if can < want:
                blocked = True
            if can <= 0:
                continue
            if not setup.already_done:
                start_bucket.tokens -= can
            transitions.tokens -= can * per_tick_transitions
            to_start[page] -= can
            in_flight[page] += can
            heapq.heappush(running, (now + run + STATES_LATENCY * 3, page, can))
        if blocked:
            held["StartExecution or state transitions"] += setup.dt
        elif any(to_start.values()) or waiting_pages:
            held["Map concurrency"] += setup.dt
        else:
            held["a page's last ticks"] += setup.dt
    return {"setup": setup, "seconds": now, "held": held, "executions": 1}


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def held_text(held: Mapping[str, float], total: float) -> str:
    if not held:
        return "-"
    return ", ".join(f"{name} {value / total:.0%} of the time" for name, value in most_common(held, 2))


def most_common(seconds: Mapping[str, float], count: int) -> list[tuple[str, float]]:
    """The `count` largest, ordered as `Counter.most_common` orders them (whose type counts ints only)."""
    return heapq.nlargest(count, seconds.items(), key=itemgetter(1))


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
        shared_partition=False,
    )


def backfills() -> list[BackfillSetup]:
    """As deployed (map_mode "distributed", its defaults), then today's inline Map and the
    unpaged pools docs/scaling.md discusses."""
    return [deployed_backfill(), *BACKFILLS]


BACKFILLS = [
    BackfillSetup("inline Map, MaxConcurrency 40"),
    BackfillSetup("Distributed Map, MaxConcurrency 1,000", concurrency=1_000),
    BackfillSetup("Distributed Map, MaxConcurrency 10,000", concurrency=10_000),
    BackfillSetup("Distributed Map 10,000, ticks already done", concurrency=10_000, already_done=True),
]


def main(argv: list[str]) -> Report:
    fan = [simulate_fanout(setup) for setup in fanouts()]
    fills = [simulate_backfill(setup) for setup in backfills()]
    fan_body = [
        [
            r["setup"].label,  # type: ignore[attr-defined]
            f"{r['moved_by_settle']:,}",
            r["attempts"],
            duration(float(r["all_moved"])),  # type: ignore[arg-type]
            duration(float(r["all_notified"])),  # type: ignore[arg-type]
            r["waits"].text(),  # type: ignore[attr-defined]
        ]
        for r in fan
    ]
    fill_body = [
        [
            r["setup"].label,  # type: ignore[attr-defined]
            duration(float(r["seconds"])),  # type: ignore[arg-type]
            f"{1_000_000 / float(r['seconds']):.0f}",  # type: ignore[arg-type]
            held_text(r["held"], float(r["seconds"])),  # type: ignore[arg-type]
        ]
        for r in fills
    ]
    deployed, before = fan[0], fan[1]
    deployed_setup: FanOutSetup = deployed["setup"]  # type: ignore[assignment]
    moved = int(deployed["moved_by_settle"])  # type: ignore[call-overload]
    attempts = int(deployed["attempts"])  # type: ignore[call-overload]
    if moved == deployed_setup.waiters:
        how = (
            f"all moved in {duration(float(deployed['all_moved']))} by "  # type: ignore[arg-type]
            f"{attempts} update-state attempt{'s' if attempts > 1 else ''}; resumes follow at the "
            f"dispatcher's pace, PF {deployed_setup.parallelization_factor}"
        )
    else:
        how = f"settle moves {moved:,} before its retries end; reconcile the rest"
    report = Report("Quota simulation")
    resumed = float(deployed["all_notified"])  # type: ignore[arg-type]
    report.rows.append(
        Row(
            f"100,000 waiters on one payload: all resumed, {deployed_setup.label}",
            COMMAND,
            f"{resumed:.0f} s ({duration(resumed)}; before: {duration(float(before['all_notified']))})",  # type: ignore[arg-type]
            f"<= {FANIN_TARGET:.0f} s (issue 19)",
            resumed <= FANIN_TARGET,
            note=f"{how}; held back by {deployed['waits'].text()}",  # type: ignore[attr-defined]
        )
    )
    deployed_fill, inline = fills[0], fills[1]
    report.rows.append(
        Row(
            f"1,000,000-tick backfill, as deployed ({deployed_fill['setup'].label})",  # type: ignore[attr-defined]
            COMMAND,
            f"{duration(float(deployed_fill['seconds']))} (before: {duration(float(inline['seconds']))}, "  # type: ignore[arg-type]
            f"{inline['setup'].label})",  # type: ignore[attr-defined]
            f"<= {BACKFILL_TARGET / 3600:.0f} h (issue 19)",
            float(deployed_fill["seconds"]) <= BACKFILL_TARGET,  # type: ignore[arg-type]
            note=held_text(deployed_fill["held"], float(deployed_fill["seconds"])),  # type: ignore[arg-type]
        )
    )
    for r in fills[2:4]:
        report.rows.append(
            Row(
                f"1,000,000-tick backfill, {r['setup'].label}",  # type: ignore[attr-defined]
                COMMAND,
                duration(float(r["seconds"])),  # type: ignore[arg-type]
                "reported",
                None,
                note=held_text(r["held"], float(r["seconds"])),  # type: ignore[arg-type]
            )
        )
    pages = math.ceil(100_000 / 100)
    page_rcu = math.ceil(100 * WAITER_ROW_BYTES / 4096)
    pass_rcu = pages * page_rcu
    report.detail = "\n\n".join(
        [
            prose(
                f"""Assumed latencies: DynamoDB {DYNAMODB_LATENCY * 1000:.0f} ms, Step Functions
                API {STATES_LATENCY * 1000:.0f} ms, stream delivery {STREAM_DELAY} s; WAITER rows
                of {WAITER_ROW_BYTES} bytes; the workflow of a tick runs 60 s. Quotas: StartExecution
                {START_EXECUTION[0]:,} + {START_EXECUTION[1]:.0f}/s, SendTask* {SEND_TASK[0]:,} +
                {SEND_TASK[1]:.0f}/s, state transitions {STATE_TRANSITIONS[0]:,} +
                {STATE_TRANSITIONS[1]:,.0f}/s, {PARTITION_WCU:,.0f} WCU and {PARTITION_RCU:,.0f} RCU
                per partition, inline Map {INLINE_MAP_CONCURRENCY} iterations."""
            ),
            prose(
                f"""The settle query reads every waiter row of the payload, resolved ones too
                (the filter applies after the read): at 100,000 waiters of {WAITER_ROW_BYTES}
                bytes that is {pages:,} pages of {page_rcu} RCU, {pass_rcu:,} RCU a full pass,
                about {pass_rcu / PARTITION_RCU:.0f} s of the partition's {PARTITION_RCU:,.0f}
                RCU/s and {pages * DYNAMODB_LATENCY:.0f} s of round trips, on every repeat. It
                is modelled above and does not hold the target back, so the query stays on the
                table (strongly consistent, which no index is)."""
            ),
            "**One payload, 100,000 waiters**",
            table(
                [
                    "setup",
                    "moved by settle",
                    "update-state attempts",
                    "all moved",
                    "all resumed",
                    "held back by",
                ],
                fan_body,
            ),
            "**A backfill of 1,000,000 ticks**",
            prose(
                f"""As deployed is backfill.asl.json's map_mode "distributed" with the defaults
                its Defaults state sets: each read walks the cursors of its pages
                ({RANGE_SECONDS_PER_TICK * 1e6:.0f} µs a tick, bench.backfill_scaling), each page
                ends with its last tick and frees its place for the next page of the read, the
                next read starts when the last page of this one ends. The other rows are one
                pool of MaxConcurrency ticks, no pages. A Map Run's own starts of its child
                executions are taken not to spend the StartExecution API's tokens; the tick
                workflows' starts (by process) do."""
            ),
            table(["setup", "drained in", "ticks/s", "held back by"], fill_body),
            prose(
                f"""An inline Map keeps every iteration's events in the parent's history (at most
                {HISTORY_EVENTS:,} events, about 8 per iteration): a million ticks need the
                backfill to continue as a new execution every ~3,000 ticks (about
                {math.ceil(1_000_000 / (HISTORY_EVENTS // 8))} executions), or a Distributed Map,
                whose iterations are child executions with their own histories."""
            ),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
