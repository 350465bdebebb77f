"""Readers shared by the bus role's namespaces (``busgw/health``,
``busgw/inbound``): the paths they serve beside the config's endpoints
(checked so they never shadow an endpoint, a built-in path or each
other), item names (unique in their list), device service URLs and
positive durations."""

from __future__ import annotations

import re
from typing import (
    TYPE_CHECKING,
    Callable,
    Iterable,
    Iterator,
    Optional,
    Protocol,
    Sequence,
    TypeVar,
)
from urllib.parse import urlsplit

from busd.config._syntax import q
from busd.config._walk import Node, object_items
from busd.config.durations import parse_duration

if TYPE_CHECKING:  # model.py imports this module
    from busd.config.model import EndpointConfig

__all__ = [
    "own_path_problem",
    "under",
    "read_name",
    "unique_named",
    "positive_duration",
    "read_http_url",
    "read_signing_key",
]

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def read_name(node: Node, example: str) -> str:
    """The required ``name`` of a list item (a check, a topic): letters,
    digits, ``.``, ``-``, ``_``; "" when missing or invalid (reported)."""
    name = node.string("name", required=f"a unique name such as {q(example)}")
    if name and not _NAME.fullmatch(name):
        node.report.error(
            node.at("name"),
            f"invalid name {q(name)}: use letters, digits, '.', '-', '_'",
        )
        return ""
    return name


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def unique_named(
    node: Node,
    key: str,
    read: Callable[[Node], Optional[_N]],
    what: str,
    *,
    required: str = "",
) -> Iterator[_N]:
    """The objects of array ``key`` of ``node``, each read by ``read``
    (None: unusable, already reported), in order, leaving out one whose
    ``name`` an earlier kept item has (an error at its ``name``:
    ``duplicate {what} name``). Lazy: the array is read on the first
    ``next()``, and each item is read only after the caller has handled
    the one before, so ``read`` may depend on what the caller kept."""
    seen: dict[str, int] = {}
    items = node.array(key, required=required) or []
    for index, child in object_items(node.report, node.at(key), items):
        item = read(child)
        if item is None:
            continue
        if item.name in seen:
            child.report.error(
                child.at("name"),
                f"duplicate {what} name {q(item.name)} (first in"
                f" {key}[{seen[item.name]}])",
            )
            continue
        seen[item.name] = index
        yield item


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, segment-wise."""
    base = prefix.rstrip("/")
    if not base:
        return path == prefix
    return path == base or path.startswith(base + "/")


def own_path_problem(
    path: str,
    endpoints: Sequence[EndpointConfig],
    reserved: Iterable[str],
    taken: Iterable[str] = (),
) -> Optional[str]:
    """Why ``path`` cannot be a built-in route, or None.

    ``reserved`` are built-in prefixes (``/__health``...) nothing may go
    under; ``taken`` are exact paths other features already serve. An
    endpoint with the same path (any method, trailing ``/`` ignored) is a
    collision, since both would answer it.
    """
    if not path.startswith("/"):
        return f'must start with "/", got {q(path)}'
    if any(c in path for c in "{}*?#"):
        return f"must be a plain path without placeholders, got {q(path)}"
    plain = path.rstrip("/") or "/"
    for prefix in reserved:
        if under(plain, prefix):
            return f"{q(path)} is reserved for busgw's built-in {prefix}"
    for other in taken:
        if (other.rstrip("/") or "/") == plain:
            return f"{q(path)} is already served by busgw ({other})"
    for index, endpoint in enumerate(endpoints):
        if (endpoint.endpoint.rstrip("/") or "/") == plain:
            return (
                f"{q(path)} collides with endpoints[{index}]"
                f" ({endpoint.method} {endpoint.endpoint})"
            )
    return None


def positive_duration(node: Node, key: str, *, required: bool = False) -> float:
    """A duration that must be above zero (``"0"`` is refused, since a
    zero max_age or max_drift would always fail)."""
    if required and not node.has(key):
        node.take(key, required='a duration such as "30s"')
        return 0.0
    raw = node.raw.get(key)
    seconds = node.duration(key, 0.0)
    if seconds == 0.0 and isinstance(raw, str):
        try:
            zero = parse_duration(raw) == 0
        except ValueError:
            zero = False  # already reported by node.duration
        if zero:
            node.report.error(node.at(key), f"must be above zero, got {q(raw)}")
    return seconds


def read_http_url(node: Node, key: str, *, required: bool = False) -> str:
    """An absolute ``http(s)://host[:port]/path`` URL."""
    hint = 'an http(s) URL such as "http://127.0.0.1:9101/vehicle"'
    url = node.string(key, required=hint if required else "")
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        node.report.error(node.at(key), f"invalid URL {q(url)}: {exc}")
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        node.report.error(node.at(key), f"expected {hint}, got {q(url)}")
        return ""
    return url


def read_signing_key(
    node: Node, whose: str, kid_default: str = "", kid_required: str = ""
) -> "tuple[str, bool, str]":
    """``key`` (a private PEM, made absolute), ``generate_key`` and ``kid``
    of a block that signs tokens (the bus's ``central``, the central's
    ``signing``): an existing key must load, and a missing one is an error
    unless ``generate_key``. Returns ``("", ...)`` / ``kid=""`` for bad
    values (reported)."""
    import os

    from busd.auth.sign import KID_PATTERN, load_private_key

    key = node.string("key", required=f"{whose} private key (PEM file)")
    generate = node.boolean("generate_key")
    if key:
        key = os.path.abspath(key)
        if os.path.exists(key) or not generate:
            try:
                load_private_key(key)
            except ValueError as exc:
                hint = (
                    ""
                    if os.path.exists(key)
                    else " (make one with busgw keys generate, or set generate_key)"
                )
                node.report.error(node.at("key"), f"{exc}{hint}")
    kid = node.string("kid", kid_default, required=kid_required)
    if kid and not KID_PATTERN.fullmatch(kid):
        node.report.error(
            node.at("kid"), f"invalid kid {q(kid)} (letters, digits, . _ -)"
        )
        kid = ""
    return key, generate, kid
