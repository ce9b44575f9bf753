"""range: one page of a schedule's ticks between two instants, for a backfill's Map state
(or, asked for `pages`, where each of that many pages starts; asked with `inline_limit`, which
map mode the backfill runs in).

A request that can never succeed raises InvalidSchedule, InvalidTimezone, InvalidRange or
InvalidCursor; Lambda reports the class name as errorType, which the backfill's Catch matches.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from coordinator.observability import Metric, logger, metrics, tracer
from coordinator.schedule import RangeRequest, map_mode_of, page_cursors, range_page


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RangeRequest.from_event(event)
    if request.pages is not None:  # a Distributed Map backfill: where its pages start
        cursors = page_cursors(request)
        logger.info("range pages", pages=len(cursors.cursors), count=cursors.count)
        return cursors.model_dump()
    if request.inline_limit is not None:  # a backfill in map_mode "auto": inline or distributed
        chosen = map_mode_of(request)
        logger.info(
            "range map mode",
            map_mode=chosen.map_mode,
            counted=chosen.counted,
            inline_limit=request.inline_limit,
        )
        return chosen.model_dump(mode="json")
    page = range_page(request)
    asked = request.model_dump(mode="json", include={"schedule", "timezone", "order"})
    logger.info("range page", count=page.count, has_next=page.next is not None, **asked)
    metrics.add_metric(name=Metric.RANGE_TICKS, unit=MetricUnit.Count, value=page.count)
    return page.model_dump()
