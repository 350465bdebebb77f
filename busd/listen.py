"""Listening sockets tuned for load: a deep backlog, and SO_REUSEPORT for
``busgw run --workers N``.

Twisted's TCP and TLS endpoints listen with a backlog of 50: at c=1000
the kernel drops connections (clients see resets and retries seconds
later). :func:`tune` raises it to :data:`DEFAULT_BACKLOG` unless the
listen string gives ``backlog=`` itself (the kernel caps it at
``net.core.somaxconn``). With ``reuse_port`` every worker process binds
its own socket to the same address and the kernel spreads new
connections across them.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import endpoints, tcp
from twisted.internet.defer import Deferred, execute
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

__all__ = ["DEFAULT_BACKLOG", "tune", "ReusePortEndpoint"]

DEFAULT_BACKLOG = 1024
_TCP_ENDPOINTS = (
    endpoints.TCP4ServerEndpoint,
    endpoints.TCP6ServerEndpoint,
    endpoints.SSL4ServerEndpoint,
)


def tune(
    endpoint: IStreamServerEndpoint, description: str, reuse_port: bool = False
) -> IStreamServerEndpoint:
    """``endpoint`` (parsed from ``description``) with the backlog raised
    and, if asked, SO_REUSEPORT; endpoints other than tcp/ssl are returned
    as they are (``reuse_port`` then raises ValueError)."""
    if not isinstance(endpoint, _TCP_ENDPOINTS):
        if reuse_port:
            raise ValueError(
                f"--workers needs tcp: or ssl: listen strings, not {description!r}"
            )
        return endpoint
    if "backlog=" not in description:
        endpoint._backlog = DEFAULT_BACKLOG
    if reuse_port:
        return ReusePortEndpoint(endpoint)
    return endpoint


class _ReusePort(tcp.Port):
    """A TCP port whose socket is bound with SO_REUSEPORT."""

    def createInternetSocket(self) -> socket.socket:
        s = super().createInternetSocket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return s


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """Listens where ``inner`` (a TCP or TLS server endpoint) would, with
    SO_REUSEPORT, so several processes can serve one port."""

    def __init__(self, inner: Any):
        self._inner = inner

    def listen(self, factory: Any) -> "Deferred[IListeningPort]":
        inner = self._inner
        context = getattr(inner, "_sslContextFactory", None)
        if context is not None:
            factory = TLSMemoryBIOFactory(context, False, factory)
        port = _ReusePort(
            inner._port, factory, inner._backlog, inner._interface, inner._reactor
        )

        def start() -> IListeningPort:
            port.startListening()
            return port

        return execute(start)
