"""Reads ``extra_config."busgw/central"`` into
:class:`~busd.config._central.CentralRoleConfig`: every bad value is an
error naming its JSON path, unknown keys are warnings."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Iterable, List, Optional, Sequence, Tuple

from busd.config._busfields import (
    own_path_problem,
    positive_duration,
    read_http_url,
    read_signing_key,
)
from busd.config._central import (
    RESERVED_NAMES,
    CentralEventsConfig,
    CentralRoleConfig,
    PollConfig,
    PolledEndpoint,
    SigningConfig,
    WebhookConfig,
)
from busd.config._fleet import read_fleet
from busd.config._syntax import q
from busd.config._walk import MISSING, Node, object_items

if TYPE_CHECKING:  # model.py imports this module's model
    from busd.config.model import EndpointConfig

__all__ = ["read_central", "ROUTE_PREFIXES"]

#: Paths the central serves itself; endpoints may not go under them.
ROUTE_PREFIXES = ("/fleet", "/buses", "/dashboard")
_KEYS = (
    "state_dir", "fleet", "fleet_file", "poll", "signing", "events",
    "webhooks", "dashboard", "live_concurrency", "passthrough_timeout",
)
_POLL_KEYS = (
    "interval", "timeout", "concurrency", "jitter", "health", "endpoints",
    "backoff_max", "stale_after", "offline_after", "max_bytes", "values",
)
_SIGNING_KEYS = (
    "key", "kid", "issuer", "subject", "audience", "ttl", "roles", "generate_key",
)
_EVENTS_KEYS = ("path", "store", "audience", "leeway", "max_bytes", "max_events")
_HOOK_KEYS = (
    "url", "kinds", "min_severity", "headers", "timeout", "retry_initial",
    "retry_max", "give_up_after",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
_SEVERITIES = ("info", "warning", "critical")


def read_central(
    node: Optional[Node],
    base_dir: str,
    endpoints: Sequence["EndpointConfig"],
    reserved: Iterable[str],
    taken: Iterable[str],
) -> Optional[CentralRoleConfig]:
    """The namespace, or None when absent. ``base_dir`` resolves relative
    file names; the events path must not collide with ``endpoints``, a
    ``reserved`` prefix or ``taken`` paths, and no endpoint may go under
    the central's own prefixes."""
    if node is None:
        return None
    for index, endpoint in enumerate(endpoints):
        path = endpoint.endpoint.rstrip("/") or "/"
        for prefix in ROUTE_PREFIXES:
            if path == prefix or path.startswith(prefix + "/"):
                node.report.error(
                    node.loc,
                    f"endpoints[{index}] ({endpoint.endpoint}) is under"
                    f" {prefix}, which the central serves itself",
                )
    state_dir = os.path.abspath(
        node.string("state_dir", required="a writable directory") or "."
    )
    fleet = read_fleet(node, base_dir)
    fleet_file = node.raw.get("fleet_file")
    poll = _poll(node.child("poll"))
    signing = _signing(node.child("signing"), state_dir)
    events = _events(
        node.child("events"), state_dir, endpoints, tuple(reserved) + ROUTE_PREFIXES,
        tuple(taken),
    )
    hooks = node.array("webhooks") or []
    webhooks = tuple(
        h
        for _, child in object_items(node.report, node.at("webhooks"), hooks)
        for h in [_webhook(child)]
        if h is not None
    )
    config = CentralRoleConfig(
        state_dir=state_dir,
        fleet=fleet,
        fleet_file=(
            os.path.join(base_dir, fleet_file) if isinstance(fleet_file, str) else None
        ),
        poll=poll,
        signing=signing,
        events=events,
        webhooks=webhooks,
        dashboard=node.boolean("dashboard", True),
        live_concurrency=node.integer("live_concurrency", 50, minimum=1, maximum=10_000),
        passthrough_timeout=positive_duration(node, "passthrough_timeout") or 10.0,
    )
    node.finish(_KEYS)
    return config


