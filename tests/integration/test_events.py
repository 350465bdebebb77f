"""The event outbox over real sockets, in-process: the central down then
back, a broken state dir, bad events, acknowledgements."""

import os
import random

from twisted.internet import reactor
from twisted.internet.defer import (
    DeferredSemaphore,
    gatherResults,
    inlineCallbacks,
)
from twisted.trial.unittest import SkipTest, TestCase

from busd.config.load import parse_config
from busd.service import build_service
from tests.bus._events_support import write_key
from tests.integration._events import (
    Central,
    bus_config,
    event_body,
    free_port,
    listen_on,
    logged,
    post_event,
)
from tests.integration._util import LOOPBACK, TrackingSite, client


class EventsCase(TestCase):
    timeout = 30

    @inlineCallbacks
    def gateway(self, state_dir=None, **events):
        """Start a gateway whose central is down; (base url, events role)."""
        self.dir = os.path.abspath(self.mktemp())
        key_path, _ = write_key(self.dir)
        self.central = Central(key_path)
        self.central_port = yield free_port()
        raw = bus_config(
            state_dir or os.path.join(self.dir, "state"),
            key_path,
            self.central_port,
            **events,
        )
        svc = build_service(
            parse_config(raw, environ={}).config,
            reactor,
            listen=[LOOPBACK],
            rng=random.Random(0),
            site_class=TrackingSite,
        )
        svc.startService()
        self.svc = svc
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        self.addCleanup(svc.stopService)
        self.addCleanup(http.factory.close_all)
        self.http = client(self)
        return f"http://127.0.0.1:{port.getHost().port}", svc.getServiceNamed(
            "events"
        )


class OutageTests(EventsCase):
    @inlineCallbacks
    def test_central_down_then_back(self):
        """Events accepted while the central is unreachable all arrive once
        it is back: once per id, in the order they were accepted."""
        failed = logged(self, "central unreachable")
        base, role = yield self.gateway()
        ids = [f"e{i:03}" for i in range(60)]
        for event_id in ids:
            code, body = yield post_event(self.http, base, event_body(event_id))
            self.assertEqual((code, body), (202, {"id": event_id}))
        yield failed
        self.assertEqual(role.pressure()["pending"], 60)
        yield listen_on(self, self.central_port, self.central)
        yield self.central.when(60)
        self.assertEqual([i for i, _ in self.central.arrivals], ids)
        self.assertEqual(self.central.deliveries, 60)
        seqs = [s for _, s in self.central.arrivals]
        self.assertEqual(seqs, sorted(seqs))

    @inlineCallbacks
    def test_concurrent_posts_in_order(self):
        """Events posted by several devices at once are each stored (group
        commit) and delivered in the order the outbox stored them."""
        base, role = yield self.gateway()
        yield listen_on(self, self.central_port, self.central)
        sem = DeferredSemaphore(8)
        results = yield gatherResults(
            [
                sem.run(post_event, self.http, base, event_body())
                for _ in range(80)
            ]
        )
        self.assertEqual({code for code, _ in results}, {202})
        yield self.central.when(80)
        seqs = [s for _, s in self.central.arrivals]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(
            {i for i, _ in self.central.arrivals}, {b["id"] for _, b in results}
        )


class FaultTests(EventsCase):
    @inlineCallbacks
    def test_unusable_state_dir(self):
        """A state dir that cannot be created gets 503, never 202, and the
        gateway keeps serving."""
        blocker = os.path.abspath(self.mktemp())
        open(blocker, "w").close()
        base, role = yield self.gateway(
            state_dir=os.path.join(blocker, "state")
        )
        for _ in range(2):
            code, body = yield post_event(self.http, base, event_body())
            self.assertEqual(
                (code, body),
                (503, {"error": "outbox_unavailable", "status": 503}),
            )
        self.assertEqual(role.pressure()["level"], "critical")

    @inlineCallbacks
    def test_read_only_state_dir(self):
        """A read-only state dir gets 503, not 202."""
        if os.geteuid() == 0:
            raise SkipTest("root writes to read-only directories")
        state = os.path.abspath(self.mktemp())
        os.mkdir(state, 0o500)
        self.addCleanup(os.chmod, state, 0o700)
        base, _ = yield self.gateway(state_dir=state)
        code, _ = yield post_event(self.http, base, event_body())
        self.assertEqual(code, 503)

    @inlineCallbacks
    def test_bad_events(self):
        """Malformed, oversized and wrongly typed events get 400 and why."""
        base, role = yield self.gateway()
        cases = [
            (b"{", "invalid JSON at line 1 column 2"),
            (event_body(data={"blob": "x" * 70000}), "event too large"),
            (
                event_body(severity=3),
                "severity: expected a string, got a number",
            ),
            (
                event_body(occurred_at="now"),
                "occurred_at: expected an RFC 3339 time",
            ),
        ]
        for raw, reason in cases:
            code, body = yield post_event(self.http, base, raw)
            self.assertEqual(code, 400)
            self.assertIn(reason, body["error"])
        self.assertEqual(role.pressure()["stored"], 0)

    @inlineCallbacks
    def test_reload_keeps_outbox(self):
        """After a config reload the same outbox takes events (the role
        outlives generations; its route is added to the new one)."""
        base, role = yield self.gateway()
        code, _ = yield post_event(self.http, base, event_body("before"))
        self.assertEqual(code, 202)
        self.svc.reload(self.svc.config)
        code, _ = yield post_event(self.http, base, event_body("after"))
        self.assertEqual(code, 202)
        self.assertEqual(role.pressure()["stored"], 2)
