"""The fleet endpoints, answered from ``role.state`` (memory only):

* ``GET /fleet/health``: the health of the healths (``FleetState.fleet_health``);
* ``GET /fleet/buses``: every bus's summary, filtered by ``?state=``
  (comma-separated states) and by labels (``?line=12``: any other query
  parameter names a label);
* ``GET /fleet/buses/{id}``: one bus's summary with its last data per
  polled endpoint and its raw health answer (404 for an unknown id);
* ``GET /fleet/{name}``: one polled endpoint for every bus.

Each route takes the service's default ``auth/validator`` (the same as
the gateway's own endpoints) when it has one. Answers are JSON with
``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from twisted.web.iweb import IRequest

from busd.central.fleet import STATES
from busd.errors import BadRequest, GatewayError
from busd.guards import guarded, route_guard

__all__ = ["FleetRoutes", "make_part"]

try:
    import orjson as _orjson
except ImportError:  # optional (busgw[perf]); the stdlib is the fallback
    _orjson = None  # type: ignore[assignment]

_JSON = b"application/json; charset=utf-8"
#: ``/fleet/health`` is re-encoded when a bus changes state, level or
#: failing checks, else at most this often (seconds): with 1,000 buses the
#: body is ~300 kB, and a wall of dashboards must not make the central
#: encode it per request. Values and ages in it may be this much old.
HEALTH_MAX_AGE = 1.0


def make_part(role: Any) -> "FleetRoutes":
    return FleetRoutes(role)


def render(request: IRequest, body: Any) -> bytes:
    """``body`` as a JSON answer that no cache keeps."""
    return _send(request, json.dumps(body, separators=(",", ":")).encode("utf-8"))


def _encode(body: Any) -> bytes:
    """Compact JSON; orjson (4x faster on the 1,000-bus body) when it is
    installed. Key order is kept either way."""
    if _orjson is not None:
        try:
            return _orjson.dumps(body)
        except TypeError:  # an integer beyond 64 bits from a bus
            pass
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _send(request: IRequest, data: bytes) -> bytes:
    request.setHeader(b"Content-Type", _JSON)
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", b"%d" % len(data))
    return data


def _query(request: IRequest) -> Dict[str, List[str]]:
    args = request.args or {}
    return {
        k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
        for k, vs in args.items()
    }


class FleetRoutes:
    """The fleet routes part; reads ``role.state`` (set by the poller)."""

    def __init__(self, role: Any):
        self.role = role
        self._health: Optional[Tuple[float, Any, bytes]] = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def fleet_changed(self) -> None:
        pass

    def install(self, app: Any) -> None:
        """Add the routes to ``app`` (one per polled endpoint of its
        config: a name not polled is the app's 404)."""
        central = app.config.central or self.role.config
        self._add(app, "/fleet/health", "fleet-health", self.health)
        self._add(app, "/fleet/buses", "fleet-buses", self.buses)
        self._add(app, "/fleet/buses/<bus_id>", "fleet-bus", self.bus)
        for endpoint in central.poll.endpoints:
            self._add(
                app,
                f"/fleet/{endpoint.name}",
                f"fleet-endpoint-{endpoint.name}",
                self._endpoint_handler(endpoint.name),
            )

    def _add(
        self, app: Any, path: str, name: str, handler: Callable[..., bytes]
    ) -> None:
        guard = route_guard(
            app.config.default_auth, app.guard_context, f"GET {path}"
        )

        app.add_route(path, ["GET"], name, guarded(guard, handler))

    # -- handlers ------------------------------------------------------

    def health(self, request: IRequest) -> bytes:
        state = self.role.state
        now = self.role.clock.seconds()
        key = state.health_key()
        cached = self._health
        if (
            cached is None
            or cached[1] != key
            or not cached[0] <= now < cached[0] + HEALTH_MAX_AGE
        ):
            cached = self._health = (now, key, _encode(state.fleet_health()))
        return _send(request, cached[2])

    def buses(self, request: IRequest) -> bytes:
        query = _query(request)
        states: Set[str] = set()
        for value in query.pop("state", []):
            states.update(s for s in value.split(",") if s)
        unknown = states.difference(STATES)
        if unknown:
            raise BadRequest(f"no such state: {', '.join(sorted(unknown))}")
        labels = {k: set(vs) for k, vs in query.items()}
        found = [
            s
            for s in self.role.state.summaries()
            if (not states or s["state"] in states)
            and all(s["labels"].get(k) in vs for k, vs in labels.items())
        ]
        return render(request, {"count": len(found), "buses": found})

    def bus(self, request: IRequest, bus_id: str) -> bytes:
        detail = self.role.state.detail(bus_id)
        if detail is None:
            raise GatewayError(
                f"no bus {bus_id!r} in the fleet",
                status=404,
                code="no_such_bus",
            )
        return render(request, detail)

    def _endpoint_handler(self, name: str) -> Callable[[IRequest], bytes]:
        def handle(request: IRequest) -> bytes:
            return render(request, self.role.state.endpoint(name))

        return handle
