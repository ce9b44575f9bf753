"""The offline stack's moto patches: each defect shown without its patch and fixed with it.

If a moto upgrade fixes a defect, its `..._without_the_patch` test fails: drop that patch. The
version guard makes the upgrade itself fail loudly first.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from coordinator_tools.local import moto_patches
from coordinator_tools.local.moto_patches import Invocation

ROLE = "arn:aws:iam::123456789012:role/offline-test"


@pytest.fixture
def executing_moto() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def stepfunctions(executing_moto: None) -> Any:
    return boto3.client("stepfunctions")


# A bound on waits that only catches a hang: a wait ends on its condition, long before this.
HANG_GUARD = 60.0


def wait_for_end(stepfunctions: Any, execution_arn: str) -> dict[str, Any]:
    """DescribeExecution once the execution has ended (moto's worker thread ends it)."""
    deadline = time.monotonic() + HANG_GUARD
    while (described := stepfunctions.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still running after {HANG_GUARD} s"
        time.sleep(0.02)
    return dict(described)


def story_of(stepfunctions: Any, execution_arn: str) -> str:
    """An execution's status, error and history events, for a failure message."""
    described = stepfunctions.describe_execution(executionArn=execution_arn)
    events = stepfunctions.get_execution_history(executionArn=execution_arn)["events"]
    kinds = ", ".join(event["type"] for event in events)
    status, error, cause = described["status"], described.get("error"), described.get("cause")
    return f"{execution_arn}: {status} {error} {cause} [{kinds}]"


def waiting_executions(count: int) -> tuple[Any, list[str], list[str]]:
    """`count` executions parked on task tokens: (client, execution ARNs, tokens, in start order)."""
    sqs = boto3.client("sqs")
    # A queue of its own: an execution of an earlier test, still running on its worker thread
    # after that test's moto was torn down, may yet send a token to a queue of the same name.
    queue_url = sqs.create_queue(QueueName=f"tokens-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    stepfunctions = boto3.client("stepfunctions")
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {"token.$": "$$.Task.Token", "n.$": "$.n"},
                },
                "End": True,
            }
        },
    }
    machine = stepfunctions.create_state_machine(
        name="waits", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    arns = [
        stepfunctions.start_execution(stateMachineArn=machine, name=f"w{n}", input=json.dumps({"n": n}))[
            "executionArn"
        ]
        for n in range(count)
    ]
    tokens: dict[int, str] = {}
    deadline = time.monotonic() + HANG_GUARD
    while len(tokens) < count:
        # Long polling: moto's receive waits on the queue's condition until a message is added,
        # instead of a loop of empty receives competing for the GIL with the execution threads.
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in received.get("Messages", []):
            body = json.loads(message["Body"])
            tokens[body["n"]] = body["token"]
        stories = [story_of(stepfunctions, arn) for n, arn in enumerate(arns) if n not in tokens]
        ended = [story for story in stories if ": RUNNING " not in story]
        assert not ended, f"executions ended without sending their token: {ended}"
        assert time.monotonic() < deadline, f"no token after {HANG_GUARD} s: {stories}"
    return stepfunctions, arns, [tokens[n] for n in range(count)]


def waiting_task_token(executing_moto: None) -> tuple[Any, str, str]:
    """An execution parked on a task token; returns (client, execution ARN, token)."""
    stepfunctions, (execution_arn,), (token,) = waiting_executions(1)
    return stepfunctions, execution_arn, token


CAUSE = json.dumps({"payload_id": "dep", "state": "FAILED"})


def test_send_task_failure_passes_its_cause_to_the_execution(executing_moto: None) -> None:
    with moto_patches.patched():
        stepfunctions, execution_arn, token = waiting_task_token(executing_moto)
        stepfunctions.send_task_failure(taskToken=token, error="DependencyFailed", cause=CAUSE)
        ended = wait_for_end(stepfunctions, execution_arn)
    assert (ended["error"], ended.get("cause")) == ("DependencyFailed", CAUSE)


def test_moto_drops_the_cause_of_send_task_failure_without_the_patch(executing_moto: None) -> None:
    stepfunctions, execution_arn, token = waiting_task_token(executing_moto)
    stepfunctions.send_task_failure(taskToken=token, error="DependencyFailed", cause=CAUSE)
    ended = wait_for_end(stepfunctions, execution_arn)
    assert ended["error"] == "DependencyFailed"
    assert ended.get("cause") is None


def two_unnamed_executions(stepfunctions: Any) -> list[str]:
    definition = {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 5, "End": True}}}
    machine = stepfunctions.create_state_machine(
        name="unnamed", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    return [
        stepfunctions.start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))["executionArn"]
        for n in (1, 2)
    ]


