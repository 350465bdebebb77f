"""The health role: runs the bus's checks on an interval and answers
``GET /health`` from memory.

Runs never overlap: the next one is scheduled (on the injected clock) only
when the previous one has finished, ``interval`` seconds after it started,
or at once if it took longer. Within a run every fetch and probe runs
concurrently, each bounded by its check's ``timeout``; checks reading the
same source share one fetch. A check that throws is reported ``unknown``
with the reason and logged; the loop carries on (STYLE.md pitfall 11).

The first run starts with the service: ``/health`` answers 503
``"starting"`` only until it ends (at most the longest check timeout).
Status changes are logged; a check turning ``critical`` also raises one
event ``health.<name>`` through the event sink, if the gateway has one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IRequest

from busd._tls_model import ClientTLSConfig
from busd.bus.answer import json_answer
from busd.bus.interfaces import EventSink, EventSource
from busd.config._health import HealthConfig, SourceConfig
from busd.errors import GatewayError
from busd.guards import route_guard
from busd.health.clockref import CentralClock
from busd.health.fetch import Sources
from busd.health.judge import judge, judge_outbox
from busd.health.results import CheckResult, health_report
from busd.pipeline.types import HTTPClient

__all__ = ["HealthService"]

_log = Logger()


class HealthService(Service):
    """The ``health`` role (an ``IService`` with :meth:`install`).

    ``events`` (the event outbox, if the gateway has one) answers event
    checks and the built-in ``outbox`` check; ``sink`` receives the events
    of checks turning critical. ``client`` replaces the role's own HTTP
    client (tests); otherwise one is built with ``client_tls`` on start
    and its pool closed on stop.
    """

    name = "health"

    def __init__(
        self,
        config: HealthConfig,
        *,
        reactor: Any,
        clock: IReactorTime,
        bus: str,
        client_tls: ClientTLSConfig = ClientTLSConfig(),
        events: Optional[EventSource] = None,
        sink: Optional[EventSink] = None,
        central_clock: Optional[CentralClock] = None,
        client: Optional[HTTPClient] = None,
    ):
        self.config = config
        self.bus = bus
        self.central_clock = central_clock or CentralClock(clock)
        self._reactor = reactor
        self._clock = clock
        self._tls = client_tls
        self._events = events
        self._sink = sink
        self._client = client
        self._pool: Optional[HTTPConnectionPool] = None
        self._app: Any = None
        self._sources: Optional[Sources] = None
        self._call: Optional[IDelayedCall] = None
        self._run: Optional[Deferred[Any]] = None
        #: The latest result of each check, in config order.
        self.results: Dict[str, CheckResult] = {}
        #: When the latest run ended (None before the first).
        self.checked_at: Optional[float] = None
        self.runs = 0
        self._waiters: List[Deferred[None]] = []

    # -- routes --------------------------------------------------------

    def install(self, app: Any) -> None:
        """Serve ``GET path`` on ``app`` (a new config generation) and read
        endpoint sources through its pipelines from now on."""
        if app.config.health != self.config:
            _log.warn("busgw/health changes take effect after a restart")
        self._app = app
        validator = None if self.config.public else app.config.default_auth
        guard = route_guard(
            validator, app.guard_context, f"GET {self.config.path}"
        )

        def handle(request: IRequest) -> Any:
            if guard is None:
                return self.render(request)
            d = guard(request)
            d.addCallback(lambda _: self._authenticated(request))
            return d

        app.add_route(self.config.path, ["GET"], "bus-health", handle)

    def _authenticated(self, request: IRequest) -> bytes:
        # A caller holding a token is the central: its clock counts.
        date = request.getHeader(b"date")
        self.central_clock.observe(date.decode("latin-1") if date else None)
        return self.render(request)

    def report(self) -> Tuple[int, Dict[str, Any]]:
        """The HTTP status and JSON body ``/health`` answers now."""
        results = list(self.results.values())
        return health_report(results, self.bus, self.checked_at)

    def render(self, request: IRequest) -> bytes:
        """Answer ``request`` with :meth:`report`."""
        code, body = self.report()
        request.setHeader(b"Cache-Control", b"no-store")
        return json_answer(request, code, body)

    # -- life cycle ----------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self._client is None:
            from busd.backends import make_client, make_pool
            from busd.tls import make_tls_policy

            self._pool = make_pool(self._reactor)
            self._client = make_client(
                self._reactor,
                self._pool,
                tls_policy=make_tls_policy(self._tls),
            )
        self._sources = Sources(
            self._client,
            self._clock,
            lambda: getattr(self._app, "pipelines", None),
        )
        self._tick()

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._run is not None:
            self._run.cancel()
        self._wake()
        pool, self._pool = self._pool, None
        if pool is None:
            return succeed(None)
        self._client = None
        return pool.closeCachedConnections()

    def _tick(self) -> None:
        self._call = None
        started = self._clock.seconds()
        # maybeDeferred: even a synchronous crash must not end the loop.
        self._run = maybeDeferred(self.run_checks)
        self._run.addBoth(self._ran, started)

    def next_run(self) -> "Deferred[None]":
        """Fires when the run under way (or else the next one) has ended,
        or when the service stops: readiness for callers and tests."""
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _ran(self, result: Any, started: float) -> None:
        self._run = None
        self._wake()
        if isinstance(result, Failure) and not result.check(CancelledError):
            _log.failure("health check run failed", result)
        if self.running:
            wait = max(
                0.0, started + self.config.interval - self._clock.seconds()
            )
            self._call = self._clock.callLater(wait, self._tick)

    # -- one run -------------------------------------------------------

    def run_checks(self) -> "Deferred[None]":
        """Fetch every source, probe every backend, judge every check and
        keep the results; fires when done (never with a failure)."""
        timeouts: Dict[str, float] = {}
        sources: Dict[str, SourceConfig] = {}
        for check in self.config.checks:
            if check.source is not None:
                key = check.source.key
                sources[key] = check.source
                timeouts[key] = max(timeouts.get(key, 0.0), check.timeout)
        keys = list(sources)
        probes = [c for c in self.config.checks if c.kind == "backend"]
        assert self._sources is not None, "run_checks before startService"
        reads = self._sources
        waits: List[Deferred[Any]] = [
            reads.fetch(sources[k], timeouts[k]) for k in keys
        ]
        waits += [reads.probe(check) for check in probes]
        done = DeferredList(waits, consumeErrors=True)

        def evaluate(outcomes: List[Tuple[bool, Any]]) -> None:
            if not self.running:
                return  # stopped mid-run: these are cancellations
            values = [v if ok else None for ok, v in outcomes]
            fetched = dict(zip(keys, values[: len(keys)]))
            probed = {c.name: v for c, v in zip(probes, values[len(keys) :])}
            now = self._clock.seconds()
            drift = self.central_clock.drift()
            results = [
                judge(check, now, fetched, probed, self._events, drift)
                for check in self.config.checks
            ]
            if self._events is not None:
                results.append(judge_outbox(now, self._events))
            self._store(results, now)

        return done.addCallback(evaluate)

    def _store(self, results: List[CheckResult], now: float) -> None:
        for result in results:
            before = self.results.get(result.name)
            old = before.status if before is not None else None
            if result.status != old and (old or result.status != "ok"):
                _log.info(
                    "health check {check}: {old} -> {new} ({reason})",
                    check=result.name,
                    old=old or "starting",
                    new=result.status,
                    reason=result.reason,
                )
            if result.status == "critical" and old != "critical":
                self._raise(result)
        self.results = {r.name: r for r in results}
        self.checked_at = now
        self.runs += 1

    def _raise(self, result: CheckResult) -> None:
        kind = f"health.{result.name}"
        if self._sink is None:
            _log.warn(
                "health check {check} turned critical; no event outbox,"
                " so no event is raised",
                check=result.name,
            )
            return
        data = {"bus": self.bus, **result.to_json()}
        d = maybeDeferred(self._sink.raise_event, kind, "critical", data)
        # An outbox that is full or on a failing disk refuses with a
        # GatewayError: expected, and already in /health as pressure.
        d.addErrback(
            lambda f: _log.warn(
                "could not raise event {kind}: {error}",
                kind=kind,
                error=f.getErrorMessage(),
            )
            if f.check(GatewayError)
            else _log.failure("could not raise event {kind}", f, kind=kind)
        )
