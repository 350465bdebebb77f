"""Rate limits, CORS and request limits end to end: the real service tree
on a loopback port, real backends, and raw sockets where the bytes on the
wire matter (a body never sent, a head trickled byte by byte)."""

import json
import random

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from busd.config.load import parse_config
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, TrackingSite, client, serve

ORIGIN = "https://dash.fleet.example"


class RawClient(Protocol):
    """Sends bytes as told, keeps what comes back; ``done`` fires when the
    connection closes."""

    def __init__(self):
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.done.callback(self.received)

    def status_and_body(self):
        head, _, body = self.received.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0], body


class Pending(Resource):
    """A backend that holds every request until ``release``; ``arrived``
    fires once ``expected`` requests are waiting."""

    isLeaf = True

    def __init__(self, expected):
        super().__init__()
        self.expected = expected
        self.pending = []
        self.arrived: Deferred[None] = Deferred()

    def render(self, request):
        self.pending.append(request)
        if len(self.pending) == self.expected:
            self.arrived.callback(None)
        return NOT_DONE_YET

    def release(self):
        for request in self.pending:
            request.setHeader(b"Content-Type", b"application/json")
            request.write(b'{"ok": true}')
            request.finish()
        self.pending = []


class EdgeLoopbackTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def start(self, endpoints, **service):
        """Serve a config; return the base URL. ``self.site`` is the
        listening TrackingSite and ``self.port`` its port number."""
        from busd.service import build_service

        raw = {"version": 3, "endpoints": endpoints, **service}
        svc = build_service(
            parse_config(raw).config,
            reactor,
            listen=[LOOPBACK],
            rng=random.Random(0),
            site_class=TrackingSite,
        )
        svc.startService()
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        self.site = http.factory
        self.addCleanup(self.site.close_all)
        self.addCleanup(svc.stopService)
        self.port = port.getHost().port
        self.client = client(self)
        return f"http://127.0.0.1:{self.port}"

    @inlineCallbacks
    def raw(self):
        proto = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        yield connectProtocol(endpoint, proto)
        self.addCleanup(self._close, proto)
        return proto

    def _close(self, proto):
        if not proto.done.called:
            proto.transport.abortConnection()
        return proto.done

    @inlineCallbacks
    def server_gone(self, proto):
        """Wait until the client and the server side have both closed."""
        yield proto.done
        yield DeferredList([ch.lost for ch in self.site.channels])

    @inlineCallbacks
    def backend(self, routes=None, **kw):
        self.backend_resource = JSONBackend(
            routes or {"/x": (200, {"a": 1})}, **kw
        )
        url, _ = yield serve(self, self.backend_resource)
        return url

    # -- request limits ---------------------------------------------------

    @inlineCallbacks
    def test_content_length_refused_before_body(self):
        """A Content-Length over max_body_bytes gets 413 JSON and the
        connection closes although the body was never sent."""
        b = yield self.backend()
        yield self.start(
            [
                {
                    "endpoint": "/in",
                    "method": "POST",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                }
            ],
            extra_config={"busgw/limits": {"max_body_bytes": 100}},
        )
        proto = yield self.raw()
        proto.transport.write(
            b"POST /in HTTP/1.1\r\nHost: gw\r\nContent-Length: 50000000\r\n\r\n"
        )
        yield self.server_gone(proto)
        line, body = proto.status_and_body()
        self.assertEqual(line, b"HTTP/1.1 413 Request Entity Too Large")
        self.assertEqual(
            json.loads(body), {"error": "request body too large", "status": 413}
        )
        self.assertEqual(self.backend_resource.requests, [])

    @inlineCallbacks
    def test_chunked_body_refused(self):
        """A chunked body is refused 413 once it passes max_body_bytes."""
        b = yield self.backend()
        yield self.start(
            [
                {
                    "endpoint": "/in",
                    "method": "POST",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                }
            ],
            extra_config={"busgw/limits": {"max_body_bytes": 100}},
        )
        proto = yield self.raw()
        proto.transport.write(
            b"POST /in HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"40\r\n"
            + b"x" * 64
            + b"\r\n"
            + b"40\r\n"
            + b"x" * 64
            + b"\r\n"
        )
        yield self.server_gone(proto)
        self.assertEqual(
            proto.status_and_body()[0], b"HTTP/1.1 413 Request Entity Too Large"
        )
        self.assertEqual(self.backend_resource.requests, [])

    @inlineCallbacks
    def test_slow_head_disconnected(self):
        """A client trickling its head a byte at a time is answered 408 and
        disconnected at read_header_timeout, though each byte resets the
        idle timeout."""
        b = yield self.backend()
        yield self.start(
            [
                {
                    "endpoint": "/a",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                }
            ],
            read_header_timeout="200ms",
            idle_timeout="10s",
        )
        proto = yield self.raw()
        head = iter(b"GET /a HTTP/1.1\r\nX-Pad: " + b"p" * 100_000)
        trickle = LoopingCall(
            lambda: proto.transport.write(bytes([next(head)]))
        )
        trickle.start(0.02)
        proto.done.addBoth(lambda r: (trickle.stop(), r)[1])
        yield self.server_gone(proto)
        line, body = proto.status_and_body()
        self.assertEqual(line, b"HTTP/1.1 408 Request Timeout")
        self.assertEqual(json.loads(body)["status"], 408)

    @inlineCallbacks
    def test_idle_keep_alive_closed(self):
        """A kept-alive connection with nothing more to say is closed after
        idle_timeout, with no error answer."""
        b = yield self.backend()
        yield self.start(
            [
                {
                    "endpoint": "/a",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                }
            ],
            idle_timeout="200ms",
        )
        proto = yield self.raw()
        proto.transport.write(b"GET /a HTTP/1.1\r\nHost: gw\r\n\r\n")
        yield self.server_gone(proto)
        self.assertEqual(proto.status_and_body()[0], b"HTTP/1.1 200 OK")
        self.assertEqual(proto.received.count(b"HTTP/1.1"), 1)

    @inlineCallbacks
    def test_too_many_headers(self):
        """More header fields than max_headers are refused 431."""
        b = yield self.backend()
        yield self.start(
            [
                {
                    "endpoint": "/a",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                }
            ],
            extra_config={"busgw/limits": {"max_headers": 5}},
        )
        proto = yield self.raw()
        fields = b"".join(b"X-H%d: v\r\n" % i for i in range(10))
        proto.transport.write(
            b"GET /a HTTP/1.1\r\nHost: gw\r\n" + fields + b"\r\n"
        )
        yield self.server_gone(proto)
        line, body = proto.status_and_body()
        self.assertEqual(line, b"HTTP/1.1 431 Request Header Fields Too Large")
        self.assertEqual(json.loads(body)["error"], "too many request headers")
        self.assertEqual(self.backend_resource.requests, [])

    @inlineCallbacks
    def test_in_flight_cap(self):
        """With max_in_flight requests held by a hanging backend, one more
        is answered 503 at once; the held ones complete when released."""
        pending = Pending(expected=2)
        b, _ = yield serve(self, pending)
        gw = yield self.start(
            [
                {
                    "endpoint": "/slow",
                    "timeout": "10s",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                }
            ],
            extra_config={"busgw/limits": {"max_in_flight": 2}},
        )
        held = [self.client.get(gw + "/slow") for _ in range(2)]
        yield pending.arrived
        extra = yield self.client.get(gw + "/slow")
        body = yield extra.json()
        self.assertEqual(extra.code, 503)
        self.assertEqual(
            body, {"error": "too many requests in flight", "status": 503}
        )
        self.assertEqual(len(pending.pending), 2)
        pending.release()
        for d in held:
            response = yield d
            self.assertEqual(response.code, 200)
            yield response.content()

    # -- CORS ----------------------------------------------------------

    @inlineCallbacks
    def test_cors(self):
        """A preflight on a GET-only path is 204 with the CORS headers; a
        no-op backend's own CORS headers never reach the caller: each CORS
        header comes once, from the gateway."""
        b = yield self.backend(
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Credentials": "true",
            }
        )
        gw = yield self.start(
            [
                {
                    "endpoint": "/raw",
                    "output_encoding": "no-op",
                    "backend": [
                        {"host": [b], "url_pattern": "/x", "encoding": "no-op"}
                    ],
                }
            ],
            extra_config={
                "security/cors": {
                    "allow_origins": [ORIGIN],
                    "allow_methods": ["GET", "PUT"],
                    "max_age": "1h",
                }
            },
        )
        pre = yield self.client.request(
            "OPTIONS",
            gw + "/raw",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"},
        )
        yield pre.content()
        self.assertEqual(pre.code, 204)
        self.assertEqual(
            pre.headers.getRawHeaders("Access-Control-Allow-Origin"), [ORIGIN]
        )
        self.assertEqual(
            pre.headers.getRawHeaders("Access-Control-Max-Age"), ["3600"]
        )
        response = yield self.client.get(
            gw + "/raw", headers={"Origin": ORIGIN}
        )
        yield response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("Access-Control-Allow-Origin"),
            [ORIGIN],
        )
        self.assertIsNone(
            response.headers.getRawHeaders("Access-Control-Allow-Credentials")
        )
        self.assertEqual(response.headers.getRawHeaders("Vary"), ["Origin"])

    # -- rate limits -----------------------------------------------------

    @inlineCallbacks
    def test_rate_limits(self):
        """The endpoint's shared bucket answers 503 when empty and a
        client's own bucket 429, both with Retry-After and a JSON body."""
        b = yield self.backend()
        gw = yield self.start(
            [
                {
                    "endpoint": "/shared",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                    "extra_config": {
                        "qos/ratelimit/router": {
                            "max_rate": 1,
                            "capacity": 1,
                            "every": "1h",
                        }
                    },
                },
                {
                    "endpoint": "/per-bus",
                    "backend": [{"host": [b], "url_pattern": "/x"}],
                    "extra_config": {
                        "qos/ratelimit/router": {
                            "client_max_rate": 1,
                            "strategy": "header",
                            "key": "X-Bus",
                            "every": "1h",
                        }
                    },
                },
            ]
        )
        codes = []
        for _ in range(2):
            response = yield self.client.get(gw + "/shared")
            codes.append((response.code, (yield response.json())))
        self.assertEqual(codes[0], (200, {"a": 1}))
        self.assertEqual(
            codes[1], (503, {"error": "rate_limited", "status": 503})
        )
        self.assertEqual(
            response.headers.getRawHeaders("Retry-After"), ["3600"]
        )
        seen = []
        for bus in ("FW-1", "FW-1", "FW-2"):
            response = yield self.client.get(
                gw + "/per-bus", headers={"X-Bus": bus}
            )
            yield response.content()
            seen.append(response.code)
        self.assertEqual(seen, [200, 429, 200])
