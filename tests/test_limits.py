"""Request limits: the config, the in-flight cap, and the connection-level
limits driven byte by byte through a StringTransport on a stepped clock."""

from __future__ import annotations

import json
from typing import Any, List

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from busd.config import parse_config
from busd.limits import InFlightLimit, RequestLimits, apply_limits
from tests.config._support import problems, service as svc, table_tests

NS = "busgw/limits"
W, E = "warning", "error"

# fmt: off
PROBLEMS = [
    ("negative_body", "max_body_bytes must not be negative.",
     svc(extra_config={NS: {"max_body_bytes": -1}}), E,
     f"extra_config.{NS}.max_body_bytes", "at least 0"),
    ("zero_in_flight", "max_in_flight must be at least 1.",
     svc(extra_config={NS: {"max_in_flight": 0}}), E,
     f"extra_config.{NS}.max_in_flight", "at least 1"),
    ("zero_headers", "max_headers must be at least 1.",
     svc(extra_config={NS: {"max_headers": 0}}), E,
     f"extra_config.{NS}.max_headers", "at least 1"),
    ("tiny_header_bytes", "max_header_bytes below 1 KiB is an error.",
     svc(max_header_bytes=100), E, "max_header_bytes", "at least 1024"),
    ("bad_timeout", "read_header_timeout is a duration.",
     svc(read_header_timeout=5), E, "read_header_timeout", "duration"),
    ("unknown_key", "An unknown busgw/limits key is a warning.",
     svc(extra_config={NS: {"max_body": 1}}), W,
     f"extra_config.{NS}.max_body", 'did you mean "max_body_bytes"'),
    ("write_timeout", "write_timeout stays unsupported.",
     svc(write_timeout="1s"), W, "write_timeout", "not supported"),
]
# fmt: on


class LimitsConfigTests(SynchronousTestCase):
    locals().update(table_tests(PROBLEMS))

    def test_defaults(self) -> None:
        """Without any key every limit has its documented default."""
        self.assertEqual(parse_config(svc()).config.limits, RequestLimits())
        self.assertEqual(
            RequestLimits(),
            RequestLimits(
                max_body_bytes=1048576,
                max_headers=100,
                max_header_bytes=16384,
                max_in_flight=256,
                read_header_timeout=10.0,
                read_timeout=30.0,
                idle_timeout=60.0,
            ),
        )

    def test_values(self) -> None:
        """KrakenD's service keys and busgw/limits are both read."""
        raw = svc(
            read_header_timeout="2s",
            read_timeout="5s",
            idle_timeout="90s",
            max_header_bytes=4096,
            extra_config={
                NS: {"max_body_bytes": 10, "max_headers": 7, "max_in_flight": 3}
            },
        )
        self.assertEqual(problems(raw), [])
        self.assertEqual(
            parse_config(raw).config.limits,
            RequestLimits(
                max_body_bytes=10,
                max_headers=7,
                max_header_bytes=4096,
                max_in_flight=3,
                read_header_timeout=2.0,
                read_timeout=5.0,
                idle_timeout=90.0,
            ),
        )

    def test_idle_follows_read_timeout(self) -> None:
        """Without idle_timeout, a given read_timeout is used for it, as Go's
        server does."""
        limits = parse_config(svc(read_timeout="7s")).config.limits
        self.assertEqual(limits.idle_timeout, 7.0)


