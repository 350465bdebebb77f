"""The gateway end to end over real loopback sockets: real Twisted backends,
the production client and pool, the real service tree."""

import json

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase
from twisted.web.server import NOT_DONE_YET

from busd.config.load import parse_config
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, client, serve, start_gateway


class Hanging(JSONBackend):
    """A backend that never answers; it records when its caller goes away."""

    def __init__(self):
        super().__init__({})
        self.gone: Deferred[None] = Deferred()
        self.arrived: Deferred[None] = Deferred()

    def render(self, request):
        request.notifyFinish().addBoth(lambda _: self.gone.callback(None))
        self.arrived.callback(None)
        return NOT_DONE_YET


class GatewayLoopbackTests(TestCase):
    @inlineCallbacks
    def start(self, endpoints, **service):
        raw = {"version": 3, "endpoints": endpoints, **service}
        base = yield start_gateway(self, parse_config(raw).config)
        self.client = client(self)
        return base

    @inlineCallbacks
    def fetch(self, url):
        resp = yield self.client.get(url)
        body = yield resp.content()
        return resp, body

    @inlineCallbacks
    def test_merge_two_real_backends(self):
        """Data from two loopback backends is merged and marked complete."""
        v, _ = yield serve(self, JSONBackend({"/v": (200, {"fuel": 70})}))
        s, _ = yield serve(self, JSONBackend({"/s": (200, {"line": "FW-12"})}))
        gw = yield self.start(
            [
                {
                    "endpoint": "/status",
                    "backend": [
                        {"host": [v], "url_pattern": "/v", "group": "vehicle"},
                        {"host": [s], "url_pattern": "/s"},
                    ],
                }
            ]
        )
        resp, body = yield self.fetch(gw + "/status")
        self.assertEqual(resp.code, 200)
        self.assertEqual(json.loads(body), {"vehicle": {"fuel": 70}, "line": "FW-12"})
        self.assertEqual(resp.headers.getRawHeaders("X-Krakend-Completed"), ["true"])
        resp, body = yield self.fetch(gw + "/__health")
        self.assertEqual(json.loads(body)["status"], "ok")

    @inlineCallbacks
    def test_connection_refused_is_partial(self):
        """A backend whose port is closed makes the answer partial, not an error."""
        v, _ = yield serve(self, JSONBackend({"/v": (200, {"fuel": 70})}))
        # Take a free port and close it again: nothing listens there.
        from twisted.internet.endpoints import serverFromString
        from twisted.internet.protocol import Factory

        port = yield serverFromString(reactor, LOOPBACK).listen(Factory())
        dead = f"http://127.0.0.1:{port.getHost().port}"
        yield port.stopListening()
        gw = yield self.start(
            [
                {
                    "endpoint": "/status",
                    "backend": [
                        {"host": [v], "url_pattern": "/v"},
                        {"host": [dead], "url_pattern": "/s"},
                    ],
                }
            ]
        )
        resp, body = yield self.fetch(gw + "/status")
        self.assertEqual(resp.code, 200)
        self.assertEqual(json.loads(body), {"fuel": 70})
        self.assertEqual(resp.headers.getRawHeaders("X-Krakend-Completed"), ["false"])

    @inlineCallbacks
    def test_slow_backend_times_out(self):
        """A backend that never answers is cut at the timeout: partial 200."""
        v, _ = yield serve(self, JSONBackend({"/v": (200, {"fuel": 70})}))
        hanging = Hanging()
        h, _ = yield serve(self, hanging)
        gw = yield self.start(
            [
                {
                    "endpoint": "/status",
                    "timeout": "300ms",
                    "backend": [
                        {"host": [v], "url_pattern": "/v"},
                        {"host": [h], "url_pattern": "/never"},
                    ],
                }
            ]
        )
        resp, body = yield self.fetch(gw + "/status")
        self.assertEqual((resp.code, json.loads(body)), (200, {"fuel": 70}))
        yield hanging.gone  # the timed-out backend call was really aborted

    @inlineCallbacks
    def test_no_cookie_carries_over(self):
        """A cookie set by a backend is never sent with a later caller's call."""
        backend = JSONBackend(
            {"/v": (200, {"a": 1})}, headers={"Set-Cookie": "session=s1; Path=/"}
        )
        v, _ = yield serve(self, backend)
        gw = yield self.start(
            [{"endpoint": "/v", "backend": [{"host": [v], "url_pattern": "/v"}]}]
        )
        for _ in range(2):
            resp, _ = yield self.fetch(gw + "/v")
            self.assertEqual(resp.code, 200)
            self.assertIsNone(resp.headers.getRawHeaders("Set-Cookie"))
        self.assertNotIn("cookie", backend.requests[-1][2])

    @inlineCallbacks
    def test_oversized_body(self):
        """A body over max_body_bytes fails that backend without buffering it."""
        big, _ = yield serve(self, JSONBackend({"/big": (200, {"x": "y" * 200000})}))
        gw = yield self.start(
            [{"endpoint": "/big", "backend": [{"host": [big], "url_pattern": "/big"}]}],
            extra_config={"busgw/backend": {"max_body_bytes": 65536}},
        )
        resp, body = yield self.fetch(gw + "/big")
        self.assertEqual(resp.code, 500)
        self.assertEqual(json.loads(body)["status"], 500)

    @inlineCallbacks
    def test_client_disconnect_cancels_backend_call(self):
        """A client that hangs up mid-request makes the gateway abort its call."""
        hanging = Hanging()
        h, _ = yield serve(self, hanging)
        gw = yield self.start(
            [
                {
                    "endpoint": "/slow",
                    "timeout": "30s",
                    "backend": [{"host": [h], "url_pattern": "/never"}],
                }
            ]
        )
        port = int(gw.rsplit(":", 1)[1])
        proto = Protocol()
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
            _Once(proto)
        )
        proto.transport.write(b"GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n")
        yield hanging.arrived
        proto.transport.loseConnection()
        yield hanging.gone


class _Once:
    """A client factory handing out one given protocol."""

    def __init__(self, proto):
        self.proto = proto

    def buildProtocol(self, addr):
        return self.proto

    def doStart(self):
        pass

    def doStop(self):
        pass
