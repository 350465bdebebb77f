"""What goes wrong on the demo bus now and then, so ``/health`` has
something to find while you watch (``make run``).

Each fault is a pure function of the seconds since the simulated shift
began, repeating on its own cycle, so a test's ``Clock`` reproduces it
exactly:

- the GPS loses its fix for 90 seconds every 17 minutes, first three
  minutes in: it keeps answering the last fix, with its old
  ``updated_at``;
- a tyre (``rear-left-inner``) leaks from two minutes after each refill,
  losing 0.0015 bar a second, and is refilled every 15 minutes; it is
  below 7.5 bar for the last five or six minutes of each cycle;
- the engine overheats for 90 seconds every 10 minutes, peaking 26 °C
  above its normal temperature: once warm (from the second spike, 17
  minutes in) above 105 °C.
"""

from __future__ import annotations

import math
from typing import Optional

__all__ = [
    "LEAKING_TYRE",
    "tyre_loss_bar",
    "engine_spike_c",
    "gps_fix_time",
    "TYRE_CYCLE_S",
    "ENGINE_CYCLE_S",
    "GPS_CYCLE_S",
]

LEAKING_TYRE = "rear-left-inner"
TYRE_CYCLE_S = 900.0
_LEAK_STARTS_S = 120.0
_LEAK_BAR_PER_S = 0.0015
ENGINE_CYCLE_S = 600.0
_SPIKE_STARTS_S = 420.0
_SPIKE_S = 90.0
_SPIKE_C = 26.0
GPS_CYCLE_S = 1020.0
_FIX_LOST_S = 180.0
_FIX_LOST_FOR_S = 90.0


def tyre_loss_bar(elapsed: float) -> float:
    """Pressure the leaking tyre has lost since its last refill."""
    in_cycle = elapsed % TYRE_CYCLE_S
    return max(0.0, in_cycle - _LEAK_STARTS_S) * _LEAK_BAR_PER_S


def engine_spike_c(elapsed: float) -> float:
    """Degrees above the engine's normal temperature (0 most of the time;
    a half sine over the spike)."""
    into = elapsed % ENGINE_CYCLE_S - _SPIKE_STARTS_S
    if not 0.0 <= into < _SPIKE_S:
        return 0.0
    return _SPIKE_C * math.sin(math.pi * into / _SPIKE_S)


def gps_fix_time(elapsed: float) -> Optional[float]:
    """While the fix is lost, the elapsed time of the last good fix (the
    GPS repeats it); None while the fix is live."""
    start = elapsed - elapsed % GPS_CYCLE_S + _FIX_LOST_S
    if start <= elapsed < start + _FIX_LOST_FOR_S:
        return start
    return None
