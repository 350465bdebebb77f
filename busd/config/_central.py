"""``extra_config."busgw/central"``: the central role's settings, as frozen
values (the reader is :mod:`busd.config._central_read`, the fleet list and
fleet file :mod:`busd.config._fleet`; the behaviour is in
:mod:`busd.central`).

Times are seconds, sizes bytes, paths absolute.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import attrs

__all__ = [
    "NAMESPACE",
    "RESERVED_NAMES",
    "BusEntry",
    "PolledEndpoint",
    "PollConfig",
    "SigningConfig",
    "CentralEventsConfig",
    "WebhookConfig",
    "CentralRoleConfig",
]

NAMESPACE = "busgw/central"
#: Names under ``/fleet/`` that busgw answers itself: a polled endpoint
#: may not take one of them as its name.
RESERVED_NAMES = frozenset({"health", "buses", "events", "stream"})


@attrs.frozen(kw_only=True)
class BusEntry:
    """One bus of the fleet: ``url`` is its gateway's base URL (no
    trailing ``/``); ``key`` the file holding its public key (a JWK set
    such as the bus's ``bus.jwks.json``, or a PEM public key), without
    which its events are refused; ``labels`` free text such as line or
    depot (the dashboard filters by ``line``)."""

    id: str
    url: str
    key: Optional[str] = None
    labels: Mapping[str, str] = attrs.field(
        factory=dict, converter=lambda m: dict(m), eq=False, hash=False
    )


@attrs.frozen(kw_only=True)
class PolledEndpoint:
    """A bus endpoint polled every round, served at ``/fleet/{name}``."""

    name: str
    path: str


@attrs.frozen(kw_only=True)
class PollConfig:
    """How the fleet is polled.

    Each bus is polled every ``interval`` on average, each round's start
    moved by a uniform random ``[-jitter/2, jitter/2] * interval`` so
    buses spread out; at
    most ``concurrency`` buses are polled at once; each request is
    bounded by ``timeout``. A bus whose poll failed ``n`` times in a row
    waits ``min(backoff_max, interval * 2**n)`` before its next try.
    ``health`` (the bus's ``/health``; "" for none) drives the bus's
    level and failing checks; ``endpoints`` are polled beside it.
    A bus is ``online`` while its last good poll is under ``stale_after``
    old, ``stale`` until ``offline_after``, then ``offline``."""

    interval: float = 5.0
    timeout: float = 2.0
    concurrency: int = 50
    jitter: float = 0.2
    health: str = "/health"
    endpoints: Tuple[PolledEndpoint, ...] = (
        PolledEndpoint(name="status", path="/status"),
    )
    backoff_max: float = 60.0
    stale_after: float = 15.0
    offline_after: float = 60.0
    max_bytes: int = 1024 * 1024
    #: Key values shown per bus (dashboard, ``/fleet/buses``): a label and
    #: ``"<endpoint name>.<dotted path>"`` in its polled data, e.g.
    #: ``("fuel", "status.vehicle.fuel.level_pct")``.
    values: Tuple[Tuple[str, str], ...] = ()


@attrs.frozen(kw_only=True)
class SigningConfig:
    """The central's key for the tokens it sends to buses: ``key`` a
    private PEM (made at first start when ``generate_key``), ``kid`` its
    key id; ``audience`` is a template where ``{id}`` is the bus id."""

    key: str
    kid: str
    issuer: str = "central"
    subject: str = "central"
    audience: str = "bus-{id}"
    ttl: float = 60.0
    roles: Tuple[str, ...] = ()
    generate_key: bool = False

    def audience_for(self, bus_id: str) -> str:
        return self.audience.replace("{id}", bus_id)


@attrs.frozen(kw_only=True)
class CentralEventsConfig:
    """``POST path`` from buses: a token signed with the bus's key
    (``iss`` = ``sub`` = the bus id, ``aud`` = ``audience``), checked with
    ``leeway`` seconds of clock skew; stored in the SQLite database
    ``store``, at most ``max_events`` rows (the oldest pruned)."""

    path: str = "/events"
    store: str = ""
    audience: str = "central"
    leeway: float = 30.0
    max_bytes: int = 64 * 1024
    max_events: int = 1_000_000


@attrs.frozen(kw_only=True)
class WebhookConfig:
    """Where each stored event of ``kinds`` (empty: every kind) with at
    least ``min_severity`` is also posted, retried with capped
    exponential backoff until ``give_up_after`` seconds after the event
    arrived."""

    url: str
    kinds: Tuple[str, ...] = ()
    min_severity: str = "info"
    headers: Tuple[Tuple[str, str], ...] = ()
    timeout: float = 5.0
    retry_initial: float = 1.0
    retry_max: float = 300.0
    give_up_after: float = 86400.0


@attrs.frozen(kw_only=True)
class CentralRoleConfig:
    """The whole ``busgw/central`` block. ``fleet`` is the inline buses
    followed by ``fleet_file``'s (ids unique across both)."""

    state_dir: str
    fleet: Tuple[BusEntry, ...] = ()
    fleet_file: Optional[str] = None
    poll: PollConfig = PollConfig()
    signing: Optional[SigningConfig] = None
    events: CentralEventsConfig = CentralEventsConfig()
    webhooks: Tuple[WebhookConfig, ...] = ()
    dashboard: bool = True
    #: The bound on buses called at once by a ``busgw/fleet`` backend
    #: that sets none itself.
    live_concurrency: int = 50
    #: Bound on a ``/buses/{id}/...`` pass-through call (connect, answer
    #: and body): longer than a poll, as a command may make a device work.
    passthrough_timeout: float = 10.0

    def bus(self, bus_id: str) -> Optional[BusEntry]:
        return next((b for b in self.fleet if b.id == bus_id), None)
