"""The running gateway: the current config's routes behind a fixed root,
replaced atomically on reload.

The listeners serve one :class:`~busd.telemetry.TelemetryResource` for the
life of the process. Each config (the first one and every valid reload)
becomes a *generation*: a new :class:`~busd.app.GatewayApp` with its
pipelines and validators and, unless the caller supplied an HTTP client, a
new connection pool. A reload swaps the root's inner resource in one
assignment on the reactor thread, so a request is routed wholly by the old
config or wholly by the new one; requests already inside the old one finish
there, and its pool is closed once the longest endpoint timeout has passed.
Listeners stay open throughout: no connection is dropped.

A reload comes from SIGHUP, ``busgw reload`` (which sends SIGHUP), or
``POST`` on the admin listener's reload path. An invalid config keeps the
old one serving and logs every problem with its JSON path.
"""

from __future__ import annotations

import random
import signal
import threading
from typing import Any, Callable, List, Mapping, Optional, Tuple

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from busd.backends import make_client, make_pool, pool_size
from busd.config.env import EnvFileError, environment
from busd.config.load import load_config
from busd.config.model import GatewayConfig
from busd.errors import ConfigError
from busd.metrics import GatewayMetrics, MetricsResource
from busd.pipeline.build import first_claim
from busd.pipeline.encode import dumps_go
from busd.pipeline.types import HTTPClient
from busd.roles import build_roles
from busd.telemetry import TelemetryResource
from busd.tls import make_tls_policy

__all__ = ["GatewayService", "AdminResource", "ConfigSource"]

_log = Logger()


class ConfigSource:
    """Where a reload reads its config from: the file, ``--strict`` and
    ``--env-file`` the gateway was started with."""

    def __init__(self, path: str, strict: bool = False, env_file: Optional[str] = None):
        self.path = path
        self.strict = strict
        self.env_file = env_file

    def load(self) -> GatewayConfig:
        """Read and validate; raises ConfigError or EnvFileError."""
        environ = environment(self.env_file)
        result = load_config(self.path, strict=self.strict, environ=environ)
        for problem in result.warnings:
            _log.warn("config {problem}", problem=str(problem))
        return result.config


