"""``busgw run --workers N``: N gateway processes serving one port.

CPython runs one request at a time per process; a Pi has four cores. The
parent validates the config and the listen strings, then forks N workers
before any reactor exists (each worker builds its own reactor, pool and
pipelines, and binds its own socket with SO_REUSEPORT, busd.listen, so the
kernel spreads connections across them). The parent only supervises:

* SIGTERM and SIGINT are forwarded to every worker; the parent exits once
  all have stopped (each finishes its requests as ``busgw run`` does).
* SIGHUP is forwarded: every worker re-reads the config (a reload).
* A worker that dies on its own is started again after
  :data:`RESTART_DELAY` seconds; more than :data:`MAX_RESTARTS` deaths in
  :data:`RESTART_WINDOW` seconds stop the whole group (exit status 1), so
  a broken machine does not restart in a loop.

The first worker alone serves the admin listener (metrics are that
worker's). Configs with bus roles (``busgw/bus``, ``busgw/health``,
``busgw/inbound``) are refused: their state (the event outbox, check
results) lives in one process. twistd has no such option: ``twistd
busgw`` runs one process (see README, "Performance").
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, Dict, List, Optional

from busd.config.model import GatewayConfig

__all__ = [
    "supervise",
    "refuse_reason",
    "listen_problem",
    "RESTART_DELAY",
    "MAX_RESTARTS",
    "RESTART_WINDOW",
]

RESTART_DELAY = 1.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def refuse_reason(config: GatewayConfig, workers: int) -> Optional[str]:
    """Why ``config`` cannot run in ``workers`` processes, or None."""
    if workers < 1:
        return "--workers must be at least 1"
    if workers > 1:
        held = [
            name
            for name, value in (
                ("busgw/bus", getattr(config, "bus", None)),
                ("busgw/health", getattr(config, "health", None)),
                ("busgw/inbound", getattr(config, "inbound", None)),
                # N centrals would poll every bus N times and share one
                # event database (whose lock refuses the second).
                ("busgw/central", getattr(config, "central", None)),
            )
            if value is not None
        ]
        if held:
            return (
                f"--workers {workers}: {', '.join(held)} keep their state in"
                " one process; run this config with one worker"
            )
    return None


def listen_problem(listen: List[str]) -> Optional[str]:
    """Why ``listen`` cannot be shared by workers, or None: each must be
    a ``tcp:`` or ``ssl:`` string with a fixed port (with port 0 every
    worker would get a port of its own)."""
    from twisted.internet import endpoints
    from twisted.internet.testing import MemoryReactor

    for desc in listen:
        endpoint = endpoints.serverFromString(MemoryReactor(), desc)
        port = getattr(endpoint, "_port", None)
        if not isinstance(port, int):
            return f"--workers needs tcp: or ssl: listen strings, not {desc!r}"
        if port == 0:
            return f"--workers needs a fixed port, not {desc!r}"
    return None


class _Group:
    """The parent's view of its workers."""

    def __init__(self, serve: Callable[[int], int], out: Any):
        self.serve = serve
        self.out = out
        self.children: Dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.deaths: List[float] = []

    def spawn(self, index: int) -> None:
        # The forwarded signals stay blocked across the fork: in the parent
        # until the pid is recorded (else a stop signal would miss the new
        # worker), in the worker until the parent's ``forward`` handler is
        # gone (else it would run there and signal the worker's siblings).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    for sig in _FORWARDED:
                        signal.signal(sig, signal.SIG_DFL)
                    # Until the gateway installs its reload handler, a SIGHUP
                    # (busgw reload) must not kill a worker that is starting.
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                    code = self.serve(index)
                except BaseException as exc:  # report, never return to the parent's loop
                    print(f"busgw worker {index}: {exc!r}", file=sys.stderr)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            self.children[pid] = index
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def forward(self, signum: int, frame: Any = None) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass


def supervise(
    count: int,
    serve: Callable[[int], int],
    *,
    now: Callable[[], float],
    sleep: Callable[[float], None],
    out: Any = None,
) -> int:
    """Run ``serve(index)`` in ``count`` forked workers until a stop signal
    (exit 0 once every worker is gone) or too many deaths (exit 1)."""
    out = out or sys.stderr
    group = _Group(serve, out)
    previous = {sig: signal.signal(sig, group.forward) for sig in _FORWARDED}
    try:
        for index in range(count):
            group.spawn(index)
        while group.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index_or_none = group.children.pop(pid, None)
            if index_or_none is None or group.stopping:
                continue
            index = index_or_none
            code = os.waitstatus_to_exitcode(status)
            t = now()
            group.deaths = [d for d in group.deaths if t - d < RESTART_WINDOW]
            group.deaths.append(t)
            if len(group.deaths) > MAX_RESTARTS:
                print(
                    f"busgw: worker {index} exited ({code}); too many worker"
                    " deaths, stopping",
                    file=out,
                )
                group.forward(signal.SIGTERM)
                _reap(group)
                return 1
            print(
                f"busgw: worker {index} exited ({code}); starting it again",
                file=out,
            )
            sleep(RESTART_DELAY)
            if not group.stopping:
                group.spawn(index)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reap(group: _Group) -> None:
    while group.children:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            return
        group.children.pop(pid, None)
