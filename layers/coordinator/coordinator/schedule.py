"""Cron and rate ranges for backfills: exactly the ticks EventBridge Scheduler would have fired.

A backfill (docs/design.md) runs a workflow once for every tick of its live schedule between two
instants, and the payload id of a tick is workflow + tick in UTC. So what must hold is parity
with EventBridge Scheduler, tick for tick, or a backfill starts runs the live schedule never
had (new payload ids) and misses runs it had (holes nobody notices):

- The expressions are Scheduler's: `cron(min hour day-of-month month day-of-week year)` with
  `?`, `L`, `W`, `#`, names (`MON-FRI`, `JAN`), a year field, and day-of-week 1-7 = SUN-SAT;
  `rate(N minute|minutes|hour|hours|day|days)` (singular exactly when N is 1); and, for people
  who think in crontab, a plain five-field cron with the usual 0-6 = SUN-SAT numbering and
  the usual OR of day-of-month and day-of-week.
- Cron ticks are wall-clock times in an IANA `timezone` (default UTC). Scheduler *skips* a wall
  time that does not exist (spring forward) and fires *once*, at the first occurrence, for a
  wall time that happens twice (fall back). Those are the defaults, `dst_gap="skip"` and
  `dst_fold="once"`; `dst_gap="shift"` fires instead at the first instant after the gap (once,
  however many ticks the gap swallowed) and `dst_fold="twice"` at both occurrences.
- `rate(...)` is elapsed time, not wall time: ticks every N units anchored at `start`, so the
  timezone and the DST options do not change it. (Scheduler anchors a rate at the schedule's
  start date; a backfill names that instant as `start`.)
- Start inclusive, stop exclusive, ascending unless `order="desc"`; output instants are UTC
  strings like `2022-02-15T01:00:00Z`, the form of `<aws.scheduler.scheduled-time>`.

Why croniter (7.0.0) is not used as-is: given a zone-aware start it resolves DST itself, and
wrongly for us: it shifts a tick in a spring-forward gap to the end of the gap (02:30 becomes
03:00) and fires a repeated fall-back time twice (both 02:30s), measured on this pin. So
croniter is only ever asked for *wall-clock* ticks, on naive datetimes, and the mapping from
wall time to UTC is done here: the range is cut into windows of constant UTC offset (split at
the zone's transitions, found by probing the offset hourly and bisecting to the second), and
the window with offset `o` covering UTC `[a, b)` fires at `w - o` for every wall tick `w` in
`[a + o, b + o)`. A gap's wall times fall in no window, so they are skipped for free; a fold's
wall times fall in two windows, so they fire twice for free; "once" drops a tick whose first
occurrence is in an earlier window (its fold=0 reading has another offset), a check paid only
in a window that starts inside a repeated stretch; "shift" asks whether the gap held a tick.
Every window depends only on the zone and its own bounds, so any cut of a range (pages, asc
or desc) yields the same ticks as the whole range.

croniter 7.0.0 also lacks two of Scheduler's spellings and has a narrower year range, so
`cron(...)` is translated: day-of-week numbers move down by one, `nL` becomes croniter's
`Ln`, a lone `L` is Saturday (the last day of the week), and the year field (1970-2199;
croniter stops at 2099) is applied here by clipping the wall range to the allowed years.
croniter's `?`, `L`, `W` and `#` in the other fields are used as they are.

Paging keeps Step Functions' 256 KiB state limit: a tick is at most 23 bytes of JSON
(`"2022-02-15T01:00:00Z",`), so `MAX_PAGE_SIZE` = 5,000 ticks is at most 115,000 bytes plus a
cursor of under 200 bytes: under half the limit, leaving the rest of the state its room. The
cursor is opaque (base64url of a small JSON holding the last emitted tick and a fingerprint of
the request), a request resumes after that tick without re-walking the range, and a cursor used
with another schedule, zone, range, DST choice or order is refused. Ticks stream from a
generator, so a page costs the same whatever the span.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from itertools import islice
from typing import Any, Final, TypeAlias, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_PAGE_SIZE: Final = 500
MAX_PAGE_SIZE: Final = 5_000

# EventBridge Scheduler's cron year field; a range is held to the same span.
FIRST_YEAR: Final = 1970
LAST_YEAR: Final = 2199

_SECOND: Final = timedelta(seconds=1)
# Zone transitions are found by sampling the offset this often, so two transitions less than
# this apart that cancel out would be missed. In tzdata the closest two transitions since 1970
# are about a week apart (Brazil, 2000), so an hour leaves a wide margin.
_PROBE: Final = timedelta(hours=1)
# Longest window one croniter walks: bounds the probing a page does past its last tick.
_WINDOW: Final = timedelta(days=7)


class RangeRequestError(ValueError):
    """A range request that can never succeed.

    Lambda reports the class name as `errorType`, which is what a Step Functions Catch matches,
    so the subclasses' names are the contract: `InvalidSchedule`, `InvalidTimezone`,
    `InvalidRange`, `InvalidCursor`. The message starts with the offending field.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidSchedule(RangeRequestError):
    """`schedule` is not a cron(...), rate(...) or five-field cron expression Scheduler accepts."""