def test_unnamed_executions_get_distinct_generated_names(stepfunctions: Any) -> None:
    with moto_patches.patched():
        first, second = two_unnamed_executions(stepfunctions)
    assert first != second
    assert not first.endswith(":None")


def test_moto_names_unnamed_executions_none_without_the_patch(stepfunctions: Any) -> None:
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        two_unnamed_executions(stepfunctions)


def a_function(executing_moto: None) -> Any:
    iam = boto3.client("iam")
    iam.create_role(RoleName="offline-test", AssumeRolePolicyDocument="{}")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as package:
        package.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    client = boto3.client("lambda")
    client.create_function(
        FunctionName="echo",
        Runtime="python3.13",
        Role=ROLE,
        Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Environment={"Variables": {"TABLE_NAME": "payloads"}},
    )
    return client


def test_invocations_are_routed_with_the_function_environment(executing_moto: None) -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []

    def router(name: str, environment: dict[str, str], event: Any) -> Invocation:
        seen.append((name, environment, event))
        return Invocation(json.dumps({"echo": event}), errored=False)

    with moto_patches.patched(router):
        response = a_function(executing_moto).invoke(FunctionName="echo", Payload=json.dumps({"n": 1}))
    assert json.loads(response["Payload"].read()) == {"echo": {"n": 1}}
    assert "FunctionError" not in response
    assert seen[0][0] == "echo"
    assert seen[0][1]["TABLE_NAME"] == "payloads"


def test_a_routed_error_is_a_function_error_with_its_type(executing_moto: None) -> None:
    def router(name: str, environment: dict[str, str], event: Any) -> Invocation:
        return Invocation(
            json.dumps({"errorType": "InvalidRange", "errorMessage": "stop before start"}), True
        )

    with moto_patches.patched(router):
        response = a_function(executing_moto).invoke(FunctionName="echo", Payload="{}")
    assert response.get("FunctionError")
    assert json.loads(response["Payload"].read())["errorType"] == "InvalidRange"


def test_patches_refuse_any_other_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    with pytest.raises(moto_patches.UnsupportedMoto, match=r"5\.2\.5"):
        moto_patches.apply()


# -- the status point ----------------------------------------------------------------------------


def test_the_status_point_tells_every_start_and_end_after_the_status_is_final(stepfunctions: Any) -> None:
    heard: list[tuple[str, str]] = []
    hearing = threading.Condition()

    def listener(execution_arn: str) -> None:
        # What DescribeExecution says at the moment of telling: an end is told once final. The
        # start is told on the caller's thread and the end on the execution's, so a fast
        # execution's two tells can overlap: reading and recording under one lock keeps the
        # list in the order of the reads (else a start that read RUNNING could be recorded
        # after the end that read FAILED).
        with hearing:
            status = stepfunctions.describe_execution(executionArn=execution_arn)["status"]
            heard.append((execution_arn, status))
            hearing.notify_all()

    machines = {
        kind: stepfunctions.create_state_machine(name=kind, definition=json.dumps(definition), roleArn=ROLE)[
            "stateMachineArn"
        ]
        for kind, definition in {
            "passes": {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}},
            "fails": {"StartAt": "No", "States": {"No": {"Type": "Fail", "Error": "Nope", "Cause": "asked"}}},
            "pauses": {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 30, "End": True}}},
        }.items()
    }
    with moto_patches.patched(status_listener=listener):
        arns = {
            kind: stepfunctions.start_execution(stateMachineArn=arn, name=f"{kind}-1")["executionArn"]
            for kind, arn in machines.items()
        }
        for kind in ("passes", "fails"):
            wait_for_end(stepfunctions, arns[kind])
        stepfunctions.stop_execution(executionArn=arns["pauses"])
        wait_for_end(stepfunctions, arns["pauses"])
        with hearing:
            hearing.wait_for(lambda: len(heard) >= 6, timeout=HANG_GUARD)
    told: dict[str, list[str]] = {}
    for arn, status in heard:
        told.setdefault(arn, []).append(status)
    # The start is told with the execution already visible; it may have ended by then.
    assert {arn: len(statuses) for arn, statuses in told.items()} == {arn: 2 for arn in arns.values()}
    assert told[arns["passes"]][-1] == "SUCCEEDED"
    assert told[arns["fails"]][-1] == "FAILED"
    assert told[arns["pauses"]] == ["RUNNING", "ABORTED"]


