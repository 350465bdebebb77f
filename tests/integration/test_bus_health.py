"""The bus role over real loopback sockets: a gateway in front of the
demo devices (busd.demo.listen_devices on tcp:0) answering /health with
real check results, and data pushed by the central stored and read back."""

from __future__ import annotations

import random
from typing import Any, Dict, Tuple

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from busd.config.load import parse_config
from busd.demo import listen_devices
from busd.service import build_service
from tests.integration._util import LOOPBACK, TrackingSite, client

# Elapsed shift time in the simulation: the leaking tyre is below 7.5 bar
# (busd.demo.drift), the engine and the GPS are fine.
SHIFT_S = 1600.0


def bus_config(ports: Dict[str, int]) -> Dict[str, Any]:
    """A bus over the demo devices with health checks and one topic."""
    vehicle = f"http://127.0.0.1:{ports['vehicle']}"
    location = f"http://127.0.0.1:{ports['location']}"
    checks = [
        {"name": "ecu", "kind": "backend", "level": "critical",
         "url": vehicle + "/vehicle"},
        {"name": "tyres", "kind": "value", "source": {"endpoint": "/vehicle"},
         "path": "tyres.*.pressure_bar", "min": 7.5, "max": 9.5},
        {"name": "engine", "kind": "value", "level": "critical",
         "source": {"endpoint": "/vehicle"}, "path": "engine.temp_c",
         "max": 102},
        {"name": "gps_fix", "kind": "freshness",
         "source": {"url": location + "/location"}, "path": "updated_at",
         "max_age": "30s"},
    ]  # fmt: skip
    return {
        "version": 3,
        "name": "loopback bus",
        "extra_config": {
            "busgw/health": {"interval": "100ms", "checks": checks},
            "busgw/inbound": {
                "topics": [{"name": "traffic", "path": "/data/traffic"}]
            },
        },
        "endpoints": [
            {
                "endpoint": "/vehicle",
                "backend": [{"host": [vehicle], "url_pattern": "/vehicle"}],
            }
        ],
    }


class BusLoopbackTests(TestCase):
    """A real gateway process tree over loopback sockets."""

    @inlineCallbacks
    def start(self) -> Any:
        """Demo devices and the gateway; returns (base URL, health role,
        the simulation's clock)."""
        now = reactor.seconds()
        sim = Clock()
        sim.advance(now)
        devices = yield listen_devices(
            reactor,
            sim,
            ports={"vehicle": 0, "location": 0},
            start=now - SHIFT_S,
        )
        for listener in devices.values():
            self.addCleanup(listener.stopListening)
        ports = {n: lp.getHost().port for n, lp in devices.items()}
        config = parse_config(bus_config(ports)).config
        svc = build_service(
            config,
            reactor,
            listen=[LOOPBACK],
            rng=random.Random(0),
            site_class=TrackingSite,
        )
        role = svc.getServiceNamed("health")
        svc.startService()
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        self.addCleanup(http.factory.close_all)
        self.addCleanup(svc.stopService)
        yield role.next_run()
        return f"http://127.0.0.1:{port.getHost().port}", role, sim

    @inlineCallbacks
    def get_json(self, http: Any, url: str) -> Any:
        response = yield http.get(url)
        body = yield response.json()
        return response.code, body

    @inlineCallbacks
    def test_health_reports_devices(self) -> Any:
        """/health shows the leaking tyre as a warning (200 degraded), then
        an engine spike as critical (503)."""
        base, role, sim = yield self.start()
        http = client(self)
        code, body = yield self.get_json(http, base + "/health")
        checks = {c["name"]: c for c in body["checks"]}
        self.assertEqual((code, body["status"]), (200, "degraded"))
        self.assertEqual(body["bus"], "loopback bus")
        self.assertEqual(checks["ecu"]["status"], "ok")
        self.assertEqual(checks["ecu"]["observed"]["status"], 200)
        self.assertEqual(checks["engine"]["status"], "ok")
        self.assertEqual(checks["gps_fix"]["status"], "ok")
        self.assertEqual(checks["tyres"]["status"], "warning")
        self.assertIn("tyres.3.pressure_bar", checks["tyres"]["reason"])
        self.assertEqual(len(checks["tyres"]["observed"]), 6)
        # 1665 s into the shift an engine spike peaks (busd.demo.drift).
        sim.advance(1665 - SHIFT_S)
        yield role.next_run()
        yield role.next_run()  # one run started after the advance
        code, body = yield self.get_json(http, base + "/health")
        checks = {c["name"]: c for c in body["checks"]}
        self.assertEqual((code, body["status"]), (503, "critical"))
        self.assertEqual(checks["engine"]["status"], "critical")
        self.assertIn("above max 102", checks["engine"]["reason"])

    @inlineCallbacks
    def test_liveness_untouched(self) -> Any:
        """/__health stays KrakenD's own answer beside /health."""
        base, _, _ = yield self.start()
        code, body = yield self.get_json(client(self), base + "/__health")
        self.assertEqual(
            (code, body["status"], body["agents"]), (200, "ok", {})
        )

    @inlineCallbacks
    def test_inbound_round_trip(self) -> Any:
        """The central's PUT is stored; devices GET it and its history."""
        base, _, _ = yield self.start()
        http = client(self)
        response = yield http.put(
            base + "/data/traffic",
            data=b'{"jam": "Embarcadero"}',
            headers={"Content-Type": ["application/json"]},
        )
        stored = yield response.json()
        self.assertEqual((response.code, stored["stored"]), (200, True))
        code, latest = yield self.get_json(http, base + "/data/traffic")
        self.assertEqual((code, latest["data"]), (200, {"jam": "Embarcadero"}))
        code, history = yield self.get_json(
            http, base + "/data/traffic/history"
        )
        self.assertEqual(
            [i["data"] for i in history["items"]], [latest["data"]]
        )
        response = yield http.put(base + "/data/traffic", data=b"not json")
        refused: Tuple[int, Any] = (response.code, (yield response.json()))
        self.assertEqual(refused[0], 400)
