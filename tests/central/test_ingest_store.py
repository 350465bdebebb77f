"""The central's event store: pruning, restarts, and GET /fleet/events."""

from __future__ import annotations

import os
from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from busd.central._eventdb import CONFLICT, DUPLICATE, NEW, EventDB, EventQuery
from busd.central.events_schema import IncomingEvent
from busd.config._central import BusEntry
from tests.central._ingest_support import (
    BUS,
    Central,
    bus_token,
    central_config,
    event,
    write_bus_key,
)


def incoming(event_id: str, bus: str = BUS, **over: Any) -> IncomingEvent:
    values = dict(
        id=event_id,
        bus=bus,
        kind="door_fault",
        severity="warning",
        occurred_at="2025-06-01T08:30:00Z",
        data="{}",
    )
    values.update(over)
    return IncomingEvent(**values)


class EventDBTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.join(os.path.abspath(self.mktemp()), "ev.sqlite3")
        self.db = EventDB(self.path, max_events=5)
        self.db.open()
        self.addCleanup(lambda: self.db.close())

    def add(self, *events: IncomingEvent, hooks=(), now: float = 100.0) -> List[str]:
        outcomes, _ = self.db.insert([(e, hooks) for e in events], now)
        return [o for o, _ in outcomes]

    def ids(self, **query: Any) -> List[str]:
        return [r["id"] for r in self.db.list(EventQuery(**query))]

    def test_dedupe_by_bus_and_id(self) -> None:
        """(bus, id) is stored once: the same content is a duplicate, other
        content a conflict, another bus a new event."""
        self.assertEqual(self.add(incoming("a")), [NEW])
        self.assertEqual(self.add(incoming("a")), [DUPLICATE])
        self.assertEqual(self.add(incoming("a", data='{"x":1}')), [CONFLICT])
        self.assertEqual(self.add(incoming("a", bus="FW-1")), [NEW])

    def test_pruning_oldest(self) -> None:
        """Beyond max_events the oldest events go, with their deliveries."""
        for i in range(4):
            self.add(incoming(f"e{i}"), hooks=("http://hook",))
        outcomes, dropped = self.db.insert(
            [(incoming("e4"), ()), (incoming("e5"), ()), (incoming("e6"), ())], 100.0
        )
        self.assertEqual(dropped, {"http://hook": 2})
        self.assertEqual(self.ids(ascending=True), ["e2", "e3", "e4", "e5", "e6"])
        self.assertEqual(self.db.next_delivery("http://hook")["id"], "e2")

    def test_restart_keeps_data(self) -> None:
        """Events and pending deliveries survive closing and reopening."""
        self.add(incoming("a"), hooks=("http://hook",))
        self.db.close()
        again = EventDB(self.path, max_events=5)
        self.assertEqual(again.open(), 1)
        self.addCleanup(again.close)
        self.assertEqual([r["id"] for r in again.list(EventQuery())], ["a"])
        self.assertEqual(again.count, 1)

    def test_second_opener_refused(self) -> None:
        """Two centrals on one database: the second cannot open it."""
        from busd.central._eventdb import StoreUnavailable

        other = EventDB(self.path, max_events=5)
        self.assertRaises(StoreUnavailable, other.open)

    def test_filters(self) -> None:
        """bus, kind, least severity, since and cursor filter the list."""
        self.add(incoming("a", kind="door_fault", severity="info"), now=10)
        self.add(incoming("b", bus="FW-1", severity="critical"), now=20)
        self.add(incoming("c", kind="tyre", severity="warning"), now=30)
        self.assertEqual(self.ids(), ["c", "b", "a"])
        self.assertEqual(self.ids(bus=BUS), ["c", "a"])
        self.assertEqual(self.ids(kind="door_fault"), ["b", "a"])
        self.assertEqual(self.ids(min_rank=1), ["c", "b"])
        self.assertEqual(self.ids(since=20.0), ["c", "b"])
        first = self.db.list(EventQuery(ascending=True, limit=1))[0]["seq"]
        self.assertEqual(self.ids(after=first, ascending=True), ["b", "c"])
        self.assertEqual(self.ids(limit=2), ["c", "b"])


class ListingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.key, jwks = write_bus_key(os.path.join(self.dir, "keys"))
        fleet = (BusEntry(id=BUS, url="http://b:8080", key=jwks),)
        self.config = central_config(os.path.join(self.dir, "state"), fleet)
        self.central = Central(self.config)
        self.addCleanup(lambda: self.central.stop())

    def post(self, *events: Any) -> None:
        for body in events:
            code = self.successResultOf(
                self.central.post(body, bus_token(self.key))
            )[0]
            self.assertEqual(code, 201)

    def get(self, path: str) -> Any:
        return self.successResultOf(self.central.get(path))

    def test_newest_first_and_cursor(self) -> None:
        """The list is newest first; following with since=<cursor> gives
        each newer event once, oldest first."""
        self.post(event("a"), event("b"))
        code, body, _ = self.get("/fleet/events")
        self.assertEqual(code, 200)
        self.assertEqual([e["id"] for e in body["events"]], ["b", "a"])
        self.assertEqual(body["count"], 2)
        cursor = body["cursor"]
        self.assertEqual(cursor, body["events"][0]["cursor"])
        self.post(event("c"), event("d"))
        page = self.get(f"/fleet/events?since={cursor}&limit=1")[1]
        self.assertEqual([e["id"] for e in page["events"]], ["c"])
        page = self.get(f"/fleet/events?since={page['cursor']}")[1]
        self.assertEqual([e["id"] for e in page["events"]], ["d"])
        empty = self.get(f"/fleet/events?since={page['cursor']}")[1]
        self.assertEqual((empty["events"], empty["cursor"]), ([], page["cursor"]))

    def test_body_built_by_the_worker(self) -> None:
        """The listing's JSON (up to 1,000 events of 64 KiB) is decoded and
        encoded on the store's worker, not on the reactor thread."""
        self.post(event("a"))
        store = self.central.part.store
        ran = []
        inner = store._run

        def recording(fn: Any, *args: Any) -> Any:
            ran.append(fn)
            return inner(fn, *args)

        store._run = recording
        code, body, _ = self.get("/fleet/events")
        self.assertEqual((code, body["count"]), (200, 1))
        self.assertEqual([getattr(f, "__name__", "") for f in ran], ["_list_body"])

    def test_filters_over_http(self) -> None:
        """kind, severity and an RFC 3339 since filter the answer."""
        self.post(event("a", severity="info"))
        self.central.clock.advance(60)
        self.post(event("b", kind="tyre", severity="critical"))
        ids = lambda q: [e["id"] for e in self.get("/fleet/events?" + q)[1]["events"]]
        self.assertEqual(ids("severity=warning"), ["b"])
        self.assertEqual(ids("kind=door_fault"), ["a"])
        self.assertEqual(ids(f"bus={BUS}&order=asc"), ["a", "b"])
        self.assertEqual(ids("since=2026-11-18T11:07:00Z"), ["b"])

    def test_bad_parameters(self) -> None:
        """Each bad parameter is a 400 naming it."""
        cases = {
            "limit": "limit=0",
            "since": "since=yesterday",
            "severity": "severity=fatal",
            "order": "order=up",
            "kinds": "kinds=x",
            "bus": "bus=a&bus=b",
        }
        for name, query in cases.items():
            code, body, _ = self.get("/fleet/events?" + query)
            self.assertEqual((code, body["parameter"]), (400, name), query)
        self.assertEqual(self.get("/fleet/events?limit=1001")[0], 400)
        self.assertEqual(self.get("/fleet/events?limit=1000")[0], 200)

    def test_one_event(self) -> None:
        """GET /fleet/events/{bus}/{id} answers one event, 404 if unknown."""
        self.post(event("a"))
        code, body, _ = self.get(f"/fleet/events/{BUS}/a")
        self.assertEqual((code, body["id"], body["bus"]), (200, "a", BUS))
        self.assertEqual(self.get(f"/fleet/events/{BUS}/zz")[0], 404)

    def test_store_survives_restart(self) -> None:
        """A new part on the same state dir lists what the old one stored."""
        self.post(event("a"))
        self.successResultOf(self.central.stop())
        again = Central(self.config)
        self.addCleanup(lambda: again.stop())
        body = self.successResultOf(again.get("/fleet/events"))[1]
        self.assertEqual([e["id"] for e in body["events"]], ["a"])


class UnavailableTests(SynchronousTestCase):
    def test_unusable_state_dir(self) -> None:
        """A database that cannot be opened answers 503 with Retry-After,
        never 201, and lists nothing (503)."""
        root = os.path.abspath(self.mktemp())
        key, jwks = write_bus_key(os.path.join(root, "keys"))
        blocker = os.path.join(root, "file")
        open(blocker, "w").close()
        fleet = (BusEntry(id=BUS, url="http://b:8080", key=jwks),)
        central = Central(central_config(os.path.join(blocker, "state"), fleet))
        self.addCleanup(central.stop)
        code, _, response = self.successResultOf(
            central.post(event(), bus_token(key))
        )
        self.assertEqual(code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"30"])
        self.assertEqual(self.successResultOf(central.get("/fleet/events"))[0], 503)
