"""Listening sockets (busd.listen) and ``busgw run --workers N``
(busd.workers), on loopback and as real processes."""

import contextlib
import io
import json
import os
import re
import signal
import socket
import sys
from types import SimpleNamespace
from typing import List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from busd.cli import main
from busd.config.load import parse_config
from busd.listen import DEFAULT_BACKLOG, ReusePortEndpoint, tune
from busd.testing import JSONBackend
from busd.workers import listen_problem, refuse_reason
from tests.integration._util import client, serve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TuneTests(SynchronousTestCase):
    def test_backlog_raised_unless_given(self) -> None:
        """tcp/ssl endpoints get the deep backlog unless the string sets one."""
        from twisted.internet.testing import MemoryReactor

        desc = "tcp:0:interface=127.0.0.1"
        endpoint = tune(serverFromString(MemoryReactor(), desc), desc)
        self.assertEqual(endpoint._backlog, DEFAULT_BACKLOG)
        desc = "tcp:0:backlog=7"
        endpoint = tune(serverFromString(MemoryReactor(), desc), desc)
        self.assertEqual(endpoint._backlog, 7)

    def test_reuse_port_needs_tcp(self) -> None:
        """Other endpoint kinds pass through, but cannot be shared by workers."""
        from twisted.internet.testing import MemoryReactor

        desc = "unix:/tmp/busgw-test.sock"
        endpoint = serverFromString(MemoryReactor(), desc)
        self.assertIs(tune(endpoint, desc), endpoint)
        self.assertRaises(ValueError, tune, endpoint, desc, True)


class ServiceTests(SynchronousTestCase):
    def test_worker_service_tree(self) -> None:
        """reuse_port shares the listeners; serve_admin=False drops the admin one."""
        from twisted.internet.testing import MemoryReactorClock

        from busd.service import build_service

        raw = _config(
            "http://127.0.0.1:9101",
            extra_config={"busgw/telemetry": {"admin": {"listen": "tcp:0"}}},
        )
        cfg = parse_config(raw).config
        names = lambda top: [s.name for s in top]  # noqa: E731
        full = build_service(cfg, MemoryReactorClock(), listen=["tcp:0"])
        self.assertIn("admin", names(full))
        worker = build_service(
            cfg, MemoryReactorClock(), listen=["tcp:0"], reuse_port=True, serve_admin=False
        )
        self.assertNotIn("admin", names(worker))
        self.assertIsInstance(worker.getServiceNamed("http").endpoint, ReusePortEndpoint)


class ReusePortTests(TestCase):
    @inlineCallbacks
    def test_two_listeners_one_port(self) -> None:
        """Two SO_REUSEPORT listeners bind the same loopback port."""
        first = yield ReusePortEndpoint(
            serverFromString(reactor, "tcp:0:interface=127.0.0.1")
        ).listen(Factory.forProtocol(Protocol))
        self.addCleanup(first.stopListening)
        port = first.getHost().port
        second = yield ReusePortEndpoint(
            serverFromString(reactor, f"tcp:{port}:interface=127.0.0.1")
        ).listen(Factory.forProtocol(Protocol))
        self.addCleanup(second.stopListening)
        self.assertEqual(second.getHost().port, port)


def _config(url: str, **extra) -> dict:
    return {
        "version": 3,
        "endpoints": [{"endpoint": "/v", "backend": [{"host": [url], "url_pattern": "/v"}]}],
        **extra,
    }


