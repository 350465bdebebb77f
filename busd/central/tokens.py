"""The central's tokens for its calls to buses: one short-lived JWT per
bus (the audience names the bus), re-signed when half its life is gone or
the clock went back."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from twisted.internet.interfaces import IReactorTime

from busd.auth.sign import PrivateKey, make_token
from busd.config._central import SigningConfig

__all__ = ["BusTokens"]


class BusTokens:
    """``token(bus_id)``: the bearer token for a call to that bus;
    ``authorization(bus_id)`` the ``Authorization`` header value as bytes.
    Tokens are cached per bus, so polling a large fleet signs each bus's
    token once per ``ttl / 2``, not once per request."""

    def __init__(
        self, config: SigningConfig, key: PrivateKey, clock: IReactorTime
    ):
        self._config = config
        self._key = key
        self._clock = clock
        self._cache: Dict[str, Tuple[float, str]] = {}

    def token(self, bus_id: str) -> str:
        now = self._clock.seconds()
        cached = self._cache.get(bus_id)
        if cached is not None:
            issued, token = cached
            if issued <= now < issued + self._config.ttl / 2:
                return token
        c = self._config
        token = make_token(
            self._key,
            c.kid,
            issuer=c.issuer,
            subject=c.subject,
            audience=c.audience_for(bus_id),
            now=now,
            ttl=c.ttl,
            roles=c.roles,
        )
        self._cache[bus_id] = (now, token)
        return token

    def authorization(self, bus_id: str) -> bytes:
        return b"Bearer " + self.token(bus_id).encode("ascii")

    def forget(self, keep: Optional[set] = None) -> None:
        """Drop cached tokens (of buses not in ``keep``): after a fleet
        reload removed buses."""
        if keep is None:
            self._cache.clear()
        else:
            for bus_id in [b for b in self._cache if b not in keep]:
                del self._cache[bus_id]
