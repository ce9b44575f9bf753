"""Schedule expressions, EventBridge Scheduler's own: parsed once into a cron or a rate.

- `cron(min hour day-of-month month day-of-week year)` with `?`, `L`, `W`, `#`, names
  (`MON-FRI`, `JAN`), a year field, and day-of-week 1-7 = SUN-SAT;
- `rate(N minute|minutes|hour|hours|day|days)` (singular exactly when N is 1);
- and, for people who think in crontab, a plain five-field cron with the usual 0-6 = SUN-SAT
  numbering and the usual OR of day-of-month and day-of-week.

croniter (7.0.0) walks the cron ticks, but it lacks two of Scheduler's spellings and has a
narrower year range, so `cron(...)` is translated: day-of-week numbers move down by one, `nL`
becomes croniter's `Ln`, a lone `L` is Saturday (the last day of the week), and the year field
(1970-2199; croniter stops at 2099) is kept here as runs of allowed years, applied by clipping
the wall range to them (`CronSchedule.wall_spans`). croniter's `?`, `L`, `W` and `#` in the
other fields are used as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final, TypeAlias

from croniter import CroniterError, croniter

from coordinator.schedule.errors import InvalidSchedule

# EventBridge Scheduler's cron year field; a range is held to the same span.
FIRST_YEAR: Final = 1970
LAST_YEAR: Final = 2199


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
