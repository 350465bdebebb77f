"""A listener the demo can switch off and on, and whose port is known
before the site behind it exists.

The fleet demo needs both: every bus's config names its central's URL and
the central's fleet file names every bus's URL, so all ports are bound
(port 0 picks a free one) before any config is written; and "stopping a
bus" must close its listener *and* the connections already open to it
(the central's connection pool keeps them alive), then listen again on
the same port.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IProtocolFactory
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from busd.demo.devices import tcp_listen

__all__ = ["Gate"]


class Gate(WrappingFactory):
    """A server factory in front of ``target`` (set later with
    :meth:`serve`), listening on ``interface`` while open.

    Connections made before a target is set are dropped. ``port`` is the
    bound port number once :meth:`open` succeeded; :meth:`open` again
    (after :meth:`close`) binds that same number. ``name`` starts the
    "... starting on PORT" log line.
    """

    noisy = False

    def __init__(
        self,
        reactor: Any,
        port: int = 0,
        interface: str = "127.0.0.1",
        name: str = "Gate",
    ):
        super().__init__(None)
        self._reactor = reactor
        self.name = name
        self.port = port
        self.interface = interface
        self._listening: Optional[IListeningPort] = None
        self._gone: Dict[ProtocolWrapper, "Deferred[None]"] = {}

    @property
    def is_open(self) -> bool:
        return self._listening is not None

    def serve(self, target: IProtocolFactory) -> None:
        """Hand new connections to ``target`` from now on."""
        self.wrappedFactory = target
        if self.numPorts:
            target.doStart()

    async def open(self) -> int:
        """Listen (no-op when open); the bound port number."""
        if self._listening is None:
            desc = tcp_listen(self.port, self.interface)
            endpoint = serverFromString(self._reactor, desc)
            self._listening = await endpoint.listen(self)
            self.port = self._listening.getHost().port  # type: ignore[union-attr]
        return self.port

    def close(self) -> "Deferred[Any]":
        """Stop listening and abort every open connection; fires once all
        of them are gone (so nothing is left for the next test)."""
        listening, self._listening = self._listening, None
        waits: List["Deferred[Any]"] = []
        if listening is not None:
            waits.append(maybeDeferred(listening.stopListening))
        for proto in list(self.protocols):
            waits.append(self._gone.setdefault(proto, Deferred()))
            proto.transport.abortConnection()
        if not waits:
            return succeed(None)
        return DeferredList(waits, consumeErrors=True)

    # -- WrappingFactory ----------------------------------------------------

    def buildProtocol(self, addr: Optional[IAddress]) -> Any:
        if self.wrappedFactory is None:
            return None  # not serving yet: the connection is closed
        inner = self.wrappedFactory.buildProtocol(addr)
        return None if inner is None else self.protocol(self, inner)

    def doStart(self) -> None:
        if self.wrappedFactory is not None:
            self.wrappedFactory.doStart()
        self.numPorts += 1  # Factory.doStart without its log line

    def doStop(self) -> None:
        if self.wrappedFactory is not None:
            self.wrappedFactory.doStop()
        if self.numPorts:
            self.numPorts -= 1

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        gone = self._gone.pop(p, None)
        if gone is not None:
            gone.callback(None)

    def logPrefix(self) -> str:
        # Twisted logs "<prefix> starting on <port>" when it listens.
        return self.name
