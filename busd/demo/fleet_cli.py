"""The terminal side of ``busgw demo --buses N`` (busd.cli hands over
here): options, printing, logging and the reactor run.

Buses log quietly: only their warnings and errors reach the terminal,
unless ``--verbose``; the central's log is the demo's story.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, Dict, List

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import ILogFilterPredicate, LogLevel, PredicateResult
from zope.interface import implementer

from busd.logging import start_logging

__all__ = ["add_arguments", "run_fleet_demo", "BUS_NAMESPACES"]

#: Log namespaces that only the simulated buses use.
BUS_NAMESPACES = ("busd.bus.", "busd.health.", "busd.demo.events")
_CENTRAL_CONFIG = "etc/central.json"


def add_arguments(demo: argparse.ArgumentParser) -> None:
    """The fleet options of ``busgw demo``."""
    demo.add_argument(
        "--buses",
        type=int,
        metavar="N",
        help="start N simulated buses (each a bus gateway with its devices)"
        " and a central polling them on --port (default 8000)",
    )
    demo.add_argument(
        "--central-config",
        metavar="FILE",
        help="the central's config with --buses (default: etc/central.json,"
        " else /etc/busgw/central.json)",
    )
    demo.add_argument(
        "--bus-port",
        type=int,
        default=8101,
        metavar="PORT",
        help="bus i serves on PORT+i with --buses (0: free ports)",
    )
    demo.add_argument(
        "--device-port",
        type=int,
        default=9200,
        metavar="PORT",
        help="bus i's devices on PORT+10i+1..3 with --buses (0: free ports)",
    )
    demo.add_argument(
        "--control-port",
        type=int,
        default=8099,
        metavar="PORT",
        help="the loopback control listener with --buses (stop/start a bus)",
    )
    demo.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="with --buses, log the buses' info lines too",
    )


def _central_config(args: argparse.Namespace) -> str:
    if args.central_config:
        return str(args.central_config)
    for path in (_CENTRAL_CONFIG, "/etc/busgw/central.json"):
        if os.path.exists(path):
            return path
    return _CENTRAL_CONFIG


@implementer(ILogFilterPredicate)
class _Quiet:
    """Drops the buses' events below ``warn`` (a predicate)."""

    def __call__(self, event: Dict[str, Any]) -> PredicateResult:
        ns = str(event.get("log_namespace", ""))
        level = event.get("log_level", LogLevel.info)
        if level >= LogLevel.warn:
            return PredicateResult.maybe
        if ns.startswith(BUS_NAMESPACES):
            return PredicateResult.no
        # "bus FW-0042 ... starting on PORT" (busd.demo.gate names)
        message = event.get("message") or ("",)
        if ns == "log_legacy" and str(message[0]).startswith("bus "):
            return PredicateResult.no
        return PredicateResult.maybe


def _banner(fleet: Any) -> str:
    control = fleet.control_url
    lines = [
        "",
        f"busgw demo fleet: {len(fleet.buses)} bus(es), central on {fleet.central_url}",
        f"  dashboard:      {fleet.dashboard_url}",
        f"  fleet health:   curl {fleet.central_url}/fleet/health",
    ]
    for bus in fleet.buses.values():
        p = bus.plan
        lines.append(
            f"  {p.id}  line {p.line:<6} depot {p.depot:<9} {bus.url}"
            f"  (config {p.config_path})"
        )
    some = list(fleet.buses)[-1]
    lines += [
        f"  stop a bus:     curl -X POST {control}/buses/{some}/stop",
        f"  start it again: curl -X POST {control}/buses/{some}/start",
        f"  list the buses: curl {control}/buses",
        "  (a stopped bus turns stale, then offline: see the thresholds in"
        " the central config's poll block)",
        "",
    ]
    return "\n".join(lines)


def run_fleet_demo(args: argparse.Namespace) -> int:
    """Run the demo fleet until SIGINT/SIGTERM; the exit status."""
    # A SIGHUP (busgw reload) while starting is ignored rather than fatal,
    # as in ``busgw run``; the central installs its reload handler once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from busd.config.env import EnvFileError, environment
    from busd.demo.fleet import FleetOptions, start_fleet
    from busd.demo.fleet_config import FleetPorts
    from busd.errors import ConfigError
    from twisted.internet.error import CannotListenError

    state_dir = os.path.abspath(os.environ.get("BUSGW_STATE_DIR") or ".state")
    # A SIGHUP reload of the central re-reads its config with the process
    # environment: it must name the same state dir.
    os.environ["BUSGW_STATE_DIR"] = state_dir
    try:
        environ = environment(args.env_file)
    except EnvFileError as err:
        print(err, file=sys.stderr)
        return 1
    options = FleetOptions(
        buses=args.buses,
        bus_config=args.config,
        central_config=_central_config(args),
        state_dir=state_dir,
        ports=FleetPorts(
            central=8000 if args.port is None else args.port,
            control=args.control_port,
            bus=args.bus_port,
            devices=args.device_port,
        ),
        environ=environ,
        strict=args.strict,
        reloadable=True,
        reload_env_file=args.env_file,
    )
    failed: List[BaseException] = []

    async def serve(reactor: Any) -> None:
        try:
            fleet = await start_fleet(reactor, options)
        except (ValueError, ConfigError, OSError, CannotListenError) as err:
            failed.append(err)  # a message for the user, not a traceback
            return
        reactor.addSystemEventTrigger("before", "shutdown", fleet.stop)
        print(_banner(fleet), flush=True)
        await Deferred()  # until the reactor stops

    start_logging(args.log_level, args.log_format, [] if args.verbose else [_Quiet()])
    from twisted.internet import task

    try:
        task.react(lambda r: ensureDeferred(serve(r)))
    except SystemExit as exit:
        if failed:
            print(f"busgw demo: {failed[0]}", file=sys.stderr)
            return 1
        return int(exit.code or 0)
    return 0
