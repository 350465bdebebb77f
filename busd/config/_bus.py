"""``extra_config."busgw/bus"``: the bus's identity, state directory,
central and event outbox (the behaviour is in :mod:`busd.bus`).

Read here, not in ``busd.bus``, so the config package never imports the
outbox or Twisted. ``busd.auth`` modules are imported inside the reader:
``busd.auth.config`` imports ``busd.config`` while it loads.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Optional, Sequence
from urllib.parse import urlsplit

import attrs

from busd.config._bus_events import (
    DEFAULT_ALLOW_FROM,
    EventsConfig,
    read_events,
)
from busd.config._busfields import read_signing_key
from busd.config._syntax import q
from busd.config._walk import Node

if TYPE_CHECKING:
    from busd.auth.config import ValidatorConfig
    from busd.config.model import EndpointConfig

__all__ = [
    "NAMESPACE",
    "BusConfig",
    "CentralConfig",
    "OutboxConfig",
    "EventsConfig",
    "read_bus",
    "ID_PATTERN",
    "BUS_ID_PATTERN",
    "DEFAULT_ALLOW_FROM",
]

NAMESPACE = "busgw/bus"
#: An event id: it travels in a header and in the ack URL path.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
#: A bus id, also the default key id (so no ':').
BUS_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEYS = frozenset({"id", "state_dir", "central", "outbox", "events"})
_CENTRAL_KEYS = frozenset(
    {"url", "allow_http", "key", "generate_key", "kid", "audience"}
    | {"token_ttl", "timeout"}
)
_OUTBOX_KEYS = frozenset(
    {"max_events", "max_bytes", "hard_max_events", "hard_max_bytes"}
    | {"max_event_bytes", "retry_initial", "retry_max"}
)


@attrs.frozen(kw_only=True)
class CentralConfig:
    """Where events go: ``POST {url}/events`` signed with the bus's key
    (a PEM file; generated at first start when ``generate_key``)."""

    url: str
    events_url: str
    key: str
    kid: str
    generate_key: bool = False
    audience: str = "central"
    token_ttl: float = 60.0
    timeout: float = 10.0


@attrs.frozen(kw_only=True)
class OutboxConfig:
    """The outbox bounds (sizes in bytes) and the sender's backoff
    (seconds). Non-critical events fit within ``max_*``; critical ones
    may go on up to ``hard_max_*``."""

    max_events: int = 10_000
    max_bytes: int = 50 * 1024 * 1024
    hard_max_events: int = 12_500
    hard_max_bytes: int = 50 * 1024 * 1024 * 5 // 4
    max_event_bytes: int = 64 * 1024
    retry_initial: float = 1.0
    retry_max: float = 300.0


@attrs.frozen(kw_only=True)
class BusConfig:
    """The whole ``busgw/bus`` block; paths are absolute."""

    id: str
    state_dir: str
    central: CentralConfig
    outbox: OutboxConfig = OutboxConfig()
    events: EventsConfig = EventsConfig()


def read_bus(
    node: Optional[Node],
    *,
    default_auth: Optional["ValidatorConfig"] = None,
    endpoints: Sequence["EndpointConfig"] = (),
    reserved: Sequence[str] = (),
    taken: Sequence[str] = (),
) -> Optional[BusConfig]:
    """The ``busgw/bus`` block, or None when absent or unusable (then an
    error has been reported). ``default_auth`` (the service's
    ``busgw/auth`` validator) checks acks unless ``events.ack_token`` is
    given. The events path must not collide with ``endpoints``, go under
    a ``reserved`` built-in prefix or take a path in ``taken`` (other bus
    routes)."""
    if node is None:
        return None
    bus_id = node.string("id", required='the bus id, e.g. "FW-0042"')
    if bus_id and not BUS_ID_PATTERN.fullmatch(bus_id):
        node.report.error(
            node.at("id"),
            f"invalid bus id {q(bus_id)} (letters, digits, . _ -)",
        )
        bus_id = ""
    state_dir = node.string("state_dir", required="a writable directory")
    central = _central(node.child("central", required="url and key"), bus_id)
    outbox = _outbox(node.child("outbox"))
    events = read_events(node, default_auth, endpoints, reserved, taken)
    node.finish(_KEYS)
    if not (bus_id and state_dir and central):
        return None
    return BusConfig(
        id=bus_id,
        state_dir=os.path.abspath(state_dir),
        central=central,
        outbox=outbox,
        events=events,
    )


def _central(node: Optional[Node], bus_id: str) -> Optional[CentralConfig]:
    if node is None:
        return None

    url = node.string("url", required="the central's base URL")
    insecure = node.boolean("allow_http")
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        node.report.error(node.at("url"), f"not an http(s) URL: {q(url)}")
        url = ""
    elif parts.scheme == "http" and not insecure:
        node.report.error(
            node.at("url"),
            "must be https:// (set allow_http: true to allow http)",
        )
        url = ""
    key, generate, kid = read_signing_key(node, "the bus's", kid_default=bus_id)
    config = CentralConfig(
        url=url,
        events_url=url.rstrip("/") + "/events",
        key=key,
        kid=kid,
        generate_key=generate,
        audience=node.string("audience", "central") or "central",
        token_ttl=node.duration("token_ttl", 60.0),
        timeout=node.duration("timeout", 10.0),
    )
    node.finish(_CENTRAL_KEYS)
    return config if url and key and kid else None


def _outbox(node: Optional[Node]) -> OutboxConfig:
    if node is None:
        return OutboxConfig()
    d = OutboxConfig()
    max_events = node.integer("max_events", d.max_events, minimum=1)
    max_bytes = node.integer("max_bytes", d.max_bytes, minimum=1024)
    hard_events = node.integer(
        "hard_max_events", max_events + max_events // 4, minimum=1
    )
    hard_bytes = node.integer(
        "hard_max_bytes", max_bytes + max_bytes // 4, minimum=1024
    )
    event_bytes = node.integer(
        "max_event_bytes", d.max_event_bytes, minimum=256
    )
    initial = node.duration("retry_initial", d.retry_initial)
    most = node.duration("retry_max", d.retry_max)
    if hard_events < max_events:
        node.report.error(
            node.at("hard_max_events"),
            f"must be at least max_events ({max_events})",
        )
        hard_events = max_events
    if hard_bytes < max_bytes:
        node.report.error(
            node.at("hard_max_bytes"),
            f"must be at least max_bytes ({max_bytes})",
        )
        hard_bytes = max_bytes
    if event_bytes > max_bytes:
        node.report.error(
            node.at("max_event_bytes"),
            f"must not exceed max_bytes ({max_bytes})",
        )
        event_bytes = min(d.max_event_bytes, max_bytes)
    if most < initial:
        node.report.error(
            node.at("retry_max"), "must not be less than retry_initial"
        )
        most = initial
    node.finish(_OUTBOX_KEYS)
    return OutboxConfig(
        max_events=max_events,
        max_bytes=max_bytes,
        hard_max_events=hard_events,
        hard_max_bytes=hard_bytes,
        max_event_bytes=event_bytes,
        retry_initial=initial,
        retry_max=most,
    )
