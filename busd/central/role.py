"""The central role: one long-lived service holding what the central's
parts share, and the parts themselves.

:class:`CentralRole` is built once from the first config (``build_roles``)
and survives reloads. It owns the shared pieces:

* ``config`` / ``fleet``: the current ``busgw/central`` block and its
  buses; a reload (SIGHUP, ``busgw reload``, ``POST /reload``) that
  loaded a new config swaps them in :meth:`install` (a config or fleet
  file that does not load keeps the old one: the gateway logs why);
* ``client``: the HTTP client for calls to buses and webhooks (its pool,
  sized to the poll concurrency, is closed on stop);
* ``tokens``: the central's per-bus tokens (None without ``signing``);
* ``hub``: the server-sent events hub (``publish(kind, data)``);
* ``parts``: the poller, the fleet routes, event ingest, the dashboard...
  each an object with ``start()``, ``stop()`` (may return a Deferred),
  ``install(app)`` and ``fleet_changed()``, made by a factory in
  :data:`PARTS` from this role.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List, Optional, Protocol, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from busd.config._central import BusEntry, CentralRoleConfig
from busd.config.model import GatewayConfig

if TYPE_CHECKING:
    from busd.app import GatewayApp
    from busd.central.tokens import BusTokens

__all__ = ["CentralRole", "Part", "PARTS"]

_log = Logger()

#: ``module:factory`` of each part, in start order; ``factory(role)``
#: returns a :class:`Part`.
PARTS: Tuple[str, ...] = (
    "busd.central.stream:make_part",
    "busd.central.poller:make_part",
    "busd.central.routes:make_part",
    "busd.central.ingest:make_part",
    "busd.central.live:make_part",
    "busd.central.dashboard:make_part",
)


class Part(Protocol):
    def start(self) -> None: ...

    def stop(self) -> Any: ...

    def install(self, app: "GatewayApp") -> None: ...

    def fleet_changed(self) -> None: ...


class CentralRole(Service):
    """The ``central`` role (an ``IService`` with :meth:`install`)."""

    name = "central"

    def __init__(
        self,
        config: GatewayConfig,
        reactor: Any,
        clock: IReactorTime,
        *,
        client: Any = None,
        metrics: Any = None,
    ):
        assert config.central is not None
        self.gateway_config = config
        self.config: CentralRoleConfig = config.central
        self.reactor = reactor
        self.clock = clock
        self.tokens: Optional["BusTokens"] = None
        self._own_client = client is None
        self.client: Any = client
        self._pool: Any = None
        self.hub: Any = None
        #: busd.pipeline.build.BackendFactory for busgw/fleet backends, set
        #: by the live part; the gateway passes it to every generation.
        self.backend_factory: Any = None
        #: The central's series (busd.central.metrics) on the registry of
        #: ``metrics`` (the gateway's GatewayMetrics); None without one.
        self.metrics: Any = None
        if metrics is not None:
            from busd.central.metrics import CentralMetrics

            self.metrics = CentralMetrics(metrics.registry, self)
        self.parts: List[Part] = []
        for spec in PARTS:
            module, _, factory = spec.partition(":")
            make = getattr(importlib.import_module(module), factory)
            self.parts.append(make(self))

    @property
    def fleet(self) -> Tuple[BusEntry, ...]:
        return self.config.fleet

    def startService(self) -> None:
        super().startService()
        if self.client is None:
            self.client = self._make_client()
        if self.config.signing is not None and self.tokens is None:
            self.tokens = _load_tokens(self.config, self.clock)
        for part in self.parts:
            part.start()

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        stops = [maybeDeferred(p.stop) for p in reversed(self.parts)]
        d: Deferred[Any] = DeferredList(stops, consumeErrors=True)
        d.addCallback(lambda _: self._close_pool())
        return d

    def install(self, app: "GatewayApp") -> None:
        new = app.config.central
        if new is not None and new is not self.config:
            old = {b.id for b in self.config.fleet}
            self.config = new
            if {b.id for b in new.fleet} != old:
                _log.info(
                    "central: fleet now has {count} bus(es)",
                    count=len(new.fleet),
                )
            if self.tokens is not None:
                self.tokens.forget({b.id for b in new.fleet})
            for part in self.parts:
                part.fleet_changed()
        for part in self.parts:
            part.install(app)

    # -- shared pieces ------------------------------------------------------

    def _make_client(self) -> Any:
        from busd.backends import make_client, make_pool
        from busd.tls import make_tls_policy

        size = max(self.config.poll.concurrency, self.config.live_concurrency)
        self._pool = make_pool(self.reactor, max_per_host=max(10, size))
        # No redirects: a bus's 3xx is its answer (the pass-through returns
        # it, a poll or fan-out counts it as no answer). Followed, a bus
        # could make the central fetch any URL on its network for it.
        return make_client(
            self.reactor,
            self._pool,
            tls_policy=make_tls_policy(self.gateway_config.client_tls),
            follow_redirects=False,
        )

    def _close_pool(self) -> Any:
        pool, self._pool = self._pool, None
        if pool is not None and self._own_client:
            return pool.closeCachedConnections()
        return None


def _load_tokens(config: CentralRoleConfig, clock: IReactorTime) -> Any:
    """The central's signer. The key was checked when the config loaded;
    with ``generate_key`` a missing one is made now (0600, its public JWK
    set beside it for the buses: ``central.key.pem`` ->
    ``central.jwks.json``). A small blocking write, once, at start."""
    from busd.bus.key import load_or_generate_key
    from busd.central.tokens import BusTokens

    signing = config.signing
    assert signing is not None
    key = load_or_generate_key(signing.key, signing.generate_key, signing.kid)
    return BusTokens(signing, key, clock)
