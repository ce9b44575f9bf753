"""The coordinator table: one STATE row per payload, one WAITER row per waiting task token.

`PayloadTable` is the table in the protocol's terms (docs/design.md), one module per part:

- `rows`: the rows as the protocol reads them (`PayloadState`, `Outcome`...), and their keys;
- `access`: the client, the one conditional write, and the reads of STATE and by_pending;
- `waiters`: WAITER rows, registered once and moved once from WAITING;
- `claims`: a STATE row's claims (an attempt, a redrive) and its moves to its end;
- `gates`: a gate's waiter rows and its gated row's moves out of GATED.
"""

from __future__ import annotations

from coordinator.table.access import is_condition_failure
from coordinator.table.claims import (
    MAX_CLAIM_ROUNDS,
    ClaimContention,
    ClaimRows,
    identity_conflict,
    may_rerun,
)
from coordinator.table.gates import GateRows
from coordinator.table.rows import (
    BY_PENDING,
    BY_WAITER,
    GATE_PREFIX,
    PENDING_SHARDS,
    STATE_KEY,
    WAITER_PREFIX,
    Outcome,
    PayloadState,
    Run,
    StateWrite,
    WaitingPage,
    from_item,
    gate_key,
    pending_shard,
    pending_shards,
)
from coordinator.table.waiters import WAITER_PAGE


class PayloadTable(ClaimRows, GateRows):
    """Access to the coordinator table, in the protocol's terms (docs/design.md)."""


__all__ = [
    "BY_PENDING",
    "BY_WAITER",
    "GATE_PREFIX",
    "MAX_CLAIM_ROUNDS",
    "PENDING_SHARDS",
    "STATE_KEY",
    "WAITER_PAGE",
    "WAITER_PREFIX",
    "ClaimContention",
    "Outcome",
    "PayloadState",
    "PayloadTable",
    "Run",
    "StateWrite",
    "WaitingPage",
    "from_item",
    "gate_key",
    "identity_conflict",
    "is_condition_failure",
    "may_rerun",
    "pending_shard",
    "pending_shards",
]
