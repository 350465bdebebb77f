"""Loopback helpers for the event outbox tests: a recording central that
can be down, up or holding requests, free ports, and posting events."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.web.server import NOT_DONE_YET

from busd.demo.events import DemoCentral
from tests.integration._util import TrackingSite


class Central(DemoCentral):
    """The demo central (token checked against the bus key, one entry per
    Idempotency-Key) recording every arrival in order; ``when(n)`` fires
    once ``n`` distinct events have arrived. With ``hold`` set, requests
    are kept unanswered (in ``held``) instead."""

    def __init__(self, key_path: str):
        super().__init__(key_path, keep=10**6)
        self.arrivals: List[Tuple[str, int]] = []
        self.hold = False
        self.held: List[Any] = []
        self._waiting: List[Tuple[int, Deferred[None]]] = []

    def render_POST(self, request: Any) -> Any:
        if self.hold:
            self.held.append(request)
            self._check()
            return NOT_DONE_YET
        answer = super().render_POST(request)
        if request.code == 200:
            body = json.loads(answer)
            self.arrivals.append(
                (body["received"], self.received[body["received"]]["seq"])
            )
        self._check()
        return answer

    def when(self, count: int) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        self._waiting.append((count, d))
        self._check()
        return d

    def _check(self) -> None:
        reached = len(self.received) + len(self.held)
        for item in list(self._waiting):
            if reached >= item[0]:
                self._waiting.remove(item)
                item[1].callback(None)

    def first_arrivals(self) -> List[Tuple[str, int]]:
        """(id, seq) in order of each id's first arrival."""
        seen: Dict[str, int] = {}
        for event_id, seq in self.arrivals:
            seen.setdefault(event_id, seq)
        return list(seen.items())


def logged(case: Any, text: str) -> "Deferred[None]":
    """Fires at the first log event whose format contains ``text``."""
    from twisted.logger import globalLogPublisher

    d: Deferred[None] = Deferred()

    def observe(event: Dict[str, Any]) -> None:
        if not d.called and text in (event.get("log_format") or ""):
            d.callback(None)

    globalLogPublisher.addObserver(observe)
    case.addCleanup(globalLogPublisher.removeObserver, observe)
    return d


@inlineCallbacks
def free_port() -> Any:
    """A loopback port nothing listens on (bound, then released), for a
    central that is down until :func:`listen_on` brings it up."""
    port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        Factory.forProtocol(Protocol)
    )
    number = port.getHost().port
    yield port.stopListening()
    return number


@inlineCallbacks
def listen_on(case: Any, number: int, resource: Any) -> Any:
    """Serve ``resource`` on loopback port ``number``; cleaned up."""
    site = TrackingSite(resource)
    port = yield serverFromString(
        reactor, f"tcp:{number}:interface=127.0.0.1"
    ).listen(site)
    case.addCleanup(site.close_all)
    case.addCleanup(port.stopListening)
    return site


def bus_config(
    state_dir: str, key_path: str, central_port: int, **events: Any
) -> Dict[str, Any]:
    """A gateway config whose busgw/bus delivers to 127.0.0.1:central_port
    with a fast backoff (10ms-200ms), so tests wait little."""
    block: Dict[str, Any] = {
        "id": "FW-0042",
        "state_dir": state_dir,
        "central": {
            "url": f"http://127.0.0.1:{central_port}",
            "allow_http": True,
            "key": key_path,
            "timeout": "5s",
        },
        "outbox": {"retry_initial": "10ms", "retry_max": "200ms"},
    }
    if events:
        block["events"] = events
    return {"version": 3, "endpoints": [], "extra_config": {"busgw/bus": block}}


def event_body(event_id: Optional[str] = None, **over: Any) -> bytes:
    body: Dict[str, Any] = {
        "kind": "door_fault",
        "severity": "warning",
        "occurred_at": "2025-06-01T08:30:00Z",
        "data": {"door": 2},
    }
    if event_id is not None:
        body["id"] = event_id
    body.update(over)
    return json.dumps(body).encode()


@inlineCallbacks
def post_event(http: Any, base: str, body: bytes) -> Any:
    """POST one event; (status, decoded JSON answer)."""
    response = yield http.post(
        base + "/events",
        data=body,
        headers={b"Content-Type": [b"application/json"]},
    )
    data = yield response.content()
    return response.code, json.loads(data)
