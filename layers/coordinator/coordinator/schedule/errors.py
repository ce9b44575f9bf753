"""The typed errors of a schedule or range request, named for the Step Functions Catch."""

from __future__ import annotations


class RangeRequestError(ValueError):
    """A range request that can never succeed.

    Lambda reports the class name as `errorType`, which is what a Step Functions Catch matches,
    so the subclasses' names are the contract: `InvalidSchedule`, `InvalidTimezone`,
    `InvalidRange`, `InvalidCursor`. The message starts with the offending field.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidSchedule(RangeRequestError):
    """`schedule` is not a cron(...), rate(...) or five-field cron expression Scheduler accepts."""


class InvalidTimezone(RangeRequestError):
    """`timezone` is not an IANA zone name."""


class InvalidRange(RangeRequestError):
    """The range or its options are wrong: bad or reversed bounds, page size, order, DST option,
    or a field the request does not have."""


class InvalidCursor(InvalidRange):
    """`cursor` is not one this function issued, or was issued for a different request.

    Its own errorType, so a caller can tell "start over without the cursor" from a bad range;
    a subclass of InvalidRange so Python callers catching that still catch it.
    """