class Hanging(Resource):
    """Leaves every request open until ``release``."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: List[Any] = []

    def render(self, request: Any) -> Any:
        self.pending.append(request)
        return NOT_DONE_YET

    def release(self) -> None:
        while self.pending:
            request = self.pending.pop(0)
            request.write(b"done")
            request.finish()


class InFlightLimitTests(SynchronousTestCase):
    def test_cap(self) -> None:
        """Past max_in_flight a request is answered 503 JSON at once; a
        finished request frees its place."""
        inner = Hanging()
        stub = StubTreq(InFlightLimit(inner, 2))
        first = [stub.get("http://gw/a") for _ in range(2)]
        refused = self.successResultOf(stub.get("http://gw/a"))
        self.assertEqual(refused.code, 503)
        self.assertEqual(refused.headers.getRawHeaders(b"Retry-After"), [b"1"])
        body = json.loads(self.successResultOf(refused.content()))
        self.assertEqual(
            body, {"error": "too many requests in flight", "status": 503}
        )
        self.assertEqual(len(inner.pending), 2)
        inner.release()
        stub.flush()
        for d in first:
            self.assertEqual(self.successResultOf(d).code, 200)
        again = stub.get("http://gw/a")
        self.assertEqual(len(inner.pending), 1)
        inner.release()
        stub.flush()
        self.assertEqual(self.successResultOf(again).code, 200)

    def test_disconnect_frees(self) -> None:
        """A client that goes away frees its place as well."""
        inner = Hanging()
        limit = InFlightLimit(inner, 1)
        stub = StubTreq(limit)
        d = stub.get("http://gw/a")
        self.assertEqual(limit.counter.count, 1)
        d.cancel()
        self.failureResultOf(d)
        stub.flush()
        self.assertEqual(limit.counter.count, 0)


class Recorder(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: List[bytes] = []

    def render(self, request: Any) -> bytes:
        self.bodies.append(request.content.read())
        return b"ok"


LIMITS = RequestLimits(
    max_body_bytes=10,
    max_headers=3,
    max_header_bytes=1024,
    read_header_timeout=2.0,
    read_timeout=5.0,
    idle_timeout=20.0,
)


class TrackedChannel(HTTPChannel):
    """A Site subclass's own channel, as tests/integration's TrackingSite."""

    made = 0

    def connectionMade(self) -> None:
        TrackedChannel.made += 1
        super().connectionMade()


class ChannelLimitTests(SynchronousTestCase):
    def connect(self, site_class: Any = Site) -> None:
        self.clock = Clock()
        self.resource = Recorder()
        site = site_class(self.resource, reactor=self.clock)
        apply_limits(site, LIMITS, self.clock)
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self.close)

    def close(self) -> None:
        if not self.transport.disconnected:
            self.transport.disconnecting = True
            self.protocol.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def answer(self) -> tuple:
        raw = self.transport.value()
        head, _, body = raw.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0], body

    def assertRefused(self, status: bytes, error: str) -> None:
        line, body = self.answer()
        self.assertEqual(line, b"HTTP/1.1 " + status)
        self.assertEqual(json.loads(body)["error"], error)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.bodies, [])

    def test_within_limits(self) -> None:
        """A request within every limit is served, and no deadline is left
        running while it waits for the next request."""
        self.connect()
        self.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        )
        self.assertEqual(self.resource.bodies, [b"hello"])
        self.assertEqual(self.answer()[0], b"HTTP/1.1 200 OK")
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(LIMITS.read_timeout + 1)
        self.assertFalse(
            self.transport.disconnecting, "idle is not a slow head"
        )

    def test_content_length_too_large(self) -> None:
        """A Content-Length over max_body_bytes is refused 413 as soon as
        the head is in, without a 100 Continue."""
        self.connect()
        self.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
            b"Content-Length: 11\r\n\r\n"
        )
        self.assertRefused(
            b"413 Request Entity Too Large", "request body too large"
        )
        self.assertNotIn(b"100 Continue", self.transport.value())

    def test_chunked_too_large(self) -> None:
        """A chunked body is refused the moment it passes the cap, even
        when its end is in the same packet."""
        self.connect()
        self.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.send(b"6\r\nabcdef\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.send(b"5\r\nghijk\r\n0\r\n\r\n")
        self.assertRefused(
            b"413 Request Entity Too Large", "request body too large"
        )

    def test_chunked_within_limit(self) -> None:
        """A chunked body up to the cap is served whole."""
        self.connect()
        self.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n"
        )
        self.assertEqual(self.resource.bodies, [b"abcdefghij"])

    def test_too_many_headers(self) -> None:
        """More than max_headers header fields are refused 431."""
        self.connect()
        self.send(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        self.assertRefused(
            b"431 Request Header Fields Too Large", "too many request headers"
        )

    def test_header_bytes(self) -> None:
        """A head over max_header_bytes is refused 431 before it ends."""
        self.connect()
        self.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        for _ in range(2):
            self.send(b"X-Pad: " + b"p" * 500 + b"\r\n")
        self.assertRefused(
            b"431 Request Header Fields Too Large", "request header too large"
        )

    def test_one_long_line(self) -> None:
        """A single line longer than max_header_bytes, still without its
        end, is refused 431 too."""
        self.connect()
        self.send(b"GET /" + b"a" * 2000)
        self.assertRefused(
            b"431 Request Header Fields Too Large", "request header too large"
        )

    def test_slow_head(self) -> None:
        """A client trickling its head byte by byte (which keeps resetting
        the idle timeout) is refused 408 at read_header_timeout."""
        self.connect()
        for byte in b"GET / HTTP/1.1\r\nHo":
            self.send(bytes([byte]))
            self.clock.advance(0.1)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(LIMITS.read_header_timeout)
        self.assertRefused(
            b"408 Request Timeout", "request not received in time"
        )

    def test_silent_connection(self) -> None:
        """A connection that never sends anything is closed quietly at
        read_header_timeout."""
        self.connect()
        self.clock.advance(LIMITS.read_header_timeout)
        self.assertEqual(self.transport.value(), b"")
        self.assertTrue(self.transport.disconnecting)

    def test_slow_body(self) -> None:
        """A head in time but a body too slow is refused at read_timeout."""
        self.connect()
        self.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
        self.clock.advance(LIMITS.read_header_timeout + 0.5)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(LIMITS.read_timeout)
        self.assertRefused(
            b"408 Request Timeout", "request not received in time"
        )

    def test_keep_alive(self) -> None:
        """On a kept-alive connection the next head's deadline starts with
        its first byte; with nothing sent the idle timeout closes it."""
        self.connect()
        self.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.clock.advance(LIMITS.read_header_timeout + 1)
        self.send(b"GET / HT")
        self.clock.advance(LIMITS.read_header_timeout - 0.5)
        self.assertFalse(self.transport.disconnecting)
        self.send(b"TP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(self.resource.bodies), 2)
        self.clock.advance(LIMITS.idle_timeout)
        self.assertTrue(self.transport.disconnecting)
        self.assertNotIn(b"408", self.transport.value())

    def test_pipelined(self) -> None:
        """Pipelined requests in one packet are each served."""
        self.connect()
        self.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
        self.assertEqual(len(self.resource.bodies), 3)

    def test_site_channel_class_kept(self) -> None:
        """With a Site subclass building its own channel class, that class's
        behaviour is kept and the limits still apply."""

        class OwnSite(Site):
            protocol = TrackedChannel

        made = TrackedChannel.made
        self.connect(OwnSite)
        self.assertEqual(TrackedChannel.made, made + 1)
        self.assertIsInstance(self.protocol, TrackedChannel)
        self.send(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        self.assertRefused(
            b"431 Request Header Fields Too Large", "too many request headers"
        )