def _poll(node: Optional[Node]) -> PollConfig:
    d = PollConfig()
    if node is None:
        return d
    interval = positive_duration(node, "interval") or d.interval
    timeout = positive_duration(node, "timeout") or d.timeout
    jitter = _fraction(node, "jitter", d.jitter)
    health = node.string("health", d.health)
    if health and not _PATH.fullmatch(health):
        node.report.error(node.at("health"), f'expected a plain path such as "/health", got {q(health)}')
        health = d.health
    endpoints = _endpoints(node, health)
    stale = positive_duration(node, "stale_after") or max(d.stale_after, 3 * interval)
    offline = positive_duration(node, "offline_after") or max(d.offline_after, 4 * stale)
    if offline < stale:
        node.report.error(node.at("offline_after"), "must not be less than stale_after")
        offline = stale
    backoff = positive_duration(node, "backoff_max") or max(d.backoff_max, interval)
    if backoff < interval:
        node.report.error(node.at("backoff_max"), "must not be less than interval")
        backoff = interval
    config = PollConfig(
        interval=interval,
        timeout=timeout,
        concurrency=node.integer("concurrency", d.concurrency, minimum=1, maximum=10_000),
        jitter=jitter,
        health=health,
        endpoints=endpoints,
        backoff_max=backoff,
        stale_after=stale,
        offline_after=offline,
        max_bytes=node.integer("max_bytes", d.max_bytes, minimum=1024, maximum=64 * 1024**2),
        values=_values(node, health, endpoints),
    )
    node.finish(_POLL_KEYS)
    return config


def _fraction(node: Node, key: str, default: float) -> float:
    """A number in [0, 1]."""
    value = node.take(key)
    if value is MISSING:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        node.mismatch(key, "a number between 0 and 1", value)
        return default
    if not 0 <= value <= 1:
        node.report.error(node.at(key), f"must be between 0 and 1, got {value}")
        return default
    return float(value)


def _endpoints(node: Node, health: str) -> Tuple[PolledEndpoint, ...]:
    raw = node.array("endpoints")
    if raw is None:
        return PollConfig().endpoints
    loc = node.at("endpoints")
    found: List[PolledEndpoint] = []
    for index, item in enumerate(raw):
        here = loc.item(index)
        if isinstance(item, str):
            path, name = item, item.strip("/").replace("/", ".")
        elif isinstance(item, dict):
            child = Node(node.report, here, item)
            path = child.string("path", required='a bus path such as "/status"')
            name = child.string("name", path.strip("/").replace("/", "."))
            child.finish(("path", "name"))
        else:
            node.report.error(here, 'expected a path such as "/status" or {"name", "path"}')
            continue
        if not _PATH.fullmatch(path or "-"):
            node.report.error(here, f'expected a plain path such as "/status", got {q(path)}')
            continue
        if path == health:
            node.report.error(here, f"{q(path)} is polled already as poll.health")
            continue
        if not _NAME.fullmatch(name) or name in RESERVED_NAMES:
            node.report.error(
                here,
                f"name {q(name)} cannot serve /fleet/{name}: reserved or not"
                " letters, digits, . _ - (give {\"name\", \"path\"})",
            )
            continue
        if any(e.name == name for e in found):
            node.report.error(here, f"duplicate name {q(name)}")
            continue
        found.append(PolledEndpoint(name=name, path=path))
    return tuple(found)


def _values(
    node: Node, health: str, endpoints: Tuple[PolledEndpoint, ...]
) -> Tuple[Tuple[str, str], ...]:
    values = node.child("values")
    if values is None:
        return ()
    names = {e.name for e in endpoints} | ({"health"} if health else set())
    out: List[Tuple[str, str]] = []
    for label in list(values.raw):
        path = values.string(label)
        head = path.split(".", 1)[0]
        if not path:
            continue
        if head not in names:
            values.report.error(
                values.at(label),
                f"{q(path)} must start with a polled endpoint's name"
                f" ({', '.join(sorted(names)) or 'none polled'})",
            )
            continue
        out.append((label, path))
    return tuple(out)