def test_moto_tells_nobody_of_an_execution_without_the_patch(stepfunctions: Any) -> None:
    heard: list[str] = []
    machine = stepfunctions.create_state_machine(
        name="passes",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn=ROLE,
    )["stateMachineArn"]
    with moto_patches.patched(status_listener=heard.append):
        pass  # patched, then reverted: the listener goes with the patches
    wait_for_end(
        stepfunctions, stepfunctions.start_execution(stateMachineArn=machine, name="p")["executionArn"]
    )
    assert heard == []


# -- the SQS costs --------------------------------------------------------------------------------


def counted(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[int]:
    """Count reads of property `owner.name` (a one-element list, so the caller sees it grow)."""
    calls = [0]
    original = owner.__dict__[name]

    def read(self: Any) -> Any:
        calls[0] += 1
        return original.fget(self)

    monkeypatch.setattr(owner, name, property(read))
    return calls


def a_queue_of(messages: int, **attributes: str) -> tuple[Any, str]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="load", Attributes=attributes)["QueueUrl"]
    for first in range(0, messages, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "MessageBody": f"m{first + n}"} for n in range(min(10, messages - first))
            ],
        )
    return sqs, url


def receive_ten_from_a_hundred(monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    from moto.sqs.models import Queue

    sqs, url = a_queue_of(100)
    builds = counted(monkeypatch, Queue, "attributes")
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    return builds[0], bodies


def test_receive_reads_no_queue_attributes_per_message_with_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_patches.patched():
        builds, bodies = receive_ten_from_a_hundred(monkeypatch)
    assert builds == 0
    assert len(bodies) == 10


def test_moto_builds_every_queue_attribute_for_every_received_message_without_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds, bodies = receive_ten_from_a_hundred(monkeypatch)
    assert builds >= 10 * 3  # three builds per message, each counting all 100 messages
    assert len(bodies) == 10


@pytest.mark.parametrize("patched", [False, True])
def test_an_expired_message_is_not_received_either_way(executing_moto: None, patched: bool) -> None:
    from moto.sqs.models import sqs_backends

    sqs, url = a_queue_of(1, MessageRetentionPeriod="60")
    (message,) = sqs_backends["123456789012"]["us-east-1"].get_queue("load")._messages
    message.sent_timestamp -= 120_000  # sent two minutes ago, kept for one
    with moto_patches.patched() if patched else contextlib.nullcontext():
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []


def send_one_to_a_queue_of_two_hundred(monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, str]]:
    from moto.sqs.models import Message

    sqs, url = a_queue_of(200)
    clocks = counted(monkeypatch, Message, "visible")
    sqs.send_message(QueueUrl=url, MessageBody="one more", DelaySeconds=60)
    reads = clocks[0]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return reads, counts


def test_send_counts_no_messages_and_the_counts_stay_right_with_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_patches.patched():
        reads, counts = send_one_to_a_queue_of_two_hundred(monkeypatch)
    assert reads == 0
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesDelayed"]) == (
        "200",
        "1",
    )


def test_moto_counts_the_whole_queue_to_send_one_message_without_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads, counts = send_one_to_a_queue_of_two_hundred(monkeypatch)
    assert reads >= 2 * 200
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesDelayed"]) == (
        "200",
        "1",
    )


def listings_for_three_routes(monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[list[str]]]:
    from moto import backends

    listings = [0]
    listdir = backends.os.listdir

    def counting_listdir(path: str) -> list[str]:
        listings[0] += 1
        return listdir(path)

    monkeypatch.setattr(backends.os, "listdir", counting_listdir)
    routes = [list(backends.list_of_moto_modules()) for _ in range(3)]
    return listings[0], routes


def test_moto_modules_are_listed_once_with_the_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_patches.patched():
        listings, routes = listings_for_three_routes(monkeypatch)
    assert listings == 1
    assert routes[0] == routes[2]
    assert {"sqs", "stepfunctions", "dynamodb"} <= set(routes[0])


