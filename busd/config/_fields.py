"""Readers for keys that several levels share: methods, encodings, header
lists, hosts; and the defaults each level hands down to the next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import attrs

from busd.config._syntax import canonical_header, q, sanitize_host
from busd.config._walk import Node
from busd.config.model import METHODS

if TYPE_CHECKING:  # busd.auth.config imports busd.config while it loads
    from busd.auth.config import ValidatorConfig

__all__ = [
    "ServiceDefaults",
    "EndpointContext",
    "clean_host",
    "read_method",
    "read_encoding",
    "read_headers",
]


@attrs.frozen
class ServiceDefaults:
    """What the service level passes down to every endpoint."""

    hosts: Tuple[str, ...] = ()
    # False when the service gave hosts but none was valid: a backend
    # without hosts then needs no second error.
    hosts_ok: bool = True
    timeout: float = 2.0
    cache_ttl: float = 0.0
    output_encoding: str = "json"
    max_body_bytes: int = 0
    # extra_config."busgw/auth".validator: every endpoint's default.
    auth: Optional[ValidatorConfig] = None


@attrs.frozen
class EndpointContext:
    """What an endpoint passes down to its backends."""

    method: str
    params: Tuple[str, ...]
    # False when the endpoint path is broken, so its params are unreliable.
    params_ok: bool
    sequential: bool
    output_encoding: str
    input_headers: Tuple[str, ...]
    input_query_strings: Tuple[str, ...]
    timeout: float
    concurrent_calls: int


def clean_host(host: str, raw: bool) -> str:
    """A host as busgw calls it: sanitised, or (``raw``) as given without
    trailing slashes. Raises ValueError for an unusable host."""
    if raw:
        if not host.strip("/"):
            raise ValueError(f"invalid host {q(host)}")
        return host.rstrip("/")
    return sanitize_host(host)


def read_method(node: Node, default: str) -> str:
    """An HTTP method, upper-cased; one of those busgw can route."""
    value = node.string("method") or default
    method = value.upper()
    if method not in METHODS:
        node.report.error(
            node.at("method"),
            f"unsupported method {q(value)}"
            f" (want one of: {', '.join(METHODS)})",
        )
        return default
    return method


def read_encoding(
    node: Node,
    key: str,
    default: str,
    allowed: Sequence[str],
    unsupported: frozenset[str],
) -> str:
    """An output_encoding or backend encoding; "" means ``default``.
    KrakenD encodings busgw lacks and unknown names are both errors, since
    KrakenD would answer differently (or fall back to json silently)."""
    value = node.string(key) or default
    if value in allowed:
        return value
    wanted = ", ".join(allowed)
    if value in unsupported:
        message = f"{key} {q(value)} is not supported by busgw (use: {wanted})"
    else:
        message = f"unknown {key} {q(value)} (use: {wanted})"
    node.report.error(node.at(key), message)
    return default if default in allowed else allowed[0]


def read_headers(node: Node, key: str) -> Optional[Tuple[str, ...]]:
    """A list of header names, canonicalised as Go does (``*`` = all), or
    None when absent."""
    names = node.strings(key)
    if names is None:
        return None
    loc = node.at(key)
    single = isinstance(node.raw.get(key), str)
    result: list[str] = []
    for index, name in enumerate(names):
        try:
            result.append(canonical_header(name))
        except ValueError as exc:
            node.report.error(loc if single else loc.item(index), str(exc))
    return tuple(result)
