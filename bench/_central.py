"""S5: the central with 1,000 buses (issue 7), for ``bench.py`` and on its
own (``.venv/bin/python bench/central.py [BUSES] [SECONDS]``).

The fake fleet is one nginx answering ``/bus/<id>/health`` and
``/bus/<id>/status`` for any id (every tenth bus is ``degraded``), so
1,000 buses cost nothing and never limit the result; its ``stub_status``
counts the requests the central makes. The central (``python -m busd
run``) polls all of them every 5 s, signing a token per bus as it would in
production. Measured once every bus is known:

* the poll rate: requests nginx served per second over the window,
  divided by the two paths of a bus round (target: buses / interval);
* the central's CPU share while it only polls (target < 50 % of a core);
* ``/fleet/health`` under ``hey -c 10`` (p99 target < 20 ms) and under
  ``wrk -c 100``, and the central's CPU and RSS meanwhile.

Bench code, not part of busd: it may block and read the wall clock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import time
import urllib.request
from typing import Callable, List, Tuple

from _load import Sample, run_hey, run_wrk
from _servers import Server, _nginx_head, tree_cpu, tree_peak_rss, reset_peak_rss
from _table import Row

__all__ = ["s5_rows", "fleet_nginx_conf", "central_config"]

FLEET_PORT = 18510
CENTRAL_PORT = 18520
INTERVAL = 5.0

_HEALTH_OK = json.dumps({
    "status": "ok", "bus": "fake", "checked_at": "2026-11-26T10:00:00Z",
    "checks": [{"name": "ecu", "kind": "backend", "level": "critical", "status": "ok",
                "reason": "answered 200"}],
}, separators=(",", ":"))
_HEALTH_DEGRADED = json.dumps({
    "status": "degraded", "bus": "fake", "checked_at": "2026-11-26T10:00:00Z",
    "checks": [{"name": "fuel", "kind": "value", "level": "warning", "status": "warning",
                "reason": "vehicle.fuel.level_pct = 9.5 is below min 15"}],
}, separators=(",", ":"))
_STATUS = json.dumps({
    "bus_id": "fake", "line_name": "Foggy Whale",
    "vehicle": {"fuel": {"level_pct": 61.5, "range_km": 320}, "speed_kmh": 38.0},
    "service": {"line": "FW-12", "passengers": 27, "driver": {"name": "Ada"}},
    "location": {"lat": 37.8, "lon": -122.41, "next_stop": "Pier 39"},
}, separators=(",", ":"))


def _quote(body: str) -> str:
    return "'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fleet_nginx_conf(tmp: str, port: int) -> str:
    """One nginx standing in for every bus: ``/bus/<id>/health`` (ids
    ending in 7 degraded) and ``/bus/<id>/status``; ``/nginx_status``
    counts requests."""
    return _nginx_head(tmp, 1) + f"""
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type application/json;
    location = /nginx_status {{ stub_status; }}
    location ~ ^/bus/[^/]*7/health$ {{ return 200 {_quote(_HEALTH_DEGRADED)}; }}
    location ~ ^/bus/[^/]+/health$ {{ return 200 {_quote(_HEALTH_OK)}; }}
    location ~ ^/bus/[^/]+/status$ {{ return 200 {_quote(_STATUS)}; }}
  }}
}}
"""


def central_config(tmp: str, buses: int, fleet_port: int, port: int) -> str:
    """A central polling ``buses`` fake buses every 5 s; returns its path."""
    fleet = [
        {"id": f"FW-{i:04d}", "url": f"http://127.0.0.1:{fleet_port}/bus/FW-{i:04d}",
         "labels": {"line": ("FW-12", "FW-7", "FW-3")[i % 3], "depot": "North"}}
        for i in range(buses)
    ]
    fleet_file = os.path.join(tmp, "fleet.json")
    with open(fleet_file, "w") as handle:
        json.dump({"buses": fleet}, handle)
    config = {
        "version": 3,
        "name": "bench central",
        "port": port,
        "listen_ip": "127.0.0.1",
        "extra_config": {
            "busgw/telemetry": {"access_log": False},
            "busgw/limits": {"max_in_flight": 4096},
            "busgw/central": {
                "state_dir": os.path.join(tmp, "central-state"),
                "fleet_file": fleet_file,
                "poll": {
                    "interval": f"{INTERVAL:g}s", "timeout": "2s", "concurrency": 50,
                    "endpoints": ["/status"],
                    "values": {"fuel": "status.vehicle.fuel.level_pct",
                               "passengers": "status.service.passengers",
                               "speed": "status.vehicle.speed_kmh"},
                },
                "signing": {"key": os.path.join(tmp, "central-state", "central.key.pem"),
                            "kid": "central-bench", "generate_key": True},
            },
        },
        "endpoints": [],
    }
    path = os.path.join(tmp, "central.json")
    with open(path, "w") as handle:
        json.dump(config, handle, indent=1)
    return path


def _requests(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/nginx_status", timeout=5) as a:
        text = a.read().decode()
    # "server accepts handled requests\n 1 1 7"
    return int(re.findall(r"\d+", text.splitlines()[2])[2])


def _all_known(url: str, buses: int, timeout: float) -> float:
    """Wait until /fleet/health counts every bus online; seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body = json.loads(answer.read())
            if body.get("states", {}).get("online") == buses:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the central did not see all {buses} buses online in {timeout:.0f}s")


