"""The backfill commands: plan, run (with its progress and detach), list, status, cancel."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from coordinator.identity import execution_name_of
from coordinator.schedule import MAX_INLINE_LIMIT, MAX_PAGE_SIZE, MapMode
from coordinator.states import State
from coordinator_tools import backfills, inspection
from coordinator_tools.cli.common import (
    Options,
    app,
    emit,
    err,
    fail,
    global_options,
    json_input,
    key_values,
    one_line_errors,
    out,
)
from coordinator_tools.client import Coordinator
from coordinator_tools.inspection import Policy
from coordinator_tools.target import ExitCode, Target

backfill_app = typer.Typer(help="Plan or run a backfill of a schedule's ticks.", no_args_is_help=True)
app.add_typer(backfill_app, name="backfill")


Schedule = Annotated[str, typer.Option("--schedule", help="cron(...), rate(...) or five-field cron")]
Start = Annotated[str, typer.Option("--start", help="First instant (inclusive)")]
Stop = Annotated[str, typer.Option("--stop", help="Last instant (exclusive)")]
Zone = Annotated[str, typer.Option("--timezone", help="IANA timezone of the schedule")]
PolicyOption = Annotated[
    Policy,
    typer.Option(
        "--policy", help="missing (default), all, or redrive (failed ticks from their failed state)"
    ),
]


@backfill_app.command("plan")
@global_options
@one_line_errors
def backfill_plan(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument()],
    schedule: Schedule,
    start: Start,
    stop: Stop,
    timezone: Zone = "UTC",
    policy: PolicyOption = Policy.MISSING,
) -> None:
    """What a backfill would do for every tick. Nothing is started."""
    options: Options = ctx.obj
    plans = inspection.backfill_plan(
        options.target(),
        workflow=workflow,
        schedule=schedule,
        start=start,
        stop=stop,
        timezone=timezone,
        policy=policy,
    )
    totals = inspection.plan_totals(plans)

    def human() -> None:
        table = Table(title=f"backfill plan: {workflow} {schedule}", title_justify="left")
        for column in ("tick", "payload", "now", "would"):
            table.add_column(column)
        for plan in plans:
            table.add_row(plan.tick, plan.payload_id, plan.state or "-", plan.action)
        out.print(table)
        out.print("totals: " + ", ".join(f"{action} {count}" for action, count in sorted(totals.items())))

    emit(options, {"ticks": inspection.as_dicts(plans), "totals": totals}, human)


@backfill_app.command("run")
@global_options
@one_line_errors
def backfill_run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument()],
    schedule: Schedule,
    start: Start,
    stop: Stop,
    timezone: Zone = "UTC",
    policy: PolicyOption = Policy.MISSING,
    input_json: Annotated[
        str, typer.Option("--input", help="JSON input of every tick's run, or @file.json")
    ] = "{}",
    map_mode: Annotated[
        MapMode,
        typer.Option(
            "--map-mode",
            help="auto (inline up to --inline-limit ticks, distributed past it), inline or distributed",
        ),
    ] = MapMode.AUTO,
    inline_limit: Annotated[
        int | None,
        typer.Option(
            "--inline-limit", min=0, max=MAX_INLINE_LIMIT, help="Most ticks auto runs inline (default 1,000)"
        ),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            "--max-concurrency",
            min=1,
            max=10_000,
            help="Ticks at once (default 10 inline; distributed, 1,000 a page)",
        ),
    ] = None,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds to follow it")] = 3600,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Run the latest ticks first (order desc)")
    ] = False,
    page_size: Annotated[
        int | None,
        typer.Option(
            "--page-size",
            min=1,
            max=MAX_PAGE_SIZE,
            help="Ticks a page (one Map state; default 50 inline, 5,000)",
        ),
    ] = None,
    pages_per_execution: Annotated[
        int | None,
        typer.Option(
            "--pages-per-execution",
            min=1,
            help="Pages before it continues as a new execution (default 20 inline, 50)",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Its first execution's name, the backfill's id (default: random)"),
    ] = None,
) -> None:
    """Start the backfill state machine and follow it, across its continuations, to its summary.

    Ctrl-C detaches: the backfill goes on (`backfill status`, `backfill cancel`).
    """
    options: Options = ctx.obj
    target = options.target()
    run_input = json_input(input_json)
    count = inspection.tick_count(schedule=schedule, start=start, stop=stop, timezone=timezone)
    execution = Coordinator(target).backfill(
        workflow,
        schedule=schedule,
        start=start,
        stop=stop,
        timezone=timezone,
        policy=policy,
        input=run_input,
        map_mode=map_mode,
        inline_limit=inline_limit,
        max_concurrency=max_concurrency,
        newest_first=newest_first,
        page_size=page_size,
        pages_per_execution=pages_per_execution,
        name=name,
    )
    if not options.json:
        out.print(f"backfill of {count} ticks started: {execution}")
    tracker = backfills.Tracker.of(target, execution)
    try:
        backfill = follow_backfill(tracker, count, timeout, live=out.is_terminal and not options.json)
    except KeyboardInterrupt:
        detached(execution)
        raise typer.Exit(ExitCode.STILL_RUNNING) from None
    if backfill.running:
        fail(f"backfill still running after {timeout}s: {execution}", ExitCode.TIMED_OUT)
    result = backfill_result(target, backfill)
    emit(options, result, lambda: show_backfill(result))
    if backfill.status != "SUCCEEDED" or result["failed_count"]:
        raise typer.Exit(ExitCode.NOT_SUCCEEDED)


def follow_backfill(
    tracker: backfills.Tracker, count: int, timeout: int, *, live: bool
) -> backfills.Backfill:
    """Poll the backfill until its chain ends (or `timeout`), with a progress bar if `live`."""
    deadline = time.monotonic() + timeout
    with BackfillProgress(count) if live else _SilentProgress() as progress:
        while True:
            backfill = tracker.poll()
            progress.show(backfill)
            if not backfill.running or time.monotonic() >= deadline:
                return backfill
            time.sleep(1)


class BackfillProgress:
    """Ticks done of all, failed and already done, the rate and the time left."""

    def __init__(self, count: int) -> None:
        self.progress = Progress(
            TextColumn("backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}  already done {task.fields[already_done]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=out,
        )
        self.task = self.progress.add_task("backfill", total=count, failed=0, already_done=0, rate="")

    def __enter__(self) -> BackfillProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def show(self, backfill: backfills.Backfill) -> None:
        counts = backfill.counts
        self.progress.update(
            self.task, completed=backfill.done, failed=counts["failed"], already_done=counts["already_done"]
        )
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:.1f} ticks/s" if speed else "")


class _SilentProgress:
    def __enter__(self) -> _SilentProgress:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def show(self, backfill: backfills.Backfill) -> None:
        return None


def detached(backfill_id: str) -> None:
    name = execution_name_of(backfill_id)
    err.print(
        f"detached: backfill {name} goes on.\n"
        f"  follow it: coordinator backfill status {name}\n"
        f"  cancel it: coordinator backfill cancel {name}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def backfill_result(target: Target, backfill: backfills.Backfill) -> dict[str, Any]:
    """What `backfill run` and `backfill status` report: the backfill, its chain, its summary
    once it has one, and which ticks did not succeed once it has ended with some failed."""
    result = {"execution_arn": backfill.id, **backfill.as_dict()}
    if backfill.running or not backfill.counts["failed"]:
        return result | {"failed_ticks": [], "failed_count": 0}
    found = failed_ticks(target, backfill.request)
    gated = backfills.gated_outcomes(target, found.pop("not_succeeded"))
    result |= backfills.with_gated_outcomes(backfill.counts, gated)
    if backfill.summary is not None:
        result["summary"] = backfills.with_gated_outcomes(backfill.summary, gated)
    return result | found


BackfillId = Annotated[
    str, typer.Argument(help="The backfill's first execution: its name (as `backfill list` shows) or ARN")
]


@backfill_app.command("list")
@global_options
@one_line_errors
def backfill_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many of the newest")] = 20,
) -> None:
    """Running and recent backfills, newest first; a continuation chain is one backfill."""
    options: Options = ctx.obj
    rows = [backfill.as_dict() for backfill in backfills.recent(options.target(), limit)]

    def human() -> None:
        table = Table(title=f"backfills ({len(rows)})", title_justify="left")
        for column in ("name", "status", "workflow", "schedule", "span", "policy", "done", "failed", "chain"):
            table.add_column(column)
        for row in rows:
            done = row["succeeded"] + row["failed"] + row["already_done"]
            table.add_row(
                row["name"],
                shown_status(row["status"]),
                row["workflow"],
                f"{row['schedule']} {row['timezone']}",
                f"{row['start']} .. {row['stop']}",
                row["policy"],
                f"{done}/{row['ticks']}",
                str(row["failed"]),
                str(len(row["chain"])),
            )
        out.print(table)

    emit(options, rows, human)


def shown_status(status: str) -> str:
    """A stopped backfill says so: ABORTED is what Step Functions calls a cancel."""
    return "CANCELLED" if status == "ABORTED" else status


@backfill_app.command("status")
@global_options
@one_line_errors
def backfill_status(ctx: typer.Context, backfill_id: BackfillId) -> None:
    """Counts so far, the ticks that did not succeed (once it has ended), the chain followed."""
    options: Options = ctx.obj
    target = options.target()
    result = backfill_result(target, backfills.load(target, backfill_id))
    emit(options, result, lambda: show_backfill(result))


@backfill_app.command("cancel")
@global_options
@one_line_errors
def backfill_cancel(ctx: typer.Context, backfill_id: BackfillId) -> None:
    """Stop a running backfill: no further tick starts; the ticks already sent run to their end
    and are recorded (named as in flight); a continuation that started meanwhile is stopped too."""
    options: Options = ctx.obj
    target = options.target()
    before = backfills.load(target, backfill_id)
    backfill = backfills.cancel(target, backfill_id) if before.running else before
    result = backfill_result(target, backfill) | {
        "cancelled": before.running,
        "in_flight": backfill.in_flight[: backfills.IN_FLIGHT_SHOWN],
        "in_flight_count": len(backfill.in_flight),
        "not_started": max(backfill.ticks - backfill.done - len(backfill.in_flight), 0),
    }

    def human() -> None:
        if not result["cancelled"]:
            out.print(f"backfill {result['name']} had already ended: {shown_status(result['status'])}")
        show_backfill(result)
        if result["cancelled"]:
            out.print(f"not started: {result['not_started']}")
            out.print(f"in flight, running to their end and recorded: {result['in_flight_count']}")
            for tick in result["in_flight"]:
                state = tick["state"] or "queued"
                out.print(f"  {tick['payload_id']}  {state}", markup=False, highlight=False)

    emit(options, result, human)


FAILED_TICKS_SHOWN = 20


def failed_ticks(target: Target, request: dict[str, Any]) -> dict[str, Any]:
    """Which ticks of an ended backfill did not succeed, read from their payloads' rows (the
    summary only counts them): at most FAILED_TICKS_SHOWN of them, and how many in all."""
    plans = inspection.backfill_plan(
        target,
        workflow=request["workflow"],
        schedule=request["schedule"],
        start=request["start"],
        stop=request["stop"],
        timezone=request.get("timezone", "UTC"),
        policy=Policy(request.get("policy", Policy.MISSING)),
    )
    failed = [
        {"tick": plan.tick, "payload_id": plan.payload_id, "state": plan.state}
        for plan in plans
        if plan.state != State.SUCCEEDED
    ]
    return {
        "failed_ticks": failed[:FAILED_TICKS_SHOWN],
        "failed_count": len(failed),
        "not_succeeded": [tick["payload_id"] for tick in failed],
    }


def show_backfill(result: dict[str, Any]) -> None:
    counts = result.get("summary") or {name: result.get(name) for name in ("ticks", *backfills.COUNTED)}
    key_values(f"backfill {shown_status(result['status'])}", counts)
    if len(result.get("chain") or []) > 1:
        out.print(f"chain of {len(result['chain'])} executions, the last {result['chain'][-1]}")
    if not result["failed_count"]:
        return
    out.print(f"{result['failed_count']} ticks did not succeed:")
    for tick in result["failed_ticks"]:
        out.print(
            f"  {tick['payload_id']}  {tick['state'] or 'never started'}", markup=False, highlight=False
        )
    if (more := result["failed_count"] - len(result["failed_ticks"])) > 0:
        out.print(f"  and {more} more")
