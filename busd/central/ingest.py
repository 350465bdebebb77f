"""Events from buses: ``POST {events.path}``, stored, listed, sent on.

:func:`make_part` builds the central's events part (``role.events``). A
bus posts each event with a token signed by its own key (see
:mod:`busd.central.events_auth`; the service's JWT default does not apply
to this route). The answers:

* 413: the body is over ``events.max_bytes``;
* 401 (with ``WWW-Authenticate``): no bearer token, a malformed or invalid
  one (signature, ``aud``, ``exp``/``nbf``/``iat``, ``sub`` != ``iss``),
  or an ``iss`` that is no bus of the fleet;
* 403: the bus has no ``key`` in the fleet, so its events are refused;
* 400 ``{"error", "path"}``: an invalid event (``path`` names the field),
  or an ``Idempotency-Key`` other than the event's id;
* 422: the event's ``bus`` is not the token's bus;
* 409: the bus already sent a *different* event under that id (the bus
  counts it as delivered);
* 200 ``{"id", "stored": true, "duplicate": true}``: the same event again;
* 201 ``{"id", "stored": true}``: new, and committed to disk first;
* 503 (``Retry-After``): the database or the bus's key file is unusable.

The central adds its own ``received_at`` and keeps the bus's as
``bus_received_at``. After the commit the event goes to the live stream
(``role.hub``) and its webhooks (:mod:`busd.central.webhooks`).
"""

from __future__ import annotations

import os
import random
from typing import Any, Dict, Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.iweb import IRequest

from busd.auth.verify import TokenError, parse_token
from busd.bus.event import EventInvalid
from busd.central._eventdb import (
    CONFLICT,
    NEW,
    EventDB,
    StoreUnavailable,
    event_json,
)
from busd.central.events_auth import KeyCache, KeyFileError, verify_bus_token
from busd.central.events_http import answer, problem
from busd.central.events_list import install_listing
from busd.central.events_schema import parse_bus_event
from busd.central.events_store import EventStore, Runner
from busd.central.webhooks import Webhooks
from busd.config._central import CentralRoleConfig

__all__ = ["EventsPart", "make_part", "store_path", "DB_NAME"]

_log = Logger()
DB_NAME = "central-events.sqlite"
_REALM = 'Bearer realm="busgw-central"'


def store_path(config: CentralRoleConfig) -> str:
    """``events.store``, by default ``<state_dir>/central-events.sqlite``."""
    return config.events.store or os.path.join(config.state_dir, DB_NAME)


def make_part(role: Any) -> "EventsPart":
    """The events part of ``role`` (also set as ``role.events``)."""
    return EventsPart(role)


