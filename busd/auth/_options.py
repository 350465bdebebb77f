"""Readers for the ``auth/validator`` options that need more than the
plain :class:`~busd.config._walk.Node` getters."""

from __future__ import annotations

from typing import Tuple
from urllib.parse import urlsplit

from busd.config._json import as_int, describe, is_array
from busd.config._syntax import canonical_header, q
from busd.config._walk import DURATION_HINT, Node
from busd.config.durations import parse_duration

__all__ = ["read_url", "read_seconds", "read_header", "read_propagate"]


def read_url(node: Node, key: str, insecure: bool) -> str:
    """``jwk_url``: https, or http only with ``disable_jwk_security``.
    KrakenD starts anyway and answers 401 on that endpoint; busgw refuses
    the config, so a bus never runs unprotected by mistake."""
    url = node.string(key)
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        node.report.error(node.at(key), f"not an http(s) URL: {q(url)}")
    elif parts.scheme == "http" and not insecure:
        node.report.error(
            node.at(key),
            "jwk_url must be https:// (set disable_jwk_security: true to"
            " allow http)",
        )
    elif parts.scheme == "https" and insecure:
        node.report.warn(
            node.at(key),
            "disable_jwk_security only allows http:// in busgw; https is"
            " always verified",
        )
    return url


def read_seconds(node: Node, key: str, default: float) -> float:
    """``cache_duration``: whole seconds as KrakenD, or a duration string."""
    value = node.take(key)
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            node.report.error(node.at(key), f"{exc}; {DURATION_HINT}")
            return default
    else:
        number = as_int(value) if value is not None else None
        if number is None:
            if node.has(key):
                node.mismatch(key, "seconds (an integer) or a duration", value)
            return default
        seconds = float(number)
    if seconds <= 0:
        node.report.error(node.at(key), f"must be positive, got {value!r}")
        return default
    return seconds


def read_header(node: Node, key: str, default: str) -> str:
    name = node.string(key) or default
    try:
        return canonical_header(name)
    except ValueError as exc:
        node.report.error(node.at(key), str(exc))
        return default


def read_propagate(node: Node, key: str) -> Tuple[Tuple[str, str], ...]:
    """``propagate_claims``: ``[[claim, header], ...]``."""
    items = node.array(key)
    pairs: list[Tuple[str, str]] = []
    for index, item in enumerate(items or ()):
        loc = node.at(key).item(index)
        if not (
            is_array(item)
            and len(item) == 2
            and all(isinstance(v, str) and v for v in item)
        ):
            node.report.error(
                loc,
                f"expected [claim, header] (two strings), got {describe(item)}",
            )
            continue
        try:
            header = canonical_header(item[1])
        except ValueError as exc:
            node.report.error(loc.item(1), str(exc))
            continue
        if header == "*":
            node.report.error(loc.item(1), 'invalid header name "*"')
            continue
        pairs.append((item[0], header))
    return tuple(pairs)
