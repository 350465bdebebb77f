"""``/buses/{id}/{rest...}``: one request forwarded to one bus.

``GET``, ``POST``, ``PUT``, ``DELETE`` and ``PATCH`` on the central
(behind the service's default JWT validator, like every built-in route)
go to ``bus.url + "/" + rest`` with the query string, the body (at most
:data:`MAX_REQUEST_BYTES`, else 413), ``Content-Type`` and ``Accept``,
and the central's own token for that bus as ``Authorization`` (the
caller's is never forwarded). The bus's status, ``Content-Type`` and
body (at most ``poll.max_bytes``) come back as they are. A bus the fleet
does not know is a 404, a bus that cannot be reached a 502, one that
does not answer within ``passthrough_timeout`` a 504. ``rest`` is forwarded as
the caller encoded it, so it may not hold dot segments, empty segments or
encoded slashes (400): it stays below the bus's base URL. The answer is
sandboxed by its CSP (bus HTML never runs on the central's origin), and a
command a browser marks as sent from another site is a 403.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Tuple
from urllib.parse import unquote

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from busd.config._central import BusEntry
from busd.errors import BodyTooLarge, GatewayError
from busd.guards import guarded, route_guard
from busd.pipeline.call import read_capped
from busd.pipeline.request import USER_AGENT

if TYPE_CHECKING:
    from busd.app import GatewayApp
    from busd.central._fanout import InFlight
    from busd.central.role import CentralRole

__all__ = [
    "PassThrough",
    "ROUTE",
    "METHODS",
    "MAX_REQUEST_BYTES",
    "TIMEOUT",
    "check_rest",
]

ROUTE = "/buses/<bus_id>/<path:rest>"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
MAX_REQUEST_BYTES = 1024 * 1024
#: Seconds a forwarded call may take by default (``passthrough_timeout``).
TIMEOUT = 10.0
_PREFIX = b"/buses/"
# RFC 3986 pchar plus "/" and well-formed escapes: what is forwarded as is.
_SAFE_PATH = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})+")
_SAFE_QUERY = re.compile(
    rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*"
)
_FORWARDED = (b"Content-Type", b"Accept")
#: The policy of every forwarded answer: nothing runs, nothing loads.
_SANDBOX = b"default-src 'none'; sandbox; frame-ancestors 'none'"
_BODYLESS = ("GET", "DELETE")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_rest(rest: bytes) -> str:
    """``rest`` (the raw path after the bus id) as the text to append to
    the bus's URL; raises a 400 GatewayError for anything that could walk
    out of it or be read two ways (dot segments, ``//``, ``%2F``, ``%5C``,
    characters a URL cannot hold)."""
    if not _SAFE_PATH.fullmatch(rest):
        raise _bad("bad characters in the bus path")
    segments = rest.split(b"/")
    for index, segment in enumerate(segments):
        if not segment and index < len(segments) - 1:
            raise _bad("empty segment in the bus path")
        if unquote(segment.decode("ascii")) in (".", ".."):
            raise _bad("dot segment in the bus path")
        low = segment.lower()
        if b"%2f" in low or b"%5c" in low or b"%00" in low:
            raise _bad("encoded slash in the bus path")
    return rest.decode("ascii")


def _bad(message: str) -> GatewayError:
    return GatewayError(message, status=400, code="bad_request")


class PassThrough:
    """The pass-through route of ``role`` (see the module doc); calls in
    flight are in ``inflight`` so the role's stop cancels them."""

    def __init__(self, role: "CentralRole", inflight: "InFlight"):
        self.role = role
        self.inflight = inflight
        #: Set while the role stops: calls it cancels answer 503.
        self.stopping = False

    def install(self, app: "GatewayApp") -> None:
        guard = route_guard(
            app.config.default_auth, app.guard_context, "ANY /buses/{id}/..."
        )

        def handle(request: IRequest, **_: str) -> Any:
            return self.forward(request)

        app.add_route(ROUTE, METHODS, "bus-passthrough", guarded(guard, handle))

    def target(self, request: IRequest) -> Tuple[BusEntry, str]:
        """The bus and full URL ``request`` goes to (GatewayError 400 or
        404 when there is none)."""
        # The raw path, not the router's decoded values: what was encoded
        # stays encoded on the way to the bus.
        raw = request.path[len(_PREFIX):]
        raw_id, _, rest = raw.partition(b"/")
        bus = self.role.config.bus(unquote(raw_id.decode("latin-1")))
        if bus is None:
            raise GatewayError(
                "no such bus in the fleet", status=404, code="unknown_bus"
            )
        url = bus.url + "/" + check_rest(rest)
        _, _, query = request.uri.partition(b"?")
        if query:
            if not _SAFE_QUERY.fullmatch(query):
                raise _bad("bad characters in the query string")
            url += "?" + query.decode("ascii")
        return bus, url

    def forward(self, request: IRequest) -> "Deferred[bytes]":
        """Forward ``request`` to its bus; fires with the body to answer
        (status and headers set on ``request``) or fails with a
        GatewayError."""
        bus, url = self.target(request)
        method = request.method.decode("ascii")
        if method not in _SAFE_METHODS and _cross_site(request):
            raise GatewayError(
                "commands to a bus are not taken from another site",
                status=403,
                code="cross_site",
            )
        body = _read_body(request)
        headers = Headers({b"User-Agent": [USER_AGENT.encode("ascii")]})
        for name in _FORWARDED:
            values = request.requestHeaders.getRawHeaders(name)
            if values:
                headers.setRawHeaders(name, values)
        tokens = self.role.tokens
        if tokens is not None:
            headers.setRawHeaders(
                b"Authorization", [tokens.authorization(bus.id)]
            )
        client = self.role.client
        if client is None or self.stopping:
            raise _stopping()
        data = None if method in _BODYLESS and not body else body
        try:
            target: Any = url.encode("ascii")
        except UnicodeEncodeError:  # an IDN base URL: treq encodes it
            target = url
        limit = self.role.config.poll.max_bytes
        d: Deferred[Any] = client.request(
            method, target, headers=headers, data=data, unbuffered=True
        )

        def on_response(response: Any) -> "Deferred[Tuple[Any, bytes]]":
            return read_capped(response, limit).addCallback(
                lambda content: (response, content)
            )

        d.addCallback(on_response)
        timeout = self.role.config.passthrough_timeout
        d.addTimeout(timeout, self.role.clock)
        d.addCallbacks(
            _render,
            self._failed,
            callbackArgs=(request,),
            errbackArgs=(bus,),
        )
        return self.inflight.track(d)

    def _failed(self, failure: Failure, bus: BusEntry) -> Failure:
        if failure.check(CancelledError):
            if self.stopping:
                return Failure(_stopping())
            return failure  # the caller went away
        if failure.check(TimeoutError):
            status, code, what = 504, "bus_timeout", "did not answer"
        elif failure.check(BodyTooLarge):
            status, code = 502, "bus_answer_too_large"
            what = "answered too much"
        else:
            status, code = 502, "bus_unreachable"
            what = f"unreachable: {failure.getErrorMessage()}"
        return Failure(
            GatewayError(f"bus {bus.id} {what}", status=status, code=code)
        )


