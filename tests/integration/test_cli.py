"""The command line and twistd, run as real processes on loopback: they
serve, and SIGTERM shuts them down cleanly."""

import json
import os
import re
import signal
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase

from busd.testing import JSONBackend
from tests.integration._util import client, serve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = ["-c", "from twisted.scripts.twistd import run; run()"]
_LISTENING = re.compile(rb"Site starting on (\d+)")


class _Watcher(ProcessProtocol):
    """Collects output; fires ``listening`` with the gateway's port and
    ``ended`` with the exit code."""

    def __init__(self):
        self.output = b""
        self.listening: Deferred[int] = Deferred()
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data):
        self.output += data
        m = _LISTENING.search(self.output)
        if m and not self.listening.called:
            self.listening.callback(int(m.group(1)))

    errReceived = outReceived

    def processEnded(self, reason):
        code = reason.value.exitCode
        self.signal = reason.value.signal
        if not self.listening.called:
            self.listening.errback(
                RuntimeError(f"exited {code} before listening:\n{self.output.decode()}")
            )
        self.ended.callback(code)


class ProcessTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def config_file(self):
        url, _ = yield serve(self, JSONBackend({"/v": (200, {"fuel": 42})}))
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            json.dump(
                {
                    "version": 3,
                    "endpoints": [
                        {"endpoint": "/v", "backend": [{"host": [url], "url_pattern": "/v"}]}
                    ],
                },
                f,
            )
        return path

    @inlineCallbacks
    def run_and_stop(self, args):
        watcher = _Watcher()
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = reactor.spawnProcess(
            watcher, sys.executable, [sys.executable, *args], env=env, path=ROOT
        )
        try:
            port = yield watcher.listening
            http = client(self)
            resp = yield http.get(f"http://127.0.0.1:{port}/v")
            body = yield resp.content()
            self.assertEqual((resp.code, json.loads(body)), (200, {"fuel": 42}))
        finally:
            if not watcher.ended.called:
                proc.signalProcess(signal.SIGTERM)
        code = yield watcher.ended
        return (code if code is not None else -watcher.signal), watcher.output

    @inlineCallbacks
    def test_busgw_run(self):
        """`busgw run` serves the config and exits 0 on SIGTERM."""
        path = yield self.config_file()
        code, output = yield self.run_and_stop(
            ["-m", "busd", "run", "-c", path, "--listen", "tcp:0:interface=127.0.0.1"]
        )
        self.assertEqual(code, 0, output.decode())
        self.assertIn(b"Main loop terminated", output)

    @inlineCallbacks
    def test_twistd(self):
        """`twistd -n busgw` serves the same and stops cleanly on SIGTERM
        (twistd re-raises the signal after shutting down, as systemd
        expects of a SIGTERM-stopped service)."""
        path = yield self.config_file()
        code, output = yield self.run_and_stop(
            [
                *TWISTD,
                "--nodaemon",
                "--pidfile=",
                "busgw",
                "-c",
                path,
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ]
        )
        self.assertIn(code, (0, -signal.SIGTERM), output.decode())
        self.assertIn(b"Server Shut Down.", output)

    @inlineCallbacks
    def test_twistd_bad_config(self):
        """twistd refuses a bad config with its paths and a non-zero exit."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            json.dump({"version": 2, "endpoints": [{"endpoint": "nope"}]}, f)
        watcher = _Watcher()
        watcher.listening.addErrback(lambda _: None)
        reactor.spawnProcess(
            watcher,
            sys.executable,
            [sys.executable, *TWISTD, "-n", "--pidfile=", "busgw", "-c", path],
            env=dict(os.environ, PYTHONPATH=ROOT),
            path=ROOT,
        )
        code = yield watcher.ended
        self.assertNotEqual(code, 0)
        self.assertIn(b"unsupported version: 2 (want: 3)", watcher.output)
        self.assertIn(b"endpoints[0].endpoint", watcher.output)

    @inlineCallbacks
    def test_busy_port_exits(self):
        """`busgw run` of a bus config (its outbox thread already started)
        on a port in use logs why and exits 1 instead of hanging."""
        from twisted.internet.protocol import Factory

        taken = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        state = os.path.abspath(self.mktemp())
        watcher = _Watcher()
        watcher.listening.addErrback(lambda _: None)
        reactor.spawnProcess(
            watcher,
            sys.executable,
            [sys.executable, "-m", "busd", "run", "-c", "etc/busgw.json", "--listen",
             f"tcp:{taken.getHost().port}:interface=127.0.0.1"],
            env=dict(os.environ, PYTHONPATH=ROOT, BUSGW_STATE_DIR=state),
            path=ROOT,
        )
        code = yield watcher.ended.addTimeout(30, reactor)
        self.assertEqual(code, 1, watcher.output.decode())
        self.assertIn(b"Address already in use", watcher.output)
