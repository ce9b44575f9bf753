"""Cold start: import and first construction of each handler, against the floor of boto3 and
Powertools alone.

Each sample is a fresh interpreter (`python -c`), timing with `time.perf_counter` around the
import of the handler module and the construction of what its first invocation builds (the
services: settings and three boto3 clients with the coordinator's client configuration). The
floor does the same for `boto3` and `aws_lambda_powertools` (Logger, Tracer, Metrics
constructed) plus the same clients; `range` builds no client, so its floor has none. Samples
are interleaved across contenders; the figure is the ratio of medians. One more run per
module with `python -X importtime` says which imports the handler adds over the floor, and
reference contenders (the floor plus pydantic and the Powertools utility a handler is written
with) say how much of the ratio is those libraries' and how much the coordinator's own. Every
interpreter gets the literal variables template.yaml's Globals set on the functions.

    .venv/bin/python -m bench.cold_start
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

from bench import METRICS_NAMESPACE
from bench.report import Report, Row, emit, prose, table
from bench.timing import median
from coordinator_tools.kit import ROOT
from coordinator_tools.kit.environment import fake_environment

SAMPLES = 15
COMMAND = ".venv/bin/python -m bench.cold_start"

CLIENTS = """
from botocore.config import Config
config = Config(retries={"mode": "standard", "max_attempts": 5})
for name in ("dynamodb", "stepfunctions", "sqs"):
    boto3.client(name, config=config)
"""
FLOOR = """
import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
Logger(); Tracer(); Metrics()
"""
HANDLER = """
import functions.{module}.app
from coordinator.services import services
services()
"""
RANGE = """
import functions.range.app
"""
# What a handler cannot do without: pydantic with one model built (the first build pays for
# pydantic's schema machinery) and the Powertools utility it is written with.
PYDANTIC = """
from pydantic import BaseModel
class Probe(BaseModel):
    value: int = 0
"""
BATCH = "import aws_lambda_powertools.utilities.batch\n"
PARSER = "from aws_lambda_powertools.utilities.parser import models\n"

PYDANTIC_REFERENCE = "floor + pydantic (reference)"
BATCH_REFERENCE = "floor + pydantic + Powertools batch (reference)"
PARSER_REFERENCE = "floor + pydantic + Powertools parser (reference)"
REFERENCE_OF = {
    "process": BATCH_REFERENCE,
    "dispatcher": BATCH_REFERENCE,
    "update_state": PARSER_REFERENCE,
    "reconcile": PYDANTIC_REFERENCE,
}

CONTENDERS = {
    "floor (boto3 + Powertools + 3 clients)": FLOOR + CLIENTS,
    "floor (boto3 + Powertools)": FLOOR,
    PYDANTIC_REFERENCE: FLOOR + CLIENTS + PYDANTIC,
    BATCH_REFERENCE: FLOOR + CLIENTS + PYDANTIC + BATCH,
    PARSER_REFERENCE: FLOOR + CLIENTS + PYDANTIC + PARSER,
    "process": HANDLER.format(module="process"),
    "update_state": HANDLER.format(module="update_state"),
    "dispatcher": HANDLER.format(module="dispatcher"),
    "reconcile": HANDLER.format(module="reconcile"),
    "range": RANGE,
}
FLOOR_OF = {
    "process": "floor (boto3 + Powertools + 3 clients)",
    "update_state": "floor (boto3 + Powertools + 3 clients)",
    "dispatcher": "floor (boto3 + Powertools + 3 clients)",
    "reconcile": "floor (boto3 + Powertools + 3 clients)",
    "range": "floor (boto3 + Powertools)",
}


def deployed_variables() -> dict[str, str]:
    """The literal variables template.yaml's Globals give every function (references left out)."""
    from coordinator_tools.kit.template import load_template

    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    return {name: value for name, value in variables.items() if isinstance(value, str)}


def environment() -> dict[str, str]:
    """Every contender runs in the environment a deployed function has, faked AWS aside."""
    env = dict(os.environ)
    env.update(fake_environment(METRICS_NAMESPACE))
    env.update(deployed_variables())
    env.update(
        {
            "TABLE_NAME": "coordinator",
            "STATE_MACHINE_ARN_PREFIX": "arn:aws:states:us-east-1:123456789012:stateMachine:cc-",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "coordinator")]),
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    return env


