"""Reloading the central's fleet file (the SIGHUP path,
``GatewayService.reload_from_source``) with real bus gateways over
loopback: a new bus is polled, a bad file keeps the old fleet and says
why, a removed bus disappears."""

from __future__ import annotations

import json
import os
import random
from typing import Any, Dict

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from busd.config.load import parse_config
from busd.gateway import ConfigSource
from busd.service import build_service
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, TrackingSite, client, serve
from tests.integration.test_central_poll import Watch, bus_config


class CentralFleetReloadTests(TestCase):
    @inlineCallbacks
    def start_service(self, config: Any, source: Any = None) -> Any:
        svc = build_service(
            config, reactor, listen=[LOOPBACK], rng=random.Random(0),
            site_class=TrackingSite, source=source,
        )  # fmt: skip
        svc.startService()
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        self.addCleanup(http.factory.close_all)
        self.addCleanup(lambda: svc.stopService() if svc.running else None)
        return svc, f"http://127.0.0.1:{port.getHost().port}"

    @inlineCallbacks
    def bus(self, bus_id: str) -> Any:
        device = JSONBackend({"/status": (200, {"vehicle": {"fuel": {"level_pct": 50}}})})
        device_url, _ = yield serve(self, device)
        _, url = yield self.start_service(parse_config(bus_config(bus_id, device_url)).config)
        return url

    def write_fleet(self, buses: Dict[str, str]) -> None:
        with open(self.fleet_file, "w") as handle:
            json.dump({"buses": [{"id": i, "url": u} for i, u in buses.items()]}, handle)

    @inlineCallbacks
    def test_fleet_file_reload(self) -> None:
        """A reload adds a bus (polled until online), refuses a bad fleet file keeping the old fleet, then drops a removed bus."""
        urls = {"a": (yield self.bus("a")), "b": (yield self.bus("b"))}
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.fleet_file = os.path.join(folder, "fleet.json")
        self.write_fleet({"a": urls["a"]})
        poll = {"interval": "100ms", "timeout": "500ms", "stale_after": "1s",
                "offline_after": "2s", "endpoints": ["/status"]}  # fmt: skip
        path = os.path.join(folder, "central.json")
        with open(path, "w") as handle:
            json.dump({"version": 3, "extra_config": {"busgw/central": {
                "state_dir": folder, "fleet_file": self.fleet_file, "poll": poll}},
                "endpoints": []}, handle)  # fmt: skip
        source = ConfigSource(path)
        svc, base = yield self.start_service(source.load(), source)
        role = svc.getServiceNamed("central")
        watch = Watch(role)
        yield watch.until(lambda: role.state.state("a") == "online")

        self.write_fleet(urls)
        self.assertEqual(svc.reload_from_source(), (True, []))
        self.assertEqual([b.id for b in role.fleet], ["a", "b"])
        yield watch.until(lambda: role.state.state("b") == "online")

        with open(self.fleet_file, "w") as handle:
            json.dump({"buses": [{"id": "a", "url": urls["a"]}, {"id": "c", "url": "nope"}]}, handle)
        applied, problems = svc.reload_from_source()
        self.assertFalse(applied)
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(f"{self.fleet_file}: buses[1].url", problems[0])
        self.assertEqual([b.id for b in role.fleet], ["a", "b"])

        self.write_fleet({"b": urls["b"]})
        self.assertEqual(svc.reload_from_source(), (True, []))
        http = client(self)
        response = yield http.get(base + "/fleet/health")
        body = json.loads((yield response.content()))
        self.assertEqual([s["id"] for s in body["summaries"]], ["b"])
        self.assertEqual(body["states"]["online"], 1)
