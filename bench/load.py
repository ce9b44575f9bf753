"""Load in the offline stack: 10,000 waiters on one payload, and 10,000 payloads with one waiter each.

    .venv/bin/python -m bench.load                      # both shapes at 1,000 and 10,000 (make load)
    .venv/bin/python -m bench.load --sizes 100 1000     # smaller, same checks

Each run is a fresh offline stack (`coordinator_tools.local.OfflineStack`): template.yaml on an
embedded moto server executing the state machines, the handlers in this process, the event
sources as pollers. The waiters are real executions of `example-waiter`, started by hand
(StartExecution, no coordinator payload of their own), each sending one process message with
its task token for one dependency, as any workflow using the coordinator does.

- **fan-in** ("10,000 waiters on one payload"): every waiter depends on the same payload, of a
  gate workflow this benchmark adds (`<prefix>load-gate`): it sends its own task token to a
  queue of the benchmark and waits. The benchmark opens the gate only when every waiter is
  WAITING in the table, so update-state settles all of them at once (query pages of 100, one
  move each) and the dispatcher resumes them all.
- **fan-out** ("10,000 payloads with one waiter each"): waiter i depends on payload i of
  `example-target`; process starts each dependency, update-state settles it, the dispatcher
  resumes its one waiter.

Reconcile does not run (its schedule is pushed past the run): every wake-up comes from the
event-driven path, so "nothing lost" holds without repairs. After each run, and only then, the
benchmark checks from the services' own records:

1. every waiter execution SUCCEEDED with its dependency met (`dependencies_met` = 1), none
   FAILED or still RUNNING;
2. each dependency payload has exactly one execution (started once), SUCCEEDED, and its STATE
   row is SUCCEEDED;
3. every WAITER row moved out of WAITING and was notified once (`notified_at` set, outcome
   recorded), and nothing is left in the `by_pending` index (no WAITING, CLAIMED, PROCESSING);
4. every dead-letter queue of the stack is empty, and no function invocation errored.

A run that breaks any of these fails the command (exit 1). The figure is the time from the
first StartExecution to the stack's status event of the last waiter's end, and the ratio of
the larger run over the smaller of the same shape, measured in the same command (linear is
the ratio of the sizes). The handlers run one at a time in this process (see
`coordinator_tools.local.runtime`), so the times are a ceiling of what the offline stack
takes, not a figure of AWS. moto holds about 6 threads per waiting execution; the command
checks the machine's thread limits before a run (docs/reliability.md, Load).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.load_gate import GATE_PAYLOAD, GATE_TOKENS_QUEUE, GATE_WORKFLOW, create_gate, open_gate
from bench.machine_limits import THREADS_PER_WAITER, too_many_threads, widen_futex_hash
from coordinator_tools.local import Intervals, OfflineStack

COMMAND = ".venv/bin/python -m bench.load"
WAITER_WORKFLOW = "example-waiter"
TARGET_WORKFLOW = "example-target"
# The benchmark's own polling for progress: slow enough not to compete with the stack.
POLL = 1.0
STEADY_TIMEOUT = 7200.0


@dataclass
class Run:
    shape: str
    size: int
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    checks: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (observed, expected)
    invocations: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    timeout: float = STEADY_TIMEOUT  # for each wait of the run; past it the run stalled
    stalled: str = ""

    @property
    def held(self) -> bool:
        return (
            not self.stalled
            and self.errors == 0
            and all(observed == expected for observed, expected in self.checks.values())
        )


# -- driving -------------------------------------------------------------------------------------


def start_waiters(
    stack: OfflineStack, run: str, dependency_of: Callable[[int], dict[str, Any]], size: int
) -> None:
    """StartExecution of `size` example-waiter executions, each with one dependency."""
    sfn = stack.client("stepfunctions")
    machine = stack.state_machine_arn(WAITER_WORKFLOW)
    for index in range(size):
        sfn.start_execution(
            stateMachineArn=machine,
            name=f"{run}-w{index}",
            input=json.dumps({"dependencies": [dependency_of(index)]}),
        )


def count_waiting(stack: OfflineStack, payload_id: str) -> int:
    """WAITER rows of `payload_id` still WAITING (consistent query, every page)."""
    pages = (
        stack.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=stack.outputs["TableName"],
            KeyConditionExpression="payload_id = :p AND begins_with(sk, :w)",
            FilterExpression="waiter_state = :waiting",
            ExpressionAttributeValues={
                ":p": {"S": payload_id},
                ":w": {"S": "WAITER#"},
                ":waiting": {"S": "WAITING"},
            },
            ConsistentRead=True,
            Select="COUNT",
        )
    )
    return sum(int(page["Count"]) for page in pages)


def scan(stack: OfflineStack) -> list[dict[str, Any]]:
    """Every row of the table, as plain values (strongly consistent, every page)."""
    from coordinator.table import from_item  # the layer's decoding, on sys.path once a stack runs

    pages = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=stack.outputs["TableName"], ConsistentRead=True)
    )
    return [from_item(item) for page in pages for item in page["Items"]]


def wait_until(what: str, condition: Callable[[], bool], timeout: float = STEADY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(POLL)


class Ends:
    """The ends of waiter executions, as the stack's status events report them (no listing)."""

    def __init__(self, stack: OfflineStack) -> None:
        from coordinator.identity import execution_arn  # on sys.path once a stack runs

        # The ARNs of the waiter machine's executions, less their names.
        self.prefix = execution_arn(stack.state_machine_arn(WAITER_WORKFLOW), "")
        self.ended: set[str] = set()
        self._lock = threading.Lock()

    def hear(self, event: dict[str, Any]) -> None:
        detail = event["detail"]
        if detail["status"] != "RUNNING" and detail["executionArn"].startswith(self.prefix):
            with self._lock:
                self.ended.add(detail["executionArn"])

    def count(self) -> int:
        with self._lock:
            return len(self.ended)


