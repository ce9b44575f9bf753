"""The reconcile Lambda: a scheduled event in, the run's report out."""

from __future__ import annotations

from datetime import timedelta

from coordinator.identity import execution_name, now_utc, state_machine_arn
from coordinator.services import Services
from coordinator_tools.kit.events import load_event, request
from functions.reconcile.app import lambda_handler
from tests.conftest import Clock, FakeContext, Workflows

REPORT_KEYS = {
    "examined",
    "restarted",
    "settled",
    "waiters_moved",
    "deferred",
    "oldest_waiting_seconds",
    "oldest_claim_seconds",
    "errors",
}


def test_scheduled_run_returns_its_report(
    services: Services, workflows: Workflows, lambda_env: None, context: FakeContext
) -> None:
    report = lambda_handler(load_event("scheduled_reconcile"), context)

    assert set(report) == REPORT_KEYS
    assert report["examined"] == 0
    assert report["errors"] == []


def test_scheduled_run_repairs_a_crashed_claim_and_says_so(
    services: Services, workflows: Workflows, clock: Clock, lambda_env: None, context: FakeContext
) -> None:
    # The handler runs on the real clock: the claim is made an hour before it.
    clock.now = now_utc() - timedelta(hours=1)
    services.table.claim_payload(
        request(id="p-crashed"),
        state_machine_arn(services.settings.state_machine_arn_prefix, "ingest"),
        clock(),
        request_id="crashed-message",
    )

    report = lambda_handler(load_event("scheduled_reconcile"), context)

    assert (report["examined"], report["restarted"]) == (1, 1)
    assert report["oldest_claim_seconds"] >= 3600
    [execution] = workflows.executions("ingest")
    assert execution["name"] == execution_name("p-crashed", 1)
