"""Endpoint guards: checks that run after routing and before the pipeline.

A guard takes the twisted.web request and the :class:`ProxyRequest` built
from it and returns (or fires a Deferred with) the ProxyRequest to go on
with, possibly enriched (JWT claims as params or headers). It refuses by
raising (or failing with) a :class:`~busd.errors.GatewayError` whose
status, code and headers become the answer. Guards are built once per
endpoint at config load by :func:`endpoint_guards`, the one place that
orders them.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Union,
)

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from busd.auth.guard import make_jwt_guard
from busd.config.model import EndpointConfig, GatewayConfig
from busd.pipeline.types import HTTPClient, ProxyRequest
from busd.qos.ratelimit import RateLimitGuard

if TYPE_CHECKING:
    from busd.auth.config import ValidatorConfig

__all__ = [
    "Guard",
    "GuardContext",
    "endpoint_guards",
    "run_guards",
    "route_guard",
    "guarded",
]

Guard = Callable[
    [IRequest, ProxyRequest], Union[ProxyRequest, "Deferred[ProxyRequest]"]
]


@attrs.frozen
class GuardContext:
    """What guards may need: the outbound client (JWKS fetches) and the
    clock (token expiry, rate-limit buckets)."""

    client: HTTPClient
    clock: IReactorTime
    reactor: Any = None
    #: JWK sets fetched from a jwk_url, one per URL for the whole app, so
    #: endpoints sharing a key server share one cache (see busd.auth.guard).
    jwks: Dict[Any, Any] = attrs.field(factory=dict, eq=False)


def endpoint_guards(
    config: GatewayConfig, endpoint: EndpointConfig, context: GuardContext
) -> List[Guard]:
    """The guards of ``endpoint``, in the order they run: rate limits
    first (cheapest, and they protect the validator), then authentication."""
    guards: List[Guard] = []
    if endpoint.rate_limit is not None:
        guards.append(RateLimitGuard(endpoint.rate_limit, context.clock))
    if endpoint.auth is not None:
        guards.append(
            make_jwt_guard(
                endpoint.auth,
                client=context.client,
                clock=context.clock,
                endpoint=f"{endpoint.method} {endpoint.endpoint}",
                url_patterns=tuple(b.url_pattern for b in endpoint.backends),
                shared=context.jwks,
            )
        )
    return guards


def route_guard(
    validator: Optional[ValidatorConfig], context: GuardContext, name: str
) -> Optional[Callable[[IRequest], "Deferred[ProxyRequest]"]]:
    """The JWT check of a role's built-in route (``/health``, an inbound
    topic) with the same validator an endpoint would run (usually the
    service default, ``GatewayConfig.default_auth``), sharing ``context``'s
    key caches; None when ``validator`` is None (a public route).

    It fails with the same 401/403 :class:`~busd.errors.GatewayError` as
    an endpoint. Only the request's headers are read; the body is left
    for the route.
    """
    if validator is None:
        return None
    guard = make_jwt_guard(
        validator,
        client=context.client,
        clock=context.clock,
        endpoint=name,
        shared=context.jwks,
    )

    def check(request: IRequest) -> "Deferred[ProxyRequest]":
        headers = tuple(
            (key.decode("latin-1"), value.decode("latin-1"))
            for key, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        )
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")
        preq = ProxyRequest(method=method, path=path, headers=headers)
        return maybeDeferred(guard, request, preq)

    return check


def guarded(
    guard: Optional[Callable[[IRequest], "Deferred[Any]"]],
    handler: Callable[..., Any],
) -> Callable[..., Any]:
    """``handler(request, **params)`` behind ``guard`` (a
    :func:`route_guard`; None: a public route): it runs only once the
    guard passed, whose 401/403 otherwise fail the answer."""
    if guard is None:
        return handler

    def handle(request: IRequest, **params: Any) -> Any:
        d = guard(request)
        return d.addCallback(lambda _: handler(request, **params))

    return handle


def run_guards(
    guards: Sequence[Guard], request: IRequest, preq: ProxyRequest
) -> "Deferred[ProxyRequest]":
    """Run ``guards`` one after another, each on the previous one's result."""
    d: Deferred[Any] = maybeDeferred(guards[0], request, preq)
    for guard in guards[1:]:
        d.addCallback(_apply, guard, request)
    return d


def _apply(preq: ProxyRequest, guard: Guard, request: IRequest) -> Any:
    return guard(request, preq)

