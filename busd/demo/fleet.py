"""``busgw demo --buses N``: N simulated buses, each a real bus gateway
with its own devices, and a central polling them, in one reactor.

:func:`start_fleet` makes the keys (blocking, before anything serves),
binds every port (port bases of 0 pick free ports, as the tests do), then
writes each bus's config (``STATE/FW-0043/busgw.json``, derived from the
demo bus config by :func:`busd.demo.fleet_config.bus_config`) and the
central's fleet file, loads them and starts the gateways behind the
already bound ports. The central's config (``etc/central.json``) is
loaded as it is, with ``BUSGW_STATE_DIR`` set to the demo's state dir.

A control listener (:mod:`busd.demo.control`) switches buses off and on.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import attrs
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred

from busd.config.load import load_config
from busd.demo.control import ControlResource
from busd.demo.devices import QuietSite
from busd.demo.fleet_bus import SimulatedBus, unbound_gateway
from busd.demo.fleet_config import (
    BusPlan,
    FleetPorts,
    bus_config,
    fleet_document,
    plan_fleet,
    write_json,
)
from busd.demo.fleet_keys import (
    CentralKey,
    central_block,
    central_key,
    generate_keys,
)
from busd.demo.gate import Gate

__all__ = ["FleetOptions", "Fleet", "start_fleet", "prepare"]


@attrs.frozen(kw_only=True)
class FleetOptions:
    """What :func:`start_fleet` starts: ``buses`` buses from the bus
    config template ``bus_config``, the central on ``central_config``,
    files under ``state_dir``, ports from ``ports``; ``environ`` fills
    the configs' placeholders (``BUSGW_STATE_DIR`` is set to
    ``state_dir``); ``reload_env_file`` (CLI only) lets SIGHUP reload
    the central (its fleet file) and names its env file."""

    buses: int
    bus_config: str
    central_config: str
    state_dir: str
    ports: FleetPorts = FleetPorts()
    environ: Mapping[str, str] = attrs.field(factory=dict)
    strict: bool = False
    reloadable: bool = False
    reload_env_file: Optional[str] = None


@attrs.frozen
class _Prepared:
    plans: Tuple[BusPlan, ...]
    bus_raw: Any
    central_raw: Any
    environ: Dict[str, str]
    fleet_file: str
    key: CentralKey


def _read_json(path: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None


def prepare(options: FleetOptions) -> _Prepared:
    """Plan the fleet and make its keys; raises ValueError (a message
    for the user) when the configs cannot serve a demo fleet."""
    state_dir = os.path.abspath(options.state_dir)
    environ = dict(options.environ)
    environ["BUSGW_STATE_DIR"] = state_dir
    plans = plan_fleet(options.buses, state_dir, options.ports)
    bus_raw = _read_json(options.bus_config)
    if not isinstance(bus_raw, dict) or "busgw/bus" not in bus_raw.get(
        "extra_config", {}
    ):
        raise ValueError(f'{options.bus_config} has no "busgw/bus" block')
    central_raw = _read_json(options.central_config)
    key = central_key(central_raw, environ)
    fleet_file = _fleet_file(central_raw, environ, options.central_config)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    generate_keys(key, plans)
    return _Prepared(plans, bus_raw, central_raw, environ, fleet_file, key)


def _fleet_file(raw: Any, environ: Mapping[str, str], path: str) -> str:
    name = central_block(raw, environ).get("fleet_file")
    if not isinstance(name, str) or not name:
        raise ValueError(
            f'{path} has no "busgw/central".fleet_file: the demo writes'
            " its fleet there"
        )
    return os.path.join(os.path.dirname(os.path.abspath(path)), name)


class Fleet:
    """The running demo fleet: ``buses`` by id, the ``central`` gateway
    service, and their URLs. :meth:`stop` ends everything."""

    def __init__(self, reactor: Any, options: FleetOptions, ready: _Prepared):
        self.reactor = reactor
        self.options = options
        self.prepared = ready
        interface = options.ports.interface
        self.buses: Dict[str, SimulatedBus] = {
            p.id: SimulatedBus(reactor, p, interface) for p in ready.plans
        }
        self.central_gate = Gate(
            reactor, options.ports.central, interface, "central"
        )
        self.control_gate = Gate(
            reactor, options.ports.control, interface, "demo control"
        )
        self.central: Any = None
        self._pool: Any = None

    @property
    def central_url(self) -> str:
        return f"http://127.0.0.1:{self.central_gate.port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_gate.port}"

    @property
    def dashboard_url(self) -> str:
        return f"{self.central_url}/dashboard/"

    @property
    def central_role(self) -> Any:
        """The central's :class:`~busd.central.role.CentralRole`."""
        return next(r for r in self.central.roles if r.name == "central")

    async def _bind(self) -> None:
        await self.central_gate.open()
        await self.control_gate.open()
        for bus in self.buses.values():
            await bus.bind()

    def _serve(self) -> None:
        from busd.gateway import ConfigSource

        ready, opts = self.prepared, self.options
        configs = []
        for bus in self.buses.values():
            derived = bus_config(
                ready.bus_raw,
                bus.plan,
                port=bus.gate.port,
                device_ports=bus.device_ports,
                central_url=self.central_url,
                central=ready.key,
            )
            write_json(bus.plan.config_path, derived)
            loaded = load_config(
                bus.plan.config_path, strict=opts.strict, environ=ready.environ
            )
            configs.append((bus, loaded.config))
        urls = {bus.plan.id: bus.url for bus in self.buses.values()}
        write_json(ready.fleet_file, fleet_document(ready.plans, urls))
        central = load_config(
            opts.central_config, strict=opts.strict, environ=ready.environ
        ).config
        source = None
        if opts.reloadable:
            source = ConfigSource(
                opts.central_config, opts.strict, opts.reload_env_file
            )
        self.central, site = unbound_gateway(
            central, self.reactor, source=source
        )
        self.central.startService()
        self.central_gate.serve(site)
        client = self._client()
        for bus, config in configs:
            bus.serve(config, client, verbose=False)
        self.control_gate.serve(QuietSite(ControlResource(self.buses)))

    def _client(self) -> Any:
        """The devices' client for posting events to their gateways."""
        from busd.backends import make_client, make_pool

        self._pool = make_pool(self.reactor)
        # A bus switched off drops its connections: no stale one to reuse.
        self._pool.persistent = False
        return make_client(self.reactor, self._pool)

    def stop(self) -> "Deferred[Any]":
        """Close the control and central listeners, stop the central, then
        every bus; fires when all is closed."""
        d = DeferredList(
            [self.control_gate.close(), self.central_gate.close()],
            consumeErrors=True,
        )
        central, self.central = self.central, None
        d.addCallback(
            lambda _: central.stopService() if central is not None else None
        )
        d.addCallback(
            lambda _: DeferredList(
                [bus.close() for bus in self.buses.values()], consumeErrors=True
            )
        )
        d.addCallback(lambda _: self._close_pool())
        return d

    def _close_pool(self) -> Any:
        pool, self._pool = self._pool, None
        return maybeDeferred(pool.closeCachedConnections) if pool else None


async def start_fleet(reactor: Any, options: FleetOptions) -> Fleet:
    """Make, bind and start the demo fleet (see the module docstring).
    Raises ValueError, ConfigError or a bind error; then nothing is left
    listening."""
    fleet = Fleet(reactor, options, prepare(options))
    try:
        await fleet._bind()
        fleet._serve()
    except BaseException:
        await fleet.stop()
        raise
    return fleet
