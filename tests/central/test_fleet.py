"""FleetState without a poller: states at the thresholds, the health of
the healths, views per bus and per endpoint, reloads and change reports."""

from __future__ import annotations

from typing import Any, Dict, Optional

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.central._answers import pick, read_health
from busd.central.fleet import Answer, FleetState
from busd.config._central import BusEntry
from tests.central._pollfakes import (
    HEALTH_CRITICAL,
    HEALTH_OK,
    NOW,
    STATUS,
    fleet_config,
)

VALUES = (("fuel", "status.vehicle.fuel.level_pct"), ("health", "health.status"),
          ("gone", "status.no.such"), ("other", "nothere.x"))  # fmt: skip


class FleetCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.config = fleet_config(
            ["b", "a", "c"],
            labels={"a": {"line": "12"}},
            stale_after=15.0,
            offline_after=60.0,
            values=VALUES,
        )
        self.state = FleetState(self.config, self.clock)

    def good(self, bus_id: str, health: Any = HEALTH_OK, code: int = 200,
             status: Optional[Dict[str, Any]] = None) -> None:  # fmt: skip
        now = self.clock.seconds()
        self.state.record(
            bus_id,
            now - 0.25,
            now,
            Answer(status=code, data=health),
            {"status": Answer(status=200, data=status or STATUS)},
        )

    def bad(self, bus_id: str) -> None:
        now = self.clock.seconds()
        self.state.record(
            bus_id,
            now,
            now,
            Answer(error="refused"),
            {"status": Answer(error="refused")},
        )


class StateTests(FleetCase):
    def test_thresholds(self) -> None:
        """unknown before a poll; online below stale_after, stale below offline_after, then offline."""
        self.assertEqual(self.state.state("a"), "unknown")
        self.good("a")
        self.assertEqual(self.state.state("a"), "online")
        self.clock.advance(14.999)
        self.assertEqual(self.state.state("a"), "online")
        self.clock.advance(0.001)
        self.assertEqual(self.state.state("a"), "stale")
        self.clock.advance(44.999)
        self.assertEqual(self.state.state("a"), "stale")
        self.clock.advance(0.001)
        self.assertEqual(self.state.state("a"), "offline")
        self.assertEqual(self.state.summary("a")["age_s"], 60.0)

    def test_never_seen_is_offline(self) -> None:
        """A bus polled that never answered is offline at once, and counts its failures."""
        self.bad("b")
        self.bad("b")
        s = self.state.summary("b")
        self.assertEqual(
            (s["state"], s["last_seen"], s["age_s"]), ("offline", None, None)
        )
        self.assertEqual(s["last_error"], "health: refused; status: refused")
        self.assertEqual(self.state.failures("b"), 2)

    def test_failures_keep_data_and_level(self) -> None:
        """A failed round keeps the last good data and level; only-health failing makes the level unknown."""
        self.good("a", HEALTH_CRITICAL, 503)
        self.clock.advance(5.0)
        self.bad("a")
        s = self.state.summary("a")
        self.assertEqual((s["state"], s["level"]), ("online", "critical"))
        self.assertEqual(
            self.state.detail("a")["endpoints"]["status"]["data"], STATUS
        )
        now = self.clock.seconds()
        self.state.record("a", now, now, Answer(error="answered 500"),
                          {"status": Answer(status=200, data=STATUS)})  # fmt: skip
        s = self.state.summary("a")
        self.assertEqual(
            (s["level"], s["failing"], s["age_s"]), ("unknown", [], 0.0)
        )
        self.assertEqual(self.state.failures("a"), 0)

    def test_not_a_health_answer(self) -> None:
        """A JSON answer without a known health status is an error, not a level."""
        self.good("a", {"status": "fine"})
        self.assertEqual(
            self.state.summary("a")["last_error"], "health: not a health answer"
        )
        self.assertEqual(self.state.summary("a")["level"], "unknown")

    def test_no_health_path(self) -> None:
        """With no health path polled, a bus answering its endpoints is ok."""
        now = self.clock.seconds()
        self.state.record(
            "a", now, now, None, {"status": Answer(status=200, data={})}
        )
        self.assertEqual(self.state.summary("a")["level"], "ok")