class InvalidTimezone(RangeRequestError):
    """`timezone` is not an IANA zone name."""


class InvalidRange(RangeRequestError):
    """The range or its options are wrong: bad or reversed bounds, page size, order, DST option,
    or a field the request does not have."""


class InvalidCursor(InvalidRange):
    """`cursor` is not one this function issued, or was issued for a different request.

    Its own errorType, so a caller can tell "start over without the cursor" from a bad range;
    a subclass of InvalidRange so Python callers catching that still catch it.
    """


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


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A cron schedule as croniter reads it, plus the year field croniter cannot hold.

    `years` are runs `(first, last + 1)` of allowed years, or None when any year fires.
    """

    expression: str
    years: tuple[tuple[int, int], ...] | None = None

    def wall_spans(self, low: datetime, high: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The parts of the wall-clock range `[low, high)` that lie in allowed years."""
        if self.years is None:
            yield low, high
            return
        for first, end in self.years:
            span_low = max(low, datetime(first, 1, 1))  # noqa: DTZ001 (wall clock, naive by design)
            span_high = min(high, datetime(end, 1, 1))  # noqa: DTZ001
            if span_low < span_high:
                yield span_low, span_high


@dataclass(frozen=True, slots=True)
class RateSchedule:
    """`rate(N unit)`: every `every` of elapsed time, anchored at the range's start."""

    every: timedelta


Schedule: TypeAlias = CronSchedule | RateSchedule

_RATE = re.compile(r"rate\((?P<count>[0-9]+) (?P<unit>minutes?|hours?|days?)\)")
_AWS_CRON = re.compile(r"cron\((?P<fields>[^()]*)\)")
_FIELD_CHARACTERS = re.compile(r"[0-9A-Za-z*?,/#-]+")
# croniter's own extensions (hashed `H`, random `R`) that no Scheduler expression has.
_CRONITER_ONLY = re.compile(r"[HhRr](\(|/|$)")
_DAY_NAMES: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_SIMPLE_TERM = re.compile(r"(?P<first>[0-9A-Za-z]+)(?:-(?P<last>[0-9A-Za-z]+))?(?:/(?P<step>[0-9]+))?")
_UNIT_SECONDS: Final = {"minute": 60, "hour": 3_600, "day": 86_400}


@lru_cache(maxsize=128)
def compile_schedule(expression: str) -> Schedule:
    """Parse a Scheduler `cron(...)`/`rate(...)` or a five-field cron into a Schedule.

    Raises InvalidSchedule for anything Scheduler (or crontab, for five fields) would refuse.
    """
    text = expression.strip()
    if rate := _RATE.fullmatch(text):
        return _rate_schedule(int(rate["count"]), rate["unit"])
    if text.startswith("rate("):
        raise InvalidSchedule("schedule", "rate(...) takes a whole number and minute(s), hour(s) or day(s)")
    if aws := _AWS_CRON.fullmatch(text):
        return _aws_cron_schedule(aws["fields"].split())
    fields = text.split()
    if len(fields) != 5:
        raise InvalidSchedule(
            "schedule", "expected cron(...) with six fields, rate(...), or a five-field cron expression"
        )
    return CronSchedule(_croniter_expression(fields))


def _rate_schedule(count: int, unit: str) -> RateSchedule:
    singular = unit.removesuffix("s")
    if count < 1:
        raise InvalidSchedule("schedule", "rate(...) needs a value of at least 1")
    # Scheduler refuses rate(1 minutes) and rate(5 minute).
    if (count == 1) != (unit == singular):
        raise InvalidSchedule("schedule", "rate(...) takes a singular unit for 1 and a plural one otherwise")
    return RateSchedule(timedelta(seconds=count * _UNIT_SECONDS[singular]))


