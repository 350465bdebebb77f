"""The events role: ``POST /events`` into the outbox, the sender to the
central, and ``POST /events/{id}/ack`` for the central's acknowledgements.

Built once by :func:`busd.roles.build_roles` when the config has a
``busgw/bus`` block; it outlives reloads. It owns a one-thread pool for
every SQLite call (never the reactor's default pool, which DNS lookups
share), an HTTP connection pool for the central, and the bus's key, which
is read (or, with ``central.generate_key``, created) on that thread at
start. It is also the ``EventSource``/``EventSink`` the health role finds.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any, Callable, Mapping, Optional, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.iweb import IRequest

from busd.bus.answer import json_answer
from busd.bus.event import EventInvalid, parse_event
from busd.bus.key import load_or_generate_key
from busd.bus.outbox import Outbox, Runner
from busd.bus.sender import Sender, TokenSource
from busd.bus.store import Store
from busd.config.model import GatewayConfig
from busd.errors import GatewayError
from busd.guards import route_guard
from busd.pipeline.types import HTTPClient, ProxyRequest

__all__ = ["EventsRole"]

_log = Logger()
_Check = Callable[[IRequest], "Deferred[ProxyRequest]"]


class EventsRole(Service):
    """See the module docstring. ``run`` and ``client`` replace the worker
    thread and the central's HTTP client in tests."""

    name = "events"

    def __init__(
        self,
        config: GatewayConfig,
        reactor: Any,
        clock: IReactorTime,
        *,
        run: Optional[Runner] = None,
        client: Optional[HTTPClient] = None,
        rng: Optional[random.Random] = None,
        central_clock: Optional[Any] = None,
    ):
        assert config.bus is not None
        #: A busd.health.clockref.CentralClock fed from the central's
        #: answers (shared with the health role), or None.
        self.central_clock = central_clock
        self.bus = bus = config.bus
        self._reactor = reactor
        self._clock = clock
        self._rng = rng
        self._threads: Optional[ThreadPool] = None
        if run is None:
            self._threads = ThreadPool(1, 1, name="busgw-outbox")
            run = self._in_thread
        self._run: Runner = run
        self._pool: Any = None
        if client is None:
            from busd.backends import make_client, make_pool
            from busd.tls import make_tls_policy

            self._pool = make_pool(reactor, max_per_host=1)
            client = make_client(
                reactor,
                self._pool,
                tls_policy=make_tls_policy(config.client_tls),
            )
        self._client = client
        store = Store(bus.state_dir, bus.outbox)
        self.outbox = Outbox(store, run, clock, bus.outbox, bus.id)
        self.sender: Optional[Sender] = None
        self._key_timer: Optional[IDelayedCall] = None
        self._key_failed = False

    def _in_thread(self, fn: Any, *args: Any) -> "Deferred[Any]":
        from twisted.internet.threads import deferToThreadPool

        assert self._threads is not None
        return deferToThreadPool(self._reactor, self._threads, fn, *args)

    # -- EventSource / EventSink (for the health role) -------------------

    def active(self, kind: str) -> Sequence[Mapping[str, Any]]:
        return self.outbox.active(kind)

    def pressure(self) -> Mapping[str, Any]:
        return self.outbox.pressure()

    def raise_event(
        self, kind: str, severity: str, data: Mapping[str, Any]
    ) -> "Deferred[str]":
        return self.outbox.raise_event(kind, severity, data)

    # -- life cycle ---------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self._threads is not None:
            self._threads.start()
        self.outbox.open()
        self._load_key()

    def _load_key(self) -> None:
        self._key_timer = None
        central = self.bus.central
        d = self._run(
            load_or_generate_key, central.key, central.generate_key, central.kid
        )
        d.addCallbacks(self._start_sender, self._no_key)

    def _start_sender(self, key: Any) -> None:
        if not self.running:
            return
        if self._key_failed:
            _log.info("bus key read: delivering events to the central")
        central = self.bus.central
        tokens = TokenSource(
            key,
            central.kid,
            self.bus.id,
            central.audience,
            central.token_ttl,
            self._clock,
        )
        outbox = self.bus.outbox
        self.sender = Sender(
            self.outbox,
            self._client,
            self._clock,
            tokens,
            url=central.events_url,
            timeout=central.timeout,
            retry_initial=outbox.retry_initial,
            retry_max=outbox.retry_max,
            rng=self._rng,
            on_date=self.central_clock.observe if self.central_clock else None,
        )
        self.outbox.on_added(self.sender.wake)
        self.sender.start()

    def _no_key(self, failure: Failure) -> None:
        """No key, no delivery: say so once, and try again every
        ``retry_max`` (the disk may come back)."""
        if not self.running:
            return
        if not self._key_failed:
            _log.error(
                "events are NOT delivered until the bus key {path} can be"
                " read: {reason}",
                path=self.bus.central.key,
                reason=failure.getErrorMessage(),
            )
        self._key_failed = True
        self._key_timer = self._clock.callLater(
            self.bus.outbox.retry_max, self._load_key
        )

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        if self._key_timer is not None and self._key_timer.active():
            self._key_timer.cancel()
        if self.sender is not None:
            self.sender.stop()
        d = self.outbox.close()
        d.addErrback(lambda f: _log.failure("closing the event outbox", f))

        def release(_: Any) -> Any:
            if self._threads is not None:
                self._threads.stop()
            if self._pool is not None:
                return self._pool.closeCachedConnections()
            return None

        return d.addCallback(release)

    # -- routes ---------------------------------------------------------------

    def install(self, app: Any) -> None:
        """Add ``POST path`` and ``POST path/<id>/ack`` to ``app``, their
        token checks sharing the app's key caches."""
        if app.config.bus != self.bus:
            _log.warn("busgw/bus changed: the new values apply after a restart")
        events = self.bus.events
        path = events.path
        device = route_guard(
            events.device_token, app.guard_context, f"POST {path}"
        )
        ack = route_guard(
            events.ack_token, app.guard_context, f"POST {path}/{{id}}/ack"
        )
        app.add_route(path, ["POST"], "events", lambda r: self._post(r, device))
        app.add_route(
            path + "/<event_id>/ack",
            ["POST"],
            "events_ack",
            lambda r, event_id: self._ack(r, event_id, ack),
        )

    def _post(self, request: IRequest, guard: Optional[_Check]) -> Any:
        """Store the event: from an ``allow_from`` address, or with a
        device token; 202 with its id once it is on disk."""
        body = request.content.read() if request.content is not None else b""
        if self._from_allowed(request):
            d: Deferred[Any] = succeed(None)
        elif guard is not None:
            d = guard(request)
        else:
            raise GatewayError(
                "not allowed from this address", status=403, code="forbidden"
            )

        def store(_: Any) -> Any:
            try:
                event = parse_event(body, self.bus.outbox.max_event_bytes)
            except EventInvalid as exc:
                return json_answer(
                    request,
                    400,
                    {"error": str(exc), "path": exc.path, "status": 400},
                )
            return self.outbox.add(event).addCallback(
                lambda i: json_answer(request, 202, {"id": i})
            )

        return d.addCallback(store)

    def _ack(
        self, request: IRequest, event_id: str, guard: Optional[_Check]
    ) -> Any:
        """The central acknowledged ``event_id``: it is no longer active."""
        if guard is None:
            raise GatewayError(
                "acknowledgements need a validator (events.ack_token or busgw/auth)",
                status=403,
                code="forbidden",
            )
        d: Deferred[Any] = guard(request)
        d.addCallback(lambda _: self.outbox.acknowledge(event_id))

        def answer(found: bool) -> bytes:
            if not found:
                raise GatewayError(
                    f"no event {event_id} in the outbox",
                    status=404,
                    code="not_found",
                )
            return json_answer(request, 200, {"id": event_id, "acknowledged": True})

        return d.addCallback(answer)

    def _from_allowed(self, request: IRequest) -> bool:
        host = getattr(request.getClientAddress(), "host", None)
        try:
            ip = ipaddress.ip_address(host or "")
        except ValueError:
            return False  # a UNIX socket or unknown peer: not a network
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.bus.events.allow_from)

