"""Which coordinator the tools talk to: a deployed stack (by its Outputs) or the offline one.

A deployed stack is found by name through CloudFormation. The offline stack writes its
endpoint and Outputs to a small JSON file when it comes up (`local up`); `--local` reads it,
`--endpoint-url` points the clients at any endpoint (the Outputs still come from the file or
from CloudFormation there).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

DEFAULT_STATE_FILE = Path.home() / ".cache" / "callback-coordinator" / "local.json"
# Short timeouts and few retries: an operator waiting on a dead endpoint wants to know now.
TOOL_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"mode": "standard", "max_attempts": 2})


class TargetError(Exception):
    """The coordinator could not be found or reached; `exit_code` says which."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def local_state_file() -> Path:
    return Path(os.environ.get("COORDINATOR_LOCAL_STATE", DEFAULT_STATE_FILE))


def write_local_state(
    endpoint_url: str, region: str, outputs: dict[str, str], path: Path | None = None
) -> Path:
    """What `local up` leaves behind for the tools (no secrets: moto takes any credentials)."""
    target = path or local_state_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps({"endpoint_url": endpoint_url, "region": region, "outputs": outputs}, indent=2)
    )
    return target


def running_local_stack(path: Path | None = None) -> str | None:
    """The endpoint of the offline stack the state file names, if it still answers; None when
    there is no file, or it is one a stack that died left behind."""
    try:
        endpoint_url = str(json.loads((path or local_state_file()).read_text())["endpoint_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        urllib.request.urlopen(endpoint_url, timeout=2).close()  # noqa: S310 (the file's own URL)
    except urllib.error.HTTPError:
        return endpoint_url  # any HTTP answer: a server is there
    except (OSError, ValueError):
        return None
    return endpoint_url


@contextmanager
def local_state(
    endpoint_url: str, region: str, outputs: dict[str, str], path: Path | None = None
) -> Iterator[Path]:
    """The state file, for as long as the stack runs. On exit it is removed only if it still
    names this stack: another `local up` may have taken it over since."""
    written = write_local_state(endpoint_url, region, outputs, path)
    try:
        yield written
    finally:
        try:
            still_ours = json.loads(written.read_text()).get("endpoint_url") == endpoint_url
        except (OSError, ValueError):
            still_ours = False
        if still_ours:
            written.unlink(missing_ok=True)


@dataclass
class Target:
    outputs: dict[str, str]
    region: str
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            extra: dict[str, Any] = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
            if self.endpoint_url:
                # moto takes any credentials; a real endpoint uses the caller's own.
                extra.setdefault("aws_access_key_id", os.environ.get("AWS_ACCESS_KEY_ID", "offline"))
                extra.setdefault("aws_secret_access_key", os.environ.get("AWS_SECRET_ACCESS_KEY", "offline"))
            self._clients[service] = boto3.client(
                service, region_name=self.region, config=TOOL_CONFIG, **extra
            )
        return self._clients[service]

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise TargetError(f"the stack has no output {name}", ExitCode.MISSING_STACK) from None

    @property
    def table_name(self) -> str:
        return self.output("TableName")


class ExitCode(IntEnum):
    """The CLI's exit statuses."""

    OK = 0
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4
    MISSING_STACK = 5
    NOT_SUCCEEDED = 6
    TIMED_OUT = 7
    STILL_RUNNING = 8


def resolve(*, stack_name: str | None, endpoint_url: str | None, local: bool, region: str | None) -> Target:
    """The target from the options: --local, --endpoint-url, or --stack-name (CloudFormation)."""
    if local or (endpoint_url and not stack_name):
        path = local_state_file()
        if not path.exists():
            raise TargetError(
                f"no offline stack found ({path} is missing): start one with "
                "`python -m coordinator_tools.local up`",
                ExitCode.MISSING_STACK,
            )
        state = json.loads(path.read_text())
        return Target(
            outputs=state["outputs"],
            region=region or state["region"],
            endpoint_url=endpoint_url or state["endpoint_url"],
        )
    if not stack_name:
        raise TargetError(
            "say which coordinator: --stack-name NAME, --local or --endpoint-url URL", ExitCode.USAGE
        )
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    probe = Target(outputs={}, region=region, endpoint_url=endpoint_url)
    try:
        stacks = probe.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise TargetError(f"stack {stack_name} not found in {region}", ExitCode.MISSING_STACK) from error
    except (EndpointConnectionError, BotoCoreError) as error:
        raise TargetError(f"cannot reach AWS: {error}", ExitCode.UNREACHABLE) from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return Target(outputs=outputs, region=region, endpoint_url=endpoint_url)
