"""Request ids, access logs and request metrics, at the root of the site.

:class:`TelemetryResource` wraps the gateway's root resource: it stamps
each request with a start time and a request id (``X-Request-Id``: the
caller's when it is well formed and trusted, else a new one), echoes the id
in the answer, and when the request ends (answered or abandoned) emits one
structured access-log event and records the request metrics.

Config: the service namespace ``extra_config."busgw/telemetry"``::

    {"access_log": true, "skip_paths": ["/__health"],
     "trust_request_id": true,
     "admin": {"listen": "tcp:9091:interface=127.0.0.1",
               "metrics_path": "/metrics", "reload_path": "/reload"}}
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from busd.config._telemetry import TelemetryConfig
from busd.metrics import GatewayMetrics

__all__ = ["TelemetryResource", "request_id", "set_endpoint_label"]

access_log = Logger(namespace="busgw.access")
# An id from outside is only kept when it cannot break a log line or a
# header: printable token characters, bounded length.
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_UNMATCHED = "(unmatched)"


def request_id(request: IRequest) -> str:
    """The request id :class:`TelemetryResource` gave ``request``."""
    return getattr(request, "busgw_request_id", "")


def set_endpoint_label(request: IRequest, label: str) -> None:
    """Name the endpoint that answers ``request`` (a bounded metrics label,
    such as ``GET /status``); unrouted requests stay ``(unmatched)``."""
    request.busgw_endpoint = label  # type: ignore[attr-defined]


class TelemetryResource(Resource):
    """The root resource: request id, then the wrapped resource, then one
    access-log event and the metrics when the request is over."""

    isLeaf = True

    def __init__(
        self,
        inner: IResource,
        config: TelemetryConfig,
        clock: IReactorTime,
        metrics: Optional[GatewayMetrics] = None,
    ):
        super().__init__()
        self._clock = clock
        self._metrics = metrics
        self.swap(inner, config)

    def swap(self, inner: IResource, config: TelemetryConfig) -> None:
        """Serve new requests from ``inner`` (a config reload); requests
        already inside the old resource finish there."""
        self._inner = inner
        self._config = config
        self._skip = frozenset(p.encode() for p in config.skip_paths)

    def render(self, request: Any) -> Any:
        start = self._clock.seconds()
        given = request.getHeader(b"x-request-id")
        if given and self._config.trust_request_id and _GOOD_ID.fullmatch(given):
            rid = given.decode("ascii")
        else:
            rid = secrets.token_hex(8)
        request.busgw_request_id = rid
        request.setHeader(b"X-Request-Id", rid.encode("ascii"))
        if self._metrics is not None:
            self._metrics.in_flight.inc()
        request.notifyFinish().addBoth(self._done, request, start)
        return self._inner.render(request)

    def _done(self, result: Any, request: Any, start: float) -> None:
        seconds = self._clock.seconds() - start
        gone = isinstance(result, Failure)
        # 499: nginx's code for a client that left before the answer.
        status = 499 if gone else request.code
        endpoint = getattr(request, "busgw_endpoint", _UNMATCHED)
        completed = request.responseHeaders.getRawHeaders(
            b"x-krakend-completed", [b""]
        )[0]
        if self._metrics is not None:
            self._metrics.in_flight.dec()
            self._metrics.request_done(
                endpoint,
                request.method.decode("ascii", "replace"),
                status,
                seconds,
                completed == b"false" and endpoint != _UNMATCHED,
            )
        if not self._config.access_log or request.path in self._skip:
            return
        addr = request.getClientAddress()
        access_log.info(
            '{client} "{method} {path}" {status} {bytes} {duration_ms:.1f}ms'
            " id={request_id}",
            client=getattr(addr, "host", "-"),
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("latin-1"),
            status=status,
            bytes=request.sentLength,
            duration_ms=seconds * 1000.0,
            request_id=request_id(request),
            endpoint=endpoint,
            completed=completed.decode("ascii", "replace") or None,
        )
