"""Tests for busd.demo: the simulated device services and etc/busgw.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import IResource
from twisted.web.server import Site

from busd.demo import (
    DEFAULT_DEVICE_PORTS,
    device_resources,
    devices_service,
    listen_devices,
)
from busd.demo.route import STOPS
from busd.demo.sim import CAPACITY, iso_utc

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CONFIG = Path(__file__).resolve().parents[2] / "etc" / "busgw.json"
PATHS = {"vehicle": "/vehicle", "location": "/location", "service": "/service"}


def _get(
    case: SynchronousTestCase,
    resource: IResource,
    path: str,
    method: str = "GET",
) -> Tuple[int, Any, Any]:
    """Request ``path`` from ``resource``; return status, headers, JSON."""
    # StubTreq binds treq's functions at run time, out of mypy's sight.
    stub: Any = StubTreq(resource)
    response = case.successResultOf(stub.request(method, "http://bus" + path))
    body = case.successResultOf(stub.content(response))
    return response.code, response.headers, json.loads(body)


class DeviceResourceTests(SynchronousTestCase):
    """The three device resources, driven by a Clock through StubTreq."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.devices = device_resources(self.clock)

    def get(self, device: str, path: str) -> Any:
        code, headers, data = _get(self, self.devices[device], path)
        self.assertEqual(code, 200)
        self.assertEqual(
            headers.getRawHeaders("content-type"), ["application/json"]
        )
        return data

    def test_vehicle_shape(self) -> None:
        """/vehicle answers the ECU's keys, six tyres and a UTC timestamp."""
        data = self.get("vehicle", "/vehicle")
        self.assertEqual(
            set(data),
            {
                "vehicle_id",
                "fuel",
                "tyres",
                "speed_kmh",
                "odometer_km",
                "engine",
                "battery_v",
                "updated_at",
            },
        )
        self.assertEqual(data["vehicle_id"], "FW-0042")
        self.assertEqual(set(data["fuel"]), {"level_pct", "range_km"})
        self.assertEqual(set(data["engine"]), {"temp_c", "rpm"})
        self.assertEqual(len(data["tyres"]), 6)
        self.assertEqual(data["tyres"][0]["position"], "front-left")
        self.assertEqual(data["updated_at"], "2023-11-14T22:13:20Z")

    def test_vehicle_moves_with_clock(self) -> None:
        """Advancing the clock burns fuel, adds distance and warms the engine."""
        before = self.get("vehicle", "/vehicle")
        self.clock.advance(600)
        after = self.get("vehicle", "/vehicle")
        self.assertLess(after["fuel"]["level_pct"], before["fuel"]["level_pct"])
        self.assertLess(after["fuel"]["range_km"], before["fuel"]["range_km"])
        self.assertGreater(after["odometer_km"], before["odometer_km"])
        self.assertGreater(
            after["engine"]["temp_c"], before["engine"]["temp_c"]
        )
        self.assertEqual(after["updated_at"], iso_utc(START + 600))

    def test_tyres_is_array(self) -> None:
        """/tyres is a top-level JSON array equal to /vehicle's tyres."""
        tyres = self.get("vehicle", "/tyres")
        self.assertIsInstance(tyres, list)
        self.assertEqual(tyres, self.get("vehicle", "/vehicle")["tyres"])
        for tyre in tyres:
            self.assertEqual(set(tyre), {"position", "pressure_bar"})

    def test_location_moves(self) -> None:
        """/location answers a position on FW-12 that changes over time."""
        before = self.get("location", "/location")
        self.assertEqual(
            set(before),
            {
                "lat",
                "lon",
                "heading_deg",
                "speed_kmh",
                "next_stop",
                "route",
                "updated_at",
            },
        )
        self.assertEqual(before["route"], "FW-12")
        self.clock.advance(60)
        after = self.get("location", "/location")
        self.assertNotEqual(
            (before["lat"], before["lon"]), (after["lat"], after["lon"])
        )

    def test_location_follows_route(self) -> None:
        """Over one round the bus stays on the route and heads to every stop."""
        lats = [s.lat for s in STOPS]
        lons = [s.lon for s in STOPS]
        seen = set()
        for _ in range(3200 // 20):
            where = self.get("location", "/location")
            self.assertTrue(min(lats) <= where["lat"] <= max(lats))
            self.assertTrue(min(lons) <= where["lon"] <= max(lons))
            self.assertTrue(0 <= where["heading_deg"] < 360)
            seen.add(where["next_stop"])
            self.clock.advance(20)
        self.assertEqual(seen, {s.name for s in STOPS})

    def test_devices_agree(self) -> None:
        """The GPS and the ECU report the same speed at the same moment."""
        self.clock.advance(45)
        self.assertEqual(
            self.get("location", "/location")["speed_kmh"],
            self.get("vehicle", "/vehicle")["speed_kmh"],
        )

    def test_service_shape_and_hours(self) -> None:
        """/service answers trip data and the driver's hours accumulate."""
        before = self.get("service", "/service")
        self.assertEqual(
            set(before),
            {
                "line",
                "trip_id",
                "passengers",
                "driver",
                "next_departure",
                "updated_at",
            },
        )
        self.assertEqual(before["line"], "FW-12")
        self.assertEqual(before["passengers"]["capacity"], CAPACITY)
        self.assertEqual(
            set(before["driver"]), {"id", "name", "hours_of_service"}
        )
        self.assertGreaterEqual(before["next_departure"], before["updated_at"])
        self.clock.advance(600)
        after = self.get("service", "/service")
        hours, was = (
            after["driver"]["hours_of_service"],
            before["driver"]["hours_of_service"],
        )
        self.assertGreater(hours["driving_min"], was["driving_min"])
        self.assertLess(hours["remaining_min"], was["remaining_min"])

    def test_passengers_change_at_stops(self) -> None:
        """The passenger count changes over a trip and only while stopped."""
        counts: List[int] = []
        previous = None
        for _ in range(1600 // 5):
            on_board = self.get("service", "/service")["passengers"]["on_board"]
            speed = self.get("vehicle", "/vehicle")["speed_kmh"]
            self.assertTrue(0 <= on_board <= CAPACITY)
            if previous is not None and on_board != previous:
                # Counts change on arrival, when the bus stands still.
                self.assertEqual(speed, 0.0)
            previous = on_board
            counts.append(on_board)
            self.clock.advance(5)
        self.assertGreater(len(set(counts)), 3)

    def test_deterministic(self) -> None:
        """Two simulations with the same start answer the same values."""
        twin = device_resources(self.clock, start=START)
        self.clock.advance(1234.5)
        for device, path in PATHS.items():
            self.assertEqual(
                _get(self, twin[device], path)[2], self.get(device, path)
            )

    def test_errors_are_json(self) -> None:
        """Unknown paths answer a JSON 404 and other methods a JSON 405."""
        code, _, body = _get(self, self.devices["vehicle"], "/location")
        self.assertEqual((code, body), (404, {"error": "not_found"}))
        code, headers, body = _get(
            self, self.devices["service"], "/service", method="POST"
        )
        self.assertEqual((code, body), (405, {"error": "method_not_allowed"}))
        self.assertEqual(headers.getRawHeaders("allow"), ["GET, HEAD"])


class DevicesServiceTests(SynchronousTestCase):
    """devices_service's wiring, against a MemoryReactorClock."""

    def test_listens_on_default_ports(self) -> None:
        """Starting it listens quietly on 9101-9103 on loopback only."""
        memory = MemoryReactorClock()
        parent = devices_service(memory)
        self.assertEqual(
            sorted(child.name for child in parent), sorted(DEFAULT_DEVICE_PORTS)
        )
        parent.startService()
        self.addCleanup(parent.stopService)
        listened = {port: (iface, f) for port, f, _, iface in memory.tcpServers}
        self.assertEqual(sorted(listened), [9101, 9102, 9103])
        for name, port in DEFAULT_DEVICE_PORTS.items():
            interface, site = listened[port]
            self.assertEqual(interface, "127.0.0.1")
            if not isinstance(site, Site):
                self.fail(f"{name} listens with {site!r}, not a Site")
            self.assertFalse(site.displayTracebacks)
            self.assertFalse(site.noisy)
            self.assertEqual(_get(self, site.resource, PATHS[name])[0], 200)

    def test_unknown_device(self) -> None:
        """Naming a device that does not exist is a ValueError."""
        with self.assertRaises(ValueError):
            devices_service(MemoryReactorClock(), ports={"radio": 9104})


class LoopbackTests(TestCase):
    """listen_devices on real loopback TCP ports, queried with treq."""

    async def listen(self, ports: Dict[str, int]) -> Dict[str, int]:
        """Listen for ``ports``, stop them on cleanup, return bound ports."""
        clock = Clock()
        clock.advance(START)
        listeners = await listen_devices(reactor, clock, ports=ports)
        for listener in listeners.values():
            self.addCleanup(listener.stopListening)
        return {name: _port(lp) for name, lp in listeners.items()}

    async def test_serves_json_over_tcp(self) -> None:
        """Each device answers its JSON over TCP with no access log line."""
        ports = await self.listen({name: 0 for name in DEFAULT_DEVICE_PORTS})
        # No persistent connections: nothing stays open after the test.
        pool = HTTPConnectionPool(reactor, persistent=False)
        client = HTTPClient(Agent(reactor, pool=pool))
        events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        for name, path in PATHS.items():
            url = f"http://127.0.0.1:{ports[name]}{path}"
            response = await client.get(url)
            self.assertEqual(response.code, 200)
            data = await response.json()
            self.assertEqual(data["updated_at"], "2023-11-14T22:13:20Z")
        # The client's pool logs its own factories; look for access lines.
        access = [e for e in map(formatEvent, events) if '"GET /' in e]
        self.assertEqual(access, [])

    async def test_bind_failure_closes_others(self) -> None:
        """A port that cannot bind fails the call and leaves nothing open."""
        busy = await serverFromString(
            reactor, "tcp:0:interface=127.0.0.1"
        ).listen(Factory.forProtocol(Protocol))
        self.addCleanup(busy.stopListening)
        with self.assertRaises(CannotListenError):
            # "vehicle" binds first; trial's dirty-reactor check fails
            # this test if listen_devices leaves it listening.
            await listen_devices(
                reactor, ports={"vehicle": 0, "location": _port(busy)}
            )


class ConfigTests(SynchronousTestCase):
    """etc/busgw.json is a KrakenD v3 config over the demo devices."""

    def setUp(self) -> None:
        self.config = json.loads(CONFIG.read_text(encoding="utf-8"))

    def test_service_keys(self) -> None:
        """The file is version 3 on port 8000 with the demo's endpoints."""
        self.assertEqual(self.config["version"], 3)
        self.assertEqual(self.config["name"], "Foggy Whale bus FW-0042")
        self.assertEqual(self.config["port"], 8000)
        self.assertEqual(self.config["timeout"], "2s")
        self.assertEqual(
            {e["endpoint"] for e in self.config["endpoints"]},
            {
                "/status",
                "/vehicle",
                "/location",
                "/service",
                "/tyres",
                "/driver",
            },
        )

    def test_hosts_are_devices(self) -> None:
        """Every backend host is a demo device port on loopback."""
        hosts = {f"http://127.0.0.1:{p}" for p in DEFAULT_DEVICE_PORTS.values()}
        for endpoint in self.config["endpoints"]:
            for backend in endpoint["backend"]:
                self.assertEqual(len(backend["host"]), 1)
                self.assertIn(backend["host"][0], hosts)
        status = _endpoint(self.config, "/status")
        self.assertEqual(len({b["host"][0] for b in status["backend"]}), 3)

    def test_supported_keys_only(self) -> None:
        """The demo config loads with --strict: no unsupported key anywhere."""
        from busd.config.load import load_config

        result = load_config(str(CONFIG), strict=True, environ={})
        self.assertEqual(result.warnings, ())

    def test_backends_match_devices(self) -> None:
        """Each backend's URL answers, in the shape its options expect."""
        clock = Clock()
        devices = device_resources(clock)
        by_port = {port: name for name, port in DEFAULT_DEVICE_PORTS.items()}
        for endpoint in self.config["endpoints"]:
            for backend in endpoint["backend"]:
                device = by_port[int(backend["host"][0].rsplit(":", 1)[1])]
                code, _, data = _get(
                    self, devices[device], backend["url_pattern"]
                )
                self.assertEqual(code, 200)
                if backend.get("is_collection"):
                    self.assertIsInstance(data, list)
                    continue
                if "target" in backend:
                    data = data[backend["target"]]
                for path in backend.get("allow", []) + list(
                    backend.get("mapping", {})
                ):
                    _dig(data, path)  # raises KeyError if the key is absent


def _port(listener: IListeningPort) -> int:
    """The TCP port ``listener`` is bound to."""
    address = listener.getHost()
    assert isinstance(address, IPv4Address)  # we listen on 127.0.0.1
    return address.port


def _endpoint(config: Dict[str, Any], path: str) -> Any:
    """The endpoint object of ``config`` serving ``path``."""
    (found,) = [e for e in config["endpoints"] if e["endpoint"] == path]
    return found


def _dig(data: Any, dotted: str) -> Any:
    """Follow a KrakenD dot path into nested objects."""
    for key in dotted.split("."):
        data = data[key]
    return data
