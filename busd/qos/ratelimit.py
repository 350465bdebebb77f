"""``qos/ratelimit/router``: token-bucket rate limits on an endpoint.

As KrakenD's krakend-ratelimit router: ``max_rate`` tokens per ``every``
shared by every caller (503 when the bucket is empty) and
``client_max_rate`` per client (429), the client named by ``strategy``:
``ip`` (the peer address, or the IP in header ``key``), ``header`` (the
value of header ``key``; an empty value is refused) or ``param`` (path
parameter ``key``). The client check runs first, so a refused client does
not spend the endpoint's tokens. Both answers carry ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import math
from typing import TYPE_CHECKING, Any, Optional, Tuple

import attrs
from twisted.internet.interfaces import IReactorTime

from busd.errors import GatewayError
from busd.pipeline.types import ProxyRequest
from busd.qos.buckets import ClientBuckets, TokenBucket, retry_after

if TYPE_CHECKING:
    # busd.config imports this module (model.py) while it loads.
    from busd.config._walk import Node

__all__ = [
    "NAMESPACE",
    "RateLimitConfig",
    "RateLimitGuard",
    "read_rate_limit",
    "client_ip",
    "RATELIMIT_KEYS",
    "STRATEGIES",
    "DEFAULT_MAX_CLIENTS",
]

NAMESPACE = "qos/ratelimit/router"
STRATEGIES = ("ip", "header", "param")
DEFAULT_MAX_CLIENTS = 10_000
RATELIMIT_KEYS = frozenset(
    {
        "max_rate",
        "capacity",
        "client_max_rate",
        "client_capacity",
        "strategy",
        "key",
        "every",
        "max_clients",
    }
)
_UNSUPPORTED = {
    name: "not used by busgw (one bounded table per endpoint; ignored)"
    for name in ("num_shards", "cleanup_period", "cleanup_threads")
}


@attrs.frozen(kw_only=True)
class RateLimitConfig:
    """A parsed ``qos/ratelimit/router``. Rates are per ``every`` seconds
    as written; ``rate``/``client_rate`` give them per second. A zero rate
    means that limit is off; ``strategy`` is ``""`` when the client limit
    is off."""

    max_rate: float = 0.0
    capacity: int = 1
    client_max_rate: float = 0.0
    client_capacity: int = 1
    strategy: str = ""
    key: str = ""
    every: float = 1.0
    max_clients: int = DEFAULT_MAX_CLIENTS

    @property
    def rate(self) -> float:
        return self.max_rate / self.every

    @property
    def client_rate(self) -> float:
        return self.client_max_rate / self.every


def read_rate_limit(
    node: Optional[Node], params: Tuple[str, ...]
) -> Optional[RateLimitConfig]:
    """The endpoint's ``qos/ratelimit/router``, or None when it sets no
    limit. ``params`` are the endpoint's path parameters (for ``param``)."""
    if node is None:
        return None
    max_rate = _rate(node, "max_rate")
    client_max_rate = _rate(node, "client_max_rate")
    every = node.duration("every", 1.0)
    if every < 1.0:
        node.report.warn(
            node.at("every"), "less than 1s; 1s is used, as in KrakenD"
        )
        every = 1.0
    capacity = node.integer("capacity", 0, minimum=0)
    client_capacity = node.integer("client_capacity", 0, minimum=0)
    max_clients = node.integer("max_clients", DEFAULT_MAX_CLIENTS, minimum=1)
    strategy, key = _client_strategy(node, client_max_rate > 0, params)
    node.finish(RATELIMIT_KEYS, _UNSUPPORTED)
    if max_rate <= 0 and client_max_rate <= 0:
        if not (node.has("max_rate") or node.has("client_max_rate")):
            node.report.warn(
                node.loc,
                "neither max_rate nor client_max_rate is set: no limit",
            )
        return None
    return RateLimitConfig(
        max_rate=max_rate,
        # KrakenD's default capacity: the rate per second, at least 1.
        capacity=capacity or max(1, math.floor(max_rate / every)),
        client_max_rate=client_max_rate if strategy else 0.0,
        client_capacity=client_capacity
        or max(1, math.floor(client_max_rate / every)),
        strategy=strategy,
        key=key,
        every=every,
        max_clients=max_clients,
    )


