"""Go duration strings (``"2s"``, ``"1m30s"``, ``"150us"``) as seconds.

KrakenD decodes every duration with Go's ``time.ParseDuration``, so busgw
accepts exactly the same strings: an optional sign, then one or more
``<decimal><unit>`` pairs, or the lone string ``"0"``.
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["parse_duration"]

# Nanoseconds per unit. Go accepts both the micro sign (U+00B5) and the
# Greek small letter mu (U+03BC) for microseconds.
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DIGITS = "0123456789"
# Go stores a duration as int64 nanoseconds; a negative one may reach 2**63.
_MAX_NS = 2**63 - 1


def parse_duration(text: str) -> float:
    """Return the Go duration string ``text`` in seconds.

    Raises :class:`ValueError` naming the problem, as Go's
    ``time.ParseDuration`` would refuse the same input: a bare number such
    as ``"10"`` lacks a unit, ``"10sec"`` has an unknown one, and a value
    beyond about 292 years overflows.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: not a string")
    quoted = _quote(text)
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"invalid duration {quoted}")
    total = 0
    while rest:
        if rest[0] != "." and rest[0] not in _DIGITS:
            raise ValueError(f"invalid duration {quoted}")
        whole, rest = _leading(rest, _DIGITS)
        fraction = ""
        if rest[:1] == ".":
            fraction, rest = _leading(rest[1:], _DIGITS)
        # "." alone, or a sign followed by ".s", has no digits at all.
        if not whole and not fraction:
            raise ValueError(f"invalid duration {quoted}")
        unit, rest = _leading(rest, None)
        if not unit:
            raise ValueError(f"missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(
                f"unknown unit {_quote(unit)} in duration {quoted}"
                " (use ns, us, ms, s, m or h)"
            )
        scale = _UNITS[unit]
        value = Fraction(int(whole or "0"))
        if fraction:
            value += Fraction(int(fraction), 10 ** len(fraction))
        # Go truncates the fractional nanoseconds.
        total += int(value * scale)
        if total > _MAX_NS + (1 if negative else 0):
            raise ValueError(f"invalid duration {quoted}: out of range")
    seconds = total / 1_000_000_000
    return -seconds if negative else seconds


def _leading(text: str, alphabet: str | None) -> tuple[str, str]:
    """Split ``text`` after its leading run of ``alphabet`` characters;
    with ``alphabet=None``, after the run that is neither a digit nor "."
    (a unit, as Go reads it)."""
    index = 0
    for char in text:
        is_number = char == "." or char in _DIGITS
        if alphabet is None:
            if is_number:
                break
        elif char not in alphabet:
            break
        index += 1
    return text[:index], text[index:]


def _quote(text: str) -> str:
    """Double-quote ``text`` the way Go's error messages do."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
