"""``busgw demo --buses N`` in-process over loopback: two real bus
gateways with their devices and a central polling them, every port picked
free; a bus switched off through the control listener goes stale, then
offline, and comes back."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase

from busd.demo.fleet import start_fleet
from tests.integration._demo_fleet import ETC as _ETC
from tests.integration._demo_fleet import Watch as _Watch
from tests.integration._demo_fleet import fleet_options
from tests.integration._util import client


class DemoFleetTests(TestCase):
    """Two simulated buses and their central in this test's reactor."""

    @inlineCallbacks
    def setUp(self):
        state = os.path.abspath(self.mktemp())
        self.fleet = yield start_fleet(reactor, fleet_options(state, buses=2))
        self.addCleanup(self.fleet.stop)
        self.watch = _Watch(self.fleet.central_role)
        self.http = client(self)

    @inlineCallbacks
    def get_json(self, url: str, method: str = "GET") -> Any:
        response = yield self.http.request(method, url)
        body = yield response.json()
        return response.code, body

    @inlineCallbacks
    def test_stopped_bus_goes_stale_then_offline(self):
        """Both buses come online at the central; one switched off through
        the control listener turns stale, then offline, in /fleet/health
        while the other stays online, and is online again once started."""
        fleet, central = self.fleet, self.fleet.central_url
        yield self.watch.until(
            lambda s: s.get("FW-0042") == s.get("FW-0043") == "online"
        )
        code, health = yield self.get_json(central + "/fleet/health")
        self.assertEqual(code, 200)
        self.assertEqual(health["states"]["online"], 2)
        self.assertEqual(
            {b["id"]: b["labels"]["line"] for b in health["summaries"]},
            {"FW-0042": "FW-12", "FW-0043": "FW-7"},
        )
        code, stopped = yield self.get_json(
            fleet.control_url + "/buses/FW-0043/stop", method="POST"
        )
        self.assertEqual((code, stopped["running"]), (200, False))
        yield self.watch.until(lambda s: s["FW-0043"] == "stale")
        yield self.watch.until(lambda s: s["FW-0043"] == "offline")
        _, health = yield self.get_json(central + "/fleet/health")
        states = {b["id"]: b["state"] for b in health["summaries"]}
        self.assertEqual(states, {"FW-0042": "online", "FW-0043": "offline"})
        code, started = yield self.get_json(
            fleet.control_url + "/buses/FW-0043/start", method="POST"
        )
        self.assertEqual((code, started["running"]), (200, True))
        yield self.watch.until(lambda s: s["FW-0043"] == "online")

    @inlineCallbacks
    def test_buses_answer_only_the_central(self):
        """A bus's endpoints and /health want the central's token, its
        /__health does not, and the central's poll carries values from the bus's /status
        (the relabelled simulation: bus id and line)."""
        bus = self.fleet.buses["FW-0043"]
        for path in ("/status", "/health"):
            response = yield self.http.get(bus.url + path)
            yield response.content()
            self.assertEqual(response.code, 401, path)
        response = yield self.http.get(bus.url + "/__health")
        yield response.content()
        self.assertEqual(response.code, 200)
        yield self.watch.until(lambda s: s.get("FW-0043") == "online")
        code, status = yield self.get_json(self.fleet.central_url + "/fleet/status")
        self.assertEqual(code, 200)
        told = status["buses"]["FW-0043"]["data"]
        self.assertEqual(told["bus_id"], "FW-0043")
        self.assertEqual(told["service"]["line"], "FW-7")

    @inlineCallbacks
    def test_control_refuses_unknown_buses_and_methods(self):
        """The control listener lists the buses, answers 404 for an
        unknown bus and 405 for a GET on an action."""
        code, listed = yield self.get_json(self.fleet.control_url + "/buses")
        self.assertEqual(code, 200)
        self.assertEqual(
            [(b["id"], b["running"]) for b in listed["buses"]],
            [("FW-0042", True), ("FW-0043", True)],
        )
        code, _ = yield self.get_json(
            self.fleet.control_url + "/buses/FW-9999/stop", method="POST"
        )
        self.assertEqual(code, 404)
        code, _ = yield self.get_json(self.fleet.control_url + "/buses/FW-0042/stop")
        self.assertEqual(code, 405)


_BANNER = re.compile(rb"fleet health: +curl (http://127\.0\.0\.1:\d+)/fleet/health")


class _Process(ProcessProtocol):
    """Collects the demo's output; ``ready`` fires with the central's URL
    from its banner, ``ended`` with the exit code."""

    def __init__(self) -> None:
        self.output = b""
        self.ready: Deferred = Deferred()
        self.ended: Deferred = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        found = _BANNER.search(self.output)
        if found and not self.ready.called:
            self.ready.callback(found.group(1).decode())

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError(self.output.decode()))
        self.ended.callback(reason.value.exitCode)


class DemoProcessTests(TestCase):
    """``busgw demo --buses`` as a real process."""

    timeout = 60

    @inlineCallbacks
    def test_demo_buses_process(self):
        """The command prints the central's URLs, serves /fleet/buses with
        every bus, keeps the buses' listener lines out of its log, and
        exits 0 on SIGTERM."""
        root = os.path.abspath(os.path.join(_ETC, ".."))
        env = dict(
            os.environ, PYTHONPATH=root, BUSGW_STATE_DIR=os.path.abspath(self.mktemp())
        )
        args = ["-m", "busd", "demo", "--buses", "2", "-p", "0", "--bus-port", "0",
                "--device-port", "0", "--control-port", "0"]  # fmt: skip
        proc = _Process()
        process = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, *args], env=env, path=root
        )
        try:
            central = yield proc.ready
            response = yield client(self).get(central + "/fleet/buses")
            body = yield response.json()
            self.assertEqual(response.code, 200)
            self.assertIn("FW-0043", json.dumps(body))
        finally:
            if not proc.ended.called:
                process.signalProcess(signal.SIGTERM)
        code = yield proc.ended
        self.assertEqual(code, 0, proc.output.decode())
        self.assertIn(b"/dashboard/", proc.output)
        self.assertIn(b"/buses/FW-0043/stop", proc.output)
        self.assertNotIn(b"bus FW-0042 starting on", proc.output)
