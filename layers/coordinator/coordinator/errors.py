"""Named domain errors.

`InvalidMessage` is the one that decides a record's fate: it can never succeed, so it is not
retried; every other exception fails only its own record and lets the event source retry it.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    """Base of the coordinator's own errors."""


class InvalidMessage(CoordinatorError):
    """A process message that can never succeed: unparseable, invalid, or for an unknown workflow.

    `token` is the waiter's task token when it could be recovered from the message, so that
    waiter can be failed at once instead of hanging until its timeout.
    """

    def __init__(self, reason: str, *, token: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token
