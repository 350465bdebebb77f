"""Webhooks with a deterministic clock: success, backoff, give up, order,
restart, stop."""

from __future__ import annotations

import json
import os
import random
from typing import Any, List

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.internet.testing import EventLoggingObserver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone

from busd.config._central import BusEntry, WebhookConfig
from tests.central._ingest_support import (
    BUS,
    NOW,
    Central,
    bus_token,
    central_config,
    event,
    write_bus_key,
)

HOOK = "http://hooks.example:9000/in"


class _Producer:
    def stopProducing(self) -> None:
        pass


class Response:
    def __init__(self, code: int):
        self.code = code
        self.length = 2

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(_Producer())
        protocol.dataReceived(b"{}")
        protocol.connectionLost(Failure(ResponseDone()))


@attrs.define
class Call:
    url: str
    headers: Any
    body: bytes
    deferred: "Deferred[Any]"
    cancelled: bool = False

    @property
    def event(self) -> Any:
        return json.loads(self.body)

    def answer(self, code: int) -> None:
        self.deferred.callback(Response(code))


class Receiver:
    """An HTTP client whose every request waits for the test to answer."""

    def __init__(self) -> None:
        self.calls: List[Call] = []

    def request(self, method: str, url: str, **kw: Any) -> "Deferred[Any]":
        assert method == "POST"
        call: Call

        def cancel(_: Any) -> None:
            call.cancelled = True

        call = Call(url, kw["headers"], kw["data"], Deferred(cancel))
        self.calls.append(call)
        return call.deferred

    @property
    def pending(self) -> List[Call]:
        return [c for c in self.calls if not c.deferred.called]


class WebhookCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.key, jwks = write_bus_key(os.path.join(self.dir, "keys"))
        self.fleet = (BusEntry(id=BUS, url="http://b:8080", key=jwks),)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.client = Receiver()
        self.start()

    def start(self, **hook: Any) -> None:
        hook.setdefault("retry_initial", 1.0)
        hook.setdefault("retry_max", 8.0)
        hook.setdefault("give_up_after", 100.0)
        hook.setdefault("headers", (("X-Secret", "s3"),))
        hook.setdefault("timeout", 5.0)
        self.config = central_config(
            os.path.join(self.dir, "state"),
            self.fleet,
            webhooks=(WebhookConfig(url=HOOK, **hook),),
        )
        self.central = Central(
            self.config, self.clock, self.client, rng=random.Random(4)
        )

    def stop(self) -> None:
        self.successResultOf(self.central.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def post(self, event_id: str, **over: Any) -> int:
        token = bus_token(self.key, now=self.clock.seconds())
        d = self.central.post(event(event_id, **over), token)
        return self.successResultOf(d)[0]


class DeliveryTests(WebhookCase):
    def test_success(self) -> None:
        """A stored event is POSTed once with its JSON, the idempotency key
        and the configured headers; a 2xx ends it."""
        self.assertEqual(self.post("a"), 201)
        [call] = self.client.pending
        self.assertEqual(call.url, HOOK)
        self.assertEqual(call.event["id"], "a")
        self.assertEqual(call.event["bus"], BUS)
        headers = call.headers
        self.assertEqual(
            headers.getRawHeaders(b"idempotency-key"), [f"{BUS}:a".encode()]
        )
        self.assertEqual(
            headers.getRawHeaders(b"content-type"), [b"application/json"]
        )
        self.assertEqual(headers.getRawHeaders(b"x-secret"), [b"s3"])
        call.answer(204)
        self.clock.advance(1000)
        self.assertEqual(len(self.client.calls), 1)
        self.stop()

    def test_in_order_one_at_a_time(self) -> None:
        """Events go one at a time, in the order they were stored."""
        for event_id in ("a", "b", "c"):
            self.post(event_id)
        self.assertEqual([c.event["id"] for c in self.client.pending], ["a"])
        self.client.pending[0].answer(200)
        self.assertEqual([c.event["id"] for c in self.client.pending], ["b"])
        self.client.pending[0].answer(201)
        self.client.pending[0].answer(200)
        self.assertEqual([c.event["id"] for c in self.client.calls], ["a", "b", "c"])
        self.stop()

    def test_filters(self) -> None:
        """kinds and min_severity choose the events a webhook gets."""
        self.stop()
        self.client = Receiver()
        self.start(kinds=("door_fault",), min_severity="critical")
        self.post("info", severity="info")
        self.post("tyre", kind="tyre", severity="critical")
        self.post("door", severity="critical")
        self.assertEqual([c.event["id"] for c in self.client.calls], ["door"])
        self.client.pending[0].answer(200)
        self.stop()

    def test_backoff_with_full_jitter(self) -> None:
        """The n-th failure is retried after uniform(0, min(retry_max,
        retry_initial * 2**(n-1))), not a moment earlier."""
        self.post("a")
        rng = random.Random(4)  # the same draws as the part's
        for attempt in range(6):
            [call] = self.client.pending
            call.answer(503)
            wait = rng.uniform(0, min(8.0, 2.0**attempt))
            self.clock.advance(max(0.0, wait - 0.01))
            self.assertEqual(self.client.pending, [], attempt)
            self.clock.advance(0.02)
        self.assertEqual(len(self.client.pending), 1)
        self.client.pending[0].answer(200)
        self.stop()

    def test_no_answer_times_out_and_retries(self) -> None:
        """A receiver that never answers is cut at the timeout and retried."""
        self.post("a")
        first = self.client.pending[0]
        self.clock.advance(5)
        self.assertTrue(first.cancelled)
        self.clock.advance(2)  # beyond the first backoff cap (1s)
        self.assertEqual(len(self.client.calls), 2)
        self.client.pending[0].answer(200)
        self.stop()

    def test_refused_connection_retried(self) -> None:
        """A connection error is retried like a bad status."""
        self.post("a")
        self.client.pending[0].deferred.errback(ConnectionRefusedError())
        self.clock.advance(1)
        self.assertEqual(len(self.client.calls), 2)
        self.client.pending[0].answer(200)
        self.stop()

    def test_give_up(self) -> None:
        """After give_up_after the delivery is dropped, logged as an error,
        and the next event goes."""
        self.logged = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        self.post("a")
        self.post("b")
        while self.clock.seconds() < NOW + 100:
            for call in self.client.pending:
                call.answer(500)
            self.clock.advance(0.5)
        for call in self.client.pending:
            call.answer(500)
        [gave_up] = [
            e for e in self.logged if e["log_level"] == LogLevel.error
        ]
        self.assertIn("gave up", gave_up["log_format"])
        self.assertEqual(gave_up["event_id"], "a")
        self.assertEqual(self.client.pending[0].event["id"], "b")
        attempts_a = [c for c in self.client.calls if c.event["id"] == "a"]
        self.assertGreater(len(attempts_a), 5)
        self.client.pending[0].answer(200)
        self.stop()

    def test_resume_after_restart(self) -> None:
        """A delivery pending at stop is sent again by the next start."""
        self.post("a")
        first = self.client.pending[0]
        self.stop()
        self.assertTrue(first.cancelled)
        self.start()
        [again] = self.client.pending
        self.assertEqual(again.event["id"], "a")
        again.answer(200)
        self.stop()
        self.start()
        self.assertEqual(self.client.pending, [])
        self.stop()

    def test_stop_cancels_retry_timer(self) -> None:
        """stop() leaves no DelayedCall behind while a retry waits."""
        self.post("a")
        self.client.pending[0].answer(500)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.stop()
