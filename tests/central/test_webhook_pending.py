"""The pending-deliveries gauge (``Webhooks.pending``, scraped as
busgw_central_webhook_pending) against the deliveries table: pruning, a
delivery pruned while in flight, reloads and restarts that drop a URL."""

from __future__ import annotations

import os
import random
from typing import Any, Dict, Mapping, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.central._eventdb import EventDB, EventQuery, StoreUnavailable
from busd.central.events_schema import IncomingEvent
from busd.central.events_store import EventStore
from busd.config._central import BusEntry, WebhookConfig
from tests.central._ingest_support import (
    BUS,
    NOW,
    Central,
    bus_token,
    central_config,
    event,
    sync_run,
    write_bus_key,
)
from tests.central.test_webhooks import Receiver

HOOK = "http://hooks.example:9000/in"
OTHER = "http://other.example:9000/in"


class PendingCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.key, jwks = write_bus_key(os.path.join(self.dir, "keys"))
        self.fleet = (BusEntry(id=BUS, url="http://b:8080", key=jwks),)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.client = Receiver()
        self.central: Any = None

    def start(self, urls: Tuple[str, ...] = (HOOK,), max_events: int = 2) -> None:
        self.config = central_config(
            os.path.join(self.dir, "state"),
            self.fleet,
            webhooks=tuple(WebhookConfig(url=u, give_up_after=1e6) for u in urls),
            max_events=max_events,
        )
        self.central = Central(self.config, self.clock, self.client, rng=random.Random(4))

    def stop(self) -> None:
        self.successResultOf(self.central.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def reload(self, urls: Tuple[str, ...]) -> None:
        self.central.role.config = self.config = central_config(
            self.config.state_dir,
            self.fleet,
            webhooks=tuple(WebhookConfig(url=u, give_up_after=1e6) for u in urls),
            max_events=self.config.events.max_events,
        )
        self.central.part.fleet_changed()

    def post(self, event_id: str) -> None:
        token = bus_token(self.key, now=self.clock.seconds())
        d = self.central.post(event(event_id), token)
        self.assertEqual(self.successResultOf(d)[0], 201)

    @property
    def gauge(self) -> int:
        return int(self.central.part.webhooks.pending)

    def rows(self, url: str = HOOK) -> int:
        """The deliveries to ``url`` in the database (the sync runner: no thread)."""
        db = self.central.part.store.db._connection()
        (n,) = db.execute(
            "SELECT count(*) FROM deliveries WHERE hook = ?", (url,)
        ).fetchone()
        return int(n)


class PruneTests(PendingCase):
    def test_pruning_subtracts_dropped_deliveries(self) -> None:
        """Deliveries dropped by pruning leave the gauge, which stays equal to the table."""
        self.start(max_events=2)
        for event_id in ("e1", "e2", "e3", "e4"):
            self.post(event_id)
        # e1 is in flight, e1 and e2 were pruned with their deliveries.
        self.assertEqual(self.rows(), 2)
        self.assertEqual(self.gauge, 2)
        self.stop()

    def test_delivered_after_being_pruned_is_not_subtracted_twice(self) -> None:
        """A delivery pruned while its POST is in flight ends without a second decrement."""
        self.start(max_events=2)
        self.post("e1")
        [first] = self.client.pending
        for event_id in ("e2", "e3", "e4"):
            self.post(event_id)
        first.answer(200)  # e1's delivery row is already gone
        self.assertEqual((self.rows(), self.gauge), (2, 2))
        [e3] = self.client.pending
        self.assertEqual(e3.event["id"], "e3")
        e3.answer(200)
        self.assertEqual((self.rows(), self.gauge), (1, 1))
        self.client.pending[0].answer(200)
        self.assertEqual((self.rows(), self.gauge), (0, 0))
        self.stop()


class ConfiguredTests(PendingCase):
    def test_reload_removing_a_url_stops_counting_its_rows(self) -> None:
        """A URL removed by a reload leaves the gauge; its rows stay and count again if it comes back."""
        self.start(urls=(HOOK, OTHER), max_events=10)
        self.post("e1")
        self.post("e2")
        self.assertEqual(self.gauge, 4)
        self.reload((HOOK,))
        self.assertEqual((self.rows(OTHER), self.gauge), (2, 2))
        self.reload((HOOK, OTHER))
        self.assertEqual(self.gauge, 4)
        self.stop()

    def test_restart_counts_only_configured_urls(self) -> None:
        """After a restart, rows of a URL no longer configured are not pending."""
        self.start(urls=(HOOK, OTHER), max_events=10)
        self.post("e1")
        self.stop()
        self.start(urls=(HOOK,), max_events=10)
        self.assertEqual((self.rows(OTHER), self.gauge), (1, 1))
        self.stop()


class _Counter:
    def __init__(self) -> None:
        self.counts: Dict[str, int] = {}

    def counted(self, pending: Mapping[str, int]) -> None:
        self.counts = dict(pending)

    def changed(self, delta: Mapping[str, int]) -> None:
        for url, n in delta.items():
            self.counts[url] = self.counts.get(url, 0) + n


class StoreTests(SynchronousTestCase):
    def test_reopen_after_failed_start_counts_stored_rows(self) -> None:
        """A store that could not open at start reports the stored deliveries when a later call opens it."""
        path = os.path.join(os.path.abspath(self.mktemp()), "ev.sqlite3")
        holder = EventDB(path, max_events=10)
        holder.open()
        holder.insert([(_incoming("e1"), (HOOK, OTHER)), (_incoming("e2"), (HOOK,))], NOW)
        store = EventStore(EventDB(path, max_events=10), sync_run, Clock())
        counter = store.counter = _Counter()
        self.failureResultOf(store.open(), StoreUnavailable)  # the lock is held
        holder.close()
        self.successResultOf(store.list(EventQuery()))
        self.assertEqual(counter.counts, {HOOK: 2, OTHER: 1})
        self.successResultOf(store.close())


def _incoming(event_id: str) -> IncomingEvent:
    return IncomingEvent(
        id=event_id,
        bus=BUS,
        kind="door_fault",
        severity="warning",
        occurred_at="2025-06-01T08:30:00Z",
        data="{}",
    )
