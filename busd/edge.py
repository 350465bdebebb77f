"""What stands between a request and the router, per config generation.

:class:`EdgeWrapper` is the ``wrap`` hook of ``busd.gateway.GatewayService``:
each config (the first and every reload) gets CORS outermost (a preflight
is answered before anything else, and every answer, a refusal included,
carries the CORS headers), then the cap on requests in flight, then the
router. The in-flight count is shared by every generation.
"""

from __future__ import annotations

from twisted.web.resource import IResource

from busd.config.model import GatewayConfig
from busd.limits import InFlightCounter, InFlightLimit
from busd.security.cors_resource import CorsResource

__all__ = ["EdgeWrapper"]


class EdgeWrapper:
    """Wraps a generation's router resource for ``config``."""

    def __init__(self) -> None:
        self.in_flight = InFlightCounter()

    def __call__(self, resource: IResource, config: GatewayConfig) -> IResource:
        wrapped: IResource = InFlightLimit(
            resource, config.limits.max_in_flight, self.in_flight
        )
        if config.cors is not None:
            wrapped = CorsResource(wrapped, config.cors)
        return wrapped
