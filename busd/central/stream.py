"""``GET /fleet/stream``: the fleet's live changes as server-sent events.

:func:`make_part` gives the central its :class:`~busd.central.hub.Hub`
(``role.hub``); the other parts publish through it:

* ``fleet``: ``{"health": <the /fleet/health body>}``, first on every new
  stream (and to everyone after a reload changed the fleet);
* ``bus``: one bus summary, when its state, level, failing checks or
  values changed;
* ``event``: an ingested event, once stored;
* ``seen``: every heartbeat (15 s), ``{"buses": {id: age_s}}``, so a page
  keeps "last seen" right for buses whose summary did not change.

``?kinds=bus,event`` keeps only those kinds (``fleet`` too only if
named). The route is guarded like the other fleet routes (the service's
default validator); a browser's EventSource sends no Authorization
header, so a protected central needs the validator's ``cookie_key``.

The answer is written straight to the connection (no Content-Length, no
buffering by the gateway: chunked HTTP/1.1); twisted.web suspends the
connection's idle timeout while a request is being answered, so a stream
lives as long as its client reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Optional

from twisted.internet.interfaces import IDelayedCall
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from busd.central.hub import KIND, Hub
from busd.errors import GatewayError
from busd.guards import guarded, route_guard

if TYPE_CHECKING:
    from busd.app import GatewayApp

__all__ = ["StreamPart", "make_part", "parse_kinds", "PATH"]

PATH = "/fleet/stream"
_MAX_KINDS = 16


def make_part(role: Any) -> "StreamPart":
    """The stream part; sets ``role.hub``."""
    return StreamPart(role)


def parse_kinds(request: IRequest) -> Optional[FrozenSet[str]]:
    """The ``kinds`` query filter (None: every kind); a 400 when malformed."""
    args: Dict[bytes, Any] = getattr(request, "args", None) or {}
    raw = args.get(b"kinds")
    if not raw:
        return None
    names = [
        n.strip()
        for value in raw
        for n in value.decode("utf-8", "replace").split(",")
        if n.strip()
    ]
    if len(names) > _MAX_KINDS or not all(KIND.fullmatch(n) for n in names):
        raise GatewayError(
            "kinds must be a comma-separated list of message kinds",
            status=400,
            code="bad_request",
        )
    return frozenset(names)


class StreamPart:
    """The central's ``/fleet/stream`` route and its hub."""

    def __init__(self, role: Any, **hub_options: Any):
        self.role = role
        self.hub = Hub(
            role.clock, snapshot=self._snapshot, seen=self._seen, **hub_options
        )
        role.hub = self.hub
        self._resync: Optional[IDelayedCall] = None

    # -- Part ---------------------------------------------------------

    def start(self) -> None:
        self.hub.start()

    def stop(self) -> None:
        if self._resync is not None and self._resync.active():
            self._resync.cancel()
        self._resync = None
        self.hub.stop()

    def fleet_changed(self) -> None:
        # Buses may have come or gone: every page rebuilds from a new
        # snapshot. On the next turn, once every part (the poller's state
        # first) has seen the new fleet.
        if self._resync is None and self.hub.running:
            self._resync = self.role.clock.callLater(0, self._send_snapshot)

    def install(self, app: "GatewayApp") -> None:
        guard = route_guard(app.config.default_auth, app.guard_context, f"GET {PATH}")

        def handle(request: IRequest) -> Any:
            return self._open(request, parse_kinds(request))

        app.add_route(PATH, ["GET"], "fleet-stream", guarded(guard, handle))

    # -- internals ------------------------------------------------------

    def _open(self, request: IRequest, kinds: Optional[FrozenSet[str]]) -> Any:
        if self.hub.full():
            raise GatewayError(
                "too many open streams", status=503, code="stream_unavailable",
                headers={"Retry-After": "5"},
            )
        # A resource, not bytes: Klein finishes a request as soon as its
        # handler's answer is written; a resource answering NOT_DONE_YET
        # keeps it open.
        return _StreamResource(self.hub, kinds)

    def _state(self) -> Any:
        return getattr(self.role, "state", None)

    def _snapshot(self) -> Any:
        state = self._state()
        if state is None:
            return None
        return {"health": state.fleet_health()}

    def _seen(self) -> Any:
        state = self._state()
        if state is None:
            return None
        return {"buses": {s["id"]: s.get("age_s") for s in state.summaries()}}

    def _send_snapshot(self) -> None:
        self._resync = None
        data = self._snapshot()
        if data is not None:
            self.hub.publish("fleet", data)


class _StreamResource(Resource):
    isLeaf = True

    def __init__(self, hub: Hub, kinds: Optional[FrozenSet[str]]):
        super().__init__()
        self._hub = hub
        self._kinds = kinds

    def render_GET(self, request: IRequest) -> Any:
        self._hub.subscribe(request, self._kinds)
        return NOT_DONE_YET

    def render_HEAD(self, request: IRequest) -> bytes:
        # The headers a stream would have, and no stream.
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return b""
