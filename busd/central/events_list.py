"""``GET /fleet/events`` and ``GET /fleet/events/{bus}/{id}``: the stored
events, guarded like any endpoint by the service's JWT default
(``app.config.default_auth``).

The list answers ``{"events": [...], "count": n, "cursor": c}``: the
parameters are in :mod:`busd.central.events_query`; ``cursor`` is the
newest cursor seen in this answer (or the one given when nothing is
newer; null when nothing at all), so a client following the feed repeats
``?since=<cursor>`` and gets each new event exactly once, oldest first.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.web.iweb import IRequest

from busd.central._eventdb import StoreUnavailable, event_json
from busd.central.events_http import answer, problem, raw_answer
from busd.central.events_query import QueryInvalid, parse_query
from busd.central.events_store import EventStore
from busd.guards import route_guard

__all__ = ["install_listing"]

_Guard = Optional[Callable[[IRequest], "Deferred[Any]"]]


def install_listing(app: Any, store: EventStore) -> None:
    """Add the two GET routes to ``app`` (a new config generation)."""
    context = app.guard_context
    auth = app.config.default_auth
    list_guard = route_guard(auth, context, "GET /fleet/events")
    one_guard = route_guard(auth, context, "GET /fleet/events/{bus}/{id}")

    def listing(request: IRequest) -> Any:
        return ensureDeferred(_list(request, store, list_guard))

    def one(request: IRequest, bus: str, event_id: str) -> Any:
        return ensureDeferred(_one(request, store, one_guard, bus, event_id))

    app.add_route("/fleet/events", ["GET"], "fleet-events", listing)
    app.add_route(
        "/fleet/events/<bus>/<event_id>", ["GET"], "fleet-event", one
    )


async def _list(request: IRequest, store: EventStore, guard: _Guard) -> bytes:
    if guard is not None:
        await guard(request)
    try:
        query = parse_query(request.args or {})
    except QueryInvalid as exc:
        return problem(request, 400, str(exc), parameter=exc.parameter)
    try:
        data = await store.list_body(query)
    except StoreUnavailable:
        return problem(
            request, 503, "the event store is unavailable", {"Retry-After": "30"}
        )
    return raw_answer(request, 200, data)


async def _one(
    request: IRequest,
    store: EventStore,
    guard: _Guard,
    bus: str,
    event_id: str,
) -> bytes:
    if guard is not None:
        await guard(request)
    try:
        row = await store.get(bus, event_id)
    except StoreUnavailable:
        return problem(
            request, 503, "the event store is unavailable", {"Retry-After": "30"}
        )
    if row is None:
        return problem(request, 404, f"no event {event_id} from bus {bus}")
    return answer(request, 200, event_json(row))
