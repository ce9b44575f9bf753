"""Backfills through the offline stack: statemachines/backfill.asl.json, range and process wired.

The must-show of issue 4: a 3-day daily backfill starts 3 executions; the same backfill again
starts none and reports 3 already done; with one tick failed, policy `missing` re-runs only it,
and policy `all` re-runs every tick. Issue 19's: a Distributed Map backfill (`map_mode`
"distributed"), run end to end by moto's executor, sums up its child executions' ticks; and
`map_mode` "auto", the default, runs a range of at most `inline_limit` ticks inline and a
longer one distributed, and says which.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from coordinator_tools.local import OfflineStack
from tests.e2e.conftest import executions_of

pytestmark = pytest.mark.e2e

WORKFLOW = "example-target"


def daily(start: str, stop: str, **options: Any) -> dict[str, Any]:
    # dst_gap/dst_fold spelled out: backfill.asl.json's defaults pass null, which the range
    # function rejects (reported); these are the documented defaults.
    return {
        "workflow": WORKFLOW,
        "start": start,
        "stop": stop,
        "schedule": "0 1 * * *",
        "dst_gap": "skip",
        "dst_fold": "once",
        **options,
    }


def counted(
    ticks: int, *, succeeded: int = 0, failed: int = 0, already_done: int = 0, map_mode: str = "inline"
) -> dict[str, Any]:
    """A backfill's output: its counts, and the map mode that ran."""
    return {
        "ticks": ticks,
        "succeeded": succeeded,
        "failed": failed,
        "already_done": already_done,
        "map_mode": map_mode,
    }


