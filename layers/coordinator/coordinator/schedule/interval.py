"""The data interval of a live tick: the tick Scheduler fired before it, and the tick itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from coordinator.schedule.errors import InvalidRange, InvalidSchedule
from coordinator.schedule.expressions import RateSchedule, Schedule, compile_schedule
from coordinator.schedule.instants import (
    EARLIEST,
    SECOND,
    DstFold,
    DstGap,
    Order,
    instants,
    tick_text,
    utc_second,
    zone_of,
)

# How far back a cron's previous tick is looked for: a leap day's tick (29 February) can be eight
# years from the one before it (2096 to 2104), so nine years of walking.
_PREVIOUS_TICK_LOOKBACK: Final = timedelta(days=9 * 366)


def data_interval(
    expression: str, timezone: str, tick: datetime, *, anchor: datetime | None
) -> tuple[datetime | None, datetime]:
    """`(previous tick, tick)` as aware UTC datetimes, as Scheduler fires the schedule.

    A cron schedule fires with Scheduler's DST rules (a wall time in a gap skipped, a repeated
    one fired once); its previous tick is None when there is none within nine years (a year
    field that starts at the tick). A `rate(...)` is anchored at `anchor` (the schedule's
    start: naive means wall time in `timezone`), and its previous tick is one period before.
    Raises InvalidRange (`scheduleTime`) when `tick` is not a tick of the schedule.
    """
    schedule, zone = compile_schedule(expression), zone_of(timezone)
    if tick.microsecond:
        raise InvalidRange("scheduleTime", f"{tick.isoformat()} is not a whole second, so no tick")
    instant = utc_second(tick, zone)  # naive UTC, the tick generator's convention
    if isinstance(schedule, RateSchedule):
        if anchor is None:
            raise InvalidSchedule(
                "schedule.start", "rate(...) is anchored at the schedule's start: give `start`"
            )
        first = utc_second(anchor, zone)
        if instant < first or (instant - first) % schedule.every:
            raise InvalidRange(
                "scheduleTime",
                f"{tick_text(instant)} is not a tick of {expression.strip()} anchored at {tick_text(first)}",
            )
        previous: datetime | None = instant - schedule.every
    else:
        if next(scheduler_instants(schedule, zone, instant, instant + SECOND, Order.ASC), None) is None:
            raise InvalidRange(
                "scheduleTime", f"{tick_text(instant)} is not a tick of {expression.strip()} in {timezone}"
            )
        low = max(EARLIEST, instant - _PREVIOUS_TICK_LOOKBACK)
        previous = next(scheduler_instants(schedule, zone, low, instant, Order.DESC), None)
    # Back from the generator's naive UTC to aware datetimes.
    return (previous.replace(tzinfo=UTC) if previous else None), instant.replace(tzinfo=UTC)


def ticks_between(
    expression: str, timezone: str, low: datetime, high: datetime, *, anchor: datetime | None
) -> list[datetime]:
    """The schedule's ticks in `[low, high)` (aware UTC), as Scheduler fires them: a gate's
    window of another schedule inside this payload's data interval (`coordinator.gate`)."""
    schedule, zone = compile_schedule(expression), zone_of(timezone)
    start, end = utc_second(low, zone), utc_second(high, zone)
    if isinstance(schedule, RateSchedule):
        if anchor is None:
            raise InvalidSchedule(
                "schedule.start", "rate(...) is anchored at the schedule's start: give `start`"
            )
        found = scheduler_instants(schedule, zone, start, end, Order.ASC, anchor=utc_second(anchor, zone))
    else:
        found = scheduler_instants(schedule, zone, start, end, Order.ASC)
    return [instant.replace(tzinfo=UTC) for instant in found]


def scheduler_instants(
    schedule: Schedule,
    zone: ZoneInfo,
    low: datetime,
    high: datetime,
    order: Order,
    *,
    anchor: datetime | None = None,
) -> Iterator[datetime]:
    """A schedule's instants in `[low, high)` (naive UTC, streamed) with Scheduler's own DST
    rules (skip, once); a rate counts from `anchor`, its start (a cron ignores it)."""
    return instants(
        schedule,
        zone,
        anchor=low if anchor is None else anchor,
        low=low,
        high=high,
        dst_gap=DstGap.SKIP,
        dst_fold=DstFold.ONCE,
        order=order,
    )
