"""The outbox on disk: one SQLite database in WAL mode, used from ONE
thread at a time (the outbox's own worker, see :mod:`busd.bus.outbox`).

Every method here blocks (disk I/O, fsync); never call one from the
reactor thread. Each write is one transaction, committed before the
method returns, so a caller told "stored" may promise durability.

The bounds and the full policy (README "Events"):

* ``max_events`` / ``max_bytes`` bound every row on disk. When a new event
  does not fit, *history* rows (delivered or rejected, oldest first) are
  pruned to make room, except delivered critical events not yet
  acknowledged (they are what the health report's ``event`` checks see).
* Pending events are never pruned: an accepted event is a promise.
* If it still does not fit, a non-critical event is refused (the device
  gets 503 and keeps it); a critical one is accepted beyond the soft caps
  up to ``hard_max_events`` / ``hard_max_bytes``, then refused too.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple

from busd.bus._sql import (
    COLUMNS,
    COUNTS,
    HELD,
    SCHEMA,
    Counts,
    StoreUnavailable,
    Transaction,
    hold_lock,
)
from busd.bus.event import NewEvent
from busd.config._bus import OutboxConfig

__all__ = [
    "Store",
    "Counts",
    "Row",
    "StoreUnavailable",
    "ACCEPTED",
    "DUPLICATE",
    "CONFLICT",
    "FULL",
    "DB_NAME",
    "COLUMNS",
]

DB_NAME = "outbox.sqlite3"
ACCEPTED, DUPLICATE, FULL = "accepted", "duplicate", "full"
#: The id is taken by a *different* event: the device reused a key.
CONFLICT = "conflict"
Row = Dict[str, Any]


class Store:
    """The events table under ``state_dir``; see the module docstring."""

    def __init__(self, state_dir: str, limits: OutboxConfig):
        self.path = os.path.join(state_dir, DB_NAME)
        self._dir = state_dir
        self._limits = limits
        self._db: Optional[sqlite3.Connection] = None
        self._why = "the outbox database is not open"
        self._lock_fd: Optional[int] = None
        self.counts = Counts()

    # -- life cycle ----------------------------------------------------

    def load(self) -> Tuple[List[Row], Counts]:
        """Open (creating the directory and table if needed) and return the
        unacknowledged events, oldest first, with the counts."""
        if self._db is None:
            try:
                self._db = self._open()
            except StoreUnavailable as exc:
                self._why = str(exc)
                raise
        rows = self._rows(
            f"SELECT {COLUMNS} FROM events WHERE acked IS NULL ORDER BY seq"
        )
        return rows, self._recount()

    def _open(self) -> sqlite3.Connection:
        try:
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
            self._lock()
            # Explicit transactions (isolation_level=None); any one thread
            # at a time may call (the worker pool may replace its thread).
            db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=10,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(
                    f"journal_mode is {mode}, not wal"
                )
            # WAL with synchronous=FULL fsyncs the log at every commit, so a
            # committed event survives power loss, not just a crash of this
            # process (NORMAL would only sync at checkpoints). The 202 is
            # sent after that commit.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            db.close()
            self._unlock()
            raise StoreUnavailable(f"cannot use {self.path}: {exc}") from None
        return db

    def _lock(self) -> None:
        """Hold ``outbox.lock`` while open: two gateways on one outbox
        would each send it, out of order. The kernel drops the lock when
        the process dies, even by SIGKILL."""
        if self._lock_fd is not None:
            return
        self._lock_fd = hold_lock(
            os.path.join(self._dir, "outbox.lock"),
            f"another process uses the outbox in {self._dir}",
        )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the last descriptor releases the lock

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back)."""
        if self._db is not None:
            db, self._db = self._db, None
            self._why = "the outbox database is closed"
            db.close()
        self._unlock()

    # -- writes ----------------------------------------------------------

    def insert(
        self, events: Sequence[NewEvent], now: float
    ) -> Tuple[List[Tuple[str, Optional[Row]]], List[str], Counts]:
        """Store ``events`` in one transaction. Returns, per event, its
        outcome (ACCEPTED with its row, DUPLICATE, CONFLICT, FULL), the ids of history
        rows pruned to make room, and the counts after commit."""
        outcomes: List[Tuple[str, Optional[Row]]] = []
        pruned: List[str] = []
        with self._transaction() as db:
            counts = [self.counts.stored, self.counts.stored_bytes]
            for event in events:
                same = db.execute(
                    "SELECT kind, severity, occurred_at, data FROM events"
                    " WHERE id = ?",
                    (event.id,),
                ).fetchone()
                if same is not None:
                    # A re-post of the same event is answered as before; a
                    # different event under a used id must not be "stored"
                    # by a 202 that drops it.
                    stored = tuple(same)
                    given = (event.kind, event.severity, event.occurred_at, event.data)
                    outcomes.append(
                        (DUPLICATE if stored == given else CONFLICT, None)
                    )
                    continue
                if not self._make_room(db, event, counts, pruned):
                    outcomes.append((FULL, None))
                    continue
                cur = db.execute(
                    "INSERT INTO events (id, kind, severity, occurred_at, received, data, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.id,
                        event.kind,
                        event.severity,
                        event.occurred_at,
                        now,
                        event.data,
                        event.size,
                    ),
                )
                counts[0] += 1
                counts[1] += event.size
                outcomes.append((ACCEPTED, self._row(db, cur.lastrowid)))
        return outcomes, pruned, self._recount()

    def _make_room(
        self,
        db: sqlite3.Connection,
        event: NewEvent,
        counts: List[int],
        pruned: List[str],
    ) -> bool:
        """Whether ``event`` may go in, pruning history rows if needed."""
        limits = self._limits

        def fits(events: int, size: int) -> bool:
            return counts[0] + 1 <= events and counts[1] + event.size <= size

        while not fits(limits.max_events, limits.max_bytes):
            victims = db.execute(
                f"SELECT seq, id, size FROM events WHERE NOT {HELD} ORDER BY seq LIMIT 32"
            ).fetchall()
            if not victims:
                break
            for seq, victim, size in victims:
                db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                pruned.append(victim)
                counts[0] -= 1
                counts[1] -= size
                if fits(limits.max_events, limits.max_bytes):
                    break
        if fits(limits.max_events, limits.max_bytes):
            return True
        return event.severity == "critical" and fits(
            limits.hard_max_events, limits.hard_max_bytes
        )

    def mark(
        self,
        delivered: Sequence[str],
        rejected: Sequence[Tuple[str, str]],
        now: float,
    ) -> Counts:
        """Record deliveries and rejections by the central."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE events SET state = 'delivered', delivered = ?,"
                " error = NULL WHERE id = ? AND state = 'pending'",
                [(now, i) for i in delivered],
            )
            db.executemany(
                "UPDATE events SET state = 'rejected', error = ?"
                " WHERE id = ? AND state = 'pending'",
                [(reason, i) for i, reason in rejected],
            )
        return self._recount()

    def note_failure(self, event_id: str, reason: str) -> None:
        """Count a failed delivery attempt (for ``busgw outbox``)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE events SET attempts = attempts + 1, error = ? WHERE id = ?",
                (reason, event_id),
            )

    def acknowledge(self, event_id: str, now: float) -> Tuple[bool, Counts]:
        """Mark ``event_id`` acknowledged; False when no such event."""
        with self._transaction() as db:
            found = db.execute(
                "SELECT 1 FROM events WHERE id = ?", (event_id,)
            ).fetchone()
            db.execute(
                "UPDATE events SET acked = ? WHERE id = ? AND acked IS NULL",
                (now, event_id),
            )
        return found is not None, self._recount()

    # -- reads -----------------------------------------------------------

    def pending(self, limit: int) -> List[Row]:
        """Up to ``limit`` pending events, in the order they were stored."""
        return self._rows(
            f"SELECT {COLUMNS} FROM events WHERE state = 'pending'"
            " ORDER BY seq LIMIT ?",
            (limit,),
        )

    # -- helpers ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(self._why)
        return self._db

    def _transaction(self) -> Transaction:
        return Transaction(self._connection(), self.path)

    def _rows(self, sql: str, args: Tuple[Any, ...] = ()) -> List[Row]:
        try:
            cur = self._connection().execute(sql, args)
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self.path}: {exc}") from None

    def _row(self, db: sqlite3.Connection, seq: Optional[int]) -> Row:
        cur = db.execute(f"SELECT {COLUMNS} FROM events WHERE seq = ?", (seq,))
        names = [c[0] for c in cur.description]
        return dict(zip(names, cur.fetchone()))

    def _recount(self) -> Counts:
        try:
            row = self._connection().execute(COUNTS).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self.path}: {exc}") from None
        self.counts = Counts.from_row(row)
        return self.counts
