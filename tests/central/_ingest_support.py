"""Helpers for the event ingest and webhook tests: a bus with its key, a
central events part over a real SQLite file with a synchronous runner,
served through StubTreq."""

from __future__ import annotations

import json
import os
import types
from typing import Any, Dict, List, Optional, Tuple

from treq.testing import StubTreq
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from busd.app import GatewayApp
from busd.auth.sign import generate_key, make_token, public_jwks, sign_claims
from busd.config._central import (
    BusEntry,
    CentralEventsConfig,
    CentralRoleConfig,
    WebhookConfig,
)
from busd.config.model import GatewayConfig

NOW = 1_795_000_000.0
BUS = "FW-0042"


def sync_run(fn: Any, *args: Any) -> Any:
    """The worker thread, in tests: the work at once."""
    return maybeDeferred(fn, *args)


class Hub:
    """Records what is published."""

    def __init__(self) -> None:
        self.published: List[Tuple[str, Any]] = []

    def publish(self, kind: str, data: Any) -> None:
        self.published.append((kind, data))


def write_bus_key(directory: str, bus_id: str = BUS) -> Tuple[Any, str]:
    """A new ES256 bus key and its public JWK set file (kid = bus id)."""
    os.makedirs(directory, exist_ok=True)
    key = generate_key("ES256")
    path = os.path.join(directory, f"{bus_id}.jwks.json")
    with open(path, "w") as handle:
        json.dump(public_jwks(key, bus_id), handle)
    return key, path


def bus_token(
    key: Any, bus_id: str = BUS, *, now: float = NOW, **over: Any
) -> str:
    """The token a bus sends (as busd.bus.sender), ``over`` replacing claims."""
    if not over:
        return make_token(
            key, bus_id, issuer=bus_id, subject=bus_id, audience="central", now=now
        )
    claims: Dict[str, Any] = {
        "iss": bus_id,
        "sub": bus_id,
        "aud": "central",
        "iat": int(now),
        "exp": int(now + 60),
    }
    claims.update(over)
    return sign_claims(key, bus_id, {k: v for k, v in claims.items() if v is not None})


def event(event_id: str = "e-1", bus_id: str = BUS, **over: Any) -> Dict[str, Any]:
    """An event as the bus's sender posts it."""
    body: Dict[str, Any] = {
        "id": event_id,
        "bus": bus_id,
        "seq": 7,
        "kind": "door_fault",
        "severity": "warning",
        "occurred_at": "2025-06-01T08:30:00Z",
        "received_at": "2025-06-01T08:30:01.250Z",
        "data": {"door": 2},
    }
    body.update(over)
    return body


def central_config(
    state_dir: str,
    fleet: Tuple[BusEntry, ...],
    webhooks: Tuple[WebhookConfig, ...] = (),
    **events: Any,
) -> CentralRoleConfig:
    return CentralRoleConfig(
        state_dir=state_dir,
        fleet=fleet,
        events=CentralEventsConfig(**events),
        webhooks=webhooks,
    )


class Central:
    """An events part on ``config`` over a SQLite file, its routes served
    by a GatewayApp through StubTreq; ``client`` is the webhooks' client."""

    def __init__(
        self,
        config: CentralRoleConfig,
        clock: Optional[Clock] = None,
        client: Any = None,
        hub: Any = None,
        rng: Any = None,
    ):
        from busd.central.ingest import EventsPart

        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(NOW)
        self.hub = hub
        self.role = types.SimpleNamespace(
            config=config,
            clock=self.clock,
            client=client,
            hub=hub,
            reactor=None,
            events=None,
        )
        self.part = EventsPart(self.role, run=sync_run, rng=rng)
        self.part.start()
        gateway = GatewayConfig(central=config)
        self.app = GatewayApp(gateway, client, self.clock)
        self.part.install(self.app)
        self.http = StubTreq(self.app.resource())

    def post(
        self,
        body: Any,
        token: Optional[str] = None,
        headers: Optional[Dict[bytes, List[bytes]]] = None,
    ) -> Any:
        """POST /events; a Deferred of (status, JSON, response)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {b"Content-Type": [b"application/json"]}
        if token is not None:
            h[b"Authorization"] = [b"Bearer " + token.encode()]
        h.update(headers or {})
        return self._done(self.http.post("http://central/events", data=data, headers=h))

    def get(self, path: str) -> Any:
        return self._done(self.http.get("http://central" + path))

    def _done(self, d: Any) -> Any:
        def read(response: Any) -> Any:
            return response.content().addCallback(
                lambda raw: (response.code, json.loads(raw), response)
            )

        return d.addCallback(read)

    def stop(self) -> Any:
        return self.part.stop()