def test_moto_lists_its_folder_for_every_route_without_the_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    listings, routes = listings_for_three_routes(monkeypatch)
    assert listings == 3
    assert {"sqs", "stepfunctions", "dynamodb"} <= set(routes[0])


# -- Query reads only its partition ---------------------------------------------------------------


def a_table_of_partitions(partitions: int, rows: int) -> Any:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="parts",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "shard", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_shard",
                "KeySchema": [{"AttributeName": "shard", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    for p in range(partitions):
        for r in reversed(range(rows)):  # stored out of order: the answer must still be sorted
            kind = "WAITER" if r else "STATE"
            item = {"pk": {"S": f"p{p:02}"}, "sk": {"S": f"{kind}#{r:02}"}, "n": {"N": str(r)}}
            if r % 2:
                item["shard"] = {"S": f"s{r % 3}"}
            dynamodb.put_item(TableName="parts", Item=item)
    return dynamodb


def queries_of_a_table_of_thirty_partitions(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[Any]]:
    """The items each Query took from `all_items`, and every answer, for a spread of queries."""
    from moto.dynamodb.models.table import Table

    dynamodb = a_table_of_partitions(30, 6)
    sizes: list[int] = []
    all_items = Table.all_items  # patched or moto's own, whichever is in place now

    def counting(self: Any) -> Any:
        items = all_items(self)
        sizes.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counting)
    waiters = {":p": {"S": "p07"}, ":w": {"S": "WAITER#"}}
    answers: list[Any] = [
        dynamodb.query(
            TableName="parts",
            KeyConditionExpression="pk = :p AND begins_with(sk, :w)",
            ExpressionAttributeValues=waiters,
        )["Items"],
        dynamodb.query(
            TableName="parts",
            KeyConditionExpression="pk = :p",
            FilterExpression="n > :two",
            ExpressionAttributeValues={":p": {"S": "p29"}, ":two": {"N": "2"}},
            ScanIndexForward=False,
        )["Items"],
        [
            page["Items"]
            for page in dynamodb.get_paginator("query").paginate(
                TableName="parts",
                KeyConditionExpression="pk = :p AND begins_with(sk, :w)",
                ExpressionAttributeValues=waiters,
                PaginationConfig={"PageSize": 2},
            )
        ],
        dynamodb.query(
            TableName="parts",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "nobody"}},
        )["Items"],
        sorted(
            (item["pk"]["S"], item["sk"]["S"])
            for item in dynamodb.query(
                TableName="parts",
                IndexName="by_shard",
                KeyConditionExpression="shard = :s",
                ExpressionAttributeValues={":s": {"S": "s1"}},
            )["Items"]
        ),
        len(dynamodb.scan(TableName="parts")["Items"]),  # the absent partition was not created
    ]
    return sizes, answers


def expected_answers() -> list[Any]:
    def row(p: int, r: int) -> dict[str, Any]:
        kind = "WAITER" if r else "STATE"
        item = {"pk": {"S": f"p{p:02}"}, "sk": {"S": f"{kind}#{r:02}"}, "n": {"N": str(r)}}
        if r % 2:
            item["shard"] = {"S": f"s{r % 3}"}
        return item

    waiters = [row(7, r) for r in range(1, 6)]
    return [
        waiters,
        [row(29, r) for r in (5, 4, 3)],
        [waiters[0:2], waiters[2:4], waiters[4:5]],
        [],
        sorted((f"p{p:02}", f"WAITER#{r:02}") for p in range(30) for r in (1,)),
        180,
    ]


def test_a_query_of_the_table_key_reads_its_partition_alone_with_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_patches.patched():
        sizes, answers = queries_of_a_table_of_thirty_partitions(monkeypatch)
    # Queries of one partition read its 6 items (3 pages of one read 6 each), an absent one 0;
    # the index query and the Scan still read all 180.
    assert sizes == [6, 6, 6, 6, 6, 0, 180, 180]
    assert answers == expected_answers()


def test_moto_reads_and_sorts_the_whole_table_for_every_query_without_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes, answers = queries_of_a_table_of_thirty_partitions(monkeypatch)
    assert sizes == [180] * 8
    assert answers == expected_answers()


# -- SendTask* asks the pool that issued the token ----------------------------------------------


