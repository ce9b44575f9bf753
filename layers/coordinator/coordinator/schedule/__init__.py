"""Cron and rate ranges for backfills: exactly the ticks EventBridge Scheduler would have fired.

A backfill (docs/design.md) runs a workflow once for every tick of its live schedule between two
instants, and the payload id of a tick is workflow + tick in UTC. So what must hold is parity
with EventBridge Scheduler, tick for tick, or a backfill starts runs the live schedule never had
(new payload ids) and misses runs it had (holes nobody notices). Each part says how it keeps
that parity:

- `expressions`: Scheduler's cron(...) and rate(...) (and five-field crontab), parsed.
- `instants`: the ticks of a schedule in a range, with Scheduler's DST rules.
- `range_request`: the range function's request, its pages and their cursor.
- `interval`: a live tick's data interval (the tick before it).
"""

from coordinator.schedule.errors import (
    InvalidCursor,
    InvalidRange,
    InvalidSchedule,
    InvalidTimezone,
    RangeRequestError,
)
from coordinator.schedule.expressions import (
    FIRST_YEAR,
    LAST_YEAR,
    CronSchedule,
    RateSchedule,
    Schedule,
    compile_schedule,
)
from coordinator.schedule.instants import DstFold, DstGap, Order, zone_of
from coordinator.schedule.interval import data_interval, scheduler_instants, ticks_between
from coordinator.schedule.range_request import (
    DEFAULT_PAGE_SIZE,
    MAX_INLINE_LIMIT,
    MAX_PAGE_SIZE,
    MapMode,
    MapModeOfRange,
    PageCursors,
    RangePage,
    RangeRequest,
    map_mode_for,
    map_mode_of,
    page_cursors,
    range_page,
    ticks,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FIRST_YEAR",
    "LAST_YEAR",
    "MAX_INLINE_LIMIT",
    "MAX_PAGE_SIZE",
    "CronSchedule",
    "DstFold",
    "DstGap",
    "InvalidCursor",
    "InvalidRange",
    "InvalidSchedule",
    "InvalidTimezone",
    "MapMode",
    "MapModeOfRange",
    "Order",
    "PageCursors",
    "RangePage",
    "RangeRequest",
    "RangeRequestError",
    "RateSchedule",
    "Schedule",
    "compile_schedule",
    "data_interval",
    "map_mode_for",
    "map_mode_of",
    "page_cursors",
    "range_page",
    "scheduler_instants",
    "ticks",
    "ticks_between",
    "zone_of",
]
