"""The payload commands: submit, status, waiters, rerun, graph, stuck."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from coordinator.states import State
from coordinator_tools import inspection, sending
from coordinator_tools.cli.common import (
    Options,
    Silent,
    app,
    emit,
    fail,
    global_options,
    json_input,
    key_values,
    one_line_errors,
    out,
)
from coordinator_tools.client import Coordinator, StillRunning, TimedOut
from coordinator_tools.target import ExitCode, Target


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
    identity = sending.submission(body)
    target = options.target()
    sending.check_submission(target, body)
    if not options.json:
        out.print(f"payload id: [bold]{identity}[/bold]")
        out.file.flush()
    message_id = sending.send(target, body)
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
    """Wait for the payload's final state, showing it change."""

    def show(state: str) -> None:
        out.print(f"{time.strftime('%H:%M:%S')}  {state}")

    with out.status("waiting for the payload…", spinner="dots") if not quiet else Silent():
        try:
            status = Coordinator(target).wait(payload_id, timeout, on_state=None if quiet else show)
        except TimedOut as error:
            fail(str(error), ExitCode.TIMED_OUT)
    if not quiet:
        why_not_succeeded(status)
    return status


def why_not_succeeded(status: dict[str, Any]) -> None:
    """The error and cause of a payload that ended other than SUCCEEDED (its row keeps them)."""
    if status["state"] == State.SUCCEEDED:
        return
    for name in ("error", "cause"):
        if status.get(name):
            out.print(f"{name}: {status[name]}", markup=False, highlight=False)


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
def rerun(
    ctx: typer.Context,
    payload_id: Annotated[str, typer.Argument(help="Payload id")],
    redrive: Annotated[
        bool, typer.Option("--redrive", help="Redrive its failed execution from the failed state")
    ] = False,
) -> None:
    """Run a payload again as a new attempt (`replace`), with the input it had; or, with
    --redrive, redrive its failed execution: same ARN, only the states that did not succeed.

    Only once it has ended: process drops a `replace` for a CLAIMED or PROCESSING payload, so
    none is sent then and the exit code (8) says it is still running. A payload that cannot be
    redriven (it succeeded, never ran, or Step Functions says why not) is exit 2 with the reason.
    """
    options: Options = ctx.obj
    try:
        message_id = Coordinator(options.target()).rerun(payload_id, redrive=redrive)
    except StillRunning as error:
        fail(str(error), ExitCode.STILL_RUNNING)
    kind = "redrive" if redrive else "re-run"
    emit(
        options,
        {
            "payload_id": payload_id,
            "message_id": message_id,
            "replace": not redrive,
            "rerun": "redrive" if redrive else "new_attempt",
        },
        lambda: out.print(f"{kind} of {payload_id} sent as message {message_id}"),
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
    gated_seconds: Annotated[int, typer.Option("--gated-for", help="GATED since its claim (s)")] = 3600,
) -> None:
    """Payloads CLAIMED or PROCESSING, waiters WAITING, and gates GATED, past a threshold."""
    options: Options = ctx.obj
    target = options.target()
    rows = inspection.stuck(target, claim_seconds=claim_seconds, waiting_seconds=waiting_seconds)
    rows = sorted(
        rows + inspection.stuck_gates(target, gated_seconds=gated_seconds), key=lambda row: row["since"]
    )

    def human() -> None:
        table = Table(title=f"stuck ({len(rows)})", title_justify="left")
        for column in ("kind", "payload", "state", "since", "age (s)"):
            table.add_column(column)
        for row in rows:
            state = row["state"]
            if row["kind"] == "gate":  # "gated: 1 of 3 upstream done; missing up-a, up-b"
                state = f"gated: {row['gated']}; missing {', '.join(row['missing'])}"
            table.add_row(row["kind"], row["payload_id"], state, row["since"], str(row["age_seconds"]))
        out.print(table)

    emit(options, rows, human)
