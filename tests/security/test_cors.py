"""security/cors: reading the namespace, and the header decisions
(rs/cors's, as KrakenD CE uses them) as pure functions."""

from __future__ import annotations

from typing import Any, Dict

from twisted.trial.unittest import SynchronousTestCase

from busd.config import parse_config
from busd.security.cors import (
    DEFAULT_HEADERS,
    DEFAULT_METHODS,
    CorsConfig,
    CorsPolicy,
)
from tests.config._support import problems, service as svc, table_tests

NS = "security/cors"
W, E = "warning", "error"


def with_cors(**options: Any) -> Dict[str, Any]:
    return svc(extra_config={NS: options})


def parsed(**options: Any) -> CorsConfig:
    cors = parse_config(with_cors(**options)).config.cors
    assert cors is not None
    return cors


# fmt: off
PROBLEMS = [
    ("credentials_wildcard", "Credentials with any origin is an error.",
     with_cors(allow_credentials=True), E,
     f"extra_config.{NS}.allow_credentials", "wildcard origin"),
    ("two_wildcards", "An origin may hold one wildcard only.",
     with_cors(allow_origins=["https://*.*.example.com"]), E,
     f"extra_config.{NS}.allow_origins[0]", "at most one"),
    ("origin_path", "An origin with a path never matches (warning).",
     with_cors(allow_origins=["https://app.example.com/"]), W,
     f"extra_config.{NS}.allow_origins[0]", "has a path"),
    ("origin_scheme", "An origin without a scheme never matches (warning).",
     with_cors(allow_origins=["app.example.com"]), W,
     f"extra_config.{NS}.allow_origins[0]", "no scheme"),
    ("bad_header", "A header name must be a token.",
     with_cors(allow_headers=["X Bad"]), E,
     f"extra_config.{NS}.allow_headers[0]", "invalid header name"),
    ("bad_max_age", "max_age is a duration.",
     with_cors(max_age=3600), E, f"extra_config.{NS}.max_age",
     "duration"),
    ("unknown_key", "An unknown key is a warning.",
     with_cors(allow_origin=["*"]), W, f"extra_config.{NS}.allow_origin",
     'did you mean "allow_origins"'),
    ("endpoint_level", "security/cors belongs to the service.",
     svc({"endpoint": "/a", "backend": [{"url_pattern": "/x"}],
          "extra_config": {NS: {}}}), W,
     f"endpoints[0].extra_config.{NS}", "service level"),
]
# fmt: on


class CorsConfigTests(SynchronousTestCase):
    locals().update(table_tests(PROBLEMS))

    def test_off_by_default(self) -> None:
        """Without the namespace there is no CORS at all."""
        self.assertIsNone(parse_config(svc()).config.cors)

    def test_defaults(self) -> None:
        """An empty block allows any origin with rs/cors's default methods
        and headers, no max age, no credentials."""
        cors = parsed()
        self.assertEqual(cors.allow_origins, ("*",))
        self.assertEqual(cors.allow_methods, DEFAULT_METHODS)
        self.assertEqual(cors.allow_headers, DEFAULT_HEADERS)
        self.assertEqual((cors.max_age, cors.allow_credentials), (0.0, False))

    def test_values(self) -> None:
        """Origins are lower-cased, methods upper-cased, headers made
        canonical with Origin added, and max_age read as a duration."""
        cors = parsed(
            allow_origins=["https://App.Example.com"],
            allow_methods=["get", "put"],
            allow_headers=["authorization", "x-bus-id"],
            expose_headers=["x-krakend-completed"],
            max_age="12h",
            allow_credentials=True,
            options_passthrough=True,
            debug=True,
        )
        self.assertEqual(cors.allow_origins, ("https://app.example.com",))
        self.assertEqual(cors.allow_methods, ("GET", "PUT"))
        self.assertEqual(
            cors.allow_headers, ("Authorization", "X-Bus-Id", "Origin")
        )
        self.assertEqual(cors.expose_headers, ("X-Krakend-Completed",))
        self.assertEqual(cors.max_age, 43200.0)
        self.assertTrue(cors.allow_credentials and cors.options_passthrough)

    def test_old_namespace_name(self) -> None:
        """The long v2 name github_com/devopsfaith/krakend-cors is read."""
        raw = svc(
            extra_config={
                "github_com/devopsfaith/krakend-cors": {"allow_origins": ["*"]}
            }
        )
        self.assertEqual(problems(raw), [])
        self.assertIsNotNone(parse_config(raw).config.cors)


