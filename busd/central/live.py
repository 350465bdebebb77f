"""Live calls from the central to its buses: ``busgw/fleet`` backends
(one endpoint backend called on every bus at once) and the pass-through
``/buses/{id}/...`` (:mod:`busd.central.passthrough`).

A ``busgw/fleet`` backend is built by the gateway's pipeline like any
other, through the role's ``backend_factory`` (busd.pipeline.build): the
Proxy it gets reads ``role.fleet``, ``role.client`` and ``role.tokens`` at
request time, so it keeps working across reloads that swap the fleet.
Each bus's answer goes through the ordinary backend call
(:func:`busd.pipeline.call.make_backend_call`: request building, the
200/201 rule, capped body, decoding, target/allow/deny/mapping/flatmap) on
the bus's own URL, with the central's token for that bus; the backend's
``group`` wraps the whole fleet result. The result is::

    {"buses": {bus_id: data, ...}, "missing": [ids, sorted]}

complete (``X-KrakenD-Completed: true``) only when no bus is missing.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Optional,
    Tuple,
    Union,
)

import attrs
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.http_headers import Headers

from busd.central._fanout import FanOut, InFlight
from busd.config._central import BusEntry
from busd.config._fleet_backend import FLEET_SHARE, FleetBackendConfig
from busd.config.model import EndpointConfig
from busd.errors import BackendError
from busd.pipeline.call import make_backend_call
from busd.pipeline.types import HTTPClient, Proxy, ProxyRequest, ProxyResponse

if TYPE_CHECKING:  # the role imports its parts
    from busd.app import GatewayApp
    from busd.central.role import CentralRole

__all__ = ["make_part", "LivePart", "FleetCall", "MAX_ERRORS"]

_log = Logger()
#: Per-bus failure texts kept in a fan-out's ``errors`` (return_error_msg,
#: logs); the rest are counted.
MAX_ERRORS = 10


def make_part(role: "CentralRole") -> "LivePart":
    """The live part of ``role``; it also becomes the role's
    ``backend_factory``."""
    part = LivePart(role)
    role.backend_factory = part.backend_factory
    return part


class LivePart:
    """The central's part for live calls: fleet backends and the
    pass-through route."""

    def __init__(self, role: "CentralRole"):
        from busd.central.passthrough import PassThrough

        self.role = role
        self.inflight = InFlight()
        self.passthrough = PassThrough(role, self.inflight)

    def backend_factory(
        self, endpoint: EndpointConfig, index: int, clock: IReactorTime
    ) -> Optional[Proxy]:
        """The Proxy of backend ``index`` when it is a ``busgw/fleet`` one
        (busd.pipeline.build.BackendFactory)."""
        if endpoint.backends[index].fleet is None:
            return None
        return FleetCall(self.role, endpoint, index, clock, self.inflight)

    def start(self) -> None:
        self.passthrough.stopping = False
        self.inflight.stopped = False

    def stop(self) -> None:
        self.passthrough.stopping = True
        self.inflight.stopped = True
        self.inflight.cancel_all()

    def install(self, app: "GatewayApp") -> None:
        self.passthrough.install(app)

    def fleet_changed(self) -> None:
        pass  # every call reads role.fleet when it starts


class _BusClient(HTTPClient):
    """The role's client for one bus: the caller's ``Authorization`` is
    replaced by the central's token for that bus (none without
    ``signing``: never the caller's own credentials). It implements the
    pipeline's client protocol (:class:`busd.pipeline.types.HTTPClient`),
    which mypy checks this signature against."""

    def __init__(self, role: "CentralRole", bus_id: str):
        self._role = role
        self._bus_id = bus_id

    def request(
        self,
        method: str,
        url: Union[str, bytes],
        *,
        headers: Any = None,
        data: Any = None,
        unbuffered: bool = False,
    ) -> "Deferred[Any]":
        client = self._role.client
        if client is None:
            return fail(BackendError("the central is not running"))
        out = headers.copy() if isinstance(headers, Headers) else Headers()
        out.removeHeader(b"Authorization")
        tokens = self._role.tokens
        try:
            if tokens is not None:
                out.setRawHeaders(
                    b"Authorization", [tokens.authorization(self._bus_id)]
                )
        except Exception as exc:  # a key file gone since the load
            return fail(BackendError(f"cannot sign a token: {exc}"))
        d: Deferred[Any] = client.request(
            method, url, headers=out, data=data, unbuffered=unbuffered
        )
        return d


class FleetCall:
    """The Proxy of one ``busgw/fleet`` backend (see the module doc)."""

    def __init__(
        self,
        role: "CentralRole",
        endpoint: EndpointConfig,
        index: int,
        clock: IReactorTime,
        inflight: InFlight,
    ):
        backend = endpoint.backends[index]
        assert backend.fleet is not None
        self._role = role
        self._endpoint = endpoint
        self._index = index
        self._clock = clock
        self._inflight = inflight
        self.fleet: FleetBackendConfig = backend.fleet
        self._group = backend.group
        # What each bus's call is built from: the bus's URL as host, no
        # group (it wraps the whole result), no cache, no fan-out.
        self._template = attrs.evolve(
            backend, group="", http_cache=None, fleet=None, hosts=()
        )
        self.deadline = backend.timeout * FLEET_SHARE
        self._calls: Dict[str, Tuple[str, Proxy]] = {}

    def call_for(self, bus: BusEntry) -> Proxy:
        """The backend call to ``bus``, built once per bus URL."""
        cached = self._calls.get(bus.id)
        if cached is not None and cached[0] == bus.url:
            return cached[1]
        backend = attrs.evolve(self._template, hosts=(bus.url,))
        proxy = make_backend_call(
            self._endpoint, backend, self._index, _BusClient(self._role, bus.id)
        )
        self._calls[bus.id] = (bus.url, proxy)
        return proxy

    def __call__(self, req: ProxyRequest) -> "Deferred[ProxyResponse]":
        fleet = self._role.fleet
        if len(self._calls) > 2 * len(fleet) + 16:
            # Buses removed by reloads: drop their calls.
            ids = {b.id for b in fleet}
            self._calls = {k: v for k, v in self._calls.items() if k in ids}
        buses = [b for b in fleet if self.fleet.matches(b.labels)]
        limit = self.fleet.concurrency or self._role.config.live_concurrency
        per_bus = min(self.fleet.timeout or self.deadline, self.deadline)
        if self._inflight.stopped:
            # The role stopped (its pool is closed): every bus is missing.
            why = "the central is stopping"
            return succeed(self._result(({}, {b.id: why for b in buses}), len(buses)))

        def start(bus: BusEntry) -> "Deferred[ProxyResponse]":
            d: Deferred[ProxyResponse] = maybeDeferred(self.call_for(bus), req)
            return d

        run = FanOut(
            buses, start, max(1, limit), per_bus, self.deadline, self._clock
        )
        d = run.start().addCallback(self._result, len(buses))
        return self._inflight.track(d)

    def _result(
        self,
        outcome: Tuple[Dict[str, ProxyResponse], Dict[str, str]],
        total: int,
    ) -> ProxyResponse:
        answers, missing = outcome
        data: Dict[str, Any] = {
            "buses": {bus_id: r.data for bus_id, r in answers.items()},
            "missing": sorted(missing),
        }
        if self._group:
            data = {self._group: data}
        errors: List[str] = [
            f"bus {bus_id}: {missing[bus_id]}"
            for bus_id in sorted(missing)[:MAX_ERRORS]
        ]
        if len(missing) > MAX_ERRORS:
            errors.append(f"and {len(missing) - MAX_ERRORS} more bus(es)")
        if missing:
            _log.warn(
                "fleet backend [{url}]: {missing} of {total} bus(es) missing",
                url=self._template.url_pattern,
                missing=len(missing),
                total=total,
            )
        return ProxyResponse(
            data=data, is_complete=not missing, errors=tuple(errors)
        )