class RefuseTests(SynchronousTestCase):
    def test_roles_need_one_process(self) -> None:
        """Configs whose roles keep state are refused with more than one worker."""
        raw = _config("http://127.0.0.1:9101")
        plain = parse_config(raw).config
        self.assertIsNone(refuse_reason(plain, 4))
        self.assertIn("at least 1", refuse_reason(plain, 0))
        held = SimpleNamespace(bus=object(), health=None, inbound=object())
        self.assertIsNone(refuse_reason(held, 1))
        why = refuse_reason(held, 2)
        self.assertIn("busgw/bus, busgw/inbound", why)
        central = SimpleNamespace(bus=None, health=None, inbound=None, central=object())
        self.assertIn("busgw/central keep", refuse_reason(central, 2))

    def test_cli_refuses_before_forking(self) -> None:
        """`run --workers 0` fails at once with a message, serving nothing."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump(_config("http://127.0.0.1:9101"), f)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["run", "-c", path, "--workers", "0"])
        self.assertEqual(code, 1)
        self.assertIn("--workers must be at least 1", err.getvalue())


class ListenProblemTests(SynchronousTestCase):
    def test_fixed_tcp_ports_only(self) -> None:
        """Workers share tcp:/ssl: strings with a fixed port, nothing else."""
        self.assertIsNone(listen_problem(["tcp:8000", "tcp:8001:interface=127.0.0.1"]))
        self.assertIn("fixed port", listen_problem(["tcp:0"]))
        self.assertIn("tcp: or ssl:", listen_problem(["unix:/tmp/x.sock"]))


class _Watcher(ProcessProtocol):
    """Collects output; ``wait(pattern, n)`` fires once it matched n times."""

    def __init__(self) -> None:
        self.output = b""
        self.waits: List = []
        self.ended: Deferred = Deferred()

    def wait(self, pattern: bytes, count: int = 1) -> Deferred:
        d: Deferred = Deferred()
        self.waits.append((re.compile(pattern), count, d))
        self._check()
        return d

    def _check(self) -> None:
        for item in list(self.waits):
            regex, count, d = item
            if len(regex.findall(self.output)) >= count:
                self.waits.remove(item)
                d.callback(None)

    def outReceived(self, data: bytes) -> None:
        self.output += data
        self._check()

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        for _, _, d in self.waits:
            d.errback(RuntimeError(self.output.decode()))
        self.waits = []
        self.ended.callback(reason.value.exitCode)


def _children(pid: int) -> List[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


class WorkersProcessTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_workers_serve_reload_restart_and_stop(self) -> None:
        """Two workers serve one port; SIGHUP reloads both, a killed worker
        comes back, SIGTERM stops all and the parent exits 0."""
        url, _ = yield serve(self, JSONBackend({"/v": (200, {"fuel": 42})}))
        # Hold the port with our own SO_REUSEPORT socket (bound, not
        # listening), so no other process can take it meanwhile.
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            json.dump(_config(url), f)
        watcher = _Watcher()
        proc = reactor.spawnProcess(
            watcher,
            sys.executable,
            [sys.executable, "-m", "busd", "run", "-c", path, "--workers", "2",
             "--listen", f"tcp:{port}:interface=127.0.0.1"],
            env=dict(os.environ, PYTHONPATH=ROOT),
            path=ROOT,
        )
        try:
            yield watcher.wait(rb"Site starting on", 2)
            http = client(self)
            for _ in range(4):
                resp = yield http.get(f"http://127.0.0.1:{port}/v")
                body = yield resp.content()
                self.assertEqual((resp.code, json.loads(body)), (200, {"fuel": 42}))
            proc.signalProcess(signal.SIGHUP)
            yield watcher.wait(rb"config reloaded", 2)
            workers = _children(proc.pid)
            self.assertEqual(len(workers), 2)
            os.kill(workers[0], signal.SIGKILL)
            yield watcher.wait(rb"starting it again", 1)
            yield watcher.wait(rb"Site starting on", 3)
            self.assertEqual(len(_children(proc.pid)), 2)
        finally:
            if not watcher.ended.called:
                proc.signalProcess(signal.SIGTERM)
        code = yield watcher.ended
        self.assertEqual(code, 0, watcher.output.decode())
        self.assertEqual(
            watcher.output.count(b"Main loop terminated"), 2, watcher.output.decode()
        )
