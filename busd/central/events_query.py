"""``GET /fleet/events`` parameters, checked without a reactor.

``bus``, ``kind``: exact matches; ``severity``: the *least* severity
(``warning`` lists warning and critical); ``since``: an RFC 3339 time (the
central's ``received_at`` at or after it) or a cursor (an event's
``cursor``: only events stored after it); ``limit``: 1-1000, default 100;
``order``: ``desc`` (newest first) or ``asc`` (oldest first). Without
``order`` a cursor lists oldest first (to follow the feed page by page
without gaps) and everything else newest first.

:func:`parse_query` raises :class:`QueryInvalid` naming the parameter; an
unknown or repeated parameter is refused too (a typo must not silently
list everything).
"""

from __future__ import annotations

from typing import List, Mapping, Optional

from busd.central._eventdb import EventQuery
from busd.central.events_schema import SEVERITY_RANK, parse_time

__all__ = ["QueryInvalid", "parse_query", "MAX_LIMIT", "DEFAULT_LIMIT"]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_MAX_CURSOR = 2**63 - 1
_PARAMS = ("bus", "kind", "severity", "since", "limit", "order")


class QueryInvalid(ValueError):
    """A bad parameter: ``parameter`` names it."""

    def __init__(self, parameter: str, reason: str):
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


def parse_query(args: Mapping[bytes, List[bytes]]) -> EventQuery:
    """An :class:`EventQuery` from ``request.args``."""
    values = {}
    for raw_name, raw_values in args.items():
        name = raw_name.decode("utf-8", "replace")
        if name not in _PARAMS:
            raise QueryInvalid(
                name, f"unknown parameter (allowed: {', '.join(_PARAMS)})"
            )
        if len(raw_values) != 1:
            raise QueryInvalid(name, "given more than once")
        try:
            values[name] = raw_values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise QueryInvalid(name, "not UTF-8") from None
    for name in ("bus", "kind"):
        if values.get(name) == "":
            raise QueryInvalid(name, "empty")
    min_rank = 0
    if "severity" in values:
        severity = values["severity"]
        if severity not in SEVERITY_RANK:
            raise QueryInvalid(
                "severity", f"expected one of {', '.join(SEVERITY_RANK)}"
            )
        min_rank = SEVERITY_RANK[severity]
    since: Optional[float] = None
    after: Optional[int] = None
    if "since" in values:
        text = values["since"]
        if text.isdigit() and text.isascii():
            # No cursor is past SQLite's 64-bit integers (nor is one
            # thousands of digits long: int() would refuse it).
            if len(text) > 19 or int(text) > _MAX_CURSOR:
                raise QueryInvalid("since", "no such cursor (too large)")
            after = int(text)
        else:
            try:
                since = parse_time(text)
            except ValueError as exc:
                raise QueryInvalid(
                    "since", f"{exc} (or an event's cursor)"
                ) from None
    limit = DEFAULT_LIMIT
    if "limit" in values:
        text = values["limit"]
        if not (text.isdigit() and text.isascii() and len(text) <= 16) or not (
            1 <= int(text) <= MAX_LIMIT
        ):
            raise QueryInvalid("limit", f"expected an integer 1-{MAX_LIMIT}")
        limit = int(text)
    order = values.get("order", "asc" if after is not None else "desc")
    if order not in ("asc", "desc"):
        raise QueryInvalid("order", 'expected "asc" or "desc"')
    return EventQuery(
        bus=values.get("bus"),
        kind=values.get("kind"),
        min_rank=min_rank,
        since=since,
        after=after,
        limit=limit,
        ascending=order == "asc",
    )
