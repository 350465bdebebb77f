"""Fakes and builders for the health role tests: an event outbox stand-in,
an HTTP client whose answers the test releases, and a gateway with the
role installed."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, succeed

from busd.health.service import HealthService
from tests.helpers import Gateway, config

NOW = 1_795_000_000.0  # 2026-11-18T11:06:40Z
ECU = "http://ecu:9101"
GPS = "http://gps:9102"


class FakeEvents:
    """An EventSource and EventSink: ``active`` answers from
    ``self.events`` (raising for kinds in ``broken``), ``raise_event``
    records its calls."""

    def __init__(self) -> None:
        self.events: Dict[str, List[Mapping[str, Any]]] = {}
        self.broken: set[str] = set()
        self.level = "ok"
        self.raised: List[Tuple[str, str, Mapping[str, Any]]] = []

    def active(self, kind: str) -> Sequence[Mapping[str, Any]]:
        if kind in self.broken:
            raise RuntimeError("boom")
        return self.events.get(kind, [])

    def pressure(self) -> Mapping[str, Any]:
        return {
            "pending": 3,
            "bytes": 900,
            "max_events": 10,
            "max_bytes": 10_000,
            "level": self.level,
            "oldest_pending_age": 12.0,
        }

    def raise_event(
        self, kind: str, severity: str, data: Mapping[str, Any]
    ) -> "Deferred[str]":
        self.raised.append((kind, severity, data))
        return succeed(f"ev-{len(self.raised)}")


class ManualClient:
    """An HTTP client whose requests wait until the test fires them."""

    def __init__(self) -> None:
        self.calls: List[Tuple[str, str, Deferred[Any]]] = []

    def request(self, method: str, url: str, **kw: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.calls.append((method, url, d))
        return d


def health_config(
    checks: List[Dict[str, Any]], **options: Any
) -> Dict[str, Any]:
    """A v3 config with /vehicle (on ECU) and busgw/health."""
    service = options.pop("service", {})
    return config(
        [
            {
                "endpoint": "/vehicle",
                "backend": [{"host": [ECU], "url_pattern": "/vehicle"}],
            }
        ],
        extra_config={"busgw/health": {"checks": checks, **options}, **service},
    )


def start_role(
    case: Any,
    gw: Gateway,
    *,
    events: Optional[FakeEvents] = None,
    client: Any = None,
    sink: Any = ...,
    start: bool = True,
) -> HealthService:
    """A HealthService for ``gw``'s config on its clock (at NOW), installed
    on its app and started (unless ``start`` is false). A cleanup stops it
    and checks that no DelayedCall is left on the clock."""
    if gw.clock.seconds() < NOW:
        gw.clock.advance(NOW - gw.clock.seconds())
    assert gw.config.health is not None
    role = HealthService(
        gw.config.health,
        reactor=None,
        clock=gw.clock,
        bus="FW-0042",
        events=events,
        sink=events if sink is ... else sink,
        client=client if client is not None else gw.backend_stub,
    )
    role.install(gw.app)

    def stop() -> None:
        case.successResultOf(role.stopService())
        case.assertEqual(gw.clock.getDelayedCalls(), [])

    case.addCleanup(stop)
    if start:
        role.startService()
        gw.flush()
    return role


def health(case: Any, gw: Gateway, **kw: Any) -> Tuple[int, Any]:
    """GET /health: (status code, JSON body)."""
    from tests.helpers import get

    response, body = get(case, gw, "/health", **kw)
    return response.code, json.loads(body)


def by_name(body: Mapping[str, Any]) -> Dict[str, Any]:
    """The checks of a /health body by name."""
    return {c["name"]: c for c in body["checks"]}