def s5_rows(
    tmp: str,
    log: str,
    start: Callable[[Server], Server],
    python: List[str],
    buses: int = 1000,
    seconds: float = 30.0,
    rounds: int = 3,
) -> List[Row]:
    """Start the fake fleet and a central (``python`` + ``-m busd``), and
    measure; every process is registered through ``start`` so the caller
    stops it."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    ndir = os.path.join(tmp, "fleet")
    os.makedirs(ndir, exist_ok=True)
    conf = os.path.join(ndir, "nginx.conf")
    with open(conf, "w") as handle:
        handle.write(fleet_nginx_conf(ndir, FLEET_PORT))
    fleet = start(Server("fake fleet", [nginx, "-p", ndir, "-c", conf],
                         f"http://127.0.0.1:{FLEET_PORT}/nginx_status", log))
    fleet.wait_ready()
    config = central_config(tmp, buses, FLEET_PORT, CENTRAL_PORT)
    health = f"http://127.0.0.1:{CENTRAL_PORT}/fleet/health"
    central = start(Server("central", python + ["-m", "busd", "run", "-c", config,
                                                "--log-level", "warn"], health, log))
    central.wait_ready(60)
    warm = _all_known(health, buses, 4 * INTERVAL + 30)
    time.sleep(INTERVAL)  # one whole interval in steady state
    # Polling alone: the poll rate and the central's CPU share.
    before_req, before_cpu, t0 = _requests(FLEET_PORT), tree_cpu(central.pid), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    polled = (_requests(FLEET_PORT) - before_req - 1) / 2 / wall
    cpu = (tree_cpu(central.pid) - before_cpu) / wall
    rows = [Row(
        name=f"S5 poller, {buses} buses every {INTERVAL:g}s",
        note=f"{polled:.0f} buses polled/s (schedule {buses / INTERVAL:.0f}/s), "
        f"central CPU {100 * cpu:.0f} % of one core, all online {warm:.0f}s after start",
    )]
    during: List[str] = []
    for tool, conc, run in (("hey", 10, run_hey), ("wrk", 100, run_wrk)):
        samples: List[Tuple[Sample, float, float]] = []
        rates: List[float] = []
        for _ in range(rounds):
            reset_peak_rss(central.pid)
            c0, w0, r0 = tree_cpu(central.pid), time.monotonic(), _requests(FLEET_PORT)
            sample = run(health, 10, conc)
            wall = time.monotonic() - w0
            share = (tree_cpu(central.pid) - c0) / wall
            rates.append((_requests(FLEET_PORT) - r0 - 1) / 2 / wall)
            samples.append((sample, share, tree_peak_rss(central.pid)))
            print(f"S5 {tool} c={conc}: {sample.rps:.0f} req/s p99 {sample.p99:.1f} ms",
                  file=sys.stderr, flush=True)
        rows.append(Row(
            name=f"S5 /fleet/health ({buses} buses)",
            load=f"{tool} c={conc}",
            rps=statistics.median(s.rps for s, _, _ in samples),
            p50=statistics.median(s.p50 for s, _, _ in samples),
            p99=statistics.median(s.p99 for s, _, _ in samples),
            errors=sum(s.errors for s, _, _ in samples),
            cpu=statistics.median(c for _, c, _ in samples),
            rss=max(r for _, _, r in samples),
        ))
        during.append(f"{statistics.median(rates):.0f}/s under {tool} c={conc}")
    rows.insert(1, Row(
        name="S5 poller while /fleet/health is loaded",
        note=f"buses polled {', '.join(during)} (schedule {buses / INTERVAL:.0f}/s)",
    ))
    return rows
