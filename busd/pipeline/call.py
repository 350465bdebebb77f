"""The backend call: one HTTP request, the 200/201 rule, a capped body.

``make_backend_call`` returns a :data:`Proxy` for one backend: it builds
the request (``request.py``), calls the shared client, reads at most
``max_body_bytes`` of the answer, applies KrakenD's status policy and then
decodes and reshapes the data, or passes it through untouched (``no-op``).
"""

from __future__ import annotations

import random
from typing import Any, Hashable, List, Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.internet.protocol import Protocol, connectionDone
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from busd.config.model import BackendConfig, EndpointConfig
from busd.metrics import BackendMetrics
from busd.errors import BackendError, BackendStatusError, BodyTooLarge
from busd.pipeline.decode import decode_body
from busd.pipeline.cache import (
    COLLAPSIBLE_METHODS,
    BackendCache,
    CacheSet,
    Flights,
    cache_key,
    ttl_from_headers,
)
from busd.pipeline.request import BackendRequest, make_request_builder
from busd.pipeline.reshape import make_formatter
from busd.pipeline.types import HTTPClient, Proxy, ProxyRequest, ProxyResponse

__all__ = ["make_backend_call", "read_capped", "NOOP_DROPPED_HEADERS"]

_log = Logger()

# Headers describing the backend's own connection or framing: twisted.web
# sets its own for the client's connection.
NOOP_DROPPED_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
    }
)


def read_capped(response: Any, limit: int) -> "Deferred[bytes]":
    """Collect a treq response body, failing with :class:`BodyTooLarge` (and
    dropping the connection) as soon as it grows past ``limit`` bytes."""
    length = getattr(response, "length", None)
    if isinstance(length, int) and length > limit:
        # Refuse before reading anything; closing the transport frees it.
        response.deliverBody(_Discard())
        return _fail(BodyTooLarge(f"body of {length} bytes exceeds {limit}"))
    collector = _Collector(limit)
    response.deliverBody(collector)
    return collector.finished


class _Collector(Protocol):
    """Collects a body up to ``limit`` bytes. Cancelling ``finished`` (a
    timeout, a client gone) drops the connection at once: treq's collect
    has no canceller, so a stalled body would keep its socket open."""

    def __init__(self, limit: int):
        self._limit = limit
        self._size = 0
        self._chunks: List[bytes] = []
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, _: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        # The body's transport is an IPushProducer (the response's
        # connection): stopProducing closes it.
        producer: Any = self.transport
        if producer is not None:
            producer.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._stop()
            self.finished.errback(
                Failure(BodyTooLarge(f"body exceeds {self._limit} bytes"))
            )
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self._chunks))
        else:
            self.finished.errback(reason)


def _fail(exc: Exception) -> "Deferred[Any]":
    d: Deferred[Any] = Deferred()
    d.errback(Failure(exc))
    return d


class _Discard:
    """A body protocol that drops the connection at once."""

    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


def _was_cancelled(failure: Failure) -> bool:
    """True for a cancelled call, also when the Agent wrapped the
    cancellation in ``ResponseNeverReceived`` or ``RequestNotSent``."""
    if failure.check(CancelledError):
        return True
    reasons = getattr(failure.value, "reasons", None) or ()
    return any(r.check(CancelledError) for r in reasons)


def _response_headers(headers: Headers) -> Tuple[Tuple[str, str], ...]:
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in headers.getAllRawHeaders()
        if name.lower() not in NOOP_DROPPED_HEADERS
        for value in values
    )


