"""The path-aware reading of raw JSON: locations, problems, typed getters.

Every value is read through a :class:`Node`, which knows the JSON path of
each key, reports problems instead of raising, and remembers which keys
were read so the rest can be reported as unknown. Problems are sorted by
their place in the document, so the report reads top to bottom whatever
order the loader checked things in.
"""

from __future__ import annotations

import difflib
import json
import re
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Tuple

import attrs

from busd.config import krakend
from busd.config._json import as_int, describe, is_array, is_object
from busd.config._syntax import q
from busd.config.durations import parse_duration
from busd.errors import ConfigProblem

__all__ = ["Loc", "ROOT", "Report", "Node", "MISSING", "object_items"]

DURATION_HINT = 'expected a duration string such as "2s" or "500ms"'
# Go's strconv.ParseBool, which mapstructure's weak typing uses.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# Keys that read well after a dot; others are quoted in brackets.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_@$/-]+")


class _Missing:
    """The absence of a key (JSON null counts as absent, as in Go)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@attrs.frozen
class Loc:
    """A JSON path (``endpoints[3].backend[0].url_pattern``) plus its
    position in the document, used to sort problems."""

    text: str
    order: Tuple[int, ...] = ()

    def key(self, obj: Mapping[str, Any], name: str) -> "Loc":
        """The location of ``obj[name]``; an absent key sorts last."""
        keys = list(obj)
        pos = keys.index(name) if name in obj else len(keys)
        part = name if _PLAIN_KEY.fullmatch(name) else f"[{json.dumps(name)}]"
        if not self.text:
            text = part
        elif part.startswith("["):
            text = self.text + part
        else:
            text = f"{self.text}.{part}"
        return Loc(text, self.order + (pos,))

    def item(self, index: int) -> "Loc":
        """The location of item ``index`` of the array here."""
        return Loc(f"{self.text}[{index}]", self.order + (index,))


ROOT = Loc("")


class Report:
    """Collects problems; never stops at the first."""

    def __init__(self) -> None:
        self._items: list[tuple[Tuple[int, ...], int, ConfigProblem]] = []

    def error(self, loc: Loc, message: str) -> None:
        """Record an error at ``loc``."""
        self._add(loc, ConfigProblem(loc.text, message, "error"))

    def warn(self, loc: Loc, message: str) -> None:
        """Record a warning at ``loc``."""
        self._add(loc, ConfigProblem(loc.text, message, "warning"))

    def _add(self, loc: Loc, problem: ConfigProblem) -> None:
        self._items.append((loc.order, len(self._items), problem))

    def problems(self, *, strict: bool = False) -> Tuple[ConfigProblem, ...]:
        """Every problem in document order; with ``strict``, warnings are
        turned into errors."""
        ordered = [p for _, _, p in sorted(self._items, key=lambda i: i[:2])]
        if strict:
            ordered = [attrs.evolve(p, severity="error") for p in ordered]
        return tuple(ordered)


class Node:
    """One JSON object being read. Getters report type problems and return
    ``default``, so the loader goes on and finds the next problem."""

    def __init__(
        self, report: Report, loc: Loc, raw: Mapping[str, Any]
    ) -> None:
        self.report = report
        self.loc = loc
        self.raw = raw
        self._used: set[str] = set()
        # Go keeps the last of repeated keys silently; say so.
        for key in getattr(raw, "duplicate_keys", ()):
            report.warn(
                self.at(key),
                "key given more than once; the last value is used",
            )

    def at(self, key: str) -> Loc:
        """The location of ``key`` in this object."""
        return self.loc.key(self.raw, key)

    def has(self, key: str) -> bool:
        """Whether ``key`` is present with a non-null value."""
        return self.raw.get(key) is not None

    def take(self, key: str, *, required: str = "") -> Any:
        """The raw value of ``key`` (marked as read) or MISSING. With
        ``required``, a missing key is an error explained by that text."""
        self._used.add(key)
        value = self.raw.get(key)
        if value is None:
            if required:
                self.report.error(
                    self.at(key), f"missing required key ({required})"
                )
            return MISSING
        return value

    def mismatch(self, key: str, expected: str, value: Any) -> None:
        """Report that ``key`` holds ``value`` where ``expected`` was due."""
        self.report.error(
            self.at(key), f"expected {expected}, got {describe(value)}"
        )

    def renamed(self, new: str, old: str) -> str:
        """The key to read for ``new``: itself, or its v2 name ``old``."""
        if old not in self.raw:
            return new
        self._used.add(old)
        if new in self.raw:
            self.report.error(
                self.at(old),
                f'"{old}" (KrakenD v2 name) and "{new}" are both given;'
                f' keep only "{new}"',
            )
            return new
        self.report.warn(
            self.at(old), f'"{old}" is the KrakenD v2 name; use "{new}"'
        )
        return old

    def string(self, key: str, default: str = "", *, required: str = "") -> str:
        """A string value."""
        value = self.take(key, required=required)
        if value is MISSING:
            return default
        if not isinstance(value, str):
            self.mismatch(key, "a string", value)
            return default
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        """A boolean; ``"true"``/``"false"`` are accepted, as mapstructure's
        weak typing does."""
        value = self.take(key)
        if value is MISSING:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in _TRUE | _FALSE:
            return value in _TRUE
        self.mismatch(key, "a boolean (true or false)", value)
        return default

    def integer(
        self,
        key: str,
        default: int,
        *,
        minimum: Optional[int] = None,
        maximum: Optional[int] = None,
    ) -> int:
        """An integer within [minimum, maximum]; ``"1"`` is accepted."""
        value = self.take(key)
        if value is MISSING:
            return default
        number = as_int(value)
        if number is None:
            self.mismatch(key, "an integer", value)
            return default
        if (minimum is not None and number < minimum) or (
            maximum is not None and number > maximum
        ):
            if maximum is None:
                bounds = f"at least {minimum}"
            else:
                bounds = f"between {minimum} and {maximum}"
            self.report.error(self.at(key), f"must be {bounds}, got {number}")
            return default
        return number

    def duration(self, key: str, default: float) -> float:
        """A Go duration string, in seconds; ``"0"`` means the default, as
        in KrakenD, and a negative one is an error."""
        value = self.take(key)
        if value is MISSING:
            return default
        if not isinstance(value, str):
            self.report.error(
                self.at(key), f"{DURATION_HINT}, got {describe(value)}"
            )
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.report.error(self.at(key), f"{exc}; {DURATION_HINT}")
            return default
        if seconds < 0:
            self.report.error(
                self.at(key), f"must not be negative, got {q(value)}"
            )
            return default
        return seconds if seconds else default

    def strings(self, key: str) -> Optional[Tuple[str, ...]]:
        """A list of strings, or None when absent or holding another type
        (reported); a lone string counts as a list of one, as with
        mapstructure's weak typing."""
        value = self.take(key)
        if value is MISSING:
            return None
        if isinstance(value, str):
            return (value,)
        if not is_array(value):
            self.mismatch(key, "a list of strings", value)
            return None
        items: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                items.append(item)
            else:
                self.report.error(
                    self.at(key).item(index),
                    f"expected a string, got {describe(item)}",
                )
        if len(items) != len(value):
            # Callers name an item by its index: with one dropped, later
            # items' paths would be wrong. The errors above fail the load.
            return None
        return tuple(items)

    def array(self, key: str, *, required: str = "") -> Optional[list[Any]]:
        """A JSON array, or None when absent or of another type."""
        value = self.take(key, required=required)
        if value is MISSING:
            return None
        if not is_array(value):
            self.mismatch(key, "a list", value)
            return None
        return list(value)

    def child(self, key: str, *, required: str = "") -> Optional["Node"]:
        """The JSON object under ``key`` as a Node, or None."""
        value = self.take(key, required=required)
        if value is MISSING:
            return None
        if not is_object(value):
            self.mismatch(key, "an object", value)
            return None
        return Node(self.report, self.at(key), value)

    def finish(
        self,
        known: Iterable[str],
        unsupported: Mapping[str, str] = MappingProxyType({}),
        ignored: Iterable[str] = (),
    ) -> None:
        """Warn about every key not read: KrakenD options busgw does not
        implement, then anything else as unknown (with a close match)."""
        known = sorted(set(known) | set(unsupported))
        skip = set(ignored)
        for key in self.raw:
            # "@comment" keys are KrakenD's documented way to annotate.
            if key in self._used or key in skip or key.startswith("@"):
                continue
            if key in unsupported:
                # An option left at KrakenD's default asks for nothing
                # busgw lacks (KrakenD Designer writes "sd": "static").
                if not _is_default(key, self.raw[key]):
                    self.report.warn(self.at(key), unsupported[key])
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f'; did you mean "{hint[0]}"?' if hint else ""
            self.report.warn(self.at(key), f"unknown key (ignored){extra}")


def _is_default(key: str, value: Any) -> bool:
    """Whether ``value`` is KrakenD's default for unsupported ``key``."""
    if key not in krakend.UNSUPPORTED_DEFAULTS:
        return False
    default = krakend.UNSUPPORTED_DEFAULTS[key]
    return type(value) is type(default) and value == default


def object_items(
    report: Report, loc: Loc, values: list[Any]
) -> Iterable[tuple[int, Node]]:
    """The items of a JSON array that are objects, as Nodes; reports the
    others."""
    for index, value in enumerate(values):
        if is_object(value):
            yield index, Node(report, loc.item(index), value)
        else:
            report.error(
                loc.item(index), f"expected an object, got {describe(value)}"
            )
