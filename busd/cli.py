"""``busgw``: the command line.

``run`` serves a config under ``task.react`` (no twistd, no plugin
discovery, so it works from a zipapp; ``--workers N`` forks N of them);
``check`` prints every problem with its JSON path; ``reload`` signals a
running gateway; ``demo`` starts the simulated device services of one bus
beside the gateway; ``keys``/``token`` (busd.auth.commands) and ``outbox``
(busd.bus.commands) are the fleet's helpers. Printing to the terminal is
this layer's job; the daemon logs through twisted.logger.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any, Optional, Sequence

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from busd import __version__
from busd.auth import commands as auth_commands
from busd.bus import commands as outbox_command
from busd.config.env import EnvFileError, environment
from busd.config.load import load_config
from busd.demo import fleet_cli
from busd.errors import ConfigError
from busd.gateway import ConfigSource
from busd.logging import start_logging
from busd.service import DEFAULT_CONFIG, build_service, default_listen, validate_listen

__all__ = ["main", "parser"]

DEMO_CONFIG = "etc/busgw.json"
_ENV_FILE_HELP = (
    "NAME=value file (systemd EnvironmentFile syntax) for ${NAME} "
    "placeholders in the config; the process environment wins"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="busgw",
        description="An API gateway for vehicle fleets, reading KrakenD v3 configs.",
    )
    p.add_argument("--version", action="version", version=f"busgw {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def serve_args(sp: argparse.ArgumentParser, default_config: str) -> None:
        sp.add_argument("-c", "--config", default=default_config, help="config file")
        sp.add_argument("-p", "--port", type=int, help="override the config's port")
        sp.add_argument(
            "-d", "--debug", action="store_true", help="enable /__debug/"
        )
        sp.add_argument(
            "--listen",
            action="append",
            default=[],
            metavar="ENDPOINT",
            help="Twisted endpoint string, e.g. tcp:8000:interface=127.0.0.1 "
            "(repeatable; default: the config's port and listen_ip)",
        )
        sp.add_argument(
            "--strict", action="store_true", help="config warnings are errors"
        )
        sp.add_argument("--env-file", metavar="FILE", help=_ENV_FILE_HELP)
        sp.add_argument(
            "--log-level",
            default="info",
            choices=["debug", "info", "warn", "error"],
            help="lowest level of log events printed (default: info)",
        )
        sp.add_argument(
            "--log-format",
            default="text",
            choices=["text", "json"],
            help="text lines, or one JSON object per line (journald, shippers)",
        )

    run = sub.add_parser("run", help="serve a config")
    serve_args(run, DEFAULT_CONFIG)
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve with N processes sharing the port (SO_REUSEPORT); the"
        " parent forwards SIGTERM/SIGHUP and restarts a worker that dies",
    )
    check = sub.add_parser("check", help="validate a config and print problems")
    check.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    check.add_argument("--strict", action="store_true")
    check.add_argument("--env-file", metavar="FILE", help=_ENV_FILE_HELP)
    reload = sub.add_parser(
        "reload", help="make a running gateway re-read its config (SIGHUP)"
    )
    target = reload.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=int, help="the gateway's process id")
    target.add_argument("--pidfile", help="file holding the gateway's pid")
    demo = sub.add_parser(
        "demo", help="simulated bus device services plus the gateway on them"
    )
    serve_args(demo, _demo_config())
    demo.add_argument(
        "--devices-only",
        action="store_true",
        help="start only the simulated device services",
    )
    # --buses N: a demo fleet and its central (busd.demo.fleet_cli).
    fleet_cli.add_arguments(demo)
    auth_commands.add_commands(sub)
    outbox_command.add_command(sub)
    return p


def _demo_config() -> str:
    """The demo config: the installed one if present, else the source tree's."""
    for path in (DEMO_CONFIG, "/etc/busgw/busgw.json"):
        if os.path.exists(path):
            return path
    return DEMO_CONFIG


def _check(args: argparse.Namespace) -> int:
    try:
        result = load_config(
            args.config, strict=args.strict, environ=environment(args.env_file)
        )
    except (ConfigError, EnvFileError) as err:
        print(err, file=sys.stderr)
        return 1
    for problem in result.warnings:
        print(problem, file=sys.stderr)
    n = len(result.config.endpoints)
    print(f"Syntax OK! {args.config}: {n} endpoint(s), {len(result.warnings)} warning(s)")
    central = result.config.central
    if central is not None:
        keyless = sum(1 for bus in central.fleet if bus.key is None)
        print(
            f"central: {len(central.fleet)} bus(es) in the fleet"
            + (f", {keyless} without a key (their events are refused)" if keyless else "")
        )
    return 0


