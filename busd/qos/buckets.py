"""Token buckets, alone and one per client, driven by the caller's clock.

Nothing here reads a clock: every call takes ``now`` (seconds, from an
injected ``IReactorTime``), so tests step time with ``task.Clock`` and the
buckets never schedule anything (no DelayedCall to clean up).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from typing import Union

__all__ = ["TokenBucket", "ClientBuckets", "retry_after", "MAX_KEY_CHARS"]

# Float refills such as 12 * (5 / 60) land a hair under 1.0; a token that
# is due must not be refused for it.
_EPSILON = 1e-9
#: Client keys longer than this are kept as a 16-byte digest, so a client
#: sending huge header values cannot make each entry cost kilobytes.
MAX_KEY_CHARS = 64
# Least recently used entries looked at per request for idle eviction:
# amortised constant work, no timer.
_SWEEP = 2


def retry_after(seconds: float) -> str:
    """``Retry-After`` (delay-seconds) for a wait of ``seconds``: whole
    seconds, rounded up, at least 1 (0 would invite an immediate retry)."""
    return str(max(1, math.ceil(seconds - _EPSILON)))


class TokenBucket:
    """A bucket of ``capacity`` tokens refilled at ``rate`` tokens a second,
    full at ``now``.

    Refill is continuous and capped at ``capacity``. KrakenD's bucket
    refills lazily only once empty, which after an idle period lets up to
    twice the capacity through at once; this one never exceeds capacity.
    """

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: int, now: float):
        self.rate = rate
        self.capacity = capacity
        self.tokens = float(capacity)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(
                float(self.capacity),
                self.tokens + (now - self.stamp) * self.rate,
            )
        # A clock stepped backwards (a Pi syncing NTP) only loses refill
        # time; it never takes tokens away.
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is
        due (nothing is taken then)."""
        self._refill(now)
        if self.tokens >= 1.0 - _EPSILON:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def is_full(self, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (so forgetting it
        loses nothing: a new one starts full)."""
        elapsed = max(0.0, now - self.stamp)
        return self.tokens + elapsed * self.rate >= self.capacity - _EPSILON


Key = Union[str, bytes]


class ClientBuckets:
    """One :class:`TokenBucket` per client key, bounded in memory.

    At most ``max_clients`` buckets are kept, in least-recently-used order.
    Each call also drops up to two of the least recently used buckets that
    have refilled to full (idle clients: dropping them changes nothing).
    Only when more than ``max_clients`` clients are all active at once is a
    non-full bucket evicted, which gives that client a fresh bucket: the
    price of a bounded table.
    """

    def __init__(self, rate: float, capacity: int, max_clients: int):
        self.rate = rate
        self.capacity = capacity
        self.max_clients = max_clients
        self._buckets: "OrderedDict[Key, TokenBucket]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now: float) -> float:
        """Take a token from ``client``'s bucket (see TokenBucket.take)."""
        key: Key = client
        if len(client) > MAX_KEY_CHARS:
            key = hashlib.blake2b(
                client.encode("utf-8", "surrogatepass"), digest_size=16
            ).digest()
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(self.rate, self.capacity, now)
            if len(buckets) > self.max_clients:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(key)
        self._sweep(now)
        return bucket.take(now)

    def _sweep(self, now: float) -> None:
        """Forget least recently used buckets that are full again."""
        buckets = self._buckets
        for _ in range(_SWEEP):
            if len(buckets) <= 1:
                return
            oldest = next(iter(buckets))
            if not buckets[oldest].is_full(now):
                return
            del buckets[oldest]
