"""The offline stack's function runtime hands the function logger's stream back as it found it,
except a stream closed meanwhile, which no later stack could route away from."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from coordinator.observability import logger as function_logger
from coordinator_tools.kit import ROOT
from coordinator_tools.local.runtime import FunctionRuntime


@pytest.fixture
def handler() -> Iterator[logging.StreamHandler[Any]]:
    [stream_handler] = [h for h in function_logger.handlers if isinstance(h, logging.StreamHandler)]
    before = stream_handler.stream
    yield stream_handler
    stream_handler.setStream(before)


def routed_and_shut_down(runtime: FunctionRuntime) -> None:
    runtime._route_logs()
    runtime.shutdown()


def test_the_logger_gets_its_own_stream_back(handler: logging.StreamHandler[Any]) -> None:
    own = io.StringIO()
    handler.setStream(own)

    routed_and_shut_down(FunctionRuntime(ROOT))

    assert handler.stream is own


def test_a_stream_closed_while_routed_is_not_put_back_and_the_next_runtime_routes(
    handler: logging.StreamHandler[Any],
) -> None:
    capture = io.StringIO()  # a CLI runner's stdout the logger was built under
    handler.setStream(capture)
    first = FunctionRuntime(ROOT)
    first._route_logs()
    capture.close()  # the command ended
    first.shutdown()

    assert handler.stream is sys.stdout
    second = FunctionRuntime(ROOT)
    second._route_logs()  # flushed a closed stream (ValueError) when it was put back
    assert handler.stream is second.log_stream
    second.shutdown()
