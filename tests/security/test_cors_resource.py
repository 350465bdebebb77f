"""The CORS wrapper in front of the router: preflights answered before
routing, and CORS headers sent exactly once whatever the endpoint does."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from busd.security.cors import CorsConfig
from busd.security.cors_resource import CorsResource, GuardedHeaders
from busd.testing import JSONBackend
from tests.helpers import B1, Gateway, config

ORIGIN = "https://dash.fleet.example"
BACKEND_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Credentials": "true",
    "Vary": "Origin, Accept-Encoding",
}


class CorsResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.backend = JSONBackend(
            {"/x": (200, {"ok": True})}, headers=BACKEND_CORS
        )
        endpoints = [
            {
                "endpoint": "/json",
                "backend": [{"host": [B1], "url_pattern": "/x"}],
            },
            {
                "endpoint": "/raw",
                "output_encoding": "no-op",
                "backend": [
                    {"host": [B1], "url_pattern": "/x", "encoding": "no-op"}
                ],
            },
        ]
        self.gw = Gateway(config(endpoints), {B1: self.backend})

    def serve(self, **options: Any) -> None:
        cors = CorsConfig(**options)
        self.stub = StubTreq(CorsResource(self.gw.app.resource(), cors))

    def request(
        self, method: str, path: str, headers: Optional[dict] = None
    ) -> Tuple[Any, bytes]:
        d = self.stub.request(method, "http://gw" + path, headers=headers or {})
        self.gw.backend_stub.flush()
        self.stub.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(response.content())

    def values(self, response: Any, name: str) -> List[str]:
        return list(response.headers.getRawHeaders(name, []))

    def test_preflight_before_routing(self) -> None:
        """A preflight on a path that only has GET is 204 with the CORS
        headers, not the router's 405, and reaches no backend."""
        self.serve(allow_methods=("GET", "PUT"), max_age=60.0)
        response, body = self.request(
            "OPTIONS",
            "/json",
            {
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        self.assertEqual((response.code, body), (204, b""))
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), ["*"]
        )
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Methods"), ["PUT"]
        )
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Headers"),
            ["content-type"],
        )
        self.assertEqual(
            self.values(response, "Access-Control-Max-Age"), ["60"]
        )
        self.assertEqual(
            self.values(response, "Vary"),
            [
                "Origin, Access-Control-Request-Method,"
                " Access-Control-Request-Headers"
            ],
        )
        self.assertEqual(self.backend.requests, [])

    def test_preflight_on_unknown_path(self) -> None:
        """A preflight is answered even where no route exists."""
        self.serve()
        response, _ = self.request(
            "OPTIONS",
            "/nowhere",
            {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
        )
        self.assertEqual(response.code, 204)

    def test_refused_preflight(self) -> None:
        """A preflight for a method not allowed is still 204 but without any
        Access-Control header, so the browser stops there."""
        self.serve()
        response, _ = self.request(
            "OPTIONS",
            "/json",
            {"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"},
        )
        self.assertEqual(response.code, 204)
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), []
        )

    def test_options_passthrough(self) -> None:
        """With options_passthrough the preflight reaches the router (here
        405) but carries the CORS headers."""
        self.serve(options_passthrough=True)
        response, _ = self.request(
            "OPTIONS",
            "/json",
            {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
        )
        self.assertEqual(response.code, 405)
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), ["*"]
        )

    def test_plain_options_is_routed(self) -> None:
        """An OPTIONS without Access-Control-Request-Method is no preflight:
        the router answers it."""
        self.serve()
        response, _ = self.request("OPTIONS", "/json", {"Origin": ORIGIN})
        self.assertEqual(response.code, 405)

    def test_actual_request(self) -> None:
        """An allowed origin's request gets Allow-Origin (echoed, with
        credentials) and Vary: Origin."""
        self.serve(
            allow_origins=(ORIGIN,),
            allow_credentials=True,
            expose_headers=("X-Krakend-Completed",),
        )
        response, _ = self.request("GET", "/json", {"Origin": ORIGIN})
        self.assertEqual(response.code, 200)
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), [ORIGIN]
        )
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Credentials"), ["true"]
        )
        self.assertEqual(
            self.values(response, "Access-Control-Expose-Headers"),
            ["X-Krakend-Completed"],
        )
        self.assertEqual(self.values(response, "Vary"), ["Origin"])

    def test_noop_backend_headers_replaced(self) -> None:
        """A no-op backend's own CORS headers are dropped: each CORS header
        comes once, from the gateway, and Vary is one merged line."""
        self.serve(allow_origins=(ORIGIN,))
        response, body = self.request("GET", "/raw", {"Origin": ORIGIN})
        self.assertEqual(response.code, 200)
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), [ORIGIN]
        )
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Credentials"), []
        )
        self.assertEqual(
            self.values(response, "Vary"), ["Origin, Accept-Encoding"]
        )

    def test_noop_backend_headers_dropped_for_other_origins(self) -> None:
        """A no-op backend cannot grant an origin the gateway refuses."""
        self.serve(allow_origins=(ORIGIN,))
        response, _ = self.request(
            "GET", "/raw", {"Origin": "https://evil.example"}
        )
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), []
        )

    def test_errors_carry_cors(self) -> None:
        """The router's own errors (404) carry the CORS headers too, so a
        browser can read them."""
        self.serve()
        response, _ = self.request("GET", "/nowhere", {"Origin": ORIGIN})
        self.assertEqual(response.code, 404)
        self.assertEqual(
            self.values(response, "Access-Control-Allow-Origin"), ["*"]
        )


class GuardedHeadersTests(SynchronousTestCase):
    def test_guard(self) -> None:
        """Others cannot set Access-Control-* headers, the owner can; added
        Vary tokens merge without repeats (case-insensitively) and a Vary
        set anew still keeps the gateway's Origin."""
        existing = Headers({b"Connection": [b"close"]})
        headers = GuardedHeaders(existing, ("Origin",))
        headers.own("Access-Control-Allow-Origin", "*")
        headers.setRawHeaders(b"access-control-allow-origin", [b"https://x"])
        headers.addRawHeader("Access-Control-Max-Age", "9")
        headers.addRawHeader(b"vary", b"origin, Accept")
        self.assertEqual(headers.getRawHeaders(b"vary"), [b"Origin, Accept"])
        headers.setRawHeaders("Vary", ["Accept-Language"])
        self.assertEqual(
            headers.getRawHeaders(b"access-control-allow-origin"), [b"*"]
        )
        self.assertIsNone(headers.getRawHeaders(b"access-control-max-age"))
        self.assertEqual(
            headers.getRawHeaders(b"vary"), [b"Origin, Accept-Language"]
        )
        self.assertEqual(headers.getRawHeaders(b"connection"), [b"close"])
        self.assertNotIsInstance(headers.copy(), GuardedHeaders)
