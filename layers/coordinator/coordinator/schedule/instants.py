"""Tick generation: the instants a schedule fires at in a range, with Scheduler's DST rules.

Naive UTC throughout. Every datetime here is naive: a "wall" one is a wall-clock time in the
request's zone (what croniter walks), an "instant" is UTC. Naive keeps the per-tick path free of
tzinfo calls; callers convert at the edge (`utc_second` in, `tick_text` or `.replace(tzinfo=UTC)`
out), so nothing naive leaves the package except as a `...Z` string or an aware datetime.

Cron ticks are wall-clock times in an IANA `timezone` (default UTC). Scheduler *skips* a wall
time that does not exist (spring forward) and fires *once*, at the first occurrence, for a wall
time that happens twice (fall back). Those are the defaults, `dst_gap="skip"` and
`dst_fold="once"`; `dst_gap="shift"` fires instead at the first instant after the gap (once,
however many ticks the gap swallowed) and `dst_fold="twice"` at both occurrences.

Why croniter (7.0.0) is not left to resolve DST: given a zone-aware start it does so wrongly for
us: it shifts a tick in a spring-forward gap to the end of the gap (02:30 becomes 03:00) and
fires a repeated fall-back time twice (both 02:30s), measured on this pin. So croniter is only
ever asked for wall-clock ticks, on naive datetimes, and the mapping from wall time to UTC is
done here, window by window (`_Window`, `_windows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain, dropwhile, takewhile
from typing import Any, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from coordinator.schedule.errors import InvalidTimezone
from coordinator.schedule.expressions import FIRST_YEAR, LAST_YEAR, CronSchedule, RateSchedule, Schedule

SECOND: Final = timedelta(seconds=1)
# The instants (naive UTC) a range is held to: Scheduler's year field.
EARLIEST: Final = datetime(FIRST_YEAR, 1, 1)  # noqa: DTZ001 (naive UTC)
LATEST: Final = datetime(LAST_YEAR + 1, 1, 1)  # noqa: DTZ001

# Zone transitions are found by sampling the offset this often, so two transitions less than
# this apart that cancel out would be missed. In tzdata the closest two transitions since 1970
# are about a week apart (Brazil, 2000), so an hour leaves a wide margin.
_PROBE: Final = timedelta(hours=1)
# Longest window one croniter walks: bounds the probing a page does past its last tick.
_WINDOW: Final = timedelta(days=7)


class DstGap(StrEnum):
    """What a wall-clock tick that does not exist (spring forward) does."""

    SKIP = "skip"  # EventBridge Scheduler: the tick does not fire
    SHIFT = "shift"  # fires once at the first instant after the gap


class DstFold(StrEnum):
    """What a wall-clock tick that happens twice (fall back) does."""

    ONCE = "once"  # EventBridge Scheduler: fires at the first occurrence only
    TWICE = "twice"  # fires at both occurrences


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone `name`, or InvalidTimezone saying it is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidTimezone("timezone", f"{name!r} is not an IANA time zone") from error


def utc_second(value: datetime, zone: ZoneInfo) -> datetime:
    """`value` as a naive UTC instant rounded up to a whole second (naive `value` is wall time
    in `zone`, read as zoneinfo does: fold=0). Ticks are whole seconds, so that changes no tick."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    instant = aware.astimezone(UTC).replace(tzinfo=None)
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + SECOND
    return instant


def tick_text(instant: datetime) -> str:
    """`2022-02-15T01:00:00Z`: the payload-id form of a tick (naive UTC, whole second, in), the
    form of `<aws.scheduler.scheduled-time>`."""
    return f"{instant.isoformat()}Z"


