"""Refusing a waiter that would close a dependency cycle.

"A waits on B" is refused when B already waits on A, directly or through others: the wait
could only end by timing out. The walk follows the `by_waiter` index (payload -> the payloads
it waits on) from B, breadth first, and returns the path A -> B -> ... -> A.

The index is eventually consistent, so two waits that close a cycle registered in the same
instant can both pass; every wait has a timeout, so that rare pair still ends, as a timeout.
"""

from __future__ import annotations

from collections import deque

from coordinator.table import PayloadTable

# A bound on the walk, so a huge graph cannot make one registration unboundedly slow.
MAX_VISITS = 500


def find_cycle(table: PayloadTable, waiter: str, dependency: str) -> list[str] | None:
    """The cycle `waiter` waiting on `dependency` would close, or None."""
    if waiter == dependency:
        return [waiter, waiter]
    came_from: dict[str, str] = {dependency: waiter}
    frontier = deque([dependency])
    while frontier and len(came_from) <= MAX_VISITS:
        node = frontier.popleft()
        for upstream in table.dependencies_of(node):
            if upstream == waiter:
                return _path(came_from, node, waiter)
            if upstream not in came_from:
                came_from[upstream] = node
                frontier.append(upstream)
    return None


def _path(came_from: dict[str, str], last: str, waiter: str) -> list[str]:
    path = [last]
    while path[-1] != waiter:
        path.append(came_from[path[-1]])
    path.reverse()
    return [*path, waiter]
