"""The offline stack's SAM translation (`coordinator_tools.local.cloudformation`)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from coordinator_tools.local.cloudformation import translate

ROOT = Path(__file__).resolve().parents[2]


def test_translating_the_template_leaves_no_unpublished_metrics_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="samtranslator"):
        # Each translation's metrics stay referenced by samtranslator until the next one replaces
        # them, and warn as they are collected if they were never published: every stack started
        # after the first in one process (a load run of two sizes) printed the warning.
        for name in ("first", "second"):
            template = translate(
                ROOT / "template.yaml",
                region="us-east-1",
                account_id="123456789012",
                stack_name=name,
                parameters={},
            )
        gc.collect()

    assert "ProcessFunction" in template["Resources"]
    assert not [record.getMessage() for record in caplog.records if "unpublished" in record.getMessage()]