def instants(
    schedule: Schedule,
    zone: ZoneInfo,
    *,
    anchor: datetime,
    low: datetime,
    high: datetime,
    dst_gap: DstGap,
    dst_fold: DstFold,
    order: Order,
) -> Iterator[datetime]:
    """Instants of the schedule in `[low, high)`, in `order`, streamed; all naive UTC (`anchor`,
    `low` and `high` given so, the instants answered so).

    `rate(...)` is elapsed time, not wall time: ticks every N units anchored at `anchor`, so the
    zone and the DST options do not change it. (Scheduler anchors a rate at the schedule's start
    date; a backfill names that instant as `start`.)
    """
    descending = order is Order.DESC
    if isinstance(schedule, RateSchedule):
        yield from _rate_instants(schedule.every, anchor, low, high, descending=descending)
        return
    for window in _windows(zone, low, high, descending=descending):
        yield from _window_instants(schedule, zone, window, dst_gap, dst_fold, descending=descending)


def _rate_instants(
    every: timedelta, anchor: datetime, low: datetime, high: datetime, *, descending: bool
) -> Iterator[datetime]:
    if descending:
        instant = anchor + ((high - anchor - SECOND) // every) * every  # the last one before high
        while instant >= low:
            yield instant
            instant -= every
    else:
        instant = anchor - ((anchor - low) // every) * every  # the first one at or after low
        while instant < high:
            yield instant
            instant += every


@dataclass(frozen=True, slots=True)
class _Window:
    """UTC `[start, stop)` with one UTC offset; `offset_before` held the second before start.

    The window with offset `o` covering UTC `[a, b)` fires at `w - o` for every wall tick `w`
    in `[a + o, b + o)`. A gap's wall times fall in no window, so they are skipped for free; a
    fold's wall times fall in two windows, so they fire twice for free; "once" drops a tick
    whose first occurrence is in an earlier window (its fold=0 reading has another offset), a
    check paid only in a window that starts inside a repeated stretch; "shift" asks whether the
    gap held a tick. Every window depends only on the zone and its own bounds, so any cut of a
    range (pages, asc or desc) yields the same ticks as the whole range.
    """

    start: datetime
    stop: datetime
    offset: timedelta
    offset_before: timedelta


def _window_instants(
    schedule: CronSchedule,
    zone: ZoneInfo,
    window: _Window,
    dst_gap: DstGap,
    dst_fold: DstFold,
    *,
    descending: bool,
) -> Iterator[datetime]:
    offset = window.offset
    wall_low, wall_high = window.start + offset, window.stop + offset
    shifted = _gap_swallowed_a_tick(schedule, window, dst_gap)
    if shifted:
        wall_low += SECOND  # the tick at the gap's end (if any) is the one the shift fires
    walls = _wall_ticks(schedule, wall_low, wall_high, descending=descending)
    if dst_fold is DstFold.ONCE and _is_second_occurrence(zone, wall_low, offset):
        walls = _first_occurrences(walls, zone, offset, descending=descending)
    fired = (wall - offset for wall in walls)
    if not shifted:
        yield from fired
    else:
        yield from chain(fired, [window.start]) if descending else chain([window.start], fired)


def _first_occurrences(
    walls: Iterator[datetime], zone: ZoneInfo, offset: timedelta, *, descending: bool
) -> Iterator[datetime]:
    """The ticks of a window that opens inside a repeated stretch, less those that already fired
    in the window before. A repeated stretch only ever opens a window, so ascending they are
    dropped until the first new one, and descending the walk stops at the first repeat."""

    def repeated(wall: datetime) -> bool:
        return _is_second_occurrence(zone, wall, offset)

    if descending:
        return takewhile(lambda wall: not repeated(wall), walls)
    return dropwhile(repeated, walls)


def _gap_swallowed_a_tick(schedule: CronSchedule, window: _Window, dst_gap: DstGap) -> bool:
    """Under "shift", whether the wall times skipped just before this window held a tick."""
    if dst_gap is not DstGap.SHIFT or window.offset <= window.offset_before:
        return False
    gap_low, gap_high = window.start + window.offset_before, window.start + window.offset
    return next(_wall_ticks(schedule, gap_low, gap_high, descending=False), None) is not None


def _is_second_occurrence(zone: ZoneInfo, wall: datetime, offset: timedelta) -> bool:
    """Whether `wall` at `offset` is the repeat of a wall time that happened before (fold=0
    reads a repeated wall time as its first occurrence)."""
    return wall.replace(tzinfo=zone).utcoffset() != offset


def _wall_ticks(
    schedule: CronSchedule, low: datetime, high: datetime, *, descending: bool
) -> Iterator[datetime]:
    """croniter's wall-clock ticks in `[low, high)`, within the schedule's allowed years.

    get_next() from `low - 1s` gives the first tick at or after `low`; get_prev() from `high`
    the last tick before it.
    """
    spans = list(schedule.wall_spans(low, high))
    for span_low, span_high in reversed(spans) if descending else spans:
        if descending:
            walker = _croniter(schedule, span_high, span_low)
            yield from _walk(walker.get_prev, span_low, descending=True)
        else:
            walker = _croniter(schedule, span_low - SECOND, span_high)
            yield from _walk(walker.get_next, span_high, descending=False)


def _walk(step: Callable[[], Any], bound: datetime, *, descending: bool) -> Iterator[datetime]:
    """croniter's ticks from `step` while they are before `bound` (at or after it, descending)."""
    try:
        wall = cast(datetime, step())
        while wall >= bound if descending else wall < bound:
            yield wall
            wall = cast(datetime, step())
    except CroniterBadDateError:  # no tick within the years croniter was told to search
        return


def _croniter(schedule: CronSchedule, start: datetime, bound: datetime) -> Any:
    """A croniter over naive wall time from `start`, told not to search past the year of `bound`."""
    years = abs(bound.year - start.year) + 1
    return croniter(schedule.expression, start, ret_type=datetime, max_years_between_matches=years)


def _offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    return cast(timedelta, zone.fromutc(instant.replace(tzinfo=zone)).utcoffset())


def _has_fixed_offset(zone: ZoneInfo) -> bool:
    """UTC and the Etc/ zones never change offset: no need to look for transitions."""
    return zone.key == "UTC" or zone.key.startswith("Etc/")


def _windows(zone: ZoneInfo, low: datetime, high: datetime, *, descending: bool) -> Iterator[_Window]:
    """`[low, high)` cut at the zone's transitions (and every `_WINDOW` at most), walked from
    `low` up or from `high` down, so a page looks no further than it needs."""
    fixed = _has_fixed_offset(zone)
    edge, end = (high, low) if descending else (low, high)
    while edge != end:
        inside = edge - SECOND if descending else edge  # the window's first second walked
        offset = _offset_at(zone, inside)
        limit = max(edge - _WINDOW, end) if descending else min(edge + _WINDOW, end)
        far = end if fixed else _transition(zone, inside, offset, limit)
        start, stop = (far, edge) if descending else (edge, far)
        yield _Window(start, stop, offset, _offset_at(zone, start - SECOND))
        edge = far


def _transition(zone: ZoneInfo, inside: datetime, offset: timedelta, limit: datetime) -> datetime:
    """Where the stretch at `offset` that holds `inside` ends toward `limit` (later or earlier
    than `inside`), as a window bound: the first instant past it going later, its own first
    instant going earlier; `limit` when the stretch reaches it."""
    later = limit > inside
    probe = inside
    while probe != limit:
        ahead = min(probe + _PROBE, limit) if later else max(probe - _PROBE, limit)
        if _offset_at(zone, ahead) != offset:
            return _bisect(zone, same=probe, changed=ahead, offset=offset)
        probe = ahead
    return limit


def _bisect(zone: ZoneInfo, *, same: datetime, changed: datetime, offset: timedelta) -> datetime:
    """Narrow a transition to the second: of the two adjacent instants either side of it, the
    later one (the first instant past `offset` going later, the first at `offset` going earlier)."""
    while abs((changed - same).total_seconds()) > 1:
        middle = same + timedelta(seconds=int((changed - same).total_seconds()) // 2)
        if _offset_at(zone, middle) == offset:
            same = middle
        else:
            changed = middle
    return changed if changed > same else same
