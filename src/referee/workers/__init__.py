"""Stream workers: moderate items from a Redis stream through a consumer group.

``Worker(engine, ItemStream(connect(url), StreamConfig(...)))`` reads entries,
moderates them in batches with an engine from ``build_engine``, publishes
each decision to an output stream and acknowledges the entry only after its
decision is stored. ``produce`` loads items into a stream. See docs/workers.md.
"""

from referee.workers.metrics import PrometheusMetrics
from referee.workers.stream import (
    ITEM_FIELD,
    Entry,
    ItemStream,
    StreamConfig,
    StreamError,
    connect,
    produce,
)
from referee.workers.worker import Worker, WorkerMetrics

__all__ = [
    "ITEM_FIELD",
    "Entry",
    "ItemStream",
    "PrometheusMetrics",
    "StreamConfig",
    "StreamError",
    "Worker",
    "WorkerMetrics",
    "connect",
    "produce",
]
