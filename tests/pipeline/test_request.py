"""Tests for busd.pipeline.request: URL, query and header building."""

import random

from twisted.trial.unittest import SynchronousTestCase

from busd.config.model import BackendConfig, EndpointConfig
from busd.pipeline.request import (
    USER_AGENT,
    RoundRobin,
    canonical_header,
    format_param,
    make_request_builder,
)
from busd.pipeline.types import ProxyRequest


def _build(url_pattern="/x", hosts=("http://b:1",), **endpoint_kw):
    backend_kw = endpoint_kw.pop("backend", {})
    backend = BackendConfig(
        hosts=hosts, url_pattern=url_pattern, method="GET", **backend_kw
    )
    endpoint = EndpointConfig(
        endpoint="/e", method="GET", backends=(backend,), **endpoint_kw
    )
    return make_request_builder(endpoint, backend, random.Random(1))


class URLTests(SynchronousTestCase):
    def test_placeholders(self):
        """Path params fill url_pattern placeholders by name."""
        build = _build("/bus/{id}/tyre/{pos}")
        req = ProxyRequest(method="GET", params={"id": "42", "pos": "fl"})
        self.assertEqual(build(req).url, "http://b:1/bus/42/tyre/fl")

    def test_placeholder_value_is_quoted(self):
        """A value with reserved characters cannot change the URL's shape."""
        build = _build("/q/{resp0_name}")
        req = ProxyRequest(method="GET", params={"resp0_name": "a b/c?d"})
        self.assertEqual(build(req).url, "http://b:1/q/a%20b%2Fc%3Fd")

    def test_no_query_by_default(self):
        """Without input_query_strings no query string is forwarded."""
        build = _build()
        req = ProxyRequest(method="GET", query=(("a", "1"),))
        self.assertEqual(build(req).url, "http://b:1/x")

    def test_query_allow_list_sorted_and_repeated(self):
        """Allowed names are forwarded sorted by key, repeats kept in order."""
        build = _build(input_query_strings=("b", "a"))
        req = ProxyRequest(
            method="GET", query=(("b", "2"), ("c", "9"), ("a", "1"), ("b", "3"))
        )
        self.assertEqual(build(req).url, "http://b:1/x?a=1&b=2&b=3")

    def test_query_names_case_sensitive(self):
        """Query names are matched case-sensitively, as in KrakenD."""
        build = _build(input_query_strings=("a",))
        req = ProxyRequest(method="GET", query=(("A", "1"),))
        self.assertEqual(build(req).url, "http://b:1/x")

    def test_query_star_and_backend_narrowing(self):
        """The backend list narrows the endpoint's "*"."""
        build = _build(
            input_query_strings=("*",), backend={"input_query_strings": ("z",)}
        )
        req = ProxyRequest(method="GET", query=(("a", "1"), ("z", "2")))
        self.assertEqual(build(req).url, "http://b:1/x?z=2")

    def test_query_appended_to_pattern_query(self):
        """A forwarded query is appended to the url_pattern's own query."""
        build = _build("/x?fixed=1", input_query_strings=("a",))
        req = ProxyRequest(method="GET", query=(("a", "2"),))
        self.assertEqual(build(req).url, "http://b:1/x?fixed=1&a=2")
        self.assertEqual(
            build(ProxyRequest(method="GET")).url, "http://b:1/x?fixed=1"
        )


class HeaderTests(SynchronousTestCase):
    def _headers(self, build, headers, **kw):
        req = ProxyRequest(method="GET", headers=headers, **kw)
        return {k.decode(): [v.decode() for v in vs] for k, vs in build(req).headers.items()}

    def test_only_content_type_by_default(self):
        """With no input_headers only Content-Type passes, plus the gateway's own."""
        got = self._headers(
            _build(),
            (("Content-Type", "application/json"), ("Authorization", "x")),
            client_ip="10.1.2.3",
            host="bus.example",
        )
        self.assertEqual(
            got,
            {
                "Content-Type": ["application/json"],
                "X-Forwarded-For": ["10.1.2.3"],
                "X-Forwarded-Host": ["bus.example"],
                "User-Agent": [USER_AGENT],
            },
        )

    def test_listed_headers_case_insensitive(self):
        """Listed names match case-insensitively and are canonicalised."""
        got = self._headers(
            _build(input_headers=("x-trace-id",)), (("X-TRACE-ID", "t1"),)
        )
        self.assertEqual(got["X-Trace-Id"], ["t1"])

    def test_star_forwards_all_but_hop_by_hop(self):
        """"*" forwards every header except connection-level ones."""
        got = self._headers(
            _build(input_headers=("*",)),
            (("Cookie", "a=b"), ("Connection", "close"), ("X-Forwarded-For", "spoof")),
            client_ip="127.0.0.1",
        )
        self.assertEqual(got["Cookie"], ["a=b"])
        self.assertNotIn("Connection", got)
        self.assertEqual(got["X-Forwarded-For"], ["127.0.0.1"])

    def test_forwarded_user_agent_adds_via(self):
        """A forwarded client User-Agent is kept and X-Forwarded-Via added."""
        got = self._headers(
            _build(input_headers=("User-Agent",)), (("User-Agent", "curl/8"),)
        )
        self.assertEqual(got["User-Agent"], ["curl/8"])
        self.assertEqual(got["X-Forwarded-Via"], [USER_AGENT])

    def test_backend_narrows_headers(self):
        """Backend input_headers narrow the endpoint's list."""
        got = self._headers(
            _build(input_headers=("A", "B"), backend={"input_headers": ("B",)}),
            (("A", "1"), ("B", "2")),
        )
        self.assertNotIn("A", got)
        self.assertEqual(got["B"], ["2"])


class HelperTests(SynchronousTestCase):
    def test_canonical_header(self):
        """Names are canonicalised as Go does."""
        self.assertEqual(canonical_header("x-FOO-bar"), "X-Foo-Bar")

    def test_format_param(self):
        """Values render as KrakenD's sequential params do."""
        for value, text in [
            ("s", "s"),
            (3, "3"),
            (1.5, "1.5"),
            ([1, "a"], "1,a"),
            (True, "true"),
            (None, ""),
            ({"b": 1}, '{"b":1}'),
        ]:
            self.assertEqual(format_param(value), text)

    def test_round_robin(self):
        """Hosts are used in turn from a random start."""
        rr = RoundRobin(["h1", "h2", "h3"], random.Random(0))
        seen = [rr() for _ in range(6)]
        self.assertEqual(sorted(seen[:3]), ["h1", "h2", "h3"])
        self.assertEqual(seen[:3], seen[3:])


class PatternQueryTests(SynchronousTestCase):
    def test_placeholder_in_pattern_query(self):
        """A placeholder in the url_pattern's query is filled and escaped."""
        build = _build("/assign?bus={id}&x=1", input_query_strings=("a",))
        req = ProxyRequest(method="GET", params={"id": "F&W=1"}, query=(("a", "2"),))
        self.assertEqual(build(req).url, "http://b:1/assign?bus=F%26W%3D1&x=1&a=2")
