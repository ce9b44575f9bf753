"""coordinator: is it done, who waits on it, what is stuck.

Every command takes --json, and the global options before or after the command. Errors are
one line on stderr with a distinct exit code: 2 bad input, 3 unknown id, 4 unreachable
endpoint, 5 missing stack, 6 not succeeded (a payload, or any tick of a backfill), 7 timed
out, 8 still running (a re-run of a CLAIMED or PROCESSING payload, which would be dropped).
"""

from __future__ import annotations

from coordinator_tools.cli import backfill, payloads, schedule
from coordinator_tools.cli.backfill import BackfillProgress, failed_ticks, follow_backfill, show_backfill
from coordinator_tools.cli.common import Options, app

__all__ = [
    "BackfillProgress",
    "Options",
    "app",
    "backfill",
    "failed_ticks",
    "follow_backfill",
    "main",
    "payloads",
    "schedule",
    "show_backfill",
]


def main() -> None:
    app()
