"""The demo bus's faults (busd.demo.drift) and the demo config's health
checks finding them as the simulated shift goes on."""

from __future__ import annotations

import json
from pathlib import Path
from random import Random
from typing import Any, Dict

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.config.load import parse_config
from busd.demo import device_resources
from busd.demo.drift import engine_spike_c, gps_fix_time, tyre_loss_bar
from busd.demo.sim import iso_utc
from busd.health.service import HealthService
from busd.testing import FakeBackends
from tests.health._support import FakeEvents

START = 1_795_000_000.0
CONFIG = Path(__file__).resolve().parents[2] / "etc" / "busgw.json"


class DriftTests(SynchronousTestCase):
    """The fault schedules as pure functions of the elapsed time."""

    def test_tyre_leak(self) -> None:
        """No loss after a refill, then 0.0015 bar/s, refilled each 15 min."""
        self.assertEqual(
            [tyre_loss_bar(t) for t in (0, 120, 620, 899, 900, 1020)],
            [0.0, 0.0, 0.75, 1.1685, 0.0, 0.0],
        )

    def test_engine_spike(self) -> None:
        """A 90 s half sine peaking at 26 degrees every 10 minutes."""
        self.assertEqual(engine_spike_c(419), 0.0)
        self.assertAlmostEqual(engine_spike_c(465), 26.0)
        self.assertEqual(engine_spike_c(510), 0.0)
        self.assertAlmostEqual(engine_spike_c(1065), 26.0)

    def test_gps_fix(self) -> None:
        """The fix is lost 180-270 s into each 17 minute cycle."""
        self.assertEqual(
            [gps_fix_time(t) for t in (179, 180, 269, 270, 1200, 1289)],
            [None, 180, 180, None, 1200, 1200],
        )


class DevicesDriftTests(SynchronousTestCase):
    """The faults as the device services answer them."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.bus: Any = device_resources(self.clock)

    def get(self, device: str, path: str) -> Any:
        from tests.demo.test_devices import _get

        return _get(self, self.bus[device], path)[2]

    def test_tyre(self) -> None:
        """Only the leaking tyre drops below 7.5 bar, until its refill."""
        self.clock.advance(700)
        tyres = {
            t["position"]: t["pressure_bar"]
            for t in self.get("vehicle", "/tyres")
        }
        self.assertLess(tyres.pop("rear-left-inner"), 7.5)
        self.assertTrue(all(p > 8 for p in tyres.values()), tyres)
        self.clock.advance(200)  # 900 s: refilled
        tyres = {
            t["position"]: t["pressure_bar"]
            for t in self.get("vehicle", "/tyres")
        }
        self.assertGreater(tyres["rear-left-inner"], 8)

    def test_engine(self) -> None:
        """The engine runs below 95 degrees except during a spike."""
        self.clock.advance(1000)
        self.assertLess(self.get("vehicle", "/vehicle")["engine"]["temp_c"], 95)
        self.clock.advance(65)
        self.assertGreater(
            self.get("vehicle", "/vehicle")["engine"]["temp_c"], 105
        )

    def test_gps_stale(self) -> None:
        """While the fix is lost the GPS repeats the last fix and its time."""
        self.clock.advance(180)
        fix = self.get("location", "/location")
        self.clock.advance(60)
        self.assertEqual(self.get("location", "/location"), fix)
        self.assertEqual(fix["updated_at"], iso_utc(START + 180))
        self.clock.advance(30)
        self.assertEqual(
            self.get("location", "/location")["updated_at"],
            iso_utc(START + 270),
        )


class DemoHealthTests(SynchronousTestCase):
    """etc/busgw.json's health checks over the simulated devices."""

    def setUp(self) -> None:
        raw = json.loads(CONFIG.read_text(encoding="utf-8"))
        config = parse_config(raw, environ={}).config
        assert config.health is not None
        self.clock = Clock()
        self.clock.advance(START)
        devices = device_resources(self.clock)
        self.backends = StubTreq(
            FakeBackends(
                {
                    "127.0.0.1:9101": devices["vehicle"],
                    "127.0.0.1:9102": devices["location"],
                    "127.0.0.1:9103": devices["service"],
                }
            )
        )
        app = GatewayApp(config, self.backends, self.clock, rng=Random(0))
        events = FakeEvents()
        self.role = HealthService(
            config.health,
            reactor=None,
            clock=self.clock,
            bus="FW-0042",
            events=events,
            sink=events,
            client=self.backends,
        )
        self.role.install(app)
        self.role.startService()
        self.backends.flush()

    def at(self, elapsed: float) -> Dict[str, str]:
        """Statuses after the run at ``elapsed`` seconds into the shift."""
        self.clock.advance(START + elapsed - self.clock.seconds())
        self.backends.flush()
        code, body = self.role.report()
        statuses = {c["name"]: c["status"] for c in body["checks"]}
        return {"overall": body["status"], "code": str(code), **statuses}

    def failing(self, elapsed: float) -> Dict[str, str]:
        found = self.at(elapsed)
        return {k: v for k, v in found.items() if k == "overall" or v != "ok"}

    def test_changes_over_the_shift(self) -> None:
        """ok at first; the GPS fix at 3 min; a tyre at 10; the engine at 17."""
        self.assertEqual(self.failing(60), {"overall": "ok", "code": "200"})
        self.assertEqual(
            self.failing(250),
            {"overall": "degraded", "code": "200", "gps_fix": "warning"},
        )
        self.assertEqual(
            self.failing(700),
            {"overall": "degraded", "code": "200", "tyre_pressure": "warning"},
        )
        self.assertEqual(
            self.failing(1065),
            {
                "overall": "critical",
                "code": "503",
                "engine_hot": "warning",
                "engine_overheat": "critical",
            },
        )
        self.successResultOf(self.role.stopService())
