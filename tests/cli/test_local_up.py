"""`local up` and the state file the CLI finds the offline stack through: one file, one stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coordinator_tools.local import __main__ as local_main
from coordinator_tools.target import local_state, running_local_stack, write_local_state
from tests.cli.conftest import free_port
from tests.conftest import REGION


def test_a_second_local_up_refuses_while_the_first_stack_answers(
    endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state_file = write_local_state(endpoint, REGION, {"TableName": "first"}, tmp_path / "local.json")
    monkeypatch.setenv("COORDINATOR_LOCAL_STATE", str(state_file))
    before = state_file.read_text()

    def no_second_stack(**_: Any) -> None:
        raise AssertionError("a second stack was started")

    monkeypatch.setattr(local_main, "OfflineStack", no_second_stack)

    code = local_main.main(["up"])

    assert code == local_main.ALREADY_RUNNING
    assert f"an offline stack is already running at {endpoint}" in capsys.readouterr().err
    assert state_file.read_text() == before


def test_a_state_file_left_by_a_stack_that_died_names_no_running_stack(tmp_path: Path) -> None:
    gone = write_local_state(f"http://127.0.0.1:{free_port()}", REGION, {}, tmp_path / "local.json")

    assert running_local_stack(gone) is None
    assert running_local_stack(tmp_path / "absent.json") is None


def test_a_stack_removes_its_state_file_when_it_stops(endpoint: str, tmp_path: Path) -> None:
    with local_state(endpoint, REGION, {}, tmp_path / "local.json") as state_file:
        assert running_local_stack(state_file) == endpoint

    assert not state_file.exists()


def test_a_stack_leaves_the_state_file_alone_once_another_stack_has_taken_it(tmp_path: Path) -> None:
    first, second = "http://127.0.0.1:1", "http://127.0.0.1:2"

    with local_state(first, REGION, {}, tmp_path / "local.json") as state_file:
        write_local_state(second, REGION, {}, state_file)

    assert json.loads(state_file.read_text())["endpoint_url"] == second