def run_backfill(stack: OfflineStack, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A backfill run to success: its execution and its output."""
    execution = stack.start_execution(stack.outputs["BackfillStateMachineArn"], request)
    ended = stack.wait_for_execution(execution, timeout=40)
    assert ended["status"] == "SUCCEEDED", ended
    return execution, dict(json.loads(ended["output"]))


def backfill(stack: OfflineStack, request: dict[str, Any]) -> dict[str, Any]:
    return run_backfill(stack, request)[1]


def attempts(stack: OfflineStack, *ticks: str) -> list[int]:
    return [len(executions_of(stack, WORKFLOW, f"{WORKFLOW}/{tick}")) for tick in ticks]


FEBRUARY = ("2022-02-15T01:00:00Z", "2022-02-16T01:00:00Z", "2022-02-17T01:00:00Z")
MARCH = ("2022-03-01T01:00:00Z", "2022-03-02T01:00:00Z", "2022-03-03T01:00:00Z")
APRIL = ("2022-04-01T01:00:00Z", "2022-04-02T01:00:00Z", "2022-04-03T01:00:00Z")


def continuation_chain(
    stack: OfflineStack, first: str, each: Callable[[str], None] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """A backfill followed through its continue-as-new executions, each to success (and `each`
    run on it): their arns in order, and the last one's output, the whole backfill's summary."""
    chain = [first]
    while True:
        ended = stack.wait_for_execution(chain[-1], timeout=40)
        assert ended["status"] == "SUCCEEDED", ended
        if each is not None:
            each(chain[-1])
        output: dict[str, Any] = json.loads(ended["output"])
        if "continued_as" not in output:
            return chain, output
        chain.append(output["continued_as"])


@pytest.fixture(scope="module")
def first_february_backfill(stack: OfflineStack) -> dict[str, Any]:
    return backfill(stack, daily("2022-02-15T00:00:00Z", "2022-02-18T00:00:00Z"))


def test_three_day_daily_backfill_starts_three_executions(
    stack: OfflineStack, first_february_backfill: dict[str, Any]
) -> None:
    assert first_february_backfill == counted(3, succeeded=3)
    assert attempts(stack, *FEBRUARY) == [1, 1, 1]


def test_same_backfill_again_starts_none_and_reports_three_already_done(
    stack: OfflineStack, first_february_backfill: dict[str, Any]
) -> None:
    summary = backfill(stack, daily("2022-02-15T00:00:00Z", "2022-02-18T00:00:00Z"))

    assert summary == counted(3, already_done=3)
    assert attempts(stack, *FEBRUARY) == [1, 1, 1]


def test_policy_missing_reruns_only_the_failed_tick(stack: OfflineStack) -> None:
    for tick in MARCH:
        stack.submit({"workflow": WORKFLOW, "scheduleTime": tick, "input": {"fail": tick == MARCH[1]}})
    states = [stack.wait_for_payload(f"{WORKFLOW}/{tick}")["state"] for tick in MARCH]
    assert states == ["SUCCEEDED", "FAILED", "SUCCEEDED"]

    summary = backfill(stack, daily("2022-03-01T00:00:00Z", "2022-03-04T00:00:00Z", policy="missing"))

    assert summary == counted(3, succeeded=1, already_done=2)
    assert attempts(stack, *MARCH) == [1, 2, 1]
    assert stack.payload_state(f"{WORKFLOW}/{MARCH[1]}")["state"] == "SUCCEEDED"


def test_policy_all_reruns_every_tick(stack: OfflineStack) -> None:
    backfill(stack, daily("2022-04-01T00:00:00Z", "2022-04-04T00:00:00Z"))

    summary = backfill(stack, daily("2022-04-01T00:00:00Z", "2022-04-04T00:00:00Z", policy="all"))

    assert summary == counted(3, succeeded=3)
    assert attempts(stack, *APRIL) == [2, 2, 2]


def test_a_backfilled_tick_knows_its_data_interval_across_the_spring_forward(stack: OfflineStack) -> None:
    summary = backfill(
        stack,
        daily(
            "2025-03-29T12:00:00", "2025-03-31T12:00:00", schedule="30 2 * * *", timezone="Europe/Stockholm"
        ),
    )

    # The 30th has no 02:30 in Stockholm: one tick, whose interval starts on the 29th.
    assert summary == counted(1, succeeded=1)
    [execution] = executions_of(stack, WORKFLOW, f"{WORKFLOW}/2025-03-31T00:30:00Z")
    described = stack.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    block = json.loads(described["input"])["coordinator"]
    assert block["schedule_time_local"] == "2025-03-31T02:30:00+02:00"
    assert (block["data_interval_start"], block["data_interval_end"]) == (
        "2025-03-29T01:30:00Z",  # no 02:30 on the 30th: Stockholm skipped it
        "2025-03-31T00:30:00Z",
    )
    assert block["schedule"] == {"expression": "30 2 * * *", "timezone": "Europe/Stockholm"}


def test_a_backfill_longer_than_one_execution_continues_as_new_and_the_last_one_sums_it_up(
    stack: OfflineStack,
) -> None:
    # 7 hourly ticks, 2 a page, 1 page per execution: a chain of 4 executions.
    backfills = stack.outputs["BackfillStateMachineArn"]
    request = daily(
        "2022-06-01T00:00:00Z",
        "2022-06-01T07:00:00Z",
        schedule="0 * * * *",
        page_size=2,
        pages_per_execution=1,
    )
    first = stack.start_execution(backfills, request)

    chain, output = continuation_chain(stack, first)

    assert output == counted(7, succeeded=7)
    assert len(chain) == 4
    hours = [f"2022-06-01T0{hour}:00:00Z" for hour in range(7)]
    assert attempts(stack, *hours) == [1] * 7
    continuation = stack.client("stepfunctions").describe_execution(executionArn=chain[1])
    assert json.loads(continuation["input"])["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"] == first


JULY = [f"2022-07-0{day}T01:00:00Z" for day in range(1, 8)]


def test_a_distributed_map_backfill_runs_each_page_and_tick_as_a_child_execution(stack: OfflineStack) -> None:
    # 7 daily ticks, 2 a page, 2 pages a read: 2 reads of page cursors, each page a child
    # execution, each tick a child of its page; the fourth tick fails and is counted.
    stack.submit({"workflow": WORKFLOW, "scheduleTime": JULY[3], "input": {"fail": True}})
    assert stack.wait_for_payload(f"{WORKFLOW}/{JULY[3]}")["state"] == "FAILED"
    stack.submit({"workflow": WORKFLOW, "scheduleTime": JULY[5]})
    assert stack.wait_for_payload(f"{WORKFLOW}/{JULY[5]}")["state"] == "SUCCEEDED"

    request = daily(
        "2022-07-01T00:00:00Z",
        "2022-07-08T00:00:00Z",
        map_mode="distributed",
        page_size=2,
        pages_per_read=2,
        pages_at_once=2,
        max_concurrency=2,
        input={"fail": False},
    )
    execution, output = run_backfill(stack, request)

    assert output == counted(7, succeeded=6, already_done=1, map_mode="distributed")
    assert attempts(stack, *JULY) == [1, 1, 1, 2, 1, 1, 1]
    sfn = stack.client("stepfunctions")
    # A Map Run for each read (2) and for each page (4): the pages' and ticks' own histories.
    assert len(sfn.list_map_runs(executionArn=execution)["mapRuns"]) == 6
    entered = entered_states(stack, execution)
    assert entered.count("RunPages") == 2
    assert not {"ReadPageTicks", "RunPageTicks", "RunTick"} & set(entered)


def test_a_distributed_map_backfill_counts_a_failed_tick(stack: OfflineStack) -> None:
    ticks = ("2022-08-01T01:00:00Z", "2022-08-02T01:00:00Z", "2022-08-03T01:00:00Z")
    summary = backfill(
        stack,
        daily("2022-08-01T00:00:00Z", "2022-08-04T00:00:00Z", map_mode="distributed", input={"fail": True}),
    )

    assert summary == counted(3, failed=3, map_mode="distributed")
    assert attempts(stack, *ticks) == [1, 1, 1]


def test_an_unknown_map_mode_fails_the_backfill(stack: OfflineStack) -> None:
    ended = stack.wait_for_execution(
        stack.start_execution(
            stack.outputs["BackfillStateMachineArn"],
            daily("2022-09-01T00:00:00Z", "2022-09-02T00:00:00Z", map_mode="sideways"),
        ),
        timeout=40,
    )
    assert (ended["status"], ended.get("error")) == ("FAILED", "InvalidMapMode")


@pytest.mark.parametrize(
    "bounds",
    [{"max_concurrency": 0}, {"max_concurrency": 10_001}, {"pages_at_once": 0}, {"pages_at_once": 41}],
)
def test_a_distributed_map_backfill_out_of_bounds_fails(stack: OfflineStack, bounds: dict[str, int]) -> None:
    request = daily("2022-09-01T00:00:00Z", "2022-09-02T00:00:00Z", map_mode="distributed", **bounds)
    ended = stack.wait_for_execution(
        stack.start_execution(stack.outputs["BackfillStateMachineArn"], request), timeout=40
    )
    assert (ended["status"], ended.get("error")) == ("FAILED", "InvalidConcurrency")


def test_a_distributed_map_backfill_continues_as_new_and_each_history_stays_small(
    stack: OfflineStack,
) -> None:
    # 5 daily ticks, 1 a page, 2 pages a read, 1 read per execution: a chain of 3 executions.
    days = [f"2022-11-0{day}T01:00:00Z" for day in range(1, 6)]
    request = daily(
        "2022-11-01T00:00:00Z",
        "2022-11-06T00:00:00Z",
        map_mode="distributed",
        page_size=1,
        pages_per_read=2,
        pages_per_execution=1,
    )
    sfn = stack.client("stepfunctions")

    def history_stays_small(execution_arn: str) -> None:
        history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        # The ASL's own account (MorePageReads): at most 30 events an execution, 30 a read, 4 a page.
        assert len(history) <= 30 + 30 + 4 * 2, [event["type"] for event in history]

    first = stack.start_execution(stack.outputs["BackfillStateMachineArn"], request)
    chain, output = continuation_chain(stack, first, each=history_stays_small)

    assert output == counted(5, succeeded=5, map_mode="distributed")
    assert len(chain) == 3
    assert attempts(stack, *days) == [1] * 5
    continued = json.loads(sfn.describe_execution(executionArn=chain[1])["input"])
    assert (continued["map_mode"], continued["page_size"], continued["pages_per_read"]) == (
        "distributed",
        1,
        2,
    )


@pytest.mark.parametrize("map_mode", ["inline", "distributed"])
def test_a_backfill_passes_after_to_every_tick_and_each_starts_once_its_upstream_has(
    stack: OfflineStack, map_mode: str
) -> None:
    # Each day after the day before it, all sent at once: they run one after another.
    first = f"2023-0{4 if map_mode == 'inline' else 5}-01T01:00:00Z"
    request = daily(
        first,
        first.replace("-01T", "-04T"),
        max_concurrency=3,
        map_mode=map_mode,
        after=[{"previous": True, "first": first}],
    )

    summary = backfill(stack, request)

    assert summary == counted(3, succeeded=3, map_mode=map_mode)
    days = [stack.wait_for_payload(f"{WORKFLOW}/{first.replace('-01T', f'-0{day}T')}") for day in (1, 2, 3)]
    assert [row["state"] for row in days] == ["SUCCEEDED"] * 3
    for earlier, later in itertools.pairwise(days):
        assert list(later["gate_upstreams"]) == [earlier["payload_id"]]  # `after` reached the tick
        assert later["started_at"] > earlier["finished_at"]


def entered_states(stack: OfflineStack, execution_arn: str) -> list[str]:
    history = stack.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in history["events"]
        if "stateEnteredEventDetails" in event
    ]


def test_by_default_a_backfill_within_the_inline_limit_runs_inline(stack: OfflineStack) -> None:
    days = [f"2024-01-0{day}T01:00:00Z" for day in (1, 2, 3)]
    request = daily("2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z", inline_limit=3)
    execution, output = run_backfill(stack, request)

    assert output == counted(3, succeeded=3)
    assert attempts(stack, *days) == [1, 1, 1]
    entered = entered_states(stack, execution)
    assert {"CountTicks", "RunTicks"} <= set(entered)
    assert "RunPages" not in entered
    assert stack.client("stepfunctions").list_map_runs(executionArn=execution)["mapRuns"] == []


def test_a_backfill_in_auto_mode_past_the_inline_limit_runs_distributed_and_continues_so(
    stack: OfflineStack,
) -> None:
    # 3 daily ticks against a limit of 2: distributed, 1 a page, 2 pages a read, 1 read an
    # execution: a chain of 2, the second told "distributed", not the input's "auto" again.
    days = [f"2024-02-0{day}T01:00:00Z" for day in (1, 2, 3)]
    request = daily(
        "2024-02-01T00:00:00Z",
        "2024-02-04T00:00:00Z",
        map_mode="auto",
        inline_limit=2,
        page_size=1,
        pages_per_read=2,
        pages_per_execution=1,
    )
    sfn = stack.client("stepfunctions")
    first = stack.start_execution(stack.outputs["BackfillStateMachineArn"], request)

    chain, output = continuation_chain(stack, first)

    assert output == counted(3, succeeded=3, map_mode="distributed")
    assert len(chain) == 2
    assert attempts(stack, *days) == [1, 1, 1]
    assert "RunTicks" not in entered_states(stack, first)
    assert sfn.list_map_runs(executionArn=first)["mapRuns"]
    continued = json.loads(sfn.describe_execution(executionArn=chain[1])["input"])
    assert continued["map_mode"] == "distributed"
    assert "CountTicks" not in entered_states(stack, chain[1])


@pytest.mark.parametrize("inline_limit", [-1, 10_001, "ten", 2.5])
def test_a_backfill_with_an_inline_limit_out_of_bounds_fails(
    stack: OfflineStack, inline_limit: object
) -> None:
    request = daily("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", inline_limit=inline_limit)
    ended = stack.wait_for_execution(
        stack.start_execution(stack.outputs["BackfillStateMachineArn"], request), timeout=40
    )
    assert (ended["status"], ended.get("error")) == ("FAILED", "InvalidRange")
    assert json.loads(ended["cause"])["errorMessage"].startswith("inline_limit: ")
    assert attempts(stack, "2024-03-01T01:00:00Z") == [0]
