"""The server-sent events hub (busd.central.hub) and the stream part
(busd.central.stream) with a fake twisted.web request and a Clock."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET

from busd.central.hub import Hub, encode
from busd.central.stream import StreamPart, parse_kinds
from busd.errors import GatewayError


class FakeTransport:
    def __init__(self, request: "FakeRequest"):
        self.request = request
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.request.lose()


class FakeRequest:
    """What the hub uses of a twisted.web Request."""

    def __init__(self, args: Optional[Dict[bytes, List[bytes]]] = None):
        self.args = args or {}
        self.headers: Dict[bytes, bytes] = {}
        self.written: List[bytes] = []
        self.finished = False
        self.producer: Any = None
        self.channel = SimpleNamespace(transport=FakeTransport(self))
        self._finish: List[Deferred[None]] = []
        self.fail_writes = False

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def write(self, data: bytes) -> None:
        if self.fail_writes:
            raise RuntimeError("write failed")
        assert not self.finished
        self.written.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming and self.producer is None
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        self._finish.append(d)
        return d

    def finish(self) -> None:
        self.finished = True
        for d in self._finish:
            d.callback(None)

    def lose(self) -> None:
        """The client went away."""
        for d in self._finish:
            d.errback(Failure(ConnectionLost()))
        self._finish = []

    def messages(self) -> List[tuple]:
        """(kind, data) of each message written, comments as (":", None)."""
        out = []
        for block in b"".join(self.written).split(b"\n\n"):
            if block.startswith(b":"):
                out.append((":", None))
            elif block.startswith(b"event: "):
                head, data = block.split(b"\n")
                out.append((head[7:].decode(), json.loads(data[6:])))
        return out


class Counted:
    """An object JSON has no form for: counts how often it is encoded."""

    def __init__(self) -> None:
        self.count = 0

    def __str__(self) -> str:
        self.count += 1
        return "counted"


class EncodeTests(SynchronousTestCase):
    def test_format(self) -> None:
        """A message is its event line and one compact JSON data line."""
        self.assertEqual(
            encode("bus", {"id": "b1", "n": [1, 2]}),
            b'event: bus\ndata: {"id":"b1","n":[1,2]}\n\n',
        )

    def test_line_breaks_stay_escaped(self) -> None:
        """A line break in a value cannot end the data line early."""
        chunk = encode("event", {"text": "a\nb\r\nc", "name": "Zürich"})
        self.assertEqual(chunk.count(b"\n"), 3)
        self.assertIn("Zürich".encode("utf-8"), chunk)

    def test_not_a_number_is_null(self) -> None:
        """NaN and infinities, which JSON cannot hold, become null."""
        chunk = encode("bus", {"values": {"fuel": float("nan"), "v": [float("inf")]}})
        self.assertEqual(chunk, b'event: bus\ndata: {"values":{"fuel":null,"v":[null]}}\n\n')

    def test_bad_kind(self) -> None:
        """A kind that could break the stream's framing is refused."""
        self.assertRaises(ValueError, encode, "bus\ndata: x", {})


class HubTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.snapshot: Any = {"health": {"status": "ok", "summaries": []}}
        self.seen: Any = None
        self.hub = Hub(
            self.clock,
            snapshot=lambda: self.snapshot,
            seen=lambda: self.seen,
            max_backlog=100,
            max_paused=30.0,
            max_subscribers=3,
        )

    def subscribe(self, kinds: Any = None) -> FakeRequest:
        request = FakeRequest()
        self.hub.subscribe(request, kinds)
        return request

    def test_headers_retry_and_snapshot_first(self) -> None:
        """A new stream gets the SSE headers, a retry hint, then the snapshot."""
        request = self.subscribe()
        self.assertEqual(request.headers[b"Content-Type"], b"text/event-stream; charset=utf-8")
        self.assertEqual(request.headers[b"Cache-Control"], b"no-store")
        self.assertEqual(request.headers[b"X-Accel-Buffering"], b"no")
        self.assertTrue(request.written[0].startswith(b"retry: 3000\n\n"))
        self.hub.publish("bus", {"id": "b1"})
        self.assertEqual(
            request.messages(), [("fleet", self.snapshot), ("bus", {"id": "b1"})]
        )

    def test_no_snapshot_without_state(self) -> None:
        """Without fleet state the stream starts with the retry hint alone."""
        self.snapshot = None
        request = self.subscribe()
        self.assertEqual(request.written, [b"retry: 3000\n\n"])

    def test_encoded_once(self) -> None:
        """One publish encodes once, whatever the number of subscribers."""
        requests = [self.subscribe() for _ in range(3)]
        counted = Counted()
        self.hub.publish("bus", {"x": counted})
        self.assertEqual(counted.count, 1)
        self.assertEqual({r.written[-1] for r in requests}, {b'event: bus\ndata: {"x":"counted"}\n\n'})

    def test_nothing_encoded_without_subscribers(self) -> None:
        """With nobody listening a publish costs no encoding."""
        counted = Counted()
        self.hub.publish("bus", {"x": counted})
        self.assertEqual(counted.count, 0)

    def test_kinds_filter(self) -> None:
        """A stream asking for events gets neither the snapshot nor bus messages."""
        request = self.subscribe(frozenset({"event"}))
        self.hub.publish("bus", {"id": "b1"})
        self.hub.publish("event", {"id": "e1"})
        self.assertEqual(request.messages(), [("event", {"id": "e1"})])

    def test_publish_never_raises(self) -> None:
        """A bad kind is logged and dropped; a broken stream does not stop the others."""
        broken, good = self.subscribe(), self.subscribe()
        broken.fail_writes = True
        self.hub.publish("bad kind", {})
        self.hub.publish("bus", {"id": "b1"})
        self.assertEqual(good.messages()[-1], ("bus", {"id": "b1"}))
        self.assertEqual(self.hub.subscribers, {good.producer})
        self.assertEqual(len(self.flushLoggedErrors(ValueError, RuntimeError)), 2)

    def test_paused_backlog_flushed_on_resume(self) -> None:
        """Messages kept while the client is not reading are sent, in order, on resume."""
        request = self.subscribe()
        request.producer.pauseProducing()
        self.hub.publish("bus", {"id": "b1"})
        self.hub.publish("bus", {"id": "b2"})
        self.assertEqual(len(request.messages()), 1)  # the snapshot
        request.producer.resumeProducing()
        self.assertEqual(
            [m[1] for m in request.messages()[1:]], [{"id": "b1"}, {"id": "b2"}]
        )

    def test_starts_paused_on_a_full_connection(self) -> None:
        """On a connection already waiting for its client nothing is written until resume."""
        request = FakeRequest()
        request.channel._waitingForTransport = True
        self.hub.subscribe(request)
        self.assertEqual(request.written, [])
        request.producer.resumeProducing()
        self.assertEqual([m[0] for m in request.messages()], ["fleet"])

    def test_slow_consumer_cut_off(self) -> None:
        """A paused stream whose backlog passes the bound is aborted and forgotten."""
        request = self.subscribe()
        request.producer.pauseProducing()
        for i in range(10):
            self.hub.publish("bus", {"id": "b%d" % i, "pad": "x" * 20})
        self.assertTrue(request.channel.transport.aborted)
        self.assertEqual(self.hub.subscribers, set())
        self.assertEqual(self.hub.cut_count, 1)
        self.assertIsNone(request.producer)

    def test_stalled_consumer_cut_off(self) -> None:
        """A stream paused longer than max_paused is aborted at a heartbeat."""
        request = self.subscribe()
        request.producer.pauseProducing()
        self.clock.advance(15.0)
        self.assertFalse(request.channel.transport.aborted)
        self.clock.advance(15.0)
        self.assertTrue(request.channel.transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_heartbeat(self) -> None:
        """Every 15 s a comment, or the seen message when there is one."""
        request = self.subscribe()
        self.clock.advance(15.0)
        self.assertEqual(request.written[-1], b":\n\n")
        self.seen = {"buses": {"b1": 3.5}}
        self.clock.advance(15.0)
        self.assertEqual(request.messages()[-1], ("seen", self.seen))

    def test_disconnect_removes(self) -> None:
        """A client that leaves is forgotten and the heartbeat stops with the last one."""
        request = self.subscribe()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        request.lose()
        self.assertEqual(self.hub.subscribers, set())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.hub.publish("bus", {"id": "b1"})
        self.assertEqual(len(request.messages()), 1)

    def test_stop_finishes_streams(self) -> None:
        """stop() finishes every stream, cancels the timer and refuses new streams."""
        requests = [self.subscribe() for _ in range(2)]
        self.hub.stop()
        self.assertEqual([r.finished for r in requests], [True, True])
        self.assertEqual([r.producer for r in requests], [None, None])
        self.assertEqual(self.hub.subscribers, set())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.hub.full())

    def test_full(self) -> None:
        """The hub says it is full at max_subscribers."""
        for _ in range(3):
            self.assertFalse(self.hub.full())
            self.subscribe()
        self.assertTrue(self.hub.full())


