"""The sender with a deterministic clock and a fake central (StubTreq):
order, headers and token, backoff with jitter, rejections, stop."""

import json
import os

import jwt
from treq.testing import StubTreq
from twisted.internet.defer import fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from busd.auth.sign import generate_key
from busd.bus.outbox import Outbox
from busd.bus.sender import Sender, TokenSource
from busd.bus.store import Store
from busd.config._bus import OutboxConfig
from tests.bus._events_support import NOW, event, sync_run

URL = "http://central.test/events"


class Central(Resource):
    """Answers ``statuses`` in turn (then 200); records every request;
    with ``hang`` it never answers."""

    isLeaf = True

    def __init__(self, statuses=(), hang=False):
        super().__init__()
        self.statuses = list(statuses)
        self.hang = hang
        self.requests = []
        self.disconnected = 0

    def render_POST(self, request):
        self.requests.append(
            (
                {
                    k.decode().lower(): v[0].decode()
                    for k, v in request.requestHeaders.getAllRawHeaders()
                },
                json.loads(request.content.read()),
            )
        )
        if self.hang:
            request.notifyFinish().addErrback(
                lambda _: setattr(self, "disconnected", self.disconnected + 1)
            )
            return NOT_DONE_YET
        status = self.statuses.pop(0) if self.statuses else 200
        request.setResponseCode(status)
        return b'{"error":"bad kind"}' if status >= 400 else b"{}"

    @property
    def ids(self):
        return [body["id"] for _, body in self.requests]


class MaxRandom:
    """An rng whose uniform(a, b) is b, recording the bounds."""

    def __init__(self):
        self.bounds = []

    def uniform(self, a, b):
        self.bounds.append((a, b))
        return b


class Down:
    """A client whose every request fails to connect."""

    def __init__(self):
        self.calls = 0

    def request(self, *args, **kwargs):
        self.calls += 1
        return fail(ConnectionRefusedError("central down"))


class SenderCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOW)
        self.key = generate_key("ES256")
        self.store = Store(os.path.abspath(self.mktemp()), OutboxConfig())
        self.addCleanup(self.store.close)
        self.outbox = Outbox(
            self.store, sync_run, self.clock, OutboxConfig(), "FW-0042"
        )
        self.outbox.open()
        self.rng = MaxRandom()

    def sender(self, client, **kw):
        tokens = TokenSource(
            self.key, "FW-0042", "FW-0042", "central", 60.0, self.clock
        )
        kw.setdefault("retry_initial", 1.0)
        kw.setdefault("retry_max", 10.0)
        sender = Sender(
            self.outbox, client, self.clock, tokens, url=URL, rng=self.rng, **kw
        )
        self.outbox.on_added(sender.wake)
        sender.start()
        self.addCleanup(sender.stop)
        return sender

    def add(self, *ids, **fields):
        for i in ids:
            self.successResultOf(self.outbox.add(event(id=i, **fields)))

    def state(self, event_id):
        (row,) = [
            r
            for r in self.store._rows(
                "SELECT id, state, error, attempts FROM events"
            )
            if r["id"] == event_id
        ]
        return row

    def tearDown(self):
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DeliveryTests(SenderCase):
    def test_in_order_with_headers(self):
        """Events go one by one in insertion order with the idempotency key
        and a token signed by the bus key; then they are delivered."""
        central = Central()
        self.add("e1", "e2")
        self.sender(StubTreq(central), batch=1)
        self.add("e3")
        self.assertEqual(central.ids, ["e1", "e2", "e3"])
        headers, body = central.requests[0]
        self.assertEqual(headers["idempotency-key"], "e1")
        self.assertEqual(
            (body["bus"], body["seq"], body["kind"]),
            ("FW-0042", 1, "door_fault"),
        )
        token = headers["authorization"].removeprefix("Bearer ")
        claims = jwt.decode(
            token,
            self.key.public_key(),
            algorithms=["ES256"],
            audience="central",
            options={"verify_exp": False, "verify_iat": False},
        )
        self.assertEqual(
            (claims["iss"], claims["sub"], claims["exp"] - claims["iat"]),
            ("FW-0042", "FW-0042", 60),
        )
        self.assertEqual(jwt.get_unverified_header(token)["kid"], "FW-0042")
        self.assertEqual(self.outbox.pressure()["pending"], 0)
        self.assertEqual(self.state("e3")["state"], "delivered")

    def test_rejected_parked(self):
        """400/413/422 park the event as rejected with the reason and the
        next one goes on; 409 counts as delivered."""
        central = Central([422, 409, 400])
        self.add("bad", "dup", "bad2", "ok")
        self.sender(StubTreq(central))
        self.assertEqual(central.ids, ["bad", "dup", "bad2", "ok"])
        self.assertEqual(self.state("bad")["state"], "rejected")
        self.assertEqual(
            self.state("bad")["error"], 'HTTP 422: {"error":"bad kind"}'
        )
        self.assertEqual(self.state("dup")["state"], "delivered")
        self.assertEqual(self.outbox.pressure()["rejected"], 2)
        self.flushLoggedErrors()

    def test_central_date_observed(self):
        """Each answer's Date header reaches on_date (the health role's
        clock check compares it with the bus's clock)."""
        seen = []
        self.add("e1")
        self.sender(StubTreq(Central()), on_date=seen.append)
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0].endswith(" GMT"), seen)

    def test_token_reused_then_renewed(self):
        """The token is reused for half its life, then signed anew."""
        tokens = TokenSource(
            self.key, "k", "FW-0042", "central", 60.0, self.clock
        )
        first = tokens.token()
        self.clock.advance(29)
        self.assertEqual(tokens.token(), first)
        self.clock.advance(1)
        second = tokens.token()
        self.assertNotEqual(second, first)
        self.clock.rightNow -= 3600  # a Pi's clock set back at boot
        self.assertNotEqual(tokens.token(), second)


