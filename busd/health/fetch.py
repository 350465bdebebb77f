"""What health checks read: a source's JSON (a device service URL or one
of the gateway's own endpoints) and a device service's answer status.

Every call is bounded by its check's timeout on the injected clock and
never fails: errors (refused, timed out, not JSON, a non-2xx answer, a
body over :data:`MAX_SOURCE_BYTES`) become the reason of the result.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Tuple

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from busd.config._health import CheckConfig, SourceConfig
from busd.health.results import Fetched
from busd.pipeline.call import read_capped
from busd.pipeline.types import HTTPClient, ProxyRequest

__all__ = ["Sources", "Probe", "MAX_SOURCE_BYTES", "describe_failure"]

#: The most a health source or probe may answer; more is an error.
MAX_SOURCE_BYTES = 1024 * 1024
#: A backend probe: (status, "", elapsed) or (None, error, elapsed).
Probe = Tuple[Optional[int], str, float]


def describe_failure(failure: Failure, timeout: float) -> str:
    """A short reason for a failed fetch, for the check's ``reason``."""
    if failure.check(TimeoutError):
        return f"no answer within {timeout:g}s"
    if failure.check(CancelledError):
        return "cancelled"
    return failure.getErrorMessage() or type(failure.value).__name__


class Sources:
    """Reads for one health role: ``client`` for URLs, ``pipelines()``
    (the current generation's ``GatewayApp.pipelines``) for endpoints."""

    def __init__(
        self,
        client: HTTPClient,
        clock: IReactorTime,
        pipelines: Callable[[], Any],
    ):
        self._client = client
        self._clock = clock
        self._pipelines = pipelines

    def fetch(
        self, source: SourceConfig, timeout: float
    ) -> "Deferred[Fetched]":
        """``source``'s JSON as :class:`Fetched` (errors included)."""
        if source.endpoint:
            d = self._from_endpoint(source.endpoint)
        else:
            d = self._from_url(source.url)
        d.addTimeout(timeout, self._clock)
        return d.addErrback(
            lambda f: Fetched(error=describe_failure(f, timeout))
        )

    def _from_url(self, url: str) -> "Deferred[Fetched]":
        headers = Headers({b"Accept": [b"application/json"]})
        d = self._client.request("GET", url, headers=headers, unbuffered=True)

        def answered(response: Any) -> "Deferred[Fetched]":
            body = read_capped(response, MAX_SOURCE_BYTES)
            return body.addCallback(_decode, response.code)

        return d.addCallback(answered)

    def _from_endpoint(self, path: str) -> "Deferred[Fetched]":
        pipeline = (self._pipelines() or {}).get(("GET", path))
        if pipeline is None:
            return succeed(Fetched(error=f"GET {path} is not served"))
        d = maybeDeferred(pipeline, ProxyRequest(method="GET", path=path))

        def answered(response: Any) -> Fetched:
            if response.raw_body is not None:
                return _decode(response.raw_body, response.status)
            return Fetched(data=response.data, partial=not response.is_complete)

        return d.addCallback(answered)

    def probe(self, check: CheckConfig) -> "Deferred[Probe]":
        """GET ``check.url``: its status and how long it took."""
        started = self._clock.seconds()
        d = self._client.request("GET", check.url, unbuffered=True)

        def answered(response: Any) -> "Deferred[Probe]":
            took = self._clock.seconds() - started
            # Drain (capped) so the connection can be reused.
            drained = read_capped(response, MAX_SOURCE_BYTES)
            return drained.addBoth(lambda _: (response.code, "", took))

        d.addCallback(answered)
        d.addTimeout(check.timeout, self._clock)

        def failed(failure: Failure) -> Probe:
            took = self._clock.seconds() - started
            return None, describe_failure(failure, check.timeout), took

        return d.addErrback(failed)


def _decode(body: bytes, status: int) -> Fetched:
    if not 200 <= status < 300:
        return Fetched(error=f"answered {status}")
    try:
        return Fetched(data=json.loads(body))
    except ValueError:
        return Fetched(error="the answer is not JSON")
