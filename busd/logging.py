"""Log output: a JSON-lines observer for ``twistd --logger`` and the CLI.

One JSON object per line, flat and searchable: ``time`` (ISO 8601 UTC),
``level``, ``namespace``, ``message`` (the formatted text), then every
field of the event that is plain data (``status``, ``request_id``,
``endpoint``...) and, for failures, ``traceback``. journald and log
shippers read it from stdout as it is.

``twistd --logger busd.logging.json_observer`` takes a zero-argument
factory; its lowest level comes from ``BUSGW_LOG_LEVEL`` (default info).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from typing import IO, Any, Dict, Optional, Sequence

from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
    textFileLogObserver,
)
from zope.interface import implementer

__all__ = [
    "JSONLinesObserver",
    "json_observer",
    "filtered",
    "level_named",
    "start_logging",
]

# Keys of Twisted's legacy log events that repeat what "message" says.
_LEGACY = frozenset({"message", "format", "isError", "system", "time", "why"})


def level_named(name: str) -> LogLevel:
    """``debug``/``info``/``warn``/``error``/``critical`` as a LogLevel."""
    return LogLevel.levelWithName(name.lower())


@implementer(ILogObserver)
class JSONLinesObserver:
    """Writes each event as one JSON line to ``out``."""

    def __init__(self, out: IO[str]):
        self._out = out

    def __call__(self, event: Dict[str, Any]) -> None:
        record: Dict[str, Any] = {
            "time": datetime.fromtimestamp(
                event.get("log_time", 0.0), timezone.utc
            ).isoformat(timespec="milliseconds"),
            "level": getattr(event.get("log_level"), "name", "info"),
            "namespace": event.get("log_namespace", ""),
            "message": formatEvent(event),
        }
        for key, value in event.items():
            if key.startswith("log_") or key in _LEGACY or key in record:
                continue
            if _plain(value):
                record[key] = value
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = failure.getTraceback()
        self._out.write(json.dumps(record, separators=(",", ":"), default=str))
        self._out.write("\n")
        self._out.flush()


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def filtered(observer: ILogObserver, level: LogLevel) -> ILogObserver:
    """``observer`` seeing only events at ``level`` or above."""
    return FilteringLogObserver(
        observer, [LogLevelFilterPredicate(defaultLogLevel=level)]
    )


def start_logging(
    level: str, form: str = "text", predicates: Sequence[ILogFilterPredicate] = ()
) -> None:
    """The CLI's log: ``text`` lines or ``json`` lines on stdout, events
    at ``level`` or above that pass every one of ``predicates``."""
    out = JSONLinesObserver(sys.stdout) if form == "json" else textFileLogObserver(sys.stdout)
    observer = filtered(out, level_named(level))
    if predicates:
        observer = FilteringLogObserver(observer, list(predicates))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def json_observer(out: Optional[IO[str]] = None) -> ILogObserver:
    """JSON lines on stdout at ``BUSGW_LOG_LEVEL`` (default ``info``); the
    factory ``twistd --logger`` calls with no argument."""
    level = level_named(os.environ.get("BUSGW_LOG_LEVEL", "info"))
    return filtered(JSONLinesObserver(out or sys.stdout), level)
