"""``extra_config."busgw/health"``: the bus's health checks and ``/health``.

Read here (the behaviour is in :mod:`busd.health`) so the config package
imports nothing of the health role. Every bad value is an error naming its
JSON path; keys a check's kind does not use, and unknown keys, are
warnings (errors with ``--strict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Tuple

import attrs

from busd.config._json import describe, is_array, is_object
from busd.config._busfields import (
    own_path_problem,
    positive_duration,
    read_http_url,
    read_name,
    unique_named,
)
from busd.config._syntax import check_dot_path, q
from busd.config._walk import MISSING, Node

if TYPE_CHECKING:  # model.py imports this module
    from busd.config.model import EndpointConfig

__all__ = [
    "NAMESPACE",
    "BUILD_YEAR",
    "KINDS",
    "LEVELS",
    "SourceConfig",
    "CheckConfig",
    "HealthConfig",
    "read_health",
]

NAMESPACE = "busgw/health"
#: The year this busgw was built: a clock reading an earlier year has
#: never been synchronised (a Pi without RTC boots in the past).
BUILD_YEAR = 2026
KINDS = ("backend", "value", "freshness", "event", "clock")
LEVELS = ("warning", "critical")
#: Names the role reports itself; a configured check may not take them.
BUILTIN_CHECKS = ("outbox",)
_KEYS = frozenset({"path", "interval", "public", "checks"})
_COMMON = ("name", "kind", "level")
_KIND_KEYS = {
    "backend": ("url", "expect_status", "timeout"),
    "value": ("source", "path", "min", "max", "allowed", "timeout"),
    "freshness": ("source", "path", "max_age", "timeout"),
    "event": ("event_kind",),
    "clock": ("min_year", "max_drift"),
}


@attrs.frozen(kw_only=True)
class SourceConfig:
    """Where a value or freshness check reads its JSON: a device service
    ``url``, or one of this gateway's own GET ``endpoint``s."""

    url: str = ""
    endpoint: str = ""

    @property
    def key(self) -> str:
        """What identifies the source, so checks sharing one fetch once."""
        return self.url or "endpoint:" + self.endpoint


@attrs.frozen(kw_only=True)
class CheckConfig:
    """One check; only the fields of its ``kind`` are meaningful.
    Durations are seconds; ``minimum``/``maximum``/``allowed`` are None
    when not given."""

    name: str
    kind: str
    level: str = "warning"
    url: str = ""
    expect_status: int = 200
    timeout: float = 2.0
    source: Optional[SourceConfig] = None
    path: str = ""
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    allowed: Optional[Tuple[Any, ...]] = None
    max_age: float = 0.0
    event_kind: str = ""
    min_year: int = BUILD_YEAR
    max_drift: Optional[float] = None


@attrs.frozen(kw_only=True)
class HealthConfig:
    """``GET path`` answers the results of ``checks``, run every
    ``interval`` seconds; protected by the service's JWT default unless
    ``public``."""

    path: str = "/health"
    interval: float = 5.0
    public: bool = False
    checks: Tuple[CheckConfig, ...] = ()


def read_health(
    node: Optional[Node],
    endpoints: Sequence[EndpointConfig],
    reserved: Iterable[str],
) -> Optional[HealthConfig]:
    """The service-level namespace, or None when absent. ``endpoints`` and
    ``reserved`` (built-in prefixes) are what ``path`` must not collide
    with; value sources naming an endpoint must be one of ``endpoints``."""
    if node is None:
        return None
    path = node.string("path", "/health")
    problem = own_path_problem(path, endpoints, reserved)
    if problem:
        node.report.error(node.at("path"), problem)
    checks = tuple(
        unique_named(node, "checks", lambda c: _read_check(c, endpoints), "check")
    )
    config = HealthConfig(
        path=path,
        interval=node.duration("interval", 5.0),
        public=node.boolean("public"),
        checks=checks,
    )
    node.finish(_KEYS)
    return config


