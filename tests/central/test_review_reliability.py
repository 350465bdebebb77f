"""Reliability review of the central: defects found by review, each
proven here first (deterministic: task.Clock, fakes, a real SQLite file).

* a bus down for ~1,024 rounds in a row (a weekend at 60 s backoff) made
  the backoff overflow and was never polled again;
* a failed group commit (disk full) left the event count too high, so the
  next commits pruned events that should have been kept;
* while the event store could not write (a full disk), each webhook
  courier retried its step every second: the receiver got the same
  event POSTed every second, backoff and give-up ignored;
* a ``busgw/fleet`` backend called every bus after the role had stopped
  (keep-alive connections still bring requests), leaving calls and timers
  nobody cancels.
"""

from __future__ import annotations

import json
import os
from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from busd.central._eventdb import NEW, EventDB, EventQuery, StoreUnavailable
from busd.central.events_schema import IncomingEvent
from busd.central.poller import Poller
from tests.central._ingest_support import BUS
from tests.central._pollfakes import FakeRole, fleet_config
from tests.central.test_live import Harness
from tests.central.test_webhooks import WebhookCase
from tests.central.test_live import central_config as live_config


def _incoming(event_id: str, data: str = "{}") -> IncomingEvent:
    return IncomingEvent(
        id=event_id,
        bus=BUS,
        kind="door_fault",
        severity="warning",
        occurred_at="2025-06-01T08:30:00Z",
        data=data,
    )


class PollerBackoffTests(SynchronousTestCase):
    def test_long_outage_keeps_bus_polled(self) -> None:
        """A bus that fails 1,100 rounds in a row is still polled, and online once it answers again."""
        import random

        role = FakeRole(fleet_config(["a"], interval=5.0, backoff_max=60.0))
        role.client.refuse("a")
        poller = Poller(role, rng=random.Random(3))
        poller.start()
        self.addCleanup(poller.stop)
        for _ in range(1100):
            role.clock.advance(60.0)
        self.assertGreaterEqual(role.state.failures("a"), 1050)
        self.assertIn("a", poller._calls)  # still scheduled
        role.client.serve("a")
        role.clock.advance(60.0)
        self.assertEqual(role.state.summary("a")["state"], "online")


class EventCountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.join(os.path.abspath(self.mktemp()), "ev.sqlite")
        self.db = EventDB(self.path, max_events=3)
        self.db.open()
        self.addCleanup(self.db.close)

    def ids(self) -> List[str]:
        return [r["id"] for r in self.db.list(EventQuery(ascending=True))]

    def test_failed_commit_prunes_nothing_later(self) -> None:
        """A batch that fails on a full disk leaves the count right: later commits keep max_events."""
        self.db.insert([(_incoming("e1"), ()), (_incoming("e2"), ())], 1.0)
        assert self.db._db is not None
        pages = self.db._db.execute("PRAGMA page_count").fetchone()[0]
        # The disk is full: no page beyond those in use.
        self.db._db.execute(f"PRAGMA max_page_count = {pages}")
        big = json.dumps({"blob": "x" * 200_000})
        self.assertRaises(
            StoreUnavailable,
            self.db.insert,
            [(_incoming("e3"), ()), (_incoming("big", big), ())],
            2.0,
        )
        self.assertEqual(self.db.count, 2)
        # Space again: the store recovers and keeps its max_events.
        self.db._db.execute("PRAGMA max_page_count = 1073741823")
        outcomes, dropped = self.db.insert([(_incoming("e4"), ())], 3.0)
        self.assertEqual(([o for o, _ in outcomes], dropped), ([NEW], {}))
        self.assertEqual(self.ids(), ["e1", "e2", "e4"])


class LiveAfterStopTests(SynchronousTestCase):
    def test_fleet_backend_after_stop_calls_no_bus(self) -> None:
        """A fleet backend asked after the role stopped calls no bus and leaves no timer."""
        h = Harness(
            self,
            live_config(
                self, {"url_pattern": "/s", "extra_config": {"busgw/fleet": True}}
            ),
        )
        h.part.stop()
        d = h.request("/live/x")
        self.assertEqual(h.client.calls, [])
        self.assertEqual(h.clock.getDelayedCalls(), [])
        response, body = h.done(self, d)
        self.assertEqual(
            json.loads(body), {"buses": {}, "missing": ["b1", "b2", "b3"]}
        )
        self.assertEqual(
            response.headers.getRawHeaders("X-Krakend-Completed"), ["false"]
        )


class WebhookStoreFailureTests(WebhookCase):
    def test_no_storm_while_the_store_cannot_write(self) -> None:
        """While the store cannot record an attempt (disk full), the receiver is not POSTed every second."""
        self.assertEqual(self.post("a"), 201)
        db = self.central.part.store.db

        def full(*_: Any) -> None:
            raise StoreUnavailable("database or disk is full")

        db.retry = full  # type: ignore[method-assign]
        db.finish = full  # type: ignore[method-assign]
        for second in range(120):
            for call in self.client.pending:
                # A receiver that is down, then back (its 2xx cannot be
                # recorded either).
                call.answer(500 if second < 60 else 200)
            self.clock.advance(1.0)
        self.flushLoggedErrors(StoreUnavailable)
        # Backed off like a failing delivery (retry_max 8 s), not 120 POSTs.
        self.assertLessEqual(len(self.client.calls), 25)
        self.stop()
