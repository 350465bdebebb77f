"""Tests for busd.backends: the cookie-less jar, treq's fast path for
pre-built requests, the endpoint cache and the pool size."""

from http.cookiejar import Cookie
from typing import Any, List, Tuple

from treq.response import _Response
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from zope.interface import implementer

from busd.backends import (
    GatewayHTTPClient,
    NoCookies,
    _EndpointCache,
    make_client,
    make_pool,
    pool_size,
)
from busd.config.load import parse_config
from tests.helpers import B1, B2, config


class _Response200:
    code = 200
    phrase = b"OK"
    version = (b"HTTP", 1, 1)
    length = 0
    headers = Headers()
    previousResponse = None
    request = None

    def deliverBody(self, protocol: Any) -> None:  # pragma: no cover
        pass


@implementer(IAgent)
class RecordingAgent:
    """An IAgent answering 200 at once and keeping each call."""

    def __init__(self) -> None:
        self.calls: List[Tuple[bytes, bytes, Headers, Any]] = []

    def request(
        self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None
    ) -> "Deferred[Any]":
        self.calls.append((method, uri, headers, bodyProducer))
        return succeed(_Response200())


def _cookie() -> Cookie:
    return Cookie(
        0, "s", "1", None, False, "b1", False, False, "/", False, False,
        None, False, None, None, {},
    )


class NoCookiesTests(SynchronousTestCase):
    def test_never_holds_a_cookie(self) -> None:
        """set_cookie, extract and iteration: the jar stays empty."""
        jar = NoCookies()
        jar.set_cookie(_cookie())
        jar.extract_cookies(object(), object())
        self.assertEqual((list(jar), len(jar)), ([], 0))


class FastPathTests(SynchronousTestCase):
    def test_prebuilt_request_skips_treq(self) -> None:
        """Bytes URL and Headers go to the agent as they are, gzip accepted."""
        agent = RecordingAgent()
        client = GatewayHTTPClient(agent)
        headers = Headers({b"Host": [b"b1:8001"]})
        d = client.request("get", b"http://b1:8001/v?a=1", headers=headers)
        response = self.successResultOf(d)
        self.assertIsInstance(response, _Response)
        [(method, uri, sent, body)] = agent.calls
        self.assertEqual((method, uri, body), (b"GET", b"http://b1:8001/v?a=1", None))
        self.assertEqual(sent.getRawHeaders(b"accept-encoding"), [b"gzip"])
        self.assertEqual(sent.getRawHeaders(b"host"), [b"b1:8001"])

    def test_other_calls_are_treqs(self) -> None:
        """A str URL (or any treq option) takes treq's own path, unchanged."""
        agent = RecordingAgent()
        client = GatewayHTTPClient(agent)
        self.successResultOf(client.get("http://b1:8001/v", params={"q": "1 2"}))
        self.successResultOf(client.request("POST", b"http://b1/x", data={"a": "b"}))
        uris = [call[1] for call in agent.calls]
        self.assertEqual(uris, [b"http://b1:8001/v?q=1+2", b"http://b1/x"])
        self.assertEqual(
            agent.calls[1][2].getRawHeaders(b"content-type"),
            [b"application/x-www-form-urlencoded"],
        )

    def test_body_bytes(self) -> None:
        """A bytes body becomes a body producer of that length."""
        agent = RecordingAgent()
        client = GatewayHTTPClient(agent)
        self.successResultOf(
            client.request("POST", b"http://b1/x", headers=Headers(), data=b"abc")
        )
        self.assertEqual(agent.calls[0][3].length, 3)


class EndpointCacheTests(SynchronousTestCase):
    def test_one_endpoint_per_host(self) -> None:
        """The same endpoint object serves every request to one host."""
        from twisted.web.client import BrowserLikePolicyForHTTPS

        cache = _EndpointCache(MemoryReactorClock(), BrowserLikePolicyForHTTPS(), 5)
        a = cache.endpointForURI(URI.fromBytes(b"http://b1:8001/a"))
        b = cache.endpointForURI(URI.fromBytes(b"http://b1:8001/b"))
        c = cache.endpointForURI(URI.fromBytes(b"https://b1:8001/b"))
        self.assertIs(a, b)
        self.assertIsNot(a, c)
        self.assertRaises(
            SchemeNotSupported, cache.endpointForURI, URI.fromBytes(b"ftp://b1/x")
        )

    def test_make_client_answers(self) -> None:
        """make_client gives the fast client over the owned pool."""
        reactor = MemoryReactorClock()
        client = make_client(reactor, make_pool(reactor))
        self.assertIsInstance(client, GatewayHTTPClient)
        self.assertIsInstance(client._cookiejar, NoCookies)


class PoolSizeTests(SynchronousTestCase):
    def test_covers_calls_in_flight(self) -> None:
        """In-flight cap times the most calls a request makes to one host."""
        raw = config(
            [
                {
                    "endpoint": "/a",
                    "concurrent_calls": 2,
                    "backend": [
                        {"host": [B1], "url_pattern": "/1"},
                        {"host": [B1], "url_pattern": "/2"},
                        {"host": [B2], "url_pattern": "/3"},
                    ],
                }
            ],
            extra_config={"busgw/limits": {"max_in_flight": 10}},
        )
        self.assertEqual(pool_size(parse_config(raw).config), 40)
        plain = config([{"endpoint": "/b", "backend": [{"host": [B1], "url_pattern": "/1"}]}])
        self.assertEqual(pool_size(parse_config(plain).config), 256)
