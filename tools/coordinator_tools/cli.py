"""coordinator: is it done, who waits on it, what is stuck.

Every command takes --json, and the global options before or after the command. Errors are
one line on stderr with a distinct exit code: 2 bad input, 3 unknown id, 4 unreachable
endpoint, 5 missing stack, 6 not succeeded (a payload, or any tick of a backfill), 7 timed
out, 8 still running (a re-run of a CLAIMED or PROCESSING payload, which would be dropped).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from coordinator.errors import InvalidMessage
from coordinator.schedule import RangeRequestError
from coordinator.states import ACTIVE, FINAL, State
from coordinator_tools import backfills, inspection
from coordinator_tools.target import ExitCode, Target, TargetError, resolve

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
backfill_app = typer.Typer(help="Plan or run a backfill of a schedule's ticks.", no_args_is_help=True)
app.add_typer(backfill_app, name="backfill")


class Stdout(Console):
    """Outside a terminal, as wide as its widest line: an ARN or a console link reaches a pipe
    or a file whole, where rich would fold it or cut it with "…" at 80 columns."""

    UNBOUNDED = 100_000

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(self.UNBOUNDED, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = Stdout()
err = Console(stderr=True)


@dataclass
class Options:
    stack_name: str | None
    endpoint_url: str | None
    local: bool
    region: str | None
    json: bool

    def target(self) -> Target:
        return resolve(
            stack_name=self.stack_name, endpoint_url=self.endpoint_url, local=self.local, region=self.region
        )


STACK_NAME_HELP = "Deployed stack"
ENDPOINT_URL_HELP = "AWS endpoint (the offline stack's)"
LOCAL_HELP = "The offline stack started by `local up`"
JSON_HELP = "Machine-readable output"


@app.callback()
def main_options(
    ctx: typer.Context,
    stack_name: Annotated[
        str | None, typer.Option("--stack-name", envvar="COORDINATOR_STACK", help=STACK_NAME_HELP)
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help=ENDPOINT_URL_HELP)] = None,
    local: Annotated[bool, typer.Option("--local", help=LOCAL_HELP)] = False,
    region: Annotated[str | None, typer.Option("--region")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    ctx.obj = Options(stack_name, endpoint_url, local, region, as_json)


F = TypeVar("F", bound=Callable[..., Any])

GLOBAL_PANEL = "Global options (also accepted before the command)"
# The callback's options again, on every command; no envvar here, so COORDINATOR_STACK cannot
# override a --stack-name given before the command.
GLOBAL_OPTIONS = [
    inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[kind, typer.Option(flag, help=help_text, rich_help_panel=GLOBAL_PANEL)],
        default=default,
    )
    for name, kind, flag, help_text, default in [
        ("stack_name", str | None, "--stack-name", STACK_NAME_HELP, None),
        ("endpoint_url", str | None, "--endpoint-url", ENDPOINT_URL_HELP, None),
        ("local", bool, "--local", LOCAL_HELP, False),
        ("region", str | None, "--region", None, None),
        ("json", bool, "--json", JSON_HELP, False),
    ]
]


def global_options(command: F) -> F:
    """Accept the global options after the command too (`coordinator status X --json`).

    Typer reads a command's options from its signature: the wrapper's is the command's plus
    GLOBAL_OPTIONS, so `--help` lists them and click parses them; whichever of them is given
    here replaces the callback's value in the command's `Options`.
    """

    @wraps(command)
    def run(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        given = {option.name: kwargs.pop(option.name) for option in GLOBAL_OPTIONS}
        ctx.obj = dataclasses.replace(
            ctx.obj, **{name: value for name, value in given.items() if value not in (None, False)}
        )
        return command(ctx, *args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *GLOBAL_OPTIONS]
    )
    return run  # type: ignore[return-value]


def one_line_errors(command: F) -> F:
    """Turn every expected failure into one line on stderr and its exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TargetError as error:
            fail(str(error), error.exit_code)
        except inspection.NotFound as error:
            fail(str(error), ExitCode.NOT_FOUND)
        except InvalidMessage as error:
            fail(error.reason, ExitCode.USAGE)
        except (RangeRequestError, ValueError) as error:
            fail(str(error), ExitCode.USAGE)
        except EndpointConnectionError as error:
            fail(f"cannot reach the endpoint: {error}", ExitCode.UNREACHABLE)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {
                "ResourceNotFoundException",
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
            }:
                fail(f"the stack's resources are missing: {code}", ExitCode.MISSING_STACK)
            fail(
                f"AWS refused: {code}: {error.response.get('Error', {}).get('Message', '')}",
                ExitCode.UNREACHABLE,
            )
        except BotoCoreError as error:
            fail(f"cannot reach the endpoint: {error}", ExitCode.UNREACHABLE)

    return run  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit(options: Options, data: Any, human: Callable[[], object]) -> None:
    if options.json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        human()


