"""Observability: Prometheus metrics (``Metrics``) and structured logs with request and batch ids.

The HTTP service and the stream workers build one ``Metrics`` each and hand
it to the engine as its observer; see docs/observability.md for every series.
"""

from referee.obs.logs import (
    JsonFormatter,
    TextFormatter,
    batch_id,
    bound_batch,
    bound_request,
    configure_logging,
    new_request_id,
    request_id,
    sane_request_id,
)
from referee.obs.metrics import (
    CONTENT_TYPE,
    LATENCY_BUCKETS,
    OTHER_SURFACE,
    UNMATCHED,
    Metrics,
    MetricsServer,
    start_metrics_server,
)

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "OTHER_SURFACE",
    "UNMATCHED",
    "JsonFormatter",
    "Metrics",
    "MetricsServer",
    "TextFormatter",
    "batch_id",
    "bound_batch",
    "bound_request",
    "configure_logging",
    "new_request_id",
    "request_id",
    "sane_request_id",
    "start_metrics_server",
]
