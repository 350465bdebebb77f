"""The central's dashboard and fleet stream over loopback: a central
polling fake buses serves the page and its assets, and /fleet/stream
delivers the snapshot, then live bus and event messages, and outlives the
connection idle timeout."""

from __future__ import annotations

from typing import Any, List

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from busd.central.dashboard import CSP, load_files
from tests.integration._central_fleet import FakeBus, SSEReader, start_central
from tests.integration._util import client


class DashboardLoopbackTests(TestCase):
    @inlineCallbacks
    def start(self, count: int = 3, **central: Any) -> Any:
        self.buses: List[FakeBus] = [FakeBus(f"bus-{i}", fuel=40 + i) for i in range(count)]
        for bus in self.buses:
            yield bus.start(self)
        self.url, self.role = yield start_central(self, self.buses, **central)
        self.http = client(self)

    @inlineCallbacks
    def stream(self, query: str = "") -> Any:
        """Open /fleet/stream; returns (response, reader)."""
        response = yield self.http.get(
            self.url + "/fleet/stream" + query,
            headers=Headers({b"Accept": [b"text/event-stream"]}),
            unbuffered=True,
        )
        reader = SSEReader()
        response.deliverBody(reader)
        self.addCleanup(reader.close)
        return response, reader

    @inlineCallbacks
    def test_page_and_assets(self) -> None:
        """/dashboard/ and its script come from the central with the CSP."""
        yield self.start(count=1)
        files = load_files()
        response = yield self.http.get(self.url + "/dashboard/")
        body = yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(body, files[""][0])
        self.assertEqual(response.headers.getRawHeaders(b"content-security-policy"), [CSP])
        response = yield self.http.get(self.url + "/dashboard/app.js")
        body = yield response.content()
        self.assertEqual(body, files["app.js"][0])

    @inlineCallbacks
    def test_snapshot_then_live(self) -> None:
        """The stream starts with the fleet snapshot, then carries published messages."""
        yield self.start()
        # Wait until every bus was polled, so the snapshot holds them online.
        response, reader = yield self.stream()
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"),
            [b"text/event-stream; charset=utf-8"],
        )
        self.assertEqual(response.headers.getRawHeaders(b"x-accel-buffering"), [b"no"])
        self.assertIsNone(response.headers.getRawHeaders(b"content-length"))
        yield reader.until(lambda: bool(reader.messages))
        kind, first = reader.messages[0]
        self.assertEqual(kind, "fleet")
        self.assertEqual(reader.retry, 3000)
        ids = [s["id"] for s in first["health"]["summaries"]]
        self.assertEqual(ids, ["bus-0", "bus-1", "bus-2"])
        event = {"id": "e1", "bus": "bus-1", "kind": "door", "severity": "info"}
        self.role.hub.publish("event", event)
        yield reader.until(lambda: ("event", event) in reader.messages)

    @inlineCallbacks
    def test_bus_going_offline_is_streamed(self) -> None:
        """A bus that stops answering reaches the stream as stale, then offline."""
        yield self.start(count=2)
        _, reader = yield self.stream("?kinds=bus")

        def states(bus_id: str) -> List[str]:
            return [d["state"] for k, d in reader.messages if k == "bus" and d["id"] == bus_id]

        yield reader.until(lambda: "online" in states("bus-1"))
        yield self.buses[1].stop()
        yield reader.until(lambda: "offline" in states("bus-1"))
        went = states("bus-1")
        self.assertIn("stale", went[went.index("online") : went.index("offline")])
        self.assertNotIn("fleet", reader.kinds())
        self.assertNotIn("offline", states("bus-0"))

    @inlineCallbacks
    def test_outlives_idle_timeout(self) -> None:
        """Heartbeats flow past the connection idle timeout; the stream stays open."""
        yield self.start(count=1, root={"idle_timeout": "300ms"})
        self.role.hub.heartbeat = 0.1
        _, reader = yield self.stream()
        # Heartbeats are seen messages (comments without fleet state); five
        # take longer than the 0.3 s idle timeout.
        beats = lambda: sum(k in (":", "seen") for k in reader.kinds())  # noqa: E731
        yield reader.until(lambda: beats() >= 5)
        self.assertFalse(reader.ended.called)

    @inlineCallbacks
    def test_stop_ends_streams(self) -> None:
        """Stopping the central finishes every open stream."""
        yield self.start(count=1)
        _, reader = yield self.stream()
        yield reader.until(lambda: bool(reader.messages))
        self.role.hub.stop()
        yield reader.ended
        self.assertEqual(self.role.hub.subscribers, set())
