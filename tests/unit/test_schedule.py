"""The range logic as a specification: EventBridge Scheduler parity, DST, paging, typed errors.

Every expected instant below is worked out by hand from the zone's UTC offsets on that date
(noted beside each test), not copied from the code's output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.schedule import (
    MAX_PAGE_SIZE,
    InvalidCursor,
    InvalidRange,
    InvalidSchedule,
    InvalidTimezone,
    RangePage,
    RangeRequest,
    range_page,
    ticks,
)


def page_of(**request: Any) -> RangePage:
    return range_page(RangeRequest.from_event(request))


def times_of(**request: Any) -> list[str]:
    page = page_of(**request)
    assert page.next is None, "expected the whole range on one page"
    return page.times


def paged(request: dict[str, Any], page_size: int) -> list[str]:
    """Every tick of a request, fetched page by page through the cursors."""
    times: list[str] = []
    cursor: str | None = None
    while True:
        event = {**request, "page_size": page_size} | ({"cursor": cursor} if cursor else {})
        page = range_page(RangeRequest.from_event(event))
        assert page.count == len(page.times) <= page_size
        times += page.times
        if page.next is None:
            return times
        assert page.count == page_size, "only the last page may be short"
        assert page.next != cursor, "a cursor must move the range on"
        cursor = page.next


# The seed example


def test_seed_example_fires_at_one_utc_each_day_and_stop_is_exclusive() -> None:
    assert times_of(start="2022-02-15T00:00Z", stop="2022-02-18T00:00Z", schedule="0 1 * * *") == [
        "2022-02-15T01:00:00Z",
        "2022-02-16T01:00:00Z",
        "2022-02-17T01:00:00Z",
    ]


def test_a_tick_exactly_at_start_is_included_and_one_exactly_at_stop_is_not() -> None:
    assert times_of(start="2022-02-15T01:00Z", stop="2022-02-17T01:00Z", schedule="0 1 * * *") == [
        "2022-02-15T01:00:00Z",
        "2022-02-16T01:00:00Z",
    ]


# EventBridge Scheduler's cron(...)


def test_aws_day_of_week_2_is_monday() -> None:
    # February 2022: the 1st is a Tuesday, so Mondays are the 7th, 14th, 21st, 28th.
    assert times_of(start="2022-02-01T00:00Z", stop="2022-03-01T00:00Z", schedule="cron(0 12 ? * 2 *)") == [
        "2022-02-07T12:00:00Z",
        "2022-02-14T12:00:00Z",
        "2022-02-21T12:00:00Z",
        "2022-02-28T12:00:00Z",
    ]


def test_aws_day_names_range_mon_to_fri_is_the_working_week() -> None:
    # 2022-02-14 is a Monday.
    assert times_of(
        start="2022-02-12T00:00Z", stop="2022-02-21T00:00Z", schedule="cron(0 9 ? * MON-FRI *)"
    ) == [f"2022-02-{day}T09:00:00Z" for day in (14, 15, 16, 17, 18)]


def test_aws_month_names_pick_their_months() -> None:
    assert times_of(
        start="2022-01-01T00:00Z", stop="2023-01-01T00:00Z", schedule="cron(0 0 1 JAN,JUL ? *)"
    ) == [
        "2022-01-01T00:00:00Z",
        "2022-07-01T00:00:00Z",
    ]


def test_aws_l_in_day_of_month_is_the_last_day_of_each_month() -> None:
    # 2024 is a leap year.
    assert times_of(start="2024-01-01T00:00Z", stop="2024-04-01T00:00Z", schedule="cron(0 0 L * ? *)") == [
        "2024-01-31T00:00:00Z",
        "2024-02-29T00:00:00Z",
        "2024-03-31T00:00:00Z",
    ]


def test_aws_6l_in_day_of_week_is_the_last_friday_of_each_month() -> None:
    # Fridays of 2022: Jan 7..28, Feb 4..25, Mar 4..25.
    assert times_of(start="2022-01-01T00:00Z", stop="2022-04-01T00:00Z", schedule="cron(0 10 ? * 6L *)") == [
        "2022-01-28T10:00:00Z",
        "2022-02-25T10:00:00Z",
        "2022-03-25T10:00:00Z",
    ]


def test_aws_lone_l_in_day_of_week_is_saturday() -> None:
    # 2022-01-01 is a Saturday.
    assert times_of(start="2022-01-01T00:00Z", stop="2022-01-10T00:00Z", schedule="cron(0 10 ? * L *)") == [
        "2022-01-01T10:00:00Z",
        "2022-01-08T10:00:00Z",
    ]


def test_aws_w_is_the_weekday_nearest_the_day() -> None:
    # 2022-01-15 is a Saturday (-> Friday 14th); 2022-02-15 a Tuesday; 2022-05-15 a Sunday (-> Monday 16th).
    assert times_of(start="2022-01-01T00:00Z", stop="2022-06-01T00:00Z", schedule="cron(0 10 15W * ? *)") == [
        "2022-01-14T10:00:00Z",
        "2022-02-15T10:00:00Z",
        "2022-03-15T10:00:00Z",
        "2022-04-15T10:00:00Z",
        "2022-05-16T10:00:00Z",
    ]


def test_aws_w_never_leaves_its_month() -> None:
    # 2022-01-01 is a Saturday: the nearest weekday in January is Monday the 3rd, not Dec 31.
    assert times_of(start="2021-12-31T00:00Z", stop="2022-01-05T00:00Z", schedule="cron(0 10 1W * ? *)") == [
        "2022-01-03T10:00:00Z",
    ]


def test_aws_hash_is_the_nth_weekday_of_the_month() -> None:
    # Third Fridays of 2022: Jan 21, Feb 18, Mar 18.
    assert times_of(start="2022-01-01T00:00Z", stop="2022-04-01T00:00Z", schedule="cron(0 10 ? * 6#3 *)") == [
        "2022-01-21T10:00:00Z",
        "2022-02-18T10:00:00Z",
        "2022-03-18T10:00:00Z",
    ]


def test_aws_question_mark_leaves_the_day_to_the_other_day_field() -> None:
    assert times_of(start="2022-01-01T00:00Z", stop="2022-04-01T00:00Z", schedule="cron(0 12 15 * ? *)") == [
        "2022-01-15T12:00:00Z",
        "2022-02-15T12:00:00Z",
        "2022-03-15T12:00:00Z",
    ]


@pytest.mark.parametrize("schedule", ["cron(0 12 * * * *)", "cron(0 12 ? * ? *)", "cron(0 12 15 * 2 *)"])
def test_aws_cron_needs_a_question_mark_in_exactly_one_day_field(schedule: str) -> None:
    with pytest.raises(InvalidSchedule):
        RangeRequest.from_event(
            {"start": "2022-01-01T00:00Z", "stop": "2022-02-01T00:00Z", "schedule": schedule}
        )


def test_aws_year_field_outside_the_range_gives_no_ticks() -> None:
    page = page_of(start="2022-01-01T00:00Z", stop="2023-01-01T00:00Z", schedule="cron(0 12 * * ? 2024)")
    assert page.times == []
    assert page.next is None


def test_aws_year_field_fires_only_within_its_years() -> None:
    assert times_of(
        start="2022-12-30T00:00Z", stop="2023-01-03T00:00Z", schedule="cron(0 12 * * ? 2023)"
    ) == [
        "2023-01-01T12:00:00Z",
        "2023-01-02T12:00:00Z",
    ]


def test_aws_year_field_reaches_2199_past_croniters_2099() -> None:
    assert times_of(
        start="2150-01-01T00:00Z", stop="2151-01-01T00:00Z", schedule="cron(0 0 1 1 ? 2150-2199)"
    ) == ["2150-01-01T00:00:00Z"]


def test_five_field_cron_numbers_sunday_zero() -> None:
    # Sundays of February 2022: 6, 13, 20, 27.
    assert times_of(start="2022-02-01T00:00Z", stop="2022-03-01T00:00Z", schedule="0 12 * * 0") == [
        "2022-02-06T12:00:00Z",
        "2022-02-13T12:00:00Z",
        "2022-02-20T12:00:00Z",
        "2022-02-27T12:00:00Z",
    ]


def test_schedule_that_never_fires_in_range_gives_empty_times() -> None:
    page = page_of(start="2022-01-01T00:00Z", stop="2024-01-01T00:00Z", schedule="cron(0 0 30 2 ? *)")
    assert (page.times, page.next, page.count) == ([], None, 0)


# rate(...)


def test_rate_5_minutes_ticks_every_five_minutes_from_start() -> None:
    assert times_of(start="2022-02-15T00:02Z", stop="2022-02-15T00:20Z", schedule="rate(5 minutes)") == [
        "2022-02-15T00:02:00Z",
        "2022-02-15T00:07:00Z",
        "2022-02-15T00:12:00Z",
        "2022-02-15T00:17:00Z",
    ]


def test_rate_is_elapsed_time_untouched_by_timezone_or_dst() -> None:
    # Stockholm springs forward at 01:00Z on 2022-03-27; elapsed hours do not care.
    assert times_of(
        start="2022-03-27T00:00Z",
        stop="2022-03-27T03:00Z",
        schedule="rate(1 hour)",
        timezone="Europe/Stockholm",
    ) == ["2022-03-27T00:00:00Z", "2022-03-27T01:00:00Z", "2022-03-27T02:00:00Z"]


@pytest.mark.parametrize(
    "schedule", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(5 weeks)"]
)
def test_rate_is_refused_unless_scheduler_would_accept_it(schedule: str) -> None:
    with pytest.raises(InvalidSchedule):
        RangeRequest.from_event(
            {"start": "2022-01-01T00:00Z", "stop": "2022-02-01T00:00Z", "schedule": schedule}
        )


# DST. Europe/Stockholm 2022: CET +01:00, CEST +02:00 from 2022-03-27 01:00Z (02:00 -> 03:00 local)
# to 2022-10-30 01:00Z (03:00 -> 02:00 local).

STOCKHOLM_SPRING = {
    "start": "2022-03-26T00:00Z",
    "stop": "2022-03-29T00:00Z",
    "schedule": "cron(30 2 * * ? *)",
    "timezone": "Europe/Stockholm",
}
STOCKHOLM_AUTUMN = STOCKHOLM_SPRING | {"start": "2022-10-29T00:00Z", "stop": "2022-11-01T00:00Z"}


def test_stockholm_spring_forward_skips_the_missing_0230_by_default() -> None:
    # 26th: 02:30 CET = 01:30Z; 27th: no 02:30; 28th: 02:30 CEST = 00:30Z.
    assert times_of(**STOCKHOLM_SPRING) == ["2022-03-26T01:30:00Z", "2022-03-28T00:30:00Z"]


def test_stockholm_spring_forward_shift_fires_at_the_end_of_the_gap() -> None:
    # The gap ends at 03:00 CEST = 01:00Z.
    assert times_of(**STOCKHOLM_SPRING, dst_gap="shift") == [
        "2022-03-26T01:30:00Z",
        "2022-03-27T01:00:00Z",
        "2022-03-28T00:30:00Z",
    ]


def test_stockholm_fall_back_fires_the_repeated_0230_once_at_its_first_occurrence() -> None:
    # 29th: 02:30 CEST = 00:30Z; 30th: 02:30 CEST = 00:30Z (again as CET = 01:30Z);
    # 31st: 02:30 CET = 01:30Z.
    assert times_of(**STOCKHOLM_AUTUMN) == [
        "2022-10-29T00:30:00Z",
        "2022-10-30T00:30:00Z",
        "2022-10-31T01:30:00Z",
    ]


def test_stockholm_fall_back_twice_fires_both_occurrences() -> None:
    assert times_of(**STOCKHOLM_AUTUMN, dst_fold="twice") == [
        "2022-10-29T00:30:00Z",
        "2022-10-30T00:30:00Z",
        "2022-10-30T01:30:00Z",
        "2022-10-31T01:30:00Z",
    ]


def test_shift_fires_once_however_many_ticks_the_gap_swallowed() -> None:
    # 01:45 CET = 00:45Z; 02:00..02:45 do not exist; 03:00 CEST = 01:00Z is itself a tick.
    assert times_of(
        start="2022-03-27T00:45Z",
        stop="2022-03-27T01:15Z",
        schedule="*/15 * * * *",
        timezone="Europe/Stockholm",
        dst_gap="shift",
    ) == ["2022-03-27T00:45:00Z", "2022-03-27T01:00:00Z"]


# America/New_York 2022: EST -05:00, EDT -04:00 from 2022-03-13 07:00Z (02:00 -> 03:00 local) to
# 2022-11-06 06:00Z (02:00 -> 01:00 local, so 01:00-01:59 repeats).

NEW_YORK_SPRING = {
    "start": "2022-03-12T00:00Z",
    "stop": "2022-03-15T00:00Z",
    "schedule": "cron(30 2 * * ? *)",
    "timezone": "America/New_York",
}
NEW_YORK_AUTUMN = NEW_YORK_SPRING | {
    "start": "2022-11-05T00:00Z",
    "stop": "2022-11-08T00:00Z",
    "schedule": "cron(30 1 * * ? *)",
}


def test_new_york_spring_forward_skips_the_missing_0230_by_default() -> None:
    # 12th: 02:30 EST = 07:30Z; 13th: no 02:30; 14th: 02:30 EDT = 06:30Z.
    assert times_of(**NEW_YORK_SPRING) == ["2022-03-12T07:30:00Z", "2022-03-14T06:30:00Z"]


def test_new_york_spring_forward_shift_fires_at_the_end_of_the_gap() -> None:
    # The gap ends at 03:00 EDT = 07:00Z.
    assert times_of(**NEW_YORK_SPRING, dst_gap="shift") == [
        "2022-03-12T07:30:00Z",
        "2022-03-13T07:00:00Z",
        "2022-03-14T06:30:00Z",
    ]


def test_new_york_fall_back_fires_the_repeated_0130_once_at_its_first_occurrence() -> None:
    # 5th: 01:30 EDT = 05:30Z; 6th: 01:30 EDT = 05:30Z (again EST = 06:30Z); 7th: 01:30 EST = 06:30Z.
    assert times_of(**NEW_YORK_AUTUMN) == [
        "2022-11-05T05:30:00Z",
        "2022-11-06T05:30:00Z",
        "2022-11-07T06:30:00Z",
    ]


def test_new_york_fall_back_twice_fires_both_occurrences() -> None:
    assert times_of(**NEW_YORK_AUTUMN, dst_fold="twice") == [
        "2022-11-05T05:30:00Z",
        "2022-11-06T05:30:00Z",
        "2022-11-06T06:30:00Z",
        "2022-11-07T06:30:00Z",
    ]


# Australia/Lord_Howe moves by half an hour: +10:30 standard, +11:00 summer. 2022: summer ends
# 2022-04-02 15:00Z (02:00 -> 01:30 local, so 01:30-01:59 repeats) and starts 2022-10-01 15:30Z
# (02:00 -> 02:30 local, so 02:00-02:29 does not exist).

LORD_HOWE_SPRING = {
    "start": "2022-09-30T00:00Z",
    "stop": "2022-10-03T00:00Z",
    "schedule": "cron(15 2 * * ? *)",
    "timezone": "Australia/Lord_Howe",
}
LORD_HOWE_AUTUMN = LORD_HOWE_SPRING | {
    "start": "2022-04-01T00:00Z",
    "stop": "2022-04-04T00:00Z",
    "schedule": "cron(45 1 * * ? *)",
}


def test_lord_howe_half_hour_gap_skips_the_missing_0215() -> None:
    # Oct 1: 02:15 +10:30 = Sep 30 15:45Z; Oct 2: none; Oct 3: 02:15 +11:00 = Oct 2 15:15Z.
    assert times_of(**LORD_HOWE_SPRING) == ["2022-09-30T15:45:00Z", "2022-10-02T15:15:00Z"]


def test_lord_howe_half_hour_gap_shift_fires_at_0230() -> None:
    # The gap ends at 02:30 +11:00 = Oct 1 15:30Z.
    assert times_of(**LORD_HOWE_SPRING, dst_gap="shift") == [
        "2022-09-30T15:45:00Z",
        "2022-10-01T15:30:00Z",
        "2022-10-02T15:15:00Z",
    ]


def test_lord_howe_half_hour_fold_fires_once() -> None:
    # Apr 2: 01:45 +11:00 = Apr 1 14:45Z; Apr 3: first 01:45 +11:00 = Apr 2 14:45Z (again +10:30 =
    # 15:15Z); Apr 4: 01:45 +10:30 = Apr 3 15:15Z.
    assert times_of(**LORD_HOWE_AUTUMN) == [
        "2022-04-01T14:45:00Z",
        "2022-04-02T14:45:00Z",
        "2022-04-03T15:15:00Z",
    ]


def test_lord_howe_half_hour_fold_twice_fires_both() -> None:
    assert times_of(**LORD_HOWE_AUTUMN, dst_fold="twice") == [
        "2022-04-01T14:45:00Z",
        "2022-04-02T14:45:00Z",
        "2022-04-02T15:15:00Z",
        "2022-04-03T15:15:00Z",
    ]


# Order, bounds, paging


def test_desc_order_gives_the_same_ticks_latest_first() -> None:
    assert times_of(**STOCKHOLM_AUTUMN, dst_fold="twice", order="desc") == [
        "2022-10-31T01:30:00Z",
        "2022-10-30T01:30:00Z",
        "2022-10-30T00:30:00Z",
        "2022-10-29T00:30:00Z",
    ]


def test_naive_start_and_stop_are_wall_clock_in_the_timezone() -> None:
    # Midnight in Stockholm on 2022-02-15 is 2022-02-14 23:00Z (CET, +01:00).
    assert times_of(
        start="2022-02-15T00:00", stop="2022-02-15T02:00", schedule="0 * * * *", timezone="Europe/Stockholm"
    ) == ["2022-02-14T23:00:00Z", "2022-02-15T00:00:00Z"]


def test_start_with_an_offset_is_that_instant() -> None:
    assert times_of(start="2022-02-15T02:00+02:00", stop="2022-02-15T02:00Z", schedule="0 * * * *") == [
        "2022-02-15T00:00:00Z",
        "2022-02-15T01:00:00Z",
    ]


def test_page_holds_page_size_ticks_and_a_cursor_to_the_rest() -> None:
    request = {"start": "2022-02-15T00:00Z", "stop": "2022-02-15T00:10Z", "schedule": "* * * * *"}
    first = page_of(**request, page_size=4)
    second = page_of(**request, page_size=4, cursor=first.next)
    third = page_of(**request, page_size=4, cursor=second.next)
    assert first.times == [f"2022-02-15T00:0{minute}:00Z" for minute in range(4)]
    assert second.times == [f"2022-02-15T00:0{minute}:00Z" for minute in range(4, 8)]
    assert (third.times, third.next, third.count) == (
        ["2022-02-15T00:08:00Z", "2022-02-15T00:09:00Z"],
        None,
        2,
    )


def test_page_exactly_filling_the_range_has_no_next() -> None:
    page = page_of(start="2022-02-15T00:00Z", stop="2022-02-15T00:04Z", schedule="* * * * *", page_size=4)
    assert (page.count, page.next) == (4, None)


def test_desc_pages_walk_backward_through_the_cursor() -> None:
    request = {
        "start": "2022-02-15T00:00Z",
        "stop": "2022-02-15T00:05Z",
        "schedule": "* * * * *",
        "order": "desc",
    }
    assert paged(request, page_size=2) == [f"2022-02-15T00:0{minute}:00Z" for minute in (4, 3, 2, 1, 0)]


def test_two_years_minutely_pages_without_materialising_the_range() -> None:
    request = {"start": "2022-01-01T00:00Z", "stop": "2024-01-01T00:00Z", "schedule": "* * * * *"}
    first = page_of(**request, page_size=MAX_PAGE_SIZE)
    second = page_of(**request, page_size=MAX_PAGE_SIZE, cursor=first.next)
    assert first.count == second.count == MAX_PAGE_SIZE
    assert first.times[-1] == "2022-01-04T11:19:00Z"  # the 5000th minute: 3 days, 11 h, 19 min in
    assert second.times[0] == "2022-01-04T11:20:00Z"
    assert second.next is not None


def test_page_size_is_capped_so_a_page_fits_in_step_functions_state() -> None:
    page = page_of(
        start="2022-01-01T00:00Z", stop="2024-01-01T00:00Z", schedule="* * * * *", page_size=MAX_PAGE_SIZE
    )
    assert len(page.model_dump_json().encode()) < 256 * 1024 // 2
    with pytest.raises(InvalidRange, match="page_size"):
        page_of(
            start="2022-01-01T00:00Z",
            stop="2022-01-02T00:00Z",
            schedule="* * * * *",
            page_size=MAX_PAGE_SIZE + 1,
        )


def test_ticks_streams_aware_utc_datetimes() -> None:
    request = RangeRequest.from_event(
        {"start": "2022-02-15T00:00Z", "stop": "2022-02-17T00:00Z", "schedule": "0 1 * * *"}
    )
    assert list(ticks(request)) == [
        datetime(2022, 2, 15, 1, tzinfo=UTC),
        datetime(2022, 2, 16, 1, tzinfo=UTC),
    ]


# Typed errors: the class name is the errorType a Step Functions Catch matches.


def test_error_class_names_are_the_catchable_error_types() -> None:
    assert [kind.__name__ for kind in (InvalidSchedule, InvalidTimezone, InvalidRange, InvalidCursor)] == [
        "InvalidSchedule",
        "InvalidTimezone",
        "InvalidRange",
        "InvalidCursor",
    ]


@pytest.mark.parametrize(
    "schedule", ["every day", "cron(0 25 * * ? *)", "61 * * * *", "H * * * *", "@daily", ""]
)
def test_bad_schedule_is_invalid_schedule_naming_the_field(schedule: str) -> None:
    with pytest.raises(InvalidSchedule, match=r"^schedule: ") as raised:
        RangeRequest.from_event(
            {"start": "2022-01-01T00:00Z", "stop": "2022-01-02T00:00Z", "schedule": schedule}
        )
    assert raised.value.field == "schedule"


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "../../etc/passwd", 7])
def test_bad_timezone_is_invalid_timezone_naming_the_field(timezone: object) -> None:
    with pytest.raises(InvalidTimezone, match=r"^timezone: "):
        RangeRequest.from_event(
            {
                "start": "2022-01-01T00:00Z",
                "stop": "2022-01-02T00:00Z",
                "schedule": "0 1 * * *",
                "timezone": timezone,
            }
        )


def test_stop_not_after_start_is_invalid_range_naming_stop() -> None:
    with pytest.raises(InvalidRange, match=r"^stop: "):
        RangeRequest.from_event(
            {"start": "2022-01-02T00:00Z", "stop": "2022-01-02T00:00Z", "schedule": "0 1 * * *"}
        )


def test_unparseable_start_is_invalid_range_naming_start() -> None:
    with pytest.raises(InvalidRange, match=r"^start: "):
        RangeRequest.from_event({"start": "yesterday", "stop": "2022-01-02T00:00Z", "schedule": "0 1 * * *"})


def test_missing_stop_is_invalid_range_naming_stop() -> None:
    with pytest.raises(InvalidRange, match=r"^stop: "):
        RangeRequest.from_event({"start": "2022-01-01T00:00Z", "schedule": "0 1 * * *"})


def test_range_outside_scheduler_years_is_invalid_range() -> None:
    with pytest.raises(InvalidRange, match=r"^start: "):
        RangeRequest.from_event(
            {"start": "1969-12-31T00:00Z", "stop": "1970-01-02T00:00Z", "schedule": "0 1 * * *"}
        )


def test_unknown_field_is_invalid_range_naming_it() -> None:
    with pytest.raises(InvalidRange, match=r"^step: "):
        RangeRequest.from_event(
            {"start": "2022-01-01T00:00Z", "stop": "2022-01-02T00:00Z", "schedule": "0 1 * * *", "step": 5}
        )


@pytest.mark.parametrize(
    ("field", "value"), [("order", "sideways"), ("dst_gap", "leap"), ("dst_fold", "thrice")]
)
def test_unknown_option_is_invalid_range_naming_it(field: str, value: str) -> None:
    with pytest.raises(InvalidRange, match=f"^{field}: "):
        RangeRequest.from_event(
            {"start": "2022-01-01T00:00Z", "stop": "2022-01-02T00:00Z", "schedule": "0 1 * * *", field: value}
        )


@pytest.mark.parametrize("cursor", ["not a cursor", "eyJ2IjoxfQ", "", "e30"])
def test_garbage_cursor_is_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor, match=r"^cursor: "):
        RangeRequest.from_event(
            {
                "start": "2022-01-01T00:00Z",
                "stop": "2022-01-02T00:00Z",
                "schedule": "0 * * * *",
                "cursor": cursor,
            }
        )


def test_invalid_cursor_is_also_an_invalid_range_for_python_callers() -> None:
    assert issubclass(InvalidCursor, InvalidRange)


@pytest.mark.parametrize(
    "change",
    [
        {"schedule": "30 * * * *"},
        {"timezone": "Europe/Stockholm"},
        {"stop": "2022-01-03T00:00Z"},
        {"order": "desc"},
        {"dst_fold": "twice"},
    ],
)
def test_cursor_from_one_request_is_rejected_by_another(change: dict[str, str]) -> None:
    request = {"start": "2022-01-01T00:00Z", "stop": "2022-01-02T00:00Z", "schedule": "0 * * * *"}
    cursor = page_of(**request, page_size=3).next
    with pytest.raises(InvalidCursor, match="different request"):
        RangeRequest.from_event(request | change | {"cursor": cursor})


def test_cursor_survives_a_change_of_page_size() -> None:
    request = {"start": "2022-01-01T00:00Z", "stop": "2022-01-02T00:00Z", "schedule": "0 * * * *"}
    cursor = page_of(**request, page_size=3).next
    assert page_of(**request, page_size=2, cursor=cursor).times == [
        "2022-01-01T03:00:00Z",
        "2022-01-01T04:00:00Z",
    ]


# Properties


DST_MOMENTS = [  # (zone, a UTC instant near one of its 2022 transitions)
    ("Europe/Stockholm", datetime(2022, 3, 27, 1)),
    ("Europe/Stockholm", datetime(2022, 10, 30, 1)),
    ("America/New_York", datetime(2022, 3, 13, 7)),
    ("America/New_York", datetime(2022, 11, 6, 6)),
    ("Australia/Lord_Howe", datetime(2022, 4, 2, 15)),
    ("Australia/Lord_Howe", datetime(2022, 10, 1, 15, 30)),
    ("Pacific/Chatham", datetime(2022, 4, 2, 14)),  # +13:45 -> +12:45
    ("Antarctica/Troll", datetime(2022, 3, 27, 1)),  # +00 -> +02: a two-hour gap
    ("UTC", datetime(2022, 2, 15)),
]
PAGED_SCHEDULES = [
    "*/15 * * * *",
    "30 1-3 * * *",
    "cron(0,30 2 * * ? *)",
    "cron(45 * ? * SUN *)",
    "cron(0 12 L * ? *)",
    "cron(0 10 ? * 6#1 *)",
    "rate(7 minutes)",
    "rate(1 hour)",
]


@st.composite
def range_requests(draw: st.DrawFn, schedules: list[str]) -> dict[str, Any]:
    zone, moment = draw(st.sampled_from(DST_MOMENTS))
    start = moment + timedelta(seconds=draw(st.integers(-40 * 3600, 8 * 3600)))
    stop = start + timedelta(seconds=draw(st.integers(1, 60 * 3600)))
    return {
        "start": f"{start.isoformat()}Z",
        "stop": f"{stop.isoformat()}Z",
        "schedule": draw(st.sampled_from(schedules)),
        "timezone": zone,
        "dst_gap": draw(st.sampled_from(["skip", "shift"])),
        "dst_fold": draw(st.sampled_from(["once", "twice"])),
        "order": draw(st.sampled_from(["asc", "desc"])),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=range_requests(PAGED_SCHEDULES), page_size=st.integers(1, 40))
def test_concatenated_pages_equal_the_unpaged_range(request: dict[str, Any], page_size: int) -> None:
    whole = page_of(**request, page_size=MAX_PAGE_SIZE)
    assert whole.next is None
    assert paged(request, page_size) == whole.times


@settings(max_examples=100, deadline=None)
@given(request=range_requests(PAGED_SCHEDULES))
def test_desc_is_asc_reversed(request: dict[str, Any]) -> None:
    ascending = times_of(**request | {"order": "asc"}, page_size=MAX_PAGE_SIZE)
    descending = times_of(**request | {"order": "desc"}, page_size=MAX_PAGE_SIZE)
    assert descending == ascending[::-1]
    assert ascending == sorted(set(ascending)), "ticks are strictly increasing: no duplicates"


MINUTES = {"30": {30}, "*/15": {0, 15, 30, 45}, "0,45": {0, 45}, "*": set(range(60))}
HOURS = {"*": set(range(24)), "1": {1}, "2": {2}, "1-3": {1, 2, 3}, "2,3": {2, 3}}


def scheduler_would_fire(
    minutes: set[int], hours: set[int], zone: ZoneInfo, start: datetime, stop: datetime, gap: str, fold: str
) -> list[str]:
    """An independent oracle: walk every UTC minute and ask the zone what wall time it is.

    A wall time that does not exist is never the local time of any UTC minute (so it is
    skipped), a repeated one is the local time of two, with fold=1 on the second.
    """
    fired = []
    instant = start
    while instant < stop:
        local = instant.replace(tzinfo=UTC).astimezone(zone)
        if local.minute in minutes and local.hour in hours and (fold == "twice" or local.fold == 0):
            fired.append(instant)
        before = (instant - timedelta(seconds=1)).replace(tzinfo=UTC).astimezone(zone).utcoffset()
        after = local.utcoffset()
        if gap == "shift" and before is not None and after is not None and after > before:
            wall, gap_end = instant + before, instant + after
            while wall < gap_end:
                if wall.minute in minutes and wall.hour in hours:
                    fired.append(instant)
                    break
                wall += timedelta(minutes=1)
        instant += timedelta(minutes=1)
    return [f"{moment.isoformat()}Z" for moment in sorted(set(fired))]


@settings(max_examples=120, deadline=None)
@given(
    moment=st.sampled_from(DST_MOMENTS),
    start_minutes=st.integers(-36 * 60, 6 * 60),
    span_minutes=st.integers(1, 48 * 60),
    minute_field=st.sampled_from(sorted(MINUTES)),
    hour_field=st.sampled_from(sorted(HOURS)),
    gap=st.sampled_from(["skip", "shift"]),
    fold=st.sampled_from(["once", "twice"]),
)
def test_dst_handling_matches_a_minute_by_minute_oracle(
    moment: tuple[str, datetime],
    start_minutes: int,
    span_minutes: int,
    minute_field: str,
    hour_field: str,
    gap: str,
    fold: str,
) -> None:
    zone, near = moment
    start = near + timedelta(minutes=start_minutes)
    stop = start + timedelta(minutes=span_minutes)
    expected = scheduler_would_fire(
        MINUTES[minute_field], HOURS[hour_field], ZoneInfo(zone), start, stop, gap, fold
    )
    assert (
        times_of(
            start=f"{start.isoformat()}Z",
            stop=f"{stop.isoformat()}Z",
            schedule=f"cron({minute_field} {hour_field} * * ? *)",
            timezone=zone,
            dst_gap=gap,
            dst_fold=fold,
            page_size=MAX_PAGE_SIZE,
        )
        == expected
    )