def answers_to_send_task_calls(monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    """Pools asked to resume the last of three waiters, and what each SendTask* call answered."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackPoolManager

    stepfunctions, arns, tokens = waiting_executions(3)
    asked = [0]
    notify = CallbackPoolManager.notify

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        asked[0] += 1
        return notify(self, *args, **kwargs)

    monkeypatch.setattr(CallbackPoolManager, "notify", counting)

    def answer(call: Callable[[], Any]) -> str:
        try:
            call()
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    answers = [answer(lambda: stepfunctions.send_task_success(taskToken=tokens[2], output="{}"))]
    pools_asked = asked[0]
    answers += [
        wait_for_end(stepfunctions, arns[2])["status"],
        answer(lambda: stepfunctions.send_task_success(taskToken=tokens[2], output="{}")),  # ended
        answer(lambda: stepfunctions.send_task_heartbeat(taskToken=tokens[1])),
        answer(lambda: stepfunctions.send_task_failure(taskToken=tokens[1], error="E", cause="c")),
        wait_for_end(stepfunctions, arns[1])["status"],
        answer(lambda: stepfunctions.send_task_success(taskToken="no-such-token", output="{}")),
        answer(lambda: stepfunctions.send_task_success(taskToken=tokens[0], output="{}")),
        wait_for_end(stepfunctions, arns[0])["status"],
    ]
    return pools_asked, answers


# What moto answers, with or without the patch: resumed and ended; the ended execution's token
# refused as unknown (moto looks only through running executions); a heartbeat for a task with
# no HeartbeatSeconds refused the same way; a failure delivered; an unknown token refused; the
# first waiter resumed last.
SEND_TASK_ANSWERS = [
    *("ok", "SUCCEEDED", "InvalidToken", "InvalidToken"),
    *("ok", "FAILED", "InvalidToken", "ok", "SUCCEEDED"),
]


def test_send_task_calls_ask_only_the_pool_that_issued_the_token_with_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_patches.patched():
        pools_asked, answers = answers_to_send_task_calls(monkeypatch)
    assert pools_asked == 1
    assert answers == SEND_TASK_ANSWERS


def test_moto_asks_every_execution_for_a_token_without_the_patch(
    executing_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools_asked, answers = answers_to_send_task_calls(monkeypatch)
    assert pools_asked == 3  # the last of three waiters: every pool before it was asked first
    assert answers == SEND_TASK_ANSWERS


def input_over_the_limit_in_bytes_only() -> str:
    """An execution input of fewer than 262,144 characters but more than 262,144 UTF-8 bytes."""
    text = json.dumps({"blob": "é" * 131_100}, ensure_ascii=False)
    assert len(text) < 262_144 < len(text.encode())
    return text


def pass_machine(stepfunctions: Any) -> str:
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    return str(
        stepfunctions.create_state_machine(name="big-input", definition=json.dumps(definition), roleArn=ROLE)[
            "stateMachineArn"
        ]
    )


def test_an_execution_input_over_256_kib_of_utf8_is_refused_with_the_patch(stepfunctions: Any) -> None:
    machine = pass_machine(stepfunctions)
    with moto_patches.patched():
        with pytest.raises(ClientError) as refused:
            stepfunctions.start_execution(
                stateMachineArn=machine, name="big", input=input_over_the_limit_in_bytes_only()
            )
        at_limit = json.dumps({"blob": "x" * (262_144 - 12)})
        assert len(at_limit.encode()) == 262_144
        stepfunctions.start_execution(stateMachineArn=machine, name="at-limit", input=at_limit)
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_moto_starts_an_execution_input_over_256_kib_without_the_patch(stepfunctions: Any) -> None:
    machine = pass_machine(stepfunctions)

    started = stepfunctions.start_execution(
        stateMachineArn=machine, name="big", input=input_over_the_limit_in_bytes_only()
    )

    assert started["executionArn"].endswith(":big")


def a_machine_starting_another(stepfunctions: Any) -> tuple[str, str]:
    """(parent, child): the parent's one Task starts the child through Step Functions' own
    integration, PascalCase parameters as the service documents them, and outputs its answer."""
    child = pass_machine(stepfunctions)
    definition = {
        "StartAt": "StartChild",
        "States": {
            "StartChild": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {"StateMachineArn": child, "Name": "child-1", "Input": {"from": "parent"}},
                "End": True,
            }
        },
    }
    parent = stepfunctions.create_state_machine(
        name="starts-another", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    return str(parent), child


def test_a_task_starts_an_execution_with_pascal_case_parameters_and_answer_with_the_patch(
    stepfunctions: Any,
) -> None:
    parent, child = a_machine_starting_another(stepfunctions)
    with moto_patches.patched():
        execution = stepfunctions.start_execution(stateMachineArn=parent, name="parent")["executionArn"]
        ended = wait_for_end(stepfunctions, execution)

    assert ended["status"] == "SUCCEEDED", story_of(stepfunctions, execution)
    answer = json.loads(ended["output"])
    started = stepfunctions.describe_execution(executionArn=answer["ExecutionArn"])
    assert (started["stateMachineArn"], started["name"]) == (child, "child-1")
    assert json.loads(started["input"]) == {"from": "parent"}
    assert set(answer) == {"ExecutionArn", "StartDate"}
    assert isinstance(answer["StartDate"], int)


def test_moto_fails_a_task_starting_an_execution_without_the_patch(stepfunctions: Any) -> None:
    parent, _ = a_machine_starting_another(stepfunctions)

    execution = stepfunctions.start_execution(stateMachineArn=parent, name="parent")["executionArn"]
    ended = wait_for_end(stepfunctions, execution)

    assert (ended["status"], ended["error"]) == ("FAILED", "States.Runtime")
    assert "'StateMachineArn'" in ended["cause"]


# -- RedriveExecution ------------------------------------------------------------------------------


class TwoStepJob:
    """A standard execution whose first state (Prepare) passes and whose second (Work) waits on a
    task token: the test fails or completes Work at will, so it can fail, then succeed on redrive."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs")
        # Its own queue: see `waiting_executions` (an earlier test's redriven run, still on its
        # worker thread, sent its Work token to the next test's "work" queue: InvalidToken).
        self.queue_url = self.sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        self.stepfunctions = boto3.client("stepfunctions")
        definition = {
            "StartAt": "Prepare",
            "States": {
                "Prepare": {"Type": "Pass", "Result": "ready", "ResultPath": "$.prepared", "Next": "Work"},
                "Work": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {
                        "QueueUrl": self.queue_url,
                        "MessageBody": {"token.$": "$$.Task.Token", "input.$": "$"},
                    },
                    "End": True,
                },
            },
        }
        self.machine = self.stepfunctions.create_state_machine(
            name="two-steps", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]

    def start(self) -> str:
        return str(
            self.stepfunctions.start_execution(
                stateMachineArn=self.machine, name="job", input=json.dumps({"n": 1})
            )["executionArn"]
        )

    def work_reached(self) -> dict[str, Any]:
        """The next token the Work state sent, with the input Work was given."""
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            # Long polling, as in `waiting_executions`: a loop of empty receives competes for the
            # GIL with the execution's worker thread that is to send the token.
            received = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=1)
            for message in received.get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                return dict(json.loads(message["Body"]))
        raise AssertionError("Work never sent its token")

    def failed(self) -> str:
        """An execution that passed Prepare and failed in Work."""
        execution_arn = self.start()
        token = self.work_reached()["token"]
        self.stepfunctions.send_task_failure(taskToken=token, error="Broken", cause="not yet fixed")
        assert wait_for_end(self.stepfunctions, execution_arn)["status"] == "FAILED"
        return execution_arn

    def entered(self, execution_arn: str) -> list[str]:
        events = self.stepfunctions.get_execution_history(executionArn=execution_arn)["events"]
        return [
            event["stateEnteredEventDetails"]["name"]
            if "stateEnteredEventDetails" in event
            else event["type"]
            for event in events
            if "stateEnteredEventDetails" in event or event["type"] == "ExecutionRedriven"
        ]


