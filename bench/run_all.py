"""Run every benchmark, each in its own interpreter, and write docs/performance.md.

    make bench        (or: .venv/bin/python -m bench.run_all)

A benchmark module here exposes `main(argv) -> Report` and writes its report as JSON with
`--json PATH`. Modules that belong to other work (range throughput, wake latency) are run when
present and their output included as it is; an absent one is listed as pending.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Report, Row, markdown_table
from coordinator_tools.kit import ROOT

OURS = [
    "bench.calls_and_capacity",
    "bench.handler_overhead",
    "bench.cold_start",
    "bench.fanout",
    "bench.backfill_scaling",
    "bench.quota_simulation",
    "bench.polling_waiter",
]
# Others' benchmarks, with arguments that keep `make bench` near ten minutes, and a time limit.
OTHERS = {
    "bench.range_throughput": ("Range throughput", ["--quick"]),
    "bench.wake_latency": (
        "Waiting without polling (wake latency in the offline stack)",
        ["--waits", "50", "--payloads", "200"],
    ),
}
OTHERS_TIMEOUT = 300
OUTPUT = ROOT / "docs" / "performance.md"


def run(module: str, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "coordinator")])
    try:
        return subprocess.run(  # noqa: S603 (our own modules, our own interpreter)
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([module], 1, "", f"timed out after {timeout} s")


def failed(module: str, title: str, done: subprocess.CompletedProcess[str]) -> Report:
    tail = "\n".join(done.stderr.strip().splitlines()[-15:])
    return Report(
        title,
        [Row(title, f".venv/bin/python -m {module}", "failed to run", "-", False)],
        f"```\n{tail}\n```",
    )


def main() -> None:
    reports: list[tuple[Report, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for module in OURS:
            path = Path(scratch) / f"{module}.json"
            started = time.perf_counter()
            print(f"running {module} ...", flush=True)
            done = run(module, "--json", str(path))
            took = time.perf_counter() - started
            if done.returncode == 0 and path.exists():
                reports.append((Report.from_json(path.read_text()), took))
            else:
                reports.append((failed(module, module, done), took))
    for module, (title, args) in OTHERS.items():
        if not (ROOT / (module.replace(".", "/") + ".py")).exists():
            reports.append(
                (
                    Report(
                        title,
                        [Row(title, f".venv/bin/python -m {module}", "pending", "issue 8, item 6", None)],
                        "Pending: it runs in the offline stack, built in another piece of work.",
                    ),
                    0.0,
                )
            )
            continue
        print(f"running {module} ...", flush=True)
        started = time.perf_counter()
        done = run(module, *args, timeout=OTHERS_TIMEOUT)
        took = time.perf_counter() - started
        if done.returncode != 0:
            reports.append((failed(module, title, done), took))
        else:
            command = " ".join([".venv/bin/python -m", module, *args])
            row = Row(title, command, "see its section", "its own", None)
            reports.append((Report(title, [row], done.stdout.strip()), took))
    OUTPUT.write_text(render(reports))
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


def render(reports: list[tuple[Report, float]]) -> str:
    rows = [row for report, _ in reports for row in report.rows]
    met = sum(1 for row in rows if row.met is True)
    missed = sum(1 for row in rows if row.met is False)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run_all.py`); do not edit by hand. Every figure is a count, or a",
        "ratio of two timings taken side by side in the same run (interleaved, median of several): this",
        "machine is shared and noisy, so absolute times are only context. Scaling past one account's",
        "quotas: [scaling.md](scaling.md).",
        "",
        f"- date: {today}",
        f"- machine: {os.cpu_count()} cores (`nproc`), {platform.machine()}, {platform.system()}",
        f"- python: {platform.python_version()} ({sys.executable.replace(str(ROOT) + '/', '')})",
        f"- targets: {met} met, {missed} missed, {len(rows) - met - missed} reported without a target",
        "",
        "## Summary",
        "",
        markdown_table(rows),
        "",
    ]
    for report, took in reports:
        lines += [f"## {report.title}", ""]
        if took:
            lines += [f"_ran in {took:.0f} s_", ""]
        lines += [report.detail, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
