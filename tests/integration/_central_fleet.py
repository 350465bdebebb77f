"""Loopback helpers for the dashboard tests: fake buses (one JSONBackend
each answering /health and /status, stoppable), a central polling them,
and a server-sent events reader."""

from __future__ import annotations

import json
import os
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from busd.config.load import parse_config
from busd.service import build_service
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, TrackingSite

#: Poll thresholds small enough for a test: a stopped bus is stale after
#: 0.5 s and offline after 1 s.
POLL = {
    "interval": "100ms", "timeout": "500ms", "backoff_max": "200ms",
    "stale_after": "500ms", "offline_after": "1s", "endpoints": ["/status"],
    "values": {"fuel": "status.fuel_pct", "passengers": "status.passengers",
               "speed": "status.speed_kmh"},
}  # fmt: skip


def health(level: str = "ok") -> Dict[str, Any]:
    checks = []
    if level != "ok":
        checks.append({"name": "engine", "kind": "value", "level": level,
                       "status": level, "reason": "engine.temp_c 110 > 102"})  # fmt: skip
    return {"status": level, "bus": "x", "checked_at": None, "checks": checks}


class FakeBus:
    """A bus's gateway, as far as the central polls it."""

    def __init__(self, bus_id: str, fuel: int, level: str = "ok"):
        self.id = bus_id
        self.level = level
        self.resource = JSONBackend(
            {
                "/health": lambda _: (200 if self.level != "critical" else 503,
                                     health(self.level)),
                "/status": (200, {"fuel_pct": fuel, "passengers": 20 + fuel % 30,
                                  "speed_kmh": 30.5}),
            }
        )  # fmt: skip
        self.site = TrackingSite(self.resource)
        self.port: Any = None
        self.url = ""

    @inlineCallbacks
    def start(self, case: TestCase) -> Any:
        self.port = yield serverFromString(reactor, LOOPBACK).listen(self.site)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        case.addCleanup(self.stop)

    def stop(self) -> "Deferred[Any]":
        """Stop answering: no listener, no open connection."""
        port, self.port = self.port, None
        waits = [self.site.close_all()]
        if port is not None:
            waits.append(maybeDeferred(port.stopListening))
        return DeferredList(waits)


def central_config(
    state_dir: str, buses: List[FakeBus], root: Any = None, **central: Any
) -> Dict[str, Any]:
    lines = ("12", "7", "31")
    fleet = [
        {"id": b.id, "url": b.url, "labels": {"line": lines[i % 3], "depot": "north"}}
        for i, b in enumerate(buses)
    ]
    block = {"state_dir": state_dir, "fleet": fleet, "poll": POLL, **central}
    return {
        "version": 3,
        "name": "central",
        "extra_config": {"busgw/central": block},
        **(root or {}),
    }


@inlineCallbacks
def start_central(
    case: TestCase, buses: List[FakeBus], root: Any = None, **central: Any
) -> Any:
    """A central polling ``buses`` on a loopback port: (base URL, role).
    ``root`` adds keys to the config's root object, ``central`` to its
    ``busgw/central`` block."""
    state_dir = os.path.abspath(case.mktemp())
    os.makedirs(state_dir)
    config = parse_config(central_config(state_dir, buses, root, **central)).config
    svc = build_service(
        config, reactor, listen=[LOOPBACK], rng=random.Random(0), site_class=TrackingSite
    )
    svc.startService()
    http = svc.getServiceNamed("http")
    port = yield http.whenListening()
    case.addCleanup(http.factory.close_all)
    case.addCleanup(lambda: svc.stopService() if svc.running else None)
    role = next(r for r in svc.roles if getattr(r, "name", "") == "central")
    return f"http://127.0.0.1:{port.getHost().port}", role


class SSEReader(Protocol):
    """Collects the messages of a text/event-stream body; :meth:`until`
    fires once a condition on them holds."""

    def __init__(self) -> None:
        self.buffer = b""
        #: (kind, data) per message; comments as (":", None).
        self.messages: List[Tuple[str, Any]] = []
        self.retry: Optional[int] = None
        self.ended: Deferred[None] = Deferred()
        self._waiting: List[Tuple[Callable[[], bool], Deferred[None]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            kind, payload = "message", None
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    kind = ":"
                elif line.startswith(b"retry: "):
                    self.retry = int(line[7:])
                    kind = ""
                elif line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"data: "):
                    payload = json.loads(line[6:])
            if kind:
                self.messages.append((kind, payload))
        for pair in list(self._waiting):
            if pair[0]():
                self._waiting.remove(pair)
                pair[1].callback(None)

    def connectionLost(self, reason: Any) -> None:
        self.ended.callback(None)

    def kinds(self) -> List[str]:
        return [k for k, _ in self.messages]

    def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        if condition():
            d.callback(None)
        else:
            self._waiting.append((condition, d))
        return d.addTimeout(timeout, reactor)

    def close(self) -> "Deferred[None]":
        """Hang up and wait until the body ended."""
        if not self.ended.called and self.transport is not None:
            self.transport.stopProducing()
        return self.ended
