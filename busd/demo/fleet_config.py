"""The demo fleet's plan and configs, derived from the demo bus config
(``etc/busgw.json``) and the central's (``etc/central.json``).

Pure functions of their arguments (no reactor, no file written) except
:func:`write_json`; the keys the configs name are made by
:mod:`busd.demo.fleet_keys` before any config is loaded, as the loaders
check that key files exist.

Bus ``i`` (from 0) is ``FW-{42+i:04d}``; it serves on ``ports.bus + i``
and its devices on ``ports.devices + 10*i + {1, 2, 3}`` (vehicle,
location, service); a port base of 0 makes every port of that kind
ephemeral. Its files live in ``STATE/FW-0043/``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import attrs

from busd.demo.devices import DEFAULT_DEVICE_PORTS
from busd.demo.route import build_round

if TYPE_CHECKING:  # fleet_keys imports this module
    from busd.demo.fleet_keys import CentralKey

__all__ = [
    "FleetPorts",
    "BusPlan",
    "LINES",
    "DEPOTS",
    "plan_fleet",
    "bus_config",
    "fleet_document",
    "write_json",
]

#: Lines and depots handed out in turn, so the dashboard's filters have
#: something to filter.
LINES = ("FW-12", "FW-7")
DEPOTS = ("Harbour", "Presidio", "Marina")
_FIRST_NUMBER = 42
#: The buses' simulated shifts began at golden-ratio steps around one
#: round of the line, so any N buses are spread along the route and through
#: the drift cycles (busd.demo.drift) instead of driving in a convoy.
_GOLDEN = 0.6180339887


_ROUND_S = build_round()[-1].end_s


def _offset_s(index: int) -> float:
    return round((index * _GOLDEN % 1.0) * _ROUND_S, 1)


@attrs.frozen
class FleetPorts:
    """Port bases on ``interface``; 0 picks free ports (tests)."""

    central: int = 8000
    control: int = 8099
    bus: int = 8101
    devices: int = 9200
    interface: str = "127.0.0.1"

    def bus_port(self, index: int) -> int:
        return self.bus + index if self.bus else 0

    def device_ports(self, index: int) -> Dict[str, int]:
        if not self.devices:
            return {name: 0 for name in DEFAULT_DEVICE_PORTS}
        base = self.devices + 10 * index
        return {
            name: base + k
            for k, name in enumerate(DEFAULT_DEVICE_PORTS, start=1)
        }


@attrs.frozen
class BusPlan:
    """One simulated bus: identity, labels, wanted ports, its files, and
    how far into its shift the simulation starts (``offset_s``)."""

    index: int
    id: str
    line: str
    depot: str
    port: int
    device_ports: Mapping[str, int] = attrs.field(
        converter=lambda m: dict(m), eq=False
    )
    state_dir: str
    offset_s: float

    @property
    def key(self) -> str:
        return os.path.join(self.state_dir, "bus.key.pem")

    @property
    def jwks(self) -> str:
        from busd.bus.key import jwks_path

        return jwks_path(self.key)

    @property
    def config_path(self) -> str:
        return os.path.join(self.state_dir, "busgw.json")

    @property
    def labels(self) -> Dict[str, str]:
        return {"line": self.line, "depot": self.depot}


def plan_fleet(n: int, state_dir: str, ports: FleetPorts) -> Tuple[BusPlan, ...]:
    """The ``n`` buses of the demo fleet; ``state_dir`` made absolute."""
    if n < 1:
        raise ValueError(f"--buses must be at least 1, got {n}")
    if n > 999:
        raise ValueError(f"--buses must be at most 999, got {n}")
    _check_clashes(n, ports)
    root = os.path.abspath(state_dir)
    plans = []
    for i in range(n):
        bus_id = f"FW-{_FIRST_NUMBER + i:04d}"
        plans.append(
            BusPlan(
                index=i,
                id=bus_id,
                line=LINES[i % len(LINES)],
                depot=DEPOTS[(i // len(LINES)) % len(DEPOTS)],
                port=ports.bus_port(i),
                device_ports=ports.device_ports(i),
                state_dir=os.path.join(root, bus_id),
                offset_s=_offset_s(i),
            )
        )
    return tuple(plans)


def _check_clashes(n: int, ports: FleetPorts) -> None:
    """Raise ValueError when two fixed ports of the plan are the same."""
    seen: Dict[int, str] = {}
    wanted = [("the central", ports.central), ("the control", ports.control)]
    for i in range(n):
        wanted.append((f"bus {i + 1}", ports.bus_port(i)))
        for name, port in ports.device_ports(i).items():
            wanted.append((f"bus {i + 1}'s {name} device", port))
    for who, port in wanted:
        if port and port in seen:
            raise ValueError(
                f"port {port} is wanted by {seen[port]} and {who}:"
                " choose other port bases"
            )
        seen[port] = who


def _rewrite_ports(value: Any, moves: Mapping[int, int]) -> Any:
    """``value`` with every ``http://127.0.0.1:OLD`` string moved to NEW."""
    if isinstance(value, str):
        return _LOOPBACK.sub(
            lambda m: f"{m.group(1)}{moves.get(int(m.group(2)), m.group(2))}",
            value,
        )
    if isinstance(value, list):
        return [_rewrite_ports(v, moves) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite_ports(v, moves) for k, v in value.items()}
    return value


