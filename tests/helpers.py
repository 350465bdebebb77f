"""Shared test helpers: a gateway over in-memory fake backends."""

from __future__ import annotations

import json
import random
from typing import Any, Dict, Mapping, Optional, Tuple

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource

from busd.app import GatewayApp
from busd.config.load import parse_config
from busd.testing import FakeBackends

B1 = "http://b1:8001"
B2 = "http://b2:8002"
B3 = "http://b3:8003"


def config(endpoints: list, **service: Any) -> Dict[str, Any]:
    """A v3 config dict with the given endpoints."""
    return {"version": 3, "endpoints": endpoints, **service}


class Gateway:
    """A GatewayApp served through StubTreq, its backends through another."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        backends: Mapping[str, IResource],
        *,
        debug: bool = False,
    ):
        self.clock = Clock()
        self.config = parse_config(raw).config
        hosts = {h.split("//", 1)[1]: r for h, r in backends.items()}
        self.backend_stub = StubTreq(FakeBackends(hosts))
        self.app = GatewayApp(
            self.config,
            self.backend_stub,
            self.clock,
            debug=debug,
            rng=random.Random(0),
        )
        self.stub = StubTreq(self.app.resource())

    def flush(self) -> None:
        self.backend_stub.flush()
        self.stub.flush()


def get(
    case: SynchronousTestCase,
    gw: Gateway,
    path: str,
    method: str = "GET",
    **kw: Any,
) -> Tuple[Any, bytes]:
    """Make one request to ``gw`` and return (response, body); the answer
    must be ready at once (advance the clock first for slow backends)."""
    d = gw.stub.request(method, "http://gw" + path, **kw)
    gw.flush()
    response = case.successResultOf(d)
    body = case.successResultOf(response.content())
    return response, body


def header(response: Any, name: str) -> Optional[str]:
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def body_json(body: bytes) -> Any:
    return json.loads(body)
