"""The demo fleet's control listener (loopback only): switch a simulated
bus off and on to watch the central see it go stale, then offline.

- ``GET /buses``: every bus, ``{"buses": [{"id", "url", "running",
  "labels", "devices"}]}``;
- ``POST /buses/{id}/stop``: close the bus gateway's listener and drop
  its open connections, and its devices stop raising events (the bus
  itself keeps running, as one that lost its network would);
- ``POST /buses/{id}/start``: listen again on the same port.

Both answer the bus as ``GET /buses`` lists it; an unknown bus is a 404.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from busd.demo.fleet_bus import SimulatedBus

__all__ = ["ControlResource"]


def _answer(request: IRequest, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode("utf-8") + b"\n"


class ControlResource(Resource):
    """The control routes over ``buses`` (id -> bus)."""

    isLeaf = True

    def __init__(self, buses: Mapping[str, SimulatedBus]):
        super().__init__()
        self._buses = buses

    def render(self, request: IRequest) -> Any:
        parts = request.path.decode("utf-8", "replace").strip("/").split("/")
        if parts == ["buses"]:
            if request.method != b"GET":
                return self._not_allowed(request, b"GET")
            listed = [bus.describe() for bus in self._buses.values()]
            return _answer(request, 200, {"buses": listed})
        if len(parts) != 3 or parts[0] != "buses":
            return _answer(request, 404, {"error": "not_found"})
        bus = self._buses.get(parts[1])
        if bus is None:
            return _answer(request, 404, {"error": "unknown_bus", "id": parts[1]})
        action: Callable[[], Any]
        if parts[2] == "stop":
            action = bus.switch_off
        elif parts[2] == "start":
            action = lambda: ensureDeferred(bus.switch_on())
        else:
            return _answer(request, 404, {"error": "not_found"})
        if request.method != b"POST":
            return self._not_allowed(request, b"POST")
        d: Deferred[Any] = maybeDeferred(action)
        d.addCallbacks(
            lambda _: _answer(request, 200, bus.describe()),
            lambda f: _failed(request, f),
        )
        d.addCallback(_finish, request)
        return NOT_DONE_YET

    @staticmethod
    def _not_allowed(request: IRequest, allow: bytes) -> bytes:
        request.setHeader(b"Allow", allow)
        return _answer(request, 405, {"error": "method_not_allowed"})


def _failed(request: IRequest, failure: Failure) -> bytes:
    # A port taken by something else while the bus was off, typically.
    return _answer(
        request, 500, {"error": "failed", "reason": failure.getErrorMessage()}
    )


def _finish(body: bytes, request: Any) -> None:
    if not request.finished and not getattr(request, "_disconnected", False):
        request.write(body)
        request.finish()
