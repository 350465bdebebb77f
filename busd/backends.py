"""The outbound HTTP client every backend call goes through.

One ``Agent`` over one owned, persistent ``HTTPConnectionPool`` (never
treq's global pool), with a connect timeout, service-identity checked TLS
and a cookie jar that refuses every cookie, so no session leaks from one
caller to the next (STYLE.md 4.6).
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Optional, cast

from treq.client import HTTPClient
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.iweb import IPolicyForHTTPS

__all__ = ["make_pool", "make_client", "BackendsService", "no_cookie_jar"]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_PERSISTENT_PER_HOST = 250
DEFAULT_CACHED_CONNECTION_TIMEOUT = 60


def no_cookie_jar() -> CookieJar:
    """A jar whose policy accepts no domain: backends' cookies are dropped."""
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))


class _QuietClientFactory(_HTTP11ClientFactory):
    """The pool's connection factory without a log line per connection."""

    noisy = False


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
) -> HTTPClient:
    """The production :class:`HTTPClient` for backend calls. HTTPS uses
    ``tls_policy`` (``busd.tls.make_tls_policy``), by default Twisted's
    service-identity checked policy over the system CAs."""
    agent = Agent(
        reactor,
        contextFactory=tls_policy or BrowserLikePolicyForHTTPS(),
        connectTimeout=connect_timeout,
        pool=pool,
    )
    return HTTPClient(agent, cookiejar=cast(Any, no_cookie_jar()))


class BackendsService(Service):
    """Owns the connection pool: closes its cached connections on stop."""

    name = "backends"

    def __init__(self, pool: HTTPConnectionPool):
        self.pool = pool

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return self.pool.closeCachedConnections()
