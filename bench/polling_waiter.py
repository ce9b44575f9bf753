"""Waiting without polling: the coordinator's wake-up against a polling waiter (the sensor
pattern), over the same dependencies, side by side in one run of the offline stack.

- **The coordinator.** `--waits` example-waiter payloads, all at once, each waiting on a
  dependency of its own (example-target) that runs one of `--durations` seconds. Latency is
  from the dependency's end (its execution's stopDate) to the waiter's resume (its task's
  TaskSucceeded). Calls per wait are the AWS calls the handlers make for the wait, counted by a
  botocore hook on every client of this process and kept when they concern a waited-on
  payload: the cycle check and the WAITER row put (process), the query of its waiters and the
  move (update-state), the callback and the notified stamp (dispatcher). The payload's own
  bookkeeping (claim, RUNNING, final state) is paid whether anyone waits or not and is left out,
  as the one StartExecution both kinds of waiter need.
- **The polling waiter.** A loop calling DescribeExecution on the dependency's execution every
  N seconds, from the moment its wait began (the waiter's submission; the execution's ARN is
  deterministic, so a sensor knows it before the execution exists, and an
  ExecutionDoesNotExist answer is a call too) until the execution is final. N = 1 s runs for
  real, in threads beside the coordinator's waits and against the same executions. Longer N
  would make `make bench` wait minutes per poll, so N = 5, 30 and 60 s are replayed on a
  simulated clock over the same waits: polls at the wait's start + k·N, each answered after the
  median DescribeExecution latency the real pollers met, the first poll at or after the
  dependency's stopDate seeing it final. The replay of N = 1 s next to the real run of it shows
  how close the replay is.

Offline the event sources are pollers themselves (their intervals are printed with the
figures) and handlers run one at a time, so the coordinator's latency here is an upper bound of
what AWS's push delivery gives; its call count is the protocol's, the same as deployed.

    .venv/bin/python -m bench.polling_waiter [--waits 18] [--durations 2,10,60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.report import Report, Row, emit, prose, table
from bench.wake_latency import percentile, resumed_at
from coordinator.states import FINAL_STATUSES

COMMAND = ".venv/bin/python -m bench.polling_waiter"
REPLAYED_EVERY = (1.0, 5.0, 30.0, 60.0)
REAL_EVERY = 1.0
# Step Functions' DescribeExecution quota (docs/scaling.md): a bucket of 300, 15 more a second.
DESCRIBE_REFILL = 15.0
# The benchmark's own look at the table: slow enough not to compete with the stack.
POLL = 0.25


@dataclass
class WaitCalls:
    """The handlers' AWS calls made for waits on the given payloads, by operation."""

    dependencies: frozenset[str]
    calls: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, str] = field(default_factory=dict)  # task token -> payload waited on
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_call(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        with self.lock:
            payload = self._payload_of(model.service_model.service_name, model.name, params)
            if payload in self.dependencies:
                self.calls[model.name] += 1

    def _payload_of(self, service: str, operation: str, params: Mapping[str, Any]) -> str | None:
        if service == "stepfunctions" and operation in ("SendTaskSuccess", "SendTaskFailure"):
            return self.tokens.get(params.get("taskToken", ""))
        if service != "dynamodb":
            return None
        values = params.get("ExpressionAttributeValues", {})
        if operation == "Query":
            if params.get("IndexName") == "by_waiter":  # the cycle check: what the dependency waits on
                return _text(values.get(":w"))
            if _text(values.get(":w")) == "WAITER#":  # settle's query of the payload's waiters
                return _text(values.get(":p"))
            return None
        item = params.get("Item") or params.get("Key") or {}
        if not (_text(item.get("sk")) or "").startswith("WAITER#"):
            return None
        payload = _text(item.get("payload_id"))
        token = _text(item.get("task_token"))
        if payload is not None and token is not None:
            self.tokens[token] = payload
        return payload


def _text(value: Any) -> str | None:
    return value.get("S") if isinstance(value, dict) else None


@dataclass(frozen=True)
class Wait:
    """One wait: its dependency, how long that ran, and when its waiter asked."""

    dependency: str
    waiter: str
    seconds: int
    execution_arn: str
    submitted: datetime


@dataclass(frozen=True)
class Outcome:
    wait: Wait
    stopped: datetime
    resumed: datetime  # the coordinator's callback reached the waiter
    polled_calls: int  # the real polling waiter's DescribeExecution calls
    polled_seen: datetime  # when the real polling waiter saw the execution final
    call_seconds: list[float]  # how long each of its DescribeExecution calls took


def poll_for_real(stepfunctions: Any, execution_arn: str, every: float) -> tuple[int, datetime, list[float]]:
    """The sensor pattern: DescribeExecution every `every` seconds until the execution is final."""
    calls, took = 0, []
    next_poll = time.monotonic()
    while True:
        started = time.perf_counter()
        calls += 1
        try:
            status = stepfunctions.describe_execution(executionArn=execution_arn)["status"]
        except stepfunctions.exceptions.ExecutionDoesNotExist:
            status = None
        took.append(time.perf_counter() - started)
        if status in FINAL_STATUSES:
            return calls, datetime.now(UTC), took
        next_poll += every
        time.sleep(max(0.0, next_poll - time.monotonic()))


def one_wait(stack: Any, stepfunctions: Any, wait: Wait) -> Outcome:
    """The coordinator's wait and a real polling waiter on the same dependency, side by side."""
    stack.submit(
        {
            "workflow": "example-waiter",
            "id": wait.waiter,
            "input": {
                "dependencies": [
                    {
                        "workflow": "example-target",
                        "id": wait.dependency,
                        "input": {"wait_seconds": wait.seconds},
                    }
                ]
            },
        }
    )
    with ThreadPoolExecutor(max_workers=1) as poller:
        polled = poller.submit(poll_for_real, stepfunctions, wait.execution_arn, REAL_EVERY)
        waiter_row = stack.wait_for_payload(wait.waiter, timeout=wait.seconds + 300, poll=POLL)
        calls, seen, took = polled.result(timeout=wait.seconds + 300)
    if waiter_row["state"] != "SUCCEEDED":
        raise RuntimeError(f"{wait.waiter} ended {waiter_row['state']}")
    stopped = stepfunctions.describe_execution(executionArn=wait.execution_arn)["stopDate"]
    return Outcome(wait, stopped, resumed_at(stack, waiter_row["execution_arn"]), calls, seen, took)


def replay(outcome: Outcome, every: float, call_seconds: float) -> tuple[int, float]:
    """A polling waiter every `every` seconds on a simulated clock: (calls, latency seconds)."""
    waited = (outcome.stopped - outcome.wait.submitted).total_seconds()
    polls = max(0, int(-(-waited // every)))  # the first poll at or after the stop
    seen = polls * every + call_seconds
    return polls + 1, seen - waited


@dataclass(frozen=True)
class Line:
    """One kind of waiter's figures over the waits."""

    name: str
    how: str
    calls: dict[int, float]  # mean calls per wait, by dependency duration
    latencies: list[float]
    calls_per_hour: str
    sustained: str  # waits one account holds at once without throttling


def summarize(outcomes: list[Outcome], wait_calls: Counter[str], call_seconds: float) -> list[Line]:
    durations = sorted({o.wait.seconds for o in outcomes})
    per_wait = sum(wait_calls.values()) / len(outcomes)
    lines = [
        Line(
            "coordinator (event-driven)",
            "real",
            dict.fromkeys(durations, per_wait),
            [(o.resumed - o.stopped).total_seconds() for o in outcomes],
            "0 (a wait's count does not grow)",
            "not limited by waiting (wake-ups by SendTaskSuccess, 500/s)",
        ),
        Line(
            f"polling every {REAL_EVERY:.0f} s",
            "real",
            {d: statistics.mean(o.polled_calls for o in outcomes if o.wait.seconds == d) for d in durations},
            [(o.polled_seen - o.stopped).total_seconds() for o in outcomes],
            f"{3_600 / REAL_EVERY:,.0f}",
            f"{DESCRIBE_REFILL * REAL_EVERY:,.0f}",
        ),
    ]
    for every in REPLAYED_EVERY:
        replays = [(o, *replay(o, every, call_seconds)) for o in outcomes]
        lines.append(
            Line(
                f"polling every {every:.0f} s",
                "replayed",
                {d: statistics.mean(c for o, c, _ in replays if o.wait.seconds == d) for d in durations},
                [latency for _, _, latency in replays],
                f"{3_600 / every:,.0f}",
                f"{DESCRIBE_REFILL * every:,.0f}",
            )
        )
    return lines


def run(waits: int, durations: list[int]) -> tuple[list[Outcome], Counter[str], Any]:
    import boto3

    from coordinator.identity import execution_arn, execution_name
    from coordinator_tools.local import Intervals, OfflineStack

    stamp = datetime.now(UTC).strftime("%H%M%S")
    plan = [
        (f"poll-{stamp}-dep-{index}", f"poll-{stamp}-waiter-{index}", durations[index % len(durations)])
        for index in range(waits)
    ]
    counter = WaitCalls(frozenset(dependency for dependency, _, _ in plan))
    # Every client of this process, the handlers' included, comes from the default session,
    # which lends each new client its event hooks: one there sees every call before it is sent.
    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    if session is None:
        raise RuntimeError("boto3 made no default session")
    session.events.register("before-parameter-build", counter.on_call)
    intervals = Intervals(reconcile=3_600.0)  # no repairs: the event-driven path alone
    with OfflineStack(intervals=intervals) as stack:
        stepfunctions = stack.client("stepfunctions")
        machine = stack.state_machine_arn("example-target")

        def waited(planned: tuple[str, str, int]) -> Outcome:
            dependency, waiter, seconds = planned
            arn = execution_arn(machine, execution_name(dependency, 1))
            return one_wait(stack, stepfunctions, Wait(dependency, waiter, seconds, arn, datetime.now(UTC)))

        with ThreadPoolExecutor(max_workers=waits) as pool:
            outcomes = list(pool.map(waited, plan))
    return outcomes, counter.calls, intervals


def main(argv: list[str]) -> Report:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waits", type=int, default=18)
    parser.add_argument("--durations", default="2,10,60", help="seconds each dependency runs, cycled")
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON (for run_all)")
    arguments = parser.parse_args(argv)
    durations = [int(part) for part in arguments.durations.split(",")]
    outcomes, wait_calls, intervals = run(arguments.waits, durations)
    call_seconds = statistics.median(seconds for o in outcomes for seconds in o.call_seconds)
    lines = summarize(outcomes, wait_calls, call_seconds)
    command = f"{COMMAND} --waits {arguments.waits} --durations {arguments.durations}"

    report = Report("Waiting without polling: the coordinator against a polling waiter")
    # The replay of the real poller's interval validates the replay; the summary keeps the real one.
    summarized = [line for line in lines if not (line.how == "replayed" and line.name == lines[1].name)]
    for line in summarized:
        calls = " / ".join(f"{line.calls[d]:.1f}" for d in sorted(line.calls))
        spans = " / ".join(str(d) for d in sorted(line.calls))
        report.rows.append(
            Row(
                f"wait on a dependency, {line.name} ({line.how})",
                command,
                f"{calls} calls per wait ({spans} s dependencies); "
                f"latency p50 {percentile(line.latencies, 0.5) * 1000:.0f} ms",
                "reported (side by side, same dependencies)",
                None,
            )
        )
    durations_seen = sorted({o.wait.seconds for o in outcomes})
    body = [
        [
            line.name,
            line.how,
            *(f"{line.calls[d]:.1f}" for d in durations_seen),
            line.calls_per_hour,
            f"{percentile(line.latencies, 0.5) * 1000:.0f}",
            f"{percentile(line.latencies, 0.95) * 1000:.0f}",
            f"{max(line.latencies) * 1000:.0f}",
            line.sustained,
        ]
        for line in lines
    ]
    breakdown = ", ".join(f"{name} {count / len(outcomes):.1f}" for name, count in sorted(wait_calls.items()))
    report.detail = "\n\n".join(
        [
            f"`{command}`",
            prose(
                f"""{len(outcomes)} waits at once, each on a dependency of its own that runs
                {", ".join(str(d) for d in durations_seen)} s (cycled). Calls per wait are AWS
                calls made for the wait; latency is from the dependency's stopDate to the
                waiter resuming (coordinator) or seeing it final (polling waiter), milliseconds.
                The polling rows marked replayed run on a simulated clock over the same waits,
                each poll answered after {call_seconds * 1000:.0f} ms (the median
                DescribeExecution the real pollers met); see the module's docstring."""
            ),
            table(
                [
                    "waiter",
                    "run",
                    *(f"calls/wait, {d} s dependency" for d in durations_seen),
                    "calls per hour of waiting",
                    "latency p50",
                    "p95",
                    "max",
                    "waits one account holds without throttling (DescribeExecution 15/s)",
                ],
                body,
            ),
            prose(
                f"""The coordinator's calls per wait, by operation: {breakdown}. They do not grow
                with the wait: the poller's grow with it, one per N seconds, and DescribeExecution's
                refill of 15 a second caps how many waits an account can poll at once. Offline
                poll intervals, which set the coordinator's latency here: SQS
                {intervals.queue * 1000:.0f} ms, stream {intervals.stream * 1000:.0f} ms,
                execution status {intervals.status * 1000:.0f} ms; handlers run one at a time."""
            ),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
