"""Webhooks: each stored event that matches one is POSTed to its URL.

When an event is stored, a *delivery* row per matching webhook is written
in the same transaction (:mod:`busd.central._eventdb`), so a restart
resumes every delivery not yet done. Each webhook has one
:class:`_Courier` delivering its rows one at a time, oldest event first
(a receiver sees them in the central's order): ``POST url`` with the
event JSON, ``Content-Type: application/json``, ``Idempotency-Key:
<bus>:<id>`` and the configured headers, bounded by ``timeout``.

A 2xx answer ends the delivery. Anything else (another status, no
answer, a timeout) is retried after a capped exponential backoff with
full jitter, ``uniform(0, min(retry_max, retry_initial * 2**(n-1)))``
after the n-th failure, until ``give_up_after`` seconds after the event
arrived: then the delivery is dropped and logged as an error. Webhooks
are identified by their URL (a reload keeps the pending deliveries of a
URL still configured).

:attr:`Webhooks.pending` (the ``busgw_central_webhook_pending`` gauge):
the stored deliveries to the *configured* URLs, the ones that will be
tried (a removed URL's rows stay, and count again if it comes back). Kept
in memory per URL from what the store reports as its calls commit, so a
scrape never queries the database.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from busd.central._eventdb import Row, event_json
from busd.central.events_schema import SEVERITY_RANK, IncomingEvent
from busd.central.events_store import EventStore
from busd.config._central import WebhookConfig
from busd.pipeline.call import read_capped

__all__ = ["Webhooks", "matches"]

_log = Logger()
_ANSWER_BYTES = 512


def matches(hook: WebhookConfig, event: IncomingEvent) -> bool:
    """Whether ``event`` goes to ``hook`` (its kinds, its least severity)."""
    if hook.kinds and event.kind not in hook.kinds:
        return False
    least = SEVERITY_RANK.get(hook.min_severity, 0)
    return SEVERITY_RANK[event.severity] >= least


class Webhooks:
    """Every configured webhook's courier. ``client`` is called for the
    HTTP client at each request (the role builds it at start)."""

    def __init__(
        self,
        store: EventStore,
        client: Callable[[], Any],
        clock: IReactorTime,
        rng: Optional[random.Random] = None,
        metrics: Any = None,
    ):
        self._store = store
        #: busd.central.metrics.CentralMetrics (None: nothing counted).
        self.metrics = metrics
        #: The deliveries in the store per URL, configured or not (see
        #: the module docstring), as the store reports them.
        self._rows: Dict[str, int] = {}
        self._client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self._couriers: Dict[str, _Courier] = {}
        self._configs: Sequence[WebhookConfig] = ()
        self._running = False

    def configure(self, configs: Sequence[WebhookConfig]) -> None:
        """Take the webhooks of a (re)loaded config."""
        self._configs = tuple(configs)
        wanted = {c.url: c for c in self._configs}
        for url in [u for u in self._couriers if u not in wanted]:
            self._couriers.pop(url).stop()
        for url, config in wanted.items():
            courier = self._couriers.get(url)
            if courier is None:
                courier = self._couriers[url] = _Courier(self, config)
                if self._running:
                    courier.wake()
            courier.config = config

    @property
    def pending(self) -> int:
        """Deliveries to the configured webhooks not yet done."""
        return sum(self._rows.get(url, 0) for url in self._couriers)

    def counted(self, pending: Mapping[str, int]) -> None:
        """The store opened with ``pending`` deliveries per URL."""
        self._rows = {url: n for url, n in pending.items() if n}

    def changed(self, delta: Mapping[str, int]) -> None:
        """A commit added (> 0) or removed (< 0) deliveries per URL."""
        for url, n in delta.items():
            left = self._rows.get(url, 0) + n
            if left > 0:
                self._rows[url] = left
            else:
                self._rows.pop(url, None)

    def hooks_for(self, event: IncomingEvent) -> List[str]:
        """The webhook URLs ``event`` must be delivered to."""
        return [c.url for c in self._configs if matches(c, event)]

    def start(self) -> None:
        self._running = True
        self.wake()

    def wake(self) -> None:
        """New deliveries are stored: idle couriers look for them."""
        if self._running:
            for courier in self._couriers.values():
                courier.wake()

    def ended(self, result: str) -> None:
        """One delivery attempt's ``result`` (delivered, retried, gave_up);
        the pending count follows the store's finish, not this."""
        if self.metrics is not None:
            self.metrics.webhook(result)

    def stop(self) -> None:
        """Cancel every request in flight and every retry timer."""
        self._running = False
        for courier in self._couriers.values():
            courier.stop()


