"""One offline stack per test module: template.yaml on embedded moto, the real ASL files running.

Starting a stack takes a few seconds, so a module's tests share one and keep apart by using
their own payload ids and backfill dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from coordinator_tools.local import OfflineStack
from coordinator_tools.local.stack import Intervals


@pytest.fixture(scope="module")
def stack() -> Iterator[OfflineStack]:
    # Reconcile ticks rarely: these tests show the event-driven path, not its repairs.
    with OfflineStack(intervals=Intervals(reconcile=60.0)) as running:
        yield running


def executions_of(stack: OfflineStack, workflow: str, payload_id: str) -> list[dict[str, object]]:
    """The executions started for one payload (every attempt), found by their deterministic names."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", payload_id).strip("-")
    return [item for item in stack.executions(workflow) if str(item["name"]).startswith(f"{slug}-a")]
