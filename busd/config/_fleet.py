"""The central's fleet: the buses inline in ``busgw/central.fleet`` and
those of ``fleet_file``, a separate JSON file (``{"buses": [...]}`` or a
bare list) that operators regenerate from their asset register.

Both hold the same entries::

    {"id": "FW-0042", "url": "https://10.8.0.42:8443",
     "key": "/etc/busgw/buses/FW-0042.jwks.json",
     "labels": {"line": "FW-12", "depot": "North"}}

Problems in the fleet file are reported with the file's name before their
JSON path (``/etc/busgw/fleet.json: buses[3].url``). The file is read
each time the config loads, so a reload (SIGHUP) re-reads it, and a bad
file fails the reload, which keeps the old fleet.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from busd.config._central import BusEntry
from busd.config._syntax import q
from busd.config._walk import Loc, Node, Report, object_items
from busd.config._json import describe

__all__ = ["read_fleet", "key_problem"]

_ENTRY_KEYS = ("id", "url", "key", "labels")


def read_fleet(node: Node, base_dir: str) -> Tuple[BusEntry, ...]:
    """``fleet`` (inline) then ``fleet_file``'s buses; ids must be unique
    across both. Relative paths (the file, keys) are taken from
    ``base_dir`` (the config file's directory)."""
    seen: Dict[str, str] = {}
    buses: List[BusEntry] = []
    items = node.array("fleet") or []
    buses += _entries(node.report, node.at("fleet"), items, base_dir, seen)
    path = node.string("fleet_file")
    if path:
        path = os.path.join(base_dir, path)
        raw = _read_file(node, path)
        if raw is not None:
            loc = Loc(f"{path}: buses", node.at("fleet_file").order)
            folder = os.path.dirname(path)
            buses += _entries(node.report, loc, raw, folder, seen)
    return tuple(buses)


def _read_file(node: Node, path: str) -> Optional[List[Any]]:
    """The fleet file's list of buses, or None (reported)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except OSError as exc:
        node.report.error(
            node.at("fleet_file"), f"cannot read {path}: {exc.strerror or exc}"
        )
        return None
    except ValueError as exc:
        node.report.error(node.at("fleet_file"), f"{path} is not JSON: {exc}")
        return None
    if isinstance(data, dict) and isinstance(data.get("buses"), list):
        return list(data["buses"])
    if isinstance(data, list):
        return data
    node.report.error(
        node.at("fleet_file"),
        f'{path}: expected {{"buses": [...]}} or a list, got {describe(data)}',
    )
    return None


def _entries(
    report: Report,
    loc: Loc,
    items: Sequence[Any],
    base_dir: str,
    seen: Dict[str, str],
) -> List[BusEntry]:
    from busd.config._bus import BUS_ID_PATTERN

    buses: List[BusEntry] = []
    for _, child in object_items(report, loc, list(items)):
        bus_id = child.string("id", required='the bus id, e.g. "FW-0042"')
        if bus_id and not BUS_ID_PATTERN.fullmatch(bus_id):
            child.report.error(
                child.at("id"), f"invalid bus id {q(bus_id)} (letters, digits, . _ -)"
            )
            bus_id = ""
        elif bus_id in seen:
            child.report.error(
                child.at("id"), f"duplicate bus id {q(bus_id)} (first at {seen[bus_id]})"
            )
            bus_id = ""
        url = _url(child)
        key = child.string("key") or None
        if key is not None:
            key = os.path.join(base_dir, key)
            problem = key_problem(key)
            if problem:
                child.report.error(child.at("key"), problem)
        labels = _labels(child)
        child.finish(_ENTRY_KEYS)
        if bus_id and url:
            seen[bus_id] = child.loc.text
            buses.append(BusEntry(id=bus_id, url=url, key=key, labels=labels))
    return buses


def _url(node: Node) -> str:
    url = node.string("url", required='the bus gateway\'s base URL, e.g. "https://10.8.0.42:8443"')
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        node.report.error(node.at("url"), f"not an http(s) URL: {q(url)}")
        return ""
    if parts.query or parts.fragment:
        node.report.error(node.at("url"), "a base URL has no query or fragment")
        return ""
    return url.rstrip("/")


def _labels(node: Node) -> Dict[str, str]:
    labels = node.child("labels")
    if labels is None:
        return {}
    out: Dict[str, str] = {}
    for name in list(labels.raw):
        value = labels.take(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[name] = str(value)
        else:
            labels.mismatch(name, "a string", value)
    return out


def key_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a bus's public key (a JWK set, one JWK, or a
    PEM public key), or None."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(1024 * 1024)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if data.lstrip().startswith(b"{"):
        try:
            doc = json.loads(data)
        except ValueError:
            return f"{path} is not JSON"
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if isinstance(keys, list) and keys and all(isinstance(k, dict) for k in keys):
            return None
        if isinstance(doc, dict) and "kty" in doc:
            return None
        return f'{path}: expected a JWK set {{"keys": [...]}} or a JWK'
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        return f"{path} is neither a JWK set nor a PEM public key"
    return None
