"""A fake AWS environment: credentials, region and Powertools settings, a Lambda context, a clock.

The variables must be set before anything creates a client or a Powertools logger (handler
modules build theirs on import), so the test suite and the benchmarks set them first thing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def fake_environment(metrics_namespace: str) -> dict[str, str]:
    """Fake credentials and a region, so no call can reach an account; Powertools without X-Ray."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_SERVICE_NAME": "callback-coordinator",
        "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }


def use_fake_environment(metrics_namespace: str) -> None:
    """Set `fake_environment` in this process."""
    os.environ.update(fake_environment(metrics_namespace))


@dataclass
class FakeContext:
    """The parts of a Lambda context Powertools reads."""

    function_name: str = "coordinator"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class Clock:
    """A clock moved by hand (the coordinator's services take any callable giving aware UTC)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
