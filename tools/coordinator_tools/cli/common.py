"""What every `coordinator` command shares: the app, its global options, one-line errors, output."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from coordinator.errors import InvalidMessage
from coordinator.schedule import RangeRequestError
from coordinator_tools import inspection, sending
from coordinator_tools.target import ExitCode, Target, TargetError, resolve

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


class Stdout(Console):
    """Outside a terminal, as wide as its widest line: an ARN or a console link reaches a pipe
    or a file whole, where rich would fold it or cut it with "…" at 80 columns."""

    UNBOUNDED = 100_000

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(self.UNBOUNDED, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = Stdout()
err = Console(stderr=True)


@dataclass
class Options:
    stack_name: str | None
    endpoint_url: str | None
    local: bool
    region: str | None
    json: bool

    def target(self) -> Target:
        return resolve(
            stack_name=self.stack_name, endpoint_url=self.endpoint_url, local=self.local, region=self.region
        )


STACK_NAME_HELP = "Deployed stack"
ENDPOINT_URL_HELP = "AWS endpoint (the offline stack's)"
LOCAL_HELP = "The offline stack started by `local up`"
JSON_HELP = "Machine-readable output"


@app.callback()
def main_options(
    ctx: typer.Context,
    stack_name: Annotated[
        str | None, typer.Option("--stack-name", envvar="COORDINATOR_STACK", help=STACK_NAME_HELP)
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help=ENDPOINT_URL_HELP)] = None,
    local: Annotated[bool, typer.Option("--local", help=LOCAL_HELP)] = False,
    region: Annotated[str | None, typer.Option("--region")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    ctx.obj = Options(stack_name, endpoint_url, local, region, as_json)


F = TypeVar("F", bound=Callable[..., Any])

GLOBAL_PANEL = "Global options (also accepted before the command)"
# The callback's options again, on every command; no envvar here, so COORDINATOR_STACK cannot
# override a --stack-name given before the command.
GLOBAL_OPTIONS = [
    inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[kind, typer.Option(flag, help=help_text, rich_help_panel=GLOBAL_PANEL)],
        default=default,
    )
    for name, kind, flag, help_text, default in [
        ("stack_name", str | None, "--stack-name", STACK_NAME_HELP, None),
        ("endpoint_url", str | None, "--endpoint-url", ENDPOINT_URL_HELP, None),
        ("local", bool, "--local", LOCAL_HELP, False),
        ("region", str | None, "--region", None, None),
        ("json", bool, "--json", JSON_HELP, False),
    ]
]


def global_options(command: F) -> F:
    """Accept the global options after the command too (`coordinator status X --json`).

    Typer reads a command's options from its signature: the wrapper's is the command's plus
    GLOBAL_OPTIONS, so `--help` lists them and click parses them; whichever of them is given
    here replaces the callback's value in the command's `Options`.
    """

    @wraps(command)
    def run(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        given = {option.name: kwargs.pop(option.name) for option in GLOBAL_OPTIONS}
        ctx.obj = dataclasses.replace(
            ctx.obj, **{name: value for name, value in given.items() if value not in (None, False)}
        )
        return command(ctx, *args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *GLOBAL_OPTIONS]
    )
    return run  # type: ignore[return-value]


def one_line_errors(command: F) -> F:
    """Turn every expected failure into one line on stderr and its exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TargetError as error:
            fail(str(error), error.exit_code)
        except inspection.NotFound as error:
            fail(str(error), ExitCode.NOT_FOUND)
        except sending.NotRedrivable as error:
            fail(str(error), ExitCode.USAGE)
        except InvalidMessage as error:
            fail(error.reason, ExitCode.USAGE)
        except (RangeRequestError, ValueError) as error:
            fail(str(error), ExitCode.USAGE)
        except EndpointConnectionError as error:
            fail(f"cannot reach the endpoint: {error}", ExitCode.UNREACHABLE)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {
                "ResourceNotFoundException",
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
            }:
                fail(f"the stack's resources are missing: {code}", ExitCode.MISSING_STACK)
            fail(
                f"AWS refused: {code}: {error.response.get('Error', {}).get('Message', '')}",
                ExitCode.UNREACHABLE,
            )
        except BotoCoreError as error:
            fail(f"cannot reach the endpoint: {error}", ExitCode.UNREACHABLE)

    return run  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit(options: Options, data: Any, human: Callable[[], object]) -> None:
    if options.json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        human()


def key_values(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in values.items():
        if value is not None:
            table.add_row(key, str(value))
    out.print(table)


def json_input(value: str) -> Any:
    """An --input: JSON text, or @path for a file's. One that cannot be read or is not JSON is
    bad input (a ValueError, one line and exit 2), whatever the reason: missing, a directory,
    unreadable, not UTF-8."""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"--input {value}: cannot read it: {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise ValueError(f"--input {value}: not UTF-8 text: {error.reason}") from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"--input is not JSON: {error}") from error


class Silent:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None
