"""The outbox on the reactor side: ids only after commit, group commit,
active events and pressure from memory, faults as 503 errors."""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.bus.event import EventInvalid
from busd.bus.interfaces import EventSink, EventSource
from busd.bus.outbox import Outbox, OutboxFull, OutboxUnavailable
from busd.bus.store import Store
from busd.config._bus import OutboxConfig
from tests.bus._events_support import NOW, QueueRunner, event, sync_run


class OutboxCase(SynchronousTestCase):
    def outbox(self, run=sync_run, state_dir=None, **limits):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.dir = state_dir or os.path.abspath(self.mktemp())
        self.store = Store(self.dir, OutboxConfig(**limits))
        self.addCleanup(self.store.close)
        box = Outbox(
            self.store, run, self.clock, OutboxConfig(**limits), "FW-0042"
        )
        box.open()
        return box


class AddTests(OutboxCase):
    def test_protocols(self):
        """The outbox offers what the health role expects of it."""
        box: EventSource = self.outbox()
        sink: EventSink = box  # type: ignore[assignment]
        self.assertTrue(callable(box.active) and callable(sink.raise_event))

    def test_id_after_commit(self):
        """add fires with the id only once the worker has committed."""
        run = QueueRunner()
        box = self.outbox(run)
        e = event()
        d = box.add(e)
        self.assertNoResult(d)
        run.drain()
        self.assertEqual(self.successResultOf(d), e.id)
        self.assertEqual(run.calls, ["load", "<lambda>", "insert"])
        self.assertEqual(box.pressure()["pending"], 1)

    def test_group_commit(self):
        """Adds arriving during a write go to disk together in the next
        transaction, each answered after it."""
        run = QueueRunner()
        box = self.outbox(run)
        run.drain()
        first = box.add(event())
        later = [box.add(event()) for _ in range(3)]
        run.step()  # the first insert
        self.successResultOf(first)
        for d in later:
            self.assertNoResult(d)
        run.drain()
        self.assertEqual(run.calls.count("insert"), 2)
        for d in later:
            self.successResultOf(d)

    def test_duplicate_same_answer(self):
        """The same client id twice gets the same id and is stored once."""
        box = self.outbox()
        a = self.successResultOf(box.add(event(id="door-1")))
        b = self.successResultOf(box.add(event(id="door-1")))
        self.assertEqual((a, b), ("door-1", "door-1"))
        self.assertEqual(box.pressure()["stored"], 1)

    def test_full(self):
        """A non-critical event that does not fit fails with OutboxFull
        (a 503 with Retry-After) and counts as refused."""
        box = self.outbox(max_events=1, hard_max_events=2)
        self.successResultOf(box.add(event()))
        err = self.failureResultOf(box.add(event()), OutboxFull).value
        self.assertEqual((err.status, err.headers["Retry-After"]), (503, "60"))
        self.successResultOf(box.add(event(severity="critical")))
        pressure = box.pressure()
        self.assertEqual(
            (pressure["refused"], pressure["level"]), (1, "critical")
        )

    def test_raise_event(self):
        """raise_event stores a checked event stamped with the clock."""
        box = self.outbox()
        event_id = self.successResultOf(
            box.raise_event("crash", "critical", {"g": 4})
        )
        (active,) = box.active("crash")
        self.assertEqual(active["id"], event_id)
        self.assertEqual(active["occurred_at"], "2025-06-15T15:06:40.000Z")
        self.failureResultOf(
            box.raise_event("crash", "fatal", {}), EventInvalid
        )


