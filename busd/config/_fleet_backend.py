"""``backend[j].extra_config."busgw/fleet"``: a backend that calls every
bus of the central's fleet at once (the behaviour is in
:mod:`busd.central.live`).

``true`` takes every default; an object narrows and bounds the fan-out::

    "busgw/fleet": {"concurrency": 20, "labels": {"line": "FW-12"},
                    "timeout": "2s"}

Such a backend needs no ``host`` (the buses' URLs are the fleet's) and
only makes sense on a gateway with ``busgw/central``
(:func:`check_fleet_backends`, run by the loader once the whole config is
read).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Tuple

import attrs

from busd.config._json import describe
from busd.config._syntax import q
from busd.config._walk import Node, Report

if TYPE_CHECKING:  # model.py imports this module
    from busd.config.model import EndpointConfig

__all__ = [
    "NAMESPACE",
    "FLEET_SHARE",
    "FleetBackendConfig",
    "read_fleet_backend",
    "check_fleet_backends",
]

NAMESPACE = "busgw/fleet"
#: Share of the backend's (the endpoint's) timeout after which a fan-out
#: answers with what it has, naming the rest missing: below the merge's
#: 85 %, so a slow bus never turns the whole endpoint into a timeout.
FLEET_SHARE = 0.8
_KEYS = ("concurrency", "labels", "timeout")


@attrs.frozen(kw_only=True)
class FleetBackendConfig:
    """How a ``busgw/fleet`` backend fans out: at most ``concurrency``
    buses at once (None: the central's ``live_concurrency``), only the
    buses carrying every label of ``labels``, each call bounded by
    ``timeout`` seconds (None: the fan-out's own deadline,
    ``FLEET_SHARE`` of the endpoint timeout)."""

    concurrency: Optional[int] = None
    labels: Mapping[str, str] = attrs.field(
        factory=dict, converter=lambda m: MappingProxyType(dict(m)),
        eq=False, hash=False,
    )
    timeout: Optional[float] = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a bus with ``labels`` is part of this fan-out."""
        return all(labels.get(k) == v for k, v in self.labels.items())


def read_fleet_backend(
    node: Optional[Node], endpoint_timeout: float
) -> Optional[FleetBackendConfig]:
    """The ``busgw/fleet`` namespace of a backend (``true`` arrives as an
    empty object, ``false`` as None: busd.config._namespaces.read_extra),
    None when absent."""
    if node is None:
        return None
    concurrency: Optional[int] = None
    if node.has("concurrency"):
        concurrency = node.integer("concurrency", 0, minimum=1) or None
    timeout: Optional[float] = None
    if node.has("timeout"):
        timeout = node.duration("timeout", 0.0) or None
        if timeout is not None and timeout >= endpoint_timeout * FLEET_SHARE:
            node.report.warn(
                node.at("timeout"),
                f"the fan-out answers after {endpoint_timeout * FLEET_SHARE:g}s"
                f" ({int(FLEET_SHARE * 100)} % of the endpoint timeout) with"
                " the buses still running named missing; this timeout"
                " never fires",
            )
    labels = _labels(node)
    node.finish(_KEYS)
    return FleetBackendConfig(
        concurrency=concurrency, labels=labels, timeout=timeout
    )


def _labels(node: Node) -> Mapping[str, str]:
    child = node.child("labels")
    if child is None:
        return {}
    out = {}
    for key, value in child.raw.items():
        child.take(key)
        if isinstance(value, str):
            out[key] = value
        else:
            child.report.error(
                child.at(key), f"expected a string, got {describe(value)}"
            )
    return out


def check_fleet_backends(
    report: Report,
    endpoints: Iterable[Tuple[Node, "EndpointConfig"]],
    has_central: bool,
) -> None:
    """Report every ``busgw/fleet`` backend of a gateway that is not a
    central (there is no fleet to call)."""
    if has_central:
        return
    for node, endpoint in endpoints:
        raw_backends: Any = node.raw.get("backend")
        for index, backend in enumerate(endpoint.backends):
            if backend.fleet is None:
                continue
            loc = node.at("backend").item(index)
            try:
                raw = raw_backends[index]
                extra = raw["extra_config"]
                loc = loc.key(raw, "extra_config").key(extra, NAMESPACE)
            except (KeyError, IndexError, TypeError):
                pass  # the backend's own location is close enough
            report.error(
                loc,
                f"{q(NAMESPACE)} calls the central's fleet: it needs"
                ' extra_config."busgw/central" at the service level',
            )


def check_fleet_backend(node: Node, backend: Any) -> None:
    """Keys of a ``busgw/fleet`` backend (``node``, read as ``backend``)
    that cannot apply: its hosts are the buses, it decodes every answer,
    and it is never cached."""
    if node.has("host"):
        node.take("host")
        node.report.warn(
            node.at("host"),
            f"ignored: a {q(NAMESPACE)} backend calls the fleet's buses",
        )
    if backend.encoding == "no-op":
        node.report.error(
            node.at("encoding") if node.has("encoding") else node.loc,
            f"a {q(NAMESPACE)} backend decodes each bus's answer: no-op"
            " encoding (or a no-op endpoint) cannot merge them",
        )
    if backend.http_cache is not None:
        node.report.warn(
            node.at("extra_config"),
            f'"qos/http-cache" is not applied to a {q(NAMESPACE)} backend',
        )
