"""A discrete-event replay of two large loads against an account's quotas (no AWS involved).

1. One payload with 100,000 waiters finishes: update-state settles it (one finalize, a page
   of 100 rows per Query, one conditional move per waiter, all in one invocation), the stream
   carries each moved row to the dispatcher (SendTaskSuccess, then the notified stamp).
2. A backfill of 1,000,000 ticks: the Map state sends one process message per tick (with a
   task token) and waits; process claims and starts the tick's workflow; its end reaches
   update-state, the dispatcher resumes the Map iteration.

The limits are token buckets and partition throughput with the numbers docs/scaling.md cites
(Step Functions "Quotas", DynamoDB per-partition throughput, Lambda event source settings);
call latencies are assumptions, named below. The deployment's own settings (update-state's
timeout and asynchronous retries, the dispatcher's batch size, parallelization factor and
DISPATCH_CONCURRENCY,
reconcile's schedule and batch size) are read from template.yaml, so "as deployed" follows it.
Everything the design does at a limit is modelled: botocore's standard-mode backoff on
throttling, the update-state invocation's timeout and Lambda's asynchronous retries,
reconcile's bounded sweep afterwards, the stream's parallelization factor, Map concurrency.
It reports the time to drain and which limit held the flow back.

    .venv/bin/python -m bench.quota_simulation
"""

from __future__ import annotations

import math
import sys

from bench.quota_backfill import BackfillSetup, PagedBackfill, backfills, deployed_backfill, simulate_backfill
from bench.quota_fanout import (
    FanOutSetup,
    as_deployed,
    dispatch_concurrency,
    fanouts,
    move_concurrency,
    simulate_fanout,
)
from bench.quota_model import (
    BACKFILL_TARGET,
    DYNAMODB_LATENCY,
    FANIN_TARGET,
    HISTORY_EVENTS,
    INLINE_MAP_CONCURRENCY,
    PARTITION_RCU,
    PARTITION_WCU,
    RANGE_SECONDS_PER_TICK,
    SEND_TASK,
    START_EXECUTION,
    STATE_TRANSITIONS,
    STATES_LATENCY,
    STREAM_DELAY,
    WAITER_ROW_BYTES,
    duration,
    held_text,
)
from bench.report import Report, Row, emit, prose, table

__all__ = [
    "BackfillSetup",
    "PagedBackfill",
    "as_deployed",
    "deployed_backfill",
    "dispatch_concurrency",
    "move_concurrency",
    "simulate_backfill",
]

COMMAND = ".venv/bin/python -m bench.quota_simulation"


