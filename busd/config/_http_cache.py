"""``extra_config."qos/http-cache"`` on a backend: cache its answers and
collapse identical calls in flight (the behaviour is busd.pipeline.cache).

KrakenD's keys: ``shared`` (one cache for every backend that sets it),
``max_items`` and ``max_size`` (bytes). KrakenD's cache is unbounded
unless both bounds are given; busgw's is always bounded, each bound
defaulting to the values below.
"""

from __future__ import annotations

from typing import Optional

import attrs

from busd.config._walk import Node

__all__ = [
    "HttpCacheConfig",
    "read_http_cache",
    "HTTP_CACHE_KEYS",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_SIZE",
]

HTTP_CACHE_KEYS = frozenset({"shared", "max_items", "max_size"})
DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_SIZE = 10 * 1024 * 1024


@attrs.frozen(kw_only=True)
class HttpCacheConfig:
    """A backend's answer cache: ``shared`` puts it in the one cache of
    every ``shared`` backend (its bounds are the largest given)."""

    shared: bool = False
    max_items: int = DEFAULT_MAX_ITEMS
    max_size: int = DEFAULT_MAX_SIZE


def read_http_cache(node: Optional[Node]) -> Optional[HttpCacheConfig]:
    """The namespace at ``node``, or None when the backend has none."""
    if node is None:
        return None
    config = HttpCacheConfig(
        shared=node.boolean("shared"),
        max_items=node.integer("max_items", DEFAULT_MAX_ITEMS, minimum=1),
        max_size=node.integer("max_size", DEFAULT_MAX_SIZE, minimum=1),
    )
    node.finish(HTTP_CACHE_KEYS)
    return config
