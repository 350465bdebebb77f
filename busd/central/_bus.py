"""One bus's record in the fleet cache (:mod:`busd.central.fleet`): what
the poller learnt of it, and its summary but for the time-dependent parts.

A record is changed only through :meth:`BusRecord.record` (one round's
answers) and :meth:`BusRecord.record_error` (a round that could not run);
:meth:`BusRecord.refresh` rebuilds its summary afterwards.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from busd.bus.event import rfc3339
from busd.central._answers import HEALTH, Answer, Fetch, pick, read_health
from busd.config._central import BusEntry, PollConfig

__all__ = ["BusRecord", "Summary"]

Summary = Dict[str, Any]


class BusRecord:
    """One bus's record; ``static`` is its summary but for the parts that
    depend on the time (``state``, ``age_s``)."""

    def __init__(self, entry: BusEntry):
        self.entry = entry
        self.data: Dict[str, Fetch] = {}
        self.errors: Dict[str, str] = {}
        self.health: Optional[Fetch] = None
        self.level = "unknown"
        self.failing: List[Dict[str, Any]] = []
        self.values: Dict[str, Any] = {}
        self.last_error: Optional[str] = None
        self.latency_ms: Optional[float] = None
        self.last_seen: Optional[float] = None
        self.failures = 0
        self.polled = False
        #: What was last reported by take_change (None: never).
        self.published: Optional[Tuple[Any, ...]] = None
        self.static: Summary = {}
        self._judged: Optional[Tuple[Any, ...]] = None
        self.refresh()

    def refresh(self) -> bool:
        """Rebuild ``static``; True when the level, failing checks or
        polled-ness changed (what ``/fleet/health``'s cache must see at
        once)."""
        judged = (self.polled, self.level, self.failing)
        changed = judged != self._judged
        self._judged = judged
        seen = self.last_seen
        self.static = {
            "id": self.entry.id,
            "labels": dict(self.entry.labels),
            "state": "unknown",
            "level": self.level,
            "failing": self.failing,
            "last_seen": None if seen is None else rfc3339(seen),
            "age_s": None,
            "latency_ms": self.latency_ms,
            "last_error": self.last_error,
            "values": self.values,
        }
        return changed

    # -- what the poller learnt ----------------------------------------

    def record(
        self,
        started: float,
        finished: float,
        health: Optional[Answer],
        answers: Mapping[str, Answer],
    ) -> None:
        """Keep one round's outcome (see ``FleetState.record``); the
        caller then updates ``values`` and calls :meth:`refresh`."""
        self.polled = True
        seen = False
        errors: List[str] = []
        if health is not None:
            judged = read_health(health.data) if health.error is None else None
            if judged is not None and health.status is not None:
                seen = True
                self.health = Fetch(health.data, finished, health.status)
                self.level, self.failing = judged
                self.errors.pop(HEALTH, None)
            else:
                error = health.error or "not a health answer"
                self.errors[HEALTH] = error
                errors.append(f"{HEALTH}: {error}")
        for name, answer in answers.items():
            if answer.error is None and answer.status is not None:
                seen = True
                self.data[name] = Fetch(answer.data, finished, answer.status)
                self.errors.pop(name, None)
            else:
                self.errors[name] = answer.error or "no answer"
                errors.append(f"{name}: {self.errors[name]}")
        if seen:
            self.last_seen = finished
            self.failures = 0
            self.latency_ms = round((finished - started) * 1000.0, 1)
            if health is None:
                self.level, self.failing = "ok", []
            elif HEALTH in self.errors:
                self.level, self.failing = "unknown", []
        else:
            self.failures += 1
        self.last_error = "; ".join(errors) or None

    def record_error(self, error: str) -> None:
        """A round that could not run at all: a round with no answer."""
        self.polled = True
        self.failures += 1
        self.last_error = error

    def pick_values(self, poll: PollConfig) -> Dict[str, Any]:
        """The key values ``poll.values`` names, from the last answers."""
        out: Dict[str, Any] = {}
        for label, path in poll.values:
            name, *rest = path.split(".")
            got = self.health if name == HEALTH else self.data.get(name)
            out[label] = None if got is None else pick(got.data, rest)
        return out

    # -- reading -------------------------------------------------------

    def state(self, now: float, poll: PollConfig) -> str:
        """``unknown``, ``online``, ``stale`` or ``offline`` at ``now``."""
        if not self.polled:
            return "unknown"
        if self.last_seen is None:
            return "offline"
        age = now - self.last_seen
        if age < poll.stale_after:
            return "online"
        return "stale" if age < poll.offline_after else "offline"

    def summary(self, now: float, poll: PollConfig) -> Summary:
        """The bus summary (the shared contract) at ``now``."""
        out = dict(self.static)
        out["state"] = self.state(now, poll)
        if self.last_seen is not None:
            out["age_s"] = round(now - self.last_seen, 3)
        return out

    def fetched(self, name: str, now: float) -> Dict[str, Any]:
        """Endpoint ``name``'s last data, when and its status, or its
        error (``/fleet/buses/{id}``)."""
        got = self.data.get(name)
        return {
            "data": None if got is None else got.data,
            "fetched_at": None if got is None else rfc3339(got.fetched_at),
            "age_s": None if got is None else round(now - got.fetched_at, 3),
            "status": None if got is None else got.status,
            "error": self.errors.get(name),
        }