def _aws_cron_schedule(fields: list[str]) -> CronSchedule:
    if len(fields) != 6:
        raise InvalidSchedule(
            "schedule", "cron(...) takes six fields: minutes hours day-of-month month day-of-week year"
        )
    minute, hour, day_of_month, month, day_of_week, year = fields
    # Scheduler: a value or * in one day field needs ? in the other.
    if (day_of_month == "?") == (day_of_week == "?"):
        raise InvalidSchedule("schedule", "cron(...) needs ? in exactly one of day-of-month and day-of-week")
    if "?" in minute + hour + month + year:
        raise InvalidSchedule("schedule", "? is allowed only in day-of-month or day-of-week")
    translated = [minute, hour, day_of_month, month, _croniter_day_of_week(day_of_week)]
    return CronSchedule(_croniter_expression(translated), _allowed_years(year))


def _croniter_expression(fields: list[str]) -> str:
    """Check five croniter fields and return them as one expression croniter accepts."""
    for field in fields:
        if not _FIELD_CHARACTERS.fullmatch(field):
            raise InvalidSchedule("schedule", "a field has characters no cron expression uses")
        if any(_CRONITER_ONLY.match(term) for term in field.split(",")):
            raise InvalidSchedule("schedule", "H and R (hashed or random) fields are not cron")
    expression = " ".join(fields)
    try:
        croniter(expression, datetime(2000, 1, 1))  # noqa: DTZ001 (parse only)
    except CroniterError as error:
        raise InvalidSchedule("schedule", f"not a valid cron expression ({error})") from error
    return expression


def _croniter_day_of_week(field: str) -> str:
    """Scheduler's day-of-week (1-7 = SUN-SAT, `nL`, `n#k`, lone `L`) in croniter's terms."""
    if field in {"?", "*"}:
        return "*"
    terms = []
    for term in field.split(","):
        upper = term.upper()
        if upper == "L":
            terms.append("6")  # the last day of the week: Saturday
        elif upper.endswith("L"):
            terms.append(f"L{_croniter_day(upper[:-1])}")
        elif "#" in upper:
            day, _, nth = upper.partition("#")
            terms.append(f"{_croniter_day(day)}#{nth}")
        elif upper.startswith("*/"):
            terms.append(upper)  # 1,1+n,... in Scheduler is 0,0+n,... in croniter
        elif simple := _SIMPLE_TERM.fullmatch(upper):
            translated = str(_croniter_day(simple["first"]))
            if simple["last"] is not None:
                translated += f"-{_croniter_day(simple['last'])}"
            if simple["step"] is not None:
                translated += f"/{simple['step']}"
            terms.append(translated)
        else:
            raise InvalidSchedule("schedule", f"day-of-week term {term!r} is not understood")
    return ",".join(terms)


def _croniter_day(value: str) -> int:
    if value in _DAY_NAMES:
        return _DAY_NAMES.index(value)
    if value.isdigit() and 1 <= int(value) <= 7:
        return int(value) - 1
    raise InvalidSchedule("schedule", f"day-of-week {value!r} is neither 1-7 nor SUN-SAT")


def _allowed_years(field: str) -> tuple[tuple[int, int], ...] | None:
    """Scheduler's year field as runs of allowed years, or None for every year."""
    years: set[int] = set()
    for term in field.split(","):
        first, last, step = _year_term(term)
        if not FIRST_YEAR <= first <= last <= LAST_YEAR or step < 1:
            raise InvalidSchedule("schedule", f"year term {term!r} is outside {FIRST_YEAR}-{LAST_YEAR}")
        years.update(range(first, last + 1, step))
    if len(years) == LAST_YEAR - FIRST_YEAR + 1:
        return None
    runs: list[tuple[int, int]] = []
    for year in sorted(years):
        if runs and runs[-1][1] == year:
            runs[-1] = (runs[-1][0], year + 1)
        else:
            runs.append((year, year + 1))
    return tuple(runs)