def key_values(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in values.items():
        if value is not None:
            table.add_row(key, str(value))
    out.print(table)


@app.command()
@global_options
@one_line_errors
def submit(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="Workflow name (state machine <prefix><workflow>)")],
    input_json: Annotated[str, typer.Option("--input", help="JSON object, or @file.json")] = "{}",
    payload_id: Annotated[str | None, typer.Option("--id", help="Explicit payload id")] = None,
    schedule_time: Annotated[
        str | None, typer.Option("--schedule-time", help="ISO instant of the run")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Re-run even if it already ended")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to a final state")] = False,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds --wait waits")] = 600,
) -> None:
    """Send a payload to the process queue; its id is printed before it is sent."""
    options: Options = ctx.obj
    body: dict[str, Any] = {"workflow": workflow, "input": json_input(input_json), "replace": replace}
    if payload_id:
        body["id"] = payload_id
    if schedule_time:
        body["scheduleTime"] = schedule_time
    identity = inspection.submission(body)
    target = options.target()
    inspection.check_submission(target, body)
    if not options.json:
        out.print(f"payload id: [bold]{identity}[/bold]")
        out.file.flush()
    message_id = inspection.send(target, body)
    result: dict[str, Any] = {"payload_id": identity, "message_id": message_id}
    if not options.json:
        out.print(f"sent as message {message_id}")
    if wait:
        result["status"] = follow(target, identity, timeout, quiet=options.json)
    if options.json:
        emit(options, result, lambda: None)
    if wait and result["status"]["state"] != "SUCCEEDED":
        raise typer.Exit(ExitCode.NOT_SUCCEEDED)


def json_input(value: str) -> Any:
    """An --input: JSON text, or @path for a file's. One that cannot be read or is not JSON is
    bad input (a ValueError, one line and exit 2), whatever the reason: missing, a directory,
    unreadable, not UTF-8."""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"--input {value}: cannot read it: {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise ValueError(f"--input {value}: not UTF-8 text: {error.reason}") from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"--input is not JSON: {error}") from error


def follow(target: Target, payload_id: str, timeout: int, *, quiet: bool) -> dict[str, Any]:
    """Poll the payload's state until it is final, showing it change."""
    deadline = time.monotonic() + timeout
    last = None
    with out.status("waiting for the payload…", spinner="dots") if not quiet else _Silent():
        while time.monotonic() < deadline:
            try:
                status = inspection.payload_status(target, payload_id)
            except inspection.NotFound:
                status = {"state": "QUEUED"}
            if status["state"] != last and not quiet:
                out.print(f"{time.strftime('%H:%M:%S')}  {status['state']}")
                last = status["state"]
            if status["state"] in FINAL:
                if not quiet:
                    why_not_succeeded(status)
                return status
            time.sleep(0.5)
    fail(f"{payload_id} not final after {timeout}s (last state {last})", ExitCode.TIMED_OUT)
    return {}


def why_not_succeeded(status: dict[str, Any]) -> None:
    """The error and cause of a payload that ended other than SUCCEEDED (its row keeps them)."""
    if status["state"] == State.SUCCEEDED:
        return
    for name in ("error", "cause"):
        if status.get(name):
            out.print(f"{name}: {status[name]}", markup=False, highlight=False)


class _Silent:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


@app.command()
@global_options
@one_line_errors
def status(ctx: typer.Context, payload_id: Annotated[str, typer.Argument(help="Payload id")]) -> None:
    """State, attempts, current execution and its console link, timestamps, error."""
    options: Options = ctx.obj
    found = inspection.payload_status(options.target(), payload_id)
    emit(options, found, lambda: key_values(payload_id, found))


@app.command()
@global_options
@one_line_errors
def waiters(ctx: typer.Context, payload_id: Annotated[str, typer.Argument(help="Payload id")]) -> None:
    """Who waits on a payload, since when, and with what outcome."""
    options: Options = ctx.obj
    target = options.target()
    inspection.payload_status(target, payload_id)
    rows = inspection.waiters(target, payload_id)

    def human() -> None:
        table = Table(title=f"waiters of {payload_id}", title_justify="left")
        for column in ("waiter", "since", "state", "outcome", "token"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["waiter_payload_id"] or row["waiter"] or "-",
                row["since"] or "-",
                row["waiter_state"],
                row["outcome"] or "-",
                row["token_sha256"],
            )
        out.print(table)

    emit(options, rows, human)


@app.command()
@global_options
@one_line_errors
def rerun(ctx: typer.Context, payload_id: Annotated[str, typer.Argument(help="Payload id")]) -> None:
    """Run a payload again as a new attempt (`replace`), with the input it had.

    Only once it has ended: process drops a `replace` for a CLAIMED or PROCESSING payload, so
    none is sent then and the exit code (8) says it is still running.
    """
    options: Options = ctx.obj
    target = options.target()
    current = inspection.payload_status(target, payload_id)
    if current["state"] in ACTIVE:
        fail(
            f"{payload_id} is still {current['state']} (attempt {current['attempt']}): nothing sent, "
            "a re-run is dropped until it ends",
            ExitCode.STILL_RUNNING,
        )
    body = inspection.rerun_message(target, payload_id)
    message_id = inspection.send(target, body)
    emit(
        options,
        {"payload_id": payload_id, "message_id": message_id, "replace": True},
        lambda: out.print(f"re-run of {payload_id} sent as message {message_id}"),
    )


