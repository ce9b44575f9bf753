"""One replacement of a moto attribute: what the package applies and reverts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Patch:
    """`owner.attribute` replaced by `replacement` while applied; `original` restores it."""

    owner: Any
    attribute: str
    replacement: Any
    original: Any = None