# -- the two shapes -----------------------------------------------------------------------------


def fan_in(stack: OfflineStack, run: Run, ends: Ends) -> None:
    """`size` waiters on one payload of the gate workflow, settled at once."""
    gate_queue = create_gate(stack)
    dependency = {"workflow": GATE_WORKFLOW, "id": GATE_PAYLOAD}
    started = time.monotonic()
    start_waiters(stack, "in", lambda _index: dependency, run.size)
    run.phases["start waiters"] = time.monotonic() - started
    wait_until("every waiter WAITING", lambda: count_waiting(stack, GATE_PAYLOAD) == run.size, run.timeout)
    run.phases["all registered"] = time.monotonic() - started
    opened = time.monotonic()
    open_gate(stack, gate_queue)
    wait_until("every waiter ended", lambda: ends.count() == run.size, run.timeout)
    run.phases["gate open to last waiter resumed"] = time.monotonic() - opened
    run.seconds = time.monotonic() - started


def fan_out(stack: OfflineStack, run: Run, ends: Ends) -> None:
    """`size` waiters, waiter i on its own payload i of example-target."""
    started = time.monotonic()
    start_waiters(stack, "out", lambda index: {"workflow": TARGET_WORKFLOW, "id": f"out-{index}"}, run.size)
    run.phases["start waiters"] = time.monotonic() - started
    wait_until("every waiter ended", lambda: ends.count() == run.size, run.timeout)
    run.seconds = time.monotonic() - started


SHAPES: dict[str, tuple[str, Callable[[OfflineStack, Run, Ends], None]]] = {
    "fan-in": ("waiters on one payload", fan_in),
    "fan-out": ("payloads with one waiter each", fan_out),
}


# -- what must hold afterwards ---------------------------------------------------------------------


def check(stack: OfflineStack, run: Run) -> None:
    size = run.size
    waiter_runs = stack.executions(WAITER_WORKFLOW)
    succeeded = [item for item in waiter_runs if item["status"] == "SUCCEEDED"]
    run.checks["waiter executions SUCCEEDED"] = (len(succeeded), size)
    sfn = stack.client("stepfunctions")
    met = sum(
        json.loads(sfn.describe_execution(executionArn=item["executionArn"]).get("output") or "{}").get(
            "dependencies_met"
        )
        == 1
        for item in succeeded
    )
    run.checks["waiters resumed with their dependency met"] = (met, size)

    dependency_workflow = GATE_WORKFLOW if run.shape == "fan-in" else TARGET_WORKFLOW
    dependencies = 1 if run.shape == "fan-in" else size
    started = Counter(str(item["name"]).rsplit("-", 2)[0] for item in stack.executions(dependency_workflow))
    run.checks["dependency payloads started exactly once"] = (
        sum(count == 1 for count in started.values()) if len(started) == dependencies else 0,
        dependencies,
    )

    rows = scan(stack)
    states = [row for row in rows if row["sk"] == "STATE"]
    run.checks["dependency STATE rows SUCCEEDED"] = (
        sum(row["state"] == "SUCCEEDED" for row in states),
        dependencies,
    )
    waiter_rows = [row for row in rows if str(row["sk"]).startswith("WAITER#")]
    run.checks["WAITER rows resolved SUCCEEDED and notified once (outcome resumed)"] = (
        sum(
            row.get("waiter_state") == "SUCCEEDED"
            and bool(row.get("notified_at"))
            and row.get("outcome") == "resumed"
            for row in waiter_rows
        ),
        size,
    )
    run.checks["rows left in by_pending (WAITING, CLAIMED, PROCESSING)"] = (
        sum("pending_shard" in row for row in rows),
        0,
    )

    sqs = stack.client("sqs")
    leftovers = 0
    for url in sqs.list_queues().get("QueueUrls", []):
        if url.endswith(f"/{GATE_TOKENS_QUEUE}"):
            continue
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        leftovers += int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
    run.checks["messages left in any queue or dead-letter queue"] = (leftovers, 0)


