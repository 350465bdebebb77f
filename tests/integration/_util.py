"""Loopback helpers: real listeners on 127.0.0.1 that clean up after
themselves, so trial never sees a dirty reactor."""

from __future__ import annotations

import random
from typing import Any, List

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.trial.unittest import TestCase
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
)
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Site

LOOPBACK = "tcp:0:interface=127.0.0.1"


class _TrackedChannel(HTTPChannel):
    def connectionMade(self) -> None:
        super().connectionMade()
        self.lost: Deferred[None] = Deferred()
        self.factory.channels.append(self)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


class TrackingSite(Site):
    """A Site that remembers its connections so a test can close them and
    wait until each is really gone (server-side disconnects come a turn
    later than the client's)."""

    protocol = _TrackedChannel
    noisy = False

    def __init__(self, resource: IResource):
        super().__init__(resource)
        self.channels: List[_TrackedChannel] = []

    def close_all(self) -> "Deferred[Any]":
        waits = []
        for ch in self.channels:
            if not ch.lost.called:
                ch.transport.abortConnection()
                waits.append(ch.lost)
        return DeferredList(waits)

    def log(self, request: Any) -> None:
        pass  # no access log noise in tests


@inlineCallbacks
def serve(case: TestCase, resource: IResource, tls: Any = None) -> Any:
    """Listen on a loopback port; return ``(base_url, site)``; cleanups stop
    listening and close every connection. With ``tls`` (server
    ``CertificateOptions``, see ``busd.testing_tls.server_options``) it
    serves HTTPS."""
    site = TrackingSite(resource)
    if tls is None:
        endpoint: Any = serverFromString(reactor, LOOPBACK)
    else:
        endpoint = SSL4ServerEndpoint(reactor, 0, tls, interface="127.0.0.1")
    port = yield endpoint.listen(site)
    case.addCleanup(site.close_all)
    case.addCleanup(port.stopListening)
    scheme = "http" if tls is None else "https"
    return f"{scheme}://127.0.0.1:{port.getHost().port}", site


@inlineCallbacks
def start_gateway(case: TestCase, config: Any, listen: str = LOOPBACK) -> Any:
    """Serve a parsed ``GatewayConfig`` through the real service tree on a
    loopback port (``listen``: an ``ssl:`` string serves HTTPS, see
    ``busd.testing_tls.ssl_listen``); return the base URL. Cleanups stop
    the service and close every connection."""
    from busd.service import build_service

    svc = build_service(
        config,
        reactor,
        listen=[listen],
        rng=random.Random(0),
        site_class=TrackingSite,
    )
    svc.startService()
    http = svc.getServiceNamed("http")
    port = yield http.whenListening()
    case.addCleanup(http.factory.close_all)
    case.addCleanup(svc.stopService)
    scheme = "https" if listen.startswith("ssl:") else "http"
    return f"{scheme}://127.0.0.1:{port.getHost().port}"


def client(case: TestCase, tls_policy: Any = None) -> HTTPClient:
    """A test HTTP client with its own non-persistent pool; HTTPS trusts
    the system CAs unless ``tls_policy`` (an ``IPolicyForHTTPS``) says
    otherwise."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    case.addCleanup(pool.closeCachedConnections)
    policy = tls_policy or BrowserLikePolicyForHTTPS()
    return HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))
