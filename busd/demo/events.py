"""The demo's events: on-board devices that raise one now and then, and a
fake central on loopback that logs what the bus delivers.

``busgw demo`` starts :func:`demo_events_service` beside the gateway when
the config has a ``busgw/bus`` block: the devices ``POST`` a tyre-pressure
warning, a door fault, a passenger alarm... to the gateway's events path
every 20-60 s (from loopback, which ``allow_from`` admits by default), and
the fake central listens where ``central.url`` points (loopback only),
checks each event's token against the bus's key and logs it, so the log
shows every event go device -> outbox -> central.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

from twisted.application.service import MultiService, Service
from twisted.application.strports import service as strports_service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from busd.demo.devices import QuietSite, tcp_listen

__all__ = [
    "DemoCentral",
    "DeviceEvents",
    "SAMPLE_EVENTS",
    "demo_events_service",
]

_log = Logger()
_ALGS = ["ES256", "ES384", "ES512", "EdDSA", "RS256"]

_Sample = Callable[[random.Random], Tuple[str, str, Dict[str, Any]]]


def _tyre(rng: random.Random) -> Tuple[str, str, Dict[str, Any]]:
    wheel = rng.choice(["front-left", "front-right", "rear-left", "rear-right"])
    return (
        "tyre_pressure",
        "warning",
        {"wheel": wheel, "kpa": rng.randint(560, 640)},
    )


def _door(rng: random.Random) -> Tuple[str, str, Dict[str, Any]]:
    door = rng.choice([1, 2, 3])
    jammed = rng.random() < 0.2
    return (
        "door_fault",
        "critical" if jammed else "warning",
        {"door": door, "jammed": jammed},
    )


def _alarm(rng: random.Random) -> Tuple[str, str, Dict[str, Any]]:
    return (
        "passenger_alarm",
        "info",
        {"seat": rng.randint(1, 44), "reset": True},
    )


#: What the simulated devices raise (kind, severity, data), at random.
SAMPLE_EVENTS: Tuple[_Sample, ...] = (_tyre, _door, _alarm)


class DeviceEvents(Service):
    """POSTs a random sample event to ``url`` every ``min_s``-``max_s``
    seconds with ``client`` (a treq ``HTTPClient``)."""

    name = "device-events"

    def __init__(
        self,
        url: str,
        client: Any,
        clock: IReactorTime,
        *,
        rng: Optional[random.Random] = None,
        min_s: float = 20.0,
        max_s: float = 60.0,
    ):
        self._url = url
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self._range = (min_s, max_s)
        self._timer: Optional[IDelayedCall] = None
        self._sending: Optional[Deferred[Any]] = None

    def startService(self) -> None:
        super().startService()
        # The first one soon, so the demo shows an event within seconds.
        self._timer = self._clock.callLater(self._rng.uniform(3, 10), self.send)

    def stopService(self) -> None:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._sending is not None:
            self._sending.cancel()

    def _schedule(self) -> None:
        self._timer = self._clock.callLater(
            self._rng.uniform(*self._range), self.send
        )

    def send(self) -> "Deferred[Any]":
        """Raise one sample event now; the next is scheduled after it."""
        self._timer = None
        kind, severity, data = self._rng.choice(SAMPLE_EVENTS)(self._rng)
        from busd.bus.event import rfc3339

        body = {
            "kind": kind,
            "severity": severity,
            "occurred_at": rfc3339(self._clock.seconds()),
            "data": data,
        }
        d = self._client.post(self._url, json=body)
        d.addCallback(lambda r: r.text().addCallback(lambda t: (r.code, t)))

        def done(result: Tuple[int, str]) -> None:
            _log.info(
                "demo device: {kind} ({severity}) -> {code} {answer}",
                kind=kind,
                severity=severity,
                code=result[0],
                answer=result[1],
            )

        d.addCallbacks(
            done,
            lambda f: _log.warn(
                "demo device: {kind} not sent: {why}",
                kind=kind,
                why=f.getErrorMessage(),
            ),
        )
        d.addBoth(self._sent)
        self._sending = d
        return d

    def _sent(self, _: Any) -> None:
        self._sending = None
        if self.running:
            self._schedule()


class DemoCentral(Resource):
    """``POST /events`` as a central would take it: the token checked
    against the public half of the bus key at ``key_path`` (read at the
    first event: the gateway may create the key as it starts; None skips
    the check), each Idempotency-Key kept once, every event logged.
    ``received`` keeps the distinct events in order."""

    isLeaf = True

    def __init__(
        self,
        key_path: Optional[str] = None,
        audience: str = "central",
        keep: int = 1000,
    ):
        super().__init__()
        self._key_path = key_path
        self._key: Any = None
        self._audience = audience
        self._keep = keep
        self.received: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
        #: Every POST with a valid token, duplicates included.
        self.deliveries = 0

    def render_POST(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if request.path != b"/events":
            request.setResponseCode(404)
            return b'{"error":"not found"}'
        who = self._check_token(request)
        if who is None:
            request.setResponseCode(401)
            return b'{"error":"invalid token"}'
        try:
            event = json.loads(
                request.content.read() if request.content else b""
            )
        except ValueError:
            request.setResponseCode(400)
            return b'{"error":"not JSON"}'
        key = (request.getHeader(b"idempotency-key") or b"").decode("latin-1")
        self.deliveries += 1
        if key not in self.received:
            self.received[key] = event
            while len(self.received) > self._keep:
                self.received.popitem(last=False)
            _log.info(
                "demo central: event #{seq} {kind} ({severity}) from {bus}: {data}",
                seq=event.get("seq"),
                kind=event.get("kind"),
                severity=event.get("severity"),
                bus=who,
                data=json.dumps(event.get("data")),
            )
        return json.dumps({"received": key}).encode()

    def _check_token(self, request: IRequest) -> Optional[str]:
        """The bus id the token names (verified when a key is known)."""
        import jwt

        raw = (request.getHeader(b"authorization") or b"").decode("latin-1")
        token = raw[7:] if raw[:7].lower() == "bearer " else ""
        if not token:
            return None
        try:
            if self._key_path is None:
                claims = jwt.decode(token, options={"verify_signature": False})
            else:
                claims = jwt.decode(
                    token,
                    self._public_key(),
                    algorithms=_ALGS,
                    audience=self._audience,
                )
        except (jwt.InvalidTokenError, ValueError):
            return None
        return str(claims.get("sub", "?"))

    def _public_key(self) -> Any:
        if self._key is None:
            from busd.auth.sign import load_private_key

            assert self._key_path is not None
            self._key = load_private_key(self._key_path).public_key()
        return self._key


def demo_events_service(
    reactor: Any, config: Any, port: Optional[int] = None
) -> MultiService:
    """The fake central (when ``central.url`` is ``http://`` on loopback)
    and the event-raising devices, for the gateway serving ``config`` on
    ``port`` (default: its own) of 127.0.0.1."""
    from busd.backends import make_client, make_pool

    top = MultiService()
    bus = config.bus
    if bus is None:
        return top
    url = urlsplit(bus.central.url)
    if url.scheme == "http" and url.hostname in (
        "127.0.0.1",
        "localhost",
        "::1",
    ):
        central = DemoCentral(bus.central.key, bus.central.audience)
        desc = tcp_listen(url.port or 80, url.hostname or "")
        svc = strports_service(desc, QuietSite(central), reactor=reactor)
        svc.setName("demo-central")
        svc.setServiceParent(top)
    pool = make_pool(reactor)
    pool.persistent = False  # nothing cached, so nothing to close at exit
    client = make_client(reactor, pool)
    gateway = f"http://127.0.0.1:{port or config.port}{bus.events.path}"
    DeviceEvents(gateway, client, reactor).setServiceParent(top)
    return top