class GatewayService(MultiService):
    """The gateway's top service; ``root`` is what the listeners serve."""

    def __init__(
        self,
        config: GatewayConfig,
        reactor: Any,
        *,
        clock: Optional[IReactorTime] = None,
        debug: bool = False,
        client: Optional[HTTPClient] = None,
        rng: Optional[random.Random] = None,
        source: Optional[ConfigSource] = None,
        wrap: Callable[[IResource, GatewayConfig], IResource] = lambda r, c: r,
    ):
        super().__init__()
        self.reactor = reactor
        self.clock: IReactorTime = clock or reactor
        self.debug = debug
        self.source = source
        self._client = client
        self._rng = rng
        self._wrap = wrap
        self.metrics = GatewayMetrics() if config.telemetry.admin else None
        self._pool: Optional[HTTPConnectionPool] = None
        self._retiring: List[Tuple[HTTPConnectionPool, IDelayedCall]] = []
        self._old_sighup: Any = None
        self.config = config
        # Roles outlive reloads; they are children before the listeners,
        # so they stop after them.
        self.roles = build_roles(config, reactor, self.clock, self.metrics)
        for role in self.roles:
            role.setServiceParent(self)
        self.root = TelemetryResource(
            self._generation(config), config.telemetry, self.clock, self.metrics
        )

    def _generation(self, config: GatewayConfig) -> IResource:
        """Build everything a config needs to serve, ready to swap in."""
        from busd.app import GatewayApp  # klein imports the global reactor

        client = self._client
        guard_client = None
        if client is None:
            # Idle connections to cover every backend call in flight.
            self._pool = make_pool(self.reactor, max_per_host=pool_size(config))
            # Every outbound HTTPS call verifies with this config's
            # client_tls (busd.tls)...
            client = make_client(
                self.reactor,
                self._pool,
                tls_policy=make_tls_policy(config.client_tls),
            )
            if config.client_tls.allow_insecure_connections:
                # ...but the switch that lets a self-signed backend in must
                # not let a forged JWK set in: JWKS fetches keep verifying.
                guard_client = make_client(
                    self.reactor,
                    self._pool,
                    tls_policy=make_tls_policy(
                        attrs.evolve(
                            config.client_tls, allow_insecure_connections=False
                        )
                    ),
                )
        # Backends a role serves itself (busgw/fleet: the central's).
        hooks = (getattr(role, "backend_factory", None) for role in self.roles)
        factories = [hook for hook in hooks if hook is not None]
        self.gateway = GatewayApp(
            config,
            client,
            self.clock,
            debug=self.debug,
            rng=self._rng,
            reactor=self.reactor,
            metrics=self.metrics,
            guard_client=guard_client,
            backend_factory=first_claim(factories),
        )
        for role in self.roles:
            role.install(self.gateway)
        return self._wrap(self.gateway.resource(), config)

    # -- reload ----------------------------------------------------------

    def reload(self, config: GatewayConfig) -> None:
        """Serve ``config`` from now on (it must be valid)."""
        old_pool, old = self._pool, self.config
        if (config.port, config.listen_ip) != (old.port, old.listen_ip):
            _log.warn("config reload: port and listen_ip changes need a restart")
        resource = self._generation(config)
        self.config = config
        self.root.swap(resource, config.telemetry)
        if old_pool is not None and old_pool is not self._pool:
            # In-flight calls end within their endpoint timeout; then the
            # old pool's connections can go.
            grace = max([e.timeout for e in old.endpoints] + [old.timeout]) + 1.0
            call = self.clock.callLater(grace, self._retire, old_pool)
            self._retiring.append((old_pool, call))
        if self.metrics is not None:
            self.metrics.reloads.labels("ok").inc()
        _log.info(
            "config reloaded: {count} endpoint(s)", count=len(config.endpoints)
        )

    def reload_from_source(self) -> Tuple[bool, List[str]]:
        """Re-read the config file; on success swap it in. Returns whether
        it was applied and, if not, every problem (with JSON paths)."""
        if self.source is None:
            return False, ["this gateway was not started from a config file"]
        try:
            config = self.source.load()
        except (ConfigError, EnvFileError, OSError) as err:
            problems = [str(p) for p in getattr(err, "problems", ())] or [str(err)]
            for problem in problems:
                _log.error(
                    "config reload refused, the old config keeps serving: "
                    "{problem}",
                    problem=problem,
                )
            if self.metrics is not None:
                self.metrics.reloads.labels("failed").inc()
            return False, problems
        self.reload(config)
        return True, []

    def _retire(self, pool: HTTPConnectionPool) -> "Deferred[None]":
        self._retiring = [(p, c) for p, c in self._retiring if p is not pool]
        return pool.closeCachedConnections()

    # -- life cycle -------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.source is not None and threading.current_thread() is threading.main_thread():
            self._old_sighup = signal.signal(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self, signum: int, frame: Any) -> None:
        # A signal handler may run between any two bytecodes: hand the work
        # to the reactor thread.
        self.reactor.callFromThread(self.reload_from_source)

    def stopService(self) -> "Deferred[Any]":
        if self._old_sighup is not None:
            signal.signal(signal.SIGHUP, self._old_sighup)
            self._old_sighup = None
        stopped = super().stopService()
        pools = [p for p, _ in self._retiring]
        for _, call in self._retiring:
            if call.active():
                call.cancel()
        self._retiring = []
        if self._pool is not None:
            pools.append(self._pool)

        def close(_: Any) -> Any:
            return DeferredList([p.closeCachedConnections() for p in pools])

        return stopped.addCallback(close)


class AdminResource(Resource):
    """The admin listener: ``GET metrics_path`` and ``POST reload_path``."""

    def __init__(
        self,
        gateway: GatewayService,
        metrics_path: str = "/metrics",
        reload_path: str = "/reload",
    ):
        super().__init__()
        self._gateway = gateway
        self._metrics_path = metrics_path.encode()
        self._reload_path = reload_path.encode()
        self._metrics = (
            MetricsResource(gateway.metrics) if gateway.metrics else None
        )

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return self

    def render(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        if request.path == self._metrics_path and self._metrics is not None:
            if request.method in (b"GET", b"HEAD"):
                return self._metrics.render_GET(request)
            return self._answer(request, 405, {"error": "method not allowed"})
        if request.path == self._reload_path:
            if request.method != b"POST":
                request.setHeader(b"Allow", b"POST")
                return self._answer(request, 405, {"error": "method not allowed"})
            ok, problems = self._gateway.reload_from_source()
            if ok:
                return self._answer(request, 200, {"reloaded": True})
            return self._answer(
                request, 422, {"error": "config refused", "problems": problems}
            )
        return self._answer(request, 404, {"error": "not found"})

    @staticmethod
    def _answer(request: Any, status: int, body: Mapping[str, Any]) -> bytes:
        request.setResponseCode(status)
        data = dumps_go({**body, "status": status})
        request.setHeader(b"Content-Length", b"%d" % len(data))
        return data
