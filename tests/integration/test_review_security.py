"""Security review of the central over loopback: a bus's answers must not
make the central fetch other URLs for it (redirects)."""

from __future__ import annotations

import json
import os
from typing import Any, List

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from busd.config.load import parse_config
from tests.integration._util import client, serve, start_gateway


class Internal(Resource):
    """Something on the central's network that no caller may read."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hits: List[str] = []

    def render(self, request: IRequest) -> bytes:
        self.hits.append(request.uri.decode())
        request.setHeader(b"Content-Type", b"application/json")
        return b'{"secret": "internal only"}'


class RedirectingBus(Resource):
    """A hostile bus: every answer redirects to ``target``."""

    isLeaf = True

    def __init__(self, target: str, code: int):
        super().__init__()
        self.target = target
        self.code = code

    def render(self, request: IRequest) -> bytes:
        if request.path == b"/health":
            request.setHeader(b"Content-Type", b"application/json")
            return b'{"status": "ok", "checks": []}'
        request.setResponseCode(self.code)
        request.setHeader(b"Location", self.target.encode())
        return b""


class RedirectTests(TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        self.internal = Internal()
        internal_url, _ = yield serve(self, self.internal)
        self.internal_url = internal_url
        fleet = []
        for bus_id, code in (("b1", 302), ("b2", 303)):
            bus = RedirectingBus(internal_url + "/metadata", code)
            url, _ = yield serve(self, bus)
            fleet.append({"id": bus_id, "url": url})
        raw = {
            "version": 3,
            "timeout": "3s",
            "extra_config": {
                "busgw/central": {
                    "state_dir": state,
                    "fleet": fleet,
                    "poll": {"interval": "60s", "endpoints": []},
                }
            },
            "endpoints": [
                {
                    "endpoint": "/live",
                    "backend": [
                        {"url_pattern": "/status",
                         "extra_config": {"busgw/fleet": True}},
                    ],
                }
            ],
        }  # fmt: skip
        self.base = yield start_gateway(self, parse_config(raw).config)
        self.http = client(self)

    @inlineCallbacks
    def fetch(self, method: str, path: str, **kw: Any) -> Any:
        response = yield self.http.request(
            method, self.base + path, allow_redirects=False, **kw
        )
        body = yield response.content()
        return response, body

    @inlineCallbacks
    def test_pass_through_does_not_follow(self) -> Any:
        """A bus's redirect comes back as the bus's own answer (GET 302,
        POST 303): the central never fetches the Location itself."""
        response, body = yield self.fetch("GET", "/buses/b1/status")
        self.assertEqual(response.code, 302)
        self.assertNotIn(b"internal only", body)
        response, body = yield self.fetch("POST", "/buses/b2/cmd", data=b"{}")
        self.assertEqual(response.code, 303)
        self.assertNotIn(b"internal only", body)
        self.assertEqual(self.internal.hits, [])

    @inlineCallbacks
    def test_fleet_backend_does_not_follow(self) -> Any:
        """A fleet backend counts a redirecting bus as missing, and the
        Location is never fetched."""
        response, body = yield self.fetch("GET", "/live")
        self.assertEqual(json.loads(body)["buses"], {})
        self.assertEqual(sorted(json.loads(body)["missing"]), ["b1", "b2"])
        self.assertEqual(self.internal.hits, [])

    @inlineCallbacks
    def test_poll_form_does_not_follow(self) -> Any:
        """The central's client does not follow a redirect for a request
        made the poller's way either (a text URL, treq's own path)."""
        from twisted.internet import reactor

        from busd.backends import make_client, make_pool

        pool = make_pool(reactor)
        self.addCleanup(pool.closeCachedConnections)
        central = make_client(reactor, pool, follow_redirects=False)
        bus = RedirectingBus(self.internal_url + "/metadata", 302)
        url, _ = yield serve(self, bus)
        response = yield central.request("GET", url + "/status", unbuffered=True)
        self.assertEqual(response.code, 302)
        yield response.content()
        self.assertEqual(self.internal.hits, [])
