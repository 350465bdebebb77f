"""Fetching ``jwk_url`` with the gateway's own HTTP client.

Never blocking the reactor (``jwt.PyJWKClient`` would: it uses urllib),
never hammering the key server (one fetch at a time, spaced by a
cooldown), and never letting a failed fetch stop the gateway.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from busd.auth.keys import (
    JWKS_MAX_BYTES,
    JWKSError,
    Key,
    KeySet,
    KeyUnavailable,
    parse_jwks,
)

__all__ = ["RemoteKeys", "JWKS_TIMEOUT"]

_log = Logger()
#: A fetch that takes longer fails (and is retried after the cooldown).
JWKS_TIMEOUT = 10.0


class RemoteKeys:
    """The JWK set at ``url``, fetched on first use and refreshed in the
    background once ``cache_duration`` seconds old.

    A token whose ``kid`` is unknown triggers one refetch (a rotated key),
    at most once per ``cooldown`` seconds, so random kids cannot make the
    gateway hammer the key server; a failed fetch is retried no sooner
    either. A failure is logged once, keeps the last good keys (a bus on a
    flaky link goes on accepting the central's known key), and with no
    keys at all the tokens are refused (401) until a fetch succeeds.
    Concurrent lookups share one fetch.
    """

    def __init__(
        self,
        url: str,
        alg: str,
        client: Any,
        clock: IReactorTime,
        *,
        cache_duration: float,
        cooldown: float,
        timeout: float = JWKS_TIMEOUT,
    ):
        self.url = url
        self._alg = alg
        self._client = client
        self._clock = clock
        self._cache_duration = cache_duration
        self._cooldown = cooldown
        self._timeout = timeout
        self._keys: Optional[KeySet] = None
        self._loaded_at = 0.0
        self._tried_at: Optional[float] = None
        self._error = "not loaded yet"
        self._waiters: List[Tuple[Optional[str], Deferred[Key]]] = []
        self._fetching = False

    def lookup(self, kid: Optional[str]) -> "Deferred[Key]":
        """The key for ``kid``, fetching the set when needed."""
        now = self._clock.seconds()
        key = self._keys.find(kid) if self._keys is not None else None
        if key is not None:
            stale = now - self._loaded_at >= self._cache_duration
            if stale and not self._fetching and self._may_fetch(now):
                # Refreshed in the background: this request goes on with
                # the key at hand instead of waiting on a 4G round trip.
                self._start(now)
            return succeed(key)
        if self._fetching or self._may_fetch(now):
            waiter: Deferred[Key] = Deferred()
            self._waiters.append((kid, waiter))
            if not self._fetching:
                self._start(now)
            return waiter
        return self._answer(kid)

    def _may_fetch(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self._cooldown

    def _answer(self, kid: Optional[str]) -> "Deferred[Key]":
        """What the keys at hand say about ``kid``, without fetching."""
        if self._keys is None:
            return fail(KeyUnavailable(f"JWK set unavailable: {self._error}"))
        key = self._keys.find(kid)
        if key is None:
            return fail(KeyUnavailable(f"unknown kid {kid!r}"))
        return succeed(key)

    def _start(self, now: float) -> None:
        self._tried_at = now
        self._fetching = True
        # maybeDeferred: a client raising at once must still wake waiters.
        d: Deferred[Any] = maybeDeferred(
            self._client.request,
            "GET",
            self.url,
            headers={b"Accept": [b"application/json"]},
        )
        d.addCallback(self._read)
        d.addTimeout(self._timeout, self._clock, onTimeoutCancel=_timed_out)
        d.addCallbacks(self._loaded, self._failed)
        d.addBoth(self._wake)

    def _read(self, response: Any) -> "Deferred[KeySet]":
        from busd.pipeline.call import read_capped

        def check(body: bytes) -> KeySet:
            if response.code != 200:
                raise JWKSError(f"HTTP status {response.code}")
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                raise JWKSError("the answer is not JSON") from None
            return parse_jwks(data, self._alg)

        return read_capped(response, JWKS_MAX_BYTES).addCallback(check)

    def _loaded(self, keys: KeySet) -> None:
        changed = keys != self._keys
        self._keys = keys
        self._loaded_at = self._clock.seconds()
        if changed:
            _log.info(
                "JWK set {url}: {count} key(s) for {alg}",
                url=self.url,
                count=len(keys.keys),
                alg=self._alg,
            )

    def _failed(self, failure: Failure) -> None:
        self._error = _describe(failure)
        kept = "keeping the last keys" if self._keys else "tokens are refused"
        _log.warn(
            "JWK set {url} could not be loaded: {reason}; {kept}, next try"
            " in {cooldown}s at the earliest",
            url=self.url,
            reason=self._error,
            kept=kept,
            cooldown=self._cooldown,
        )

    def _wake(self, _: object) -> None:
        self._fetching = False
        waiters, self._waiters = self._waiters, []
        for kid, waiter in waiters:
            if not waiter.called:  # a cancelled request's waiter has fired
                self._answer(kid).chainDeferred(waiter)


def _timed_out(result: object, timeout: float) -> Failure:
    """What a fetch cancelled by its timeout fails with (treq wraps the
    cancellation in ResponseNeverReceived, which would read badly)."""
    return Failure(JWKSError(f"timed out after {timeout:g}s"))


def _describe(failure: Failure) -> str:
    """A one-line reason for a failed fetch (no traceback, no key)."""
    err = failure.value
    if isinstance(err, JWKSError):
        return str(err)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