class _Courier:
    """One webhook's deliveries, one at a time, in event order."""

    def __init__(self, hooks: Webhooks, config: WebhookConfig):
        self.hooks = hooks
        self.config = config
        self.url = config.url
        self._busy = False
        self._dirty = False
        self._stopped = False
        self._timer: Optional[IDelayedCall] = None
        self._work: Optional[Deferred[Optional[float]]] = None
        #: Steps in a row that failed (the store could not be read or
        #: written): each waits twice as long, up to retry_max.
        self._crashes = 0

    def wake(self) -> None:
        if self._stopped:
            return
        if self._busy:
            self._dirty = True  # look again when this step ends
        elif self._timer is None:
            self._step()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._work is not None:
            self._work.cancel()

    def _step(self) -> None:
        self._timer = None
        if self._stopped:
            return
        self._busy = True
        self._dirty = False
        d = self._work = ensureDeferred(self._one())
        d.addCallbacks(self._done, self._crashed)

    def _done(self, wait: Optional[float]) -> None:
        self._busy = False
        self._work = None
        self._crashes = 0
        if self._stopped:
            return
        if wait is not None:
            self._later(wait)
        elif self._dirty:
            self._step()

    def _crashed(self, failure: Failure) -> None:
        self._busy = False
        self._work = None
        if self._stopped:
            return  # stop() cancelled the step
        _log.failure("webhook {url}: delivery step failed", failure, url=self.url)
        # Backed off: an attempt that could not be recorded (a full disk)
        # is made again, and a fixed pause would POST it every second.
        self._crashes += 1
        first = max(1.0, self.config.retry_initial)
        self._later(_backoff(first, max(first, self.config.retry_max), self._crashes))

    def _later(self, wait: float) -> None:
        self._timer = self.hooks._clock.callLater(max(0.0, wait), self._step)

    async def _one(self) -> Optional[float]:
        """Deliver the next pending event: None when there was none or it
        is done (look again), else the seconds to wait before the next."""
        store, clock = self.hooks._store, self.hooks._clock
        row = await store.next_delivery(self.url)
        if row is None:
            return None
        wait = row["due"] - clock.seconds()
        if wait > 0:
            return wait
        error = await self._post(row)
        if error is None:
            await store.finish(self.url, row["seq"])
            self.hooks.ended("delivered")
            self._dirty = True  # the next row, if any
            return None
        attempts = row["attempts"] + 1
        now = clock.seconds()
        deadline = row["created"] + self.config.give_up_after
        if now >= deadline:
            _log.error(
                "webhook {url}: gave up on event {bus_id}:{event_id} after"
                " {attempts} attempts: {reason}",
                url=self.url,
                bus_id=row["bus"],
                event_id=row["id"],
                attempts=attempts,
                reason=error,
            )
            await store.finish(self.url, row["seq"])
            self.hooks.ended("gave_up")
            self._dirty = True
            return None
        cap = _backoff(self.config.retry_initial, self.config.retry_max, attempts)
        due = min(now + self.hooks._rng.uniform(0, cap), deadline)
        if attempts == 1:
            _log.warn(
                "webhook {url}: event {bus_id}:{event_id} not delivered,"
                " retrying: {reason}",
                url=self.url,
                bus_id=row["bus"],
                event_id=row["id"],
                reason=error,
            )
        await store.retry(self.url, row["seq"], attempts, due, error)
        self.hooks.ended("retried")
        return due - now

    async def _post(self, row: Row) -> Optional[str]:
        """POST the event once: None for a 2xx, else why it failed."""
        body = json.dumps(event_json(row), separators=(",", ":")).encode()
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"Idempotency-Key": [f"{row['bus']}:{row['id']}".encode()],
            }
        )
        for name, value in self.config.headers:
            headers.setRawHeaders(name.encode("latin-1"), [value.encode("latin-1")])
        clock = self.hooks._clock
        d = self.hooks._client().request("POST", self.url, headers=headers, data=body)
        d.addTimeout(self.config.timeout, clock)
        try:
            response = await d
        except Exception as exc:
            if self._stopped:
                raise
            return _describe(exc)
        try:
            # Read (a little of) the answer so the connection can be reused,
            # bounded in time: a receiver that stalls must not hold us.
            answer = read_capped(response, _ANSWER_BYTES)
            answer.addTimeout(self.config.timeout, clock)
            await answer
        except Exception:
            if self._stopped:
                raise
        if 200 <= response.code < 300:
            return None
        return f"HTTP {response.code}"


def _backoff(first: float, most: float, tries: int) -> float:
    """``first`` doubled per try after the first, at most ``most``."""
    return min(most, first * 2 ** min(tries - 1, 62))


def _describe(exc: Exception) -> str:
    reasons = getattr(exc, "reasons", None)
    if reasons:
        exc = reasons[0].value
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
