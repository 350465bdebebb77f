"""The fleet poller on a task.Clock with fake buses: schedule and jitter,
the concurrency bound, timeouts, backoff, a loop no failure stops, state
changes published, reloads and a clean stop."""

from __future__ import annotations

import random
from typing import Any, List

import attrs
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from busd.central.poller import Gate, Poller, make_part
from busd.config._central import BusEntry
from tests.central._pollfakes import (
    HEALTH_CRITICAL,
    FakeRole,
    FakeTokens,
    Raise,
    fleet_config,
    url,
)


class PollerCase(SynchronousTestCase):
    def make(self, ids: List[str], serve: bool = True, **poll: Any) -> Poller:
        self.role = FakeRole(fleet_config(ids, **poll))
        self.client = self.role.client
        self.clock = self.role.clock
        if serve:
            for bus_id in ids:
                self.client.serve(bus_id)
        self.poller = Poller(self.role, rng=random.Random(7))
        self.addCleanup(self.check_clean)
        return self.poller

    def check_clean(self) -> None:
        self.poller.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def due(self) -> List[float]:
        """When each pending bus round is due, relative to now."""
        now = self.clock.seconds()
        return sorted(
            c.getTime() - now
            for c in self.clock.getDelayedCalls()
            if c.func == self.poller._due
        )

    def urls(self) -> List[str]:
        return [c.url for c in self.client.calls]


