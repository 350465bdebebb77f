"""orjson where installed, for the two JSON steps of every request, with
results identical to the stdlib path they stand in for.

orjson differs from Python's ``json`` on a few inputs; each is detected
and handed to the stdlib code instead of being "fixed":

* Encoding: NaN and infinities become ``null`` (Python raises), floats
  below 1e-4 lose their exponent (``1.5e-05`` -> ``0.000015``) or write
  it short (``e-7``), and it refuses ints beyond 64 bits, lone surrogates,
  non-str keys and subclasses (with OPT_PASSTHROUGH_SUBCLASS). Output
  containing ``null``, a digit followed by ``e``, or ``0.0000`` is
  therefore re-encoded by the stdlib, as is any value orjson refuses.
* Decoding: integers beyond 64 bits become floats (Python keeps them
  exact) and a few inputs Python accepts are refused (``1e400``, lone
  surrogate escapes); a body with a run of 19 digits, or one orjson
  refuses, is decoded by the stdlib.

Values other than JSON's (dict, list, str, int, float, bool, None) never
reach these functions: the pipeline's data comes from JSON.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

__all__ = ["encode_sorted", "decode", "AVAILABLE"]

_SUSPECT_OUT = re.compile(rb"null|[0-9]e|0\.0000")
# 19 digits: below -2**63 orjson turns a negative integer into a float.
_SUSPECT_IN = re.compile(rb"[0-9]{19}")

try:
    import orjson as _orjson
except ImportError:  # optional: the stdlib path is exact on its own
    _orjson = None  # type: ignore[assignment]

AVAILABLE = _orjson is not None


def encode_sorted(value: Any) -> Optional[bytes]:
    """Compact UTF-8 JSON with sorted keys, exactly as
    ``json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
    sort_keys=True, allow_nan=False)`` would write it, or None when the
    caller must use that encoder (orjson missing or unsure)."""
    if _orjson is None:
        return None
    try:
        out = _orjson.dumps(
            value,
            option=_orjson.OPT_SORT_KEYS | _orjson.OPT_PASSTHROUGH_SUBCLASS,
        )
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None
    if _SUSPECT_OUT.search(out):
        return None
    return out


def decode(body: bytes, fallback: Callable[[bytes], Any]) -> Any:
    """``fallback(body)`` (the stdlib decoder, with its errors), sped up by
    orjson for the bodies where both agree."""
    if _orjson is not None and not _SUSPECT_IN.search(body):
        try:
            return _orjson.loads(body)
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            pass
    return fallback(body)