def _signing(node: Optional[Node], state_dir: str) -> Optional[SigningConfig]:
    if node is None:
        return None
    key, generate, kid = read_signing_key(
        node,
        "the central's",
        kid_required='the key id the buses know, e.g. "central-2026"',
    )
    d = SigningConfig(key="", kid="")
    audience = node.string("audience", d.audience) or d.audience
    if "{id}" not in audience:
        node.report.warn(
            node.at("audience"),
            "without {id} every bus accepts the same token, so one bus could"
            ' replay the central\'s token at the others (e.g. "bus-{id}")',
        )
    config = SigningConfig(
        key=key,
        kid=kid,
        issuer=node.string("issuer", d.issuer) or d.issuer,
        subject=node.string("subject", d.subject) or d.subject,
        audience=audience,
        ttl=positive_duration(node, "ttl") or d.ttl,
        roles=node.strings("roles") or (),
        generate_key=generate,
    )
    node.finish(_SIGNING_KEYS)
    return config if key and kid else None


def _events(
    node: Optional[Node],
    state_dir: str,
    endpoints: Sequence["EndpointConfig"],
    reserved: Tuple[str, ...],
    taken: Tuple[str, ...],
) -> CentralEventsConfig:
    d = CentralEventsConfig()
    default_store = os.path.join(state_dir, "central-events.sqlite")
    if node is None:
        problem = own_path_problem(d.path, endpoints, reserved, taken)
        return CentralEventsConfig(store=default_store) if not problem else d
    path = node.string("path", d.path)
    problem = own_path_problem(path, endpoints, reserved, taken)
    if problem:
        node.report.error(node.at("path"), problem)
        path = d.path
    store = node.string("store")
    config = CentralEventsConfig(
        path=path,
        store=os.path.join(state_dir, store) if store else default_store,
        audience=node.string("audience", d.audience) or d.audience,
        leeway=node.duration("leeway", d.leeway),
        max_bytes=node.integer("max_bytes", d.max_bytes, minimum=256, maximum=16 * 1024**2),
        max_events=node.integer("max_events", d.max_events, minimum=100),
    )
    node.finish(_EVENTS_KEYS)
    return config


def _webhook(node: Node) -> Optional[WebhookConfig]:
    url = read_http_url(node, "url", required=True)
    severity = node.string("min_severity", "info")
    if severity not in _SEVERITIES:
        node.report.error(
            node.at("min_severity"), f"want info, warning or critical, got {q(severity)}"
        )
        severity = "info"
    headers = node.child("headers")
    pairs: List[Tuple[str, str]] = []
    if headers is not None:
        for name in list(headers.raw):
            value = headers.string(name)
            if not re.fullmatch(r"[A-Za-z0-9-]+", name) or "\n" in value or "\r" in value:
                headers.report.error(headers.at(name), "invalid header name or value")
            elif value:
                pairs.append((name, value))
    d = WebhookConfig(url="")
    initial = positive_duration(node, "retry_initial") or d.retry_initial
    most = positive_duration(node, "retry_max") or max(d.retry_max, initial)
    if most < initial:
        node.report.error(node.at("retry_max"), "must not be less than retry_initial")
        most = initial
    config = WebhookConfig(
        url=url,
        kinds=node.strings("kinds") or (),
        min_severity=severity,
        headers=tuple(pairs),
        timeout=positive_duration(node, "timeout") or d.timeout,
        retry_initial=initial,
        retry_max=most,
        give_up_after=positive_duration(node, "give_up_after") or d.give_up_after,
    )
    node.finish(_HOOK_KEYS)
    return config if url else None
