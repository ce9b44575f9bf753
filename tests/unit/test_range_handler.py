"""The range handler: a thin edge that returns `{times, next, count}` or raises a typed error.

Lambda reports an uncaught exception's class name as errorType, so "raises InvalidSchedule"
here is "the backfill's Catch on InvalidSchedule fires" there.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from coordinator.schedule import InvalidCursor, InvalidRange, InvalidSchedule, InvalidTimezone
from functions.range.app import lambda_handler

SEED = {"start": "2022-02-15T00:00Z", "stop": "2022-02-18T00:00Z", "schedule": "0 1 * * *"}


def test_handler_returns_times_next_and_count(context: Any) -> None:
    assert lambda_handler(SEED, context) == {
        "times": ["2022-02-15T01:00:00Z", "2022-02-16T01:00:00Z", "2022-02-17T01:00:00Z"],
        "next": None,
        "count": 3,
    }


def test_handler_output_is_the_next_requests_cursor(context: Any) -> None:
    first = lambda_handler(SEED | {"page_size": 2}, context)
    second = lambda_handler(SEED | {"page_size": 2, "cursor": first["next"]}, context)
    assert first["times"] + second["times"] == lambda_handler(SEED, context)["times"]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({"schedule": "cron(0 1 * * * *)"}, InvalidSchedule),
        ({"timezone": "Mars/Olympus_Mons"}, InvalidTimezone),
        ({"stop": "2022-02-14T00:00Z"}, InvalidRange),
        ({"cursor": "bm90IGEgY3Vyc29y"}, InvalidCursor),
    ],
)
def test_handler_raises_the_typed_error_a_catch_matches(
    context: Any, change: dict[str, str], error_type: type[Exception]
) -> None:
    with pytest.raises(error_type) as raised:
        lambda_handler(SEED | change, context)
    assert type(raised.value).__name__ == error_type.__name__


def test_handler_never_lets_pydantics_validation_error_out(context: Any) -> None:
    with pytest.raises(InvalidRange, match=r"^tick_count: ") as raised:
        lambda_handler(SEED | {"tick_count": 3}, context)
    assert not isinstance(raised.value, ValidationError)


def test_handler_asked_for_pages_returns_where_each_page_starts(context: Any) -> None:
    seven = SEED | {"stop": "2022-02-22T00:00Z", "page_size": 2}
    walked = lambda_handler(seven | {"pages": 2}, context)
    assert walked["count"] == 4
    assert walked["cursors"][0] is None
    pages = [lambda_handler(seven | {"cursor": cursor}, context)["times"] for cursor in walked["cursors"]]
    rest = lambda_handler(seven | {"pages": 40, "cursor": walked["next"]}, context)
    assert (rest["count"], rest["next"], len(rest["cursors"])) == (3, None, 2)
    pages += [lambda_handler(seven | {"cursor": cursor}, context)["times"] for cursor in rest["cursors"]]
    every = lambda_handler(seven | {"page_size": 10}, context)["times"]
    assert [tick for page in pages for tick in page] == every


def test_handler_asked_for_pages_ending_on_a_page_boundary_has_no_next(context: Any) -> None:
    walked = lambda_handler(SEED | {"page_size": 3, "pages": 1}, context)
    assert walked == {"cursors": [None], "next": None, "count": 3}


@pytest.mark.parametrize("pages", [0, 41])
def test_handler_refuses_pages_out_of_bounds(context: Any, pages: int) -> None:
    with pytest.raises(InvalidRange, match=r"^pages: "):
        lambda_handler(SEED | {"pages": pages}, context)


@pytest.mark.parametrize(
    ("inline_limit", "map_mode", "counted"),
    [(3, "inline", 3), (2, "distributed", 3), (0, "distributed", 1), (10_000, "inline", 3)],
)
def test_handler_with_an_inline_limit_chooses_the_map_mode_by_the_ticks_counted(
    context: Any, inline_limit: int, map_mode: str, counted: int
) -> None:
    assert lambda_handler(SEED | {"inline_limit": inline_limit}, context) == {
        "map_mode": map_mode,
        "counted": counted,
    }


def test_handler_counts_a_long_range_only_one_tick_past_the_limit(context: Any) -> None:
    a_century_of_minutes = SEED | {"stop": "2122-02-15T00:00Z", "schedule": "* * * * *"}
    assert lambda_handler(a_century_of_minutes | {"inline_limit": 10_000}, context) == {
        "map_mode": "distributed",
        "counted": 10_001,
    }


def test_handler_counts_the_ticks_after_its_cursor(context: Any) -> None:
    first = lambda_handler(SEED | {"page_size": 2}, context)
    assert lambda_handler(SEED | {"inline_limit": 1, "cursor": first["next"]}, context) == {
        "map_mode": "inline",
        "counted": 1,
    }


@pytest.mark.parametrize("inline_limit", [-1, 10_001, 2.5, "100", True])
def test_handler_refuses_an_inline_limit_that_is_not_a_count_in_bounds(
    context: Any, inline_limit: object
) -> None:
    with pytest.raises(InvalidRange, match=r"^inline_limit: "):
        lambda_handler(SEED | {"inline_limit": inline_limit}, context)


def test_handler_refuses_pages_and_an_inline_limit_together(context: Any) -> None:
    with pytest.raises(InvalidRange, match=r"^inline_limit: .*pages or a map mode"):
        lambda_handler(SEED | {"pages": 2, "inline_limit": 5}, context)
