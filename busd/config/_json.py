"""Plain JSON values: decoding aids, type tests, descriptions, freezing."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
    "JSONObject",
    "FrozenDict",
    "is_object",
    "is_array",
    "as_int",
    "describe",
    "freeze",
]

_INT = re.compile(r"[+-]?[0-9]+")


class JSONObject(Dict[str, Any]):
    """A decoded JSON object that remembers keys given more than once."""

    duplicate_keys: Tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> "JSONObject":
        """``json.loads`` ``object_pairs_hook``: keep the last value, as Go
        does, and note the repeated keys."""
        obj = cls(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            dups: list[str] = []
            for key, _ in pairs:
                if key in seen and key not in dups:
                    dups.append(key)
                seen.add(key)
            obj.duplicate_keys = tuple(dups)
        return obj


def is_object(value: Any) -> bool:
    """Whether ``value`` is a decoded JSON object."""
    return isinstance(value, Mapping)


def is_array(value: Any) -> bool:
    """Whether ``value`` is a decoded JSON array."""
    return isinstance(value, (list, tuple))


def describe(value: Any) -> str:
    """A short description of a JSON value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return "string " + (text if len(text) <= 40 else text[:37] + '..."')
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if is_object(value):
        return "an object"
    if is_array(value):
        return "an array"
    return "null" if value is None else type(value).__name__


def as_int(value: Any) -> Optional[int]:
    """``value`` as an integer under mapstructure's weak typing (``"1"``
    counts; ``true`` and ``1.5`` do not), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    return None


class FrozenDict(Dict[str, Any]):
    """A read-only JSON object.

    A dict subclass rather than a mappingproxy so that ``json.dumps`` still
    encodes it: static responses and router error bodies are sent as they
    are, and must not be changed by one request for the next.
    """

    def _readonly(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("config values are read-only")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __reduce__(self) -> Any:
        # copy/pickle would rebuild through __setitem__ otherwise.
        return (FrozenDict, (dict(self),))


def freeze(value: Any) -> Any:
    """A read-only deep copy: objects become FrozenDicts, arrays tuples."""
    if is_object(value):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if is_array(value):
        return tuple(freeze(v) for v in value)
    return value
