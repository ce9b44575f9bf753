"""`python -m coordinator_tools.local up | demo`.

up    keep the offline stack running until Ctrl-C, and print how to reach it; exit 3 at once
      if the state file the CLI reads (COORDINATOR_LOCAL_STATE) names a stack that still
      answers: one file, one stack
demo  run the scenario of `make demo` and exit 1 if any expectation fails
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from pathlib import Path

from coordinator_tools.local import demo
from coordinator_tools.local.stack import Intervals, OfflineStack
from coordinator_tools.target import local_state, local_state_file, running_local_stack

ALREADY_RUNNING = 3


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--parameter takes Name=Value, not {pair!r}")
        parameters[name] = value
    return parameters


def up(arguments: argparse.Namespace) -> int:
    if running := running_local_stack():
        print(
            f"error: an offline stack is already running at {running} ({local_state_file()} names it): "
            "stop it first, or point this one at another file with COORDINATOR_LOCAL_STATE=PATH",
            file=sys.stderr,
        )
        return ALREADY_RUNNING
    log_path = Path(
        arguments.function_log or Path(tempfile.gettempdir()) / "coordinator-offline-functions.log"
    )
    with (
        log_path.open("a", encoding="utf-8", buffering=1) as function_log,
        OfflineStack(
            stack_name=arguments.stack_name,
            region=arguments.region,
            parameters=_parameters(arguments.parameter),
            intervals=Intervals(reconcile=arguments.reconcile_interval),
            function_log=function_log,
        ) as stack,
    ):
        print(f"endpoint  {stack.endpoint_url}")
        print(f"region    {stack.region}")
        print(f"account   {stack.account_id}")
        print(f"logs      {log_path}  (function logs, as CloudWatch would hold them)")
        print("outputs")
        for name, value in stack.outputs.items():
            print(f"  {name:32} {value}")
        queue = stack.outputs["ProcessQueueUrl"]
        print()
        print("try:")
        print(
            f"  aws --endpoint-url {stack.endpoint_url} --region {stack.region} sqs send-message "
            f'--queue-url {queue} --message-body \'{{"workflow": "example-target", "id": "hello"}}\''
        )
        print(
            f"  aws --endpoint-url {stack.endpoint_url} --region {stack.region} dynamodb get-item "
            f"--table-name {stack.outputs['TableName']} "
            '--key \'{"payload_id": {"S": "hello"}, "sk": {"S": "STATE"}}\''
        )
        with local_state(stack.endpoint_url, stack.region, dict(stack.outputs)) as state_file:
            try:
                print(f"  coordinator --local status hello      (the CLI finds this stack in {state_file})")
                print("(any access key works; Ctrl-C stops the stack)", flush=True)
                threading.Event().wait()
            except KeyboardInterrupt:
                print("stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coordinator_tools.local", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="log the stack's own workings")
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="run the stack until Ctrl-C")
    up_parser.add_argument("--stack-name", default="offline")
    up_parser.add_argument("--region", default="us-east-1")
    up_parser.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", help="a template parameter"
    )
    up_parser.add_argument(
        "--reconcile-interval", type=float, default=30.0, help="seconds between reconcile runs offline"
    )
    up_parser.add_argument("--function-log", help="file for the functions' logs")
    commands.add_parser("demo", help="run the demo scenario")
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if arguments.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if arguments.command == "up":
        return up(arguments)
    return demo.main()


if __name__ == "__main__":
    sys.exit(main())
