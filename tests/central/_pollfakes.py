"""Fakes for the poller, fleet and route tests: an HTTP client whose buses
answer from a table (or hang until the test answers), a hub recording
what is published, and a stand-in for the central role."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from busd.config._central import (
    BusEntry,
    CentralRoleConfig,
    PollConfig,
    PolledEndpoint,
)

NOW = 1_795_000_000.0

HEALTH_OK = {"status": "ok", "bus": "b", "checked_at": None, "checks": []}
HEALTH_CRITICAL = {
    "status": "critical",
    "bus": "b",
    "checked_at": None,
    "checks": [
        {"name": "engine", "kind": "value", "level": "critical",
         "status": "critical", "reason": "engine.temp_c 110 > 102"},
        {"name": "gps", "kind": "freshness", "level": "warning",
         "status": "ok", "reason": ""},
    ],
}  # fmt: skip
STATUS = {"vehicle": {"fuel": {"level_pct": 61}, "speed_kmh": 32}}


def url(bus_id: str) -> str:
    return f"http://{bus_id}.buses:8080"


def fleet_config(
    ids: List[str],
    labels: Optional[Dict[str, Dict[str, str]]] = None,
    **poll: Any,
) -> CentralRoleConfig:
    """A central config for buses ``ids`` (at :func:`url`) with ``poll``
    settings over PollConfig's defaults."""
    poll.setdefault(
        "endpoints", (PolledEndpoint(name="status", path="/status"),)
    )
    labels = labels or {}
    return CentralRoleConfig(
        state_dir="/nonexistent",
        fleet=tuple(
            BusEntry(id=i, url=url(i), labels=labels.get(i, {})) for i in ids
        ),
        poll=PollConfig(**poll),
    )


class _Producer:
    def __init__(self) -> None:
        self.stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class FakeResponse:
    """A response whose body is delivered at once."""

    def __init__(self, code: int, body: bytes):
        self.code = code
        self.length = len(body)
        self._body = body

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(_Producer())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


@attrs.define
class Call:
    url: str
    headers: Any
    deferred: "Deferred[Any]"
    cancelled: bool = False


@attrs.frozen
class Raise:
    """A route whose request raises at once (a client bug)."""

    error: Exception


Route = Any  # (status, body) | Exception | Raise | "hang" | callable(url)


class FakeBuses:
    """An HTTP client: ``routes[url]`` answers each GET of ``url`` with
    ``(status, body)`` (JSON-encoded unless bytes), fails with an
    exception instance, raises (:class:`Raise`), or (missing, or ``"hang"``) leaves it pending
    in ``pending`` until the test fires it. Every call is in ``calls``."""

    def __init__(self) -> None:
        self.routes: Dict[str, Route] = {}
        self.calls: List[Call] = []

    def request(self, method: str, target: str, **kw: Any) -> "Deferred[Any]":
        assert method == "GET"
        route = self.routes.get(target, "hang")
        if callable(route):
            route = route(target)
        if isinstance(route, Raise):
            raise route.error
        call: Call

        def cancel(_: Any) -> None:
            call.cancelled = True

        call = Call(target, kw.get("headers"), Deferred(cancel))
        self.calls.append(call)
        if isinstance(route, Exception):
            call.deferred.errback(route)
        elif route != "hang":
            call.deferred.callback(response(*route))
        return call.deferred

    @property
    def pending(self) -> List[Call]:
        return [c for c in self.calls if not c.deferred.called]

    def serve(self, bus_id: str, health: Any = (200, HEALTH_OK),
              status: Any = (200, STATUS)) -> None:  # fmt: skip
        self.routes[url(bus_id) + "/health"] = health
        self.routes[url(bus_id) + "/status"] = status

    def refuse(self, bus_id: str) -> None:
        self.serve(
            bus_id, ConnectionRefusedError("refused"), ConnectionRefusedError()
        )

    def hang(self, bus_id: str) -> None:
        self.serve(bus_id, "hang", "hang")


def response(status: int, body: Any) -> FakeResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return FakeResponse(status, data)


class FakeHub:
    def __init__(self) -> None:
        self.published: List[Tuple[str, Any]] = []

    def publish(self, kind: str, data: Any) -> None:
        self.published.append((kind, data))

    def states(self, bus_id: str) -> List[str]:
        return [d["state"] for k, d in self.published if d["id"] == bus_id]


class FakeTokens:
    def authorization(self, bus_id: str) -> bytes:
        return b"Bearer token-for-" + bus_id.encode()


class FakeRole:
    """What parts read from a CentralRole."""

    def __init__(
        self, config: CentralRoleConfig, clock: Optional[Clock] = None
    ):
        self.config = config
        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(NOW)
        self.client = FakeBuses()
        self.tokens: Any = None
        self.hub: Any = FakeHub()
        self.state: Any = None

    @property
    def fleet(self) -> Any:
        return self.config.fleet
