"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

- ``ssps_requests_total{endpoint,status}``: answered requests, by route template and status
- ``ssps_request_duration_seconds{endpoint}``: latency histogram
- ``ssps_batch_size``: windows per ONNX Runtime call (histogram)
- ``ssps_inference_duration_seconds``: time of one ONNX Runtime call (histogram)
- ``ssps_queue_depth``: windows waiting for the model (gauge)
- ``ssps_pending_requests``: inference requests admitted and not yet answered (gauge)
- ``ssps_rejected_total{reason}``: requests refused for capacity (``pending``, ``queue``)
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ssps_requests", "Answered HTTP requests", ["endpoint", "status"], registry=r)
        self.latency = Histogram("ssps_request_duration_seconds", "HTTP request latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("ssps_batch_size", "Windows per ONNX Runtime call",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.inference = Histogram("ssps_inference_duration_seconds", "Duration of one ONNX Runtime call",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("ssps_queue_depth", "Windows waiting for the model", registry=r)
        self.pending = Gauge("ssps_pending_requests", "Inference requests admitted, not yet answered", registry=r)
        self.rejected = Counter("ssps_rejected", "Requests refused for lack of capacity", ["reason"], registry=r)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
