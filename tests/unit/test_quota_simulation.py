"""The quota simulation replays the template as deployed: it reads its settings from there."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bench.quota_simulation import (
    BackfillSetup,
    PagedBackfill,
    as_deployed,
    deployed_backfill,
    move_concurrency,
    simulate_backfill,
)
from coordinator.settings import Settings
from coordinator_tools.kit.template import properties, state_machine_definitions


def test_as_deployed_reads_the_dispatcher_source_and_settles_concurrency() -> None:
    setup = as_deployed()
    (stream,) = (
        event["Properties"]
        for event in properties("DispatcherFunction")["Events"].values()
        if event["Type"] == "DynamoDB"
    )

    assert setup.parallelization_factor == stream["ParallelizationFactor"] == 10
    assert setup.batch_size == stream["BatchSize"]
    assert setup.move_workers == Settings(TABLE_NAME="t").move_concurrency > 1


def test_a_function_environment_overrides_the_move_concurrency() -> None:
    assert move_concurrency({"TABLE_NAME": {"Ref": "CoordinatorTable"}, "SETTLE_MOVE_CONCURRENCY": "3"}) == 3
    assert (
        move_concurrency({"TABLE_NAME": {"Ref": "CoordinatorTable"}})
        == Settings(TABLE_NAME="t").move_concurrency
    )


@pytest.mark.parametrize("value", ["0", "65", "many"])
def test_a_move_concurrency_out_of_bounds_is_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"TABLE_NAME": "t", "SETTLE_MOVE_CONCURRENCY": value})


def test_the_deployed_million_tick_backfill_is_auto_run_distributed_with_the_asl_defaults() -> None:
    definition = json.loads(state_machine_definitions()["BackfillStateMachine"]["text"])
    defaults = definition["States"]["Defaults"]["Result"]
    assert (defaults["map_mode"], defaults["inline_limit"]) == ("auto", 1_000)

    setup = deployed_backfill()

    assert setup.pages == PagedBackfill(
        page_size=defaults["distributed"]["page_size"],
        max_concurrency=defaults["distributed"]["max_concurrency"],
        pages_at_once=defaults["pages_at_once"],
        pages_per_read=defaults["pages_per_read"],
    )
    assert setup.concurrency == setup.pages.pages_at_once * setup.pages.max_concurrency <= 10_000
    assert setup.label.startswith("map_mode auto (1,000,000 ticks, inline_limit 1,000: distributed)")


def test_a_deployed_backfill_within_the_inline_limit_runs_inline() -> None:
    setup = deployed_backfill(ticks=1_000)

    assert (setup.pages, setup.concurrency, setup.ticks) == (None, 10, 1_000)
    assert setup.label == "map_mode auto (1,000 ticks, inline_limit 1,000: inline), MaxConcurrency 10"
    assert deployed_backfill(ticks=1_001).pages is not None


def test_a_page_ends_with_its_last_tick_before_the_next_page_starts() -> None:
    # 10 ticks of 60 s, pages of 5 all at once, one page at a time: two rounds, not one.
    one_page_at_a_time = simulate_backfill(
        BackfillSetup(
            "two pages",
            ticks=10,
            pages=PagedBackfill(page_size=5, max_concurrency=5, pages_at_once=1, pages_per_read=2),
        )
    )
    both_at_once = simulate_backfill(
        BackfillSetup(
            "two pages",
            ticks=10,
            pages=PagedBackfill(page_size=5, max_concurrency=5, pages_at_once=2, pages_per_read=2),
        )
    )

    assert 120 < float(one_page_at_a_time["seconds"]) < 125  # type: ignore[arg-type]
    assert 60 < float(both_at_once["seconds"]) < 65  # type: ignore[arg-type]


def test_as_deployed_reads_the_dispatchers_records_at_once_from_its_environment() -> None:
    from bench.quota_simulation import dispatch_concurrency
    from coordinator_tools.kit.template import function_environment

    environment = function_environment("DispatcherFunction")

    assert (
        as_deployed().dispatch_workers
        == dispatch_concurrency(environment)
        == int(environment["DISPATCH_CONCURRENCY"])
        > 1
    )


def test_the_deployed_fan_in_resumes_everyone_within_the_target() -> None:
    from bench.quota_fanout import simulate_fanout
    from bench.quota_model import FANIN_TARGET

    result = simulate_fanout(as_deployed())

    assert result["moved_by_settle"] == as_deployed().waiters
    assert float(result["all_notified"]) <= FANIN_TARGET  # type: ignore[arg-type]
