"""The coordinator CLI against the offline stack: the commands that need the whole system
running (a payload followed to its final state, a backfill run to its summary)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from coordinator_tools.cli import app
from coordinator_tools.local import OfflineStack
from coordinator_tools.local.runtime import FunctionCode
from coordinator_tools.target import ExitCode, write_local_state
from tests.e2e.conftest import StackCliRunner

HANG_GUARD = 60.0
# A handler of this module's own, run by the stack's runtime: it prints once `LATE_PRINT` says so.
HANDLER_RUNNING = threading.Event()
LATE_PRINT = threading.Event()
LATE_LINE = '{"_aws": "a late metrics line"}'


def late_printing_handler(event: Any, context: Any) -> dict[str, str]:
    HANDLER_RUNNING.set()
    LATE_PRINT.wait(HANG_GUARD)
    print(LATE_LINE)  # noqa: T201 - what Powertools does with a metrics line
    return {}


@pytest.fixture
def cli(stack: OfflineStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    state_file = write_local_state(
        stack.endpoint_url, stack.region, dict(stack.outputs), tmp_path / "local.json"
    )
    monkeypatch.setenv("COORDINATOR_LOCAL_STATE", str(state_file))
    runner = StackCliRunner(stack.runtime)

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["--local", "--json", *args])

    return invoke


def test_submit_wait_follows_a_payload_to_success(cli: Any) -> None:
    result = cli("submit", "example-target", "--id", "cli-ok", "--wait", "--timeout", "60")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["payload_id"] == "cli-ok"
    assert document["status"]["state"] == "SUCCEEDED"


def test_submit_wait_of_a_failing_payload_exits_not_succeeded(cli: Any) -> None:
    result = cli(
        "submit",
        "example-target",
        "--id",
        "cli-fails",
        "--input",
        '{"fail": true}',
        "--wait",
        "--timeout",
        "60",
    )

    assert result.exit_code == ExitCode.NOT_SUCCEEDED
    assert json.loads(result.output)["status"]["state"] == "FAILED"


def test_rerun_runs_a_succeeded_payload_again_as_attempt_two(cli: Any) -> None:
    assert cli("submit", "example-target", "--id", "cli-again", "--wait", "--timeout", "60").exit_code == 0

    assert cli("rerun", "cli-again").exit_code == 0

    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = json.loads(cli("status", "cli-again").output)
        if status["attempt"] == 2 and status["state"] == "SUCCEEDED":
            break
        time.sleep(0.2)
    assert (status["attempt"], status["state"]) == (2, "SUCCEEDED")


def test_backfill_run_reports_its_summary_and_a_second_run_starts_nothing(cli: Any) -> None:
    window = [
        "--schedule",
        "cron(0 1 * * ? *)",
        "--start",
        "2023-03-01T00:00:00Z",
        "--stop",
        "2023-03-03T00:00:00Z",
        "--timeout",
        "120",
    ]

    first = cli("backfill", "run", "example-target", *window)
    plan = cli("backfill", "plan", "example-target", *window[:-2])
    second = cli("backfill", "run", "example-target", *window)

    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["summary"] == {
        "ticks": 2,
        "succeeded": 2,
        "failed": 0,
        "already_done": 0,
        "map_mode": "inline",
    }
    assert (json.loads(first.output)["failed_ticks"], json.loads(first.output)["failed_count"]) == ([], 0)
    assert json.loads(plan.output)["totals"] == {"already succeeded": 2}
    assert json.loads(second.output)["summary"] == {
        "ticks": 2,
        "succeeded": 0,
        "failed": 0,
        "already_done": 2,
        "map_mode": "inline",
    }


def test_backfill_run_newest_first_runs_the_latest_tick_first(cli: Any, stack: OfflineStack) -> None:
    ticks = ["2023-04-01T01:00:00Z", "2023-04-02T01:00:00Z", "2023-04-03T01:00:00Z"]
    window = ["--start", "2023-04-01T00:00:00Z", "--stop", "2023-04-04T00:00:00Z"]

    result = cli(
        "backfill",
        "run",
        "example-target",
        "--schedule",
        "cron(0 1 * * ? *)",
        *window,
        "--max-concurrency",
        "1",
        "--newest-first",
        "--timeout",
        "120",
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"]["succeeded"] == 3
    # One tick at a time, so each is claimed only once the one before it has ended.
    claimed = [stack.payload_state(f"example-target/{tick}")["claimed_at"] for tick in ticks]
    assert claimed == sorted(claimed, reverse=True)


@pytest.mark.parametrize(
    ("workflow", "payload_id", "state", "error", "cause"),
    [
        (
            "example-target",
            "cli-says-why",
            "FAILED",
            "error: ExampleFailure",
            "cause: the input asked this example workflow to fail",
        ),
        ("no-such-workflow", "cli-invalid", "INVALID", "error: StateMachineDoesNotExist", "cause: "),
    ],
)
def test_submit_wait_of_a_payload_that_did_not_succeed_prints_its_error_and_cause(
    cli: Any, stack: OfflineStack, workflow: str, payload_id: str, state: str, error: str, cause: str
) -> None:
    result = StackCliRunner(stack.runtime).invoke(
        app,
        ["--local", "submit", workflow, "--id", payload_id, "--input", '{"fail": true}', "--wait"],
    )

    assert result.exit_code == ExitCode.NOT_SUCCEEDED, result.output
    lines = result.output.splitlines()
    assert lines[-3].endswith(f"  {state}")
    assert lines[-2] == error
    assert lines[-1].startswith(cause)


def test_backfill_run_with_failed_ticks_exits_not_succeeded_and_names_them(cli: Any) -> None:
    window = ["--start", "2023-05-01T00:00:00Z", "--stop", "2023-05-03T00:00:00Z"]

    result = cli(
        "backfill",
        "run",
        "example-target",
        "--schedule",
        "cron(0 1 * * ? *)",
        *window,
        "--input",
        '{"fail": true}',
        "--timeout",
        "120",
    )

    assert result.exit_code == ExitCode.NOT_SUCCEEDED, result.output
    document = json.loads(result.output)
    assert (document["status"], document["summary"]["failed"]) == ("SUCCEEDED", 2)
    assert document["failed_count"] == 2
    assert document["failed_ticks"] == [
        {"tick": tick, "payload_id": f"example-target/{tick}", "state": "FAILED"}
        for tick in ("2023-05-01T01:00:00Z", "2023-05-02T01:00:00Z")
    ]


def test_backfill_run_follows_the_continuations_to_the_final_summary(cli: Any) -> None:
    # 5 hourly ticks, 2 a page, 1 page an execution: a chain of 3 executions.
    result = cli(
        "backfill",
        "run",
        "example-target",
        "--schedule",
        "0 * * * *",
        "--start",
        "2023-06-01T00:00:00Z",
        "--stop",
        "2023-06-01T05:00:00Z",
        "--page-size",
        "2",
        "--pages-per-execution",
        "1",
        "--name",
        "bf-continued",
        "--timeout",
        "120",
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["name"] == "bf-continued"
    assert document["summary"] == {
        "ticks": 5,
        "succeeded": 5,
        "failed": 0,
        "already_done": 0,
        "map_mode": "inline",
    }
    assert len(document["chain"]) == 3
    assert document["chain"][0] == document["id"] == document["execution_arn"]
    assert (document["status"], document["failed_count"]) == ("SUCCEEDED", 0)


def document_of(result: Any) -> Any:
    """The CLI's --json document: the in-process Lambdas of the stack print their metrics
    lines to the same stdout while a command runs, each one line; the document is indented."""
    lines = result.output.splitlines()
    start = next(index for index, line in enumerate(lines) if line in ("{", "["))
    end = next(index for index in range(len(lines) - 1, -1, -1) if lines[index] in ("}", "]"))
    return json.loads("\n".join(lines[start : end + 1]))


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.1)
    return found


def slow_backfill(stack: OfflineStack, name: str, start: str, stop: str, **options: Any) -> str:
    """A backfill of hourly example-target ticks that each wait, started as `backfill run` does."""
    request = {
        "workflow": "example-target",
        "input": {"wait_seconds": 3},
        "start": start,
        "stop": stop,
        "schedule": "0 * * * *",
        **options,
    }
    return stack.start_execution(stack.outputs["BackfillStateMachineArn"], request, name=name)


def test_backfill_cancel_stops_new_ticks_lets_the_sent_ones_finish_and_status_and_list_say_so(
    cli: Any, stack: OfflineStack
) -> None:
    ticks = [f"2023-07-01T0{hour}:00:00Z" for hour in range(6)]
    first = slow_backfill(
        stack, "bf-cancel", "2023-07-01T00:00:00Z", "2023-07-01T06:00:00Z", max_concurrency=2
    )
    wait_until(
        lambda: all(stack.payload_state(f"example-target/{t}") for t in ticks[:2]), "two ticks claimed"
    )
    running = document_of(cli("backfill", "status", "bf-cancel"))

    cancelled = cli("backfill", "cancel", "bf-cancel")

    assert running["status"] == "RUNNING"
    assert cancelled.exit_code == 0, cancelled.output
    document = document_of(cancelled)
    assert (document["cancelled"], document["status"], document["chain"]) == (True, "ABORTED", [first])
    assert [tick["tick"] for tick in document["in_flight"]] == ticks[:2]
    assert (document["in_flight_count"], document["not_started"]) == (2, 4)
    # The ticks already sent run to their end in the coordinator, recorded in the table.
    assert [stack.wait_for_payload(f"example-target/{t}")["state"] for t in ticks[:2]] == ["SUCCEEDED"] * 2
    assert [stack.payload_state(f"example-target/{t}") for t in ticks[2:]] == [None] * 4
    status = document_of(cli("backfill", "status", first))
    assert (status["id"], status["status"], status["workflow"]) == (first, "ABORTED", "example-target")
    listed = {row["id"]: row for row in document_of(cli("backfill", "list"))}
    assert (listed[first]["status"], listed[first]["ticks"], listed[first]["chain"]) == (
        "ABORTED",
        6,
        [first],
    )
    again = document_of(cli("backfill", "cancel", "bf-cancel"))
    assert (again["cancelled"], again["status"]) == (False, "ABORTED")


def test_backfill_cancel_of_a_continued_backfill_stops_the_newest_execution_of_its_chain(
    cli: Any, stack: OfflineStack
) -> None:
    first = slow_backfill(
        stack,
        "bf-chain",
        "2023-07-02T00:00:00Z",
        "2023-07-02T06:00:00Z",
        page_size=1,
        pages_per_execution=1,
        input={"wait_seconds": 1},
    )
    wait_until(
        lambda: len(document_of(cli("backfill", "status", "bf-chain"))["chain"]) >= 3,
        "continued twice",
    )

    document = document_of(cli("backfill", "cancel", "bf-chain"))

    assert (document["cancelled"], document["status"], document["id"]) == (True, "ABORTED", first)
    assert len(document["chain"]) >= 3
    described = [
        stack.client("stepfunctions").describe_execution(executionArn=arn)["status"]
        for arn in document["chain"]
    ]
    assert described == ["SUCCEEDED"] * (len(described) - 1) + ["ABORTED"]
    # The totals the stopped execution carried in count the earlier executions' ticks.
    assert document["succeeded"] >= len(described) - 1
    listed = {row["id"]: row for row in document_of(cli("backfill", "list"))}
    assert listed[first]["chain"] == document["chain"]
    assert all(arn not in listed for arn in document["chain"][1:])


def test_schedule_show_finds_the_stacks_live_schedule_and_the_state_of_its_ticks(cli: Any) -> None:
    """The template's ExampleSchedule, provisioned, is found by the workflow its input names."""
    submitted = cli(
        "submit",
        "example-target",
        "--schedule-time",
        "2022-02-15T01:00:00Z",
        "--wait",
        "--timeout",
        "60",
    )
    assert submitted.exit_code == 0, submitted.output

    result = cli(
        "schedule", "show", "example-target", "--now", "2022-02-15T01:30:00Z", "--next", "1", "--last", "2"
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schedule"]["expression"] == "cron(0 * * * ? *)"
    assert document["schedule"]["state"] == "DISABLED"
    assert document["next"] == ["2022-02-15T02:00:00Z"]
    assert [(t["tick"], t["state"]) for t in document["last"]] == [
        ("2022-02-15T01:00:00Z", "SUCCEEDED"),
        ("2022-02-15T00:00:00Z", "MISSING"),
    ]


def test_a_handler_printing_while_a_command_runs_writes_to_the_function_log_not_the_output(
    cli: Any, stack: OfflineStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The class behind a red CI on 473fa60: an invocation in flight as a command starts, whose
    print lands once the runner has swapped its capture in, must not end up in the command's
    output (here it prints either while the command waits to start or while it runs)."""
    stack.runtime.register(
        FunctionCode(
            name="late-printer",
            logical_id="LatePrinter",
            code_dir="tests/e2e/",
            handler="test_cli.late_printing_handler",
            timeout_seconds=60,
            memory_mb=128,
            arn="arn:aws:lambda:us-east-1:123456789012:function:late-printer",
        )
    )
    HANDLER_RUNNING.clear()
    LATE_PRINT.clear()
    in_flight = threading.Thread(target=stack.runtime.route, args=("late-printer", {}, {}))
    in_flight.start()
    assert HANDLER_RUNNING.wait(HANG_GUARD)
    # Let the handler print once the command is under way: as it waits for the stack to pause,
    # or (a runner that does not pause it) at its first API call.
    paused = stack.runtime.paused

    def pausing() -> Any:
        LATE_PRINT.set()
        return paused()

    make_api_call = BaseClient._make_api_call

    def api_call_after_the_print(client: BaseClient, *args: Any) -> Any:
        if threading.current_thread() is threading.main_thread() and not LATE_PRINT.is_set():
            LATE_PRINT.set()
            in_flight.join(HANG_GUARD)
        return make_api_call(client, *args)

    monkeypatch.setattr(stack.runtime, "paused", pausing)
    monkeypatch.setattr(BaseClient, "_make_api_call", api_call_after_the_print)
    try:
        result = cli("status", "never-submitted")
    finally:
        LATE_PRINT.set()
        in_flight.join(HANG_GUARD)

    assert LATE_LINE not in result.output
    function_log = stack.runtime.log_stream
    assert isinstance(function_log, io.StringIO)
    assert LATE_LINE in function_log.getvalue()