def sample(code: str) -> float:
    timed = "import time\n_t = time.perf_counter()\n" + code + "\nprint(time.perf_counter() - _t)\n"
    done = subprocess.run(  # noqa: S603 (our own code, our own interpreter)
        [sys.executable, "-c", timed], capture_output=True, text=True, env=environment(), cwd=ROOT, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def import_times(code: str) -> dict[str, int]:
    """Self time (microseconds) of every module the code imports, from `-X importtime`."""
    done = subprocess.run(  # noqa: S603 (our own code, our own interpreter)
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=ROOT,
        check=True,
    )
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        found[name] = int(self_us)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] in ("aws_lambda_powertools", "coordinator", "functions") and len(parts) > 2:
        return ".".join(parts[:3])
    if parts[0] in ("aws_lambda_powertools", "coordinator", "functions", "pydantic", "botocore"):
        return ".".join(parts[:2])
    return parts[0]


def added_imports(module_code: str, floor_code: str) -> list[tuple[str, float]]:
    floor = import_times(floor_code)
    ours = import_times(module_code)
    added: Counter[str] = Counter()
    for name, micros in ours.items():
        if name not in floor:
            added[package_of(name)] += micros
    return [(name, micros / 1000) for name, micros in added.most_common(8)]


def main(argv: list[str]) -> Report:
    samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    names = list(CONTENDERS)
    sample(FLOOR)  # warm the file cache, compile bytecode
    for name in names:
        sample(CONTENDERS[name])
    for run in range(SAMPLES):
        for name in names if run % 2 == 0 else reversed(names):
            samples[name].append(sample(CONTENDERS[name]))
    report = Report("Cold start")
    body = []
    added_body = []
    for name, floor_name in FLOOR_OF.items():
        ratio = median(samples[name]) / median(samples[floor_name])
        body.append([name, f"{median(samples[name]) * 1000:.0f}", floor_name, f"{ratio:.2f}"])
        report.rows.append(
            Row(
                f"cold start of {name} vs its floor",
                COMMAND,
                f"{ratio:.2f}x",
                "at most 1.3x",
                ratio <= 1.3,
                note=f"median of {SAMPLES} fresh interpreters",
            )
        )
        heaviest = added_imports(CONTENDERS[name], CONTENDERS[floor_name])
        added_body.append([name, "; ".join(f"{pkg} {ms:.0f} ms" for pkg, ms in heaviest)])
    floor = median(samples["floor (boto3 + Powertools + 3 clients)"])
    for floor_name in ("floor (boto3 + Powertools + 3 clients)", "floor (boto3 + Powertools)"):
        body.append([floor_name, f"{median(samples[floor_name]) * 1000:.0f}", "", ""])
    for reference in (PYDANTIC_REFERENCE, BATCH_REFERENCE, PARSER_REFERENCE):
        took = median(samples[reference])
        body.append(
            [reference, f"{took * 1000:.0f}", "floor (boto3 + Powertools + 3 clients)", f"{took / floor:.2f}"]
        )
    for name, reference in REFERENCE_OF.items():
        ratio = median(samples[name]) / median(samples[reference])
        body.append([name, f"{median(samples[name]) * 1000:.0f}", reference, f"{ratio:.2f}"])
    report.detail = "\n\n".join(
        [
            prose(
                """Milliseconds on this machine (median; only the ratio is the figure). The handler
                side imports `functions.<name>.app` and builds the services its first invocation
                builds; the floor imports boto3 and Powertools and constructs Logger, Tracer and
                Metrics (and the same three clients). Every interpreter has the environment
                template.yaml's Globals give a deployed function. The references add to the floor
                what a handler cannot do without (pydantic with a model built, and the Powertools
                batch or parser utility it is written with): a handler's ratio to its reference is
                what the coordinator's own code costs."""
            ),
            table(["module", "ms (median)", "against", "ratio"], body),
            prose(
                """What each handler imports beyond its floor (self time summed by package, one
                `-X importtime` run; the heaviest first):"""
            ),
            table(["module", "imports beyond the floor"], added_body),
        ]
    )
    return report


if __name__ == "__main__":
    emit(main(sys.argv[1:]), sys.argv[1:])
