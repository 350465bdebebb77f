"""The outbox across kill -9 of a real `busgw run` process: nothing that
got a 202 is lost, and the central gets everything in order."""

import json
import os
import re
import signal
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.error import ConnectError
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseFailed, ResponseNeverReceived

from tests.bus._events_support import write_key
from tests.integration._events import (
    Central,
    bus_config,
    event_body,
    free_port,
    listen_on,
    post_event,
)
from tests.integration._util import client

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
_LISTENING = re.compile(rb"Site starting on (\d+)")


class _Gateway(ProcessProtocol):
    """One `busgw run` process: ``listening`` fires with its base URL,
    ``ended`` when it exits."""

    def __init__(self):
        self.output = b""
        self.listening = Deferred()
        self.ended = Deferred()

    def outReceived(self, data):
        self.output += data
        m = _LISTENING.search(self.output)
        if m and not self.listening.called:
            self.listening.callback(f"http://127.0.0.1:{int(m.group(1))}")

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.listening.called:
            self.listening.errback(
                RuntimeError(
                    "exited before listening:\n" + self.output.decode()
                )
            )
        self.ended.callback(reason.value)


class KillTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def setup_bus(self):
        """A config file for a bus whose central port is free (down)."""
        self.dir = os.path.abspath(self.mktemp())
        key_path, _ = write_key(self.dir)
        self.central = Central(key_path)
        self.central_port = yield free_port()
        self.config = os.path.join(self.dir, "busgw.json")
        with open(self.config, "w") as handle:
            json.dump(
                bus_config(
                    os.path.join(self.dir, "state"), key_path, self.central_port
                ),
                handle,
            )
        self.http = client(self)

    @inlineCallbacks
    def start(self):
        """Start `busgw run`; return (process, base URL)."""
        proto = _Gateway()
        proc = reactor.spawnProcess(
            proto,
            sys.executable,
            [
                sys.executable,
                "-m",
                "busd",
                "run",
                "-c",
                self.config,
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
            env=dict(os.environ, PYTHONPATH=ROOT),
            path=ROOT,
        )

        def stop():
            if not proto.ended.called:
                proc.signalProcess(signal.SIGKILL)
            return proto.ended

        self.addCleanup(stop)
        base = yield proto.listening
        return proc, proto, base

    @inlineCallbacks
    def kill(self, proc, proto):
        proc.signalProcess(signal.SIGKILL)
        reason = yield proto.ended
        self.assertEqual(reason.signal, signal.SIGKILL)

    @inlineCallbacks
    def test_killed_while_delivering(self):
        """SIGKILL while a delivery is in flight: after a restart the central
        gets every accepted event, each id at least once, in order."""
        yield self.setup_bus()
        self.central.hold = True
        yield listen_on(self, self.central_port, self.central)
        proc, proto, base = yield self.start()
        ids = [f"k{i:02}" for i in range(20)]
        for event_id in ids:
            code, _ = yield post_event(self.http, base, event_body(event_id))
            self.assertEqual(code, 202)
        yield self.central.when(1)  # the first delivery is in flight
        yield self.kill(proc, proto)
        self.central.hold = False
        self.central.held = []
        proc, proto, base = yield self.start()
        yield self.central.when(20)
        self.assertEqual([i for i, _ in self.central.first_arrivals()], ids)
        proc.signalProcess(signal.SIGTERM)
        yield proto.ended

    @inlineCallbacks
    def test_outage_1000_events_kill_9(self):
        """The scripted outage: 1,000 events accepted while the central is
        unreachable, kill -9 in the middle (posts in flight are retried with
        the same id), restart, central back: it receives all 1,000, each id
        at least once, in order, none lost."""
        yield self.setup_bus()
        proc, proto, base = yield self.start()
        state = {"base": base, "accepted": 0, "restarted": Deferred()}
        killed = Deferred()
        workers, per_worker = 10, 100

        @inlineCallbacks
        def device(w):
            for i in range(per_worker):
                body = event_body(f"w{w}-{i:03}")
                while True:
                    try:
                        code, answer = yield post_event(
                            self.http, state["base"], body
                        )
                    except (
                        ConnectError,
                        ResponseFailed,
                        ResponseNeverReceived,
                    ):
                        yield state[
                            "restarted"
                        ]  # the gateway is down: wait, then retry the same id
                        continue
                    self.assertEqual(
                        (code, answer), (202, {"id": f"w{w}-{i:03}"})
                    )
                    break
                state["accepted"] += 1
                if state["accepted"] == 500 and not killed.called:
                    killed.callback(None)

        posting = DeferredList(
            [device(w) for w in range(workers)],
            fireOnOneErrback=True,
            consumeErrors=True,
        )
        yield killed
        yield self.kill(proc, proto)
        proc, proto, state["base"] = yield self.start()
        state["restarted"].callback(None)
        yield posting
        self.assertEqual(state["accepted"], 1000)
        self.assertEqual(self.central.deliveries, 0)
        yield listen_on(self, self.central_port, self.central)
        yield self.central.when(1000)
        first = self.central.first_arrivals()
        self.assertEqual(len(first), 1000)
        seqs = [seq for _, seq in first]
        self.assertEqual(seqs, sorted(seqs))
        for w in range(workers):
            mine = [
                event_id
                for event_id, _ in first
                if event_id.startswith(f"w{w}-")
            ]
            self.assertEqual(mine, [f"w{w}-{i:03}" for i in range(per_worker)])
        proc.signalProcess(signal.SIGTERM)
        yield proto.ended
