"""The fleet poller: every bus polled on its own schedule on the role's
clock, into ``role.state`` (a :class:`~busd.central.fleet.FleetState`).

Schedule: each bus's first round starts at a uniform random offset in
``[0, interval]`` so a large fleet spreads out; after a round in which the
bus answered, its next one starts ``interval * (1 + uniform[-jitter/2,
jitter/2])`` after that round started (so each bus is polled every
``interval`` on average, and the rounds never lock into step); after ``n`` rounds in a row with no
answer, ``min(backoff_max, interval * 2**n)`` after. A due bus waits its
turn (first come, first served) while ``concurrency`` buses are being
polled, so a slow or dead bus delays nobody else's schedule beyond that
bound.

A round is ``GET`` of the health path and of each polled endpoint, all at
once, each bounded by ``timeout`` (connecting and reading the body) and
``max_bytes``, with the central's token for that bus when signing is on.
Nothing a round does can stop the loop: errors become the bus's
``last_error`` and are logged. :meth:`Poller.stop` cancels every request in
flight and every pending call.

Changes of a bus's state, level, failing checks or values are published
to ``role.hub`` as ``"bus"`` messages when a round ends, and by a sweep
(every second at most) for states that move on by time alone (a bus that
stopped answering, or hangs); state transitions are logged once each.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    TimeoutError,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from busd.central._answers import HEALTH, Answer, decode
from busd.central._gate import Gate
from busd.central.fleet import FleetState
from busd.config._central import BusEntry
from busd.pipeline.call import read_capped

__all__ = ["Poller", "Gate", "make_part", "SWEEP_MAX"]

_log = Logger()
#: The longest pause between two sweeps for time-driven state changes.
SWEEP_MAX = 1.0


def make_part(role: Any) -> "Poller":
    """The poller of ``role``; also sets ``role.state``."""
    return Poller(role)


class Poller:
    """The poller part of a :class:`~busd.central.role.CentralRole`."""

    def __init__(self, role: Any, rng: Optional[random.Random] = None):
        self.role = role
        self.state = FleetState(role.config, role.clock)
        role.state = self.state
        self._rng = rng or random.Random()
        #: busd.central.metrics.CentralMetrics, None when metrics are off.
        self._metrics = getattr(role, "metrics", None)
        self._clock = role.clock
        self._gate = Gate(role.config.poll.concurrency)
        self._calls: Dict[str, IDelayedCall] = {}
        self._rounds: Dict[str, Deferred[Any]] = {}
        self._sweep: Optional[IDelayedCall] = None
        self.running = False

    # -- the part ------------------------------------------------------

    def start(self) -> None:
        self.running = True
        for bus_id in self.state.ids():
            self._first(bus_id)
        self._schedule_sweep()

    def stop(self) -> None:
        self.running = False
        # Waiting buses first: cancelling a running round frees its slot.
        self._gate.clear()
        if self._sweep is not None and self._sweep.active():
            self._sweep.cancel()
        self._sweep = None
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if call.active():
                call.cancel()
        rounds, self._rounds = self._rounds, {}
        for d in rounds.values():
            d.cancel()

    def install(self, app: Any) -> None:
        pass  # the fleet routes are busd.central.routes

    def poll_load(self) -> Tuple[int, int]:
        """(rounds running, due buses waiting for a slot) now."""
        return self._gate.active, self._gate.waiting

    def fleet_changed(self) -> None:
        """Adopt ``role.config``: new buses get a first round, removed
        ones lose their pending call and the round in flight."""
        config = self.role.config
        self._gate.set_limit(config.poll.concurrency)
        added, removed = self.state.reconcile(config)
        for bus_id in removed:
            call = self._calls.pop(bus_id, None)
            if call is not None and call.active():
                call.cancel()
            d = self._rounds.pop(bus_id, None)
            if d is not None:
                d.cancel()
        if self.running:
            for bus_id in added:
                self._first(bus_id)

    # -- the schedule --------------------------------------------------

    def _first(self, bus_id: str) -> None:
        interval = self.role.config.poll.interval
        self._at(bus_id, self._rng.uniform(0.0, interval))

    def _at(self, bus_id: str, delay: float) -> None:
        self._calls[bus_id] = self._clock.callLater(delay, self._due, bus_id)

    def next_delay(self, failures: int) -> float:
        """How long after a round starts the next one does."""
        poll = self.role.config.poll
        if failures:
            # Capped exponent: 2.0**1024 raises OverflowError, and a bus
            # down for ~1,024 rounds (a weekend at 60 s) would never be
            # rescheduled.
            return min(poll.backoff_max, poll.interval * 2.0 ** min(failures, 64))
        half = poll.jitter / 2
        return poll.interval * (1.0 + self._rng.uniform(-half, half))

    def _due(self, bus_id: str) -> None:
        self._calls.pop(bus_id, None)
        started: List[float] = []
        due = self._clock.seconds()

        def run(_: Any) -> "Deferred[None]":
            if not self.running:
                # Admitted while stop() cancels the rounds: start nothing.
                self._gate.release()
                raise CancelledError()
            started.append(self._clock.seconds())
            if self._metrics is not None:
                self._metrics.poll_admitted(started[0] - due)
            d = maybeDeferred(self._round, bus_id)

            def release(result: Any) -> Any:
                self._gate.release()
                return result

            return d.addBoth(release)

        d = self._gate.acquire().addCallback(run)
        self._rounds[bus_id] = d
        d.addBoth(self._ended, bus_id, started)

    def _ended(self, result: Any, bus_id: str, started: List[float]) -> None:
        self._rounds.pop(bus_id, None)
        if isinstance(result, Failure):
            if result.check(CancelledError):
                return  # stopped, or the bus was removed
            _log.failure(
                "central: polling bus {bus_id} failed", result, bus_id=bus_id
            )
            self.state.record_error(bus_id, result.getErrorMessage())
        if not self.running or self.state.entry(bus_id) is None:
            return
        if self._metrics is not None and started:
            self._metrics.poll_round(
                self._clock.seconds() - started[0],
                self.state.failures(bus_id) == 0,
            )
        try:
            self._report(bus_id)
        except Exception:
            _log.failure(
                "central: publishing bus {bus_id} failed", bus_id=bus_id
            )
        begun = started[0] if started else self._clock.seconds()
        wait = begun + self.next_delay(self.state.failures(bus_id))
        self._at(bus_id, max(0.0, wait - self._clock.seconds()))

    # -- one round -----------------------------------------------------

    def _round(self, bus_id: str) -> "Deferred[None]":
        entry = self.state.entry(bus_id)
        if entry is None:
            return succeed(None)
        poll = self.role.config.poll
        headers = Headers({b"Accept": [b"application/json"]})
        if self.role.tokens is not None:
            headers.setRawHeaders(
                b"Authorization", [self.role.tokens.authorization(bus_id)]
            )
        names = [e.name for e in poll.endpoints]
        paths = [e.path for e in poll.endpoints]
        if poll.health:
            names.insert(0, HEALTH)
            paths.insert(0, poll.health)
        started = self._clock.seconds()
        gets = [
            self._get(entry, path, headers, i == 0 and bool(poll.health))
            for i, path in enumerate(paths)
        ]

        def done(outcomes: List[Any]) -> None:
            if not self.running:
                raise CancelledError()  # stop() cancelled the requests
            answers: Dict[str, Answer] = {
                n: a for n, (_, a) in zip(names, outcomes)
            }
            health = answers.pop(HEALTH) if poll.health else None
            finished = self._clock.seconds()
            self.state.record(bus_id, started, finished, health, answers)

        return DeferredList(gets, consumeErrors=True).addCallback(done)

    def _get(
        self, entry: BusEntry, path: str, headers: Headers, health: bool
    ) -> "Deferred[Answer]":
        """One GET as an :class:`Answer`; only a cancellation fails it."""
        poll = self.role.config.poll
        d = self.role.client.request(
            "GET", entry.url + path, headers=headers, unbuffered=True
        )

        def answered(response: Any) -> "Deferred[Answer]":
            body = read_capped(response, poll.max_bytes)
            return body.addCallback(decode, response.code, health)

        d.addCallback(answered)
        d.addTimeout(poll.timeout, self._clock)

        def failed(failure: Failure) -> Any:
            if failure.check(CancelledError) and not self.running:
                return failure
            if failure.check(TimeoutError):
                return Answer(error=f"no answer within {poll.timeout:g}s")
            reason = failure.getErrorMessage() or type(failure.value).__name__
            return Answer(error=reason)

        return d.addErrback(failed)

    # -- changes -------------------------------------------------------

    def _report(self, bus_id: str) -> None:
        change = self.state.take_change(bus_id)
        if change is not None:
            self._publish(*change)

    def _publish(self, before: Optional[str], summary: Dict[str, Any]) -> None:
        if summary["state"] != (before or "unknown"):
            _log.info(
                "central: bus {bus_id} {old} -> {new}",
                bus_id=summary["id"],
                old=before or "unknown",
                new=summary["state"],
            )
        hub = self.role.hub
        if hub is not None:
            hub.publish("bus", summary)

    def _schedule_sweep(self) -> None:
        poll = self.role.config.poll
        every = min(SWEEP_MAX, max(0.01, poll.stale_after / 5.0))
        self._sweep = self._clock.callLater(every, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        try:
            for change in self.state.take_changes():
                self._publish(*change)
        except Exception:
            _log.failure("central: the state sweep failed")
        if self.running:
            self._schedule_sweep()
