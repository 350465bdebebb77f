"""Pre-built backend URLs and Host headers (busd.pipeline.request): what
the fast client sends must be exactly what treq would have sent."""

import random

from hyperlink import EncodedURL
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from busd.config.model import BackendConfig, EndpointConfig
from busd.pipeline.request import make_request_builder
from busd.pipeline.types import ProxyRequest


def _build(url_pattern="/x", hosts=("http://b:1",), **endpoint_kw):
    backend = BackendConfig(hosts=hosts, url_pattern=url_pattern, method="GET")
    endpoint = EndpointConfig(
        endpoint="/e", method="GET", backends=(backend,), **endpoint_kw
    )
    return make_request_builder(endpoint, backend, random.Random(1))


class PrebuiltTests(SynchronousTestCase):
    def test_uri_and_host(self) -> None:
        """A plain ASCII backend gets the encoded URI and Agent's Host value."""
        got = _build("/v/{id}")(ProxyRequest(method="GET", params={"id": "7"}))
        self.assertEqual((got.uri, got.host_header), (b"http://b:1/v/7", b"b:1"))

    def test_default_ports_and_ipv6(self) -> None:
        """The Host value has no default port, as Agent's; URLs treq would
        rewrite (an explicit default port) or cannot encode (IPv6) stay treq's."""
        req = ProxyRequest(method="GET")
        self.assertEqual(_build(hosts=("http://b",))(req).host_header, b"b")
        self.assertEqual(_build(hosts=("https://b",))(req).host_header, b"b")
        self.assertEqual(_build(hosts=("https://b:8443",))(req).host_header, b"b:8443")
        self.assertEqual(_build(hosts=("http://b:80",))(req).uri, None)
        self.assertEqual(_build(hosts=("http://[::1]:9000",))(req).host_header, None)

    def test_non_ascii_pattern_left_to_treq(self) -> None:
        """A literal treq would re-encode gets no pre-built URI (treq encodes it)."""
        got = _build("/caf\u00e9")(ProxyRequest(method="GET"))
        self.assertEqual((got.uri, got.host_header, got.url), (None, None, "http://b:1/caf\u00e9"))

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(
        value=st.text(max_size=12),
        query=st.lists(
            st.tuples(st.sampled_from(["a", "b", "z"]), st.text(max_size=8)),
            max_size=4,
        ),
    )
    def test_same_as_treq(self, value, query) -> None:
        """For any parameter and query, the URI is what treq's to_uri gives."""
        build = _build("/p/{id}?fixed=1&k={id}", input_query_strings=("a", "b"))
        req = ProxyRequest(method="GET", params={"id": value}, query=tuple(query))
        got = build(req)
        treq_uri = EncodedURL.from_text(got.url).to_uri().to_text().encode("ascii")
        self.assertEqual(got.uri, treq_uri)
