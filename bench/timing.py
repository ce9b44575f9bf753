"""Timings that stand on a noisy machine.

Machines here are noisy (two cores, other work running): every figure a benchmark reports is a
count, or a ratio of two timings taken side by side in the same run (interleaved, median of
several). No benchmark asserts a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any


def interleaved(runs: int, **contenders: Callable[[int], float]) -> dict[str, list[float]]:
    """Run each contender `runs` times, alternating which goes first; each returns its seconds."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        order = names if run % 2 == 0 else list(reversed(names))
        for name in order:
            samples[name].append(contenders[name](run))
    return samples


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def stopwatch(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
