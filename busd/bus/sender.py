"""Delivery of the outbox to the central, in order, at least once.

The sender reads pending events in the order they were stored (a small
batch at a time) and posts each to ``POST {central}/events`` with
``Idempotency-Key: <event id>`` and ``Authorization: Bearer <JWT>``, a
short-lived token signed with the bus's own key (``iss``/``sub``: the bus
id), one request at a time, so the central receives them in order. What
the answer means:

* 2xx, and 409 (the central already holds that key): delivered.
* 400, 413, 422 (the central says the event itself is bad): rejected; kept
  in the outbox with the reason (``busgw outbox --all``) and never retried,
  so one bad event cannot block the ones behind it.
* anything else (no connection, timeout, 401/403, 429, 5xx): retried, the
  same event first, after a capped exponential backoff with full jitter
  (``uniform(0, min(retry_max, retry_initial * 2**n))``).

Marks are written once per batch: a crash can resend up to one batch,
which the central drops by idempotency key. Nothing stops the loop: a
failed round is logged and retried (STYLE.md pitfall 11); ``stop`` cancels
the request in flight and the pending retry.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, List, Optional, Protocol, Sequence, Tuple

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from busd.auth.sign import PrivateKey, make_token
from busd.bus.event import event_json
from busd.bus.outbox import OutboxUnavailable
from busd.bus.store import Row, StoreUnavailable
from busd.errors import BodyTooLarge
from busd.pipeline.call import read_capped
from busd.pipeline.types import HTTPClient

__all__ = ["Sender", "TokenSource", "REJECTED_STATUSES"]

_log = Logger()
#: Statuses meaning "this event is bad"; retrying would never help.
REJECTED_STATUSES = frozenset({400, 413, 422})
_BATCH = 50
_REASON_BYTES = 512
_MORE, _IDLE, _RETRY = "more", "idle", "retry"


class _Outbox(Protocol):
    bus_id: str

    def pending(self, limit: int) -> "Deferred[List[Row]]": ...

    def mark(
        self, delivered: Sequence[str], rejected: Sequence[Tuple[str, str]]
    ) -> "Deferred[None]": ...

    def note_failure(self, event_id: str, reason: str) -> "Deferred[None]": ...


class _Transient(Exception):
    """This attempt failed; the event must be tried again later."""


class TokenSource:
    """The bus's short-lived token for the central, re-signed when half
    its life is gone (or the clock jumped back, as a Pi's may at boot)."""

    def __init__(
        self,
        key: PrivateKey,
        kid: str,
        bus_id: str,
        audience: str,
        ttl: float,
        clock: IReactorTime,
    ):
        self._key = key
        self._kid = kid
        self._bus_id = bus_id
        self._audience = audience
        self._ttl = ttl
        self._clock = clock
        self._token = ""
        self._issued = 0.0

    def token(self) -> str:
        now = self._clock.seconds()
        if not self._token or not (
            self._issued <= now < self._issued + self._ttl / 2
        ):
            self._token = make_token(
                self._key,
                self._kid,
                issuer=self._bus_id,
                subject=self._bus_id,
                audience=self._audience,
                now=now,
                ttl=self._ttl,
            )
            self._issued = now
        return self._token


class Sender:
    """Posts the outbox's pending events to ``url``; see the module
    docstring. :meth:`wake` after new events; :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        outbox: _Outbox,
        client: HTTPClient,
        clock: IReactorTime,
        tokens: TokenSource,
        *,
        url: str,
        timeout: float = 10.0,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        rng: Optional[random.Random] = None,
        batch: int = _BATCH,
        on_date: Optional[Callable[[Optional[str]], Any]] = None,
    ):
        self._outbox = outbox
        self._client = client
        self._clock = clock
        self._tokens = tokens
        self._url = url
        self._timeout = timeout
        self._initial = retry_initial
        self._max = retry_max
        self._rng = rng or random.Random()
        self._batch = batch
        self._on_date = on_date
        self._running = False
        self._busy = False
        self._dirty = False
        self._timer: Optional[IDelayedCall] = None
        self._round: Optional[Deferred[str]] = None
        #: Consecutive failed rounds (the backoff exponent).
        self.failures = 0
        self._down_since: Optional[float] = None

    def start(self) -> None:
        self._running = True
        self._pump()

    def stop(self) -> None:
        """Stop: cancel the retry timer and the request in flight."""
        self._running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._round is not None:
            self._round.cancel()

    def wake(self) -> None:
        """New events were stored: send them unless a retry is scheduled
        (the backoff is kept while the central is unreachable)."""
        self._dirty = True
        if self._running and not self._busy and self._timer is None:
            self._pump()

    # -- the loop ----------------------------------------------------------

    def _pump(self) -> None:
        self._timer = None
        if not self._running or self._busy:
            return
        self._busy = True
        self._dirty = False
        d = self._round = ensureDeferred(self._one_round())
        d.addCallbacks(self._done, self._crashed)

    def _done(self, outcome: str) -> None:
        self._busy = False
        self._round = None
        if not self._running:
            return
        if outcome == _RETRY:
            self._retry_later()
        elif outcome == _MORE or self._dirty:
            self._pump()

    def _crashed(self, failure: Failure) -> None:
        self._busy = False
        self._round = None
        if not self._running:
            return  # stopped: the cancellation ends here
        # A storage fault is logged by the outbox itself.
        if not failure.check(OutboxUnavailable, StoreUnavailable):
            _log.failure("event sender: round failed, retrying", failure)
        self._retry_later()

    def _retry_later(self) -> None:
        self.failures += 1
        cap = min(self._max, self._initial * 2 ** min(self.failures - 1, 62))
        self._timer = self._clock.callLater(
            self._rng.uniform(0, cap), self._pump
        )

    async def _one_round(self) -> str:
        events = await self._outbox.pending(self._batch)
        if not events:
            return _IDLE
        delivered: List[str] = []
        rejected: List[Tuple[str, str]] = []
        for row in events:
            try:
                reason = await self._deliver(row)
            except _Transient as exc:
                await self._outbox.mark(delivered, rejected)
                await self._outbox.note_failure(row["id"], str(exc))
                self._link_down(str(exc))
                return _RETRY
            if reason is None:
                delivered.append(row["id"])
            else:
                _log.warn(
                    "central rejected event {event_id} ({kind}): {reason}",
                    event_id=row["id"],
                    kind=row["kind"],
                    reason=reason,
                )
                rejected.append((row["id"], reason))
            self._link_up()
        await self._outbox.mark(delivered, rejected)
        return _MORE

    async def _deliver(self, row: Row) -> Optional[str]:
        """Post one event: None when delivered, the reason when rejected;
        raises :class:`_Transient` when it must be tried again."""
        body = json.dumps(
            event_json(row, self._outbox.bus_id), separators=(",", ":")
        ).encode("utf-8")
        # Bytes names: Twisted caches str and bytes names in one dict.
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"Idempotency-Key": [row["id"].encode("ascii")],
                b"Authorization": [
                    b"Bearer " + self._tokens.token().encode("ascii")
                ],
            }
        )
        d = self._client.request("POST", self._url, headers=headers, data=body)
        d.addTimeout(self._timeout, self._clock)
        try:
            response = await d
        except Exception as exc:
            if not self._running:
                # stop() cancelled the round (the connect attempt may say
                # so as ConnectingCancelledError).
                raise CancelledError() from None
            raise _Transient(_describe(exc)) from None
        status = response.code
        if self._on_date is not None:
            # The central's Date header: the health role's clock check
            # compares it with ours (Pis have no real-time clock).
            date = response.headers.getRawHeaders(b"date", [None])[0]
            self._on_date(date.decode("latin-1") if date else None)
        try:
            # The body is bounded in time too: a central that sends headers
            # and then stalls must not stop delivery for good.
            body_d = read_capped(response, _REASON_BYTES)
            body_d.addTimeout(self._timeout, self._clock)
            answer = await body_d
        except BodyTooLarge:
            answer = b""
        except Exception as exc:
            if 200 <= status < 300:
                # The central took it (a 2xx was sent); the body is moot.
                return None
            raise _Transient(_describe(exc)) from None
        if 200 <= status < 300 or status == 409:
            return None
        text = answer.decode("utf-8", "replace").strip()
        if status in REJECTED_STATUSES:
            return f"HTTP {status}: {text}" if text else f"HTTP {status}"
        raise _Transient(f"HTTP {status}" + (f": {text[:200]}" if text else ""))

    def _link_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = self._clock.seconds()
            _log.warn(
                "central unreachable, events wait in the outbox: {reason}",
                reason=reason,
            )

    def _link_up(self) -> None:
        self.failures = 0
        if self._down_since is not None:
            _log.info(
                "central reachable again after {seconds:.0f}s",
                seconds=self._clock.seconds() - self._down_since,
            )
            self._down_since = None


def _describe(exc: Exception) -> str:
    """A short reason for a failed request (treq wraps the real one)."""
    reasons = getattr(exc, "reasons", None)
    if reasons:
        exc = reasons[0].value
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__
