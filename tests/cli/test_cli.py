"""The coordinator CLI against a coordinator on a moto server: what it prints and returns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coordinator.messages import parse_process_message
from coordinator.process import process_request
from coordinator.settle import apply_status
from coordinator.states import State
from coordinator_tools import backfills, inspection
from coordinator_tools import cli as cli_module
from coordinator_tools.cli import BackfillProgress, Options, app, failed_ticks, show_backfill
from coordinator_tools.cli.backfill import backfill_result
from coordinator_tools.kit.events import callback, request
from coordinator_tools.target import ExitCode, Target
from tests.conftest import REGION, TABLE


def started(offline: dict[str, Any], payload_id: str, **fields: Any) -> str:
    services = offline["services"]
    process_request(services, request(id=payload_id, **fields), request_id=f"m-{payload_id}")
    current = services.table.get_state(payload_id)
    assert current is not None
    return current.execution_arn


def sent_bodies(offline: dict[str, Any]) -> list[dict[str, Any]]:
    messages = offline["sqs"].receive_message(QueueUrl=offline["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_submit_prints_the_payload_id_before_sending(offline: dict[str, Any], cli: Any) -> None:
    result = cli(
        "submit", "ingest", "--input", '{"granule": "G1"}', "--schedule-time", "2022-02-15T02:00:00+01:00"
    )

    assert result.exit_code == 0, result.output
    first_line = result.output.splitlines()[0]
    assert first_line == "payload id: ingest/2022-02-15T01:00:00Z"
    assert sent_bodies(offline) == [
        {
            "workflow": "ingest",
            "input": {"granule": "G1"},
            "replace": False,
            "scheduleTime": "2022-02-15T02:00:00+01:00",
        }
    ]


def test_submit_json_returns_id_and_message(offline: dict[str, Any], cli: Any) -> None:
    result = cli("--json", "submit", "ingest", "--id", "explicit-1")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["payload_id"] == "explicit-1"
    assert document["message_id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "ingest", "--input", "{nope"], "--input is not JSON"),
        (["submit", "bad name!", "--input", "{}"], "workflow"),
        (
            [
                "backfill",
                "plan",
                "ingest",
                "--schedule",
                "cron(61 * * * ? *)",
                "--start",
                "2022-01-01T00:00:00Z",
                "--stop",
                "2022-01-02T00:00:00Z",
            ],
            "schedule",
        ),
        (["graph", "x", "--format", "png"], "--format is mermaid or dot"),
    ],
)
def test_bad_input_is_one_line_with_the_usage_exit_code(
    offline: dict[str, Any], cli: Any, args: list[str], message: str
) -> None:
    result = cli(*args)

    assert result.exit_code == ExitCode.USAGE
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: ")
    assert message in result.output
    assert "Traceback" not in result.output


def test_status_shows_state_attempt_execution_and_console_link(offline: dict[str, Any], cli: Any) -> None:
    arn = started(offline, "p-status")
    apply_status(offline["services"], "p-status", arn, State.FAILED, error="Boom", cause="disk full")

    result = cli("--json", "status", "p-status")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["state"], document["attempt"], document["execution_arn"]) == ("FAILED", 1, arn)
    assert (document["error"], document["cause"]) == ("Boom", "disk full")
    assert document["console"].endswith(f"#/v2/executions/details/{arn}")
    human = cli("status", "p-status")
    assert "FAILED" in human.output


def test_status_of_unknown_id_exits_not_found(offline: dict[str, Any], cli: Any) -> None:
    result = cli("status", "nobody")

    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.output.strip() == "error: no payload 'nobody'"


def test_waiters_lists_who_waits_and_how_it_ended(offline: dict[str, Any], cli: Any) -> None:
    arn = started(offline, "p-dep", callback=callback(waiter_payload_id="p-downstream"))
    apply_status(offline["services"], "p-dep", arn, State.SUCCEEDED, output="{}")

    result = cli("--json", "waiters", "p-dep")

    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["waiter_payload_id"], row["waiter_state"]) == ("p-downstream", "SUCCEEDED")
    assert row["since"]


def test_rerun_sends_the_same_input_with_replace(offline: dict[str, Any], cli: Any) -> None:
    arn = started(offline, "p-again", input={"granule": "G9"})
    apply_status(offline["services"], "p-again", arn, State.SUCCEEDED, output="{}")

    result = cli("rerun", "p-again")

    assert result.exit_code == 0, result.output
    assert sent_bodies(offline) == [
        {"workflow": "ingest", "id": "p-again", "input": {"granule": "G9"}, "replace": True}
    ]


def test_a_payload_rerun_by_the_cli_keeps_its_schedule_time(offline: dict[str, Any], cli: Any) -> None:
    services = offline["services"]
    arn = started(offline, "p-tick", scheduleTime="2030-05-05T12:00:00+01:00")
    apply_status(services, "p-tick", arn, State.SUCCEEDED, output="{}")

    assert cli("rerun", "p-tick").exit_code == 0
    [body] = sent_bodies(offline)
    process_request(services, parse_process_message(json.dumps(body), max_bytes=262_144), request_id="m2")

    current = services.table.get_state("p-tick")
    assert current is not None
    described = services.stepfunctions.describe_execution(executionArn=current.execution_arn)
    assert json.loads(described["input"])["coordinator"] == {
        "payload_id": "p-tick",
        "workflow": "ingest",
        "attempt": 2,
        "schedule_time": "2030-05-05T11:00:00Z",
    }


def test_status_shows_the_schedule_time_in_utc_z_form(offline: dict[str, Any], cli: Any) -> None:
    services = offline["services"]
    started(offline, "p-old-row", scheduleTime="2030-05-05T12:00:00+01:00")
    services.dynamodb.update_item(  # as rows were stored before the `...Z` form
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": "p-old-row"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET schedule_time = :t",
        ExpressionAttributeValues={":t": {"S": "2030-05-05T12:00:00.000000+01:00"}},
    )

    result = cli("--json", "status", "p-old-row")

    assert json.loads(result.output)["schedule_time"] == "2030-05-05T11:00:00Z"


def test_submit_of_an_id_of_another_workflow_is_refused_before_sending(
    offline: dict[str, Any], cli: Any
) -> None:
    started(offline, "p-owned")

    result = cli("submit", "publish", "--id", "p-owned", "--replace")

    assert result.exit_code == ExitCode.USAGE
    assert "belongs to workflow 'ingest', not 'publish'" in result.output
    assert sent_bodies(offline) == []


def test_rerun_of_unknown_id_exits_not_found(offline: dict[str, Any], cli: Any) -> None:
    assert cli("rerun", "nobody").exit_code == ExitCode.NOT_FOUND


def test_backfill_plan_says_what_each_tick_would_do_and_starts_nothing(
    offline: dict[str, Any], cli: Any
) -> None:
    services = offline["services"]
    done = started(offline, "ingest/2022-02-15T01:00:00Z")
    apply_status(services, "ingest/2022-02-15T01:00:00Z", done, State.SUCCEEDED, output="{}")
    failed = started(offline, "ingest/2022-02-16T01:00:00Z")
    apply_status(services, "ingest/2022-02-16T01:00:00Z", failed, State.FAILED, error="Boom")
    started(offline, "ingest/2022-02-17T01:00:00Z")
    window = ["--schedule", "0 1 * * *", "--start", "2022-02-15T00:00:00Z", "--stop", "2022-02-19T00:00:00Z"]

    result = cli("--json", "backfill", "plan", "ingest", *window)

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [(t["tick"], t["action"]) for t in document["ticks"]] == [
        ("2022-02-15T01:00:00Z", "already succeeded"),
        ("2022-02-16T01:00:00Z", "re-run failed"),
        ("2022-02-17T01:00:00Z", "in progress"),
        ("2022-02-18T01:00:00Z", "start"),
    ]
    assert document["totals"] == {"already succeeded": 1, "re-run failed": 1, "in progress": 1, "start": 1}
    everything = json.loads(cli("--json", "backfill", "plan", "ingest", *window, "--policy", "all").output)
    assert everything["totals"] == {"re-run (replace)": 2, "in progress": 1, "start": 1}
    assert sent_bodies(offline) == []


def test_graph_draws_dependencies_towards_their_waiters(offline: dict[str, Any], cli: Any) -> None:
    started(offline, "B", callback=callback(waiter_payload_id="A"))
    started(offline, "C", callback=callback(waiter_payload_id="B"))

    mermaid = cli("graph", "B")
    dot = cli("graph", "B", "--format", "dot")

    assert mermaid.exit_code == 0, mermaid.output
    assert mermaid.output.startswith("graph LR")
    assert mermaid.output.count("-->|WAITING|") == 2
    assert '"C" -> "B" [label="WAITING"];' in dot.output
    assert '"B" -> "A" [label="WAITING"];' in dot.output


def test_stuck_lists_old_claims_and_waiters(offline: dict[str, Any], cli: Any) -> None:
    started(offline, "p-stuck", callback=callback())

    none_yet = json.loads(cli("--json", "stuck").output)
    everything = json.loads(cli("--json", "stuck", "--claimed-for", "0", "--waiting-for", "0").output)

    assert none_yet == []
    assert sorted((row["kind"], row["state"]) for row in everything) == [
        ("payload", "CLAIMED"),
        ("waiter", "WAITING"),
    ]


def test_stuck_lists_a_gate_from_its_claim_with_its_upstreams_done_and_missing(
    offline: dict[str, Any], cli: Any
) -> None:
    services = offline["services"]
    done = started(offline, "up-done")
    apply_status(services, "up-done", done, State.SUCCEEDED, output="{}")
    started(offline, "up-running")
    started(offline, "p-gated", after=[{"id": "up-done"}, {"id": "up-running"}, {"id": "up-absent"}])
    gated = services.table.get_state("p-gated")
    assert gated is not None
    assert gated.claimed_at is not None
    two_hours_on = datetime.fromisoformat(gated.claimed_at) + timedelta(hours=2)
    services.dynamodb.update_item(  # a reconcile visit a minute ago: it defers the row
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": "p-gated"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET pending_since = :since",
        ExpressionAttributeValues={":since": {"S": (two_hours_on - timedelta(minutes=1)).isoformat()}},
    )

    target = Target(outputs={"TableName": TABLE}, region=REGION, endpoint_url=offline["endpoint"])
    [gate] = inspection.stuck_gates(target, gated_seconds=3600, now=two_hours_on)
    claims = inspection.stuck(target, claim_seconds=3600, waiting_seconds=10**6, now=two_hours_on)
    human = cli("stuck", "--gated-for", "0").output

    assert (gate["payload_id"], gate["age_seconds"], gate["gated"]) == (
        "p-gated",
        7200,
        "1 of 3 upstream done",
    )
    assert (gate["missing"], gate["missing_count"]) == (["up-running", "up-absent"], 2)
    assert "p-gated" not in [row["payload_id"] for row in claims]  # listed once, as a gate
    assert inspection.stuck_gates(target, gated_seconds=7201, now=two_hours_on) == []
    assert "1 of 3 upstream done; missing up-running, up-absent" in " ".join(human.split())


def test_unreachable_endpoint_has_its_own_exit_code(offline: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["--local", "--endpoint-url", "http://127.0.0.1:9", "status", "x"])

    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.output.startswith("error: cannot reach the endpoint")


def test_missing_offline_stack_has_its_own_exit_code(
    cli: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDINATOR_LOCAL_STATE", str(tmp_path / "absent.json"))

    result = cli("status", "x")

    assert result.exit_code == ExitCode.MISSING_STACK
    assert "no offline stack found" in result.output


def test_missing_deployed_stack_has_its_own_exit_code(offline: dict[str, Any]) -> None:
    result = CliRunner().invoke(
        app, ["--stack-name", "no-such-stack", "--endpoint-url", offline["endpoint"], "status", "x"]
    )

    assert result.exit_code == ExitCode.MISSING_STACK
    assert result.output.strip() == "error: stack no-such-stack not found in us-east-1"


def test_global_options_are_accepted_after_the_command(offline: dict[str, Any]) -> None:
    started(offline, "p-after")
    runner = CliRunner()

    after = runner.invoke(app, ["status", "p-after", "--local", "--json"])
    nested = runner.invoke(app, ["backfill", "plan", "ingest", *ONE_DAY, "--json", "--local"])
    before = runner.invoke(app, ["--local", "--json", "status", "p-after"])

    assert after.exit_code == 0, after.output
    assert json.loads(after.output)["state"] == "CLAIMED"
    assert nested.exit_code == 0, nested.output
    assert json.loads(nested.output)["totals"] == {"start": 1}
    assert json.loads(before.output) == json.loads(after.output)


def test_a_command_lists_the_global_options_in_its_help() -> None:
    result = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "Global options" in result.output
    for option in ("--json", "--local", "--stack-name", "--endpoint-url", "--region"):
        assert option in result.output


ONE_DAY = ["--schedule", "0 1 * * *", "--start", "2022-03-01T00:00:00Z", "--stop", "2022-03-02T00:00:00Z"]


@pytest.mark.parametrize("command", [["submit", "ingest"], ["backfill", "run", "ingest", *ONE_DAY]])
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.json", "cannot read it: No such file or directory"),
        (lambda tmp: tmp, "cannot read it: Is a directory"),
        (lambda tmp: _written(tmp / "bad.json", b"{nope"), "--input is not JSON"),
        (lambda tmp: _written(tmp / "latin1.json", '{"a": "é"}'.encode("latin-1")), "not UTF-8"),
    ],
    ids=["missing", "directory", "not-json", "not-utf-8"],
)
def test_an_input_file_that_cannot_be_used_is_one_line_with_the_usage_exit_code(
    offline: dict[str, Any], cli: Any, tmp_path: Path, command: list[str], make: Any, message: str
) -> None:
    result = cli(*command, "--input", f"@{make(tmp_path)}")

    assert result.exit_code == ExitCode.USAGE, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: --input")
    assert message in result.output
    assert sent_bodies(offline) == []


def test_backfill_run_input_that_is_not_json_is_bad_input(offline: dict[str, Any], cli: Any) -> None:
    result = cli("backfill", "run", "ingest", *ONE_DAY, "--input", "{nope")

    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.output.startswith("error: --input is not JSON")


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        ([], {"map_mode": "auto"}),
        (
            ["--map-mode", "distributed", "--max-concurrency", "5000"],
            {"map_mode": "distributed", "max_concurrency": 5000},
        ),
        (
            ["--inline-limit", "0", "--page-size", "5000"],
            {"map_mode": "auto", "inline_limit": 0, "page_size": 5000},
        ),
    ],
)
def test_backfill_run_sends_the_map_mode_and_only_the_bounds_given(
    offline: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    cli: Any,
    options: list[str],
    sent: dict[str, Any],
) -> None:
    started: list[dict[str, Any]] = []

    def start(_target: Any, request: dict[str, Any], _name: str) -> str:
        started.append(request)
        return a_backfill().id

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(backfills, "start", start)
    monkeypatch.setattr(backfills.Tracker, "of", lambda *_: None)
    monkeypatch.setattr(cli_module.backfill, "follow_backfill", interrupted)

    result = cli("backfill", "run", "ingest", *ONE_DAY, *options)

    assert result.exit_code == ExitCode.STILL_RUNNING, result.output
    [request] = started
    chosen = {"map_mode", "inline_limit", "max_concurrency", "page_size", "pages_per_execution"}
    assert {key: value for key, value in request.items() if key in chosen} == sent


@pytest.mark.parametrize(
    "options",
    [
        ["--map-mode", "sideways"],
        ["--inline-limit", "10001"],
        ["--max-concurrency", "10001"],
        ["--page-size", "5001"],
    ],
)
def test_backfill_run_refuses_a_map_mode_or_bound_out_of_range(
    offline: dict[str, Any], monkeypatch: pytest.MonkeyPatch, cli: Any, options: list[str]
) -> None:
    monkeypatch.setattr(backfills, "start", lambda *_: pytest.fail("started"))

    result = cli("backfill", "run", "ingest", *ONE_DAY, *options)

    assert result.exit_code == ExitCode.USAGE, result.output


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_status_outside_a_terminal_keeps_the_arn_and_console_link_whole(
    offline: dict[str, Any], cli: Any
) -> None:
    arn = started(offline, "p-whole-" + "x" * 60)

    result = cli("status", "p-whole-" + "x" * 60)

    assert result.exit_code == 0, result.output
    assert arn in result.output
    assert inspection.console_link(REGION, arn) in result.output
    assert "…" not in result.output


def test_graph_labels_keep_quotes_and_long_ids_whole(offline: dict[str, Any], cli: Any) -> None:
    odd = 'say "hé" #1 ' + "y" * 120
    started(offline, "B", callback=callback(waiter_payload_id=odd))

    mermaid = cli("graph", "B")
    dot = cli("graph", "B", "--format", "dot")

    assert mermaid.exit_code == 0, mermaid.output
    assert mermaid.output.splitlines() == [
        "graph LR",
        '    n0[["B"]]',
        '    n1["say #quot;hé#quot; #35;1 ' + "y" * 120 + '"]',
        "    n0 -->|WAITING| n1",
    ]
    assert dot.output.splitlines()[2:5] == [
        '    "B" [shape=box, style=bold];',
        '    "say \\"hé\\" #1 ' + "y" * 120 + '" [shape=box];',
        '    "B" -> "say \\"hé\\" #1 ' + "y" * 120 + '" [label="WAITING"];',
    ]


def test_dot_labels_keep_backslashes_and_line_breaks() -> None:
    assert inspection.dot_quoted('a\\b\n"c"') == '"a\\\\b\\n\\"c\\""'
    assert inspection.mermaid_quoted("a\n<b>") == '"a#10;#60;b#62;"'


@pytest.mark.parametrize("state", [State.CLAIMED, State.PROCESSING])
def test_rerun_of_a_running_payload_sends_nothing_and_says_it_runs(
    offline: dict[str, Any], cli: Any, state: State
) -> None:
    services = offline["services"]
    started(offline, "p-busy")
    services.dynamodb.update_item(
        TableName=services.settings.table_name,
        Key={"payload_id": {"S": "p-busy"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": str(state)}},
    )

    result = cli("rerun", "p-busy")

    assert result.exit_code == ExitCode.STILL_RUNNING
    assert result.output.strip() == (
        f"error: p-busy is still {state} (attempt 1): nothing sent, a re-run is dropped until it ends"
    )
    assert sent_bodies(offline) == []


def test_failed_ticks_of_a_backfill_are_named_up_to_twenty_with_the_count(
    offline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    services = offline["services"]
    ticks = [f"2022-04-{day:02d}T01:00:00Z" for day in range(1, 24)]
    for tick in ticks[:22]:
        payload_id = f"ingest/{tick}"
        arn = started(offline, payload_id)
        apply_status(services, payload_id, arn, State.FAILED, error="Boom")
    done = started(offline, f"ingest/{ticks[22]}")
    apply_status(services, f"ingest/{ticks[22]}", done, State.SUCCEEDED, output="{}")
    request = {
        "workflow": "ingest",
        "schedule": "0 1 * * *",
        "start": "2022-04-01T00:00:00Z",
        "stop": "2022-04-24T00:00:00Z",
        "timezone": "UTC",
        "policy": "missing",
    }

    found = failed_ticks(Options(None, None, True, None, False).target(), request)

    assert found["failed_count"] == 22
    assert found["failed_ticks"] == [
        {"tick": tick, "payload_id": f"ingest/{tick}", "state": "FAILED"} for tick in ticks[:20]
    ]
    show_backfill({"status": "SUCCEEDED", "summary": {"ticks": 23, "failed": 22}, **found})
    shown = capsys.readouterr().out.splitlines()
    assert shown[-22:] == [
        "22 ticks did not succeed:",
        *(f"  ingest/{tick}  FAILED" for tick in ticks[:20]),
        "  and 2 more",
    ]


def test_a_backfills_summary_counts_ticks_its_gate_ended_apart_from_failed_ones(
    offline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    services = offline["services"]
    upstream = started(offline, "up-failed")
    apply_status(services, "up-failed", upstream, State.FAILED, error="Boom")
    ticks = [f"ingest/2022-03-01T0{hour}:00:00Z" for hour in range(4)]
    failed = started(offline, ticks[0])
    apply_status(services, ticks[0], failed, State.FAILED, error="Boom")
    for tick in ticks[1:3]:  # gated on a failed upstream: ended DependencyFailed, never run
        started(offline, tick, scheduleTime=tick.removeprefix("ingest/"), after=[{"id": "up-failed"}])
    done = started(offline, ticks[3])
    apply_status(services, ticks[3], done, State.SUCCEEDED, output="{}")
    summary = {"ticks": 4, "succeeded": 1, "failed": 3, "already_done": 0}
    backfill = a_backfill("SUCCEEDED", succeeded=1, failed=3)
    backfill.request = {"workflow": "ingest", "schedule": "0 * * * *", "timezone": "UTC"} | {
        "start": "2022-03-01T00:00:00Z",
        "stop": "2022-03-01T04:00:00Z",
    }
    backfill.summary = summary

    result = backfill_result(Options(None, None, True, None, False).target(), backfill)

    assert services.table.get_state(ticks[1]).error == "DependencyFailed"  # type: ignore[union-attr]
    assert result["summary"] == summary | {
        "failed": 1,
        "dependency_failed": 2,
        "dependency_timed_out": 0,
        "dependency_cycle": 0,
    }
    assert (result["failed"], result["dependency_failed"], result["failed_count"]) == (1, 2, 3)
    show_backfill(result)
    shown = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert " failed 1 " in shown
    assert "dependency_failed 2" in shown


def a_backfill(status: str = "RUNNING", **counts: int) -> backfills.Backfill:
    arn = "arn:aws:states:us-east-1:123456789012:execution:coordinator-dev-backfill:bf-1"
    span = dict(zip(("schedule", "start", "stop"), ONE_DAY[1::2], strict=True))
    return backfills.Backfill(
        id=arn,
        request={"workflow": "ingest", **span},
        chain=[arn],
        status=status,
        started=datetime(2026, 1, 1, tzinfo=UTC),
        stopped=None,
        counts={"succeeded": 0, "failed": 0, "already_done": 0} | counts,
    )


def test_the_backfill_progress_shows_ticks_done_of_all_failed_and_already_done() -> None:
    progress = BackfillProgress(count=10)

    progress.show(a_backfill(succeeded=3, failed=1, already_done=2))

    [task] = progress.progress.tasks
    assert (task.completed, task.total) == (6, 10)
    assert (task.fields["failed"], task.fields["already_done"]) == (1, 2)


def test_ctrl_c_while_following_a_backfill_detaches_and_says_how_to_follow_or_cancel_it(
    offline: dict[str, Any], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backfill = a_backfill()
    monkeypatch.setattr(backfills, "start", lambda *_: backfill.id)
    monkeypatch.setattr(backfills.Tracker, "of", lambda *_: None)

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.backfill, "follow_backfill", interrupted)

    result = cli("backfill", "run", "ingest", *ONE_DAY)

    assert result.exit_code == ExitCode.STILL_RUNNING, result.output
    assert result.output.splitlines()[-3:] == [
        "detached: backfill bf-1 goes on.",
        "  follow it: coordinator backfill status bf-1",
        "  cancel it: coordinator backfill cancel bf-1",
    ]


def test_status_of_an_unknown_backfill_exits_not_found(offline: dict[str, Any], cli: Any) -> None:
    unknown = "arn:aws:states:us-east-1:123456789012:execution:coordinator-dev-backfill:nobody"

    result = cli("backfill", "status", unknown)

    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert result.output.strip() == f"error: no backfill {unknown!r}"


class History:
    """A Step Functions client answering one running execution's history, oldest first
    whatever `reverseOrder` says, as moto does; `events` grows between polls."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = [{"id": 1, "type": "ExecutionStarted"}]
        self.described = {
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:coordinator-dev-backfill:bf-1",
            "input": json.dumps({"workflow": "ingest", "schedule": "0 1 * * *", "totals": {"succeeded": 5}}),
            "status": "RUNNING",
            "startDate": datetime(2026, 1, 1, tzinfo=UTC),
        }

    def tick(self, outcome: str) -> None:
        exited = {"type": "PassStateExited", "stateExitedEventDetails": {"name": outcome}}
        self.events.append({"id": len(self.events) + 1, **exited})

    def client(self, _service: str) -> History:
        return self

    def describe_execution(self, **_: Any) -> dict[str, Any]:
        return self.described

    def get_paginator(self, _operation: str) -> History:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"events": list(self.events)}]


