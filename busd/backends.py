"""The outbound HTTP client every backend call goes through.

One ``Agent`` over one owned, persistent ``HTTPConnectionPool`` (never
treq's global pool), with a connect timeout, service-identity checked TLS
and a cookie jar that refuses every cookie, so no session leaks from one
caller to the next (STYLE.md 4.6).

The client is treq's :class:`~treq.client.HTTPClient` with one fast path
(:class:`GatewayHTTPClient`): a call whose URL is already an encoded URI
(bytes, as the pipeline pre-builds them) and whose headers are a
``Headers`` skips what treq redoes per call (URL parsing and IDNA, a
cookie jar per call, three agent wrappers built per call); the agent
stack behind it (gzip decoding, redirects) is built once. Profiles put
treq's per-call work at about a quarter of a proxied request.
"""

from __future__ import annotations

from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any, Dict, Iterator, Optional, Tuple

from treq.client import HTTPClient, _BufferedResponse
from treq.cookies import IndexableCookieJar
from treq.response import _Response
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    ContentDecoderAgent,
    GzipDecoder,
    HTTPConnectionPool,
    RedirectAgent,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

__all__ = [
    "make_pool",
    "make_client",
    "pool_size",
    "BackendsService",
    "no_cookie_jar",
    "GatewayHTTPClient",
    "NoCookies",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_PERSISTENT_PER_HOST = 250
DEFAULT_CACHED_CONNECTION_TIMEOUT = 60


class NoCookies(IndexableCookieJar):
    """A cookie jar that is always empty, without walking anything: it
    adds no ``Cookie`` header, stores no ``Set-Cookie`` and iterates as
    empty, so treq's per-call merge and ``CookieAgent`` cost nothing.
    Its policy also accepts no domain, for code that bypasses these."""

    def __init__(self) -> None:
        super().__init__(DefaultCookiePolicy(allowed_domains=[]))

    def add_cookie_header(self, request: Any) -> None:
        pass

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: Cookie) -> None:
        pass

    def set_cookie_if_ok(self, cookie: Cookie, request: Any) -> None:
        pass

    def __iter__(self) -> Iterator[Cookie]:
        return iter(())

    def __len__(self) -> int:
        return 0


def no_cookie_jar() -> CookieJar:
    """A jar that refuses every cookie: backends' cookies are dropped."""
    return NoCookies()


@implementer(IAgentEndpointFactory)
class _EndpointCache:
    """The Agent's endpoint per (scheme, host, port), built once: TCP for
    http, TCP+TLS (``policy``) for https, as Twisted's standard factory
    does, which builds a new HostnameEndpoint for every request."""

    def __init__(self, reactor: Any, policy: IPolicyForHTTPS, timeout: float):
        self._reactor = reactor
        self._policy = policy
        self._timeout = timeout
        self._cache: Dict[Tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._cache.get(key)
        if endpoint is None:
            endpoint = self._build(uri)
            if len(self._cache) < 1024:  # hosts come from the config
                self._cache[key] = endpoint
        return endpoint

    def _build(self, uri: URI) -> IStreamClientEndpoint:
        from twisted.web.error import SchemeNotSupported

        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"Unsupported scheme: {uri.scheme!r}")
        try:
            host = uri.host.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"non-ASCII host in {uri.host!r}")
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            self._reactor, host, uri.port, timeout=self._timeout
        )
        if uri.scheme == b"https":
            creator = self._policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint


