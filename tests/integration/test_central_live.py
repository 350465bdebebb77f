"""A central calling its buses live over loopback: a ``busgw/fleet``
endpoint with one bus down answers partially, and ``/buses/{id}/...``
reaches a bus with the central's token."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

import jwt
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from busd.auth.sign import generate_key, private_pem
from busd.config.load import parse_config
from tests.integration._util import LOOPBACK, client, serve, start_gateway


class BusStandIn(Resource):
    """A bus answering ``/status`` and echoing ``/cmd``, only to a token
    signed by the central's key for ``audience``; keeps what it saw."""

    isLeaf = True

    def __init__(self, bus_id: str, public_key: Any, audience: str):
        super().__init__()
        self.bus_id = bus_id
        self.public_key = public_key
        self.audience = audience
        self.seen: List[Tuple[str, str, Optional[Dict[str, Any]]]] = []

    def render(self, request: IRequest) -> bytes:
        path = request.path.decode()
        claims = self._claims(request)
        self.seen.append((request.method.decode(), request.uri.decode(), claims))
        request.setHeader(b"Content-Type", b"application/json")
        if path == "/health":  # the central's poller
            return b'{"status": "ok", "checks": []}'
        if claims is None:
            request.setResponseCode(401)
            return b'{"error": "bad token"}'
        if path == "/status":
            return json.dumps({"bus": self.bus_id, "speed": 42}).encode()
        if path == "/cmd":
            request.setResponseCode(201)
            request.setHeader(b"Content-Type", b"text/plain")
            body = request.content.read() if request.content else b""
            kind = request.getHeader(b"content-type") or b""
            return b"%s got %s as %s" % (self.bus_id.encode(), body, kind)
        request.setResponseCode(404)
        return b'{"error": "no such path"}'

    def _claims(self, request: IRequest) -> Optional[Dict[str, Any]]:
        auth = request.getHeader(b"authorization") or b""
        if not auth.startswith(b"Bearer "):
            return None
        try:
            claims: Dict[str, Any] = jwt.decode(
                auth[7:].decode(),
                self.public_key,
                algorithms=["ES256"],
                audience=self.audience,
            )
        except jwt.PyJWTError:
            return None
        return claims


class CentralLiveTests(TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        key = generate_key("ES256")
        key_path = os.path.join(state, "central.pem")
        with open(key_path, "wb") as handle:
            handle.write(private_pem(key))
        public = key.public_key()
        self.buses: Dict[str, BusStandIn] = {}
        fleet = []
        for bus_id in ("b1", "b2", "b4"):
            # b4 expects another audience: it refuses the central's token.
            audience = "bus-other" if bus_id == "b4" else f"bus-{bus_id}"
            self.buses[bus_id] = BusStandIn(bus_id, public, audience)
            url, _ = yield serve(self, self.buses[bus_id])
            live = "no" if bus_id == "b4" else "yes"
            fleet.append({"id": bus_id, "url": url, "labels": {"live": live}})
        down = yield self._closed_port()
        fleet.append({"id": "b3", "url": down, "labels": {"live": "yes"}})
        raw = {
            "version": 3,
            "timeout": "3s",
            "extra_config": {
                "busgw/central": {
                    "state_dir": state,
                    "fleet": fleet,
                    "poll": {"interval": "60s", "endpoints": []},
                    "signing": {"key": key_path, "kid": "central-1"},
                }
            },
            "endpoints": [
                {
                    "endpoint": "/live",
                    "backend": [
                        {
                            "url_pattern": "/status",
                            "extra_config": {
                                "busgw/fleet": {"labels": {"live": "yes"}}
                            },
                        }
                    ],
                }
            ],
        }
        config = parse_config(raw).config
        self.base = yield start_gateway(self, config)
        self.http = client(self)

    @inlineCallbacks
    def _closed_port(self) -> Any:
        """A loopback URL where nothing listens (a bus that is down)."""
        port = yield serverFromString(reactor, LOOPBACK).listen(Factory())
        number = port.getHost().port
        yield port.stopListening()
        return f"http://127.0.0.1:{number}"

    @inlineCallbacks
    def fetch(self, method: str, path: str, **kw: Any) -> Any:
        response = yield self.http.request(method, self.base + path, **kw)
        body = yield response.content()
        return response, body

    @inlineCallbacks
    def test_fan_out_with_a_bus_down(self) -> Any:
        """The fleet endpoint answers 200 with the two buses up, the one
        down named missing, and X-KrakenD-Completed false; each bus got a
        token for itself."""
        response, body = yield self.fetch("GET", "/live")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("X-Krakend-Completed"), ["false"]
        )
        self.assertEqual(
            json.loads(body),
            {
                "buses": {
                    "b1": {"bus": "b1", "speed": 42},
                    "b2": {"bus": "b2", "speed": 42},
                },
                "missing": ["b3"],
            },
        )
        for bus_id in ("b1", "b2"):
            calls = [s for s in self.buses[bus_id].seen if s[1] == "/status"]
            self.assertEqual(len(calls), 1)
            self.assertEqual(calls[0][2]["aud"], f"bus-{bus_id}")  # type: ignore[index]
        self.assertFalse([s for s in self.buses["b4"].seen if s[1] == "/status"])

    @inlineCallbacks
    def test_pass_through_get_and_post(self) -> Any:
        """GET and POST reach the bus with the central's token, the query
        and the body; the bus's status and Content-Type come back."""
        response, body = yield self.fetch(
            "GET", "/buses/b1/status?x=1", headers={"Authorization": "Bearer mine"}
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body), {"bus": "b1", "speed": 42})
        method, uri, claims = self.buses["b1"].seen[-1]
        self.assertEqual((method, uri), ("GET", "/status?x=1"))
        self.assertEqual(claims["aud"], "bus-b1")  # type: ignore[index]
        response, body = yield self.fetch(
            "POST",
            "/buses/b2/cmd",
            data=b'{"door": "open"}',
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.code, 201)
        self.assertEqual(
            response.headers.getRawHeaders("Content-Type"), ["text/plain"]
        )
        self.assertEqual(body, b'b2 got {"door": "open"} as application/json')

    @inlineCallbacks
    def test_pass_through_errors(self) -> Any:
        """A bus refusing the central's token answers 401 through the
        central; an unknown id is 404, a bus that is down 502."""
        response, body = yield self.fetch("GET", "/buses/b4/status")
        self.assertEqual(response.code, 401)
        self.assertEqual(json.loads(body), {"error": "bad token"})
        response, body = yield self.fetch("GET", "/buses/zz/status")
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(body)["status"], 404)
        response, body = yield self.fetch("GET", "/buses/b3/status")
        self.assertEqual(response.code, 502)
        self.assertEqual(json.loads(body)["error"], "bus_unreachable")
