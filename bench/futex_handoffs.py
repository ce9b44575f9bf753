"""Why `make load` sizes its futex hash: lock handoffs beside many parked threads.

    .venv/bin/python -m bench.futex_handoffs                         # 0, 20,000 and 60,000 parked
    .venv/bin/python -m bench.futex_handoffs --parked 0 20000 --handoffs 5000

Each measurement is a fresh interpreter that parks N threads on events (as moto parks the
threads of waiting executions), then times two threads handing control back and forth through
two events: every handoff is a futex wake. It runs once with the private futex hash the kernel
gave the process and once with `bench.machine_limits.widen_futex_hash` (a slot per parked thread). The
figure is the ratio of the two in the same command. 60,000 parked threads need kernel.pid_max
and vm.max_map_count raised (docs/reliability.md, Load); `--parked` takes what the machine allows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

COMMAND = ".venv/bin/python -m bench.futex_handoffs"

PROBE = textwrap.dedent(
    """
    import json, sys, threading, time
    from bench import machine_limits

    parked, handoffs, widen = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "widen"
    said = machine_limits.widen_futex_hash(parked) if widen else "as the kernel sized it"
    release = threading.Event()
    for _ in range(parked):
        threading.Thread(target=release.wait, daemon=True).start()
    ping, pong = threading.Event(), threading.Event()

    def other_side():
        for _ in range(handoffs):
            ping.wait(); ping.clear(); pong.set()

    partner = threading.Thread(target=other_side)
    partner.start()
    began = time.perf_counter()
    for _ in range(handoffs):
        ping.set(); pong.wait(); pong.clear()
    seconds = time.perf_counter() - began
    partner.join()
    print(json.dumps({"seconds": seconds, "slots": machine_limits.futex_hash_slots(), "said": said}))
    """
)


def measure(parked: int, handoffs: int, widen: bool) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603 (our own probe, our own interpreter)
        [sys.executable, "-c", PROBE, str(parked), str(handoffs), "widen" if widen else "kernel"],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parked", type=int, nargs="+", default=[0, 20_000, 60_000])
    parser.add_argument("--handoffs", type=int, default=20_000)
    arguments = parser.parse_args(argv)
    print(f"`{COMMAND} --parked {' '.join(map(str, arguments.parked))} --handoffs {arguments.handoffs}`\n")
    print("| parked threads | hash as the kernel sized it | slot per thread | ratio |")
    print("|---|---|---|---|")
    for parked in arguments.parked:
        kernel = measure(parked, arguments.handoffs, widen=False)
        widened = measure(parked, arguments.handoffs, widen=True)
        print(
            f"| {parked:,} | {kernel['seconds']:.2f} s ({kernel['slots']} slots) | "
            f"{widened['seconds']:.2f} s ({widened['slots']} slots) | "
            f"{float(kernel['seconds']) / float(widened['seconds']):.1f} |",  # type: ignore[arg-type]
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
