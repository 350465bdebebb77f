"""The SQLite store: durability settings, idempotency, bounds and the full
policy, and disk faults surfacing as StoreUnavailable."""

import os
import sqlite3
import stat

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from busd.bus.store import (
    ACCEPTED,
    CONFLICT,
    DUPLICATE,
    FULL,
    Store,
    StoreUnavailable,
)
from busd.config._bus import OutboxConfig
from tests.bus._events_support import NOW, event


class StoreCase(SynchronousTestCase):
    def store(self, **limits):
        store = Store(os.path.abspath(self.mktemp()), OutboxConfig(**limits))
        store.load()
        self.addCleanup(store.close)
        return store

    def put(self, store, *events):
        outcomes, pruned, counts = store.insert(list(events), NOW)
        return [o for o, _ in outcomes], pruned, counts


class DurabilityTests(StoreCase):
    def test_wal_and_full_sync(self):
        """The database runs in WAL mode with synchronous=FULL (2)."""
        store = self.store()
        db = store._connection()
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], 2)

    def test_committed_when_returned(self):
        """An insert is visible to another connection once it returns."""
        store = self.store()
        e = event()
        self.put(store, e)
        other = sqlite3.connect(store.path)
        self.addCleanup(other.close)
        self.assertEqual(
            other.execute("SELECT id FROM events").fetchall(), [(e.id,)]
        )

    def test_reload(self):
        """A new Store on the same directory loads what the first stored."""
        store = self.store()
        e = event(severity="critical")
        self.put(store, e)
        store.close()
        again = Store(os.path.dirname(store.path), OutboxConfig())
        self.addCleanup(again.close)
        rows, counts = again.load()
        self.assertEqual([r["id"] for r in rows], [e.id])
        self.assertEqual((counts.pending, counts.held), (1, 1))

    def test_duplicate_stored_once(self):
        """The same event twice (also in one batch) is stored once; another
        event under a used id is a CONFLICT and is not stored."""
        store = self.store()
        e = event(id="door-1")
        outcomes, _, counts = self.put(
            store, e, e, event(id="door-1", kind="other")
        )
        self.assertEqual(outcomes, [ACCEPTED, DUPLICATE, CONFLICT])
        self.assertEqual(self.put(store, e)[0], [DUPLICATE])
        self.assertEqual(store.counts.stored, 1)

    def test_order_and_marks(self):
        """Pending rows come in insertion order; marks move them to history."""
        store = self.store()
        events = [event(id=f"e{i}") for i in range(5)]
        self.put(store, *events)
        self.assertEqual(
            [r["id"] for r in store.pending(3)], ["e0", "e1", "e2"]
        )
        counts = store.mark(["e0", "e1"], [("e2", "HTTP 400")], NOW + 1)
        self.assertEqual(
            (counts.pending, counts.rejected, counts.stored), (2, 1, 5)
        )
        self.assertEqual([r["id"] for r in store.pending(10)], ["e3", "e4"])
        self.assertEqual(counts.oldest_pending, NOW)


class PolicyTests(StoreCase):
    def test_non_critical_refused_when_pending_fills(self):
        """Pending events are never pruned: the next warning is refused, a
        critical one still fits up to the hard cap, then it is refused too."""
        store = self.store(max_events=3, hard_max_events=4)
        outcomes, _, _ = self.put(store, *(event() for _ in range(3)))
        self.assertEqual(outcomes, [ACCEPTED] * 3)
        outcomes, pruned, counts = self.put(
            store,
            event(),
            event(severity="critical"),
            event(severity="critical"),
        )
        self.assertEqual(outcomes, [FULL, ACCEPTED, FULL])
        self.assertEqual((pruned, counts.pending), ([], 4))

    def test_history_pruned_oldest_first(self):
        """Delivered and rejected rows make room, oldest first."""
        store = self.store(max_events=3)
        self.put(store, *(event(id=f"e{i}") for i in range(3)))
        store.mark(["e0", "e1"], [("e2", "bad")], NOW)
        outcomes, pruned, counts = self.put(
            store, event(id="n1"), event(id="n2")
        )
        self.assertEqual(
            (outcomes, pruned), ([ACCEPTED, ACCEPTED], ["e0", "e1"])
        )
        self.assertEqual((counts.stored, counts.rejected), (3, 1))

    def test_unacked_critical_kept(self):
        """A delivered critical event not yet acknowledged is not pruned;
        once acknowledged it is."""
        store = self.store(max_events=2)
        self.put(
            store,
            event(id="crash", severity="critical"),
            event(id="info", severity="info"),
        )
        store.mark(["crash", "info"], [], NOW)
        outcomes, pruned, _ = self.put(store, event(id="n1"))
        self.assertEqual(pruned, ["info"])
        self.assertEqual(self.put(store, event(id="n2"))[0], [FULL])
        found, counts = store.acknowledge("crash", NOW)
        self.assertTrue(found)
        self.assertEqual(counts.held, 1)
        self.assertEqual(
            self.put(store, event(id="n2"))[:2], ([ACCEPTED], ["crash"])
        )
        self.assertEqual(store.acknowledge("nope", NOW)[0], False)

    def test_bytes_bound(self):
        """max_bytes bounds the stored bytes the same way."""
        store = self.store(
            max_bytes=2048, hard_max_bytes=3072, max_event_bytes=1024
        )
        big = '{"x":"' + "y" * 800 + '"}'
        outcomes, _, counts = self.put(
            store,
            event(data=big),
            event(data=big),
            event(data=big),
            event(data=big, severity="critical"),
        )
        self.assertEqual(outcomes, [ACCEPTED, ACCEPTED, FULL, ACCEPTED])
        self.assertGreater(counts.stored_bytes, 2048)


class FaultTests(StoreCase):
    def test_cannot_create(self):
        """A state dir that cannot be created (a file is in the way) makes
        load fail with StoreUnavailable, and later calls say why."""
        blocker = os.path.abspath(self.mktemp())
        open(blocker, "w").close()
        store = Store(os.path.join(blocker, "state"), OutboxConfig())
        exc = self.assertRaises(StoreUnavailable, store.load)
        self.assertIn("cannot open", str(exc))
        self.assertRaises(StoreUnavailable, store.insert, [event()], NOW)
        self.assertRaises(StoreUnavailable, store.pending, 10)

    def test_one_process_per_outbox(self):
        """A second store on the same directory is refused while the first
        is open (two senders would mix the order), and may open after."""
        store = self.store()
        other = Store(os.path.dirname(store.path), OutboxConfig())
        exc = self.assertRaises(StoreUnavailable, other.load)
        self.assertIn("another process uses the outbox", str(exc))
        store.close()
        other.load()
        other.close()

    def test_disk_full_rolls_back(self):
        """SQLITE_FULL in the middle of a batch rolls the whole batch back."""
        store = self.store()
        self.put(store, event(id="first"))
        db = store._connection()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        big = '{"x":"' + "y" * 60000 + '"}'
        exc = self.assertRaises(
            StoreUnavailable,
            store.insert,
            [event(id="small"), event(data=big)],
            NOW,
        )
        self.assertIn("full", str(exc))
        self.assertEqual([r["id"] for r in store.pending(10)], ["first"])

    def test_read_only_dir(self):
        """A read-only state dir cannot hold a new database."""
        if os.geteuid() == 0:
            raise SkipTest("root writes to read-only directories")
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        os.chmod(directory, stat.S_IRUSR | stat.S_IXUSR)
        self.addCleanup(os.chmod, directory, stat.S_IRWXU)
        self.assertRaises(
            StoreUnavailable, Store(directory, OutboxConfig()).load
        )
