"""`busgw outbox`: the pending (or all) events, read-only, beside a writer."""

import contextlib
import io
import json
import os

from twisted.trial.unittest import SynchronousTestCase

from busd.bus.store import Store
from busd.cli import main
from busd.config._bus import OutboxConfig
from tests.bus._events_support import NOW, bus_block, event, write_key


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


class OutboxCommandTests(SynchronousTestCase):
    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        key_path, _ = write_key(self.dir)
        self.state = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "busgw.json")
        with open(self.config, "w") as handle:
            raw = {
                "version": 3,
                "extra_config": {"busgw/bus": bus_block(self.state, key_path)},
            }
            json.dump(raw, handle)

    def fill(self):
        """A store still open (as a running gateway's) with three events."""
        store = Store(self.state, OutboxConfig())
        store.load()
        self.addCleanup(store.close)
        store.insert(
            [event(id="a"), event(id="b", kind="crash"), event(id="c")], NOW
        )
        store.mark(["a"], [("c", "HTTP 422: bad")], NOW + 5)
        store.note_failure("b", "HTTP 503")
        return store

    def test_pending(self):
        """By default only pending events are listed, with attempts and the
        last error, while the writer keeps the database open."""
        self.fill()
        code, out, _ = run(["outbox", "-c", self.config])
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertEqual(len(lines), 2)
        self.assertIn("pending", lines[0])
        self.assertIn(" b ", lines[0])
        self.assertIn("attempts=1 error='HTTP 503'", lines[0])
        self.assertTrue(lines[1].startswith("1 pending ("))

    def test_all_as_json(self):
        """--all --json gives every kept event with its state and times."""
        self.fill()
        code, out, _ = run(["outbox", "-c", self.config, "--all", "--json"])
        self.assertEqual(code, 0)
        events = json.loads(out)["events"]
        self.assertEqual(
            [(e["id"], e["state"]) for e in events],
            [("a", "delivered"), ("b", "pending"), ("c", "rejected")],
        )
        self.assertEqual(events[2]["error"], "HTTP 422: bad")
        self.assertEqual(events[0]["delivered_at"], "2025-06-15T15:06:45.000Z")

    def test_no_database(self):
        """Without a database nothing is created and the exit status is 1."""
        code, _, err = run(["outbox", "-c", self.config])
        self.assertEqual(code, 1)
        self.assertIn("no outbox at", err)
        self.assertFalse(os.path.exists(self.state))

    def test_no_bus(self):
        """A config without busgw/bus is an error (exit 1)."""
        with open(self.config, "w") as handle:
            json.dump({"version": 3}, handle)
        code, _, err = run(["outbox", "-c", self.config])
        self.assertEqual(code, 1)
        self.assertIn("has no busgw/bus block", err)
