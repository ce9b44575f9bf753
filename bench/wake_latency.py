"""Wake latency and nothing-lost throughput of the coordinator, measured in the offline stack.

    .venv/bin/python bench/wake_latency.py [--waits 200] [--concurrency 10] [--payloads 1000]

1. Wake latency: a waiter (example-waiter) on one dependency (example-target, 1 s of work),
   `--waits` times, `--concurrency` at a time. Latency is from the dependency's final state
   (its execution's stopDate) to the waiter's resume (its task's TaskSucceeded in the history):
   the status event, update-state, the stream, the dispatcher and SendTaskSuccess in between.
2. Nothing lost: `--payloads` payloads through process at once, a tenth of them waiters on
   nine of the others each. Every payload must end SUCCEEDED, every coordinated payload must
   have exactly one execution, and every waiter must have resumed with all its dependencies.

Offline the event sources are pollers, so their intervals dominate the latency (reported with
the figures); AWS's own delivery delays are different and not modelled. Handlers run one at a
time in this process (see `coordinator_tools.local.runtime`), so the throughput is a floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from coordinator_tools.local import Intervals, OfflineStack

COMMAND = "python bench/wake_latency.py"
# The benchmark's own polling for results: slow enough not to compete with the stack (latency
# is measured from the service's own timestamps, not from when this loop notices).
POLL = 0.25


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def resumed_at(stack: OfflineStack, waiter_arn: str) -> datetime:
    """When the waiter's task got its callback: its TaskSucceeded event."""
    paginator = stack.client("stepfunctions").get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=waiter_arn):
        for event in page["events"]:
            if event["type"] == "TaskSucceeded":
                return event["timestamp"]  # type: ignore[no-any-return]
    raise RuntimeError(f"{waiter_arn} never resumed")


def one_wait(stack: OfflineStack, run: str, index: int) -> float:
    dependency, waiter = f"{run}-dep-{index}", f"{run}-waiter-{index}"
    stack.submit(
        {
            "workflow": "example-waiter",
            "id": waiter,
            "input": {
                "dependencies": [
                    {"workflow": "example-target", "id": dependency, "input": {"wait_seconds": 1}}
                ]
            },
        }
    )
    waiter_row = stack.wait_for_payload(waiter, timeout=120, poll=POLL)
    if waiter_row["state"] != "SUCCEEDED":
        raise RuntimeError(f"{waiter} ended {waiter_row['state']}")
    dependency_row = stack.wait_for_payload(dependency, timeout=120, poll=POLL)
    described = stack.client("stepfunctions").describe_execution(executionArn=dependency_row["execution_arn"])
    stopped: datetime = described["stopDate"]
    return (resumed_at(stack, waiter_row["execution_arn"]) - stopped).total_seconds()


def wake_latency(stack: OfflineStack, waits: int, concurrency: int) -> list[float]:
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda index: one_wait(stack, "wake", index), range(waits)))


def nothing_lost(stack: OfflineStack, payloads: int) -> dict[str, Any]:
    waiters = payloads // 10
    targets = [f"load-{index}" for index in range(payloads - waiters)]
    per_waiter = max(1, len(targets) // max(1, waiters))
    messages: list[dict[str, Any]] = [{"workflow": "example-target", "id": target} for target in targets]
    dependencies_of: dict[str, list[str]] = {}
    for index in range(waiters):
        mine = targets[index * per_waiter : (index + 1) * per_waiter]
        dependencies_of[f"load-waiter-{index}"] = mine
        messages.append(
            {
                "workflow": "example-waiter",
                "id": f"load-waiter-{index}",
                "input": {"dependencies": [{"workflow": "example-target", "id": target} for target in mine]},
            }
        )
    sqs = stack.client("sqs")
    started = time.monotonic()
    for first in range(0, len(messages), 10):
        sqs.send_message_batch(
            QueueUrl=stack.outputs["ProcessQueueUrl"],
            Entries=[
                {"Id": str(offset), "MessageBody": json.dumps(message)}
                for offset, message in enumerate(messages[first : first + 10])
            ],
        )
    states = {
        message["id"]: stack.wait_for_payload(message["id"], timeout=900, poll=POLL)["state"]
        for message in messages
    }
    seconds = time.monotonic() - started
    executions: dict[str, int] = {}
    for workflow in ("example-target", "example-waiter"):
        for item in stack.executions(workflow):
            payload_id = str(item["name"]).rsplit("-a1-", 1)[0]
            executions[payload_id] = executions.get(payload_id, 0) + 1
    waiter_outputs = {
        waiter: json.loads(stack.payload_state(waiter)["output"] or "{}").get("dependencies_met")  # type: ignore[index]
        for waiter in dependencies_of
    }
    return {
        "payloads": len(messages),
        "seconds": seconds,
        "succeeded": sum(state == "SUCCEEDED" for state in states.values()),
        "started_once": sum(executions.get(payload_id) == 1 for payload_id in states),
        "started_twice": sum(count > 1 for count in executions.values()),
        "waiters": waiters,
        "dependencies_per_waiter": per_waiter,
        "waiters_resumed": sum(
            waiter_outputs[waiter] == len(mine) for waiter, mine in dependencies_of.items()
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--payloads", type=int, default=1000)
    arguments = parser.parse_args(argv)
    intervals = Intervals(reconcile=600.0)  # no repairs: the event-driven path alone
    with OfflineStack(intervals=intervals) as stack:
        latencies = wake_latency(stack, arguments.waits, arguments.concurrency)
        load = nothing_lost(stack, arguments.payloads)
    command = (
        f"{COMMAND} --waits {arguments.waits} --concurrency {arguments.concurrency} "
        f"--payloads {arguments.payloads}"
    )
    lost = load["payloads"] - load["succeeded"]
    p50, p95 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000
    rows = [
        (f"wake latency p50 ({len(latencies)} waits, {arguments.concurrency} at a time)", f"{p50:.0f} ms"),
        ("wake latency p95", f"{p95:.0f} ms"),
        (
            "wake latency mean / max",
            f"{statistics.mean(latencies) * 1000:.0f} ms / {max(latencies) * 1000:.0f} ms",
        ),
        (
            "payloads through process",
            f"{load['payloads']} ({load['waiters']} waiters on {load['dependencies_per_waiter']} each) "
            f"in {load['seconds']:.1f} s",
        ),
        ("payloads SUCCEEDED / lost", f"{load['succeeded']} / {lost}"),
        (
            "executions started exactly once / twice or more",
            f"{load['started_once']} / {load['started_twice']}",
        ),
        ("waiters resumed with every dependency met", f"{load['waiters_resumed']} / {load['waiters']}"),
        (
            "offline poll intervals",
            f"SQS {intervals.queue * 1000:.0f} ms, stream {intervals.stream * 1000:.0f} ms, "
            f"execution status {intervals.status * 1000:.0f} ms",
        ),
    ]
    print(f"`{command}`\n")
    print("| measure | value |")
    print("|---|---|")
    for measure, value in rows:
        print(f"| {measure} | {value} |")
    complete = (
        lost == 0
        and load["started_once"] == load["payloads"]
        and load["started_twice"] == 0
        and load["waiters_resumed"] == load["waiters"]
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