def _year_term(term: str) -> tuple[int, int, int]:
    if term == "*":
        return FIRST_YEAR, LAST_YEAR, 1
    if term.startswith("*/") and term[2:].isdigit():
        return FIRST_YEAR, LAST_YEAR, int(term[2:])
    simple = _SIMPLE_TERM.fullmatch(term)
    if simple is None or not simple["first"].isdigit() or not (simple["last"] or "0").isdigit():
        raise InvalidSchedule("schedule", f"year term {term!r} is not understood")
    first = int(simple["first"])
    step = int(simple["step"] or 1)
    if simple["last"] is not None:
        return first, int(simple["last"]), step
    # `2022/2` runs to the end of the field; `2022` is that year alone.
    return first, (LAST_YEAR if simple["step"] else first), step


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidTimezone("timezone", f"{name!r} is not an IANA time zone") from error


class RangeRequest(BaseModel):
    """What the range function is asked: `{start, stop, schedule, timezone, dst_gap, dst_fold,
    order, page_size, cursor}`.

    `start`/`stop` are ISO-8601. With an offset or `Z` they are instants; without one they are
    wall-clock times in `timezone`, read as zoneinfo does (fold=0: the first of a repeated
    time; a time inside a gap with the offset before the gap). Both are held to 1970-2199 and
    rounded up to a whole second (ticks are whole seconds, so that changes no tick).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    stop: datetime
    schedule: str
    timezone: str = "UTC"
    dst_gap: DstGap = DstGap.SKIP
    dst_fold: DstFold = DstFold.ONCE
    order: Order = Order.ASC
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = None

    @field_validator("start", "stop", mode="before")
    @classmethod
    def _iso_8601(cls, value: object, info: ValidationInfo) -> object:
        field = info.field_name or "start"
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise InvalidRange(field, "must be an ISO-8601 date-time string")
        try:
            return datetime.fromisoformat(value)
        except ValueError as error:
            raise InvalidRange(field, f"{value!r} is not an ISO-8601 date-time") from error

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        compile_schedule(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @model_validator(mode="after")
    def _ordered_bounds_and_own_cursor(self) -> RangeRequest:
        first, stop = self.first_instant, self.stop_instant
        for field, instant in (("start", first), ("stop", stop)):
            if not _EARLIEST <= instant <= _LATEST:
                raise InvalidRange(field, f"must lie within {FIRST_YEAR}-{LAST_YEAR}")
        if stop <= first:
            raise InvalidRange("stop", "must be after start (start is inclusive, stop exclusive)")
        _cursor_tick(self)  # a bad cursor fails here, with the rest of the request, not mid-page
        return self

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    @property
    def compiled(self) -> Schedule:
        return compile_schedule(self.schedule)

    @property
    def first_instant(self) -> datetime:
        """`start` as naive UTC, whole second (the rate anchor, and the first tick allowed)."""
        return _utc_second(self.start, self.zone)

    @property
    def stop_instant(self) -> datetime:
        """`stop` as naive UTC, whole second (no tick at or after it)."""
        return _utc_second(self.stop, self.zone)

    @property
    def fingerprint(self) -> str:
        """Names the request a cursor belongs to: everything but the page size and the cursor."""
        canonical = json.dumps(
            [
                self.schedule.strip(),
                self.timezone,
                _tick_text(self.first_instant),
                _tick_text(self.stop_instant),
                self.dst_gap,
                self.dst_fold,
                self.order,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def resume_after(self) -> datetime | None:
        """The last tick the cursor's page emitted (naive UTC), or None without a cursor."""
        return _cursor_tick(self)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> RangeRequest:
        """Validate an event; every failure surfaces as one of the typed errors, never pydantic's."""
        try:
            return cls.model_validate(event)
        except ValidationError as error:
            raise _typed(error) from None


_EARLIEST: Final = datetime(FIRST_YEAR, 1, 1)  # noqa: DTZ001 (naive UTC, as inside the range)
_LATEST: Final = datetime(LAST_YEAR + 1, 1, 1)  # noqa: DTZ001
_ERROR_OF_FIELD: Final[dict[str, type[RangeRequestError]]] = {
    "schedule": InvalidSchedule,
    "timezone": InvalidTimezone,
    "cursor": InvalidCursor,
}


def _cursor_tick(request: RangeRequest) -> datetime | None:
    if request.cursor is None:
        return None
    after, fingerprint = _read_cursor(request.cursor)
    if fingerprint != request.fingerprint:
        raise InvalidCursor("cursor", "was issued for a different request")
    if not request.first_instant <= after < request.stop_instant:
        raise InvalidCursor("cursor", "points outside the range")
    return after