def _rate(node: Node, key: str) -> float:
    """A non-negative number (``"10"`` is accepted, as mapstructure's weak
    typing does)."""
    from busd.config._walk import MISSING

    value = node.take(key)
    if value is MISSING:
        return 0.0
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if (
        isinstance(number, bool)
        or not isinstance(number, (int, float))
        or not math.isfinite(number)
    ):
        node.mismatch(key, "a number", value)
        return 0.0
    if number < 0:
        node.report.error(node.at(key), f"must not be negative, got {value}")
        return 0.0
    return float(number)


def _client_strategy(
    node: Node, client_limit: bool, params: Tuple[str, ...]
) -> Tuple[str, str]:
    """(strategy, key) for the client limit, ``("", "")`` when off.

    KrakenD turns the client limit off with only a log line when the
    strategy is missing or unknown; busgw makes that an error, since the
    operator asked for a limit the gateway would not enforce.
    """
    from busd.config._syntax import q

    strategy = node.string("strategy").lower()
    key = node.string("key")
    if not client_limit:
        if node.has("strategy"):
            node.report.warn(
                node.at("strategy"), "ignored without client_max_rate"
            )
        return "", ""
    if strategy not in STRATEGIES:
        got = q(strategy) if strategy else "none"
        node.report.error(
            node.at("strategy"),
            f"client_max_rate needs a strategy: ip, header or param"
            f" (got {got})",
        )
        return "", ""
    if strategy == "header" and not key:
        node.report.error(
            node.at("key"), 'strategy "header" needs the header name in key'
        )
    if strategy == "param" and key not in params:
        have = ", ".join(params) or "none"
        node.report.error(
            node.at("key"),
            f'strategy "param" needs key naming a path parameter of the'
            f" endpoint (got {q(key) if key else 'none'}; parameters: {have})",
        )
    return strategy, key


def client_ip(preq: ProxyRequest, header: str) -> str:
    """The client's IP: the first address in ``header`` when it holds a
    valid one (``X-Forwarded-For: 203.0.113.7, 10.0.0.1``, an optional
    port, IPv6 in brackets), else the peer address, as KrakenD does."""
    if header:
        value = (preq.header(header) or "").split(",", 1)[0].strip()
        ip = _parse_ip(value)
        if ip:
            return ip
    return preq.client_ip


def _parse_ip(text: str) -> str:
    candidates = [text]
    if text.startswith("[") and "]" in text:
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return ""


class RateLimitGuard:
    """The endpoint guard (see busd.guards): refuses with 429 (client) or
    503 (endpoint), each with ``Retry-After``; otherwise passes the
    request on unchanged. State lives here, one per endpoint."""

    def __init__(self, config: RateLimitConfig, clock: IReactorTime):
        self.config = config
        self._clock = clock
        now = clock.seconds()
        self._shared: Optional[TokenBucket] = None
        if config.max_rate > 0:
            self._shared = TokenBucket(config.rate, config.capacity, now)
        self._clients: Optional[ClientBuckets] = None
        if config.strategy:
            self._clients = ClientBuckets(
                config.client_rate, config.client_capacity, config.max_clients
            )

    def __call__(self, request: Any, preq: ProxyRequest) -> ProxyRequest:
        now = self._clock.seconds()
        if self._clients is not None:
            client = self._client_key(preq)
            if not client:
                # KrakenD: no client identity, no service.
                raise _limited(429, 1.0 / self.config.client_rate)
            wait = self._clients.take(client, now)
            if wait:
                raise _limited(429, wait)
        if self._shared is not None:
            wait = self._shared.take(now)
            if wait:
                raise _limited(503, wait)
        return preq

    def _client_key(self, preq: ProxyRequest) -> str:
        strategy, key = self.config.strategy, self.config.key
        if strategy == "ip":
            return client_ip(preq, key)
        if strategy == "header":
            return preq.header(key) or ""
        return preq.params.get(key, "")


def _limited(status: int, wait: float) -> GatewayError:
    return GatewayError(
        "rate limit exceeded",
        status=status,
        code="rate_limited",
        headers={"Retry-After": retry_after(wait)},
    )
