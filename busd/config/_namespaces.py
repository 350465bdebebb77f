"""``extra_config``: namespace names, levels, and the namespaces busgw reads.

Old long namespace names are read as their short ones, as KrakenD CE does.
Every namespace is kept (frozen, by short name) on its level's model object
so later features can read their own; the ones busgw implements today are
also parsed into typed fields here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple

import attrs

from busd.config import krakend
from busd.config._syntax import check_dot_path, q
from busd.config._json import describe, freeze, is_array, is_object
from busd.config._walk import MISSING, Node
from busd.config.model import (
    STATIC_STRATEGIES,
    FlatmapOp,
    RouterOptions,
    StaticResponse,
)

__all__ = [
    "Extra",
    "read_extra",
    "read_router",
    "read_max_body",
    "read_endpoint_proxy",
    "read_backend_proxy",
    "read_backend_http",
    "EndpointProxy",
]

_LEVELS = ("service", "endpoint", "backend")
_FLATMAP_ARGS = {"move": 2, "append": 2, "del": 1}


@attrs.frozen
class Extra:
    """One level's ``extra_config``: the supported namespaces as Nodes
    (by short name) and everything, frozen, for the model."""

    nodes: Mapping[str, Node]
    frozen: Mapping[str, Any]


def read_extra(parent: Node, level: str) -> Extra:
    """Read ``parent.extra_config`` at ``level`` (service, endpoint or
    backend), warning about namespaces busgw ignores there."""
    node = parent.child("extra_config")
    if node is None:
        return Extra(MappingProxyType({}), MappingProxyType({}))
    supported = krakend.SUPPORTED_NAMESPACES[level]
    nodes: dict[str, Node] = {}
    frozen: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for name in node.raw:
        short = krakend.NAMESPACE_ALIASES.get(name, name)
        value = node.take(name)
        if short in given_as:
            node.report.error(
                node.at(name),
                f'namespace "{short}" is also given as "{given_as[short]}";'
                " keep one",
            )
            continue
        if value is MISSING:
            continue
        given_as[short] = name
        frozen[short] = freeze(value)
        if short in supported:
            if is_object(value):
                nodes[short] = Node(node.report, node.at(name), value)
            elif short in krakend.SWITCH_NAMESPACES and isinstance(value, bool):
                if value:
                    nodes[short] = Node(node.report, node.at(name), {})
            else:
                node.mismatch(name, "an object", value)
            continue
        message = _ignored_namespace(short, level)
        if message:
            node.report.warn(node.at(name), message)
    return Extra(MappingProxyType(nodes), MappingProxyType(frozen))


def _ignored_namespace(short: str, level: str) -> str:
    """The warning for a namespace busgw does not read at ``level``."""
    elsewhere = [
        other
        for other in _LEVELS
        if other != level and short in krakend.SUPPORTED_NAMESPACES[other]
    ]
    if elsewhere:
        return f"namespace belongs at the {elsewhere[0]} level (ignored here)"
    if short.startswith(krakend.BUSGW_NAMESPACE_PREFIX):
        return "unknown busgw namespace (ignored)"
    if short in krakend.KRAKEND_NAMESPACES or short.startswith(
        krakend.KRAKEND_NAMESPACE_PREFIXES
    ):
        return "KrakenD namespace not supported by busgw (ignored)"
    return "unknown namespace (ignored)"


def read_router(node: Optional[Node]) -> RouterOptions:
    """``extra_config.router`` at the service level."""
    if node is None:
        return RouterOptions()
    health_path = node.string("health_path", "/__health")
    if not health_path.startswith("/"):
        node.report.error(
            node.at("health_path"),
            f'must start with "/", got {q(health_path)}',
        )
        health_path = "/__health"
    error_body: Mapping[str, Any] = MappingProxyType({})
    bodies = node.child("error_body")
    if bodies is not None:
        for status in bodies.raw:
            # Only the router's own 404 and 405 answers can be replaced.
            if status not in ("404", "405"):
                bodies.report.warn(
                    bodies.at(status),
                    'only "404" and "405" are used (ignored)',
                )
        error_body = MappingProxyType(
            {
                status: freeze(body)
                for status, body in bodies.raw.items()
                if status in ("404", "405")
            }
        )
    options = RouterOptions(
        return_error_msg=node.boolean("return_error_msg"),
        disable_health=node.boolean("disable_health"),
        health_path=health_path,
        error_body=error_body,
    )
    node.finish(krakend.ROUTER_KEYS, krakend.UNSUPPORTED_ROUTER_KEYS)
    return options


def read_max_body(node: Optional[Node], default: int) -> int:
    """``extra_config."busgw/backend".max_body_bytes`` (service or backend)."""
    if node is None:
        return default
    value = node.integer("max_body_bytes", default, minimum=1)
    node.finish(krakend.BUSGW_BACKEND_KEYS)
    return value


@attrs.frozen
class EndpointProxy:
    """The parsed ``extra_config.proxy`` of an endpoint."""

    sequential: bool = False
    static: Optional[StaticResponse] = None
    flatmap_filter: Tuple[FlatmapOp, ...] = ()


def read_endpoint_proxy(node: Optional[Node]) -> EndpointProxy:
    """``extra_config.proxy`` at the endpoint level."""
    if node is None:
        return EndpointProxy()
    result = EndpointProxy(
        sequential=node.boolean("sequential"),
        static=_read_static(node.child("static")),
        flatmap_filter=_read_flatmap(node),
    )
    node.finish(krakend.PROXY_ENDPOINT_KEYS, krakend.UNSUPPORTED_PROXY_KEYS)
    return result


def read_backend_proxy(node: Optional[Node]) -> Tuple[FlatmapOp, ...]:
    """``extra_config.proxy`` at the backend level: its flatmap_filter."""
    if node is None:
        return ()
    ops = _read_flatmap(node)
    for key in ("static", "sequential"):
        if key in node.raw:
            node.take(key)
            node.report.warn(
                node.at(key),
                "belongs on the endpoint's extra_config.proxy (ignored here)",
            )
    node.finish(krakend.PROXY_BACKEND_KEYS, krakend.UNSUPPORTED_PROXY_KEYS)
    return ops


def read_backend_http(node: Optional[Node]) -> Tuple[str, bool]:
    """``extra_config."backend/http"``: (return_error_details,
    return_error_code)."""
    if node is None:
        return "", False
    details = node.string("return_error_details")
    code = node.boolean("return_error_code")
    node.finish(krakend.BACKEND_HTTP_KEYS)
    return details, code


def _read_static(node: Optional[Node]) -> Optional[StaticResponse]:
    """``proxy.static``: ``data`` (an object) and a ``strategy``."""
    if node is None:
        return None
    data = node.take("data", required="static responses need a data object")
    if data is not MISSING and not is_object(data):
        node.mismatch("data", "an object", data)
    strategy = node.string("strategy", "always")
    if strategy not in STATIC_STRATEGIES:
        node.report.error(
            node.at("strategy"),
            f"unknown strategy {q(strategy)}"
            f" (want one of: {', '.join(STATIC_STRATEGIES)})",
        )
        strategy = "always"
    node.finish(("data", "strategy"))
    frozen = freeze(data if is_object(data) else {})
    return StaticResponse(data=frozen, strategy=strategy)


def _read_flatmap(node: Node) -> Tuple[FlatmapOp, ...]:
    """``flatmap_filter``: a list of ``{"type": ..., "args": [...]}``."""
    items = node.array("flatmap_filter")
    if not items:
        return ()
    loc = node.at("flatmap_filter")
    ops: list[FlatmapOp] = []
    for index, raw in enumerate(items):
        if not is_object(raw):
            node.report.error(
                loc.item(index), f"expected an object, got {describe(raw)}"
            )
            continue
        op = Node(node.report, loc.item(index), raw)
        kind = op.string("type", required="move, del or append")
        args = op.take("args", required="a list of dot paths")
        op.finish(("type", "args"))
        if kind and kind not in _FLATMAP_ARGS:
            op.report.error(
                op.at("type"),
                f"unknown flatmap operation {q(kind)}"
                " (want move, del or append)",
            )
            continue
        if args is MISSING or not kind:
            continue
        if not is_array(args):
            op.mismatch("args", "a list of dot paths", args)
            continue
        paths = _flatmap_args(op, args)
        want = _FLATMAP_ARGS[kind]
        if kind == "del" and len(args) < 1:
            op.report.error(op.at("args"), "del needs at least one path")
        elif kind != "del" and len(args) != want:
            op.report.error(
                op.at("args"),
                f"{kind} needs exactly 2 paths (from, to), got {len(args)}",
            )
        elif paths is not None:
            ops.append(FlatmapOp(type=kind, args=paths))
    return tuple(ops)


def _flatmap_args(op: Node, args: list[Any]) -> Optional[Tuple[str, ...]]:
    """The dot paths of a flatmap op, or None after reporting a bad one."""
    paths: list[str] = []
    valid = True
    for index, arg in enumerate(args):
        where = op.at("args").item(index)
        problem = (
            check_dot_path(arg)
            if isinstance(arg, str)
            else f"expected a dot path, got {describe(arg)}"
        )
        if problem:
            op.report.error(where, problem)
            valid = False
        else:
            paths.append(arg)
    return tuple(paths) if valid else None