def _cross_site(request: IRequest) -> bool:
    """Whether a browser says it sends ``request`` for another site's page
    (``Sec-Fetch-Site``): such a request carries the fleet manager's token
    cookie without her asking (cross-site request forgery). Programs send
    no such header."""
    site = (request.getHeader(b"sec-fetch-site") or b"").strip().lower()
    return site in (b"cross-site", b"same-site")


def _stopping() -> GatewayError:
    return GatewayError("the central is stopping", status=503, code="stopping")


def _read_body(request: IRequest) -> bytes:
    """The request body, refused (413) past :data:`MAX_REQUEST_BYTES`."""
    length = request.getHeader(b"content-length")
    if length is not None and length.isdigit():
        if int(length) > MAX_REQUEST_BYTES:
            raise _too_large()
    content = request.content
    if content is None:
        return b""
    body: bytes = content.read(MAX_REQUEST_BYTES + 1)
    if len(body) > MAX_REQUEST_BYTES:
        raise _too_large()
    return body


def _too_large() -> GatewayError:
    return GatewayError(
        f"request body over {MAX_REQUEST_BYTES} bytes",
        status=413,
        code="too_large",
    )


def _render(answer: Tuple[Any, bytes], request: IRequest) -> bytes:
    response, content = answer
    request.setResponseCode(response.code)
    content_type = response.headers.getRawHeaders(b"content-type")
    if content_type:
        request.setHeader(b"Content-Type", content_type[0])
    # The bus's answer is served on the central's origin, where the fleet
    # manager's token cookie lives: HTML from a bus (or a device behind
    # it) must not run there. Sandboxed, it gets an opaque origin.
    request.setHeader(b"Content-Security-Policy", _SANDBOX)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Content-Length", b"%d" % len(content))
    return content
