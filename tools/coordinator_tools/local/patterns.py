"""Event patterns: the matching language of EventBridge rules and Lambda filter criteria.

The offline stack applies the template's own patterns (the status-change rule, the stream's
filter criteria) instead of restating what they select. Implemented: exact values (strings,
numbers, booleans, null), `prefix`, `anything-but` (a value, a list, or `{"prefix": ...}`) and
`exists`, nested to any depth. A pattern using anything else is refused when loaded, so a new
operator in the template fails loudly offline rather than matching wrongly.
"""

from __future__ import annotations

import json
from typing import Any

_OPERATORS = frozenset({"prefix", "anything-but", "exists"})


class UnsupportedPattern(ValueError):
    """The pattern uses an operator the offline matcher does not implement."""


def load_pattern(pattern: str | dict[str, Any]) -> dict[str, Any]:
    """A pattern as data, checked to use only the implemented operators."""
    document = json.loads(pattern) if isinstance(pattern, str) else pattern
    _check(document)
    return document


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


_MISSING = object()


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether `event` matches `pattern`: every field of the pattern matches (AND)."""
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        actual = event.get(key, _MISSING)
        if isinstance(expected, dict):
            # A missing object has no leaves: only `exists: false` leaves below it can match.
            if not matches(expected, {} if actual is _MISSING else actual):
                return False
        elif not _leaf_matches(expected, actual):
            return False
    return True


def _leaf_matches(allowed: list[Any], actual: Any) -> bool:
    """Any one allowed value matches (OR); an array field matches if any element does."""
    if actual is not _MISSING and isinstance(actual, list):
        return any(_leaf_matches(allowed, element) for element in actual)
    return any(_value_matches(rule, actual) for rule in allowed)


def _value_matches(rule: Any, actual: Any) -> bool:
    if not isinstance(rule, dict):
        return actual is not _MISSING and actual == rule
    (operator, argument), *_ = rule.items()
    if operator == "exists":
        # `exists` looks at leaves: a field holding an object counts as present.
        return (actual is not _MISSING) == bool(argument)
    if actual is _MISSING:
        return False
    if operator == "prefix":
        return isinstance(actual, str) and actual.startswith(argument)
    # anything-but: a value, a list of values, or {"prefix": ...}
    if isinstance(argument, dict):
        return not _value_matches(argument, actual)
    excluded = argument if isinstance(argument, list) else [argument]
    return actual not in excluded


def matches_any(patterns: list[dict[str, Any]], event: Any) -> bool:
    """Lambda filter criteria: a record is kept when any one filter matches."""
    return any(matches(pattern, event) for pattern in patterns)