class CorsPolicyTests(SynchronousTestCase):
    def policy(self, **options: Any) -> CorsPolicy:
        return CorsPolicy(CorsConfig(**options))

    def test_any_origin(self) -> None:
        """With "*", an actual request gets Allow-Origin "*"."""
        self.assertEqual(
            self.policy().actual("https://a.example", "GET"),
            [("Access-Control-Allow-Origin", "*")],
        )

    def test_listed_origin_is_echoed(self) -> None:
        """A listed origin is echoed (case-insensitively matched) with
        credentials and exposed headers; another origin gets nothing."""
        policy = self.policy(
            allow_origins=("https://a.example",),
            allow_credentials=True,
            expose_headers=("X-Krakend-Completed",),
        )
        self.assertEqual(
            policy.actual("https://A.example", "GET"),
            [
                ("Access-Control-Allow-Origin", "https://A.example"),
                ("Access-Control-Expose-Headers", "X-Krakend-Completed"),
                ("Access-Control-Allow-Credentials", "true"),
            ],
        )
        self.assertEqual(policy.actual("https://evil.example", "GET"), [])

    def test_wildcard_origin(self) -> None:
        """One wildcard matches any middle part, not a bare suffix trick."""
        policy = self.policy(allow_origins=("https://*.fleet.example",))
        self.assertTrue(policy.origin_allowed("https://bus1.fleet.example"))
        self.assertFalse(policy.origin_allowed("https://fleet.example"))
        self.assertFalse(policy.origin_allowed("https://evilfleet.example"))
        self.assertFalse(policy.origin_allowed("http://bus1.fleet.example"))

    def test_no_origin_no_headers(self) -> None:
        """A same-origin request (no Origin) gets no CORS headers."""
        self.assertEqual(self.policy().actual(None, "GET"), [])

    def test_method_not_allowed(self) -> None:
        """A method outside allow_methods gets no CORS headers."""
        self.assertEqual(
            self.policy().actual("https://a.example", "DELETE"), []
        )

    def test_preflight_allowed(self) -> None:
        """An allowed preflight echoes the method and requested headers and
        carries the max age."""
        policy = self.policy(
            allow_methods=("GET", "PUT"),
            allow_headers=("Authorization", "Origin"),
            max_age=600.0,
        )
        self.assertEqual(
            policy.preflight("https://a.example", "put", "authorization"),
            [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", "PUT"),
                ("Access-Control-Allow-Headers", "authorization"),
                ("Access-Control-Max-Age", "600"),
            ],
        )

    def test_preflight_refusals(self) -> None:
        """A preflight with a disallowed method, header or origin, or
        without an origin, gets no CORS headers at all."""
        policy = self.policy(allow_origins=("https://a.example",))
        cases = [
            ("https://a.example", "DELETE", ""),
            ("https://a.example", "GET", "X-Secret"),
            ("https://b.example", "GET", ""),
            (None, "GET", ""),
        ]
        for origin, method, headers in cases:
            self.assertEqual(policy.preflight(origin, method, headers), [])

    def test_any_header(self) -> None:
        """allow_headers "*" accepts any requested header."""
        policy = self.policy(allow_headers=("*",))
        self.assertTrue(policy.headers_allowed(["X-Anything", "authorization"]))

    def test_options_always_allowed(self) -> None:
        """OPTIONS is allowed whatever allow_methods says, as in rs/cors."""
        self.assertTrue(
            self.policy(allow_methods=("GET",)).method_allowed("OPTIONS")
        )
