"""The in-process Lambda runtime: `functions/<dir>/app.py:lambda_handler`, run by this process.

moto hands every invocation to `route` (see `moto_patches.hooks`), with the function's environment as
the template configured it. Handlers read their settings from `os.environ` once and cache their
clients (`coordinator.settings.settings`, `coordinator.services.services`), and the environment
is one per process, so invocations run one at a time under `_invoke_lock`, each in its own
function's environment, and the caches are cleared whenever the function changes: a process
record never runs with the dispatcher's settings. One at a time is slower than Lambda's
concurrency but it is what makes the settings honest; the protocol itself does not need it.

Lambda puts the function's code at /var/task and the layer's at /opt/python; here the checkout's
root (for `functions.<dir>.app`) and `layers/coordinator` (for `coordinator`) go on `sys.path`.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from coordinator_tools.local.moto_patches.hooks import Invocation

logger = logging.getLogger(__name__)

# Offline override on top of each function's own environment: there is no X-Ray daemon.
OFFLINE_ENVIRONMENT = {"POWERTOOLS_TRACE_DISABLED": "true"}


class _InvocationOutput:
    """`sys.stdout`/`sys.stderr` sending what a handler prints (metrics, warnings) to the function log.

    Lambda captures a function's stdout and stderr into its log group; the offline equivalent is the stack's
    log stream. Only the thread running an invocation is redirected: the demo's timeline, printed
    from another thread at the same moment, still reaches the terminal. Which thread that is, the
    runtime says at the time of each write: a wrapper swapped out while an invocation ran (by a
    CLI test runner) and swapped back later keeps no stale thread of its own.
    """

    def __init__(self, terminal: TextIO, runtime: FunctionRuntime) -> None:
        self.terminal = terminal
        self.runtime = runtime

    @property
    def log_stream(self) -> TextIO:
        return self.runtime.log_stream

    def write(self, text: str) -> int:
        if threading.get_ident() == self.runtime.invoking_thread:
            return self.log_stream.write(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log_stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.terminal, name)


@dataclass(frozen=True)
class FunctionCode:
    """A deployed function as the runtime needs it: where its handler is and its limits."""

    name: str
    logical_id: str
    code_dir: str  # e.g. "functions/process/"
    handler: str  # e.g. "app.lambda_handler"
    timeout_seconds: int
    memory_mb: int
    arn: str

    @property
    def module(self) -> str:
        package = self.code_dir.strip("/").replace("/", ".")
        return f"{package}.{self.handler.rsplit('.', 1)[0]}"

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "offline"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


@dataclass
class InvocationRecord:
    """One finished invocation, for the stack's counters and the tests."""

    function: str
    started: float
    seconds: float
    errored: bool