def _read_check(
    node: Node, endpoints: Sequence[EndpointConfig]
) -> Optional[CheckConfig]:
    """One ``checks[i]``; None when its name or kind is unusable."""
    name = read_name(node, "fuel")
    if name in BUILTIN_CHECKS:
        node.report.error(
            node.at("name"), f"{q(name)} is the name of a built-in check"
        )
        name = ""
    kind = node.string("kind", required="one of " + ", ".join(KINDS))
    if kind and kind not in KINDS:
        node.report.error(
            node.at("kind"),
            f"unknown kind {q(kind)} (want one of: {', '.join(KINDS)})",
        )
    level = node.string("level", "warning")
    if level not in LEVELS:
        node.report.error(
            node.at("level"), f'want "warning" or "critical", got {q(level)}'
        )
        level = "warning"
    if kind not in KINDS:
        node.finish(_COMMON)
        return None
    values: dict[str, Any] = {"kind": kind, "level": level}
    if kind == "backend":
        values["url"] = read_http_url(node, "url", required=True)
        values["expect_status"] = node.integer(
            "expect_status", 200, minimum=100, maximum=599
        )
    if kind in ("backend", "value", "freshness"):
        values["timeout"] = node.duration("timeout", 2.0)
    if kind in ("value", "freshness"):
        values["source"] = _read_source(node, endpoints)
        values["path"] = _read_path(node)
    if kind == "value":
        values.update(_read_bounds(node))
    elif kind == "freshness":
        values["max_age"] = positive_duration(node, "max_age", required=True)
    elif kind == "event":
        values["event_kind"] = node.string(
            "event_kind", required='the kind of event, such as "crash"'
        )
    elif kind == "clock":
        values["min_year"] = node.integer(
            "min_year", BUILD_YEAR, minimum=1970, maximum=9999
        )
        if node.has("max_drift"):
            values["max_drift"] = positive_duration(node, "max_drift") or None
    _finish_check(node, kind)
    if not name:
        return None
    return CheckConfig(name=name, **values)


def _finish_check(node: Node, kind: str) -> None:
    """Keys of another kind get a precise warning, the rest "unknown"."""
    mine = set(_COMMON) | set(_KIND_KEYS[kind])
    for other, keys in _KIND_KEYS.items():
        for key in keys:
            if key in node.raw and key not in mine:
                node.take(key)
                node.report.warn(
                    node.at(key),
                    f"used by {other} checks, not by {kind} checks (ignored)",
                )
    node.finish(mine)


def _read_source(
    node: Node, endpoints: Sequence[EndpointConfig]
) -> Optional[SourceConfig]:
    """``source``: ``{"url": ...}`` or ``{"endpoint": "/status"}``."""
    child = node.child("source", required='{"url": ...} or {"endpoint": ...}')
    if child is None:
        return None
    given = [key for key in ("url", "endpoint") if child.has(key)]
    url = read_http_url(child, "url")
    endpoint = child.string("endpoint")
    child.finish(("url", "endpoint"))
    if len(given) != 1:
        child.report.error(child.loc, 'give either "url" or "endpoint"')
        return None
    if not (url or endpoint):
        return None  # reported by read_url or string
    if endpoint:
        gets = {e.endpoint: e for e in endpoints if e.method == "GET"}
        found = gets.get(endpoint)
        if found is None:
            known = ", ".join(sorted(gets)) or "none"
            child.report.error(
                child.at("endpoint"),
                f"no GET endpoint {q(endpoint)} in this config"
                f" (GET endpoints: {known})",
            )
            return None
        if found.params:
            child.report.error(
                child.at("endpoint"),
                f"{q(endpoint)} has path parameters; name a plain endpoint",
            )
            return None
    return SourceConfig(url=url, endpoint=endpoint)


def _read_path(node: Node) -> str:
    """A dot path into the source's JSON (``*`` fans out over arrays)."""
    path = node.string("path", required='a dot path such as "fuel.level_pct"')
    problem = check_dot_path(path) if path else None
    if problem:
        node.report.error(node.at("path"), problem)
        return ""
    return path


def _read_bounds(node: Node) -> dict[str, Any]:
    """``min``, ``max`` and ``allowed`` of a value check (one at least)."""
    bounds: dict[str, Any] = {}
    for key, field in (("min", "minimum"), ("max", "maximum")):
        value = node.take(key)
        if value is MISSING:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            node.mismatch(key, "a number", value)
        else:
            bounds[field] = value
    allowed = node.take("allowed")
    if allowed is not MISSING:
        if not is_array(allowed) or not allowed:
            node.mismatch("allowed", "a non-empty list of values", allowed)
        else:
            ok = True
            for index, item in enumerate(allowed):
                if is_object(item) or is_array(item):
                    ok = False
                    node.report.error(
                        node.at("allowed").item(index),
                        f"expected a string, number or boolean, got"
                        f" {describe(item)}",
                    )
            if ok:
                bounds["allowed"] = tuple(allowed)
    low, high = bounds.get("minimum"), bounds.get("maximum")
    if low is not None and high is not None and low > high:
        node.report.error(node.at("min"), f"min {low} is above max {high}")
    if not any(k in node.raw for k in ("min", "max", "allowed")):
        node.report.error(
            node.loc, 'a value check needs "min", "max" or "allowed"'
        )
    return bounds
