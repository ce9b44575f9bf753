"""What `make load` sets and checks about the machine before it parks 70,000 threads in moto."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import machine_limits

ROOT = Path(__file__).resolve().parents[2]


def test_the_futex_hash_gets_a_slot_per_thread_where_the_kernel_has_one_per_process() -> None:
    # A fresh interpreter: the hash is process-wide, and this one's should stay as it was.
    probe = textwrap.dedent(
        """
        import json, threading
        from bench import machine_limits
        threading.Thread(target=lambda: None).start()  # the kernel makes the private hash here
        said = machine_limits.widen_futex_hash(70_000)
        print(json.dumps({"said": said, "slots": machine_limits.futex_hash_slots()}))
        """
    )
    done = subprocess.run(  # noqa: S603 (our own probe, our own interpreter)
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)

    if not sys.platform.startswith("linux"):
        assert "not Linux" in result["said"]
    elif result["slots"] < 0:  # before Linux 6.16: one global hash, nothing to size
        assert result["said"].startswith("futex hash left as the kernel keeps it")
    else:
        assert result["slots"] == 131_072  # the power of two at or above 70,000
        assert result["said"] == "private futex hash: 131,072 slots for about 70,000 threads"


def test_a_machine_short_of_threads_is_refused_with_what_to_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        machine_limits,
        "thread_limits",
        lambda: {
            "kernel.pid_max": (32_768, "sysctl -w kernel.pid_max={need}"),
            "vm.max_map_count": (10_000_000, "sysctl -w vm.max_map_count={need}"),
        },
    )

    refused = machine_limits.too_many_threads(10_000)

    assert refused is not None
    assert "kernel.pid_max is 32,768, needs 80,000 (as root: sysctl -w kernel.pid_max=80000)" in refused
    assert "max_map_count" not in refused  # the limit that is high enough is not mentioned
    assert machine_limits.too_many_threads(1_000) is None  # 17,000 pids fit under 32,768


def test_the_handoff_benchmark_measures_both_hashes(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import futex_handoffs

    assert futex_handoffs.main(["--parked", "0", "50", "--handoffs", "50"]) == 0

    rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| 0 |") or line.startswith("| 50 |")
    ]
    assert len(rows) == 2
    if sys.platform.startswith("linux") and "-1 slots" not in rows[1]:
        assert "(64 slots) |" in rows[1]  # 50 parked threads: the power of two at or above 50
