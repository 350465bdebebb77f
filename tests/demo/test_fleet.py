"""The demo fleet's plan and derived configs (busd.demo.fleet_config), the
relabelled devices and the CLI options of ``busgw demo --buses``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

from twisted.trial.unittest import SynchronousTestCase

from busd.cli import parser
from busd.config.load import load_config
from busd.demo.fleet import FleetOptions, prepare
from busd.demo.fleet_bus import relabel
from busd.demo.fleet_config import (
    BusPlan,
    FleetPorts,
    bus_config,
    fleet_document,
    plan_fleet,
    write_json,
)
from busd.demo.fleet_keys import CentralKey, central_key

ETC = Path(__file__).resolve().parents[2] / "etc"


def _raw(name: str) -> Any:
    with open(ETC / name) as handle:
        return json.load(handle)


class PlanTests(SynchronousTestCase):
    """plan_fleet: ids, labels, ports, files and offsets."""

    def test_ids_ports_and_files(self) -> None:
        """Bus i is FW-(42+i) on port 8101+i with devices on
        9200+10i+{1,2,3}, its files in STATE/<id>/."""
        plans = plan_fleet(3, "/srv/demo", FleetPorts())
        self.assertEqual([p.id for p in plans], ["FW-0042", "FW-0043", "FW-0044"])
        self.assertEqual([p.port for p in plans], [8101, 8102, 8103])
        self.assertEqual(
            dict(plans[2].device_ports),
            {"vehicle": 9221, "location": 9222, "service": 9223},
        )
        self.assertEqual(plans[1].key, "/srv/demo/FW-0043/bus.key.pem")
        self.assertEqual(plans[1].jwks, "/srv/demo/FW-0043/bus.jwks.json")
        self.assertEqual(plans[1].config_path, "/srv/demo/FW-0043/busgw.json")

    def test_labels_and_offsets_vary(self) -> None:
        """Lines and depots alternate, and no two buses start at the same
        point of their shift."""
        plans = plan_fleet(4, "/srv/demo", FleetPorts())
        self.assertEqual([p.line for p in plans], ["FW-12", "FW-7", "FW-12", "FW-7"])
        self.assertEqual(len({p.depot for p in plans}), 2)
        self.assertEqual(len({p.offset_s for p in plans}), 4)

    def test_zero_bases_pick_free_ports(self) -> None:
        """A port base of 0 asks for a free port everywhere."""
        plans = plan_fleet(2, "/srv/demo", FleetPorts(bus=0, devices=0))
        self.assertEqual({p.port for p in plans}, {0})
        self.assertEqual(set(plans[1].device_ports.values()), {0})

    def test_bad_counts_and_clashes(self) -> None:
        """No bus, or port ranges that overlap, are refused with a reason."""
        self.assertRaises(ValueError, plan_fleet, 0, "/s", FleetPorts())
        with self.assertRaises(ValueError) as caught:
            plan_fleet(3, "/s", FleetPorts(bus=9200, devices=9200))
        self.assertIn("port 9201", str(caught.exception))
        self.assertRaises(ValueError, plan_fleet, 2, "/s", FleetPorts(central=8101))


class BusConfigTests(SynchronousTestCase):
    """bus_config: the demo bus config turned into one fleet bus's."""

    def setUp(self) -> None:
        self.plan = plan_fleet(2, "/srv/demo", FleetPorts())[1]
        self.central = CentralKey(key="/srv/demo/central.key.pem", kid="central")
        self.raw = _raw("busgw.json")
        self.out = bus_config(
            self.raw,
            self.plan,
            port=18102,
            device_ports={"vehicle": 19211, "location": 19212, "service": 19213},
            central_url="http://127.0.0.1:18000",
            central=self.central,
        )

    def test_device_urls_moved(self) -> None:
        """Every backend host and health check URL names the bus's own
        device ports; none is left on the single demo's 9101-9103."""
        text = json.dumps(self.out)
        for old in ("9101", "9102", "9103"):
            self.assertNotIn(f"127.0.0.1:{old}", text)
        checks = {
            c["name"]: c for c in self.out["extra_config"]["busgw/health"]["checks"]
        }
        self.assertEqual(checks["ecu"]["url"], "http://127.0.0.1:19211/vehicle")
        self.assertEqual(
            checks["gps_fix"]["source"]["url"], "http://127.0.0.1:19212/location"
        )
        hosts = {
            b["url_pattern"]: b["host"][0]
            for e in self.out["endpoints"]
            for b in e["backend"]
        }
        self.assertEqual(hosts["/service"], "http://127.0.0.1:19213")

    def test_identity_events_and_keys(self) -> None:
        """The bus id, port, state dir and key are the bus's, its events go
        to the central, and its endpoints trust the central's key."""
        extra = self.out["extra_config"]
        self.assertEqual(self.out["port"], 18102)
        bus = extra["busgw/bus"]
        self.assertEqual(bus["id"], "FW-0043")
        self.assertEqual(bus["state_dir"], "/srv/demo/FW-0043")
        self.assertEqual(bus["central"]["url"], "http://127.0.0.1:18000")
        self.assertEqual(bus["central"]["key"], "/srv/demo/FW-0043/bus.key.pem")
        validator = extra["busgw/auth"]["validator"]
        self.assertEqual(validator["jwk_local_path"], "/srv/demo/central.jwks.json")
        self.assertEqual(validator["audience"], ["bus-FW-0043"])
        self.assertEqual(validator["issuer"], "central")

    def test_no_admin_listener_nor_access_log(self) -> None:
        """The buses share no admin port and log no access lines."""
        self.assertEqual(
            self.out["extra_config"]["busgw/telemetry"], {"access_log": False}
        )

    def test_static_bus_id_and_template_untouched(self) -> None:
        """/status names the bus, and the template itself is not changed."""
        status = next(e for e in self.out["endpoints"] if e["endpoint"] == "/status")
        self.assertEqual(
            status["extra_config"]["proxy"]["static"]["data"]["bus_id"], "FW-0043"
        )
        self.assertEqual(self.raw, _raw("busgw.json"))


