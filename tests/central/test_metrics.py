"""The central's Prometheus series: poll rounds, the poll queue, the fleet
gauges computed at scrape time, events by result, webhook deliveries and
their pending count, stream subscribers, and the wiring from build_roles."""

from __future__ import annotations

import os
import random
import types
from typing import Any, List, Optional

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.central.hub import Hub
from busd.central.metrics import CentralMetrics, event_result
from busd.central.poller import Poller
from busd.config._central import BusEntry, CentralRoleConfig, WebhookConfig
from busd.config.model import GatewayConfig
from busd.metrics import GatewayMetrics
from busd.roles import build_roles
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
from tests.central._pollfakes import FakeRole, fleet_config, response
from tests.central.test_stream import FakeRequest
from tests.central.test_webhooks import Receiver

HOOK = "http://hooks.example:9000/in"


def value(registry: Any, name: str, **labels: str) -> Optional[float]:
    return registry.get_sample_value(name, labels)


class PollMetricsTests(SynchronousTestCase):
    def make(self, ids: List[str], **poll: Any) -> Poller:
        self.registry = GatewayMetrics(process=False).registry
        self.role = FakeRole(fleet_config(ids, **poll))
        self.role.metrics = CentralMetrics(self.registry, self.role)
        self.clock = self.role.clock
        self.client = self.role.client
        self.poller = Poller(self.role, rng=random.Random(7))
        self.role.parts = [self.poller]
        self.addCleanup(self.poller.stop)
        return self.poller

    def v(self, name: str, **labels: str) -> Optional[float]:
        return value(self.registry, name, **labels)

    def test_rounds_by_outcome_and_fleet_gauges(self) -> None:
        """One answered and one refused round count as ok and failed, and
        the scrape counts buses per state and level."""
        self.make(["a", "b", "c"], interval=10.0)
        self.client.serve("a")
        self.client.refuse("b")
        self.client.hang("c")
        self.assertEqual(self.v("busgw_central_buses", state="unknown"), 3)
        self.poller.start()
        self.clock.advance(10.0)  # every first round has started
        self.assertEqual(self.v("busgw_central_poll_rounds_total", outcome="ok"), 1)
        self.assertEqual(
            self.v("busgw_central_poll_rounds_total", outcome="failed"), 1
        )
        self.assertEqual(self.v("busgw_central_polls_in_flight"), 1)  # c
        self.assertEqual(self.v("busgw_central_buses", state="online"), 1)
        self.assertEqual(self.v("busgw_central_buses", state="offline"), 1)
        self.assertEqual(self.v("busgw_central_buses", state="unknown"), 1)
        self.assertEqual(self.v("busgw_central_buses", state="stale"), 0)
        self.assertEqual(self.v("busgw_central_bus_levels", level="ok"), 1)
        self.assertEqual(self.v("busgw_central_bus_levels", level="unknown"), 2)

    def test_state_moves_with_time_at_scrape(self) -> None:
        """A bus seen once turns stale in the gauge by time alone, with no
        round in between."""
        self.make(["a"], interval=100.0, stale_after=5.0, offline_after=50.0)
        self.client.serve("a")
        self.poller.start()
        self.clock.advance(100.0)
        self.assertEqual(self.v("busgw_central_buses", state="online"), 1)
        self.clock.advance(6.0)
        self.assertEqual(self.v("busgw_central_buses", state="online"), 0)
        self.assertEqual(self.v("busgw_central_buses", state="stale"), 1)

    def test_round_duration(self) -> None:
        """A round's duration is from its start to its last answer."""
        self.make(["a"], interval=10.0, timeout=5.0)
        self.client.hang("a")
        self.poller.start()
        self.clock.advance(10.0)
        calls = self.client.pending
        self.assertEqual(len(calls), 2)  # /health and /status
        self.clock.advance(0.3)
        calls[0].deferred.callback(response(200, {"status": "ok", "checks": []}))
        self.clock.advance(0.2)
        calls[1].deferred.callback(response(200, {"x": 1}))
        self.assertEqual(self.v("busgw_central_poll_duration_seconds_count"), 1)
        self.assertAlmostEqual(
            self.v("busgw_central_poll_duration_seconds_sum") or 0, 0.5
        )
        self.assertEqual(
            self.v("busgw_central_poll_duration_seconds_bucket", le="0.5"), 1
        )
        self.assertEqual(
            self.v("busgw_central_poll_duration_seconds_bucket", le="0.25"), 0
        )

    def test_queue_behind_the_concurrency_bound(self) -> None:
        """Due buses beyond poll.concurrency show as waiting, and the time
        each waited for its slot is observed."""
        self.make(["a", "b", "c"], interval=10.0, timeout=5.0, concurrency=1)
        for bus_id in ("a", "b", "c"):
            self.client.hang(bus_id)
        self.poller.start()
        self.clock.advance(10.0)
        self.assertEqual(self.v("busgw_central_polls_in_flight"), 1)
        self.assertEqual(self.v("busgw_central_poll_waiting"), 2)
        self.assertEqual(self.v("busgw_central_poll_queue_seconds_count"), 1)
        self.clock.advance(5.0)  # the first bus's round times out
        self.assertEqual(self.v("busgw_central_poll_waiting"), 1)
        self.assertEqual(
            self.v("busgw_central_poll_rounds_total", outcome="failed"), 1
        )
        self.assertEqual(self.v("busgw_central_poll_queue_seconds_count"), 2)
        # The second waited at least the 5 s the first round held the slot.
        self.assertGreaterEqual(
            self.v("busgw_central_poll_queue_seconds_sum") or 0, 5.0
        )

    def test_stream_subscribers(self) -> None:
        """The hub's open streams are counted when scraped."""
        self.make(["a"])
        self.role.hub = hub = Hub(self.clock)
        self.addCleanup(hub.stop)
        self.assertEqual(self.v("busgw_central_stream_subscribers"), 0)
        first = FakeRequest()
        hub.subscribe(first)
        hub.subscribe(FakeRequest())
        self.assertEqual(self.v("busgw_central_stream_subscribers"), 2)
        first.lose()
        self.assertEqual(self.v("busgw_central_stream_subscribers"), 1)

    def test_a_broken_part_leaves_the_scrape_answering(self) -> None:
        """A fleet gauge that cannot be read is logged and left out; the
        counters are still rendered."""
        self.make(["a"])
        self.role.state = object()  # no counts()
        self.assertIsNone(self.v("busgw_central_buses", state="unknown"))
        self.assertEqual(
            self.v("busgw_central_poll_rounds_total", outcome="ok"), 0
        )
        self.assertEqual(len(self.flushLoggedErrors(AttributeError)), 1)


