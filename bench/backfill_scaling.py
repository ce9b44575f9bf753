"""Backfill scaling: range pages over 1 day, 1 month and 2 years of a minutely schedule.

`coordinator.schedule.range_page` is asked page after page (each request carries the previous
page's cursor, as the backfill state machine does) for the whole span, in a zone with DST
transitions. What must hold: the time per page and the peak memory of one page do not grow with
the span (a cursor resumes without re-walking the range; ticks stream from a generator).
Memory is measured with tracemalloc on the first and the last page of each span, apart from
the timing (tracemalloc slows everything it watches).

    .venv/bin/python -m bench.backfill_scaling
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from typing import Any

from bench.report import Report, Row, emit, prose, table
from bench.timing import median

COMMAND = ".venv/bin/python -m bench.backfill_scaling"
SCHEDULE = "cron(* * * * ? *)"
ZONE = "America/New_York"
PAGE = 500
SPANS = {
    "1 day": ("2024-03-10T00:00:00", "2024-03-11T00:00:00"),
    "1 month": ("2024-03-01T00:00:00", "2024-04-01T00:00:00"),
    "2 years": ("2023-01-01T00:00:00", "2025-01-01T00:00:00"),
}


def request(start: str, stop: str, cursor: str | None) -> Any:
    from coordinator.schedule import RangeRequest

    event = {"start": start, "stop": stop, "schedule": SCHEDULE, "timezone": ZONE, "page_size": PAGE}
    if cursor:
        event["cursor"] = cursor
    return RangeRequest.from_event(event)


def walk(start: str, stop: str) -> tuple[list[float], int, list[str | None]]:
    """Every page of the span: seconds per page (request parsing included), ticks, cursors."""
    from coordinator.schedule import range_page

    seconds: list[float] = []
    cursors: list[str | None] = [None]
    ticks = 0
    cursor: str | None = None
    while True:
        started = time.perf_counter()
        page = range_page(request(start, stop, cursor))
        seconds.append(time.perf_counter() - started)
        ticks += page.count
        cursor = page.next
        if cursor is None:
            return seconds, ticks, cursors
        cursors.append(cursor)


def peak_kib(start: str, stop: str, cursor: str | None) -> float:
    from coordinator.schedule import range_page

    tracemalloc.start()
    tracemalloc.reset_peak()
    range_page(request(start, stop, cursor))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024


def main(argv: list[str]) -> Report:
    walk(*SPANS["1 day"])  # warm imports and caches
    body = []
    per_page: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for name, (start, stop) in SPANS.items():
        seconds, ticks, cursors = walk(start, stop)
        first = peak_kib(start, stop, None)
        last = peak_kib(start, stop, cursors[-1])
        per_page[name] = median(seconds)
        peaks[name] = max(first, last)
        body.append(
            [
                name,
                f"{ticks:,}",
                len(seconds),
                f"{median(seconds) * 1000:.2f}",
                f"{seconds[0] * 1000:.2f}",
                f"{seconds[-1] * 1000:.2f}",
                f"{first:.0f}",
                f"{last:.0f}",
            ]
        )
    time_ratio = per_page["2 years"] / per_page["1 day"]
    memory_ratio = peaks["2 years"] / peaks["1 day"]
    report = Report("Backfill scaling")
    report.rows.append(
        Row(
            "range page time, 2 years over 1 day (minutely, 500 per page)",
            COMMAND,
            f"{time_ratio:.2f}",
            "flat (about 1)",
            time_ratio <= 1.5,
            note=f"median {per_page['2 years'] * 1000:.1f} ms vs {per_page['1 day'] * 1000:.1f} ms per page",
        )
    )
    report.rows.append(
        Row(
            "range page peak memory, 2 years over 1 day",
            COMMAND,
            f"{memory_ratio:.2f}",
            "flat (about 1)",
            memory_ratio <= 1.5,
            note=f"{peaks['2 years']:.0f} KiB vs {peaks['1 day']:.0f} KiB",
        )
    )
    report.detail = "\n\n".join(
        [
            prose(
                f"""`{SCHEDULE}` in {ZONE} (the 1-day span is the spring-forward day 2024-03-10,
                the others cross both transitions of each year), {PAGE} ticks per page, every page
                of each span requested with the previous page's cursor. Milliseconds per page on
                this machine and peak KiB allocated while computing one page (tracemalloc)."""
            ),
            table(
                [
                    "span",
                    "ticks",
                    "pages",
                    "ms/page (median)",
                    "first page ms",
                    "last page ms",
                    "first page peak KiB",
                    "last page peak KiB",
                ],
                body,
            ),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
