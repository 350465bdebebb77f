"""The fleet in memory: what the poller learnt of each bus, and the
summaries every fleet endpoint, the stream and the dashboard answer from.

Per bus: the last good data of each polled endpoint (with when it was
fetched and its HTTP status), the bus's health level and failing checks
read from its ``/health`` answer, key values, the last error, the latency
of the last answered round, when it was last seen (its last round with at
least one valid answer) and how many rounds in a row got none.

The state is computed from the clock when read, so it moves on by time
alone: ``unknown`` until the first round ends, ``online`` while the bus
was seen less than ``poll.stale_after`` ago, ``stale`` until
``poll.offline_after``, then ``offline`` (also a bus polled but never
seen). Everything else a summary holds is built once per round, so
``fleet_health()`` for 1,000 buses is one pass over prepared dicts.

Summaries share their lists and dicts with this cache: read-only. Each
bus's record and how a round changes it: :mod:`busd.central._bus`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from twisted.internet.interfaces import IReactorTime

from busd.bus.event import rfc3339
from busd.central._answers import HEALTH, LEVELS, Answer
from busd.central._bus import BusRecord, Summary
from busd.config._central import BusEntry, CentralRoleConfig

__all__ = ["STATES", "LEVELS", "HEALTH", "Answer", "FleetState"]

STATES = ("online", "stale", "offline", "unknown")


class FleetState:
    """The fleet of ``config`` (see :meth:`reconcile`), on ``clock``."""

    def __init__(self, config: CentralRoleConfig, clock: IReactorTime):
        self._clock = clock
        self._config = config
        self._buses: Dict[str, BusRecord] = {}
        self._order: List[BusRecord] = []
        #: Bumped when a bus's level or failing checks change, or the
        #: fleet does (see :meth:`health_key`).
        self.version = 0
        self.reconcile(config)

    # -- the fleet -----------------------------------------------------

    def reconcile(
        self, config: CentralRoleConfig
    ) -> Tuple[List[str], List[str]]:
        """Adopt a reloaded config: buses it drops are forgotten, new ones
        start ``unknown``, kept ones keep their history (even if their url
        changed). Returns the (added, removed) ids."""
        self._config = config
        wanted = {b.id: b for b in config.fleet}
        removed = [i for i in self._buses if i not in wanted]
        added = [i for i in wanted if i not in self._buses]
        for bus_id in removed:
            del self._buses[bus_id]
        for bus_id, entry in wanted.items():
            bus = self._buses.get(bus_id)
            if bus is None:
                self._buses[bus_id] = BusRecord(entry)
            else:
                bus.entry = entry
                bus.values = bus.pick_values(config.poll)  # may differ
                bus.refresh()
        self._order = [self._buses[i] for i in sorted(self._buses)]
        self.version += 1
        return added, removed

    def entry(self, bus_id: str) -> Optional[BusEntry]:
        bus = self._buses.get(bus_id)
        return None if bus is None else bus.entry

    def ids(self) -> List[str]:
        """Every bus id, sorted."""
        return [b.entry.id for b in self._order]

    def failures(self, bus_id: str) -> int:
        """Rounds in a row in which the bus gave no valid answer."""
        bus = self._buses.get(bus_id)
        return 0 if bus is None else bus.failures

    # -- what the poller learnt ----------------------------------------

    def record(
        self,
        bus_id: str,
        started: float,
        finished: float,
        health: Optional[Answer],
        answers: Mapping[str, Answer],
    ) -> None:
        """Keep one round's outcome: ``health`` (None when no health path
        is polled) and each polled endpoint's answer by name. A bus that
        answered anything is seen; its level is its health's (``unknown``
        when only its health failed; ``ok`` when no health is polled). A
        bus that answered nothing keeps its last level."""
        bus = self._buses.get(bus_id)
        if bus is None:
            return  # removed by a reload while its round ran
        bus.record(started, finished, health, answers)
        bus.values = bus.pick_values(self._config.poll)
        if bus.refresh():
            self.version += 1

    def record_error(self, bus_id: str, error: str) -> None:
        """A round that could not run at all (a bug, a token that could
        not be signed): counts as a round with no answer."""
        bus = self._buses.get(bus_id)
        if bus is None:
            return
        bus.record_error(error)
        if bus.refresh():
            self.version += 1

    # -- reading -------------------------------------------------------

    def _state(self, bus: BusRecord, now: float) -> str:
        return bus.state(now, self._config.poll)

    def _summary(self, bus: BusRecord, now: float) -> Summary:
        return bus.summary(now, self._config.poll)

    def state(self, bus_id: str) -> Optional[str]:
        """The bus's state now (None for an unknown id)."""
        bus = self._buses.get(bus_id)
        return None if bus is None else self._state(bus, self._clock.seconds())

    def summary(self, bus_id: str) -> Optional[Summary]:
        """The bus summary (the shared contract), None for an unknown id."""
        bus = self._buses.get(bus_id)
        return (
            None if bus is None else self._summary(bus, self._clock.seconds())
        )

    def summaries(self) -> List[Summary]:
        """Every bus's summary, sorted by id."""
        now = self._clock.seconds()
        return [self._summary(bus, now) for bus in self._order]

    def counts(self) -> Tuple[Dict[str, int], Dict[str, int]]:
        """Buses per state now and per level, as :meth:`fleet_health`
        counts them, without building summaries (metrics scrapes)."""
        now = self._clock.seconds()
        states = dict.fromkeys(STATES, 0)
        levels = dict.fromkeys(LEVELS, 0)
        for bus in self._order:
            states[self._state(bus, now)] += 1
            levels[bus.level if bus.level in levels else "unknown"] += 1
        return states, levels

    def health_key(self) -> Tuple[int, Tuple[str, ...]]:
        """Changes whenever :meth:`fleet_health`'s counts or status could:
        a bus's state, level or failing checks, or the fleet itself (its
        values and ages change with every poll and are not part of it)."""
        now = self._clock.seconds()
        return self.version, tuple(self._state(b, now) for b in self._order)

    def fleet_health(self) -> Dict[str, Any]:
        """The ``/fleet/health`` body: overall ``status`` (``critical`` if
        a bus is critical or offline, ``degraded`` if one is degraded,
        starting, of unknown level, stale or not yet polled, else ``ok``),
        counts per state and per level, and every summary."""
        now = self._clock.seconds()
        states = dict.fromkeys(STATES, 0)
        levels = dict.fromkeys(LEVELS, 0)
        summaries = []
        for bus in self._order:
            summary = self._summary(bus, now)
            states[summary["state"]] += 1
            levels[bus.level if bus.level in levels else "unknown"] += 1
            summaries.append(summary)
        if states["offline"] or levels["critical"]:
            status = "critical"
        elif (
            states["stale"]
            or states["unknown"]
            or levels["degraded"]
            or levels["starting"]
            or levels["unknown"]
        ):
            status = "degraded"
        else:
            status = "ok"
        return {
            "status": status,
            "buses": len(summaries),
            "states": states,
            "levels": levels,
            "checked_at": rfc3339(now),
            "summaries": summaries,
        }

    def detail(self, bus_id: str) -> Optional[Dict[str, Any]]:
        """``/fleet/buses/{id}``: the summary, its url and failures in a
        row, each polled endpoint's last data (or its error) and the raw
        health answer; None for an unknown id."""
        bus = self._buses.get(bus_id)
        if bus is None:
            return None
        now = self._clock.seconds()
        out = self._summary(bus, now)
        out["url"] = bus.entry.url
        out["failures"] = bus.failures
        names = [e.name for e in self._config.poll.endpoints]
        out["endpoints"] = {n: bus.fetched(n, now) for n in names}
        out["health"] = None if bus.health is None else bus.health.data
        return out

    def endpoint(self, name: str) -> Dict[str, Any]:
        """``/fleet/{name}``: the endpoint's last data of every bus that
        has some, by id, and the ids of those with none."""
        now = self._clock.seconds()
        buses: Dict[str, Any] = {}
        missing: List[str] = []
        for bus in self._order:
            got = bus.data.get(name)
            if got is None:
                missing.append(bus.entry.id)
                continue
            buses[bus.entry.id] = {
                "data": got.data,
                "fetched_at": rfc3339(got.fetched_at),
                "age_s": round(now - got.fetched_at, 3),
                "state": self._state(bus, now),
            }
        return {"endpoint": name, "buses": buses, "missing": missing}

    # -- changes -------------------------------------------------------

    def take_change(
        self, bus_id: str
    ) -> Optional[Tuple[Optional[str], Summary]]:
        """``(previous state, summary)`` if the bus's state, level, failing
        checks or values differ from the last time this was asked (or it
        was never asked), else None: each change is reported once."""
        bus = self._buses.get(bus_id)
        if bus is None:
            return None
        now = self._clock.seconds()
        key = (self._state(bus, now), bus.level, bus.failing, bus.values)
        if key == bus.published:
            return None
        before = None if bus.published is None else bus.published[0]
        bus.published = key
        return before, self._summary(bus, now)

    def take_changes(self) -> List[Tuple[Optional[str], Summary]]:
        """:meth:`take_change` for every bus, sorted by id."""
        out = []
        for bus in self._order:
            change = self.take_change(bus.entry.id)
            if change is not None:
                out.append(change)
        return out
