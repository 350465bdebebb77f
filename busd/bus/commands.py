"""``busgw outbox -c FILE [--all] [--json]``: what the outbox holds.

Reads the database under the config's ``busgw/bus.state_dir`` read-only,
without a running gateway, or beside one (WAL lets a reader in while the
gateway writes; run it as the gateway's user so SQLite can use the
``-shm`` file). Pending events only, unless ``--all`` adds the delivered
and rejected ones still kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from typing import Any, Dict, List
from urllib.parse import quote

from busd.bus.event import rfc3339
from busd.bus.store import COLUMNS, DB_NAME
from busd.config.env import EnvFileError, environment
from busd.config.load import load_config
from busd.errors import ConfigError

__all__ = ["add_command", "run_outbox"]


def add_command(sub: Any) -> None:
    """Add ``outbox`` to the ``busgw`` sub-parsers ``sub``."""
    p = sub.add_parser("outbox", help="list the events waiting for the central")
    p.add_argument("-c", "--config", default="/etc/busgw/busgw.json")
    p.add_argument(
        "--env-file",
        metavar="FILE",
        help="NAME=value file for ${NAME} placeholders",
    )
    p.add_argument(
        "--all", action="store_true", help="also delivered and rejected events"
    )
    p.add_argument("--json", action="store_true", help="one JSON document")


def run_outbox(args: argparse.Namespace) -> int:
    """List the outbox; the exit status (1: no config, bus or database)."""
    try:
        config = load_config(
            args.config, environ=environment(args.env_file)
        ).config
    except (ConfigError, EnvFileError) as err:
        print(err, file=sys.stderr)
        return 1
    if config.bus is None:
        print(
            f"busgw outbox: {args.config} has no busgw/bus block",
            file=sys.stderr,
        )
        return 1
    path = os.path.join(config.bus.state_dir, DB_NAME)
    if not os.path.exists(path):
        print(
            f"busgw outbox: no outbox at {path} (no event stored yet)",
            file=sys.stderr,
        )
        return 1
    try:
        rows = _read(path, args.all)
    except sqlite3.Error as exc:
        print(f"busgw outbox: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump({"outbox": path, "events": rows}, sys.stdout, indent=2)
        print()
        return 0
    pending = sum(1 for r in rows if r["state"] == "pending")
    for r in rows:
        extra = f" attempts={r['attempts']}" if r["attempts"] else ""
        if r["error"]:
            extra += f" error={r['error']!r}"
        acked = " acknowledged" if r["acknowledged_at"] else ""
        print(
            f"{r['seq']:>7} {r['state']:<9} {r['severity']:<8} {r['kind']:<20}"
            f" {r['id']} {r['received_at']}{acked}{extra}"
        )
    shown = (
        "" if not args.all else f", {len(rows) - pending} delivered or rejected"
    )
    print(f"{pending} pending{shown} ({path})")
    return 0


def _read(path: str, everything: bool) -> List[Dict[str, Any]]:
    # mode=ro: never creates or changes anything, even the schema.
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        where = "" if everything else " WHERE state = 'pending'"
        cur = db.execute(f"SELECT {COLUMNS} FROM events{where} ORDER BY seq")
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        db.close()
    out = []
    for r in rows:
        out.append(
            {
                "seq": r["seq"],
                "id": r["id"],
                "state": r["state"],
                "kind": r["kind"],
                "severity": r["severity"],
                "occurred_at": r["occurred_at"],
                "received_at": rfc3339(r["received"]),
                "data": json.loads(r["data"]),
                "attempts": r["attempts"],
                "error": r["error"],
                "delivered_at": rfc3339(r["delivered"])
                if r["delivered"]
                else None,
                "acknowledged_at": rfc3339(r["acked"]) if r["acked"] else None,
            }
        )
    return out