def _typed(error: ValidationError) -> RangeRequestError:
    """The typed error for the first thing wrong with a request."""
    first = error.errors()[0]
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, RangeRequestError):
        return raised
    field = ".".join(str(part) for part in first["loc"]) or "request"
    kind = _ERROR_OF_FIELD.get(str(first["loc"][0]) if first["loc"] else "", InvalidRange)
    return kind(field, first["msg"])


class RangePage(BaseModel):
    """What the range function returns: `{times, next, count}`; `next` is None on the last page."""

    times: list[str]
    next: str | None
    count: int


def range_page(request: RangeRequest) -> RangePage:
    """One page of ticks, and the cursor of the next page when there is one.

    Takes one tick past the page to know whether another page exists, so the last page says
    `next: null` instead of leaving the caller one empty page to fetch.
    """
    instants = _request_instants(request)
    times = [_tick_text(instant) for instant in islice(instants, request.page_size)]
    more = next(instants, None) is not None
    cursor = _write_cursor(times[-1], request.fingerprint) if more else None
    return RangePage(times=times, next=cursor, count=len(times))


def ticks(request: RangeRequest) -> Iterator[datetime]:
    """Every tick of the request (after its cursor, if any), as aware UTC datetimes, streamed."""
    for instant in _request_instants(request):
        yield instant.replace(tzinfo=UTC)


def _request_instants(request: RangeRequest) -> Iterator[datetime]:
    low, high = request.first_instant, request.stop_instant
    after = request.resume_after
    if after is not None:
        if request.order is Order.ASC:
            low = after + _SECOND
        else:
            high = after
    return _instants(
        request.compiled,
        request.zone,
        anchor=request.first_instant,
        low=low,
        high=high,
        dst_gap=request.dst_gap,
        dst_fold=request.dst_fold,
        order=request.order,
    )


def _tick_text(instant: datetime) -> str:
    """`2022-02-15T01:00:00Z`: the payload-id form of a tick (naive UTC, whole second, in)."""
    return f"{instant.isoformat()}Z"


def _utc_second(value: datetime, zone: ZoneInfo) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    instant = aware.astimezone(UTC).replace(tzinfo=None)
    if instant.microsecond:
        instant = instant.replace(microsecond=0) + _SECOND
    return instant


