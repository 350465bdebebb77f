"""The built-in demo: simulated on-board devices of one Foggy Whale bus.

``busgw demo`` starts :func:`devices_service` next to the gateway running
``etc/busgw.json``, whose endpoints fan out to these devices. Importing
this package never imports the reactor.
"""

from busd.demo.devices import (
    DEFAULT_DEVICE_PORTS,
    device_resources,
    device_sites,
    devices_service,
    listen_devices,
)
from busd.demo.sim import BusSimulation

__all__ = [
    "DEFAULT_DEVICE_PORTS",
    "BusSimulation",
    "device_resources",
    "device_sites",
    "devices_service",
    "listen_devices",
]
