"""Cycle refusal through process (moto, the by_waiter index): a wait that could only time out."""

from __future__ import annotations

import json

from coordinator.process import Processed, process_request
from coordinator.services import Services
from coordinator.settle import apply_status
from coordinator.states import State, WaiterState
from coordinator_tools.kit.events import new_token, request
from tests.conftest import Workflows
from tests.support.rows import waiter_row


def wait(services: Services, waiter: str, dependency: str) -> tuple[Processed, str]:
    """`waiter` waits on `dependency`: process `dependency` with a callback from `waiter`."""
    token = new_token()
    outcome = process_request(
        services,
        request(id=dependency, callback={"token": token, "waiter_payload_id": waiter}),
        request_id=f"{waiter}-waits-on-{dependency}",
    )
    return outcome, token


def started(workflows: Workflows) -> list[str]:
    return sorted(execution["name"] for execution in workflows.executions("ingest"))


def test_wait_on_a_payload_that_already_waits_on_the_waiter_is_refused_as_a_cycle(
    services: Services, workflows: Workflows
) -> None:
    wait(services, "B", "A")

    outcome, token = wait(services, "A", "B")

    assert outcome is Processed.CYCLE
    row = waiter_row(services, "B", token)
    assert row["waiter_state"] == WaiterState.CYCLE
    assert json.loads(row["cause"]) == {"payload_id": "B", "cycle": ["A", "B", "A"]}


def test_refused_wait_does_not_start_its_dependency(services: Services, workflows: Workflows) -> None:
    wait(services, "B", "A")
    before = started(workflows)

    wait(services, "A", "B")

    assert started(workflows) == before
    assert services.table.get_state("B") is None


def test_refused_waiter_is_resolved_at_once_not_left_for_reconcile(
    services: Services, workflows: Workflows
) -> None:
    wait(services, "B", "A")

    _, token = wait(services, "A", "B")

    row = waiter_row(services, "B", token)
    assert "pending_shard" not in row
    assert "resolved_at" in row


def test_transitive_cycle_is_refused_with_its_whole_path(services: Services, workflows: Workflows) -> None:
    wait(services, "B", "C")
    wait(services, "C", "A")

    outcome, token = wait(services, "A", "B")

    assert outcome is Processed.CYCLE
    assert json.loads(waiter_row(services, "B", token)["cause"])["cycle"] == ["A", "B", "C", "A"]


def test_diamond_of_waits_is_not_a_cycle(services: Services, workflows: Workflows) -> None:
    outcomes = [
        wait(services, "B", "D")[0],
        wait(services, "C", "D")[0],
        wait(services, "A", "B")[0],
        wait(services, "A", "C")[0],
    ]

    assert Processed.CYCLE not in outcomes


def test_wait_closing_a_diamond_from_its_bottom_is_a_cycle(services: Services, workflows: Workflows) -> None:
    wait(services, "B", "D")
    wait(services, "C", "D")
    wait(services, "A", "B")
    wait(services, "A", "C")

    outcome, token = wait(services, "D", "A")

    assert outcome is Processed.CYCLE
    cycle = json.loads(waiter_row(services, "A", token)["cause"])["cycle"]
    assert cycle in (["D", "A", "B", "D"], ["D", "A", "C", "D"])


def test_wait_whose_dependency_already_resolved_does_not_count_towards_a_cycle(
    services: Services, workflows: Workflows
) -> None:
    wait(services, "B", "A")
    a = services.table.get_state("A")
    assert a is not None
    apply_status(services, "A", a.execution_arn, State.SUCCEEDED, output="{}")

    outcome, _ = wait(services, "A", "B")

    assert outcome is Processed.STARTED


def test_payload_waiting_on_itself_is_a_cycle(services: Services, workflows: Workflows) -> None:
    outcome, token = wait(services, "A", "A")

    assert outcome is Processed.CYCLE
    assert json.loads(waiter_row(services, "A", token)["cause"])["cycle"] == ["A", "A"]
    assert started(workflows) == []


def test_waiter_without_a_payload_id_is_never_checked_for_cycles(
    services: Services, workflows: Workflows
) -> None:
    wait(services, "B", "A")

    outcome = process_request(
        services, request(id="B", callback={"token": new_token()}), request_id="anonymous-wait"
    )

    assert outcome is Processed.STARTED