# -- running and reporting ----------------------------------------------------------------------------


def measure(shape: str, size: int, timeout: float = STEADY_TIMEOUT) -> Run:
    """One run in a fresh stack; a run that stalls (a wait past `timeout`) is still checked."""
    run = Run(shape, size, timeout=timeout)
    lock = threading.Lock()

    def count(record: Any) -> None:
        with lock:
            run.invocations[record.function] += 1
            run.errors += int(record.errored)

    # Reconcile's schedule is pushed past the run: nothing may need a repair.
    with OfflineStack(intervals=Intervals(reconcile=STEADY_TIMEOUT * 2)) as stack:
        stack.runtime.listeners.append(count)
        ends = Ends(stack)
        assert stack.status_poller is not None
        stack.status_poller.listeners.append(ends.hear)
        try:
            SHAPES[shape][1](stack, run, ends)
        except Exception as stall:  # noqa: BLE001 - a stalled or broken run is reported, then checked
            run.stalled = f"{type(stall).__name__}: {stall}"
        try:
            check(stack, run)
        except Exception as broken:  # noqa: BLE001 - the report says the checks could not run
            run.stalled += f"; the checks could not run: {type(broken).__name__}: {broken}"
    return run


def report(runs: list[Run]) -> str:
    lines = [
        "| shape | size | time | per waiter | ratio to the smaller size | invocations | checks |",
        "|---|---|---|---|---|---|---|",
    ]
    smallest: dict[str, Run] = {}
    for run in runs:
        base = smallest.setdefault(run.shape, run)
        ratio = "-" if base is run else f"{run.seconds / base.seconds:.1f} (size x{run.size / base.size:.0f})"
        invocations = ", ".join(f"{name} {count}" for name, count in sorted(run.invocations.items()))
        failed = [name for name, (observed, expected) in run.checks.items() if observed != expected]
        verdict = (
            "all held"
            if run.held
            else "FAILED: "
            + "; ".join(
                [*([f"stalled ({run.stalled})"] if run.stalled else []), *failed]
                + ([f"{run.errors} function errors"] if run.errors else [])
            )
        )
        lines.append(
            f"| {run.shape}: {run.size:,} {SHAPES[run.shape][0]} | {run.size:,} | {run.seconds:.0f} s | "
            f"{run.seconds / run.size * 1000:.1f} ms | {ratio} | {invocations} | {verdict} |"
        )
    lines.append("")
    for run in runs:
        lines.append(
            f"**{run.shape}, {run.size:,}**: "
            + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in run.phases.items())
        )
        for name, (observed, expected) in run.checks.items():
            lines.append(f"- {name}: {observed:,} (expected {expected:,})")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--json", help="also write the runs here, as JSON")
    arguments = parser.parse_args(argv)
    refused = too_many_threads(max(arguments.sizes))
    if refused:
        print(refused, file=sys.stderr)
        return 2
    print(widen_futex_hash(max(arguments.sizes) * THREADS_PER_WAITER), file=sys.stderr)
    runs: list[Run] = []
    for shape in arguments.shapes:
        for size in sorted(arguments.sizes):
            began = datetime.now().astimezone()
            print(f"{began:%H:%M:%S} {shape} {size:,} ...", file=sys.stderr, flush=True)
            run = measure(shape, size)
            runs.append(run)
            # Each run's report as soon as it ends: a long run stopped later keeps what it measured.
            print(report([run]), file=sys.stderr, flush=True)
            if arguments.json:
                with open(arguments.json, "w") as out:
                    json.dump(
                        [
                            {**done.__dict__, "invocations": dict(done.invocations), "held": done.held}
                            for done in runs
                        ],
                        out,
                        indent=2,
                    )
    print(f"`{COMMAND} --sizes {' '.join(map(str, sorted(arguments.sizes)))}`\n")
    print(report(runs))
    return 0 if all(run.held for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
