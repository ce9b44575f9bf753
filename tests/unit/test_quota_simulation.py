"""The quota simulation replays the template as deployed: it reads its settings from there."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bench.quota_simulation import as_deployed, move_concurrency
from coordinator.settings import Settings
from tests.support.template import properties


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
