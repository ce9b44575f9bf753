"""The Python client at work: a payload submitted, waited on and re-run, then a backfill.

Against the offline stack `coordinator local up` keeps running (`make local` in another shell):

    .venv/bin/python examples/client.py

or against a deployed one: `.venv/bin/python examples/client.py <stack-name>`.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

from coordinator_tools.client import Coordinator, ProcessMessage


def main() -> None:
    coordinator = Coordinator.from_stack(sys.argv[1]) if len(sys.argv) > 1 else Coordinator.local()

    payload_id = coordinator.submit("example-target", {"rows": 10}, id="client-example")
    print("submitted", payload_id)  # noqa: T201
    print("ended", coordinator.wait(payload_id, timeout=120)["state"])  # noqa: T201

    message_id = coordinator.rerun(payload_id)  # a new attempt, with the input it had
    print("re-run sent as message", message_id)  # noqa: T201

    tick = coordinator.submit(ProcessMessage(workflow="example-target", scheduleTime="2024-05-01T06:00:00Z"))
    print("scheduled tick", tick, coordinator.wait(tick, timeout=120)["state"])  # noqa: T201

    try:
        coordinator.submit("not a workflow name!")
    except ValidationError as error:
        print("refused before sending:", error.errors()[0]["msg"])  # noqa: T201

    backfill_id = coordinator.backfill(
        "example-target", schedule="0 1 * * *", start="2024-04-01T00:00:00Z", stop="2024-04-04T00:00:00Z"
    )
    print("backfill started", backfill_id)  # noqa: T201


if __name__ == "__main__":
    main()