class FunctionRuntime:
    """Routes moto's Lambda invocations to the handlers in the checkout."""

    def __init__(self, root: Path, *, log_stream: TextIO | None = None) -> None:
        self.root = root
        self.functions: dict[str, FunctionCode] = {}
        self.log_stream = log_stream or io.StringIO()
        self.listeners: list[Callable[[InvocationRecord], None]] = []
        self._invoke_lock = threading.RLock()
        self.invoking_thread: int | None = None  # the thread inside `route`, while it is
        self._current: str | None = None
        self._applied: dict[str, str | None] = {}
        self._log_handlers: list[tuple[logging.StreamHandler[Any], Any]] = []  # with their old streams
        for path in (root / "layers" / "coordinator", root):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))

    def register(self, code: FunctionCode) -> None:
        self.functions[code.name] = code

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No invocation runs while this is held: a caller that swaps `sys.stdout` meanwhile (a
        CLI test runner) captures nothing a handler prints, not even a late metrics flush."""
        with self._invoke_lock:
            yield

    def _guarded(self, stream: TextIO) -> _InvocationOutput:
        """`stream`, except that what an invocation writes to it goes to the function log."""
        if isinstance(stream, _InvocationOutput) and stream.runtime is self:
            return stream
        return _InvocationOutput(stream, self)

    def route(self, function_name: str, environment: dict[str, str], event: Any) -> Invocation:
        """Run one invocation (moto's router). Errors come back the way Lambda reports them."""
        code = self.functions.get(function_name)
        if code is None:
            message = f"{function_name} is not a function of this stack"
            return Invocation(json.dumps({"errorType": "ResourceNotFound", "errorMessage": message}), True)
        with self._invoke_lock:
            started = time.monotonic()
            self._enter(code, environment)
            self._capture_output()
            context = LambdaContext(
                function_name=code.name,
                memory_limit_in_mb=code.memory_mb,
                invoked_function_arn=code.arn,
                timeout_seconds=code.timeout_seconds,
                log_group_name=f"/aws/lambda/{code.name}",
            )
            errored = False
            try:
                handler = getattr(importlib.import_module(code.module), code.attribute)
                # Warnings a handler raises (Powertools': "no application metrics") belong in
                # its log, as Lambda's runtime writes them there, not in the caller's output.
                with warnings.catch_warnings(record=True) as raised:
                    warnings.simplefilter("default")
                    result = handler(event, context)
                for warning in raised:
                    self.log_stream.write(f"{warning.category.__name__}: {warning.message}\n")
                payload = json.dumps(result, default=str)
            except Exception as error:  # noqa: BLE001 - Lambda turns any uncaught exception into a function error
                errored = True
                payload = json.dumps(
                    {
                        "errorType": type(error).__name__,
                        "errorMessage": str(error),
                        "stackTrace": traceback.format_exception(error),
                    }
                )
                logger.warning(
                    "function error function=%s error_type=%s message=%s",
                    code.logical_id,
                    type(error).__name__,
                    str(error)[:300],
                )
            finally:
                self.invoking_thread = None
            record = InvocationRecord(code.logical_id, started, time.monotonic() - started, errored)
        for listener in self.listeners:
            listener(record)
        return Invocation(payload, errored)

    def _enter(self, code: FunctionCode, environment: dict[str, str]) -> None:
        """Make `os.environ` this function's, and drop settings cached under another's."""
        if self._current == code.name:
            return
        self.reset()
        wanted = {
            **environment,
            **OFFLINE_ENVIRONMENT,
            "AWS_LAMBDA_FUNCTION_NAME": code.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(code.memory_mb),
        }
        self._applied = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        self._current = code.name
        self._clear_caches()
        self._route_logs()

    def _capture_output(self) -> None:
        sys.stdout = self._guarded(sys.stdout)
        sys.stderr = self._guarded(sys.stderr)
        self.invoking_thread = threading.get_ident()

    def shutdown(self) -> None:
        """The process as it was: environment, caches, stdout and stderr."""
        with self._invoke_lock:
            self.reset()
            if isinstance(sys.stdout, _InvocationOutput) and sys.stdout.runtime is self:
                sys.stdout = sys.stdout.terminal
            if isinstance(sys.stderr, _InvocationOutput) and sys.stderr.runtime is self:
                sys.stderr = sys.stderr.terminal
            while self._log_handlers:
                handler, original = self._log_handlers.pop()
                if original is not None and handler.stream is self.log_stream:
                    # The logger may have been built inside a caller's capture of stdout (a CLI
                    # runner's, during the first invocation), closed since: put back stdout
                    # instead, or the next stack's first invocation fails flushing it.
                    handler.setStream(sys.stdout if getattr(original, "closed", False) else original)

    def reset(self) -> None:
        """Put back the environment the first invocation found, and drop the cached settings."""
        with self._invoke_lock:
            for name, original in self._applied.items():
                if original is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = original
            self._applied = {}
            if self._current is not None:
                self._clear_caches()
            self._current = None

    def _clear_caches(self) -> None:
        from coordinator.services import services
        from coordinator.settings import settings

        settings.cache_clear()
        services.cache_clear()

    def _route_logs(self) -> None:
        """Function logs (Powertools' JSON lines) go to the stack's log stream, as to CloudWatch."""
        from coordinator.observability import logger as function_logger

        for handler in function_logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is not self.log_stream:
                self._log_handlers.append((handler, handler.setStream(self.log_stream)))
