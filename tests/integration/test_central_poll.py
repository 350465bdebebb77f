"""A central polling three real bus gateways over loopback: the fleet
endpoints answer their data, and a bus whose gateway stops turns stale,
then offline, within the configured thresholds."""

from __future__ import annotations

import os
import random
from typing import Any, Callable, Dict, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from busd.config.load import parse_config
from busd.service import build_service
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, TrackingSite, client, serve

FUEL = {"a": 61, "b": 48, "c": 5}  # c is under the fuel check's minimum
STALE, OFFLINE = 0.5, 1.0


def bus_config(bus_id: str, device: str) -> Dict[str, Any]:
    """A bus gateway with /status from its device and a fuel check."""
    check = {"name": "fuel", "kind": "value", "source": {"endpoint": "/status"},
             "path": "vehicle.fuel.level_pct", "min": 10}  # fmt: skip
    return {
        "version": 3,
        "name": f"bus {bus_id}",
        "extra_config": {
            "busgw/health": {"interval": "100ms", "checks": [check]}
        },
        "endpoints": [
            {
                "endpoint": "/status",
                "backend": [{"host": [device], "url_pattern": "/status"}],
            }
        ],
    }


def central_config(state_dir: str, buses: Dict[str, str]) -> Dict[str, Any]:
    fleet = [
        {"id": i, "url": u, "labels": {"line": "12" if i != "c" else "7"}}
        for i, u in sorted(buses.items())
    ]
    poll = {
        "interval": "100ms", "timeout": "500ms", "backoff_max": "200ms",
        "stale_after": f"{int(STALE * 1000)}ms", "offline_after": f"{int(OFFLINE * 1000)}ms",
        "endpoints": ["/status"], "values": {"fuel": "status.vehicle.fuel.level_pct"},
    }  # fmt: skip
    return {
        "version": 3,
        "name": "central",
        "extra_config": {
            "busgw/central": {
                "state_dir": state_dir,
                "fleet": fleet,
                "poll": poll,
            }
        },
        "endpoints": [],
    }


class Watch:
    """Stands in front of the role's hub: forwards every publish, and
    fires the Deferreds of :meth:`until` when their condition holds."""

    def __init__(self, role: Any):
        self.role = role
        self.inner = role.hub
        role.hub = self
        self._waiting: List[Tuple[Callable[[], bool], Deferred[None]]] = []
        #: The states published for each bus, in order.
        self.states: Dict[str, List[str]] = {}

    def publish(self, kind: str, data: Any) -> None:
        if kind == "bus":
            self.states.setdefault(data["id"], []).append(data["state"])
        if self.inner is not None:
            self.inner.publish(kind, data)
        for pair in list(self._waiting):
            if pair[0]():
                self._waiting.remove(pair)
                pair[1].callback(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def until(self, condition: Callable[[], bool]) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        if condition():
            d.callback(None)
        else:
            self._waiting.append((condition, d))
        return d.addTimeout(10, reactor)


class CentralPollTests(TestCase):
    @inlineCallbacks
    def start_service(self, config: Dict[str, Any]) -> Any:
        """The service tree of ``config`` on a loopback port: (svc, url)."""
        svc = build_service(
            parse_config(config).config,
            reactor,
            listen=[LOOPBACK],
            rng=random.Random(0),
            site_class=TrackingSite,
        )
        svc.startService()
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        self.addCleanup(http.factory.close_all)
        self.addCleanup(lambda: svc.stopService() if svc.running else None)
        return svc, f"http://127.0.0.1:{port.getHost().port}"

    @inlineCallbacks
    def start(self) -> Any:
        buses: Dict[str, Any] = {}
        for bus_id, fuel in FUEL.items():
            device = JSONBackend(
                {"/status": (200, {"vehicle": {"fuel": {"level_pct": fuel}}})}
            )
            device_url, _ = yield serve(self, device)
            buses[bus_id] = yield self.start_service(
                bus_config(bus_id, device_url)
            )
        state_dir = os.path.abspath(self.mktemp())
        os.makedirs(state_dir)
        urls = {i: u for i, (_, u) in buses.items()}
        svc, base = yield self.start_service(central_config(state_dir, urls))
        role = svc.getServiceNamed("central")
        return buses, role, base, Watch(role)

    @inlineCallbacks
    def get_json(self, url: str) -> Any:
        response = yield self.http.get(url)
        body = yield response.json()
        return response.code, body

    @inlineCallbacks
    def test_fleet_and_a_bus_going_offline(self) -> Any:
        """All three buses come online with their data; one stopped turns stale then offline on time."""
        self.http = client(self)
        buses, role, base, watch = yield self.start()
        state = role.state

        def counts() -> Dict[str, int]:
            return state.fleet_health()["states"]

        yield watch.until(lambda: counts()["online"] == 3 and all(
            state.summary(i)["level"] not in ("unknown", "starting")
            for i in FUEL))  # fmt: skip
        code, health = yield self.get_json(base + "/fleet/health")
        self.assertEqual(code, 200)
        self.assertEqual(health["status"], "degraded")  # c's fuel warning
        self.assertEqual(health["levels"]["degraded"], 1)
        self.assertEqual(
            [s["id"] for s in health["summaries"]], ["a", "b", "c"]
        )
        low = health["summaries"][2]
        self.assertEqual(
            (low["level"], low["failing"][0]["name"]), ("degraded", "fuel")
        )
        self.assertEqual(
            {s["id"]: s["values"]["fuel"] for s in health["summaries"]}, FUEL
        )
        code, detail = yield self.get_json(base + "/fleet/buses/a")
        self.assertEqual(code, 200)
        self.assertEqual(detail["endpoints"]["status"]["status"], 200)
        self.assertEqual(
            detail["endpoints"]["status"]["data"]["vehicle"]["fuel"][
                "level_pct"
            ],
            61,
        )
        self.assertEqual(detail["health"]["status"], "ok")
        code, view = yield self.get_json(base + "/fleet/status")
        self.assertEqual(
            (code, sorted(view["buses"]), view["missing"]),
            (200, ["a", "b", "c"], []),
        )

        # Bus b goes away: its listener closes, its open connections drop.
        svc_b, _ = buses["b"]
        yield svc_b.stopService()
        yield svc_b.getServiceNamed("http").factory.close_all()
        stopped = reactor.seconds()
        yield watch.until(lambda: state.state("b") == "stale")
        # Seen at most one interval before it stopped, noticed by the
        # sweep (every stale_after / 5) or a failed round.
        self.assertLess(reactor.seconds() - stopped, STALE + 0.3)
        yield watch.until(lambda: state.state("b") == "offline")
        self.assertLess(reactor.seconds() - stopped, OFFLINE + 0.3)
        self.assertEqual(watch.states["b"][-3:], ["online", "stale", "offline"])
        code, health = yield self.get_json(base + "/fleet/health")
        self.assertEqual(health["status"], "critical")
        self.assertEqual(
            health["states"],
            {"online": 2, "stale": 0, "offline": 1, "unknown": 0},
        )
        code, detail = yield self.get_json(base + "/fleet/buses/b")
        self.assertEqual(detail["state"], "offline")
        self.assertIsNotNone(detail["last_error"])
        # Its last good data is kept.
        self.assertEqual(
            detail["endpoints"]["status"]["data"]["vehicle"]["fuel"][
                "level_pct"
            ],
            48,
        )