def make_backend_call(
    endpoint: EndpointConfig,
    backend: BackendConfig,
    index: int,
    client: HTTPClient,
    rng: Optional[random.Random] = None,
    *,
    clock: Optional[IReactorTime] = None,
    metrics: Optional[BackendMetrics] = None,
    caches: Optional[CacheSet] = None,
) -> Proxy:
    """Build the proxy that calls ``backend`` (the ``index``-th of
    ``endpoint``) through ``client`` and returns its shaped data. With
    ``metrics`` (and the ``clock`` to time calls) each call is recorded.
    A backend with ``qos/http-cache`` collapses identical calls in flight
    and, given the ``clock``, caches answers in ``caches``' store
    (busd.pipeline.cache)."""
    build_request = make_request_builder(endpoint, backend, rng)
    flights: Optional[Flights] = None
    store: Optional[BackendCache] = None
    if backend.http_cache is not None and backend.method in COLLAPSIBLE_METHODS:
        if clock is not None:
            caches = caches or CacheSet(clock)
        if caches is not None:
            store, flights = caches.for_backend(backend.http_cache)
        else:
            flights = Flights()
    default_ttl = endpoint.cache_ttl
    formatter = make_formatter(backend)
    limit = backend.max_body_bytes
    noop = backend.encoding == "no-op"
    details_key = (
        f"error_{backend.return_error_details}"
        if backend.return_error_details
        else ""
    )
    label = f"[{backend.method} {backend.url_pattern}]"

    def on_body(body: bytes, response: Any, url: str) -> ProxyResponse:
        code = response.code
        if noop:
            return ProxyResponse(
                data={},
                is_complete=False,
                status=code,
                headers=_response_headers(response.headers),
                raw_body=body,
            )
        if code not in (200, 201):
            content_type = response.headers.getRawHeaders(b"content-type", [b""])[0]
            err = BackendStatusError(
                f"invalid status code {code} {label}: {url}",
                backend_status=code,
                body=body,
                content_type=content_type.decode("latin-1"),
            )
            if details_key:
                # KrakenD: the failure becomes data and the endpoint a 200.
                return ProxyResponse(
                    data={
                        details_key: {
                            "http_status_code": code,
                            "http_body": body.decode("utf-8", "replace"),
                            "http_body_encoding": err.content_type,
                        }
                    },
                    is_complete=False,
                    errors=(str(err),),
                )
            err.expose_status = backend.return_error_code
            raise err
        data = decode_body(body, backend.encoding, backend.is_collection)
        return ProxyResponse(data=formatter(data))

    # What is cached and shared is this backend's *shaped* answer: with a
    # shared cache, two backends calling one URL must not see each other's
    # allow/deny/mapping (one may filter out what the other exposes).
    shape = (
        backend.encoding,
        backend.is_collection,
        backend.target,
        backend.allow,
        backend.deny,
        tuple(sorted(backend.mapping.items())),
        backend.group,
        backend.flatmap_filter,
        backend.return_error_details,
        backend.return_error_code,
        backend.max_body_bytes,
    )

    def call(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        breq = build_request(req)
        if flights is None or noop:
            # A no-op answer carries the backend's own headers (Set-Cookie):
            # never shared between callers.
            return fetch(breq, None)
        key = (shape, cache_key(breq.method, breq.url, breq.headers))
        if store is not None:
            hit = store.get(key)
            if hit is not None:
                return succeed(hit)
        return flights.join(key, lambda: fetch(breq, key))

    def keep(
        shaped: ProxyResponse, key: Hashable, ttl: float, size: int
    ) -> ProxyResponse:
        if store is not None and ttl > 0 and shaped.is_complete:
            store.put(key, shaped, size, ttl)
        return shaped

    def fetch(
        breq: BackendRequest, key: Optional[Hashable]
    ) -> "Deferred[ProxyResponse]":
        headers = Headers(breq.headers)
        if breq.host_header is not None:
            # Pre-built: the client skips URL parsing and Host computing.
            headers.setRawHeaders(b"Host", [breq.host_header])
        d: Deferred[Any] = client.request(
            breq.method,
            breq.uri or breq.url,
            headers=headers,
            data=breq.body,
            unbuffered=True,
        )

        def on_response(response: Any) -> "Deferred[ProxyResponse]":
            body_d = read_capped(response, limit)
            if key is None or store is None or noop:
                return body_d.addCallback(on_body, response, breq.url)
            ttl = ttl_from_headers(
                response.headers.getRawHeaders(b"cache-control"), default_ttl
            )

            def shaped(body: bytes) -> ProxyResponse:
                return keep(on_body(body, response, breq.url), key, ttl, len(body))

            return body_d.addCallback(shaped)

        def on_error(failure: Failure) -> Failure:
            if _was_cancelled(failure):
                # Keep it a CancelledError: addTimeout turns that into a
                # TimeoutError, and a gone client needs no backend error.
                return Failure(CancelledError())
            if not failure.check(BackendError):
                # Connection refused, DNS, TLS...: a backend error with the
                # cause in its message, so merge and logs can name it.
                err = BackendError(
                    f"{failure.getErrorMessage() or type(failure.value).__name__}"
                    f" {label}: {breq.url}"
                )
                err.__cause__ = failure.value
                return Failure(err)
            return failure

        d.addCallback(on_response)
        d.addErrback(on_error)
        return d

    if metrics is None or clock is None:
        return call
    timer, record = clock, metrics

    def measured(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        start = timer.seconds()

        def done(result: Any) -> Any:
            error = result.value if isinstance(result, Failure) else None
            if not isinstance(error, CancelledError):
                record.observe(timer.seconds() - start, error)
            return result

        return call(req).addBoth(done)

    return measured
