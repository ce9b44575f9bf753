"""`schedule show`: a workflow's live schedule, its next ticks and the states of its last ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Annotated, Any

import typer
from rich.table import Table

from coordinator.identity import scheduled_payload_id
from coordinator.schedule import Order, RateSchedule, compile_schedule, scheduler_instants, zone_of
from coordinator.schedule.instants import EARLIEST, LATEST, SECOND, tick_text, utc_second
from coordinator_tools import inspection
from coordinator_tools.cli.common import Options, app, emit, global_options, key_values, one_line_errors, out
from coordinator_tools.target import Target

schedule_app = typer.Typer(help="A workflow's live schedule.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

# A tick whose payload has no row was never submitted (or its row expired).
MISSING = "MISSING"
# How far back the last ticks of a cron are looked for: a leap-day cron ticks every 4-8 years.
_LOOKBACK = timedelta(days=9 * 366)


@dataclass(frozen=True)
class LiveSchedule:
    """What a tick's time depends on: the expression, its zone, and the schedule's start and end
    (Scheduler fires nothing outside them; a rate is anchored at its start)."""

    expression: str
    timezone: str
    start: datetime | None = None
    end: datetime | None = None
    name: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class Tick:
    tick: str
    payload_id: str
    state: str


def find_schedule(target: Target, workflow: str) -> LiveSchedule | None:
    """The EventBridge Scheduler schedule whose target input names `workflow`, if there is one,
    among those sending to the stack's process queue (when the stack names it).

    ListSchedules answers summaries without the target's input, so each is read with GetSchedule.
    Two schedules of one workflow would fire the same payload ids: that is refused, by name.
    """
    scheduler = target.client("scheduler")
    queue = target.outputs.get("ProcessQueueArn")
    found: list[dict[str, Any]] = []
    for page in scheduler.get_paginator("list_schedules").paginate():
        for summary in page.get("Schedules", []):
            if queue is not None and summary.get("Target", {}).get("Arn") not in (None, queue):
                continue
            schedule = scheduler.get_schedule(
                Name=summary["Name"], GroupName=summary.get("GroupName", "default")
            )
            if _names_workflow(schedule.get("Target", {}).get("Input"), workflow):
                found.append(schedule)
    if len(found) > 1:
        names = ", ".join(sorted(schedule["Name"] for schedule in found))
        raise ValueError(f"{len(found)} schedules name workflow {workflow} ({names}): give --expression")
    if not found:
        return None
    (schedule,) = found
    return LiveSchedule(
        expression=schedule["ScheduleExpression"],
        timezone=schedule.get("ScheduleExpressionTimezone") or "UTC",
        start=schedule.get("StartDate"),
        end=schedule.get("EndDate"),
        name=schedule["Name"],
        state=schedule.get("State"),
    )


def _names_workflow(input_text: str | None, workflow: str) -> bool:
    try:
        message = json.loads(input_text or "")
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("workflow") == workflow


def tick_instants(schedule: LiveSchedule, now: datetime, *, after: bool) -> Iterator[datetime]:
    """The schedule's ticks after `now` (ascending) or at or before it (descending), naive UTC,
    with Scheduler's DST rules: the runtime's generator (`scheduler_instants`), streamed, since
    `ticks_between` answers a bounded list and the next ticks have no bound but their count."""
    compiled, zone = compile_schedule(schedule.expression), zone_of(schedule.timezone)
    instant = utc_second(now, zone)
    if isinstance(compiled, RateSchedule) and schedule.start is None:
        raise ValueError(f"{schedule.expression} is anchored at the schedule's start: give --start")
    first = utc_second(schedule.start, zone) if schedule.start is not None else EARLIEST
    stop = min(LATEST, utc_second(schedule.end, zone) + SECOND) if schedule.end is not None else LATEST
    if after:
        low, high, order = max(first, instant + SECOND), stop, Order.ASC
    else:
        low, high, order = max(first, instant - _LOOKBACK), min(stop, instant + SECOND), Order.DESC
    if high <= low:
        return iter(())
    return scheduler_instants(compiled, zone, low, high, order, anchor=first)


def next_ticks(schedule: LiveSchedule, now: datetime, count: int) -> list[str]:
    return [tick_text(instant) for instant in islice(tick_instants(schedule, now, after=True), count)]


def last_ticks(
    target: Target, workflow: str, schedule: LiveSchedule, now: datetime, count: int
) -> list[Tick]:
    """The `count` ticks at or before `now`, newest first, each with its payload's state."""
    times = [
        instant.replace(tzinfo=UTC) for instant in islice(tick_instants(schedule, now, after=False), count)
    ]
    ids = [scheduled_payload_id(workflow, time) for time in times]
    states = inspection.payload_states(target, ids)
    return [
        Tick(
            tick=tick_text(time.replace(tzinfo=None)),
            payload_id=payload_id,
            state=states.get(payload_id, MISSING),
        )
        for time, payload_id in zip(times, ids, strict=True)
    ]


@schedule_app.command("show")
@global_options
@one_line_errors
def schedule_show(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument()],
    expression: Annotated[
        str | None,
        typer.Option("--expression", help="cron(...), rate(...) or five-field cron (default: the stack's)"),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA timezone of --expression (default UTC)")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Start of a rate(...) --expression, ISO-8601")
    ] = None,
    next_count: Annotated[int, typer.Option("--next", min=0, help="Ticks to come")] = 5,
    last_count: Annotated[
        int, typer.Option("--last", min=0, help="Ticks gone, with their payload states")
    ] = 5,
    now: Annotated[
        str | None, typer.Option("--now", help="The instant to count from, ISO-8601 (default: now)")
    ] = None,
) -> None:
    """The schedule of WORKFLOW (the stack's EventBridge Scheduler schedule whose target input
    names it, or --expression), its next ticks, and its last ticks with their payload states."""
    options: Options = ctx.obj
    target = options.target()
    if expression is None and (timezone is not None or start is not None):
        raise ValueError("--timezone and --start describe an --expression: give it too")
    schedule = (
        LiveSchedule(
            expression=expression,
            timezone=timezone or "UTC",
            start=datetime.fromisoformat(start) if start is not None else None,
        )
        if expression is not None
        else find_schedule(target, workflow)
    )
    if schedule is None:
        raise ValueError(f"no schedule names workflow {workflow}: give --expression")
    moment = datetime.fromisoformat(now) if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("--now needs an offset or Z")
    upcoming = next_ticks(schedule, moment, next_count)
    gone = last_ticks(target, workflow, schedule, moment, last_count)

    def human() -> None:
        key_values(
            f"schedule: {workflow}",
            {
                "name": schedule.name,
                "expression": schedule.expression,
                "timezone": schedule.timezone,
                "start": schedule.start,
                "state": schedule.state,
            },
        )
        table = Table(title="ticks", title_justify="left")
        for column in ("tick", "payload", "state"):
            table.add_column(column)
        for tick in reversed(upcoming):
            table.add_row(tick, scheduled_payload_id(workflow, datetime.fromisoformat(tick)), "next")
        for done in gone:
            table.add_row(done.tick, done.payload_id, done.state)
        out.print(table)

    emit(
        options,
        {
            "workflow": workflow,
            "schedule": {key: value for key, value in asdict(schedule).items() if value is not None},
            "next": upcoming,
            "last": [asdict(tick) for tick in gone],
        },
        human,
    )