@app.command()
@global_options
@one_line_errors
def graph(
    ctx: typer.Context,
    payload_id: Annotated[str, typer.Argument(help="Payload id")],
    output_format: Annotated[str, typer.Option("--format", help="mermaid or dot")] = "mermaid",
    depth: Annotated[int, typer.Option("--depth", min=1, max=10)] = 2,
) -> None:
    """The dependency graph around a payload (edges point from a dependency to its waiter)."""
    options: Options = ctx.obj
    if output_format not in {"mermaid", "dot"}:
        raise ValueError("--format is mermaid or dot")
    found = inspection.dependency_graph(options.target(), payload_id, depth)
    text = found.mermaid() if output_format == "mermaid" else found.dot()
    # Written as is, never through rich, which would wrap a long label at the console's width.
    emit(options, {**found.as_dict(), output_format: text}, lambda: sys.stdout.write(text + "\n"))


@app.command()
@global_options
@one_line_errors
def stuck(
    ctx: typer.Context,
    claim_seconds: Annotated[
        int, typer.Option("--claimed-for", help="CLAIMED/PROCESSING older than (s)")
    ] = 3600,
    waiting_seconds: Annotated[int, typer.Option("--waiting-for", help="WAITING older than (s)")] = 3600,
) -> None:
    """Payloads CLAIMED or PROCESSING, and waiters WAITING, past a threshold."""
    options: Options = ctx.obj
    rows = inspection.stuck(options.target(), claim_seconds=claim_seconds, waiting_seconds=waiting_seconds)

    def human() -> None:
        table = Table(title=f"stuck ({len(rows)})", title_justify="left")
        for column in ("kind", "payload", "state", "since", "age (s)"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["kind"], row["payload_id"], row["state"], row["since"], str(row["age_seconds"]))
        out.print(table)

    emit(options, rows, human)


Schedule = Annotated[str, typer.Option("--schedule", help="cron(...), rate(...) or five-field cron")]
Start = Annotated[str, typer.Option("--start", help="First instant (inclusive)")]
Stop = Annotated[str, typer.Option("--stop", help="Last instant (exclusive)")]
Zone = Annotated[str, typer.Option("--timezone", help="IANA timezone of the schedule")]
Policy = Annotated[str, typer.Option("--policy", help="missing (default) or all")]


def _policy(value: str) -> str:
    if value not in {"missing", "all"}:
        raise ValueError("--policy is missing or all")
    return value


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
    policy: Policy = "missing",
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
        policy=_policy(policy),
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
    policy: Policy = "missing",
    input_json: Annotated[
        str, typer.Option("--input", help="JSON input of every tick's run, or @file.json")
    ] = "{}",
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, max=1000)] = 10,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds to follow it")] = 3600,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Run the latest ticks first (order desc)")
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=1000, help="Ticks a page (one Map state)")
    ] = 50,
    pages_per_execution: Annotated[
        int,
        typer.Option("--pages-per-execution", min=1, help="Pages before it continues as a new execution"),
    ] = 20,
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
    request = {
        "workflow": workflow,
        "input": json_input(input_json),
        "start": start,
        "stop": stop,
        "schedule": schedule,
        "timezone": timezone,
        "policy": _policy(policy),
        "max_concurrency": max_concurrency,
        "order": "desc" if newest_first else "asc",
        "page_size": page_size,
        "pages_per_execution": pages_per_execution,
    }
    count = inspection.tick_count(schedule=schedule, start=start, stop=stop, timezone=timezone)
    execution = backfills.start(target, request, name or f"backfill-{workflow}-{uuid.uuid4().hex[:12]}")
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
        self.progress.update(self.task, completed=backfill.done, **backfill.counts)
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:.1f} ticks/s" if speed else "")


class _SilentProgress(_Silent):
    def __enter__(self) -> _SilentProgress:
        return self

    def show(self, backfill: backfills.Backfill) -> None:
        return None


def detached(backfill_id: str) -> None:
    name = backfill_id.rsplit(":", 1)[-1]
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
    return result | failed_ticks(target, backfill.request)


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
        policy=request.get("policy", "missing"),
    )
    failed = [
        {"tick": plan.tick, "payload_id": plan.payload_id, "state": plan.state}
        for plan in plans
        if plan.state != State.SUCCEEDED
    ]
    return {"failed_ticks": failed[:FAILED_TICKS_SHOWN], "failed_count": len(failed)}


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


def main() -> None:
    app()