class ScheduleTests(PollerCase):
    def test_make_part_sets_state(self) -> None:
        """make_part returns the poller and publishes its FleetState as role.state."""
        role = FakeRole(fleet_config(["a"]))
        part = make_part(role)
        self.assertIs(role.state, part.state)
        self.assertEqual(role.state.ids(), ["a"])

    def test_first_round_spread(self) -> None:
        """The first rounds of 200 buses start at distinct offsets within one interval."""
        self.make([f"bus-{i:03}" for i in range(200)], interval=5.0)
        self.poller.start()
        due = self.due()
        self.assertEqual(len(due), 200)
        self.assertTrue(all(0.0 <= d <= 5.0 for d in due))
        self.assertEqual(len(set(due)), 200)
        # Spread, not bunched: each fifth of the interval gets some.
        fifths = {int(d // 1.0) for d in due}
        self.assertTrue({0, 1, 2, 3, 4} <= fifths)

    def test_next_round_jitter(self) -> None:
        """After a good round the next starts interval x (1 +- jitter/2) later: interval on average."""
        self.make(["a"], interval=10.0, jitter=0.2)
        self.poller.start()
        delays = []
        for _ in range(40):
            self.clock.advance(self.due()[0])
            delays.append(self.due()[0])
        self.assertEqual(len(self.client.calls), 80)  # health + status each
        self.assertTrue(all(9.0 <= d <= 11.0 for d in delays), delays)
        mean = sum(delays) / len(delays)
        self.assertLess(abs(mean - 10.0), 0.5, mean)  # not biased late
        self.assertGreater(len(set(delays)), 30)
        self.assertGreater(max(delays) - min(delays), 1.0)

    def test_round_requests(self) -> None:
        """A round GETs the health path and every endpoint, with the bus's token."""
        self.make(["a"])
        self.role.tokens = FakeTokens()
        self.poller.start()
        self.clock.advance(self.due()[0])
        self.assertEqual(
            self.urls(), [url("a") + "/health", url("a") + "/status"]
        )
        for call in self.client.calls:
            self.assertEqual(
                call.headers.getRawHeaders(b"Authorization"),
                [b"Bearer token-for-a"],
            )

    def test_no_token_without_signing(self) -> None:
        """Without signing (role.tokens None) no Authorization header is sent."""
        self.make(["a"])
        self.poller.start()
        self.clock.advance(self.due()[0])
        self.assertIsNone(
            self.client.calls[0].headers.getRawHeaders(b"Authorization")
        )

    def test_concurrency_bound(self) -> None:
        """Never more than `concurrency` buses in flight; waiting buses get their turn in order."""
        ids = [f"bus-{i:02}" for i in range(12)]
        self.make(ids, serve=False, concurrency=3, interval=1.0, timeout=100.0)
        self.poller.start()
        self.clock.advance(1.0)  # every bus is due
        in_flight = {c.url.split("/")[2] for c in self.client.pending}
        self.assertEqual(len(in_flight), 3)
        served = []
        while self.client.pending:
            first = self.client.pending[0]
            bus = first.url.split("/")[2]
            for call in [c for c in self.client.pending if bus in c.url]:
                call.deferred.errback(ConnectionRefusedError())
            served.append(bus)
            buses = {c.url.split("/")[2] for c in self.client.pending}
            self.assertLessEqual(len(buses), 3)
        self.assertEqual(sorted(served), sorted(url(i)[7:] for i in ids))

    def test_long_queue_of_quick_failures(self) -> None:
        """400 buses queued behind one slot that all fail at once neither recurse nor starve."""
        ids = ["hung"] + [f"bus-{i:04}" for i in range(400)]
        self.make(ids, serve=False, concurrency=1, interval=1.0, timeout=5.0)
        for bus_id in ids[1:]:
            self.client.refuse(bus_id)
        self.poller.start()
        self.clock.advance(1.0)
        self.assertEqual(self.poller._gate.active, 1)
        self.assertGreater(len(self.poller._gate._waiting), 0)
        self.clock.advance(5.0)  # the hung bus times out: the queue drains
        polled = {c.url.split("/")[2] for c in self.client.calls}
        self.assertEqual(len(polled), 401)
        self.poller.stop()
        self.assertEqual(self.poller._gate.active, 0)

    def test_gate_fifo_and_cancel(self) -> None:
        """The gate admits waiters in arrival order; a cancelled waiter leaves the queue."""
        gate = Gate(1)
        order: List[str] = []
        self.successResultOf(gate.acquire())
        waits = {n: gate.acquire() for n in "abc"}
        for name, d in waits.items():
            d.addCallback(lambda _, n=name: order.append(n))
        waits["b"].cancel()
        self.failureResultOf(waits["b"])
        gate.release()
        gate.release()
        self.assertEqual(order, ["a", "c"])
        gate.set_limit(3)
        self.assertEqual(gate.active, 1)


class FailureTests(PollerCase):
    def test_timeout(self) -> None:
        """A bus that hangs gets 'no answer within' after poll.timeout; its requests are cancelled."""
        self.make(["a"], serve=False, timeout=2.0, interval=5.0)
        self.poller.start()
        self.clock.advance(self.due()[0])
        self.assertEqual(len(self.client.pending), 2)
        self.clock.advance(2.0)
        self.assertTrue(all(c.cancelled for c in self.client.calls))
        summary = self.role.state.summary("a")
        self.assertEqual(summary["state"], "offline")
        self.assertIn("no answer within 2s", summary["last_error"])

    def test_backoff_capped(self) -> None:
        """A bus that keeps failing waits interval*2**n, capped at backoff_max, then interval again."""
        self.make(["a"], interval=1.0, jitter=0.0, backoff_max=10.0)
        self.client.refuse("a")
        self.poller.start()
        self.clock.advance(self.due()[0])
        delays = []
        for _ in range(6):
            delays.append(self.due()[0])
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [2.0, 4.0, 8.0, 10.0, 10.0, 10.0])
        self.client.serve("a")
        self.clock.advance(self.due()[0])
        self.assertEqual(self.due(), [1.0])

    def test_backoff_does_not_delay_others(self) -> None:
        """A dead bus backing off leaves a healthy bus on its own schedule."""
        self.make(["dead", "live"], interval=1.0, jitter=0.0, backoff_max=30.0)
        self.client.refuse("dead")
        self.poller.start()
        for _ in range(20):
            self.clock.advance(0.5)
        live = [c for c in self.client.calls if "live" in c.url]
        dead = [c for c in self.client.calls if "dead" in c.url]
        self.assertGreaterEqual(len(live), 2 * 9)
        self.assertLessEqual(len(dead), 2 * 4)

    def test_failure_does_not_stop_loop(self) -> None:
        """A client that raises is logged, recorded as the bus's error, and the bus polled again."""
        self.make(["a", "b"], interval=1.0)
        self.client.routes[url("a") + "/health"] = Raise(RuntimeError("boom"))
        self.poller.start()
        self.clock.advance(1.0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.role.state.summary("a")["last_error"], "boom")
        self.assertEqual(self.role.state.summary("b")["state"], "online")
        self.client.serve("a")
        for _ in range(3):
            self.clock.advance(1.0)
        self.assertEqual(self.role.state.summary("a")["state"], "online")
        self.flushLoggedErrors(RuntimeError)

    def test_bad_answers(self) -> None:
        """Non-2xx, non-JSON and oversized answers are errors; a 503 health JSON is an answer."""
        self.make(["a"], max_bytes=400, interval=1.0)
        self.client.serve("a", health=(503, HEALTH_CRITICAL), status=(502, {}))
        self.poller.start()
        self.clock.advance(1.0)
        s = self.role.state.summary("a")
        self.assertEqual((s["state"], s["level"]), ("online", "critical"))
        self.assertEqual(s["last_error"], "status: answered 502")
        self.client.serve(
            "a", health=(200, b"<html>"), status=(200, {"x": "y" * 500})
        )
        self.clock.advance(self.due()[0])
        s = self.role.state.summary("a")
        self.assertIn("health: the answer is not JSON", s["last_error"])
        self.assertIn("status: body", s["last_error"])
        self.assertEqual(self.role.state.failures("a"), 1)


class StateTests(PollerCase):
    def test_transitions_published(self) -> None:
        """A bus that stops answering goes online -> stale -> offline at the thresholds, each published once."""
        self.make(["a"], interval=1.0, jitter=0.0, timeout=0.5,
                  stale_after=3.0, offline_after=6.0, backoff_max=1.0)  # fmt: skip
        observer = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        self.poller.start()
        self.clock.advance(self.due()[0])
        seen = self.clock.seconds()
        self.assertEqual(self.role.hub.states("a"), ["online"])
        self.client.hang("a")
        self.clock.advance(2.9)
        self.assertEqual(self.role.state.state("a"), "online")
        self.clock.advance(seen + 3.0 - self.clock.seconds())
        self.assertEqual(self.role.state.state("a"), "stale")
        self.clock.advance(1.0)  # the sweep runs at least every second
        self.assertEqual(self.role.hub.states("a"), ["online", "stale"])
        self.clock.advance(seen + 6.0 - self.clock.seconds())
        self.assertEqual(self.role.state.state("a"), "offline")
        self.clock.advance(5.0)
        self.assertEqual(
            self.role.hub.states("a"), ["online", "stale", "offline"]
        )
        moves = [
            e["new"] for e in observer if e.get("bus_id") == "a" and "new" in e
        ]
        self.assertEqual(moves, ["online", "stale", "offline"])

    def test_values_and_level_published(self) -> None:
        """A change of level or of a key value is published with the summary."""
        self.make(["a"], interval=1.0, jitter=0.0,
                  values=(("fuel", "status.vehicle.fuel.level_pct"),))  # fmt: skip
        self.poller.start()
        self.clock.advance(1.0)
        self.clock.advance(self.due()[0])  # nothing changed: nothing sent
        self.assertEqual(len(self.role.hub.published), 1)
        self.assertEqual(self.role.hub.published[0][1]["values"], {"fuel": 61})
        self.client.serve("a", health=(503, HEALTH_CRITICAL),
                          status=(200, {"vehicle": {"fuel": {"level_pct": 60}}}))  # fmt: skip
        self.clock.advance(self.due()[0])
        kind, last = self.role.hub.published[-1]
        self.assertEqual(
            (kind, last["level"], last["values"]),
            ("bus", "critical", {"fuel": 60}),
        )
        self.assertEqual([f["name"] for f in last["failing"]], ["engine"])

    def test_no_hub(self) -> None:
        """Without a hub the poller still polls and tracks states."""
        self.make(["a"], interval=1.0)
        self.role.hub = None
        self.poller.start()
        self.clock.advance(3.0)
        self.assertEqual(self.role.state.state("a"), "online")


class LifecycleTests(PollerCase):
    def test_fleet_changed(self) -> None:
        """A reload schedules new buses, cancels removed ones (even in flight) and keeps kept ones' history."""
        self.make(["a", "b"], serve=False, interval=2.0, timeout=100.0)
        self.client.serve("a")
        self.poller.start()
        self.clock.advance(2.0)
        self.assertEqual(self.role.state.state("a"), "online")
        b_calls = [c for c in self.client.pending if "b." in c.url]
        self.assertEqual(len(b_calls), 2)
        moved = BusEntry(id="a", url="http://a.moved:1")
        config = fleet_config(["c"], interval=2.0, timeout=100.0)
        self.role.config = attrs.evolve(config, fleet=(moved,) + config.fleet)
        self.client.serve("c")
        self.client.routes["http://a.moved:1/health"] = (200, {"status": "ok"})
        self.client.routes["http://a.moved:1/status"] = (200, {})
        self.poller.fleet_changed()
        self.assertTrue(all(c.cancelled for c in b_calls))
        self.assertEqual(self.role.state.ids(), ["a", "c"])
        self.assertEqual(self.role.state.state("a"), "online")
        self.assertEqual(self.role.state.state("c"), "unknown")
        self.assertEqual(len(self.due()), 2)  # a's next round, c's first
        self.assertTrue(all(d <= 2.0 * 1.2 for d in self.due()))
        self.clock.advance(2.4)
        self.assertEqual(self.role.state.state("c"), "online")
        self.assertIn("http://a.moved:1/health", self.urls())
        self.assertFalse(
            any("b." in u for u in self.urls()[len(b_calls) + 2 :])
        )

    def test_stop_cancels_everything(self) -> None:
        """stop() cancels in-flight requests, waiting buses, the sweep and every scheduled round."""
        self.make(["a", "b", "c"], serve=False, concurrency=2, timeout=100.0)
        self.poller.start()
        self.clock.advance(5.0)
        in_flight = list(self.client.pending)
        self.assertEqual(len(in_flight), 4)  # two buses, two requests each
        self.poller.stop()
        self.assertTrue(all(c.cancelled for c in in_flight))
        self.assertEqual(
            len(self.client.calls), 4
        )  # the waiting bus never started
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.poller._gate.active, 0)
        self.poller.start()  # restartable
        self.assertEqual(len(self.due()), 3)
