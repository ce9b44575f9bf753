"""The dead letter's reason attribute: what SQS accepts as a message attribute value."""

from __future__ import annotations

from coordinator.rejection import MAX_REASON_BYTES, attribute_text


def test_a_reason_is_cut_to_the_attribute_budget_in_bytes_not_characters() -> None:
    text = attribute_text("unknown field '" + "€" * 1000 + "'")

    assert len(text.encode()) <= MAX_REASON_BYTES
    assert text.startswith("unknown field '€")


def test_characters_sqs_refuses_in_an_attribute_are_replaced() -> None:
    assert attribute_text("field 'a\x00b\x1fc\ufffe' \t ok") == "field 'a?b?c?' \t ok"
