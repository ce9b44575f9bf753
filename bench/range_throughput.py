"""Throughput and memory of the range function against plain croniter_range.

The baseline is the workflows-runner approach: `list(croniter_range(start, stop, expr))`,
every tick materialised as a datetime in one go. The range function instead pages through the
same span the way a backfill does: one `RangeRequest.from_event` + `range_page` per page of
5,000 `...Z` strings, each page resumed from the previous page's cursor, only the current page
kept. Both run in this process, on the same span and expression, interleaved, and the ratio
is the median of the side-by-side pairs, so a noisy machine moves both alike. Time and peak
memory (tracemalloc) are measured in separate passes, because tracemalloc slows
allocation-heavy code several-fold. Nothing here asserts a time.

    PYTHONPATH=layers/coordinator .venv/bin/python -m bench.range_throughput          # all cases
    PYTHONPATH=layers/coordinator .venv/bin/python -m bench.range_throughput --quick  # 30-day spans
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter_range

from coordinator.schedule import MAX_PAGE_SIZE, RangeRequest, range_page


@dataclass(frozen=True)
class Case:
    name: str
    start: str
    stop: str
    schedule: str
    timezone: str = "UTC"


CASES = [
    Case("30 days minutely", "2022-03-01T00:00:00Z", "2022-03-31T00:00:00Z", "* * * * *"),
    Case(
        "30 days minutely, Stockholm (spring forward)",
        "2022-03-15T00:00:00Z",
        "2022-04-14T00:00:00Z",
        "* * * * *",
        "Europe/Stockholm",
    ),
    Case("2 years minutely", "2022-01-01T00:00:00Z", "2024-01-01T00:00:00Z", "* * * * *"),
    Case(
        "2 years minutely, New York",
        "2022-01-01T00:00:00Z",
        "2024-01-01T00:00:00Z",
        "* * * * *",
        "America/New_York",
    ),
]


def materialised_croniter(case: Case) -> int:
    zone = ZoneInfo(case.timezone)
    start = datetime.fromisoformat(case.start).astimezone(zone)
    stop = datetime.fromisoformat(case.stop).astimezone(zone)
    return len(list(croniter_range(start, stop, case.schedule)))


def paged_range(case: Case) -> int:
    event: dict[str, object] = {
        "start": case.start,
        "stop": case.stop,
        "schedule": case.schedule,
        "timezone": case.timezone,
        "page_size": MAX_PAGE_SIZE,
    }
    count = 0
    while True:
        page = range_page(RangeRequest.from_event(event))
        count += page.count
        if page.next is None:
            return count
        event["cursor"] = page.next


def timed(run: Callable[[Case], int], case: Case) -> tuple[int, float]:
    gc.collect()
    began = time.perf_counter()
    count = run(case)
    return count, time.perf_counter() - began


def peak_mib(run: Callable[[Case], int], case: Case) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        run(case)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the two-year spans")
    parser.add_argument("--repeats", type=int, default=5, help="timed pairs per 30-day span")
    parser.add_argument("--long-repeats", type=int, default=1, help="timed pairs per two-year span")
    arguments = parser.parse_args()
    cases = [case for case in CASES if not (arguments.quick and case.name.startswith("2 years"))]

    print(
        "| span | ticks | croniter_range ticks/s | range (paged) ticks/s | time ratio range/croniter "
        "| croniter_range peak MiB | range peak MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        repeats = arguments.long_repeats if case.name.startswith("2 years") else arguments.repeats
        pairs = []
        for _ in range(repeats):
            baseline_ticks, baseline_seconds = timed(materialised_croniter, case)
            ticks, seconds = timed(paged_range, case)
            pairs.append((baseline_seconds, seconds))
        baseline_seconds = statistics.median(pair[0] for pair in pairs)
        seconds = statistics.median(pair[1] for pair in pairs)
        ratio = statistics.median(pair[1] / pair[0] for pair in pairs)
        baseline_peak = peak_mib(materialised_croniter, case)
        peak = peak_mib(paged_range, case)
        print(
            f"| {case.name} | {ticks:,} | {baseline_ticks / baseline_seconds:,.0f} | {ticks / seconds:,.0f} "
            f"| {ratio:.2f} | {baseline_peak:,.1f} | {peak:,.1f} |",
            flush=True,
        )
    print()
    print(
        f"croniter_range includes both ends (one more tick than the range's stop-exclusive count); "
        f"range pages hold {MAX_PAGE_SIZE:,} ticks and each page is a fresh request, as in a backfill."
    )


if __name__ == "__main__":
    main()
