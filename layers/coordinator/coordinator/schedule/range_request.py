"""The range request: what the range function is asked, its pages and the cursor between them.

A backfill (docs/design.md) runs a workflow once for every tick of its live schedule between two
instants, and asks for those ticks here a page at a time. Start inclusive, stop exclusive,
ascending unless `order="desc"`; output instants are UTC strings like `2022-02-15T01:00:00Z`,
the form of `<aws.scheduler.scheduled-time>`.

Paging keeps Step Functions' 256 KiB state limit: a tick is at most 23 bytes of JSON
(`"2022-02-15T01:00:00Z",`), so `MAX_PAGE_SIZE` = 5,000 ticks is at most 115,000 bytes plus a
cursor of under 200 bytes: under half the limit, leaving the rest of the state its room. Ticks
stream from a generator, so a page costs the same whatever the span.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from coordinator.schedule.errors import (
    InvalidCursor,
    InvalidRange,
    InvalidSchedule,
    InvalidTimezone,
    RangeRequestError,
)
from coordinator.schedule.expressions import FIRST_YEAR, LAST_YEAR, Schedule, compile_schedule
from coordinator.schedule.instants import (
    EARLIEST,
    LATEST,
    SECOND,
    DstFold,
    DstGap,
    Order,
    instants,
    tick_text,
    utc_second,
    zone_of,
)

DEFAULT_PAGE_SIZE: Final = 500
MAX_PAGE_SIZE: Final = 5_000
# A request for page cursors walks `pages` pages: at most 40 x 5,000 = 200,000 ticks, a few
# seconds of the range function, and 40 cursors of under 100 bytes each.
MAX_PAGES: Final = 40
# A backfill in map_mode "auto" runs inline when its range has at most `inline_limit` ticks
# (its default is backfill.asl.json's), counted up to one past the limit: at most 10,001 ticks,
# well under a second of the function.
MAX_INLINE_LIMIT: Final = 10_000


class RangeRequest(BaseModel):
    """What the range function is asked: `{start, stop, schedule, timezone, dst_gap, dst_fold,
    order, page_size, cursor, pages, inline_limit}`; with `pages`, the cursors of that many
    pages instead of one page's ticks (`page_cursors`); with `inline_limit`, which map mode a
    backfill of the range runs in (`map_mode_of`).

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
    pages: int | None = Field(default=None, ge=1, le=MAX_PAGES)
    inline_limit: int | None = Field(default=None, ge=0, le=MAX_INLINE_LIMIT, strict=True)

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
    def _knownzone_of(cls, value: str) -> str:
        zone_of(value)
        return value

    @model_validator(mode="after")
    def _ordered_bounds_and_own_cursor(self) -> RangeRequest:
        first, stop = self.first_instant, self.stop_instant
        for field, instant in (("start", first), ("stop", stop)):
            if not EARLIEST <= instant <= LATEST:
                raise InvalidRange(field, f"must lie within {FIRST_YEAR}-{LAST_YEAR}")
        if stop <= first:
            raise InvalidRange("stop", "must be after start (start is inclusive, stop exclusive)")
        if self.pages is not None and self.inline_limit is not None:
            raise InvalidRange(
                "inline_limit", "asks for a map mode; a request asks for pages or a map mode, not both"
            )
        _cursor_tick(self)  # a bad cursor fails here, with the rest of the request, not mid-page
        return self

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.timezone)

    @property
    def compiled(self) -> Schedule:
        return compile_schedule(self.schedule)

    @property
    def first_instant(self) -> datetime:
        """`start` as naive UTC, whole second (the rate anchor, and the first tick allowed)."""
        return utc_second(self.start, self.zone)

    @property
    def stop_instant(self) -> datetime:
        """`stop` as naive UTC, whole second (no tick at or after it)."""
        return utc_second(self.stop, self.zone)

    @property
    def fingerprint(self) -> str:
        """Names the request a cursor belongs to: everything but the page size and the cursor."""
        canonical = json.dumps(
            [
                self.schedule.strip(),
                self.timezone,
                tick_text(self.first_instant),
                tick_text(self.stop_instant),
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
    walked = _request_instants(request)
    times = [tick_text(instant) for instant in islice(walked, request.page_size)]
    more = next(walked, None) is not None
    cursor = _write_cursor(times[-1], request.fingerprint) if more else None
    return RangePage(times=times, next=cursor, count=len(times))


class PageCursors(BaseModel):
    """What the range function returns for `pages`: `{cursors, next, count}`.

    `cursors` starts each page (the first is the request's own cursor, null at the start) for
    a Distributed Map to read in parallel; `next` continues after the last of them, None when
    they reach the range's end; `count` is the ticks they cover.
    """

    cursors: list[str | None]
    next: str | None
    count: int


def page_cursors(request: RangeRequest) -> PageCursors:
    """The cursors of up to `request.pages` pages of `request.page_size` ticks, walked once."""
    walked = _request_instants(request)
    cursors: list[str | None] = []
    cursor, count = request.cursor, 0
    for _ in range(request.pages or 1):
        page = list(islice(walked, request.page_size))
        if not page:
            break
        cursors.append(cursor)
        count += len(page)
        cursor = _write_cursor(tick_text(page[-1]), request.fingerprint)
    more = next(walked, None) is not None
    return PageCursors(cursors=cursors, next=cursor if more else None, count=count)


class MapMode(StrEnum):
    """How a backfill runs its ticks (backfill.asl.json's `map_mode`)."""

    INLINE = "inline"  # an inline Map in the backfill's own execution: at most 40 at once
    DISTRIBUTED = "distributed"  # Distributed Maps of child executions: up to 10,000 at once
    AUTO = "auto"  # inline up to `inline_limit` ticks, distributed past it


class MapModeOfRange(BaseModel):
    """What the range function returns for `inline_limit`: `{map_mode, counted}`.

    `counted` is the ticks counted (after the cursor, if any), at most `inline_limit + 1`: the
    range has exactly that many when it is at most the limit, more than the limit otherwise.
    """

    map_mode: MapMode
    counted: int


def map_mode_for(ticks: int, inline_limit: int) -> MapMode:
    """What map_mode "auto" runs a backfill of `ticks` in: inline up to the limit, distributed
    past it."""
    return MapMode.INLINE if ticks <= inline_limit else MapMode.DISTRIBUTED


def map_mode_of(request: RangeRequest) -> MapModeOfRange:
    """`map_mode_for` the request's range and its `inline_limit`; the range is walked only one
    tick past the limit, whatever its span."""
    limit = request.inline_limit
    if limit is None:
        raise ValueError("a map mode is asked with an inline_limit")
    counted = sum(1 for _ in islice(_request_instants(request), limit + 1))
    return MapModeOfRange(map_mode=map_mode_for(counted, limit), counted=counted)


def ticks(request: RangeRequest) -> Iterator[datetime]:
    """Every tick of the request (after its cursor, if any), as aware UTC datetimes, streamed."""
    for instant in _request_instants(request):
        yield instant.replace(tzinfo=UTC)  # the generator's naive UTC, made aware on the way out


def _request_instants(request: RangeRequest) -> Iterator[datetime]:
    """The request's ticks after its cursor, as the tick generator gives them: naive UTC (the
    bounds and the cursor's tick are naive UTC too; `tick_text` or `ticks` make them UTC)."""
    low, high = request.first_instant, request.stop_instant
    after = request.resume_after
    if after is not None:
        if request.order is Order.ASC:
            low = after + SECOND
        else:
            high = after
    return instants(
        request.compiled,
        request.zone,
        anchor=request.first_instant,
        low=low,
        high=high,
        dst_gap=request.dst_gap,
        dst_fold=request.dst_fold,
        order=request.order,
    )


# The cursor is opaque: base64url of a small JSON holding the last emitted tick and the request's
# fingerprint. A request resumes after that tick without re-walking the range (every window
# depends only on its own bounds, so the cut changes no tick), and a cursor used with another
# schedule, zone, range, DST choice or order is refused (`_cursor_tick`).
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
    return instant.replace(tzinfo=None), fingerprint  # naive UTC, as the tick generator walks
