"""The coordinator CLI against a coordinator on a moto server: what it prints and returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from coordinator.messages import parse_process_message
from coordinator.process import process_request
from coordinator.settle import settle
from coordinator.states import State
from coordinator_tools.cli import app
from coordinator_tools.target import ExitCode
from tests.support.factories import callback, request


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
    settle(offline["services"], "p-status", arn, State.FAILED, error="Boom", cause="disk full")

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
    settle(offline["services"], "p-dep", arn, State.SUCCEEDED, output="{}")

    result = cli("--json", "waiters", "p-dep")

    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["waiter_payload_id"], row["waiter_state"]) == ("p-downstream", "SUCCEEDED")
    assert row["since"]


def test_rerun_sends_the_same_input_with_replace(offline: dict[str, Any], cli: Any) -> None:
    arn = started(offline, "p-again", input={"granule": "G9"})
    settle(offline["services"], "p-again", arn, State.SUCCEEDED, output="{}")

    result = cli("rerun", "p-again")

    assert result.exit_code == 0, result.output
    assert sent_bodies(offline) == [
        {"workflow": "ingest", "id": "p-again", "input": {"granule": "G9"}, "replace": True}
    ]


def test_a_payload_rerun_by_the_cli_keeps_its_schedule_time(offline: dict[str, Any], cli: Any) -> None:
    services = offline["services"]
    arn = started(offline, "p-tick", scheduleTime="2030-05-05T12:00:00+01:00")
    settle(services, "p-tick", arn, State.SUCCEEDED, output="{}")

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
    settle(services, "ingest/2022-02-15T01:00:00Z", done, State.SUCCEEDED, output="{}")
    failed = started(offline, "ingest/2022-02-16T01:00:00Z")
    settle(services, "ingest/2022-02-16T01:00:00Z", failed, State.FAILED, error="Boom")
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
