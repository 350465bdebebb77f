"""A deterministic simulation of bus FW-0042 driving line FW-12.

Every value is a pure function of ``clock.seconds() - start``: nothing is
stored between requests and no timer runs, so a test's ``Clock`` drives
the bus exactly and two simulations with the same start agree. The only
"randomness" (passengers boarding and alighting) is seeded by trip and stop.
Faults (a leaking tyre, engine spikes, a lost GPS fix: busd.demo.drift)
come and go on fixed cycles of the same elapsed time.
"""

from __future__ import annotations

import bisect
import math
import random
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import attrs
from twisted.internet.interfaces import IReactorTime

from busd.demo.drift import (
    LEAKING_TYRE,
    engine_spike_c,
    gps_fix_time,
    tyre_loss_bar,
)
from busd.demo.route import LINE, STOPS, Phase, Stop, bearing_deg, build_round

__all__ = [
    "VEHICLE_ID",
    "CAPACITY",
    "TYRE_POSITIONS",
    "Snapshot",
    "BusSimulation",
    "iso_utc",
]

VEHICLE_ID = "FW-0042"
CAPACITY = 85
TYRE_POSITIONS = (
    "front-left",
    "front-right",
    "rear-left-outer",
    "rear-left-inner",
    "rear-right-inner",
    "rear-right-outer",
)

_ROUND: Tuple[Phase, ...] = build_round()
_ROUND_STARTS = [p.start_s for p in _ROUND]
_ROUND_S = _ROUND[-1].end_s
_ROUND_M = _ROUND[-1].distance_start_m + _ROUND[-1].length_m
_ROUND_DRIVING_S = _ROUND[-1].driving_start_s + _ROUND[-1].duration_s

# Start just after the first departure, so the bus is already moving when
# the demo starts instead of idling through a three-minute layover.
_START_OFFSET_S = _ROUND[1].start_s + 20.0

_ODOMETER_KM = 184_213.4
_FUEL_START_PCT = 78.0
_TANK_L = 250.0
_FUEL_L_PER_KM = 0.42
_AMBIENT_C = 14.0
_ENGINE_HOT_C = 88.0
_WARM_UP_S = 420.0
_DRIVER = {"id": "D-1187", "name": "Ines Walvis"}
_DRIVING_BASE_MIN = 95  # already driven on this shift when the demo starts
_DRIVING_LIMIT_MIN = 540  # nine hours, the usual daily driving limit


