"""The twistd tap (``twistd busgw``) and the pure service builder.

``Options.postOptions`` loads and validates the config, so a bad config or
listen string fails before twistd daemonizes or binds. ``makeService`` is
the only place that imports the global reactor; :func:`build_service` takes
everything as arguments so tests drive it with fakes.
"""

from __future__ import annotations

import random
from typing import Any, Callable, List, Optional, Sequence

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import IResource
from twisted.web.server import Site

from busd.gateway import AdminResource, ConfigSource, GatewayService
from busd.edge import EdgeWrapper
from busd.limits import apply_limits
from busd.listen import tune
from busd.config.env import EnvFileError, environment
from busd.config.load import load_config
from busd.config.model import GatewayConfig
from busd.errors import ConfigError, ConfigProblem
from busd.tls import check_server_tls, describe_listen_error
from busd.pipeline.types import HTTPClient

__all__ = [
    "Options",
    "makeService",
    "build_service",
    "ListenService",
    "default_listen",
    "validate_listen",
    "DEFAULT_CONFIG",
]

_log = Logger()
DEFAULT_CONFIG = "/etc/busgw/busgw.json"


def default_listen(config: GatewayConfig, port: Optional[int] = None) -> str:
    """The endpoint string for the config's ``port`` and ``listen_ip``."""
    desc = f"tcp:{port or config.port}"
    if config.listen_ip:
        desc += ":interface=" + config.listen_ip.replace(":", "\\:")
    return desc


def validate_listen(descriptions: Sequence[str]) -> List[str]:
    """Parse each endpoint string without binding; return the problems.

    A ``MemoryReactor`` lets ``serverFromString`` check syntax and read
    TLS key files without touching the real reactor or a socket.
    """
    from twisted.internet.testing import MemoryReactor

    problems = []
    for desc in descriptions:
        try:
            check_server_tls(endpoints.serverFromString(MemoryReactor(), desc))
        except Exception as exc:  # each parser raises its own kind
            why = describe_listen_error(exc)
            problems.append(f"--listen {desc!r}: {why}")
    return problems


class Options(usage.Options):
    """``twistd busgw`` options."""

    synopsis = "[-c FILE] [--listen ENDPOINT ...] [-p PORT] [-d] [--strict]"
    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "KrakenD v3 config file to serve."],
        ["port", "p", None, "Override the config's port.", int],
        [
            "env-file",
            None,
            None,
            "NAME=value file for ${NAME} placeholders in the config.",
        ],
    ]
    optFlags = [
        ["debug", "d", "Enable the /__debug/ endpoint."],
        ["strict", None, "Treat config warnings (unknown keys) as errors."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self.config: Optional[GatewayConfig] = None
        self.warnings: Sequence[ConfigProblem] = ()

    def opt_listen(self, description: str) -> None:
        """Listen on a Twisted endpoint string, e.g. tcp:8000 or
        ssl:8443:privateKey=key.pem:certKey=cert.pem (repeatable)."""
        self["listen"].append(description)

    def postOptions(self) -> None:
        try:
            result = load_config(
                self["config"],
                strict=self["strict"],
                environ=environment(self["env-file"]),
            )
        except (ConfigError, EnvFileError) as err:
            raise usage.UsageError(str(err))
        self.config = result.config
        self.warnings = result.warnings
        if not self["listen"]:
            self["listen"] = [default_listen(result.config, self["port"])]
        problems = validate_listen(self["listen"])
        if problems:
            raise usage.UsageError("\n".join(problems))


class ListenService(StreamServerEndpointService):
    """A listener that fails fast on a bind error (as ``strports.service``)
    and tells when it is listening, with the bound port."""

    def __init__(
        self, description: str, factory: Any, reactor: Any, reuse_port: bool = False
    ):
        # A deep backlog, and SO_REUSEPORT for --workers (busd.listen).
        endpoint = tune(
            endpoints.serverFromString(reactor, description), description, reuse_port
        )
        super().__init__(endpoint, factory)
        self._raiseSynchronously = True
        self.description = description
        self.port: Optional[IListeningPort] = None
        self._waiters: List[Deferred[IListeningPort]] = []

    def startService(self) -> None:
        super().startService()
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.callback(port)
        return port

    def whenListening(self) -> "Deferred[IListeningPort]":
        """Fires with the listening port once bound."""
        if self.port is not None:
            d: Deferred[IListeningPort] = Deferred()
            d.callback(self.port)
            return d
        d = Deferred()
        self._waiters.append(d)
        return d


def build_service(
    config: GatewayConfig,
    reactor: Any,
    *,
    listen: Sequence[str],
    debug: bool = False,
    client: Optional[HTTPClient] = None,
    clock: Optional[IReactorTime] = None,
    rng: Optional[random.Random] = None,
    site_class: Callable[[IResource], Site] = Site,
    source: Optional[ConfigSource] = None,
    reuse_port: bool = False,
    serve_admin: bool = True,
) -> GatewayService:
    """The gateway's service tree: the gateway (its pools are closed when it
    stops), the admin listener if configured, then one ``http``/``http-N``
    listener per string. Listeners are added last so they stop first
    (children stop in reverse). ``source`` enables reloads (SIGHUP).
    ``reuse_port`` binds the listeners with SO_REUSEPORT and
    ``serve_admin=False`` leaves the admin listener out (busd.workers: one
    worker serves it)."""
    top = GatewayService(
        config,
        reactor,
        clock=clock,
        debug=debug,
        client=client,
        rng=rng,
        source=source,
        wrap=EdgeWrapper(),  # CORS and the in-flight cap (busd.edge)
    )
    site = site_class(top.root)
    site.noisy = False
    # Header, body and slow-client limits on every connection (busd.limits).
    apply_limits(site, lambda: top.config.limits, top.clock)
    # busd.telemetry writes one structured event per request instead, or
    # nothing with access_log off (twisted.web's own line would still be
    # formatted and emitted for every request).
    site.log = _no_access_log  # type: ignore[method-assign]
    admin = config.telemetry.admin
    if admin is not None and serve_admin:
        admin_site = Site(AdminResource(top, admin.metrics_path, admin.reload_path))
        admin_site.noisy = False
        admin_site.log = _no_access_log  # type: ignore[method-assign]
        svc = ListenService(admin.listen, admin_site, reactor)
        svc.setName("admin")
        svc.setServiceParent(top)
    for i, desc in enumerate(listen):
        svc = ListenService(desc, site, reactor, reuse_port)
        svc.setName("http" if i == 0 else f"http-{i}")
        svc.setServiceParent(top)
    return top


def _no_access_log(request: Any) -> None:
    """Replaces twisted.web's combined-log line."""


def makeService(options: Options) -> IService:
    """twistd entry point: build the service on the global reactor."""
    from twisted.internet import reactor

    assert options.config is not None
    for problem in options.warnings:
        _log.warn("config {problem}", problem=str(problem))
    return build_service(
        options.config,
        reactor,
        listen=options["listen"],
        debug=options["debug"],
        source=ConfigSource(
            options["config"], options["strict"], options["env-file"]
        ),
    )
