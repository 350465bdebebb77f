"""Simulated on-board device services of bus FW-0042, over HTTP.

Three small services answer JSON, as the bus's real devices would:

- ``vehicle`` (the ECU): ``GET /vehicle`` and ``GET /tyres`` (a top-level
  JSON array, to exercise ``is_collection``);
- ``location`` (the GPS): ``GET /location``;
- ``service`` (operations): ``GET /service``.

All three read one :class:`~busd.demo.sim.BusSimulation`, so their values
agree (the GPS and the ECU report the same speed) and move with the
injected clock. Each service is its own resource instance.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Mapping, Optional

from twisted.application.service import MultiService
from twisted.application.strports import service as strports_service
from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.web.http import Request
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from busd.demo.sim import BusSimulation

__all__ = [
    "DEFAULT_DEVICE_PORTS",
    "QuietSite",
    "Relabel",
    "device_resources",
    "tcp_listen",
    "device_sites",
    "listen_devices",
    "devices_service",
]

#: Where each device service listens by default (on loopback).
DEFAULT_DEVICE_PORTS: Mapping[str, int] = {
    "vehicle": 9101,
    "location": 9102,
    "service": 9103,
}

_Payload = Callable[[], Any]
#: Rewrites a device answer (the demo fleet tells each bus's own id).
Relabel = Callable[[Any], Any]


def _json(request: IRequest, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class _DeviceResource(Resource):
    """One device service: ``GET <path>`` answers ``routes[path]()`` as JSON.

    A plain leaf resource rather than a Klein app: ``klein`` imports the
    global reactor at import time, and ``import busd.demo`` must not
    install a reactor before ``twistd`` or the CLI picks one.
    """

    isLeaf = True

    def __init__(self, routes: Mapping[str, _Payload]) -> None:
        super().__init__()
        self._routes = {path.encode("ascii"): f for path, f in routes.items()}

    def render(self, request: IRequest) -> bytes:
        """Answer a known path's JSON, or a JSON 404/405 error."""
        payload = self._routes.get(request.path)
        if payload is None:
            return _json(request, 404, {"error": "not_found"})
        # twisted.web drops the body of a HEAD answer by itself.
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return _json(request, 405, {"error": "method_not_allowed"})
        return _json(request, 200, payload())


def device_resources(
    clock: IReactorTime,
    start: Optional[float] = None,
    relabel: Optional[Relabel] = None,
) -> Dict[str, IResource]:
    """The three device services as resources, keyed by device name.

    They share one simulation that began at ``start`` (epoch seconds,
    default ``clock.seconds()`` now) and compute every answer from
    ``clock.seconds()`` when asked, so no timer is ever scheduled.
    ``relabel``, if given, rewrites every answer.
    """
    bus = BusSimulation(clock, start)

    def told(payload: _Payload) -> _Payload:
        if relabel is None:
            return payload
        return lambda: relabel(payload())

    return {
        "vehicle": _DeviceResource(
            {"/vehicle": told(bus.vehicle), "/tyres": told(bus.tyres)}
        ),
        "location": _DeviceResource({"/location": told(bus.location)}),
        "service": _DeviceResource({"/service": told(bus.service)}),
    }


class QuietSite(Site):
    """A Site that logs no access lines and no factory start/stop.

    The gateway polls these services constantly; one log line per request
    would bury the gateway's own log in the demo.
    """

    noisy = False
    displayTracebacks = False

    def log(self, request: Request) -> None:
        """Drop the access log line (see the class docstring)."""


def device_sites(
    reactor: IReactorTime,
    clock: Optional[IReactorTime] = None,
    start: Optional[float] = None,
    relabel: Optional[Relabel] = None,
) -> Dict[str, Site]:
    """A quiet :class:`Site` per device, keyed by device name.

    ``reactor`` runs the sites' connection timeouts; ``clock`` (default:
    ``reactor``) drives the simulated values (see :func:`device_resources`
    for ``start`` and ``relabel``).
    """
    resources = device_resources(
        reactor if clock is None else clock, start, relabel
    )
    return {
        name: QuietSite(resource, reactor=reactor)
        for name, resource in resources.items()
    }


def _check_names(ports: Mapping[str, int]) -> None:
    unknown = sorted(set(ports) - set(DEFAULT_DEVICE_PORTS))
    if unknown:
        raise ValueError(
            f"unknown device(s) {', '.join(unknown)}; "
            f"known: {', '.join(DEFAULT_DEVICE_PORTS)}"
        )


def tcp_listen(port: int, interface: str = "127.0.0.1") -> str:
    """The server endpoint string for TCP ``port`` on ``interface``."""
    # Quoting keeps an IPv6 interface such as "::1" one strports argument.
    return f"tcp:{port}:interface={quoteStringArgument(interface)}"


async def listen_devices(
    reactor: Any,
    clock: Optional[IReactorTime] = None,
    interface: str = "127.0.0.1",
    ports: Mapping[str, int] = DEFAULT_DEVICE_PORTS,
    start: Optional[float] = None,
) -> Dict[str, IListeningPort]:
    """Listen for the devices named in ``ports``; return their listeners.

    ``reactor`` provides ``IReactorTCP`` and ``IReactorTime``. Port 0 picks
    a free port: read it from ``listener.getHost().port``. A subset of the
    devices starts only those (handy to show the gateway's partial
    answers). If any port fails to bind, the ones already bound are
    closed before the error propagates, so nothing is left listening.
    Callers own the listeners and stop them with ``stopListening()``.
    """
    _check_names(ports)
    sites = device_sites(reactor, clock, start)
    listening: Dict[str, IListeningPort] = {}
    try:
        for name, port in ports.items():
            endpoint = serverFromString(reactor, tcp_listen(port, interface))
            listening[name] = await endpoint.listen(sites[name])
    except BaseException:
        await DeferredList(
            [maybeDeferred(p.stopListening) for p in listening.values()],
            consumeErrors=True,
        )
        raise
    return listening


def devices_service(
    reactor: Any,
    clock: Optional[IReactorTime] = None,
    interface: str = "127.0.0.1",
    ports: Mapping[str, int] = DEFAULT_DEVICE_PORTS,
    start: Optional[float] = None,
) -> MultiService:
    """The device services as one ``MultiService`` for ``busgw demo``.

    Each device is a child named after it (``vehicle``, ``location``,
    ``service``): a ``strports.service`` listening on
    ``tcp:PORT:interface=INTERFACE``, which makes a failed bind fatal
    instead of a logged warning. ``reactor`` provides ``IReactorTCP`` and
    ``IReactorTime``; ``clock`` (default: ``reactor``) drives the values.
    """
    _check_names(ports)
    sites = device_sites(reactor, clock, start)
    parent = MultiService()
    for name, port in ports.items():
        child = strports_service(
            tcp_listen(port, interface), sites[name], reactor=reactor
        )
        child.setName(name)
        child.setServiceParent(parent)
    return parent
