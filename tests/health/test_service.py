"""The health role (busd.health.service) on a Clock, with its sources
served by FakeBackends through StubTreq or held by a manual client."""

from __future__ import annotations

import json
from typing import Any, Dict

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from busd.health.clockref import CentralClock
from busd.testing import JSONBackend
from tests.auth._support import AUD, ISS, ec_key, jwks, public_jwk, pyjwt_token
from tests.health._support import (
    ECU,
    GPS,
    NOW,
    FakeEvents,
    ManualClient,
    by_name,
    health,
    health_config,
    start_role,
)
from tests.helpers import Gateway, get

FUEL = {
    "name": "fuel",
    "kind": "value",
    "level": "warning",
    "source": {"endpoint": "/vehicle"},
    "path": "fuel",
    "min": 15,
}
TEMP = {
    "name": "engine",
    "kind": "value",
    "level": "critical",
    "source": {"endpoint": "/vehicle"},
    "path": "temp_c",
    "max": 100,
}
FIX = {
    "name": "gps_fix",
    "kind": "freshness",
    "source": {"url": GPS + "/location"},
    "path": "updated_at",
    "max_age": "30s",
}
ECU_UP = {
    "name": "ecu",
    "kind": "backend",
    "level": "critical",
    "url": ECU + "/vehicle",
}
CRASH = {
    "name": "crash",
    "kind": "event",
    "level": "critical",
    "event_kind": "crash",
}


class Devices:
    """An ECU and a GPS whose answers the test changes."""

    def __init__(self) -> None:
        self.vehicle: Dict[str, Any] = {"fuel": 60, "temp_c": 88}
        self.fix_at = NOW
        self.ecu = JSONBackend({"/vehicle": lambda r: (200, self.vehicle)})
        self.gps = JSONBackend(
            {"/location": lambda r: (200, {"updated_at": self.fix_at})}
        )

    def hosts(self) -> Dict[str, Any]:
        return {ECU: self.ecu, GPS: self.gps}


class ReportTests(SynchronousTestCase):
    """What GET /health answers, from memory."""

    def setUp(self) -> None:
        self.devices = Devices()
        self.gw = Gateway(
            health_config([FUEL, TEMP, FIX, ECU_UP], interval="10s"),
            self.devices.hosts(),
        )

    def test_starting(self) -> None:
        """Before the first run ends /health is 503 starting."""
        start_role(self, self.gw, start=False)
        code, body = health(self, self.gw)
        self.assertEqual(
            (code, body["status"], body["checks"]), (503, "starting", [])
        )
        self.assertIsNone(body["checked_at"])

    def test_ok(self) -> None:
        """All checks pass: 200 ok, each check with its result, in order."""
        role = start_role(self, self.gw)
        code, body = health(self, self.gw)
        self.assertEqual(
            (code, body["status"], body["bus"]), (200, "ok", "FW-0042")
        )
        self.assertEqual(body["checked_at"], "2026-11-18T11:06:40Z")
        self.assertEqual(
            [(c["name"], c["status"]) for c in body["checks"]],
            [
                ("fuel", "ok"),
                ("engine", "ok"),
                ("gps_fix", "ok"),
                ("ecu", "ok"),
            ],
        )
        self.assertEqual(by_name(body)["fuel"]["observed"], 60)
        self.assertEqual(role.runs, 1)

    def test_shared_source_fetched_once(self) -> None:
        """Two checks on /vehicle and one probe make two ECU calls a run."""
        start_role(self, self.gw)
        self.assertEqual(len(self.devices.ecu.requests), 2)
        self.assertEqual(len(self.devices.gps.requests), 1)

    def test_degraded_then_critical(self) -> None:
        """A warning check degrades (200); a critical one makes it 503."""
        start_role(self, self.gw)
        self.devices.vehicle = {"fuel": 9, "temp_c": 88}
        self.gw.clock.advance(10)
        self.gw.flush()
        code, body = health(self, self.gw)
        self.assertEqual((code, body["status"]), (200, "degraded"))
        self.assertEqual(
            by_name(body)["fuel"]["reason"], "fuel = 9 is below min 15"
        )
        self.devices.vehicle = {"fuel": 9, "temp_c": 104}
        self.gw.clock.advance(10)
        self.gw.flush()
        code, body = health(self, self.gw)
        self.assertEqual((code, body["status"]), (503, "critical"))
        self.assertEqual(by_name(body)["engine"]["status"], "critical")

    def test_stale_fix(self) -> None:
        """A timestamp older than max_age fails the freshness check."""
        start_role(self, self.gw)
        self.gw.clock.advance(40)
        self.gw.flush()
        code, body = health(self, self.gw)
        self.assertEqual(by_name(body)["gps_fix"]["status"], "warning")
        self.assertEqual(by_name(body)["gps_fix"]["observed"], {"age_s": 40.0})

    def test_device_down(self) -> None:
        """A device answering 500: backend check fails, value checks unknown."""
        self.devices.ecu.routes["/vehicle"] = (500, {"error": "x"})
        start_role(self, self.gw)
        code, body = health(self, self.gw)
        checks = by_name(body)
        self.assertEqual((code, body["status"]), (503, "critical"))
        self.assertEqual(checks["ecu"]["status"], "critical")
        self.assertEqual(checks["fuel"]["status"], "unknown")
        self.assertIn("source unavailable", checks["fuel"]["reason"])
        self.assertIn("invalid status code 500", checks["fuel"]["reason"])

    def test_answers_from_memory(self) -> None:
        """/health itself calls no device: results come from the last run."""
        start_role(self, self.gw)
        before = len(self.devices.ecu.requests)
        for _ in range(3):
            health(self, self.gw)
        self.assertEqual(len(self.devices.ecu.requests), before)

    def test_builtin_health_untouched(self) -> None:
        """/__health stays KrakenD's liveness answer."""
        start_role(self, self.gw)
        response, body = get(self, self.gw, "/__health")
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["agents"], {})

    def test_stop_leaves_nothing(self) -> None:
        """Stopping cancels the next run: no DelayedCall is left."""
        role = start_role(self, self.gw)
        self.successResultOf(role.stopService())
        self.assertEqual(self.gw.clock.getDelayedCalls(), [])