class MeteredCentral(Central):
    """Central (the events part over SQLite, served by StubTreq) with the
    central's series on a registry of its own."""

    def __init__(self, config: Any, clock: Clock, client: Any = None):
        from busd.central.ingest import EventsPart

        self.clock = clock
        self.hub = None
        self.registry = GatewayMetrics(process=False).registry
        self.role = types.SimpleNamespace(
            config=config, clock=clock, client=client, hub=None,
            reactor=None, events=None, parts=[],
        )  # fmt: skip
        self.role.metrics = CentralMetrics(self.registry, self.role)
        self.part = EventsPart(self.role, run=sync_run, rng=random.Random(4))
        self.part.start()
        self.app = GatewayApp(GatewayConfig(central=config), client, clock)
        self.part.install(self.app)
        self.http = StubTreq(self.app.resource())


class EventMetricsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.key, jwks = write_bus_key(os.path.join(self.dir, "keys"))
        self.fleet = (
            BusEntry(id=BUS, url="http://b:8080", key=jwks),
            BusEntry(id="keyless", url="http://k:8080"),
        )
        self.clock = Clock()
        self.clock.advance(NOW)
        self.client = Receiver()

    def start(self, **hook: Any) -> MeteredCentral:
        hook.setdefault("retry_initial", 1.0)
        hook.setdefault("retry_max", 1.0)
        hook.setdefault("give_up_after", 100.0)
        config = central_config(
            os.path.join(self.dir, "state"),
            self.fleet,
            webhooks=(WebhookConfig(url=HOOK, **hook),),
        )
        self.central = MeteredCentral(config, self.clock, self.client)
        return self.central

    def stop(self) -> None:
        self.successResultOf(self.central.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def post(self, body: Any, token: Optional[str] = "good") -> int:
        if token == "good":
            token = bus_token(self.key, now=self.clock.seconds())
        return int(self.successResultOf(self.central.post(body, token))[0])

    def v(self, name: str, **labels: str) -> Optional[float]:
        return value(self.central.registry, name, **labels)

    def test_events_by_result(self) -> None:
        """Each answer to POST /events counts under its result."""
        self.start()
        self.assertEqual(self.v("busgw_central_events_total", result="stored"), 0)
        self.assertEqual(self.post(event("a")), 201)
        self.assertEqual(self.post(event("a")), 200)
        self.assertEqual(self.post(event("a", kind="other")), 409)
        self.assertEqual(self.post(event("b", severity="loud")), 400)
        self.assertEqual(self.post(event("c"), token=None), 401)
        other = bus_token(self.key, "keyless", now=self.clock.seconds())
        self.assertEqual(self.post(event("d", bus="keyless"), other), 403)
        counts = {
            r: self.v("busgw_central_events_total", result=r)
            for r in ("stored", "duplicate", "conflict", "rejected",
                      "unauthorized", "unavailable")
        }  # fmt: skip
        self.assertEqual(
            counts,
            {"stored": 1, "duplicate": 1, "conflict": 1, "rejected": 1,
             "unauthorized": 2, "unavailable": 0},
        )  # fmt: skip
        for call in self.client.pending:
            call.answer(200)
        self.stop()

    def test_event_result_mapping(self) -> None:
        """Statuses map to bounded results; a failed handler is unavailable."""
        self.assertEqual(
            [event_result(s) for s in (201, 200, 409, 400, 413, 422, 401, 403, 503, None)],
            ["stored", "duplicate", "conflict", "rejected", "rejected",
             "rejected", "unauthorized", "unauthorized", "unavailable",
             "unavailable"],
        )  # fmt: skip

    def test_webhook_deliveries_and_pending(self) -> None:
        """A failed attempt counts as retried, a 2xx as delivered, one past
        give_up_after as gave_up; pending follows in memory."""
        self.start(give_up_after=10.0)
        self.post(event("a"))
        self.post(event("b"))
        self.assertEqual(self.v("busgw_central_webhook_pending"), 2)
        self.client.pending[0].answer(503)
        self.assertEqual(
            self.v("busgw_central_webhook_deliveries_total", result="retried"), 1
        )
        self.assertEqual(self.v("busgw_central_webhook_pending"), 2)
        self.clock.advance(1.0)
        self.client.pending[0].answer(204)
        self.assertEqual(
            self.v("busgw_central_webhook_deliveries_total", result="delivered"), 1
        )
        self.assertEqual(self.v("busgw_central_webhook_pending"), 1)
        # b fails until 10 s after it arrived: then it is given up.
        for _ in range(20):
            if not self.client.pending:
                self.clock.advance(1.0)
                continue
            self.client.pending[0].answer(500)
        self.assertEqual(
            self.v("busgw_central_webhook_deliveries_total", result="gave_up"), 1
        )
        self.assertEqual(self.v("busgw_central_webhook_pending"), 0)
        self.stop()

    def test_pending_from_before_a_restart(self) -> None:
        """Deliveries left in the store count as pending when it reopens."""
        self.start()
        self.post(event("a"))
        self.post(event("b"))
        self.stop()
        self.client = Receiver()
        self.start()
        self.assertEqual(self.v("busgw_central_webhook_pending"), 2)
        self.client.pending[0].answer(200)
        self.assertEqual(self.v("busgw_central_webhook_pending"), 1)
        self.client.pending[0].answer(200)
        self.assertEqual(self.v("busgw_central_webhook_pending"), 0)
        self.stop()


class WiringTests(SynchronousTestCase):
    def config(self) -> GatewayConfig:
        state = os.path.abspath(self.mktemp())
        fleet = fleet_config(["a", "b"]).fleet
        return GatewayConfig(
            central=CentralRoleConfig(state_dir=state, fleet=fleet)
        )

    def test_build_roles_registers_on_the_gateway_registry(self) -> None:
        """With the gateway's metrics the central's series are on its registry."""
        metrics = GatewayMetrics(process=False)
        [role] = build_roles(self.config(), Clock(), Clock(), metrics)
        self.assertIsNotNone(getattr(role, "metrics", None))
        self.assertEqual(
            metrics.registry.get_sample_value(
                "busgw_central_buses", {"state": "unknown"}
            ),
            2,
        )
        self.assertIn(b"busgw_central_poll_rounds_total", metrics.render())

    def test_off_without_metrics(self) -> None:
        """Without the gateway's metrics the role and its parts count nothing."""
        [role] = build_roles(self.config(), Clock(), Clock())
        self.assertIsNone(getattr(role, "metrics", "missing"))
        poller = next(p for p in role.parts if isinstance(p, Poller))
        self.assertIsNone(poller._metrics)
