"""What the machine must allow before the load benchmark parks tens of thousands of threads in
moto: Linux's thread limits, checked before a run, and the futex hash, widened for it.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

# moto runs each execution on threads of this process: a waiting example-waiter holds 6 (the
# execution, its program, the Map, its iteration, the task and its token wait). Linux bounds
# threads four ways, each too low by default for 10,000 waiters (70,000 threads): every thread
# is a pid (kernel.pid_max, 32,768 by default, shared by the whole machine), counts against
# kernel.threads-max and the user's process limit (ulimit -u), and takes about 7 memory maps
# (6.8 measured: its stack, the stack's guard page, the interpreter's per-thread memory) under
# vm.max_map_count (65,530 by default).
THREADS_PER_WAITER = 7  # 6 measured, and room for the stack's own threads
MAPS_PER_THREAD = 7
HEADROOM = 10_000  # the rest of the machine's pids and the interpreter's own maps


def thread_limits() -> dict[str, tuple[int, str]]:
    """Each Linux limit on this process's threads: (value, how to raise it). Empty elsewhere."""
    proc = Path("/proc/sys")
    if not proc.exists():
        return {}
    limits = {
        name: (int((proc / path).read_text().split()[0]), f"sysctl -w {name}={{need}}")
        for name, path in (
            ("kernel.pid_max", "kernel/pid_max"),
            ("kernel.threads-max", "kernel/threads-max"),
            ("vm.max_map_count", "vm/max_map_count"),
        )
    }
    soft, _hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != resource.RLIM_INFINITY:
        limits["ulimit -u"] = (soft, "ulimit -u {need}")
    return limits


def too_many_threads(size: int) -> str | None:
    """Why `size` waiters cannot all wait at once in this process, or None if they can."""
    threads = size * THREADS_PER_WAITER
    need = {
        "kernel.pid_max": threads + HEADROOM,
        "kernel.threads-max": threads + HEADROOM,
        "ulimit -u": threads + HEADROOM,
        "vm.max_map_count": MAPS_PER_THREAD * threads + HEADROOM,
    }
    short = [
        f"{name} is {value:,}, needs {need[name]:,} (as root: {how.format(need=need[name])})"
        for name, (value, how) in thread_limits().items()
        if value < need[name]
    ]
    if not short:
        return None
    return (
        f"{size:,} waiting executions need about {threads:,} threads in moto, and this machine "
        f"allows fewer: {'; '.join(short)}. Raise them for the run, or pass smaller --sizes."
    )


# Linux 6.16 and later give each threaded process a private futex hash, sized for its CPUs (16
# slots on 2 cores) however many threads it has. Every lock or condition wake walks one slot's
# chain of waiting threads, so with 60,000 parked threads each wake walks thousands: on kernel
# 6.18 here, 20,000 handoffs between two threads took 9.7 s beside 60,000 parked threads and
# 1.05 s beside none (`python -m bench.futex_handoffs`), and a 10,000-waiter run spent 2/3 of
# its CPU in futex_wake. A slot per thread gives the chains back a length of about one.
PR_FUTEX_HASH = 78
PR_FUTEX_HASH_SET_SLOTS = 1
PR_FUTEX_HASH_GET_SLOTS = 2


def _futex_hash_prctl(operation: int, slots: int = 0) -> tuple[int, int]:
    """prctl(PR_FUTEX_HASH, operation, slots): (its answer, errno). Linux only."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    zero = ctypes.c_ulong(0)
    answer = int(libc.prctl(PR_FUTEX_HASH, operation, ctypes.c_ulong(slots), zero, zero))
    return answer, ctypes.get_errno()


def futex_hash_slots() -> int:
    """Slots of this process's private futex hash; 0 if it uses the global one, -1 if none can be read."""
    if not sys.platform.startswith("linux"):
        return -1
    return _futex_hash_prctl(PR_FUTEX_HASH_GET_SLOTS)[0]


def widen_futex_hash(threads: int) -> str:
    """Size this process's private futex hash for `threads` waiting threads; say what was done."""
    if not sys.platform.startswith("linux"):
        return "no private futex hash to size (not Linux)"
    import os

    slots = 1 << max(threads - 1, 1).bit_length()  # the kernel takes powers of two
    answer, errno = _futex_hash_prctl(PR_FUTEX_HASH_SET_SLOTS, slots)
    if answer != 0:
        # EINVAL before 6.16: the kernel has one global hash, sized at boot, and nothing to set.
        return f"futex hash left as the kernel keeps it ({os.strerror(errno)})"
    return f"private futex hash: {futex_hash_slots():,} slots for about {threads:,} threads"
