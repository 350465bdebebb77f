"""The outbox's SQL: the schema, the counts query, transactions, and the
one error every storage fault becomes (:class:`StoreUnavailable`)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import Any, Optional, Sequence

import attrs

__all__ = [
    "hold_lock",
    "SCHEMA",
    "HELD",
    "COUNTS",
    "COLUMNS",
    "Counts",
    "StoreUnavailable",
    "Transaction",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received REAL NOT NULL,
    data TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    delivered REAL,
    acked REAL
);
CREATE INDEX IF NOT EXISTS events_state ON events (state, seq);
CREATE INDEX IF NOT EXISTS events_unacked ON events (seq) WHERE acked IS NULL;
"""
# Rows that must stay: pending, and delivered critical ones not acked.
HELD = (
    "(state = 'pending' OR (state = 'delivered'"
    " AND severity = 'critical' AND acked IS NULL))"
)
COUNTS = f"""
SELECT count(*), total(size),
       total(state = 'pending'), total(CASE WHEN state = 'pending' THEN size END),
       total({HELD}), total(CASE WHEN {HELD} THEN size END),
       min(CASE WHEN state = 'pending' THEN received END),
       total(state = 'rejected')
FROM events
"""
COLUMNS = (
    "seq, id, kind, severity, occurred_at, received, data, state, attempts,"
    " error, delivered, acked"
)


class StoreUnavailable(Exception):
    """The database cannot be opened or written (read-only or full disk,
    missing directory, corrupt file); the message says why."""


def hold_lock(path: str, busy: str) -> int:
    """Take an exclusive lock on ``path`` (made 0600) and return the
    descriptor that holds it: closing it releases the lock, and the kernel
    drops it when the process dies, even by SIGKILL. Raises
    :class:`StoreUnavailable` (``busy``) when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreUnavailable(busy) from None
    return fd


@attrs.frozen
class Counts:
    """What the outbox holds; ``held`` is what pruning may not remove."""

    stored: int = 0
    stored_bytes: int = 0
    pending: int = 0
    pending_bytes: int = 0
    held: int = 0
    held_bytes: int = 0
    oldest_pending: Optional[float] = None
    rejected: int = 0

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "Counts":
        """From the one row of :data:`COUNTS`."""
        return cls(
            stored=int(row[0]),
            stored_bytes=int(row[1]),
            pending=int(row[2]),
            pending_bytes=int(row[3]),
            held=int(row[4]),
            held_bytes=int(row[5]),
            oldest_pending=row[6],
            rejected=int(row[7]),
        )


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error;
    sqlite errors leave as :class:`StoreUnavailable` naming ``path``."""

    def __init__(self, db: sqlite3.Connection, path: str):
        self._db = db
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"cannot write {self._path}: {exc}"
            ) from None
        return self._db

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
                return None
            except sqlite3.Error as error:
                exc = error
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to roll back
        if isinstance(exc, sqlite3.Error):
            raise StoreUnavailable(
                f"cannot write {self._path}: {exc}"
            ) from None
