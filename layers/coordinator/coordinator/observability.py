"""The one Logger, Tracer and Metrics of every handler (service name and namespace from env)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
