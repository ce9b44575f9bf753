"""The services a flow works with."""

from __future__ import annotations

import dataclasses

from coordinator.services import Services


def test_the_table_is_built_once_per_services(services: Services) -> None:
    assert services.table is services.table


def test_a_copy_of_the_services_builds_its_own_table(services: Services) -> None:
    table = services.table
    copy = dataclasses.replace(services, dynamodb=services.dynamodb)

    assert copy.table is not table
    assert copy.table.client is services.dynamodb