class LoopTests(SynchronousTestCase):
    """Scheduling: no overlap, bounded runs, crashes survived."""

    def test_never_overlapping(self) -> None:
        """A slow run delays the next one instead of overlapping it."""
        gw = Gateway(
            health_config([dict(ECU_UP, timeout="3s")], interval="1s"), {}
        )
        client = ManualClient()
        role = start_role(self, gw, client=client)
        self.assertEqual(len(client.calls), 1)
        gw.clock.advance(1)
        gw.clock.advance(1)
        self.assertEqual(len(client.calls), 1)
        self.assertEqual(role.runs, 0)
        gw.clock.advance(1)  # the probe times out; the run ends
        self.assertEqual(role.runs, 1)
        gw.clock.advance(0)  # overdue: the next run starts at once
        self.assertEqual(len(client.calls), 2)
        result = role.results["ecu"]
        self.assertEqual(result.status, "critical")
        self.assertIn("no answer within 3s", result.reason)
        self.successResultOf(role.stopService())
        self.assertTrue(client.calls[1][2].called)  # cancelled on stop
        self.assertEqual(gw.clock.getDelayedCalls(), [])

    def test_interval_from_run_start(self) -> None:
        """Runs start every interval, measured from the previous start."""
        gw = Gateway(health_config([ECU_UP], interval="5s"), {})
        client = ManualClient()
        role = start_role(self, gw, client=client)
        gw.clock.advance(1)
        client.calls[0][2].errback(ConnectionRefusedError("refused"))
        self.assertEqual(role.runs, 1)
        gw.clock.advance(3.9)
        self.assertEqual(len(client.calls), 1)
        gw.clock.advance(0.1)
        self.assertEqual(len(client.calls), 2)
        self.assertIn("refused", role.results["ecu"].reason)
        self.successResultOf(role.stopService())

    def test_throwing_check(self) -> None:
        """A check that throws is unknown with the reason; the loop goes on."""
        events = FakeEvents()
        events.broken.add("crash")
        gw = Gateway(
            health_config([CRASH, FUEL], interval="5s"), Devices().hosts()
        )
        role = start_role(self, gw, events=events)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        result = role.results["crash"]
        self.assertEqual(result.status, "unknown")
        self.assertIn("RuntimeError('boom')", result.reason)
        self.assertEqual(role.results["fuel"].status, "ok")
        gw.clock.advance(5)
        gw.flush()
        self.assertEqual(role.runs, 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(role.stopService())

    def test_stop_mid_run(self) -> None:
        """Stopping during a run cancels it and keeps the old results."""
        gw = Gateway(health_config([ECU_UP], interval="1s"), {})
        client = ManualClient()
        role = start_role(self, gw, client=client)
        self.successResultOf(role.stopService())
        self.assertEqual((role.runs, role.results), (0, {}))
        self.assertEqual(gw.clock.getDelayedCalls(), [])


class EventTests(SynchronousTestCase):
    """Event checks, the outbox check and events raised on transitions."""

    def setUp(self) -> None:
        self.events = FakeEvents()
        self.gw = Gateway(health_config([CRASH], interval="5s"), {})

    def run_again(self) -> None:
        self.gw.clock.advance(5)
        self.gw.flush()

    def test_critical_transition_raises_one_event(self) -> None:
        """Turning critical raises exactly one event until it recovers."""
        role = start_role(self, self.gw, events=self.events)
        self.assertEqual(self.events.raised, [])
        self.events.events["crash"] = [{"id": "e1", "occurred_at": "T"}]
        self.run_again()
        self.run_again()
        self.assertEqual(len(self.events.raised), 1)
        kind, severity, data = self.events.raised[0]
        self.assertEqual((kind, severity), ("health.crash", "critical"))
        self.assertEqual(data["bus"], "FW-0042")
        self.assertEqual(data["name"], "crash")
        self.assertEqual(data["status"], "critical")
        self.events.events["crash"] = []
        self.run_again()
        self.assertEqual(role.results["crash"].status, "ok")
        self.events.events["crash"] = [{"id": "e2"}]
        self.run_again()
        self.assertEqual(len(self.events.raised), 2)
        self.successResultOf(role.stopService())

    def test_no_sink_only_logs(self) -> None:
        """Without an event sink a critical transition is logged only."""
        logged = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        self.events.events["crash"] = [{"id": "e1"}]
        role = start_role(self, self.gw, events=self.events, sink=None)
        self.assertEqual(role.results["crash"].status, "critical")
        self.assertEqual(self.events.raised, [])
        texts = [e.get("log_format", "") for e in logged]
        self.assertTrue(any("no event outbox" in t for t in texts), texts)
        self.successResultOf(role.stopService())

    def test_outbox_pressure(self) -> None:
        """With an event source /health shows the outbox's pressure."""
        self.events.level = "warning"
        role = start_role(self, self.gw, events=self.events)
        code, body = health(self, self.gw)
        outbox = by_name(body)["outbox"]
        self.assertEqual((code, body["status"]), (200, "degraded"))
        self.assertEqual(
            (outbox["status"], outbox["observed"]["pending"]), ("warning", 3)
        )
        self.successResultOf(role.stopService())

    def test_without_event_source(self) -> None:
        """With no event outbox, event checks are unknown and no outbox check."""
        role = start_role(self, self.gw)
        code, body = health(self, self.gw)
        self.assertEqual(list(by_name(body)), ["crash"])
        self.assertEqual(by_name(body)["crash"]["status"], "unknown")
        self.assertEqual(body["status"], "degraded")
        self.successResultOf(role.stopService())


class AuthTests(SynchronousTestCase):
    """/health runs the service's JWT default unless public."""

    def setUp(self) -> None:
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump(jwks(public_jwk(ec_key(), "k1")), handle)
        self.validator = {
            "alg": "ES256",
            "jwk_local_path": path,
            "issuer": ISS,
            "audience": [AUD],
        }
        self.token = pyjwt_token(
            ec_key(), "ES256", iat=int(NOW), exp=int(NOW) + 60
        )

    def gateway(self, **options: Any) -> Gateway:
        service = {"busgw/auth": {"validator": self.validator}}
        raw = health_config(
            [dict(CLOCK, max_drift="30s")], service=service, **options
        )
        return Gateway(raw, {})

    def test_token_required(self) -> None:
        """No token: 401 from the same guard as endpoints; a token: 200."""
        gw = self.gateway()
        role = start_role(self, gw)
        response, body = get(self, gw, "/health")
        self.assertEqual(response.code, 401)
        self.assertEqual(
            json.loads(body), {"error": "missing token", "status": 401}
        )
        self.assertEqual(
            response.headers.getRawHeaders("WWW-Authenticate"),
            ['Bearer realm="busgw"'],
        )
        auth = {"Authorization": ["Bearer " + self.token]}
        code, body = health(self, gw, headers=auth)
        self.assertEqual((code, body["status"]), (200, "ok"))
        self.successResultOf(role.stopService())

    def test_public(self) -> None:
        """public: true serves /health without a token."""
        gw = self.gateway(public=True)
        role = start_role(self, gw)
        code, _ = health(self, gw)
        self.assertEqual(code, 200)
        self.successResultOf(role.stopService())

    def test_date_of_central(self) -> None:
        """An authenticated caller's Date header feeds the clock check."""
        gw = self.gateway()
        role = start_role(self, gw)
        date = ["Wed, 18 Nov 2026 11:05:40 GMT"]  # the central is 60 s behind
        get(self, gw, "/health", headers={"Date": date})  # refused: ignored
        self.assertIsNone(role.central_clock.drift())
        auth = {"Authorization": ["Bearer " + self.token], "Date": date}
        health(self, gw, headers=auth)
        self.assertEqual(role.central_clock.drift(), 60.0)
        gw.clock.advance(5)
        gw.flush()
        clock = role.results["clock"]
        self.assertEqual(clock.status, "warning")
        self.assertIn("60.0s ahead of the central's", clock.reason)
        self.successResultOf(role.stopService())


CLOCK = {"name": "clock", "kind": "clock", "level": "warning"}


class CentralClockTests(SynchronousTestCase):
    """Reading the central's Date headers."""

    def test_observe(self) -> None:
        """An IMF-fixdate gives local minus central seconds."""
        gw = Gateway(health_config([]), {})
        gw.clock.advance(NOW)
        central = CentralClock(gw.clock)
        self.assertIsNone(central.drift())
        self.assertTrue(central.observe("Wed, 18 Nov 2026 11:06:50 GMT"))
        self.assertEqual((central.drift(), central.observed_at), (-10.0, NOW))

    def test_ignored(self) -> None:
        """Missing, unreadable and zone-less dates are ignored."""
        gw = Gateway(health_config([]), {})
        central = CentralClock(gw.clock)
        for value in (None, "", "yesterday", "Wed, 18 Nov 2026 11:06:50 -0000"):
            self.assertFalse(central.observe(value), value)
        self.assertIsNone(central.drift())
