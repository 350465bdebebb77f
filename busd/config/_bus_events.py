"""``busgw/bus.events``: where devices post events, who may, and who may
acknowledge them (part of :mod:`busd.config._bus`)."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import attrs

from busd.config._busfields import own_path_problem, under
from busd.config._syntax import q
from busd.config._walk import Node

if TYPE_CHECKING:
    from busd.auth.config import ValidatorConfig
    from busd.config.model import EndpointConfig

__all__ = ["EventsConfig", "read_events", "DEFAULT_ALLOW_FROM", "Network"]

DEFAULT_ALLOW_FROM = ("127.0.0.0/8", "::1/128")
_EVENTS_KEYS = frozenset({"path", "allow_from", "device_token", "ack_token"})
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@attrs.frozen(kw_only=True)
class EventsConfig:
    """``POST path`` from ``allow_from`` networks or with a device token;
    ``POST path/{id}/ack`` with an ``ack_token`` (None: acks refused)."""

    path: str = "/events"
    allow_from: Tuple[Network, ...] = tuple(
        ipaddress.ip_network(n) for n in DEFAULT_ALLOW_FROM
    )
    device_token: Optional["ValidatorConfig"] = None
    ack_token: Optional["ValidatorConfig"] = None


def read_events(
    parent: Node,
    default_auth: Optional["ValidatorConfig"],
    endpoints: Sequence["EndpointConfig"],
    reserved: Sequence[str],
    taken: Sequence[str],
) -> EventsConfig:
    """``parent.events`` (``parent`` is the ``busgw/bus`` node); acks are
    checked by ``default_auth`` unless ``ack_token`` is given."""
    from busd.auth.config import read_validator  # a cycle at import time

    node = parent.child("events")
    if node is None:
        # The default path is checked too, reported on the namespace.
        _check_path(
            parent, "/events", endpoints, reserved, taken, "events.path"
        )
        return EventsConfig(ack_token=default_auth)
    path = node.string("path", "/events")
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
        node.report.error(
            node.at("path"),
            f'expected a plain path such as "/events", got {q(path)}',
        )
        path = "/events"
    else:
        _check_path(node, path, endpoints, reserved, taken, "path")
    device = node.child("device_token")
    ack = node.child("ack_token")
    config = EventsConfig(
        path=path,
        allow_from=_networks(node),
        device_token=read_validator(device) if device is not None else None,
        ack_token=read_validator(ack) if ack is not None else default_auth,
    )
    node.finish(_EVENTS_KEYS)
    return config


def _networks(node: Node) -> Tuple[Network, ...]:
    given = node.strings("allow_from")
    if given is None:
        return EventsConfig().allow_from
    networks = []
    for index, text in enumerate(given):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            loc = node.at("allow_from")
            if not isinstance(node.raw.get("allow_from"), str):
                loc = loc.item(index)
            node.report.error(
                loc, f"not an IP network (CIDR) or address: {q(text)}"
            )
    return tuple(networks)


def _check_path(
    node: Node,
    path: str,
    endpoints: Sequence["EndpointConfig"],
    reserved: Sequence[str],
    taken: Sequence[str],
    key: str,
) -> None:
    """The events path and the ``path/{id}/ack`` routes below it must not
    be built-in paths, other bus routes, or answered by an endpoint
    (a placeholder endpoint such as ``/{x}`` would be shadowed)."""
    problem = own_path_problem(path, endpoints, reserved, taken)
    if problem is None:
        for other in taken:
            if under(other, path):
                problem = f"{q(path)} would shadow {q(other)}, served by busgw"
    if problem is None:
        samples = (path, path + "/x/ack")
        for index, endpoint in enumerate(endpoints):
            pattern = re.sub(
                r"\\\{[^/]*?\\\}", "[^/]+", re.escape(endpoint.endpoint)
            )
            if under(endpoint.endpoint, path) or any(
                re.fullmatch(pattern, s) for s in samples
            ):
                problem = (
                    f"{q(path)} collides with endpoints[{index}]"
                    f" ({endpoint.method} {endpoint.endpoint})"
                )
                break
    if problem is not None:
        where = node.at(key) if node.has(key) else node.loc
        node.report.error(
            where, problem if node.has(key) else f"{key}: {problem}"
        )