def test_backfill_progress_counts_each_tick_once_across_polls_whatever_order_the_history_comes_in() -> None:
    history = History()
    tracker = backfills.Tracker(history, history.described)  # type: ignore[arg-type]
    history.tick("TickSucceeded")
    first = tracker.poll()
    history.tick("TickFailed")
    history.tick("TickAlreadyDone")
    second = tracker.poll()

    assert first.counts == {"succeeded": 6, "failed": 0, "already_done": 0}
    assert second.counts == {"succeeded": 6, "failed": 1, "already_done": 1}


def test_status_of_a_gated_payload_counts_its_upstreams_and_graph_draws_the_gate(
    offline: dict[str, Any], cli: Any
) -> None:
    done = started(offline, "up-done")
    apply_status(offline["services"], "up-done", done, State.SUCCEEDED, output="{}")
    started(offline, "up-running")
    started(offline, "p-gated", after=[{"id": "up-done"}, {"id": "up-running"}, {"id": "up-absent"}])

    result = cli("--json", "status", "p-gated")

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["state"], document["gated"]) == ("GATED", "1 of 3 upstream done")
    assert (document["missing"], document["missing_count"]) == (["up-running", "up-absent"], 2)
    human = cli("status", "p-gated").output
    assert "1 of 3 upstream done" in human
    assert "up-absent" in human
    graph = json.loads(cli("--json", "graph", "p-gated").output)
    edges = {(edge["dependency"], edge["waiter"], edge["state"]) for edge in graph["edges"]}
    assert ("up-running", "p-gated", "WAITING") in edges
    assert ("up-done", "p-gated", "SUCCEEDED") in edges
