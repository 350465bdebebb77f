"""Request limits: what a stranger's request may cost a Raspberry Pi.

Read from KrakenD's service keys where KrakenD has one
(``read_header_timeout``, ``read_timeout``, ``idle_timeout``,
``max_header_bytes``) and from busgw's service namespace
``extra_config."busgw/limits"`` (``max_body_bytes``, ``max_headers``,
``max_in_flight``). :func:`apply_limits` configures a ``Site`` (any
subclass: it wraps the site's protocol and request factories, it does not
need its own Site class) and :class:`InFlightLimit` wraps the root
resource. The connection-level work is in :mod:`busd._http_limits`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import Site

if TYPE_CHECKING:
    # busd.config imports this module (model.py) while it loads.
    from busd.config._walk import Node

__all__ = [
    "NAMESPACE",
    "LIMITS_KEYS",
    "SERVICE_LIMIT_KEYS",
    "RequestLimits",
    "read_limits",
    "apply_limits",
    "InFlightLimit",
    "InFlightCounter",
]

NAMESPACE = "busgw/limits"
LIMITS_KEYS = frozenset({"max_body_bytes", "max_headers", "max_in_flight"})
#: KrakenD service-level keys read here.
SERVICE_LIMIT_KEYS = frozenset(
    {"read_header_timeout", "read_timeout", "idle_timeout", "max_header_bytes"}
)


@attrs.frozen(kw_only=True)
class RequestLimits:
    """Limits on each inbound request and connection; durations in
    seconds, sizes in bytes. The defaults suit a Pi on a 4G link."""

    max_body_bytes: int = 1024 * 1024
    max_headers: int = 100
    max_header_bytes: int = 16 * 1024
    max_in_flight: int = 256
    read_header_timeout: float = 10.0
    read_timeout: float = 30.0
    idle_timeout: float = 60.0


_DEFAULTS = RequestLimits()


def read_limits(service: Node, node: Optional[Node]) -> RequestLimits:
    """The limits from the root object ``service`` and its
    ``busgw/limits`` namespace ``node`` (None when absent).

    A zero duration means the default, as for every busgw duration: busgw
    always keeps a deadline. Without ``idle_timeout``, a given
    ``read_timeout`` is used for it, as Go's server (so KrakenD) does.
    """
    read_timeout = service.duration("read_timeout", _DEFAULTS.read_timeout)
    idle_default = (
        read_timeout if service.has("read_timeout") else _DEFAULTS.idle_timeout
    )
    limits = RequestLimits(
        read_header_timeout=service.duration(
            "read_header_timeout", _DEFAULTS.read_header_timeout
        ),
        read_timeout=read_timeout,
        idle_timeout=service.duration("idle_timeout", idle_default),
        max_header_bytes=service.integer(
            "max_header_bytes", _DEFAULTS.max_header_bytes, minimum=1024
        ),
    )
    if node is None:
        return limits
    limits = attrs.evolve(
        limits,
        max_body_bytes=node.integer(
            "max_body_bytes", _DEFAULTS.max_body_bytes, minimum=0
        ),
        max_headers=node.integer(
            "max_headers", _DEFAULTS.max_headers, minimum=1
        ),
        max_in_flight=node.integer(
            "max_in_flight", _DEFAULTS.max_in_flight, minimum=1
        ),
    )
    node.finish(LIMITS_KEYS)
    return limits


def apply_limits(
    site: Site,
    limits: Union[RequestLimits, Callable[[], RequestLimits]],
    clock: IReactorTime,
) -> None:
    """Make ``site`` enforce ``limits`` on every connection it builds from
    now on, with deadlines on ``clock``. ``limits`` may be a callable giving
    the current limits (a reloaded config's apply to new connections).

    Each connection gets the site's idle timeout (``Site.timeOut``: a
    keep-alive connection with nothing to say is closed after
    ``idle_timeout``) and a channel enforcing the other limits, whatever
    channel class the site builds; the site's request factory is wrapped
    to count body bytes.
    """
    from busd._http_limits import configure_channel, limited_request_class

    current = limits if callable(limits) else (lambda: limits)
    site.timeOut = current().idle_timeout
    site.requestFactory = limited_request_class(site.requestFactory)
    build = site.protocol
    assert build is not None

    def protocol() -> Any:
        now = current()
        # HTTPFactory.buildProtocol copies site.timeOut onto the protocol
        # right after this returns.
        site.timeOut = now.idle_timeout
        built = build()
        # Site's default protocol wraps the HTTP/1.1 channel (for HTTP/2
        # negotiation); a test Site may build the channel directly.
        channel = getattr(built, "_channel", built)
        if isinstance(channel, HTTPChannel):
            configure_channel(channel, now, clock)
        return built

    # Factory.buildProtocol calls self.protocol(): an instance attribute
    # here leaves the class, and any other site, untouched.
    site.protocol = protocol  # type: ignore[method-assign]


class InFlightCounter:
    """Requests being handled now; shared by every generation's
    :class:`InFlightLimit` so a config reload does not reset the count."""

    def __init__(self) -> None:
        self.count = 0


class InFlightLimit(Resource):
    """Wraps the root resource: at most ``maximum`` requests are handled at
    once; one more is answered 503 (JSON, ``Retry-After: 1``) at once, so
    load never builds an unbounded queue."""

    isLeaf = True

    def __init__(
        self,
        wrapped: IResource,
        maximum: int,
        counter: Optional[InFlightCounter] = None,
    ):
        super().__init__()
        self._wrapped = wrapped
        self.maximum = maximum
        self.counter = counter or InFlightCounter()

    def render(self, request: Any) -> Any:
        if self.counter.count >= self.maximum:
            request.setResponseCode(503)
            request.setHeader(
                b"Content-Type", b"application/json; charset=utf-8"
            )
            request.setHeader(b"Retry-After", b"1")
            body = json.dumps(
                {"error": "too many requests in flight", "status": 503}
            ).encode()
            request.setHeader(b"Content-Length", b"%d" % len(body))
            return body
        self.counter.count += 1
        # Fires on finish and errs on a lost connection: either ends it.
        request.notifyFinish().addBoth(self._done)
        return getChildForRequest(self._wrapped, request).render(request)

    def _done(self, _: Any) -> None:
        self.counter.count -= 1