class FakeState:
    def fleet_health(self) -> Dict[str, Any]:
        return {"status": "ok", "summaries": [{"id": "b1"}]}

    def summaries(self) -> List[Dict[str, Any]]:
        return [{"id": "b1", "age_s": 2.0}, {"id": "b2", "age_s": None}]


class PartTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.role = SimpleNamespace(clock=Clock(), hub=None)
        self.part = StreamPart(self.role)

    def test_sets_role_hub(self) -> None:
        """The part gives the role its hub."""
        self.assertIs(self.role.hub, self.part.hub)

    def test_snapshot_and_seen_from_state(self) -> None:
        """Snapshot and seen come from role.state once it exists."""
        self.assertIsNone(self.part._snapshot())
        self.role.state = FakeState()
        self.assertEqual(self.part._snapshot()["health"]["summaries"], [{"id": "b1"}])
        self.assertEqual(self.part._seen(), {"buses": {"b1": 2.0, "b2": None}})

    def test_fleet_changed_resends_snapshot(self) -> None:
        """After a reload changed the fleet every stream gets a new snapshot, next turn."""
        self.role.state = FakeState()
        request = FakeRequest()
        self.part.hub.subscribe(request)
        self.part.fleet_changed()
        self.assertEqual(len(request.messages()), 1)
        self.role.clock.advance(0)
        self.assertEqual([m[0] for m in request.messages()], ["fleet", "fleet"])

    def test_stop_cancels_resync(self) -> None:
        """stop() cancels a pending snapshot and finishes the streams."""
        self.part.fleet_changed()
        self.part.stop()
        self.assertEqual(self.role.clock.getDelayedCalls(), [])

    def test_resource_keeps_the_request_open(self) -> None:
        """The stream resource subscribes and answers NOT_DONE_YET."""
        resource = self.part._open(FakeRequest(), None)
        request = FakeRequest()
        self.assertIs(resource.render_GET(request), NOT_DONE_YET)
        self.assertEqual(len(self.part.hub.subscribers), 1)
        self.part.stop()
        self.assertTrue(request.finished)

    def test_open_refused_when_stopped(self) -> None:
        """A stopped hub answers 503 with Retry-After."""
        self.part.stop()
        err = self.assertRaises(GatewayError, self.part._open, FakeRequest(), None)
        self.assertEqual((err.status, err.headers["Retry-After"]), (503, "5"))

    def test_parse_kinds(self) -> None:
        """?kinds= is split on commas; absent means every kind; junk is a 400."""
        self.assertIsNone(parse_kinds(FakeRequest()))
        self.assertEqual(
            parse_kinds(FakeRequest({b"kinds": [b"bus, event"]})),
            frozenset({"bus", "event"}),
        )
        err = self.assertRaises(
            GatewayError, parse_kinds, FakeRequest({b"kinds": [b"bus,<x>"]})
        )
        self.assertEqual(err.status, 400)