def _reload(args: argparse.Namespace) -> int:
    pid = args.pid
    if pid is None:
        try:
            with open(args.pidfile) as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError) as err:
            print(f"busgw reload: cannot read {args.pidfile}: {err}", file=sys.stderr)
            return 1
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as err:
        print(f"busgw reload: cannot signal process {pid}: {err}", file=sys.stderr)
        return 1
    print(f"sent SIGHUP to {pid}; its log says whether the new config was applied")
    return 0


def _serve(reactor: Any, service: IService) -> "Deferred[None]":
    """Start ``service`` once the reactor runs and stop it (listeners
    first) before the reactor shuts down on SIGTERM/SIGINT; the returned
    Deferred fails if the start does (exit 1), else never fires, so
    ``react`` runs until the reactor is stopped."""
    done: "Deferred[None]" = Deferred()

    def start() -> None:
        # Not before: ``react`` calls us before ``reactor.run()`` installs
        # its SIGTERM handler, and a SIGTERM to a process already listening
        # would kill it without stopping the service.
        try:
            service.startService()
        except BaseException:
            failure = Failure()
            # Stop what did start (an outbox's thread would keep the
            # process alive, so it would never exit), then fail.
            stopped = maybeDeferred(service.stopService)
            stopped.addBoth(lambda _: done.errback(failure))
            return
        reactor.addSystemEventTrigger("before", "shutdown", service.stopService)

    reactor.callWhenRunning(start)
    return done


def _run(args: argparse.Namespace, with_devices: bool = False) -> int:
    # A SIGHUP (busgw reload) while starting is ignored rather than fatal;
    # the gateway installs its reload handler once it runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The reactor is imported only after --workers forked (busd.workers).
    top = MultiService()
    if with_devices:
        from twisted.internet import reactor

        from busd.demo import devices_service

        devices_service(reactor).setServiceParent(top)
    if not getattr(args, "devices_only", False):
        try:
            result = load_config(
                args.config,
                strict=args.strict,
                environ=environment(args.env_file),
            )
        except (ConfigError, EnvFileError) as err:
            print(err, file=sys.stderr)
            return 1
        listen = args.listen or [default_listen(result.config, args.port)]
        problems = validate_listen(listen)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        worker = getattr(args, "worker_index", None)
        if worker is None:
            for problem in result.warnings:
                print(problem, file=sys.stderr)
            if getattr(args, "workers", 1) != 1:
                return _run_workers(args, result.config)
        from twisted.internet import reactor

        gateway = build_service(
            result.config,
            reactor,
            listen=listen,
            debug=args.debug,
            source=ConfigSource(args.config, args.strict, args.env_file),
            reuse_port=worker is not None,
            serve_admin=worker in (None, 0),
        )
        gateway.setServiceParent(top)
        if with_devices:  # devices raising events, a fake central (busd.demo.events)
            from busd.demo.events import demo_events_service

            demo_events_service(reactor, result.config, args.port).setServiceParent(top)
    start_logging(args.log_level, args.log_format)
    from twisted.internet import task

    try:
        task.react(lambda r: _serve(r, top))
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def _run_workers(args: argparse.Namespace, config: Any) -> int:
    """``run --workers N``: fork N workers serving ``args`` (busd.workers)."""
    from busd.workers import listen_problem, refuse_reason, supervise

    listen = args.listen or [default_listen(config, args.port)]
    why = refuse_reason(config, args.workers) or listen_problem(listen)
    if why:
        print(f"busgw run: {why}", file=sys.stderr)
        return 1

    def serve(index: int) -> int:
        args.worker_index = index
        return _run(args)

    return supervise(args.workers, serve, now=time.monotonic, sleep=time.sleep)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    if args.command == "run":
        return _run(args)
    if args.command == "reload":
        return _reload(args)
    if args.command == "demo" and args.buses is not None:
        return fleet_cli.run_fleet_demo(args)
    if args.command == "demo":
        return _run(args, with_devices=True)
    if args.command == "outbox":
        return outbox_command.run_outbox(args)
    if args.command in auth_commands.COMMANDS:
        return auth_commands.run_command(args, now=time.time())
    raise AssertionError(args.command)


if __name__ == "__main__":  # python -m busd.cli
    sys.exit(main())
