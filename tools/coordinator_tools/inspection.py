"""What the CLI asks of a coordinator: payloads, waiters, the graph between them, what is stuck,
and what a backfill would do. Reads the table directly, in the protocol's own terms."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from coordinator.identity import format_utc, scheduled_payload_id
from coordinator.schedule import RangeRequest, ticks
from coordinator.states import FINAL, State, may_run_again
from coordinator.table import STATE_KEY, WAITER_PREFIX, PayloadState, PayloadTable, pending_shards
from coordinator_tools.target import ExitCode, Target

BATCH_GET = 100


class NotFound(Exception):
    exit_code = ExitCode.NOT_FOUND


def console_link(region: str, execution_arn: str) -> str:
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def table_of(target: Target) -> PayloadTable:
    """The target's table, read through the runtime's own operations."""
    return PayloadTable(target.client("dynamodb"), target.table_name)


def payload_state(target: Target, payload_id: str) -> PayloadState:
    """The payload's STATE row, read consistently; an unknown id is `NotFound`."""
    current = table_of(target).get_state(payload_id)
    if current is None:
        raise NotFound(f"no payload {payload_id!r}")
    return current


def payload_status(target: Target, payload_id: str) -> dict[str, Any]:
    current = payload_state(target, payload_id)
    status: dict[str, Any] = {
        name: getattr(current, name)
        for name in (
            "payload_id",
            "state",
            "attempt",
            "workflow",
            "execution_arn",
            "schedule_time",
            "claimed_at",
            "started_at",
            "finished_at",
            "updated_at",
            "error",
            "cause",
            "output",
            "output_ref",
        )
    }
    status["state"] = str(current.state)
    status["execution_arn"] = current.execution_arn or None
    status["redrive_count"] = current.redrive_count
    if gate := _gate_of(current):
        status.update(gate)
    if schedule_time := current.schedule_instant:
        # UTC `...Z`, as ids are written (rows stored before that form kept their offset).
        status["schedule_time"] = format_utc(schedule_time)
    status["console"] = console_link(target.region, current.execution_arn) if current.execution_arn else None
    return status


# How many missing upstreams `status` names (the count says how many in all).
NAMED_MISSING = 20


def _gate_of(current: PayloadState) -> dict[str, Any] | None:
    """A gated payload's progress: `gated: 18 of 24 upstream done` and the missing ones named."""
    if not current.gate_upstreams:
        return None
    missing = current.gate_missing
    total = len(current.gate_upstreams)
    progress = f"{total - len(missing)} of {total} upstream done"
    if current.state is not State.GATED:
        progress += " (the gate has opened)" if not current.never_started else " (the gate ended)"
    return {"gated": progress, "missing": missing[:NAMED_MISSING], "missing_count": len(missing)}


def waiters(target: Target, payload_id: str) -> list[dict[str, Any]]:
    return [
        {
            "waiter": row.get("waiter"),
            "waiter_payload_id": row.get("waiter_payload_id"),
            "since": row.get("registered_at"),
            "waiter_state": row.get("waiter_state"),
            "resolved_at": row.get("resolved_at"),
            "outcome": row.get("outcome"),
            "notified_at": row.get("notified_at"),
            "token_sha256": row["sk"].removeprefix(WAITER_PREFIX)[:16],
        }
        for row in table_of(target).waiters_on(payload_id)
    ]


@dataclass
class Graph:
    """Edges `dependency -> waiter` (the direction completion flows), labelled by waiter state."""

    root: str
    nodes: set[str] = field(default_factory=set)
    edges: set[tuple[str, str, str]] = field(default_factory=set)

    def mermaid(self) -> str:
        ids = {node: f"n{index}" for index, node in enumerate(sorted(self.nodes))}
        lines = ["graph LR"]
        for node, ident in ids.items():
            label = mermaid_quoted(node)
            lines.append(f"    {ident}[[{label}]]" if node == self.root else f"    {ident}[{label}]")
        for dependency, waiter, state in sorted(self.edges):
            lines.append(f"    {ids[dependency]} -->|{state}| {ids[waiter]}")  # a WaiterState
        return "\n".join(lines)

    def dot(self) -> str:
        lines = ["digraph dependencies {", "    rankdir=LR;"]
        for node in sorted(self.nodes):
            style = ", style=bold" if node == self.root else ""
            lines.append(f"    {dot_quoted(node)} [shape=box{style}];")
        for dependency, waiter, state in sorted(self.edges):
            lines.append(f"    {dot_quoted(dependency)} -> {dot_quoted(waiter)} [label={dot_quoted(state)}];")
        lines.append("}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "nodes": sorted(self.nodes),
            "edges": [{"dependency": d, "waiter": w, "state": s} for d, w, s in sorted(self.edges)],
        }


