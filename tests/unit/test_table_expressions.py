"""The table's expressions: every attribute is aliased, and only the values used are sent."""

from __future__ import annotations

from coordinator.table.access import expressions


def test_every_attribute_written_as_hash_name_is_aliased_to_that_name() -> None:
    request = expressions(
        {":s": "SUCCEEDED"},
        UpdateExpression="SET #state = :s REMOVE #output",
        ConditionExpression="attribute_exists(#sk)",
    )

    assert request["ExpressionAttributeNames"] == {"#state": "state", "#output": "output", "#sk": "sk"}


def test_a_value_is_sent_only_if_an_expression_names_it_whole() -> None:
    request = expressions({":count": 1, ":counted": 2}, ConditionExpression="#redrive_count = :counted")

    assert request["ExpressionAttributeValues"] == {":counted": {"N": "2"}}


def test_an_expression_without_aliases_or_values_sends_neither() -> None:
    assert expressions({":unused": 1}, ConditionExpression="attribute_not_exists(payload_id)") == {
        "ConditionExpression": "attribute_not_exists(payload_id)"
    }
