"""Where the offline stack reaches into moto: every patch of moto's internals, by purpose.

All are tied to the pinned moto (`PINNED_MOTO`, the version whose internals were read and
measured; docs/design.md says why the offline stack follows the service). Each kind lives in its
own module, so a moto upgrade that moves one piece breaks only the module that reaches there:

- `defects`: places where moto answers differently from AWS in a way the coordinator meets.
- `redrive`: an API moto lacks (RedriveExecution) that the coordinator and its operators call.
- `hooks`: the Lambda invoke point and the execution status point, how the stack runs at all.
- `costs`: speed-ups only a load run needs (`bench/load.py`), same answers as moto's own code.

Each patch names the moto code it replaces, and `tests/unit/test_moto_patches.py` shows moto
without it and with it. Nothing is patched at import. `apply()` patches for good (the offline
stack); `patched()` patches for the duration of a `with` block and restores moto after (the
tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import moto

from coordinator_tools.local.moto_patches import costs, defects, hooks, redrive
from coordinator_tools.local.moto_patches.hooks import Invocation, LambdaRouter, StatusListener
from coordinator_tools.local.moto_patches.patch import Patch

__all__ = [
    "PINNED_MOTO",
    "Invocation",
    "LambdaRouter",
    "StatusListener",
    "UnsupportedMoto",
    "apply",
    "ensure_pinned_moto",
    "patched",
    "revert",
]

PINNED_MOTO = "5.2.5"

logger = logging.getLogger(__name__)


class UnsupportedMoto(RuntimeError):
    """The installed moto is not the version these patches were written against."""


def ensure_pinned_moto() -> None:
    """Refuse to patch any other moto: its internals may have moved, or the defect been fixed."""
    if moto.__version__ != PINNED_MOTO:
        raise UnsupportedMoto(
            f"the offline stack patches moto {PINNED_MOTO} internals, but moto {moto.__version__} is "
            "installed; re-check each patch in coordinator_tools/local/moto_patches/ and update the pin"
        )


def _patches() -> list[Patch]:
    return [*costs.patches(), *hooks.patches(), *defects.patches(), *redrive.patches()]


_lock = threading.Lock()
_applied: list[Patch] = []
_ABSENT = object()


def apply(router: LambdaRouter | None = None, status_listener: StatusListener | None = None) -> None:
    """Patch moto for the life of the process (idempotent); `router` runs Lambda invocations,
    `status_listener` hears of every execution start and end."""
    ensure_pinned_moto()
    with _lock:
        hooks.listen(router, status_listener)
        if _applied:
            return
        for patch in _patches():
            patch.original = patch.owner.__dict__.get(patch.attribute, _ABSENT)
            setattr(patch.owner, patch.attribute, patch.replacement)
            _applied.append(patch)
    logger.debug("moto patched version=%s patches=%d", moto.__version__, len(_applied))


def revert() -> None:
    """Undo `apply`: moto as shipped, no router and no status listener."""
    with _lock:
        while _applied:
            patch = _applied.pop()
            if patch.original is _ABSENT:  # an API moto lacks: gone again
                delattr(patch.owner, patch.attribute)
            else:
                setattr(patch.owner, patch.attribute, patch.original)
        hooks.stop_listening()


@contextmanager
def patched(
    router: LambdaRouter | None = None, status_listener: StatusListener | None = None
) -> Iterator[None]:
    """moto patched inside the block only (for tests that compare with and without)."""
    apply(router, status_listener)
    try:
        yield
    finally:
        revert()
