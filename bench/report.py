"""The shape of a benchmark's result: rows for docs/performance.md's summary table, and a section
of detail in markdown; `emit` prints it or writes it as JSON for `bench.run_all`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One line of docs/performance.md: what was measured, by what command, against what."""

    name: str
    command: str
    figure: str
    target: str
    met: bool | None  # None: reported only, no target to meet
    note: str = ""


@dataclass
class Report:
    """A benchmark's rows for the summary table, and its own section of detail (markdown)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {"title": self.title, "rows": [asdict(r) for r in self.rows], "detail": self.detail}
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        return cls(data["title"], [Row(**r) for r in data["rows"]], data["detail"])


def emit(report: Report, argv: list[str]) -> None:
    """`--json PATH` writes the report for run_all; otherwise print it for a human."""
    if len(argv) >= 2 and argv[0] == "--json":
        Path(argv[1]).write_text(report.to_json())
        return
    print(f"## {report.title}\n")
    print(markdown_table(report.rows))
    print()
    print(report.detail)


def markdown_table(rows: Iterable[Row]) -> str:
    lines = ["| measure | command | figure | target | met |", "|---|---|---|---|---|"]
    for row in rows:
        met = "n/a" if row.met is None else ("yes" if row.met else "**no**")
        figure = row.figure + (f" ({row.note})" if row.note else "")
        lines.append(f"| {row.name} | `{row.command}` | {figure} | {row.target} | {met} |")
    return "\n".join(lines)


def prose(text: str) -> str:
    """A paragraph written across lines in the source, as one line of markdown."""
    return " ".join(text.split())


def table(header: list[str], body: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in line) + " |" for line in body]
    return "\n".join(lines)