class ViewTests(FleetCase):
    def test_summary_shape(self) -> None:
        """A summary has the shared contract's keys, level and failing checks from /health, and values."""
        self.good("a", HEALTH_CRITICAL, 503)
        self.clock.advance(2.5)
        self.assertEqual(
            self.state.summary("a"),
            {
                "id": "a",
                "labels": {"line": "12"},
                "state": "online",
                "level": "critical",
                "failing": [{"name": "engine", "status": "critical",
                             "level": "critical", "reason": "engine.temp_c 110 > 102"}],
                "last_seen": "2026-11-18T11:06:40.000Z",
                "age_s": 2.5,
                "latency_ms": 250.0,
                "last_error": None,
                "values": {"fuel": 61, "health": "critical", "gone": None, "other": None},
            },
        )  # fmt: skip
        self.assertIsNone(self.state.summary("zzz"))

    def test_fleet_health(self) -> None:
        """/fleet/health counts states and levels, sorts by id, and picks the worst overall status."""
        body = self.state.fleet_health()
        self.assertEqual(body["status"], "degraded")  # nothing polled yet
        self.assertEqual(
            body["states"],
            {"online": 0, "stale": 0, "offline": 0, "unknown": 3},
        )
        for bus_id in "abc":
            self.good(bus_id)
        body = self.state.fleet_health()
        self.assertEqual((body["status"], body["buses"]), ("ok", 3))
        self.assertEqual([s["id"] for s in body["summaries"]], ["a", "b", "c"])
        self.assertEqual(body["checked_at"], "2026-11-18T11:06:40.000Z")
        self.good("b", {"status": "degraded", "checks": []})
        self.assertEqual(self.state.fleet_health()["status"], "degraded")
        self.good("b", HEALTH_CRITICAL, 503)
        body = self.state.fleet_health()
        self.assertEqual(body["status"], "critical")
        self.assertEqual(body["levels"], {"ok": 2, "degraded": 0, "critical": 1,
                                          "starting": 0, "unknown": 0})  # fmt: skip
        self.good("b")
        self.clock.advance(20.0)
        self.good("a")
        self.good("b")
        body = self.state.fleet_health()
        self.assertEqual(
            (body["status"], body["states"]["stale"]), ("degraded", 1)
        )
        self.clock.advance(50.0)
        self.assertEqual(self.state.fleet_health()["status"], "critical")

    def test_detail_and_endpoint(self) -> None:
        """A bus's detail holds each endpoint's data with age and status; /fleet/{name} lists who has none."""
        self.good("a")
        self.clock.advance(3.0)
        self.bad("b")
        detail = self.state.detail("a")
        self.assertEqual(detail["url"], "http://a.buses:8080")
        self.assertEqual(detail["endpoints"]["status"], {
            "data": STATUS, "fetched_at": "2026-11-18T11:06:40.000Z",
            "age_s": 3.0, "status": 200, "error": None})  # fmt: skip
        self.assertEqual(detail["health"], HEALTH_OK)
        self.assertEqual(
            self.state.detail("b")["endpoints"]["status"]["error"], "refused"
        )
        view = self.state.endpoint("status")
        self.assertEqual(view["endpoint"], "status")
        self.assertEqual(list(view["buses"]), ["a"])
        self.assertEqual(view["buses"]["a"]["age_s"], 3.0)
        self.assertEqual(view["buses"]["a"]["state"], "online")
        self.assertEqual(view["missing"], ["b", "c"])

    def test_helpers(self) -> None:
        """pick walks keys and list indexes; read_health keeps only non-ok checks."""
        self.assertEqual(pick({"a": [{"b": 1}, {"b": 2}]}, ["a", "1", "b"]), 2)
        self.assertIsNone(pick({"a": [1]}, ["a", "3"]))
        self.assertIsNone(pick(5, ["a"]))
        self.assertIsNone(read_health([]))
        self.assertEqual(
            read_health({"status": "starting", "checks": None}),
            ("starting", []),
        )


class ChangeTests(FleetCase):
    def test_reconcile(self) -> None:
        """A reload drops removed buses, adds new ones unknown, and keeps history by id even with a new url."""
        self.good("a")
        moved = BusEntry(id="a", url="http://elsewhere:1", labels={"line": "7"})
        config = attrs.evolve(
            self.config, fleet=(moved, BusEntry(id="d", url="http://d"))
        )
        added, removed = self.state.reconcile(config)
        self.assertEqual((added, sorted(removed)), (["d"], ["b", "c"]))
        self.assertEqual(self.state.ids(), ["a", "d"])
        s = self.state.summary("a")
        self.assertEqual((s["state"], s["labels"]), ("online", {"line": "7"}))
        self.assertEqual(self.state.detail("a")["url"], "http://elsewhere:1")
        self.assertEqual(self.state.state("d"), "unknown")
        self.state.record("b", NOW, NOW, None, {})  # a late round: ignored
        self.assertIsNone(self.state.summary("b"))

    def test_take_change_once(self) -> None:
        """Each change of state, level, failing or values is reported once, with the previous state."""
        first = self.state.take_change("a")
        assert first is not None
        self.assertEqual((first[0], first[1]["state"]), (None, "unknown"))
        self.assertIsNone(self.state.take_change("a"))
        self.good("a")
        self.assertEqual(self.state.take_change("a")[0], "unknown")
        self.good("a")
        self.assertIsNone(self.state.take_change("a"))
        self.good("a", status={"vehicle": {"fuel": {"level_pct": 3}}})
        change = self.state.take_change("a")
        self.assertEqual(change[1]["values"]["fuel"], 3)
        self.clock.advance(15.0)
        changes = self.state.take_changes()
        self.assertEqual(
            [(before, s["id"], s["state"]) for before, s in changes],
            [
                ("online", "a", "stale"),
                (None, "b", "unknown"),
                (None, "c", "unknown"),
            ],
        )
        self.assertEqual(self.state.take_changes(), [])