class BackoffTests(SenderCase):
    def test_capped_exponential_full_jitter(self):
        """While the central is down, retries wait uniform(0, cap) with the
        cap doubling from retry_initial up to retry_max; the same event is
        retried first and attempts are counted."""
        down = Down()
        self.add("e1", "e2")
        self.sender(down)
        delays = []
        for _ in range(6):
            (call,) = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [1, 2, 4, 8, 10, 10])
        self.assertEqual(self.rng.bounds[:3], [(0, 1), (0, 2), (0, 4)])
        self.assertEqual(down.calls, 7)
        self.assertEqual(self.state("e1")["attempts"], 7)
        self.assertEqual(self.state("e2")["attempts"], 0)
        self.assertIn("central down", self.state("e1")["error"])

    def test_recovers_and_resets(self):
        """When the central answers again everything goes, in order, and
        the next outage starts again from retry_initial."""
        central = Central([503, 503])
        self.add("e1", "e2")
        sender = self.sender(StubTreq(central))
        self.clock.advance(1)
        self.clock.advance(2)
        self.assertEqual(central.ids, ["e1", "e1", "e1", "e2"])
        self.assertEqual(sender.failures, 0)
        central.statuses = [500]
        self.add("e3")
        self.assertEqual(self.rng.bounds[-1], (0, 1.0))
        self.clock.advance(1)
        self.assertEqual(central.ids[-1], "e3")

    def test_wake_keeps_backoff(self):
        """A new event during a backoff does not cut the wait short."""
        down = Down()
        self.add("e1")
        self.sender(down)
        self.add("e2")
        self.assertEqual(down.calls, 1)
        self.clock.advance(1)
        self.assertEqual(down.calls, 2)

    def test_timeout(self):
        """A central that never answers times out, is retried, and the
        hung request is dropped."""
        central = Central(hang=True)
        self.add("e1")
        stub = StubTreq(central)
        self.sender(stub, timeout=5.0)
        self.clock.advance(5)
        stub.flush()
        self.assertEqual(central.disconnected, 1)
        self.assertIn("e1", self.state("e1")["id"])
        self.assertEqual(self.state("e1")["attempts"], 1)
        self.clock.advance(1)
        self.assertEqual(len(central.requests), 2)


class LoopTests(SenderCase):
    def test_stop_cancels_in_flight(self):
        """stop cancels the request in flight and leaves no timer."""
        central = Central(hang=True)
        self.add("e1")
        stub = StubTreq(central)
        sender = self.sender(stub)
        sender.stop()
        stub.flush()
        self.assertEqual(central.disconnected, 1)
        self.assertEqual(self.state("e1")["state"], "pending")

    def test_failure_does_not_stop_the_loop(self):
        """An unexpected error in a round is logged and retried later."""
        central = Central()
        self.add("e1")
        real = self.outbox.pending
        calls = []

        def broken(limit):
            calls.append(limit)
            if len(calls) == 1:
                raise RuntimeError("bug")
            return real(limit)

        self.outbox.pending = broken
        self.sender(StubTreq(central))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.clock.advance(1)
        self.assertEqual(central.ids, ["e1"])


class _StalledBody:
    """Headers arrived (503), then part of the body, then nothing."""

    code = 503
    length = None

    def __init__(self):
        from twisted.web.http_headers import Headers

        self.headers = Headers({})
        self.stopped = 0

    def stopProducing(self):
        self.stopped += 1

    def deliverBody(self, protocol):
        protocol.makeConnection(self)
        protocol.dataReceived(b'{"err')


class _StallingCentral:
    def __init__(self):
        self.calls = 0
        self.bodies = []

    def request(self, method, url, **kw):
        from twisted.internet.defer import succeed

        self.calls += 1
        self.bodies.append(_StalledBody())
        return succeed(self.bodies[-1])


class StalledBodyTests(SenderCase):
    def test_stalled_body_times_out_and_retries(self):
        """A central that sends headers then stalls its body is cut at the
        timeout (connection dropped) and the event is retried."""
        central = _StallingCentral()
        self.add("e1")
        self.sender(central, timeout=10.0)
        self.assertEqual(central.calls, 1)
        self.clock.advance(10)  # the body read times out
        self.assertEqual(central.bodies[0].stopped, 1)
        self.clock.advance(1)  # the first retry
        self.assertEqual(central.calls, 2)
