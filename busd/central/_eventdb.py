"""The central's event database: one SQLite file in WAL mode, used from ONE
thread (the events part's own worker, see :mod:`busd.central.events_store`).

Every method blocks (disk I/O, fsync): never call one on the reactor
thread. Each write is one transaction committed before the method returns
(``synchronous=FULL``: the WAL is fsynced at every commit), so a caller
told "stored" may promise durability to the bus.

Tables: ``events`` (one row per ``(bus, id)``; ``seq`` is the central's
arrival order, which cursors name) and ``deliveries`` (one row per webhook
and event still to be delivered; a delivered or abandoned one is deleted).
At most ``max_events`` events are kept: the oldest are pruned, with any
delivery still pending for them (logged by the caller).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple

from busd.bus._sql import StoreUnavailable, Transaction, hold_lock
from busd.central.events_schema import SEVERITY_RANK, IncomingEvent
from busd.central.events_sql import (
    COLUMNS,
    CONFLICT,
    DUPLICATE,
    NEW,
    SCHEMA,
    EventQuery,
    Row,
    event_json,
)

__all__ = [
    "EventDB",
    "EventQuery",
    "Row",
    "StoreUnavailable",
    "NEW",
    "DUPLICATE",
    "CONFLICT",
    "event_json",
]

class EventDB:
    """The database at ``path``; see the module docstring."""

    def __init__(self, path: str, max_events: int):
        self.path = path
        self.max_events = max(1, max_events)
        self._db: Optional[sqlite3.Connection] = None
        self._lock_fd: Optional[int] = None
        self.count = 0

    # -- life cycle ------------------------------------------------------

    def open(self) -> int:
        """Open (creating the directory and tables); the number of
        deliveries still pending from before."""
        if self._db is not None:
            return self._pending_count()
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self._lock()
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            self._unlock()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from None
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}")
            # FULL: the WAL is fsynced at each commit, so an answered 201
            # survives power loss, not just a crash of this process.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            self.count = db.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.Error as exc:
            db.close()
            self._unlock()
            raise StoreUnavailable(f"cannot use {self.path}: {exc}") from None
        self._db = db
        return self._pending_count()

    def _lock(self) -> None:
        """Hold ``<db>.lock``: two centrals on one database would each
        deliver its webhooks."""
        if self._lock_fd is not None:
            return
        self._lock_fd = hold_lock(
            self.path + ".lock",
            f"another process uses the event database {self.path}",
        )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
        self._unlock()

    # -- events ------------------------------------------------------------

    def insert(
        self, batch: Sequence[Tuple[IncomingEvent, Sequence[str]]], now: float
    ) -> Tuple[List[Tuple[str, Optional[Row]]], Dict[str, int]]:
        """Store each event with a pending delivery per webhook named with
        it (a NEW event gets one row per distinct URL), in one transaction.
        Returns each event's outcome (NEW with its row, DUPLICATE or
        CONFLICT with the stored row) and the deliveries pruning dropped,
        per webhook URL (so the reactor side can keep an exact count)."""
        counted = self.count
        try:
            return self._insert(batch, now)
        except BaseException:
            # Rolled back (a full disk, a failed commit): a count left too
            # high would make the next commits prune events to keep.
            self.count = counted
            raise

    def _insert(
        self,
        batch: Sequence[Tuple[IncomingEvent, Sequence[str]]],
        now: float,
    ) -> Tuple[List[Tuple[str, Optional[Row]]], Dict[str, int]]:
        outcomes: List[Tuple[str, Optional[Row]]] = []
        with self._transaction() as db:
            for event, hooks in batch:
                stored = self._one(db, "bus = ? AND id = ?", (event.bus, event.id))
                if stored is not None:
                    same = _as_incoming(stored).same_content(event)
                    outcomes.append((DUPLICATE if same else CONFLICT, stored))
                    continue
                cur = db.execute(
                    "INSERT INTO events (bus, id, kind, severity, rank,"
                    " occurred_at, bus_seq, bus_received_at, received, data)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.bus,
                        event.id,
                        event.kind,
                        event.severity,
                        SEVERITY_RANK[event.severity],
                        event.occurred_at,
                        event.seq,
                        event.bus_received_at,
                        now,
                        event.data,
                    ),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO deliveries (hook, event_seq,"
                    " created, due) VALUES (?, ?, ?, ?)",
                    [(hook, cur.lastrowid, now, now) for hook in hooks],
                )
                self.count += 1
                outcomes.append((NEW, self._one(db, "seq = ?", (cur.lastrowid,))))
            dropped = self._prune(db)
        return outcomes, dropped

    def _prune(self, db: sqlite3.Connection) -> Dict[str, int]:
        excess = self.count - self.max_events
        if excess <= 0:
            return {}
        (last,) = db.execute(
            "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET ?", (excess - 1,)
        ).fetchone()
        db.execute("DELETE FROM events WHERE seq <= ?", (last,))
        dropped = db.execute(
            "SELECT hook, count(*) FROM deliveries WHERE event_seq <= ?"
            " GROUP BY hook",
            (last,),
        ).fetchall()
        db.execute("DELETE FROM deliveries WHERE event_seq <= ?", (last,))
        self.count -= excess
        return {str(hook): int(n) for hook, n in dropped}

    def list(self, query: EventQuery) -> List[Row]:
        """The events matching ``query``, in its order, at most its limit."""
        where: List[str] = ["rank >= ?"]
        args: List[Any] = [query.min_rank]
        for column, value in (("bus", query.bus), ("kind", query.kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("received >= ?")
            args.append(query.since)
        if query.after is not None:
            where.append("seq > ?")
            args.append(query.after)
        order = "ASC" if query.ascending else "DESC"
        args.append(query.limit)
        return self._rows(
            f"SELECT {COLUMNS} FROM events WHERE {' AND '.join(where)}"
            f" ORDER BY seq {order} LIMIT ?",
            tuple(args),
        )

    def get(self, bus: str, event_id: str) -> Optional[Row]:
        rows = self._rows(
            f"SELECT {COLUMNS} FROM events WHERE bus = ? AND id = ?",
            (bus, event_id),
        )
        return rows[0] if rows else None

    # -- webhook deliveries ------------------------------------------------

    def next_delivery(self, hook: str) -> Optional[Row]:
        """The oldest pending delivery to ``hook`` with its event's
        columns (``created``, ``due``, ``attempts`` added), or None."""
        rows = self._rows(
            f"SELECT d.created, d.due, d.attempts, e.{COLUMNS.replace(', ', ', e.')}"
            " FROM deliveries d JOIN events e ON e.seq = d.event_seq"
            " WHERE d.hook = ? ORDER BY d.event_seq LIMIT 1",
            (hook,),
        )
        return rows[0] if rows else None

    def retry(
        self, hook: str, seq: int, attempts: int, due: float, error: str
    ) -> None:
        """Record a failed attempt; the next is due at ``due``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE deliveries SET attempts = ?, due = ?, error = ?"
                " WHERE hook = ? AND event_seq = ?",
                (attempts, due, error, hook, seq),
            )

    def finish(self, hook: str, seq: int) -> int:
        """The delivery is over (delivered, or given up): the rows deleted,
        0 when pruning dropped it while it was being tried."""
        with self._transaction() as db:
            return int(
                db.execute(
                    "DELETE FROM deliveries WHERE hook = ? AND event_seq = ?",
                    (hook, seq),
                ).rowcount
            )

    def pending_by_hook(self) -> Dict[str, int]:
        """The deliveries still pending, per webhook URL (configured or
        not: a URL removed from the config keeps its rows)."""
        sql = "SELECT hook, count(*) AS n FROM deliveries GROUP BY hook"
        return {r["hook"]: int(r["n"]) for r in self._rows(sql)}

    # -- helpers ------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"the event database {self.path} is not open")
        return self._db

    def _transaction(self) -> Transaction:
        return Transaction(self._connection(), self.path)

    def _pending_count(self) -> int:
        return int(self._rows("SELECT count(*) AS n FROM deliveries")[0]["n"])

    def _one(
        self, db: sqlite3.Connection, where: str, args: Tuple[Any, ...]
    ) -> Optional[Row]:
        cur = db.execute(f"SELECT {COLUMNS} FROM events WHERE {where}", args)
        found = cur.fetchone()
        if found is None:
            return None
        return dict(zip([c[0] for c in cur.description], found))

    def _rows(self, sql: str, args: Tuple[Any, ...] = ()) -> List[Row]:
        try:
            cur = self._connection().execute(sql, args)
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self.path}: {exc}") from None


def _as_incoming(row: Row) -> IncomingEvent:
    return IncomingEvent(
        id=row["id"],
        bus=row["bus"],
        kind=row["kind"],
        severity=row["severity"],
        occurred_at=row["occurred_at"],
        data=row["data"],
    )
