"""One simulated bus of the demo fleet: its device services and its
gateway, each behind a :class:`~busd.demo.gate.Gate`, so the bus can be
switched off (its gateway's listener closed, open connections dropped,
its devices silent) and on again on the same port.

Switching a bus off leaves its gateway service and its devices running,
as on a bus whose modem lost the network: the central sees it go stale,
then offline, and the bus's own log stays quiet.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.web.server import Site

from busd.config.model import GatewayConfig
from busd.demo.devices import device_sites
from busd.demo.fleet_config import BusPlan
from busd.demo.gate import Gate
from busd.demo.route import LINE
from busd.demo.sim import VEHICLE_ID

if TYPE_CHECKING:
    from busd.gateway import GatewayService

__all__ = ["SimulatedBus", "relabel", "unbound_gateway"]

_log = Logger()


def relabel(payload: Any, plan: BusPlan) -> Any:
    """A device answer of the shared simulation, told as bus ``plan``:
    its vehicle id and line (the route's geometry is FW-12's for all)."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    if out.get("vehicle_id") == VEHICLE_ID:
        out["vehicle_id"] = plan.id
    for key in ("line", "route"):
        if out.get(key) == LINE:
            out[key] = plan.line
    trip = out.get("trip_id")
    if isinstance(trip, str) and trip.startswith(LINE + "-"):
        out["trip_id"] = plan.line + trip[len(LINE) :]
    return out


def unbound_gateway(
    config: GatewayConfig, reactor: Any, **kwargs: Any
) -> "Tuple[GatewayService, Site]":
    """:func:`busd.service.build_service` for ``config`` with no listener
    (``kwargs`` pass through): the service, and its site to put behind a
    :class:`~busd.demo.gate.Gate`."""
    from busd.service import build_service

    sites: List[Site] = []

    def site_class(root: Any) -> Site:
        sites.append(Site(root))
        return sites[-1]

    service = build_service(
        config, reactor, listen=[], site_class=site_class, **kwargs
    )
    return service, sites[0]


class SimulatedBus:
    """Bus ``plan``: :meth:`bind` its ports, :meth:`serve` a loaded
    config, then :meth:`switch_off` / :meth:`switch_on` at will;
    :meth:`close` ends it for good."""

    def __init__(self, reactor: Any, plan: BusPlan, interface: str = "127.0.0.1"):
        self.reactor = reactor
        self.plan = plan
        self.gate = Gate(reactor, plan.port, interface, f"bus {plan.id}")
        self.device_gates = {
            name: Gate(reactor, port, interface, f"bus {plan.id} {name} device")
            for name, port in plan.device_ports.items()
        }
        self.gateway: Any = None
        self.events: Any = None
        self.on = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gate.port}"

    @property
    def device_ports(self) -> Dict[str, int]:
        return {name: g.port for name, g in self.device_gates.items()}

    async def bind(self) -> None:
        """Listen on the bus's ports (0: free ones, then known); its
        devices answer at once, its gateway once :meth:`serve`\\ d."""
        # A simulation that began plan.offset_s ago, so buses differ.
        sites = device_sites(
            self.reactor,
            start=self.reactor.seconds() - self.plan.offset_s,
            relabel=lambda payload: relabel(payload, self.plan),
        )
        for name, gate in self.device_gates.items():
            gate.serve(sites[name])
            await gate.open()
        await self.gate.open()

    def serve(self, config: GatewayConfig, client: Any, verbose: bool) -> None:
        """Start the gateway on ``config`` behind the bus's port, and its
        devices' events (posted with ``client``)."""
        from busd.demo.events import DeviceEvents

        self.gateway, site = unbound_gateway(config, self.reactor)
        self.gateway.startService()
        self.gate.serve(site)
        assert config.bus is not None
        self.events = DeviceEvents(
            f"{self.url}{config.bus.events.path}",
            client,
            self.reactor,
            rng=random.Random(self.plan.id),
            min_s=30.0,
            max_s=120.0,
        )
        self.events.startService()
        self.on = True

    async def switch_on(self) -> None:
        """Listen again on the same port; the devices raise events again."""
        if self.on:
            return
        await self.gate.open()
        if self.events is not None and not self.events.running:
            self.events.startService()
        self.on = True
        _log.info("demo: bus {id} switched on ({url})", id=self.plan.id, url=self.url)

    def switch_off(self) -> "Deferred[Any]":
        """Close the bus gateway's listener and drop its open connections
        (the central's among them); its devices stop raising events but
        still answer the gateway, which goes on checking its health as a
        bus out of network reach would. Fires once every connection is
        gone."""
        if self.on:
            _log.info("demo: bus {id} switched off", id=self.plan.id)
        self.on = False
        if self.events is not None and self.events.running:
            self.events.stopService()
        return self.gate.close()

    def close(self) -> "Deferred[Any]":
        """Close every listener, then stop the gateway service (its roles
        and pools)."""
        self.on = False  # no "switched off" line for each bus at exit
        d = DeferredList(
            [self.switch_off()] + [g.close() for g in self.device_gates.values()],
            consumeErrors=True,
        )
        gateway, self.gateway = self.gateway, None

        def stop(_: Any) -> Any:
            return gateway.stopService() if gateway is not None else None

        d.addCallback(stop)
        return d

    def describe(self) -> Dict[str, Optional[Any]]:
        """The bus as the control listener lists it."""
        return {
            "id": self.plan.id,
            "url": self.url,
            "running": self.on,
            "labels": self.plan.labels,
            "devices": self.device_ports,
        }

