"""A moto server on loopback with the coordinator's table and queue, and the CLI pointed at it."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from coordinator.services import Services
from coordinator.settings import Settings
from coordinator_tools.cli import app
from coordinator_tools.kit.resources import create_workflow
from coordinator_tools.kit.template import table_create_kwargs
from coordinator_tools.target import write_local_state
from tests.conftest import REGION, TABLE, WORKFLOW_PREFIX


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keep_werkzeug_off_swapped_streams() -> None:
    """The moto server's request log never writes to a stream a CliRunner swapped in.

    On its first request werkzeug gives its logger a StreamHandler of its own unless something up
    the logger tree already handles INFO (pytest's logging plugin does, `-p no:logging` removes
    it). That handler keeps the `sys.stderr` of the moment, which during a CLI command is the
    runner's capture, closed when the command returns: every later request line was a logging
    error, and the lines written meanwhile landed in the command's output. A NullHandler counts
    as a handler, so werkzeug adds none; its warnings still propagate to the root logger.
    """
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.WARNING)
    for handler in list(werkzeug.handlers):
        if isinstance(handler, logging.StreamHandler):
            werkzeug.removeHandler(handler)  # bound by werkzeug to some earlier stream
    if not any(isinstance(handler, logging.NullHandler) for handler in werkzeug.handlers):
        werkzeug.addHandler(logging.NullHandler())


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    keep_werkzeug_off_swapped_streams()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def offline(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh table and queue on the server, and the state file `local up` would write."""
    import requests  # moto[server] brings it

    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    client = lambda service: boto3.client(service, endpoint_url=endpoint, region_name=REGION)  # noqa: E731
    client("dynamodb").create_table(**table_create_kwargs(table_name=TABLE))
    queue = client("sqs").create_queue(QueueName="coordinator-process")["QueueUrl"]
    dlq = client("sqs").create_queue(QueueName="coordinator-process-dlq")["QueueUrl"]
    account = client("sts").get_caller_identity()["Account"]
    sfn = client("stepfunctions")
    create_workflow(sfn, f"{WORKFLOW_PREFIX}ingest", account)
    outputs = {"TableName": TABLE, "ProcessQueueUrl": queue}
    state_file = tmp_path / "local.json"
    monkeypatch.setenv("COORDINATOR_LOCAL_STATE", str(state_file))
    write_local_state(endpoint, REGION, outputs, state_file)
    services = Services(
        settings=Settings(
            TABLE_NAME=TABLE,
            STATE_MACHINE_ARN_PREFIX=f"arn:aws:states:{REGION}:{account}:stateMachine:{WORKFLOW_PREFIX}",
            DEAD_LETTER_QUEUE_URL=dlq,
        ),
        dynamodb=client("dynamodb"),
        stepfunctions=sfn,
        sqs=client("sqs"),
    )
    return {"services": services, "queue": queue, "sqs": client("sqs"), "endpoint": endpoint}


@pytest.fixture
def cli() -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["--local", *args])

    return invoke
