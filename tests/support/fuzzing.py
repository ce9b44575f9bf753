"""How many examples the property tests of the protocol run, and with which randomness.

`make test` runs a short, fixed-seed sample (`derandomize`): the same examples every run, so a
red CI always means a change, never luck. `make fuzz` sets `FUZZ_EXAMPLES` (each fuzz test of
tests/reliability/test_fuzz.py) and `FUZZ_MODEL_EXAMPLES` (the model-based test, whose examples
are whole histories) and passes a fresh `--hypothesis-seed`, which it prints first: a failure it
finds is replayed by running the same command with that seed (`make fuzz FUZZ_SEED=<seed>`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = "FUZZ_EXAMPLES"
FUZZ_MODEL_EXAMPLES = "FUZZ_MODEL_EXAMPLES"

_SLOW_WORLDS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


def fuzz_examples(variable: str) -> int | None:
    """The count `make fuzz` set in `variable`, else None (the short fixed run of make test)."""
    value = os.environ.get(variable)
    if not value:
        return None
    examples = int(value)
    if examples < 1:
        raise ValueError(f"{variable} must be a positive count, not {value!r}")
    return examples


def fuzz_settings(short_run: int, variable: str = FUZZ_EXAMPLES, **overrides: object) -> settings:
    """`short_run` fixed examples in make test; the count in `variable` under make fuzz, random."""
    examples = fuzz_examples(variable)
    return settings(
        max_examples=examples or short_run,
        derandomize=examples is None,
        deadline=None,
        database=None,
        suppress_health_check=_SLOW_WORLDS,
        **overrides,  # type: ignore[arg-type]
    )