def main(argv: list[str]) -> Report:
    fan = [simulate_fanout(setup) for setup in fanouts()]
    fills = [simulate_backfill(setup) for setup in backfills()]
    fan_body = [
        [
            r["setup"].label,  # type: ignore[attr-defined]
            f"{r['moved_by_settle']:,}",
            r["attempts"],
            duration(float(r["all_moved"])),  # type: ignore[arg-type]
            duration(float(r["all_notified"])),  # type: ignore[arg-type]
            r["waits"].text(),  # type: ignore[attr-defined]
        ]
        for r in fan
    ]
    fill_body = [
        [
            r["setup"].label,  # type: ignore[attr-defined]
            duration(float(r["seconds"])),  # type: ignore[arg-type]
            f"{1_000_000 / float(r['seconds']):.0f}",  # type: ignore[arg-type]
            held_text(r["held"], float(r["seconds"])),  # type: ignore[arg-type]
        ]
        for r in fills
    ]
    deployed, before = fan[0], fan[1]
    deployed_setup: FanOutSetup = deployed["setup"]  # type: ignore[assignment]
    moved = int(deployed["moved_by_settle"])  # type: ignore[call-overload]
    attempts = int(deployed["attempts"])  # type: ignore[call-overload]
    if moved == deployed_setup.waiters:
        how = (
            f"all moved in {duration(float(deployed['all_moved']))} by "  # type: ignore[arg-type]
            f"{attempts} update-state attempt{'s' if attempts > 1 else ''}; resumes follow at the "
            f"dispatcher's pace, PF {deployed_setup.parallelization_factor}"
        )
    else:
        how = f"settle moves {moved:,} before its retries end; reconcile the rest"
    report = Report("Quota simulation")
    resumed = float(deployed["all_notified"])  # type: ignore[arg-type]
    report.rows.append(
        Row(
            f"100,000 waiters on one payload: all resumed, {deployed_setup.label}",
            COMMAND,
            f"{resumed:.0f} s ({duration(resumed)}; before: {duration(float(before['all_notified']))})",  # type: ignore[arg-type]
            f"<= {FANIN_TARGET:.0f} s (issue 19)",
            resumed <= FANIN_TARGET,
            note=f"{how}; held back by {deployed['waits'].text()}",  # type: ignore[attr-defined]
        )
    )
    deployed_fill, inline = fills[0], fills[1]
    report.rows.append(
        Row(
            f"1,000,000-tick backfill, as deployed ({deployed_fill['setup'].label})",  # type: ignore[attr-defined]
            COMMAND,
            f"{duration(float(deployed_fill['seconds']))} (before: {duration(float(inline['seconds']))}, "  # type: ignore[arg-type]
            f"{inline['setup'].label})",  # type: ignore[attr-defined]
            f"<= {BACKFILL_TARGET / 3600:.0f} h (issue 19)",
            float(deployed_fill["seconds"]) <= BACKFILL_TARGET,  # type: ignore[arg-type]
            note=held_text(deployed_fill["held"], float(deployed_fill["seconds"])),  # type: ignore[arg-type]
        )
    )
    for r in fills[2:4]:
        report.rows.append(
            Row(
                f"1,000,000-tick backfill, {r['setup'].label}",  # type: ignore[attr-defined]
                COMMAND,
                duration(float(r["seconds"])),  # type: ignore[arg-type]
                "reported",
                None,
                note=held_text(r["held"], float(r["seconds"])),  # type: ignore[arg-type]
            )
        )
    pages = math.ceil(100_000 / 100)
    page_rcu = math.ceil(100 * WAITER_ROW_BYTES / 4096)
    pass_rcu = pages * page_rcu
    report.detail = "\n\n".join(
        [
            prose(
                f"""Assumed latencies: DynamoDB {DYNAMODB_LATENCY * 1000:.0f} ms, Step Functions
                API {STATES_LATENCY * 1000:.0f} ms, stream delivery {STREAM_DELAY} s; WAITER rows
                of {WAITER_ROW_BYTES} bytes; the workflow of a tick runs 60 s. Quotas: StartExecution
                {START_EXECUTION[0]:,} + {START_EXECUTION[1]:.0f}/s, SendTask* {SEND_TASK[0]:,} +
                {SEND_TASK[1]:.0f}/s, state transitions {STATE_TRANSITIONS[0]:,} +
                {STATE_TRANSITIONS[1]:,.0f}/s, {PARTITION_WCU:,.0f} WCU and {PARTITION_RCU:,.0f} RCU
                per partition, inline Map {INLINE_MAP_CONCURRENCY} iterations."""
            ),
            prose(
                f"""The settle query reads every waiter row of the payload, resolved ones too
                (the filter applies after the read): at 100,000 waiters of {WAITER_ROW_BYTES}
                bytes that is {pages:,} pages of {page_rcu} RCU, {pass_rcu:,} RCU a full pass,
                about {pass_rcu / PARTITION_RCU:.0f} s of the partition's {PARTITION_RCU:,.0f}
                RCU/s and {pages * DYNAMODB_LATENCY:.0f} s of round trips, on every repeat. It
                is modelled above and does not hold the target back, so the query stays on the
                table (strongly consistent, which no index is)."""
            ),
            "**One payload, 100,000 waiters**",
            table(
                [
                    "setup",
                    "moved by settle",
                    "update-state attempts",
                    "all moved",
                    "all resumed",
                    "held back by",
                ],
                fan_body,
            ),
            "**A backfill of 1,000,000 ticks**",
            prose(
                f"""As deployed is a request that leaves every option to backfill.asl.json's
                Defaults state: map_mode "auto", which counts the ticks and, past its
                inline_limit, runs distributed with the distributed defaults: each read walks
                the cursors of its pages
                ({RANGE_SECONDS_PER_TICK * 1e6:.0f} µs a tick, bench.backfill_scaling), each page
                ends with its last tick and frees its place for the next page of the read, the
                next read starts when the last page of this one ends. The other rows are one
                pool of MaxConcurrency ticks, no pages. A Map Run's own starts of its child
                executions are taken not to spend the StartExecution API's tokens; the tick
                workflows' starts (by process) do."""
            ),
            table(["setup", "drained in", "ticks/s", "held back by"], fill_body),
            prose(
                f"""An inline Map keeps every iteration's events in the parent's history (at most
                {HISTORY_EVENTS:,} events, about 8 per iteration): a million ticks need the
                backfill to continue as a new execution every ~3,000 ticks (about
                {math.ceil(1_000_000 / (HISTORY_EVENTS // 8))} executions), or a Distributed Map,
                whose iterations are child executions with their own histories."""
            ),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