class ActiveTests(OutboxCase):
    def test_newest_first_until_acknowledged(self):
        """active(kind) lists unacknowledged events, newest first; an
        acknowledgement removes one, delivery does not."""
        box = self.outbox()
        ids = [
            self.successResultOf(box.add(event(id=f"c{i}", kind="crash")))
            for i in range(3)
        ]
        self.successResultOf(box.add(event(kind="other")))
        self.assertEqual([e["id"] for e in box.active("crash")], ids[::-1])
        self.assertEqual(box.active("crash")[0]["bus"], "FW-0042")
        self.successResultOf(box.mark(ids, []))
        self.assertEqual(len(box.active("crash")), 3)
        self.assertTrue(self.successResultOf(box.acknowledge("c1")))
        self.assertEqual([e["id"] for e in box.active("crash")], ["c2", "c0"])
        self.assertFalse(self.successResultOf(box.acknowledge("nope")))
        self.assertEqual(box.active("none"), [])

    def test_reloaded_after_restart(self):
        """A new outbox on the same directory knows the active events."""
        box = self.outbox()
        self.successResultOf(box.add(event(id="c1", kind="crash")))
        self.successResultOf(box.close())
        again = self.outbox(state_dir=self.dir)
        self.assertEqual([e["id"] for e in again.active("crash")], ["c1"])
        self.assertEqual(again.pressure()["pending"], 1)

    def test_pruned_leaves_active(self):
        """A history row pruned to make room is no longer active."""
        box = self.outbox(max_events=1)
        self.successResultOf(box.add(event(id="old", kind="door")))
        self.successResultOf(box.mark(["old"], []))
        self.successResultOf(box.add(event(id="new", kind="door")))
        self.assertEqual([e["id"] for e in box.active("door")], ["new"])


class PressureTests(OutboxCase):
    def test_levels_and_age(self):
        """ok below 80% of the caps, warning from 80%, critical when full;
        the oldest pending age follows the clock."""
        box = self.outbox(max_events=5)
        self.assertEqual(box.pressure()["oldest_pending_age"], None)
        levels = []
        for _ in range(5):
            self.successResultOf(box.add(event()))
            levels.append(box.pressure()["level"])
        self.assertEqual(levels, ["ok", "ok", "ok", "warning", "critical"])
        self.clock.advance(42)
        pressure = box.pressure()
        self.assertEqual(pressure["oldest_pending_age"], 42)
        self.assertEqual((pressure["max_events"], pressure["pending"]), (5, 5))


class FaultTests(OutboxCase):
    def test_broken_disk(self):
        """When the database cannot be opened every add fails with
        OutboxUnavailable (a 503), pressure is critical with the reason, and
        it works again once the directory is usable."""
        blocker = os.path.abspath(self.mktemp())
        open(blocker, "w").close()
        box = self.outbox(state_dir=blocker)
        err = self.failureResultOf(box.add(event()), OutboxUnavailable).value
        self.assertEqual(err.status, 503)
        pressure = box.pressure()
        self.assertEqual(pressure["level"], "critical")
        self.assertIn("cannot open", pressure["error"])
        os.unlink(blocker)
        self.successResultOf(box.add(event()))
        self.assertEqual(box.pressure()["error"], None)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_close(self):
        """After close, adds fail; queued ones fail once the write ends."""
        run = QueueRunner()
        box = self.outbox(run)
        run.drain()
        writing = box.add(event())
        queued = box.add(event())
        closed = box.close()
        self.failureResultOf(box.add(event()), OutboxUnavailable)
        run.drain()
        self.successResultOf(writing)
        self.failureResultOf(queued, OutboxUnavailable)
        self.successResultOf(closed)


class IdConflictTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = Store(os.path.abspath(self.mktemp()), OutboxConfig())
        self.addCleanup(self.store.close)
        self.outbox = Outbox(self.store, sync_run, self.clock, OutboxConfig(), "FW-0042")
        self.outbox.open()

    def test_same_id_other_event_is_409(self):
        """Re-posting the same event is idempotent; another event under a used
        id is refused with 409, never answered 202 and dropped."""
        from busd.bus.event import parse_event
        from busd.errors import GatewayError

        first = b'{"id":"d2","kind":"door_fault","severity":"info","occurred_at":"2025-06-01T08:30:00Z","data":{"door":2}}'
        other = b'{"id":"d2","kind":"crash","severity":"critical","occurred_at":"2025-06-02T09:00:00Z","data":{"g":9}}'
        self.assertEqual(self.successResultOf(self.outbox.add(parse_event(first, 65536))), "d2")
        self.assertEqual(self.successResultOf(self.outbox.add(parse_event(first, 65536))), "d2")
        failure = self.failureResultOf(self.outbox.add(parse_event(other, 65536)), GatewayError)
        self.assertEqual((failure.value.status, failure.value.code), (409, "id_conflict"))
