"""coordinator: is it done, who waits on it, what is stuck.

Every command takes --json. Errors are one line on stderr with a distinct exit code:
2 bad input, 3 unknown id, 4 unreachable endpoint, 5 missing stack, 6 not succeeded,
7 timed out.
"""

from __future__ import annotations

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
from rich.console import Console
from rich.table import Table

from coordinator.errors import InvalidMessage
from coordinator.schedule import RangeRequestError
from coordinator.states import FINAL
from coordinator_tools import inspection
from coordinator_tools.target import ExitCode, Target, TargetError, resolve

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
backfill_app = typer.Typer(help="Plan or run a backfill of a schedule's ticks.", no_args_is_help=True)
app.add_typer(backfill_app, name="backfill")
out = Console()
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


@app.callback()
def main_options(
    ctx: typer.Context,
    stack_name: Annotated[
        str | None, typer.Option("--stack-name", envvar="COORDINATOR_STACK", help="Deployed stack")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="AWS endpoint (the offline stack's)")
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="The offline stack started by `local up`")] = False,
    region: Annotated[str | None, typer.Option("--region")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    ctx.obj = Options(stack_name, endpoint_url, local, region, as_json)


F = TypeVar("F", bound=Callable[..., Any])


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


def emit(options: Options, data: Any, human: Callable[[], None]) -> None:
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
    text = Path(input_json[1:]).read_text() if input_json.startswith("@") else input_json
    try:
        payload_input = json.loads(text)
    except ValueError as error:
        raise ValueError(f"--input is not JSON: {error}") from error
    body: dict[str, Any] = {"workflow": workflow, "input": payload_input, "replace": replace}
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
                return status
            time.sleep(0.5)
    fail(f"{payload_id} not final after {timeout}s (last state {last})", ExitCode.TIMED_OUT)
    return {}


class _Silent:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


@app.command()
@one_line_errors
def status(ctx: typer.Context, payload_id: Annotated[str, typer.Argument(help="Payload id")]) -> None:
    """State, attempts, current execution and its console link, timestamps, error."""
    options: Options = ctx.obj
    found = inspection.payload_status(options.target(), payload_id)
    emit(options, found, lambda: key_values(payload_id, found))


@app.command()
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
@one_line_errors
def rerun(ctx: typer.Context, payload_id: Annotated[str, typer.Argument(help="Payload id")]) -> None:
    """Run a payload again as a new attempt (`replace`), with the input it had."""
    options: Options = ctx.obj
    target = options.target()
    body = inspection.rerun_message(target, payload_id)
    message_id = inspection.send(target, body)
    emit(
        options,
        {"payload_id": payload_id, "message_id": message_id, "replace": True},
        lambda: out.print(f"re-run of {payload_id} sent as message {message_id}"),
    )


@app.command()
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
    emit(
        options,
        {**found.as_dict(), output_format: text},
        lambda: out.print(text, markup=False, highlight=False),
    )


@app.command()
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
@one_line_errors
def backfill_run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument()],
    schedule: Schedule,
    start: Start,
    stop: Stop,
    timezone: Zone = "UTC",
    policy: Policy = "missing",
    input_json: Annotated[str, typer.Option("--input", help="JSON input of every tick's run")] = "{}",
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, max=1000)] = 10,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds to follow it")] = 3600,
    newest_first: Annotated[
        bool, typer.Option("--newest-first", help="Run the latest ticks first (order desc)")
    ] = False,
) -> None:
    """Start the backfill state machine and follow it until its summary."""
    options: Options = ctx.obj
    target = options.target()
    request = {
        "workflow": workflow,
        "input": json.loads(input_json),
        "start": start,
        "stop": stop,
        "schedule": schedule,
        "timezone": timezone,
        "policy": _policy(policy),
        "max_concurrency": max_concurrency,
        "order": "desc" if newest_first else "asc",
    }
    count = inspection.tick_count(schedule=schedule, start=start, stop=stop, timezone=timezone)
    sfn = target.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=target.output("BackfillStateMachineArn"),
        name=f"backfill-{workflow}-{uuid.uuid4().hex[:12]}",
        input=json.dumps(request),
    )["executionArn"]
    if not options.json:
        out.print(f"backfill of {count} ticks started: {execution}")
    deadline = time.monotonic() + timeout
    described: dict[str, Any] = {}
    with out.status("backfilling…") if not options.json else _Silent():
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            time.sleep(1)
    if described.get("status") == "RUNNING":
        fail(f"backfill still running after {timeout}s: {execution}", ExitCode.TIMED_OUT)
    summary = json.loads(described.get("output") or "null")
    result = {"execution_arn": execution, "status": described["status"], "summary": summary}
    emit(options, result, lambda: key_values(f"backfill {described['status']}", summary or {}))
    if described["status"] != "SUCCEEDED":
        raise typer.Exit(ExitCode.NOT_SUCCEEDED)


def main() -> None:
    app()
