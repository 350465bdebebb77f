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
    config: GatewayConfig, reactor: Any, clock: IReactorTime
) -> List[Role]:
    """The roles ``config`` asks for; each is an ``IService`` with
    ``install(app)``. Started before the listeners, stopped after them."""
    roles: List[Role] = []
    return roles
