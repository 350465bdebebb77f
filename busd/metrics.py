"""Prometheus metrics of one gateway, on its own registry.

Each :class:`GatewayMetrics` owns a ``CollectorRegistry`` (never the
library's global one), so two gateways in one process (tests, a reload)
never mix their counters. The hot path only touches pre-bound children:
label look-ups happen once per endpoint/backend at config load, or once
per new status code.

``prometheus_client.twisted.MetricsResource`` is not used: it imports the
global reactor at import time and renders through WSGI in a thread pool.
Rendering a registry this size takes well under a millisecond, so
:class:`MetricsResource` does it on the reactor thread.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from twisted.web.resource import Resource
from twisted.web.iweb import IRequest

from busd import __version__

__all__ = ["GatewayMetrics", "BackendMetrics", "MetricsResource", "error_kind"]

# Seconds; a Pi answering from device services on loopback takes a few
# milliseconds, a call over 4G up to seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def error_kind(error: BaseException) -> str:
    """A short, bounded label for a backend error: its stable code
    (``backend_timeout``, ``backend_status``...) or ``connection``."""
    code = getattr(error, "code", None)
    if isinstance(code, str) and code != "backend_error":
        return code.replace("backend_", "")
    return "connection"


class BackendMetrics:
    """The pre-bound series of one backend of one endpoint."""

    def __init__(self, metrics: "GatewayMetrics", endpoint: str, backend: str):
        self._seconds = metrics.backend_seconds.labels(endpoint, backend)
        self._errors = metrics.backend_errors
        self._labels = (endpoint, backend)
        self._by_kind: Dict[str, Any] = {}

    def observe(self, seconds: float, error: Optional[BaseException]) -> None:
        """Record one call that took ``seconds`` and failed with ``error``
        (None on success)."""
        self._seconds.observe(seconds)
        if error is not None:
            kind = error_kind(error)
            child = self._by_kind.get(kind)
            if child is None:
                child = self._by_kind[kind] = self._errors.labels(
                    *self._labels, kind
                )
            child.inc()


class GatewayMetrics:
    """The gateway's series (names prefixed ``busgw_``)."""

    def __init__(self, *, process: bool = True):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "busgw_requests",
            "Requests answered, by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "busgw_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.partial = Counter(
            "busgw_partial_responses",
            "Answers with X-Krakend-Completed: false, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.in_flight = Gauge(
            "busgw_requests_in_flight", "Requests being answered.", registry=r
        )
        self.backend_seconds = Histogram(
            "busgw_backend_duration_seconds",
            "Time of each backend call, by endpoint and backend.",
            ["endpoint", "backend"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "busgw_backend_errors",
            "Failed backend calls by endpoint, backend and kind "
            "(timeout, status, connection, decode, body_too_large).",
            ["endpoint", "backend", "kind"],
            registry=r,
        )
        self.reloads = Counter(
            "busgw_config_reloads",
            "Config reloads, by result (ok, failed).",
            ["result"],
            registry=r,
        )
        Gauge("busgw_info", "busgw version.", ["version"], registry=r).labels(
            __version__
        ).set(1)
        if process:
            # RSS, open file descriptors, CPU: read from /proc when scraped.
            ProcessCollector(registry=r)
        self._requests: Dict[Tuple[str, str, int], Any] = {}
        self._durations: Dict[str, Any] = {}

    def backend(self, endpoint: str, backend: str) -> BackendMetrics:
        """The series of one backend (``backend`` is e.g. ``0 /vehicle``)."""
        return BackendMetrics(self, endpoint, backend)

    def request_done(
        self, endpoint: str, method: str, status: int, seconds: float, partial: bool
    ) -> None:
        """Record one answered request."""
        key = (endpoint, method, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(
                endpoint, method, str(status)
            )
        child.inc()
        duration = self._durations.get(endpoint)
        if duration is None:
            duration = self._durations[endpoint] = self.request_seconds.labels(
                endpoint
            )
        duration.observe(seconds)
        if partial:
            self.partial.labels(endpoint).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return bytes(generate_latest(self.registry))


class MetricsResource(Resource):
    """Serves :meth:`GatewayMetrics.render` to GET requests."""

    isLeaf = True

    def __init__(self, metrics: GatewayMetrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: IRequest) -> bytes:
        body = self.metrics.render()
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body