_LOOPBACK = re.compile(r"(https?://(?:127\.0\.0\.1|localhost):)([0-9]+)(?![0-9])")


def bus_config(
    raw: Any,
    plan: BusPlan,
    *,
    port: int,
    device_ports: Mapping[str, int],
    central_url: str,
    central: "CentralKey",
) -> Dict[str, Any]:
    """The demo bus config ``raw`` (decoded JSON, not modified) turned
    into bus ``plan``'s: served on ``port``, its devices' URLs moved from
    the default device ports to ``device_ports``, its events sent to
    ``central_url`` and signed with its own key in its state dir, every
    endpoint guarded by the central's key, no admin listener (the buses
    would fight over its port) and no access log (the central's log is
    what the demo shows)."""
    out = copy.deepcopy(raw)
    moves = {
        DEFAULT_DEVICE_PORTS[name]: device_ports[name]
        for name in DEFAULT_DEVICE_PORTS
    }
    out = _rewrite_ports(out, moves)
    out["name"] = f"Foggy Whale bus {plan.id} (demo fleet)"
    out["port"] = port
    extra = out.setdefault("extra_config", {})
    extra["busgw/telemetry"] = {"access_log": False}
    bus = extra.setdefault("busgw/bus", {})
    bus["id"] = plan.id
    bus["state_dir"] = plan.state_dir
    bus["central"] = {
        **bus.get("central", {}),
        "url": central_url,
        "allow_http": True,
        "key": plan.key,
        "generate_key": True,
    }
    extra["busgw/auth"] = {
        "validator": {
            "alg": "ES256",
            "jwk_local_path": central.jwks,
            "issuer": central.issuer,
            "audience": [central.audience_for(plan.id)],
        }
    }
    for endpoint in out.get("endpoints", []):
        static = ((endpoint.get("extra_config") or {}).get("proxy") or {}).get(
            "static"
        )
        data = static.get("data") if isinstance(static, dict) else None
        if isinstance(data, dict) and "bus_id" in data:
            data["bus_id"] = plan.id
    return out


def fleet_document(
    plans: Sequence[BusPlan], urls: Mapping[str, str]
) -> Dict[str, List[Dict[str, Any]]]:
    """The central's fleet file: each bus's ``urls[id]``, its public key
    (the ``bus.jwks.json`` beside its key) and labels."""
    return {
        "buses": [
            {
                "id": p.id,
                "url": urls[p.id],
                "key": p.jwks,
                "labels": p.labels,
            }
            for p in plans
        ]
    }


def write_json(path: str, document: Any, mode: Optional[int] = None) -> None:
    """Write ``document`` to ``path`` (its directory made), replacing it
    whole: a reader never sees half a file."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
