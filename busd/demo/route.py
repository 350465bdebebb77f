"""The demo bus's fixed route: line FW-12 of the Foggy Whale network.

Pure geometry and a timetable, no reactor: the route is a polyline whose
vertices are the stops, and :func:`build_round` turns it into one *round*
(outbound then inbound trip) of timed phases that the simulation replays
forever. Everything here is computed once at import and is immutable.
"""

from __future__ import annotations

import math
from typing import Tuple

import attrs

__all__ = [
    "LINE",
    "Stop",
    "Phase",
    "STOPS",
    "SEGMENT_AVG_KMH",
    "DWELL_S",
    "LAYOVER_S",
    "distance_m",
    "bearing_deg",
    "build_round",
]

#: The line's public number, as painted on the bus.
LINE = "FW-12"

#: Seconds the bus stands at an intermediate stop.
DWELL_S = 30.0

#: Seconds the bus waits at a terminus before its next trip starts.
LAYOVER_S = 180.0

_EARTH_RADIUS_M = 6_371_000.0


@attrs.frozen
class Stop:
    """A named stop and its WGS-84 position in decimal degrees."""

    name: str
    lat: float
    lon: float


#: The waterfront stops of FW-12, outbound order (Ferry Building first).
STOPS: Tuple[Stop, ...] = (
    Stop("Ferry Building", 37.79557, -122.39366),
    Stop("Pier 39", 37.80867, -122.40982),
    Stop("Fisherman's Wharf", 37.80800, -122.41770),
    Stop("Aquatic Park", 37.80640, -122.42230),
    Stop("Fort Mason", 37.80560, -122.43120),
    Stop("Marina Green", 37.80620, -122.43840),
    Stop("Crissy Field", 37.80380, -122.45560),
    Stop("Golden Gate Bridge Plaza", 37.80770, -122.47500),
)

#: Average speed on each segment between consecutive stops (outbound
#: order), so that different stretches of the waterfront drive differently.
SEGMENT_AVG_KMH: Tuple[float, ...] = (24.0, 18.0, 16.0, 22.0, 20.0, 30.0, 27.0)


@attrs.frozen
class Phase:
    """One step of a round: standing at a stop, or driving to the next one.

    ``kind`` is ``"layover"`` (terminus, driver off the clock), ``"dwell"``
    (intermediate stop) or ``"drive"``. Offsets are seconds from the start
    of the round; ``distance_start_m`` and ``driving_start_s`` are what the
    round has covered and driven before this phase, so the simulation needs
    no running totals. ``stop_in_trip`` counts stops reached so far in the
    current trip (0 at the departure terminus). ``length_m`` is 0 unless
    the bus drives.
    """

    kind: str
    start_s: float
    duration_s: float
    from_stop: int
    to_stop: int
    trip_in_round: int
    stop_in_trip: int
    distance_start_m: float
    driving_start_s: float
    length_m: float = 0.0

    @property
    def end_s(self) -> float:
        """The offset in the round at which this phase ends."""
        return self.start_s + self.duration_s

    @property
    def stationary(self) -> bool:
        """Whether the bus stands still at a stop during this phase."""
        return self.kind != "drive"


def distance_m(a: Stop, b: Stop) -> float:
    """The great-circle (haversine) distance between two stops, in metres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = (
        math.sin(dlat / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing_deg(a: Stop, b: Stop) -> float:
    """The initial compass bearing from ``a`` to ``b``, in [0, 360)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlon = math.radians(b.lon - a.lon)
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(
        lat2
    ) * math.cos(dlon)
    return math.degrees(math.atan2(x, y)) % 360.0


def _segment_avg_mps(a: int, b: int) -> float:
    # Both directions of a segment share its average speed.
    return SEGMENT_AVG_KMH[min(a, b)] / 3.6


def build_round(
    stops: Tuple[Stop, ...] = STOPS,
    dwell_s: float = DWELL_S,
    layover_s: float = LAYOVER_S,
) -> Tuple[Phase, ...]:
    """The phases of one round: outbound trip, then the inbound trip back.

    Each trip starts with a layover at its departure terminus, then
    alternates drive and dwell and ends on arrival at the other terminus,
    where the next trip's layover begins. The last phase of a round ends
    where the first one starts, so rounds repeat seamlessly.
    """
    if len(stops) < 2:
        raise ValueError("a route needs at least two stops")
    phases = []
    offset = distance = driving = 0.0
    outbound = tuple(range(len(stops)))
    for trip, order in enumerate((outbound, outbound[::-1])):
        legs = list(zip(order, order[1:]))
        phases.append(
            Phase(
                "layover",
                offset,
                layover_s,
                order[0],
                order[0],
                trip,
                0,
                distance,
                driving,
            )
        )
        offset += layover_s
        for k, (a, b) in enumerate(legs, start=1):
            length = distance_m(stops[a], stops[b])
            duration = length / _segment_avg_mps(a, b)
            phases.append(
                Phase(
                    "drive",
                    offset,
                    duration,
                    a,
                    b,
                    trip,
                    k - 1,
                    distance,
                    driving,
                    length,
                )
            )
            offset += duration
            distance += length
            driving += duration
            if k < len(legs):
                phases.append(
                    Phase(
                        "dwell",
                        offset,
                        dwell_s,
                        b,
                        b,
                        trip,
                        k,
                        distance,
                        driving,
                    )
                )
                offset += dwell_s
                driving += dwell_s  # short stops count as driving time
    return tuple(phases)
