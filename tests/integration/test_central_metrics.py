"""A central with an admin listener polls one answering bus and one that
refuses connections over loopback; GET /metrics on the admin listener
shows the central's series with the right values."""

from __future__ import annotations

import os
import random
from typing import Any, Dict

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from busd.config.load import parse_config
from busd.service import build_service
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, TrackingSite, client, serve
from tests.integration.test_central_poll import Watch

HEALTH = {"status": "ok", "bus": "a", "checked_at": None, "checks": []}


def central_config(state_dir: str, buses: Dict[str, str]) -> Dict[str, Any]:
    poll = {
        "interval": "100ms", "timeout": "500ms", "backoff_max": "200ms",
        "stale_after": "5s", "offline_after": "10s", "endpoints": ["/status"],
    }  # fmt: skip
    return {
        "version": 3,
        "name": "central",
        "extra_config": {
            "busgw/telemetry": {"admin": {"listen": LOOPBACK}},
            "busgw/central": {
                "state_dir": state_dir,
                "fleet": [{"id": i, "url": u} for i, u in sorted(buses.items())],
                "poll": poll,
            },
        },
        "endpoints": [],
    }


class CentralMetricsTests(TestCase):
    @inlineCallbacks
    def closed_port_url(self) -> Any:
        """The URL of a loopback port nobody listens on any more."""
        port = yield serverFromString(reactor, LOOPBACK).listen(Site(Resource()))
        number = port.getHost().port
        yield port.stopListening()
        return f"http://127.0.0.1:{number}"

    @inlineCallbacks
    def start(self) -> Any:
        bus = JSONBackend({"/health": (200, HEALTH), "/status": (200, {"x": 1})})
        bus_url, _ = yield serve(self, bus)
        dead = yield self.closed_port_url()
        state_dir = os.path.abspath(self.mktemp())
        os.makedirs(state_dir)
        config = parse_config(
            central_config(state_dir, {"a": bus_url, "b": dead})
        ).config
        svc = build_service(
            config, reactor, listen=[LOOPBACK], rng=random.Random(0),
            site_class=TrackingSite,
        )  # fmt: skip
        svc.startService()
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        admin = yield svc.getServiceNamed("admin").whenListening()
        self.addCleanup(http.factory.close_all)
        self.addCleanup(lambda: svc.stopService() if svc.running else None)
        base = f"http://127.0.0.1:{port.getHost().port}"
        return svc.getServiceNamed("central"), base, admin.getHost().port

    @inlineCallbacks
    def scrape(self, port: int) -> Any:
        response = yield self.http.get(f"http://127.0.0.1:{port}/metrics")
        self.assertEqual(response.code, 200)
        text = yield response.text("utf-8")
        samples: Dict[Any, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    @inlineCallbacks
    def test_metrics_of_a_polling_central(self) -> Any:
        """Once both buses were polled, /metrics counts them online and
        offline, the rounds by outcome and their durations, and a refused
        event under unauthorized."""
        self.http = client(self)
        role, base, admin = yield self.start()
        watch = Watch(role)
        state = role.state
        # Published when each changes, after its round was counted.
        yield watch.until(
            lambda: state.state("a") == "online" and state.state("b") == "offline"
        )
        response = yield self.http.post(base + "/events", data=b"{}")
        self.assertEqual(response.code, 401)
        yield response.text()
        m = yield self.scrape(admin)

        def v(name: str, **labels: str) -> float:
            return m[(name, tuple(sorted(labels.items())))]

        self.assertEqual(v("busgw_central_buses", state="online"), 1)
        self.assertEqual(v("busgw_central_buses", state="offline"), 1)
        self.assertEqual(v("busgw_central_buses", state="unknown"), 0)
        self.assertEqual(v("busgw_central_bus_levels", level="ok"), 1)
        self.assertEqual(v("busgw_central_bus_levels", level="unknown"), 1)
        ok = v("busgw_central_poll_rounds_total", outcome="ok")
        failed = v("busgw_central_poll_rounds_total", outcome="failed")
        self.assertGreaterEqual(ok, 1)
        self.assertGreaterEqual(failed, 1)
        self.assertEqual(v("busgw_central_poll_duration_seconds_count"), ok + failed)
        self.assertEqual(v("busgw_central_poll_waiting"), 0)
        self.assertEqual(v("busgw_central_events_total", result="unauthorized"), 1)
        self.assertEqual(v("busgw_central_events_total", result="stored"), 0)
        self.assertEqual(v("busgw_central_stream_subscribers"), 0)
        self.assertEqual(v("busgw_central_webhook_pending"), 0)
        # The gateway's own series are still there, on the same registry.
        self.assertIn(("busgw_info", (("version", _version()),)), m)


def _version() -> str:
    from busd import __version__

    return __version__
