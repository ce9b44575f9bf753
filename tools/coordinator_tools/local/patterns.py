"""Event patterns: the matching language of EventBridge rules and Lambda filter criteria.

The offline stack applies the template's own patterns (the status-change rule, the stream's
filter criteria) instead of restating what they select, and matches them with moto's own
matcher (`moto.events.models.EventPattern`, what moto's EventBridge applies to its rules) instead
of restating the language: `tests/unit/test_patterns.py` checks it, on the template's patterns,
against what AWS delivers.

What this module adds is a check when a pattern is loaded, because moto's matcher differs from
AWS in two ways a new pattern could meet:

- An operator it does not know matches every value (its evaluator ends in `return True`). So
  only exact values and the operators the tests check (`prefix`, `anything-but`, `exists`) are
  loaded; a pattern using anything else is refused, and a new operator in the template fails
  loudly offline rather than matching everything.
- It reads the event as dotted paths, so a field holding an object is absent to `exists` (AWS's
  operators work on leaf nodes only: keep `exists` on leaves, as the template does), and an event
  key holding a dot (`"a.b"`) reads as the path `a` then `b`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

_OPERATORS = frozenset({"prefix", "anything-but", "exists"})


class UnsupportedPattern(ValueError):
    """The pattern uses an operator the offline matcher does not implement."""


def load_pattern(pattern: str | dict[str, Any]) -> EventPattern:
    """A pattern ready to match, checked to use only the operators the tests check."""
    document = json.loads(pattern) if isinstance(pattern, str) else pattern
    _check(document)
    return EventPattern(json.dumps(document), document)


def _check(pattern: Any) -> None:
    if isinstance(pattern, dict):
        for value in pattern.values():
            _check(value)
        return
    if not isinstance(pattern, list):
        raise UnsupportedPattern(f"a pattern leaf must be a list of allowed values, not {pattern!r}")
    for allowed in pattern:
        if isinstance(allowed, dict):
            unknown = set(allowed) - _OPERATORS
            if unknown or len(allowed) != 1:
                raise UnsupportedPattern(f"unsupported pattern operator {sorted(allowed)}")


def matches(pattern: EventPattern, event: Any) -> bool:
    """Whether `event` matches `pattern`: every field of the pattern matches (AND)."""
    return isinstance(event, dict) and pattern.matches_event(cast(EventMessageType, event))


def matches_any(patterns: list[EventPattern], event: Any) -> bool:
    """Lambda filter criteria: a record is kept when any one filter matches."""
    return any(matches(pattern, event) for pattern in patterns)