def mermaid_quoted(text: str) -> str:
    """A mermaid "..." label showing `text` as is: a payload id may hold any character.

    Inside quotes mermaid reads `#name;` and `#123;` as entities, so `#` itself is one too;
    `"` would end the label, `<` `>` would open HTML, and a line break would end the statement.
    """
    escaped = "".join(
        "#quot;" if char == '"' else f"#{ord(char)};" if char in "#<>" or ord(char) < 0x20 else char
        for char in text
    )
    return f'"{escaped}"'


def dot_quoted(text: str) -> str:
    r"""A DOT quoted id or label showing `text` as is.

    DOT unescapes only `\"` in quoted strings (`\\` stays two characters, which a label then
    shows as one), and a line break is written `\n`. Not JSON: `json.dumps` writes `\u00e9`
    for é, which Graphviz shows as `u00e9`.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def dependency_graph(target: Target, payload_id: str, depth: int = 2) -> Graph:
    """Payloads around `payload_id`: what it waits on and who waits on it, `depth` hops out."""
    payload_status(target, payload_id)  # unknown ids are an error, not an empty graph
    graph = Graph(root=payload_id, nodes={payload_id})
    frontier = deque([(payload_id, 0)])
    seen = {payload_id}
    while frontier:
        node, hops = frontier.popleft()
        if hops >= depth:
            continue
        for row in waiters(target, node):  # who waits on node
            waiter = row["waiter_payload_id"] or row["waiter"] or f"token {row['token_sha256']}"
            graph.edges.add((node, waiter, row["waiter_state"]))
            graph.nodes.add(waiter)
            if row["waiter_payload_id"] and waiter not in seen:
                seen.add(waiter)
                frontier.append((waiter, hops + 1))
        for row in table_of(target).waits_of(node):  # what node waits on
            dependency = row["payload_id"]
            graph.edges.add((dependency, node, row.get("waiter_state", "?")))
            graph.nodes.add(dependency)
            if dependency not in seen:
                seen.add(dependency)
                frontier.append((dependency, hops + 1))
    return graph


def stuck(
    target: Target, *, claim_seconds: int, waiting_seconds: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """CLAIMED/PROCESSING rows past `claim_seconds` and WAITING rows past `waiting_seconds`."""
    now = now or datetime.now(UTC)
    table = table_of(target)
    found = []
    for shard in pending_shards():
        threshold = claim_seconds if shard.startswith(STATE_KEY) else waiting_seconds
        for row in table.pending(shard, now - timedelta(seconds=threshold)):
            if row.get("state") == State.GATED:
                continue  # reconcile's visits reset its pending_since: `stuck_gates` lists it
            since = datetime.fromisoformat(row["pending_since"])
            found.append(
                {
                    "kind": "payload" if row["sk"] == STATE_KEY else "waiter",
                    "payload_id": row["payload_id"],
                    "state": row.get("state") or row.get("waiter_state"),
                    "execution_arn": row.get("execution_arn"),
                    "since": row["pending_since"],
                    "age_seconds": int((now - since).total_seconds()),
                }
            )
    return sorted(found, key=lambda entry: entry["since"])


def stuck_gates(target: Target, *, gated_seconds: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """GATED payloads gated for over `gated_seconds`, with their upstreams done and missing.

    A gate's wait is measured from its claim (`claimed_at`, when it was gated): reconcile, which
    visits every gate, resets the row's `pending_since` each time, so that would say "just now".
    """
    now = now or datetime.now(UTC)
    table = table_of(target)
    found = []
    for shard in pending_shards():
        if not shard.startswith(STATE_KEY):
            continue
        for indexed in table.pending(shard, None):  # its pending_since says nothing of its wait
            if indexed.get("state") != State.GATED:
                continue
            current = table.get_state(indexed["payload_id"])  # the index carries no gate fields
            if current is None or current.state is not State.GATED or current.claimed_at is None:
                continue  # moved on since the query
            age = int((now - datetime.fromisoformat(current.claimed_at)).total_seconds())
            if age < gated_seconds:
                continue
            found.append(
                {
                    "kind": "gate",
                    "payload_id": current.payload_id,
                    "state": str(current.state),
                    "execution_arn": current.execution_arn,
                    "since": current.claimed_at,
                    "age_seconds": age,
                    **(_gate_of(current) or {}),
                }
            )
    return sorted(found, key=lambda entry: entry["since"])


class Plan(StrEnum):
    """What a backfill would do with a tick."""

    START = "start"
    SUCCEEDED = "already succeeded"
    RERUN_FAILED = "re-run failed"
    REDRIVE_FAILED = "redrive failed (from its failed state)"
    RERUN = "re-run (replace)"
    IN_PROGRESS = "in progress"
    INVALID = "invalid (resolves failed)"
    RETRY_INVALID = "re-run (its state machine was missing)"


class Policy(StrEnum):
    """`--policy` of a backfill: which ticks that ran already it runs again, and how."""

    MISSING = "missing"  # only ticks never run, and those that may be retried (a new attempt)
    REDRIVE = "redrive"  # as `missing`, but a failed tick's execution is redriven
    ALL = "all"  # every tick, those that succeeded too (`replace`)


@dataclass
class TickPlan:
    tick: str
    payload_id: str
    action: Plan
    state: str | None


def backfill_plan(
    target: Target, *, workflow: str, schedule: str, start: str, stop: str, timezone: str, policy: Policy
) -> list[TickPlan]:
    """For every tick, what a backfill with `policy` would do. Starts nothing."""
    planned: list[TickPlan] = []
    chunk: list[tuple[str, str]] = []
    for tick in ticks(_range(schedule, start, stop, timezone)):
        chunk.append((format_utc(tick), scheduled_payload_id(workflow, tick)))
        if len(chunk) == BATCH_GET:
            planned.extend(_plan_chunk(target, chunk, policy))
            chunk = []
    if chunk:
        planned.extend(_plan_chunk(target, chunk, policy))
    return planned


def tick_count(*, schedule: str, start: str, stop: str, timezone: str) -> int:
    """How many ticks a backfill covers (and a bad schedule or range refused): no AWS call."""
    return sum(1 for _ in ticks(_range(schedule, start, stop, timezone)))


def _range(schedule: str, start: str, stop: str, timezone: str) -> RangeRequest:
    return RangeRequest.from_event({"start": start, "stop": stop, "schedule": schedule, "timezone": timezone})


def _plan_chunk(target: Target, chunk: list[tuple[str, str]], policy: Policy) -> list[TickPlan]:
    states = table_of(target).get_states([payload_id for _, payload_id in chunk])
    plans = []
    for tick, payload_id in chunk:
        current = states.get(payload_id)
        state = str(current.state) if current else None
        plans.append(TickPlan(tick, payload_id, _action(current, policy), state))
    return plans


def _action(current: PayloadState | None, policy: Policy) -> Plan:
    """What a backfill's message would do: process's own rule (`states.may_run_again`)."""
    if current is None:
        return Plan.START
    if current.state not in FINAL:
        return Plan.IN_PROGRESS
    if policy is Policy.ALL:
        return Plan.RERUN
    if may_run_again(current.state, current.invalid_cause):
        if current.state is State.INVALID:
            return Plan.RETRY_INVALID
        return Plan.REDRIVE_FAILED if policy is Policy.REDRIVE else Plan.RERUN_FAILED
    return Plan.SUCCEEDED if current.state is State.SUCCEEDED else Plan.INVALID


def payload_states(target: Target, payload_ids: list[str]) -> dict[str, str]:
    """The state of each of `payload_ids` that has a row, read 100 at a time."""
    return {
        payload_id: str(current.state)
        for payload_id, current in table_of(target).get_states(payload_ids).items()
    }


def plan_totals(plans: list[TickPlan]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for plan in plans:
        totals[plan.action] = totals.get(plan.action, 0) + 1
    return totals


def as_dicts(plans: list[TickPlan]) -> list[dict[str, Any]]:
    return [asdict(plan) for plan in plans]