def test_a_redrive_resumes_the_same_execution_at_the_failed_state_with_its_input(
    executing_moto: None,
) -> None:
    with moto_patches.patched():
        job = TwoStepJob()
        execution_arn = job.failed()
        job.stepfunctions.redrive_execution(executionArn=execution_arn)
        resumed = job.work_reached()
        job.stepfunctions.send_task_success(taskToken=resumed["token"], output=json.dumps({"done": True}))
        ended = wait_for_end(job.stepfunctions, execution_arn)
        assert ended["status"] == "SUCCEEDED"
        assert resumed["input"] == {"n": 1, "prepared": "ready"}  # what Work was given the first time
        # Prepare ran once; Work again after the redrive, in one history under one ARN.
        assert job.entered(execution_arn) == ["Prepare", "Work", "ExecutionRedriven", "Work"]
        listed = job.stepfunctions.list_executions(stateMachineArn=job.machine)["executions"]
        assert [execution["executionArn"] for execution in listed] == [execution_arn]


def test_describe_execution_carries_the_redrive_count_date_and_status(executing_moto: None) -> None:
    with moto_patches.patched():
        job = TwoStepJob()
        execution_arn = job.failed()
        failed = job.stepfunctions.describe_execution(executionArn=execution_arn)
        redriven = job.stepfunctions.redrive_execution(executionArn=execution_arn)["redriveDate"]
        running = job.stepfunctions.describe_execution(executionArn=execution_arn)
        job.stepfunctions.send_task_success(taskToken=job.work_reached()["token"], output="{}")
        succeeded = wait_for_end(job.stepfunctions, execution_arn)
    assert (failed["redriveCount"], failed["redriveStatus"]) == (0, "REDRIVABLE")
    assert "redriveDate" not in failed
    assert (running["status"], running["redriveCount"], running["redriveDate"]) == ("RUNNING", 1, redriven)
    assert running["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven"
    assert (succeeded["redriveCount"], succeeded["redriveStatus"]) == (1, "NOT_REDRIVABLE")
    assert succeeded["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven"


def test_a_running_or_succeeded_execution_is_not_redrivable(executing_moto: None) -> None:
    with moto_patches.patched():
        job = TwoStepJob()
        execution_arn = job.start()
        token = job.work_reached()["token"]
        with pytest.raises(ClientError, match=r"ExecutionNotRedrivable.*RUNNING") as running:
            job.stepfunctions.redrive_execution(executionArn=execution_arn)
        job.stepfunctions.send_task_success(taskToken=token, output="{}")
        wait_for_end(job.stepfunctions, execution_arn)
        with pytest.raises(ClientError, match="SUCCEEDED and cannot be redriven") as succeeded:
            job.stepfunctions.redrive_execution(executionArn=execution_arn)
    for refused in (running, succeeded):
        assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"


def test_a_client_token_redrives_once_however_often_it_is_sent(executing_moto: None) -> None:
    with moto_patches.patched():
        job = TwoStepJob()
        execution_arn = job.failed()
        first = job.stepfunctions.redrive_execution(executionArn=execution_arn, clientToken="dep-1-1")
        again = job.stepfunctions.redrive_execution(executionArn=execution_arn, clientToken="dep-1-1")
        described = job.stepfunctions.describe_execution(executionArn=execution_arn)
        with pytest.raises(ClientError, match="ExecutionNotRedrivable"):
            job.stepfunctions.redrive_execution(executionArn=execution_arn, clientToken="another")
    assert first["redriveDate"] == again["redriveDate"]
    assert described["redriveCount"] == 1


def test_the_status_point_tells_of_a_redrive_and_of_its_end(executing_moto: None) -> None:
    heard: list[tuple[int, str]] = []
    hearing = threading.Condition()

    def listener(execution_arn: str) -> None:
        # Tells come from the caller's thread and the execution's: read and record under one
        # lock, so the list is in the order of the reads (see the status-point test above).
        with hearing:
            execution = job.stepfunctions.describe_execution(executionArn=execution_arn)
            heard.append((execution["redriveCount"], execution["status"]))
            hearing.notify_all()

    with moto_patches.patched(status_listener=listener):
        job = TwoStepJob()
        execution_arn = job.failed()
        job.stepfunctions.redrive_execution(executionArn=execution_arn)
        job.stepfunctions.send_task_success(taskToken=job.work_reached()["token"], output="{}")
        wait_for_end(job.stepfunctions, execution_arn)
        with hearing:
            hearing.wait_for(lambda: heard[-1:] == [(1, "SUCCEEDED")], timeout=HANG_GUARD)
    # What was read at each tell, repeats folded: the first run's start may already read its end.
    told = [state for n, state in enumerate(heard) if n == 0 or heard[n - 1] != state]
    assert told[-3:] == [(0, "FAILED"), (1, "RUNNING"), (1, "SUCCEEDED")]
    assert told[:-3] in ([], [(0, "RUNNING")])


def test_moto_cannot_redrive_and_describes_no_redrive_fields_without_the_patch(executing_moto: None) -> None:
    job = TwoStepJob()
    execution_arn = job.failed()
    with pytest.raises(NotImplementedError, match="redrive_execution"):
        job.stepfunctions.redrive_execution(executionArn=execution_arn)
    assert "redriveCount" not in job.stepfunctions.describe_execution(executionArn=execution_arn)


def a_map_waiting_on_a_token(stepfunctions: Any) -> tuple[str, str]:
    """An execution whose Map iteration waits on a task token: (execution ARN, token)."""
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"map-tokens-{uuid.uuid4().hex[:12]}")[
        "QueueUrl"
    ]  # see waiting_executions
    waits = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": waits, "End": True},
        },
    }
    machine = stepfunctions.create_state_machine(
        name="map-waits", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    arn = stepfunctions.start_execution(stateMachineArn=machine, name="m1", input='{"items": [1]}')[
        "executionArn"
    ]
    deadline = time.monotonic() + HANG_GUARD
    while not (received := sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages")):
        assert time.monotonic() < deadline, story_of(stepfunctions, arn)
    return arn, json.loads(received[0]["Body"])["token"]


def test_stop_execution_aborts_an_execution_waiting_on_a_token_at_once_with_the_patch(
    stepfunctions: Any,
) -> None:
    with moto_patches.patched():
        arn, token = a_map_waiting_on_a_token(stepfunctions)
        stepfunctions.stop_execution(executionArn=arn)
        ended = wait_for_end(stepfunctions, arn)
        # A closed token, as the coordinator's rejection treats it (AWS says TaskTimedOut).
        with pytest.raises(ClientError, match=r"InvalidToken|TaskTimedOut"):
            stepfunctions.send_task_success(taskToken=token, output="{}")
    assert ended["status"] == "ABORTED", story_of(stepfunctions, arn)


def test_moto_keeps_a_stopped_execution_running_until_its_token_is_answered_without_the_patch(
    stepfunctions: Any,
) -> None:
    arn, token = a_map_waiting_on_a_token(stepfunctions)
    stepfunctions.stop_execution(executionArn=arn)
    still = stepfunctions.describe_execution(executionArn=arn)["status"]
    stepfunctions.send_task_success(taskToken=token, output="{}")
    assert (still, wait_for_end(stepfunctions, arn)["status"]) == ("RUNNING", "FAILED")


# -- A Distributed Map's worker with many items ----------------------------------------------------

ITEMS_PER_WORKER = 1_500  # past Python's recursion limit of 1,000


def a_distributed_map_of_one_worker(stepfunctions: Any) -> str:
    """A Distributed Map over its input's items at MaxConcurrency 1: one worker takes them all."""
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 1,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Item",
                    "States": {"Item": {"Type": "Pass", "End": True}},
                },
                "ResultSelector": {"count.$": "States.ArrayLength($)"},
                "End": True,
            }
        },
    }
    return str(
        stepfunctions.create_state_machine(
            name=f"one-worker-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
    )


def test_a_distributed_map_worker_runs_any_number_of_items_with_the_patch(stepfunctions: Any) -> None:
    machine = a_distributed_map_of_one_worker(stepfunctions)
    with moto_patches.patched():
        execution = stepfunctions.start_execution(
            stateMachineArn=machine, input=json.dumps({"items": list(range(ITEMS_PER_WORKER))})
        )["executionArn"]
        ended = wait_for_end(stepfunctions, execution)

    assert ended["status"] == "SUCCEEDED", story_of(stepfunctions, execution)
    assert json.loads(ended["output"]) == {"count": ITEMS_PER_WORKER}


def test_moto_s_distributed_map_worker_dies_of_recursion_without_the_patch(
    stepfunctions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    died = threading.Event()
    hook = threading.excepthook

    def note_recursion(args: Any) -> None:
        if args.exc_type is RecursionError:
            died.set()
            return
        hook(args)

    monkeypatch.setattr(threading, "excepthook", note_recursion)
    machine = a_distributed_map_of_one_worker(stepfunctions)
    execution = stepfunctions.start_execution(
        stateMachineArn=machine, input=json.dumps({"items": list(range(ITEMS_PER_WORKER))})
    )["executionArn"]

    assert died.wait(HANG_GUARD), "the worker thread did not die"
    # Nothing is left to end the execution: it stays RUNNING.
    assert stepfunctions.describe_execution(executionArn=execution)["status"] == "RUNNING"