def iso_utc(seconds: float) -> str:
    """``seconds`` since the epoch as ISO-8601 UTC, e.g. ``…T12:00:05Z``."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.frozen
class Snapshot:
    """The bus at one instant, in plain units; payloads are built from it."""

    now: float
    elapsed_s: float
    trip_no: int
    phase: Phase
    next_drive: Phase
    distance_m: float
    speed_kmh: float
    lat: float
    lon: float
    heading_deg: float
    driving_s: float
    departs_at: float
    on_board: int


def _passengers(trip_no: int, stop_in_trip: int) -> int:
    """Who is on board after the bus reached stop ``stop_in_trip``.

    Replays the trip's stops, each seeded by (trip, stop), so the count
    only changes when the bus reaches a stop and is the same on every run.
    Everyone leaves at the terminus: the next trip starts with its own
    boarding at stop 0.
    """
    on_board = 0
    for k in range(stop_in_trip + 1):
        rng = random.Random(f"{LINE}:{trip_no}:{k}")
        alight = rng.randint(0, on_board)
        on_board = min(CAPACITY, on_board - alight + rng.randint(3, 24))
    return on_board


class BusSimulation:
    """Bus FW-0042 on line FW-12, as seen at ``clock.seconds()``.

    ``start`` (epoch seconds, default: the clock's time when built) is when
    the simulated shift began. Time before ``start`` reads as ``start``.
    """

    def __init__(self, clock: IReactorTime, start: Optional[float] = None):
        self._clock = clock
        self.start = clock.seconds() if start is None else start

    def snapshot(self, at: Optional[float] = None) -> Snapshot:
        """Compute the bus's state now (or at epoch seconds ``at``)."""
        now = self._clock.seconds() if at is None else at
        elapsed = max(0.0, now - self.start)
        rounds, in_round = divmod(elapsed + _START_OFFSET_S, _ROUND_S)
        n_round = int(rounds)
        index = bisect.bisect_right(_ROUND_STARTS, in_round) - 1
        phase = _ROUND[index]
        tau = in_round - phase.start_s
        # Measured from the clamped time, so a clock behind ``start`` agrees.
        round_start = self.start + elapsed - in_round
        # The drive this phase is, or the one that follows a stop.
        following = _ROUND[(index + 1) % len(_ROUND)]
        # The round's last drive is followed by the next round's layover.
        following_start = round_start + (
            _ROUND_S if following is _ROUND[0] else 0
        )
        next_drive = phase if phase.kind == "drive" else following
        a, b = STOPS[phase.from_stop], STOPS[phase.to_stop]
        if phase.kind == "drive":
            # Sine speed profile: leaves one stop and halts at the next with
            # speed 0, averaging the segment's speed in between.
            x = math.pi * tau / phase.duration_s
            covered = phase.length_m * (1 - math.cos(x)) / 2
            speed = math.pi * phase.length_m / (2 * phase.duration_s)
            speed_kmh = speed * math.sin(x) * 3.6
            frac = covered / phase.length_m
            lat = a.lat + (b.lat - a.lat) * frac
            lon = a.lon + (b.lon - a.lon) * frac
            driving = phase.driving_start_s + tau
            # After a drive the bus stands at the next stop, then leaves.
            departs_at = following_start + following.end_s
        else:
            covered, speed_kmh, lat, lon = 0.0, 0.0, a.lat, a.lon
            driving = phase.driving_start_s
            if phase.kind == "dwell":
                driving += tau  # the layover is a break, a dwell is not
            departs_at = round_start + phase.end_s
        trip_no = 2 * n_round + phase.trip_in_round
        return Snapshot(
            now=now,
            elapsed_s=elapsed,
            trip_no=trip_no,
            phase=phase,
            next_drive=next_drive,
            distance_m=n_round * _ROUND_M + phase.distance_start_m + covered,
            speed_kmh=speed_kmh,
            lat=lat,
            lon=lon,
            heading_deg=bearing_deg(
                STOPS[next_drive.from_stop], STOPS[next_drive.to_stop]
            ),
            driving_s=n_round * _ROUND_DRIVING_S + driving,
            departs_at=departs_at,
            on_board=_passengers(trip_no, phase.stop_in_trip),
        )

    def vehicle(self) -> Dict[str, Any]:
        """The ECU's view: fuel, tyres, speed, odometer, engine, battery."""
        snap = self.snapshot()
        km = snap.distance_m / 1000.0
        fuel_pct = max(
            0.0, _FUEL_START_PCT - km * _FUEL_L_PER_KM / _TANK_L * 100
        )
        range_km = fuel_pct / 100 * _TANK_L / _FUEL_L_PER_KM
        warm = 1 - math.exp(-snap.elapsed_s / _WARM_UP_S)
        moving = snap.speed_kmh > 0.5
        return {
            "vehicle_id": VEHICLE_ID,
            "fuel": {
                "level_pct": round(fuel_pct, 2),
                "range_km": round(range_km, 1),
            },
            "tyres": self._tyres(snap, warm),
            "speed_kmh": round(snap.speed_kmh, 1),
            "odometer_km": round(_ODOMETER_KM + km, 2),
            "engine": {
                "temp_c": round(
                    _AMBIENT_C
                    + (_ENGINE_HOT_C - _AMBIENT_C) * warm
                    + 0.05 * snap.speed_kmh
                    + engine_spike_c(snap.elapsed_s),
                    1,
                ),
                "rpm": int(650 + 24 * snap.speed_kmh) if moving else 650,
            },
            # 24 V system: the alternator charges harder while driving.
            "battery_v": round(
                (27.9 if moving else 27.3)
                + 0.1 * math.sin(snap.elapsed_s / 37),
                2,
            ),
            "updated_at": iso_utc(snap.now),
        }

    def tyres(self) -> List[Dict[str, Any]]:
        """The six tyres alone (the ECU's ``/tyres`` collection)."""
        snap = self.snapshot()
        return self._tyres(snap, 1 - math.exp(-snap.elapsed_s / _WARM_UP_S))

    @staticmethod
    def _tyres(snap: Snapshot, warm: float) -> List[Dict[str, Any]]:
        tyres = []
        for position in TYRE_POSITIONS:
            # Cold pressure, plus what driving warms in, minus any leak.
            bar = (8.5 if position.startswith("front") else 7.9) + 0.35 * warm
            if position == LEAKING_TYRE:
                bar -= tyre_loss_bar(snap.elapsed_s)
            tyres.append({"position": position, "pressure_bar": round(bar, 2)})
        return tyres

    def location(self) -> Dict[str, Any]:
        """The GPS's view: position, heading, speed and the next stop;
        while the fix is lost (busd.demo.drift), the last fix again."""
        snap = self.snapshot()
        fix = gps_fix_time(snap.elapsed_s)
        if fix is not None:
            snap = self.snapshot(at=self.start + fix)
        stop: Stop = STOPS[snap.next_drive.to_stop]
        return {
            "lat": round(snap.lat, 6),
            "lon": round(snap.lon, 6),
            "heading_deg": round(snap.heading_deg, 1),
            "speed_kmh": round(snap.speed_kmh, 1),
            "next_stop": stop.name,
            "route": LINE,
            "updated_at": iso_utc(snap.now),
        }

    def service(self) -> Dict[str, Any]:
        """The operations view: trip, passengers, driver and next departure."""
        snap = self.snapshot()
        driving_min = _DRIVING_BASE_MIN + int(snap.driving_s // 60)
        direction = "out" if snap.phase.trip_in_round == 0 else "in"
        return {
            "line": LINE,
            "trip_id": f"{LINE}-{snap.trip_no + 1:04d}-{direction}",
            "passengers": {"on_board": snap.on_board, "capacity": CAPACITY},
            "driver": {
                **_DRIVER,
                "hours_of_service": {
                    "driving_min": driving_min,
                    "remaining_min": max(0, _DRIVING_LIMIT_MIN - driving_min),
                },
            },
            "next_departure": iso_utc(snap.departs_at),
            "updated_at": iso_utc(snap.now),
        }