class GatewayHTTPClient(HTTPClient):
    """treq's client with a fast path for pre-built requests.

    ``request(method, url, headers=..., data=..., unbuffered=...)`` with
    ``url`` as bytes (an encoded URI, as ``str(EncodedURL.to_uri())``
    would give) and ``headers`` as ``Headers`` goes straight to an agent
    stack built once (gzip decoding and redirects as treq's defaults; no
    cookies: the jar is :class:`NoCookies`). Every other call is treq's
    own. The answer is treq's ``_Response`` either way.
    """

    def __init__(self, agent: IAgent, *, follow_redirects: bool = True):
        super().__init__(agent, cookiejar=NoCookies())
        # Without follow_redirects a 3xx is the answer (the central: a bus
        # must not make it fetch another URL, e.g. on its own network).
        self._follow = follow_redirects
        # The pre-built Host header must not follow a redirect to another
        # origin: dropped there, the Agent computes the new one.
        inner: IAgent = (
            RedirectAgent(agent, sensitiveHeaderNames=[b"Host"])
            if follow_redirects
            else agent
        )
        self._fast: IAgent = ContentDecoderAgent(inner, [(b"gzip", GzipDecoder)])

    def request(
        self,
        method: str,
        url: Any,
        *,
        headers: Any = None,
        data: Any = None,
        unbuffered: bool = False,
        **kwargs: Any,
    ) -> "Deferred[_Response]":
        kwargs.pop("_stacklevel", None)
        if (
            kwargs
            or type(url) is not bytes
            or type(headers) is not Headers
            or (data is not None and type(data) is not bytes)
        ):
            if not self._follow:
                kwargs.setdefault("allow_redirects", False)
            return super().request(
                method, url, headers=headers, data=data, unbuffered=unbuffered,
                _stacklevel=3, **kwargs
            )
        producer: Optional[IBodyProducer] = None
        if data is not None:
            producer = self._data_to_body_producer(data)
        d = self._fast.request(
            method.encode("ascii").upper(), url, headers, producer
        )
        if not unbuffered:
            d.addCallback(_BufferedResponse)
        return d.addCallback(_Response, self._cookiejar)


class _QuietClientFactory(_HTTP11ClientFactory):
    """The pool's connection factory without a log line per connection."""

    noisy = False


def pool_size(config: Any) -> int:
    """Idle connections worth keeping per backend host for ``config``: one
    for every call that can be in flight to it (the in-flight request cap
    times the most calls one request makes to one host). A smaller pool
    closes connections that come back while as many calls are running,
    and opens new ones on the next burst (profiles: connect churn)."""
    per_request = 1
    for endpoint in config.endpoints:
        calls: Dict[str, int] = {}
        for backend in endpoint.backends:
            for host in set(backend.hosts):
                calls[host] = calls.get(host, 0) + endpoint.concurrent_calls
        per_request = max([per_request, *calls.values()])
    return int(config.limits.max_in_flight) * per_request


def make_pool(
    reactor: Any,
    *,
    max_per_host: int = DEFAULT_MAX_PERSISTENT_PER_HOST,
    cached_timeout: int = DEFAULT_CACHED_CONNECTION_TIMEOUT,
) -> HTTPConnectionPool:
    """A persistent pool keeping up to ``max_per_host`` idle connections to
    each backend, each closed after ``cached_timeout`` seconds idle."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = max_per_host
    pool.cachedConnectionTimeout = cached_timeout
    pool.retryAutomatically = False  # a gateway must not replay POSTs
    pool._factory = _QuietClientFactory
    return pool


def make_client(
    reactor: Any,
    pool: HTTPConnectionPool,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    tls_policy: Optional[IPolicyForHTTPS] = None,
    follow_redirects: bool = True,
) -> HTTPClient:
    """The production :class:`HTTPClient` for backend calls. HTTPS uses
    ``tls_policy`` (``busd.tls.make_tls_policy``), by default Twisted's
    service-identity checked policy over the system CAs. With
    ``follow_redirects`` false a 3xx answer is returned as it is."""
    endpoints = _EndpointCache(
        reactor, tls_policy or BrowserLikePolicyForHTTPS(), connect_timeout
    )
    agent = Agent.usingEndpointFactory(reactor, endpoints, pool=pool)
    return GatewayHTTPClient(agent, follow_redirects=follow_redirects)


class BackendsService(Service):
    """Owns the connection pool: closes its cached connections on stop."""

    name = "backends"

    def __init__(self, pool: HTTPConnectionPool):
        self.pool = pool

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return self.pool.closeCachedConnections()
