"""The one place that orders the pipeline's stages (lura's factory.go).

Read top to bottom, :func:`build_endpoint` is the architecture of an
endpoint: backend calls (optionally raced ``concurrent_calls`` times), then
fan-out (parallel or sequential) and merge, then the endpoint flatmap, then
static data, all under the endpoint timeout. Stacks are built once at config
load, never per request.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, List, Optional, Sequence

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from busd.config.model import EndpointConfig, StaticResponse
from busd.errors import BackendError
from busd.metrics import GatewayMetrics
from busd.pipeline.cache import CacheSet
from busd.pipeline.call import make_backend_call
from busd.pipeline.flatmap import make_flatmap
from busd.pipeline.merge import (
    concurrent,
    describe,
    parallel,
    sequential,
    with_timeout,
)
from busd.pipeline.types import HTTPClient, Proxy, ProxyRequest, ProxyResponse

__all__ = [
    "build_endpoint",
    "build_backend",
    "BackendFactory",
    "first_claim",
    "MERGE_SHARE",
    "CONCURRENT_SHARE",
]

#: Share of the endpoint timeout given to merged backends (lura: 85 %)...
MERGE_SHARE = 0.85
#: ...and to each of the ``concurrent_calls`` racers (lura: 75 %).
CONCURRENT_SHARE = 0.75
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

#: A role's hook for backends it serves itself (``busgw/fleet``:
#: busd.central.live): ``factory(endpoint, index, clock)`` returns the
#: Proxy of backend ``index``, or None to leave it to the HTTP call.
BackendFactory = Callable[
    [EndpointConfig, int, IReactorTime], Optional[Proxy]
]


def first_claim(
    factories: Sequence[BackendFactory],
) -> Optional[BackendFactory]:
    """One factory asking each of ``factories`` in turn (None for none)."""
    if not factories:
        return None
    if len(factories) == 1:
        return factories[0]

    def claim(
        endpoint: EndpointConfig, index: int, clock: IReactorTime
    ) -> Optional[Proxy]:
        for factory in factories:
            proxy = factory(endpoint, index, clock)
            if proxy is not None:
                return proxy
        return None

    return claim


def build_backend(
    endpoint: EndpointConfig,
    index: int,
    client: HTTPClient,
    clock: IReactorTime,
    rng: Optional[random.Random] = None,
    metrics: Optional[GatewayMetrics] = None,
    caches: Optional[CacheSet] = None,
    factory: Optional[BackendFactory] = None,
) -> Proxy:
    """The stack of one backend: the HTTP call (request building, status
    rule, capped body, decode, reshape; cached and collapsed with
    ``qos/http-cache``), raced when ``concurrent_calls`` > 1; or what
    ``factory`` claims it with (never raced: a fan-out of its own)."""
    if factory is not None:
        claimed = factory(endpoint, index, clock)
        if claimed is not None:
            return claimed
    backend = endpoint.backends[index]
    if backend.fleet is not None:
        # Served by the central role only (the loader refuses it
        # elsewhere); an app built without the role has no fleet to call.
        return _unserved(f"no fleet to call for [{backend.url_pattern}]")
    series = None
    if metrics is not None:
        label = f"{endpoint.method} {endpoint.endpoint}"
        series = metrics.backend(label, f"{index} {backend.url_pattern}")
    proxy = make_backend_call(
        endpoint,
        backend,
        index,
        client,
        rng,
        clock=clock,
        metrics=series,
        caches=caches,
    )
    if endpoint.concurrent_calls > 1:
        proxy = concurrent(
            proxy,
            endpoint.concurrent_calls,
            endpoint.timeout * CONCURRENT_SHARE,
            clock,
        )
    return proxy


def build_endpoint(
    endpoint: EndpointConfig,
    client: HTTPClient,
    clock: IReactorTime,
    rng: Optional[random.Random] = None,
    metrics: Optional[GatewayMetrics] = None,
    caches: Optional[CacheSet] = None,
    factory: Optional[BackendFactory] = None,
) -> Proxy:
    """The whole pipeline of one endpoint, as a single :data:`Proxy`;
    ``caches`` holds the backend caches of the config it belongs to;
    ``factory`` may claim backends (see :data:`BackendFactory`)."""
    caches = caches or CacheSet(clock)
    backends = [
        build_backend(
            endpoint, i, client, clock, rng, metrics, caches, factory
        )
        for i in range(len(endpoint.backends))
    ]
    share = endpoint.timeout * MERGE_SHARE
    proxy: Proxy
    if len(backends) == 1:
        proxy = backends[0]
    elif endpoint.sequential:
        proxy = sequential(
            backends, all_placeholders(endpoint), share, clock, endpoint.endpoint
        )
    else:
        proxy = parallel(backends, share, clock, endpoint.endpoint)
    if endpoint.flatmap_filter and len(backends) > 1:
        proxy = _flatmap_stage(proxy, endpoint)
    if endpoint.static is not None and endpoint.output_encoding != "no-op":
        proxy = _static_stage(proxy, endpoint.static)
    return with_timeout(proxy, endpoint.timeout, clock, what="endpoint")


def _unserved(message: str) -> Proxy:
    def unserved(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        return fail(BackendError(message))

    return unserved


def _flatmap_stage(proxy: Proxy, endpoint: EndpointConfig) -> Proxy:
    apply = make_flatmap(endpoint.flatmap_filter)

    def on_response(response: ProxyResponse) -> ProxyResponse:
        if response.errors:
            # lura skips the endpoint flatmap when the merge reported an
            # error (a partial answer): the ops may expect missing parts.
            return response
        return attrs.evolve(response, data=apply(response.data))

    def flat(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        d: Deferred[ProxyResponse] = maybeDeferred(proxy, req)
        return d.addCallback(on_response)

    return flat


def _static_matches(
    strategy: str, response: Optional[ProxyResponse], errored: bool
) -> bool:
    """lura's static matchers: ``errored`` means the pipe reported an error,
    a partial merge included."""
    if strategy == "success":
        return not errored
    if strategy == "errored":
        return errored
    if strategy == "complete":
        return not errored and response is not None and response.is_complete
    if strategy == "incomplete":
        return response is None or not response.is_complete
    return True  # "always"


def _static_stage(proxy: Proxy, static: StaticResponse) -> Proxy:
    """Add the static data over the response (its keys win collisions).
    When the pipe produced nothing, the static data becomes the response
    (incomplete, as in KrakenD, so no ``Cache-Control``)."""
    data = dict(static.data)

    def on_response(response: ProxyResponse) -> ProxyResponse:
        if not _static_matches(static.strategy, response, bool(response.errors)):
            return response
        return attrs.evolve(response, data={**response.data, **data})

    def on_failure(failure: Failure) -> Any:
        if failure.check(CancelledError) or not _static_matches(
            static.strategy, None, True
        ):
            return failure
        return ProxyResponse(
            data=dict(data),
            is_complete=False,
            errors=(describe(failure.value),),
        )

    def run(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        d: Deferred[ProxyResponse] = maybeDeferred(proxy, req)
        return d.addCallbacks(on_response, on_failure)

    return run


def all_placeholders(endpoint: EndpointConfig) -> List[str]:
    """Every ``{placeholder}`` used by the endpoint's backends."""
    return [
        name for b in endpoint.backends for name in _PLACEHOLDER.findall(b.url_pattern)
    ]