def _write_cursor(last_tick: str, fingerprint: str) -> str:
    body = json.dumps({"v": 1, "after": last_tick, "fp": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()


def _read_cursor(cursor: str) -> tuple[datetime, str]:
    """The last tick and the fingerprint a cursor holds; InvalidCursor for anything else."""
    foreign = InvalidCursor("cursor", "is not a cursor this function issued")
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as error:  # bad base64, bytes or JSON
        raise foreign from error
    if not isinstance(body, dict) or body.get("v") != 1:
        raise foreign
    after, fingerprint = body.get("after"), body.get("fp")
    if not isinstance(after, str) or not isinstance(fingerprint, str):
        raise foreign
    try:
        instant = datetime.fromisoformat(after)
    except ValueError as error:
        raise foreign from error
    if instant.utcoffset() != timedelta(0):
        raise foreign
    return instant.replace(tzinfo=None), fingerprint


# Ticks. Everything below works on naive datetimes: "wall" ones are wall-clock times in the
# request's zone (what croniter walks), "instants" are UTC. Naive keeps the per-tick path free
# of tzinfo calls; nothing naive leaves this module except as a `...Z` string.


def _instants(
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
    """Instants (naive UTC) of the schedule in `[low, high)`, in `order`."""
    descending = order is Order.DESC
    if isinstance(schedule, RateSchedule):
        yield from _rate_instants(schedule.every, anchor, low, high, descending=descending)
        return
    windows = _windows_backward(zone, low, high) if descending else _windows_forward(zone, low, high)
    for window in windows:
        if descending:
            yield from _window_backward(schedule, zone, window, dst_gap, dst_fold)
        else:
            yield from _window_forward(schedule, zone, window, dst_gap, dst_fold)


def _rate_instants(
    every: timedelta, anchor: datetime, low: datetime, high: datetime, *, descending: bool
) -> Iterator[datetime]:
    if descending:
        instant = anchor + ((high - anchor - _SECOND) // every) * every  # the last one before high
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
    """UTC `[start, stop)` with one UTC offset; `offset_before` held the second before start."""

    start: datetime
    stop: datetime
    offset: timedelta
    offset_before: timedelta


def _window_forward(
    schedule: CronSchedule, zone: ZoneInfo, window: _Window, dst_gap: DstGap, dst_fold: DstFold
) -> Iterator[datetime]:
    offset = window.offset
    wall_low, wall_high = window.start + offset, window.stop + offset
    if _gap_swallowed_a_tick(schedule, window, dst_gap):
        yield window.start
        wall_low += _SECOND  # the tick at the gap's end (if any) is the one just fired
    repeats = dst_fold is DstFold.ONCE and _is_second_occurrence(zone, wall_low, offset)
    for wall in _wall_ticks_forward(schedule, wall_low, wall_high):
        if repeats:
            if _is_second_occurrence(zone, wall, offset):
                continue
            repeats = False  # a repeated stretch only ever opens a window
        yield wall - offset


def _window_backward(
    schedule: CronSchedule, zone: ZoneInfo, window: _Window, dst_gap: DstGap, dst_fold: DstFold
) -> Iterator[datetime]:
    offset = window.offset
    wall_low, wall_high = window.start + offset, window.stop + offset
    shifted = _gap_swallowed_a_tick(schedule, window, dst_gap)
    repeats = dst_fold is DstFold.ONCE and _is_second_occurrence(zone, wall_low, offset)
    for wall in _wall_ticks_backward(schedule, wall_low + _SECOND if shifted else wall_low, wall_high):
        if repeats and _is_second_occurrence(zone, wall, offset):
            break  # from here back to the window's start every tick already fired earlier
        yield wall - offset
    if shifted:
        yield window.start


def _gap_swallowed_a_tick(schedule: CronSchedule, window: _Window, dst_gap: DstGap) -> bool:
    """Under "shift", whether the wall times skipped just before this window held a tick."""
    if dst_gap is not DstGap.SHIFT or window.offset <= window.offset_before:
        return False
    gap_low, gap_high = window.start + window.offset_before, window.start + window.offset
    return next(_wall_ticks_forward(schedule, gap_low, gap_high), None) is not None


def _is_second_occurrence(zone: ZoneInfo, wall: datetime, offset: timedelta) -> bool:
    """Whether `wall` at `offset` is the repeat of a wall time that happened before (fold=0
    reads a repeated wall time as its first occurrence)."""
    return wall.replace(tzinfo=zone).utcoffset() != offset


def _wall_ticks_forward(schedule: CronSchedule, low: datetime, high: datetime) -> Iterator[datetime]:
    for span_low, span_high in schedule.wall_spans(low, high):
        walker = _croniter(schedule, span_low - _SECOND, span_high)
        step = walker.get_next
        try:
            wall = cast(datetime, step())
            while wall < span_high:
                yield wall
                wall = cast(datetime, step())
        except CroniterBadDateError:  # no tick within the years croniter was told to search
            continue


def _wall_ticks_backward(schedule: CronSchedule, low: datetime, high: datetime) -> Iterator[datetime]:
    for span_low, span_high in reversed(list(schedule.wall_spans(low, high))):
        walker = _croniter(schedule, span_high, span_low)
        step = walker.get_prev
        try:
            wall = cast(datetime, step())
            while wall >= span_low:
                yield wall
                wall = cast(datetime, step())
        except CroniterBadDateError:
            continue


def _croniter(schedule: CronSchedule, start: datetime, bound: datetime) -> Any:
    """A croniter over naive wall time, told not to search past the year of `bound`.

    get_next() from `start` gives the first tick after `start` (from `low - 1s`: the first at or
    after `low`); get_prev() from `start` gives the last tick before it.
    """
    years = abs(bound.year - start.year) + 1
    return croniter(schedule.expression, start, ret_type=datetime, max_years_between_matches=years)


def _offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    return cast(timedelta, zone.fromutc(instant.replace(tzinfo=zone)).utcoffset())


def _has_fixed_offset(zone: ZoneInfo) -> bool:
    """UTC and the Etc/ zones never change offset: no need to look for transitions."""
    return zone.key == "UTC" or zone.key.startswith("Etc/")


def _windows_forward(zone: ZoneInfo, low: datetime, high: datetime) -> Iterator[_Window]:
    start = low
    offset = _offset_at(zone, start)
    before = _offset_at(zone, start - _SECOND)
    fixed = _has_fixed_offset(zone)
    while start < high:
        if fixed:
            stop, next_offset = high, offset
        else:
            stop, next_offset = _next_transition(zone, start, offset, min(start + _WINDOW, high))
        yield _Window(start, stop, offset, before)
        start, before, offset = stop, offset, next_offset


def _windows_backward(zone: ZoneInfo, low: datetime, high: datetime) -> Iterator[_Window]:
    stop = high
    offset = _offset_at(zone, stop - _SECOND)
    fixed = _has_fixed_offset(zone)
    while stop > low:
        start = low if fixed else _previous_transition(zone, stop, offset, max(stop - _WINDOW, low))
        before = _offset_at(zone, start - _SECOND)
        yield _Window(start, stop, offset, before)
        stop, offset = start, before


def _next_transition(
    zone: ZoneInfo, start: datetime, offset: timedelta, limit: datetime
) -> tuple[datetime, timedelta]:
    """The first instant in `(start, limit]` whose offset is not `offset`, and that offset;
    `(limit, offset)` when there is none."""
    probe = start
    while probe < limit:
        ahead = min(probe + _PROBE, limit)
        if _offset_at(zone, ahead) != offset:
            change = _bisect(zone, same=probe, changed=ahead, offset=offset)
            return change, _offset_at(zone, change)
        probe = ahead
    return limit, offset


def _previous_transition(zone: ZoneInfo, stop: datetime, offset: timedelta, limit: datetime) -> datetime:
    """The earliest instant `t` in `[limit, stop)` with `[t, stop)` all at `offset`."""
    probe = stop - _SECOND
    while probe > limit:
        behind = max(probe - _PROBE, limit)
        if _offset_at(zone, behind) != offset:
            return _bisect(zone, same=probe, changed=behind, offset=offset)
        probe = behind
    return limit


def _bisect(zone: ZoneInfo, *, same: datetime, changed: datetime, offset: timedelta) -> datetime:
    """Narrow a transition to the second: returns the instant on the `same` side of it that is
    next to the `changed` side, i.e. the first instant at `offset` (backward) or the first one
    past it (forward)."""
    while abs((changed - same).total_seconds()) > 1:
        middle = same + timedelta(seconds=int((changed - same).total_seconds()) // 2)
        if _offset_at(zone, middle) == offset:
            same = middle
        else:
            changed = middle
    return changed if changed > same else same


# How far back a cron's previous tick is looked for: a leap day's tick (29 February) can be eight
# years from the one before it (2096 to 2104), so nine years of walking.
_PREVIOUS_TICK_LOOKBACK: Final = timedelta(days=9 * 366)


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone `name`, or InvalidTimezone saying it is none."""
    return _zone(name)


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
    schedule, zone = compile_schedule(expression), _zone(timezone)
    if tick.microsecond:
        raise InvalidRange("scheduleTime", f"{tick.isoformat()} is not a whole second, so no tick")
    instant = _utc_second(tick, zone)
    if isinstance(schedule, RateSchedule):
        if anchor is None:
            raise InvalidSchedule(
                "schedule.start", "rate(...) is anchored at the schedule's start: give `start`"
            )
        first = _utc_second(anchor, zone)
        if instant < first or (instant - first) % schedule.every:
            raise InvalidRange(
                "scheduleTime",
                f"{_tick_text(instant)} is not a tick of {expression.strip()}"
                f" anchored at {_tick_text(first)}",
            )
        previous: datetime | None = instant - schedule.every
    else:
        if next(_scheduler_instants(schedule, zone, instant, instant + _SECOND, Order.ASC), None) is None:
            raise InvalidRange(
                "scheduleTime", f"{_tick_text(instant)} is not a tick of {expression.strip()} in {timezone}"
            )
        low = max(_EARLIEST, instant - _PREVIOUS_TICK_LOOKBACK)
        previous = next(_scheduler_instants(schedule, zone, low, instant, Order.DESC), None)
    return (previous.replace(tzinfo=UTC) if previous else None), instant.replace(tzinfo=UTC)


def _scheduler_instants(
    schedule: CronSchedule, zone: ZoneInfo, low: datetime, high: datetime, order: Order
) -> Iterator[datetime]:
    """A cron's instants in `[low, high)` with Scheduler's own DST rules (skip, once)."""
    return _instants(
        schedule,
        zone,
        anchor=low,
        low=low,
        high=high,
        dst_gap=DstGap.SKIP,
        dst_fold=DstFold.ONCE,
        order=order,
    )