class CentralTests(SynchronousTestCase):
    """The central's key and fleet file as the demo writes them."""

    def test_central_key_from_config(self) -> None:
        """etc/central.json's signing key lives in BUSGW_STATE_DIR."""
        key = central_key(_raw("central.json"), {"BUSGW_STATE_DIR": "/srv/demo"})
        self.assertEqual(key.key, "/srv/demo/central.key.pem")
        self.assertEqual(key.jwks, "/srv/demo/central.jwks.json")
        self.assertEqual(key.audience_for("FW-0042"), "bus-FW-0042")

    def test_unsigned_central_refused(self) -> None:
        """A central without signing cannot poll the demo's guarded buses."""
        raw = _raw("central.json")
        del raw["extra_config"]["busgw/central"]["signing"]
        self.assertRaises(ValueError, central_key, raw, {})

    def test_fleet_document(self) -> None:
        """Each bus's URL, public key file and labels."""
        plans = plan_fleet(2, "/srv/demo", FleetPorts())
        doc = fleet_document(plans, {"FW-0042": "http://a", "FW-0043": "http://b"})
        self.assertEqual(
            doc["buses"][1],
            {
                "id": "FW-0043",
                "url": "http://b",
                "key": "/srv/demo/FW-0043/bus.jwks.json",
                "labels": {"line": "FW-7", "depot": "Harbour"},
            },
        )


class PrepareTests(SynchronousTestCase):
    """prepare() makes the keys, and the configs it derives load."""

    def test_keys_made_and_configs_load(self) -> None:
        """The central's and each bus's key (with its JWK set) exist after
        prepare; a derived bus config and etc/central.json with the fleet
        file both pass the real loader."""
        state = os.path.abspath(self.mktemp())
        options = FleetOptions(
            buses=2,
            bus_config=str(ETC / "busgw.json"),
            central_config=str(ETC / "central.json"),
            state_dir=state,
        )
        ready = prepare(options)
        for name in ("central.key.pem", "central.jwks.json"):
            self.assertTrue(os.path.exists(os.path.join(state, name)))
        for plan in ready.plans:
            self.assertTrue(os.path.exists(plan.jwks))
        self.assertEqual(ready.fleet_file, os.path.join(state, "fleet.json"))
        key = central_key(ready.central_raw, ready.environ)
        plan: BusPlan = ready.plans[1]
        write_json(
            plan.config_path,
            bus_config(
                ready.bus_raw,
                plan,
                port=plan.port,
                device_ports=plan.device_ports,
                central_url="http://127.0.0.1:8000",
                central=key,
            ),
        )
        bus = load_config(plan.config_path, environ=ready.environ).config
        assert bus.bus is not None and bus.default_auth is not None
        self.assertEqual(bus.bus.id, "FW-0043")
        urls = {p.id: f"http://127.0.0.1:{p.port}" for p in ready.plans}
        write_json(ready.fleet_file, fleet_document(ready.plans, urls))
        central = load_config(
            str(ETC / "central.json"), strict=True, environ=ready.environ
        ).config
        assert central.central is not None
        self.assertEqual(
            [(b.id, b.url) for b in central.central.fleet],
            [("FW-0042", "http://127.0.0.1:8101"), ("FW-0043", "http://127.0.0.1:8102")],
        )
        # A second start keeps the keys it made the first time.
        with open(plan.jwks) as handle:
            before = handle.read()
        prepare(options)
        with open(plan.jwks) as handle:
            self.assertEqual(handle.read(), before)


class RelabelTests(SynchronousTestCase):
    """The shared simulation's answers told as another bus."""

    def test_relabel(self) -> None:
        """Vehicle id, line, route and trip id name the bus and its line."""
        plan = plan_fleet(2, "/s", FleetPorts())[1]
        told: Dict[str, Any] = relabel(
            {
                "vehicle_id": "FW-0042",
                "line": "FW-12",
                "route": "FW-12",
                "trip_id": "FW-12-0003-out",
                "speed_kmh": 3.0,
            },
            plan,
        )
        self.assertEqual(
            told,
            {
                "vehicle_id": "FW-0043",
                "line": "FW-7",
                "route": "FW-7",
                "trip_id": "FW-7-0003-out",
                "speed_kmh": 3.0,
            },
        )
        self.assertEqual(relabel([1], plan), [1])


class OptionTests(SynchronousTestCase):
    """``busgw demo`` options."""

    def test_fleet_options(self) -> None:
        """--buses and the port bases parse; without --buses the single
        bus demo is unchanged."""
        args = parser().parse_args(
            ["demo", "--buses", "3", "--bus-port", "0", "--control-port", "18099"]
        )
        self.assertEqual((args.buses, args.bus_port, args.control_port), (3, 0, 18099))
        self.assertEqual(args.device_port, 9200)
        single = parser().parse_args(["demo", "-c", str(ETC / "busgw.json")])
        self.assertIsNone(single.buses)
