"""What the CLI asks of a coordinator: payloads, waiters, the graph between them, what is stuck,
and what a backfill would do. Reads the table directly, in the protocol's own terms."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coordinator.identity import format_utc, scheduled_payload_id
from coordinator.schedule import RangeRequest, ticks
from coordinator.states import FINAL, RETRYABLE, InvalidCause, State
from coordinator.table import (
    BY_PENDING,
    BY_WAITER,
    STATE_KEY,
    WAITER_PREFIX,
    PayloadState,
    from_item,
    pending_shards,
)
from coordinator_tools.target import ExitCode, Target

BATCH_GET = 100


class NotFound(Exception):
    exit_code = ExitCode.NOT_FOUND


def console_link(region: str, execution_arn: str) -> str:
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def state_row(target: Target, payload_id: str) -> dict[str, Any]:
    """The payload's STATE row, read consistently; an unknown id is `NotFound`."""
    item = (
        target.client("dynamodb")
        .get_item(
            TableName=target.table_name,
            Key={"payload_id": {"S": payload_id}, "sk": {"S": STATE_KEY}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if not item:
        raise NotFound(f"no payload {payload_id!r}")
    return from_item(item)


def payload_status(target: Target, payload_id: str) -> dict[str, Any]:
    row = state_row(target, payload_id)
    status = {
        name: row.get(name)
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
    status["redrive_count"] = int(row.get("redrive_count") or 0)
    if gate := _gate_of(row):
        status.update(gate)
    if status["schedule_time"]:
        # UTC `...Z`, as ids are written (rows stored before that form kept their offset).
        status["schedule_time"] = format_utc(datetime.fromisoformat(status["schedule_time"]))
    status["console"] = (
        console_link(target.region, row["execution_arn"]) if row.get("execution_arn") else None
    )
    return status


# How many missing upstreams `status` names (the count says how many in all).
NAMED_MISSING = 20


def _gate_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """A gated payload's progress: `gated: 18 of 24 upstream done` and the missing ones named."""
    current = PayloadState.from_row(row)
    if not current.gate_upstreams:
        return None
    missing = current.gate_missing
    total = len(current.gate_upstreams)
    progress = f"{total - len(missing)} of {total} upstream done"
    if current.state is not State.GATED:
        progress += " (the gate has opened)" if not current.never_started else " (the gate ended)"
    return {"gated": progress, "missing": missing[:NAMED_MISSING], "missing_count": len(missing)}


def waiters(target: Target, payload_id: str) -> list[dict[str, Any]]:
    rows = _query_all(
        target,
        KeyConditionExpression="payload_id = :p AND begins_with(sk, :w)",
        ExpressionAttributeValues={":p": {"S": payload_id}, ":w": {"S": WAITER_PREFIX}},
        ConsistentRead=True,
    )
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
        for row in rows
    ]


def _query_all(target: Target, **request: Any) -> list[dict[str, Any]]:
    pages = target.client("dynamodb").get_paginator("query").paginate(TableName=target.table_name, **request)
    return [from_item(item) for page in pages for item in page.get("Items", [])]


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
        upstream = _query_all(
            target,
            IndexName=BY_WAITER,
            KeyConditionExpression="waiter_payload_id = :w",
            ExpressionAttributeValues={":w": {"S": node}},
        )
        for row in upstream:  # what node waits on
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
    found = []
    for shard in pending_shards():
        threshold = claim_seconds if shard.startswith(STATE_KEY) else waiting_seconds
        older_than = (now - timedelta(seconds=threshold)).isoformat(timespec="microseconds")
        rows = _query_all(
            target,
            IndexName=BY_PENDING,
            KeyConditionExpression="pending_shard = :s AND pending_since < :t",
            ExpressionAttributeValues={":s": {"S": shard}, ":t": {"S": older_than}},
        )
        for row in rows:
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
    found = []
    for shard in pending_shards():
        if not shard.startswith(STATE_KEY):
            continue
        rows = _query_all(
            target,
            IndexName=BY_PENDING,
            KeyConditionExpression="pending_shard = :s",
            FilterExpression="#state = :gated",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":s": {"S": shard}, ":gated": {"S": str(State.GATED)}},
        )
        for indexed in rows:
            try:
                row = state_row(target, indexed["payload_id"])  # the index carries no gate fields
            except NotFound:
                continue  # gone since the query (its retention ended)
            if row.get("state") != State.GATED:
                continue
            age = int((now - datetime.fromisoformat(row["claimed_at"])).total_seconds())
            if age < gated_seconds:
                continue
            found.append(
                {
                    "kind": "gate",
                    "payload_id": row["payload_id"],
                    "state": row["state"],
                    "execution_arn": row.get("execution_arn"),
                    "since": row["claimed_at"],
                    "age_seconds": age,
                    **(_gate_of(row) or {}),
                }
            )
    return sorted(found, key=lambda entry: entry["since"])


class Plan:
    START = "start"
    SUCCEEDED = "already succeeded"
    RERUN_FAILED = "re-run failed"
    REDRIVE_FAILED = "redrive failed (from its failed state)"
    RERUN = "re-run (replace)"
    IN_PROGRESS = "in progress"
    INVALID = "invalid (resolves failed)"
    RETRY_INVALID = "re-run (its state machine was missing)"


@dataclass
class TickPlan:
    tick: str
    payload_id: str
    action: str
    state: str | None


def backfill_plan(
    target: Target, *, workflow: str, schedule: str, start: str, stop: str, timezone: str, policy: str
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


def _plan_chunk(target: Target, chunk: list[tuple[str, str]], policy: str) -> list[TickPlan]:
    states = _batch_states(target, [payload_id for _, payload_id in chunk])
    plans = []
    for tick, payload_id in chunk:
        row = states.get(payload_id)
        state = row["state"] if row else None
        plans.append(TickPlan(tick, payload_id, _action(row, policy), state))
    return plans


def _action(row: dict[str, Any] | None, policy: str) -> str:
    if row is None:
        return Plan.START
    current = State(row["state"])
    if current not in FINAL:
        return Plan.IN_PROGRESS
    if policy == "all":
        return Plan.RERUN
    if current in RETRYABLE:
        return Plan.REDRIVE_FAILED if policy == "redrive" else Plan.RERUN_FAILED
    if current is State.INVALID and row.get("invalid_cause") == InvalidCause.DEPLOYMENT:
        return Plan.RETRY_INVALID
    return Plan.SUCCEEDED if current is State.SUCCEEDED else Plan.INVALID


def _batch_states(target: Target, payload_ids: list[str]) -> dict[str, dict[str, Any]]:
    keys = [{"payload_id": {"S": p}, "sk": {"S": STATE_KEY}} for p in dict.fromkeys(payload_ids)]
    found: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {
        target.table_name: {
            "Keys": keys,
            "ProjectionExpression": "payload_id, #s, invalid_cause",
            "ExpressionAttributeNames": {"#s": "state"},
        }
    }
    while request:
        response = target.client("dynamodb").batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(target.table_name, []):
            row = from_item(item)
            found[row["payload_id"]] = row
        request = response.get("UnprocessedKeys") or {}
    return found


def payload_states(target: Target, payload_ids: list[str]) -> dict[str, str]:
    """The state of each of `payload_ids` that has a row, read 100 at a time."""
    found: dict[str, str] = {}
    for offset in range(0, len(payload_ids), BATCH_GET):
        rows = _batch_states(target, payload_ids[offset : offset + BATCH_GET])
        found |= {payload_id: row["state"] for payload_id, row in rows.items()}
    return found


def plan_totals(plans: list[TickPlan]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for plan in plans:
        totals[plan.action] = totals.get(plan.action, 0) + 1
    return totals


def as_dicts(plans: list[TickPlan]) -> list[dict[str, Any]]:
    return [asdict(plan) for plan in plans]