class EventsPart:
    """See the module docstring. ``run`` replaces the worker thread and
    ``rng`` the webhooks' jitter in tests."""

    def __init__(
        self,
        role: Any,
        *,
        run: Optional[Runner] = None,
        rng: Optional[random.Random] = None,
    ):
        self.role = role
        self._threads: Optional[ThreadPool] = None
        if run is None:
            # Its own thread: never the reactor's default pool (DNS).
            self._threads = ThreadPool(1, 1, name="busgw-central-events")
            run = self._in_thread
        config = role.config
        self._path = store_path(config)
        db = EventDB(self._path, config.events.max_events)
        self.store = EventStore(db, run, role.clock)
        self.keys = KeyCache()
        #: busd.central.metrics.CentralMetrics, None when metrics are off.
        self._metrics = getattr(role, "metrics", None)
        self.webhooks = Webhooks(
            self.store, lambda: role.client, role.clock, rng=rng,
            metrics=self._metrics,
        )
        self.webhooks.configure(config.webhooks)
        self.store.counter = self.webhooks
        self._key_errors: Dict[str, str] = {}
        role.events = self

    def _in_thread(self, fn: Any, *args: Any) -> "Deferred[Any]":
        from twisted.internet.threads import deferToThreadPool

        assert self._threads is not None
        return deferToThreadPool(self.role.reactor, self._threads, fn, *args)

    # -- Part ------------------------------------------------------------

    def start(self) -> None:
        if self._threads is not None:
            self._threads.start()
        d = self.store.open()
        d.addCallbacks(self._opened, self._open_failed)
        self.webhooks.start()

    def _opened(self, pending: int) -> None:
        _log.info(
            "central events: {path} open, {pending} webhook deliveries pending",
            path=self._path,
            pending=pending,
        )

    def _open_failed(self, failure: Any) -> None:
        _log.error(
            "central events: cannot open the event store: {reason}",
            reason=failure.getErrorMessage(),
        )

    def stop(self) -> "Deferred[Any]":
        self.webhooks.stop()
        d = self.store.close()
        d.addErrback(lambda f: _log.failure("closing the event store", f))

        def release(_: Any) -> None:
            if self._threads is not None:
                self._threads.stop()

        return d.addCallback(release)

    def fleet_changed(self) -> None:
        config = self.role.config
        self.webhooks.configure(config.webhooks)
        if store_path(config) != self._path:
            _log.warn("central events: a new store path applies after a restart")
        keep = {b.key for b in config.fleet if b.key}
        self.store.run(self.keys.forget, keep).addErrback(lambda _: None)

    def install(self, app: Any) -> None:
        path = self.role.config.events.path
        app.add_route(path, ["POST"], "central-events-in", self.post)
        install_listing(app, self.store)

    # -- POST ----------------------------------------------------------------

    def post(self, request: IRequest) -> "Deferred[bytes]":
        """Take one event from a bus (answers in the module docstring)."""
        d = ensureDeferred(self._post(request))
        if self._metrics is not None:
            d.addBoth(self._metrics.event_answered, request)
        return d

    async def _post(self, request: IRequest) -> bytes:
        role = self.role
        events = role.config.events
        body = request.content.read(events.max_bytes + 1) if request.content else b""
        if len(body) > events.max_bytes:
            return problem(
                request, 413, f"event larger than {events.max_bytes} bytes"
            )
        raw = _header(request, b"authorization").strip()
        scheme, _, token_text = raw.partition(" ")
        if scheme.lower() != "bearer" or not token_text.strip():
            return problem(
                request, 401, "a bearer token is required", {"WWW-Authenticate": _REALM}
            )
        try:
            token = parse_token(token_text.strip())
        except TokenError as exc:
            return _unauthorized(request, str(exc))
        bus_id = token.claims.get("iss")
        bus = role.config.bus(bus_id) if isinstance(bus_id, str) else None
        if bus is None:
            return _unauthorized(request, "the token's iss is no bus of the fleet")
        if not bus.key:
            return problem(
                request, 403, f"bus {bus.id} has no key: its events are refused"
            )
        try:
            keys = await self.store.run(self.keys.get, bus.key)
        except (KeyFileError, StoreUnavailable) as exc:
            self._key_unusable(bus.key, str(exc))
            return problem(
                request, 503, "the bus key cannot be read", {"Retry-After": "30"}
            )
        self._key_errors.pop(bus.key, None)
        try:
            verify_bus_token(
                token,
                keys,
                now=role.clock.seconds(),
                leeway=events.leeway,
                audience=events.audience,
            )
        except TokenError as exc:
            _log.info(
                "central events: token of {bus_id} refused: {reason}",
                bus_id=bus.id,
                reason=str(exc),
            )
            return _unauthorized(request, str(exc))
        try:
            event = parse_bus_event(body)
        except EventInvalid as exc:
            return problem(request, 400, str(exc), path=exc.path)
        if event.bus != bus.id:
            return problem(
                request,
                422,
                f"the event is from bus {event.bus!r}, the token from {bus.id!r}",
                path="bus",
            )
        key = request.getHeader(b"idempotency-key")
        if key is not None and key.decode("latin-1") != event.id:
            return problem(
                request,
                400,
                "Idempotency-Key is not the event's id",
                path="Idempotency-Key",
            )
        return await self._store(request, event)

    async def _store(self, request: IRequest, event: Any) -> bytes:
        hooks = self.webhooks.hooks_for(event)
        try:
            outcome, row = await self.store.add(event, hooks)
        except StoreUnavailable as exc:
            _log.error("central events: not stored: {reason}", reason=str(exc))
            return problem(
                request, 503, "the event store is unavailable", {"Retry-After": "30"}
            )
        if outcome == CONFLICT:
            return problem(
                request,
                409,
                f"bus {event.bus} already sent a different event {event.id}",
                id=event.id,
            )
        if outcome != NEW:
            return answer(
                request, 200, {"id": event.id, "stored": True, "duplicate": True}
            )
        hub = self.role.hub
        if hub is not None and row is not None:
            hub.publish("event", event_json(row))
        if hooks:
            self.webhooks.wake()
        return answer(request, 201, {"id": event.id, "stored": True})

    def _key_unusable(self, path: str, reason: str) -> None:
        """Log a bad key file once per reason (each event would repeat it)."""
        if self._key_errors.get(path) != reason:
            self._key_errors[path] = reason
            _log.error("central events: bus key unusable: {reason}", reason=reason)


def _header(request: IRequest, name: bytes) -> str:
    value = request.getHeader(name)
    return value.decode("latin-1") if value is not None else ""


def _unauthorized(request: IRequest, reason: str) -> bytes:
    return problem(
        request,
        401,
        f"invalid token: {reason}",
        {"WWW-Authenticate": _REALM + ', error="invalid_token"'},
    )
