"""The quota simulation's backfill: a million ticks through a Map state (see `bench.quota_simulation`)."""

from __future__ import annotations

import heapq
import json
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from bench.quota_model import (
    HISTORY_EVENTS,
    INLINE_MAP_CONCURRENCY,
    LAMBDA_LATENCY,
    RANGE_SECONDS_PER_TICK,
    SEND_TASK,
    START_EXECUTION,
    STATE_TRANSITIONS,
    STATES_LATENCY,
    TokenBucket,
)
from coordinator.schedule import MapMode, map_mode_for


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
    """backfill.asl.json's defaults (its Defaults state): `distributed` holds the ones a
    Distributed Map backfill takes over the rest."""
    from coordinator_tools.kit.template import state_machine_definitions

    definition = json.loads(state_machine_definitions()["BackfillStateMachine"]["text"])
    return dict(definition["States"]["Defaults"]["Result"])


def deployed_backfill(ticks: int = 1_000_000, **changes: Any) -> BackfillSetup:
    """A backfill of `ticks` as template.yaml deploys it: the request leaves every option to the
    state machine's defaults, `map_mode` included (a distributed backfill's `changes` replace
    its page settings)."""
    defaults = backfill_defaults()
    asked, limit = MapMode(defaults["map_mode"]), int(defaults["inline_limit"])
    mode = map_mode_for(ticks, limit) if asked is MapMode.AUTO else asked
    chosen = f"map_mode {asked}" + (
        f" ({ticks:,} ticks, inline_limit {limit:,}: {mode})" if asked is MapMode.AUTO else ""
    )
    if mode is MapMode.INLINE:
        at_once = min(int(defaults["max_concurrency"]), INLINE_MAP_CONCURRENCY)
        return BackfillSetup(f"{chosen}, MaxConcurrency {at_once}", ticks=ticks, concurrency=at_once)
    distributed = defaults | defaults["distributed"]
    paged = PagedBackfill(
        page_size=int(distributed["page_size"]),
        max_concurrency=int(distributed["max_concurrency"]),
        pages_at_once=int(distributed["pages_at_once"]),
        pages_per_read=int(distributed["pages_per_read"]),
    )
    paged = replace(paged, **changes)
    at_once = paged.pages_at_once * min(paged.max_concurrency, paged.page_size)
    label = (
        f"{chosen}, its defaults: {paged.pages_at_once} pages of {paged.page_size:,} at once, "
        f"MaxConcurrency {paged.max_concurrency:,} ({at_once:,} ticks)"
    )
    return BackfillSetup(label, ticks=ticks, concurrency=at_once, pages=paged)


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


def backfills() -> list[BackfillSetup]:
    """As deployed (the state machine's defaults: map_mode "auto", distributed for a million
    ticks), then today's inline Map and the unpaged pools docs/scaling.md discusses."""
    return [deployed_backfill(), *BACKFILLS]


BACKFILLS = [
    BackfillSetup("inline Map, MaxConcurrency 40"),
    BackfillSetup("Distributed Map, MaxConcurrency 1,000", concurrency=1_000),
    BackfillSetup("Distributed Map, MaxConcurrency 10,000", concurrency=10_000),
    BackfillSetup("Distributed Map 10,000, ticks already done", concurrency=10_000, already_done=True),
]
