"""Roles: the features a gateway adds beyond its config's endpoints.

A role (the bus's health report, event outbox and inbound data; later the
central's poller) is a long-lived ``IService`` built once from the first
config, so its state (an outbox on disk, check results, poll state)
survives config reloads. :meth:`Role.install` adds its routes to each new
:class:`~busd.app.GatewayApp` generation. :func:`build_roles` is the one
place that decides which roles a config asks for, in start order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Protocol

from twisted.internet.interfaces import IReactorTime

from busd.config.model import GatewayConfig

if TYPE_CHECKING:
    from busd.app import GatewayApp

__all__ = ["Role", "build_roles"]


class Role(Protocol):
    """A long-lived feature with routes; it is also an ``IService``
    (``setServiceParent``, ``startService``, ``stopService``)."""

    def setServiceParent(self, parent: Any) -> Any: ...

    def install(self, app: "GatewayApp") -> None:
        """Add this role's routes to ``app`` (a new config generation)."""


def build_roles(
    config: GatewayConfig,
    reactor: Any,
    clock: IReactorTime,
    metrics: Any = None,
) -> List[Role]:
    """The roles ``config`` asks for; each is an ``IService`` with
    ``install(app)``. Started before the listeners, stopped after them.
    ``metrics`` (busd.metrics.GatewayMetrics, None when off) is where
    roles with series of their own register them."""
    from busd.health.clockref import CentralClock

    # The central's clock as seen in Date headers, shared by the bus parts:
    # the sender and inbound pushes observe it, the health report checks it.
    central = CentralClock(clock)
    roles: List[Role] = []
    if config.bus is not None:
        # Events first: the health role finds it as its event source.
        from busd.bus.events_role import EventsRole

        roles.append(EventsRole(config, reactor, clock, central_clock=central))
    if config.health is not None or config.inbound is not None:
        roles.extend(_bus_roles(config, reactor, clock, roles, central))
    if config.central is not None:
        from busd.central.role import CentralRole

        roles.append(CentralRole(config, reactor, clock, metrics=metrics))
    return roles


def _bus_roles(
    config: GatewayConfig,
    reactor: Any,
    clock: IReactorTime,
    before: List[Any],
    central: Any,
) -> List[Role]:
    """Inbound data and the health report. They share the central's clock
    as seen in Date headers; health reads events (and raises one per check
    turning critical) through the events role when there is one."""
    from busd.bus.inbound import InboundService
    from busd.health.service import HealthService

    roles: List[Role] = []
    if config.inbound is not None:
        roles.append(
            InboundService(
                config.inbound,
                reactor=reactor,
                clock=clock,
                client_tls=config.client_tls,
                central_clock=central,
            )
        )
    if config.health is not None:
        events = next((r for r in before if hasattr(r, "active")), None)
        sink = events if hasattr(events, "raise_event") else None
        roles.append(
            HealthService(
                config.health,
                reactor=reactor,
                clock=clock,
                bus=config.bus.id if config.bus is not None else config.name,
                client_tls=config.client_tls,
                events=events,
                sink=sink,
                central_clock=central,
            )
        )
    return roles
