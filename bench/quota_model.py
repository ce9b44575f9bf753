"""The quota simulation's parts every load shares: quotas, assumed latencies, token buckets and
a throttled call with botocore's backoff (`bench.quota_simulation` says what is replayed)."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter

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

    def take(self, now: float, need: float = 1.0) -> bool:
        """Take `need` tokens if they are there; a refused request takes none (DynamoDB: "a
        throttled request fails with HTTP 400" and consumes no capacity; Step Functions' API
        buckets likewise)."""
        self.refill(now)
        if self.tokens >= need:
            self.tokens -= need
            return True
        return False

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
