"""Servers under test: their configs (generated into a temp dir), their
processes (started on loopback, stopped by PID) and what they cost
(CPU time and peak RSS of the whole process tree, read from /proc).

Bench code, not part of busd: it may block and read the wall clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from typing import Dict, List, Optional, Sequence

__all__ = [
    "BODY_VEHICLE",
    "BODY_SERVICE",
    "Server",
    "nginx_backend_conf",
    "nginx_proxy_conf",
    "caddyfile",
    "busgw_config",
    "tree_cpu",
    "tree_peak_rss",
    "reset_peak_rss",
    "tree_rss",
]

_TICK = os.sysconf("SC_CLK_TCK")

# The fixed ~300-byte JSON bodies nginx serves as the bus's device services.
BODY_VEHICLE = json.dumps(
    {
        "vehicle_id": "FW-0042",
        "fuel": {"level_pct": 78.5, "range_km": 412},
        "speed_kmh": 47.2,
        "engine": {"temp_c": 88.1, "rpm": 1850, "oil_bar": 3.9},
        "battery_v": 27.6,
        "odometer_km": 183422,
        "doors": {"front": "closed", "rear": "closed"},
        "updated": "2024-05-01T10:00:00Z",
    },
    separators=(",", ":"),
)
BODY_SERVICE = json.dumps(
    {
        "line": "FW-12",
        "direction": "inbound",
        "passengers": 31,
        "capacity": 90,
        "driver": {"name": "Ada Byron", "id": "D-1815", "shift": "early"},
        "next_departure": "10:12",
        "delay_s": 45,
        "stops_left": 14,
        "ticketing": {"online": True, "validators": 3},
        "updated": "2024-05-01T10:00:00Z",
    },
    separators=(",", ":"),
)


def _nginx_quote(body: str) -> str:
    return "'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _nginx_head(tmp: str, workers: int) -> str:
    return f"""
daemon off;
master_process on;
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
"""


def nginx_backend_conf(tmp: str, ports: Sequence[int]) -> str:
    """nginx on both cores serving the fixed JSON bodies (vehicle on the
    first port, service on the second)."""
    conf = _nginx_head(tmp, 2)
    for port, body in zip(ports, (BODY_VEHICLE, BODY_SERVICE)):
        conf += f"""
  server {{
    listen 127.0.0.1:{port} backlog=4096 reuseport;
    default_type application/json;
    location / {{ return 200 {_nginx_quote(body)}; }}
  }}
"""
    return conf + "}\n"


def nginx_proxy_conf(tmp: str, port: int, backend: int) -> str:
    """nginx as a reverse proxy in front of one backend (a reference row)."""
    return _nginx_head(tmp, 2) + f"""
  upstream be {{ server 127.0.0.1:{backend}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://be/vehicle;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def caddyfile(port: int, backend: int) -> str:
    """Caddy as a plain reverse proxy: the stand-in for a Go gateway."""
    return f"""{{
  admin off
  auto_https off
}}
http://127.0.0.1:{port} {{
  rewrite * /vehicle
  reverse_proxy 127.0.0.1:{backend}
}}
"""


def busgw_config(
    port: int, backends: Sequence[int], scenario: str
) -> Dict[str, object]:
    """A busgw config for scenario S1 (one backend), S2 (two merged with
    group/allow, the /status shape) or S3 (S2 with ``qos/http-cache`` on
    both backends: answers cached for the endpoint's 1 s ``cache_ttl``,
    identical calls in flight collapsed). The access log is off, as in nginx and
    Caddy here; the in-flight cap is raised for the c=1000 runs."""
    vehicle = {
        "host": [f"http://127.0.0.1:{backends[0]}"],
        "url_pattern": "/vehicle",
        "allow": ["fuel", "speed_kmh", "engine.temp_c", "battery_v"],
        "group": "vehicle",
    }
    service = {
        "host": [f"http://127.0.0.1:{backends[1]}"],
        "url_pattern": "/service",
        "allow": ["line", "passengers", "driver.name"],
        "group": "service",
    }
    endpoint: Dict[str, object]
    if scenario == "S1":
        endpoint = {
            "endpoint": "/bench",
            "backend": [{"host": vehicle["host"], "url_pattern": "/vehicle"}],
        }
    else:
        endpoint = {"endpoint": "/bench", "backend": [vehicle, service]}
    if scenario == "S3":
        endpoint["cache_ttl"] = "1s"
        for backend in endpoint["backend"]:  # type: ignore[attr-defined]
            backend["extra_config"] = {
                "qos/http-cache": {"max_items": 1000, "max_size": 10485760}
            }
    return {
        "version": 3,
        "name": f"bench {scenario}",
        "port": port,
        "listen_ip": "127.0.0.1",
        "timeout": "3s",
        "extra_config": {
            "busgw/telemetry": {"access_log": False},
            "busgw/limits": {"max_in_flight": 4096},
        },
        "endpoints": [endpoint],
    }


def _children() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def _tree(pid: int) -> List[int]:
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its children."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _status_kb(pid: int, key: str) -> int:
    """The largest value of ``key`` over the tree's processes: forked
    workers share most pages, so a sum would count them N times."""
    largest = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as handle:
                for line in handle:
                    if line.startswith(key):
                        largest = max(largest, int(line.split()[1]))
        except OSError:
            continue
    return largest


def reset_peak_rss(pid: int) -> None:
    """Restart the kernel's peak-RSS count (VmHWM) of the tree (root)."""
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass


def tree_peak_rss(pid: int) -> float:
    """Peak resident memory (VmHWM) of the tree's largest process, MB."""
    return _status_kb(pid, "VmHWM:") / 1024.0


def tree_rss(pid: int) -> float:
    """Current resident memory of the tree's largest process, MB."""
    return _status_kb(pid, "VmRSS:") / 1024.0


class Server:
    """One server process (and its children), started and stopped by PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        url: str,
        log: str,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
    ):
        self.name = name
        self.cwd = cwd
        self.argv = list(argv)
        self.url = url
        self.log = log
        self.env = env
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.started_at = 0.0
        self.ready_after = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "Server":
        out = open(self.log, "ab")
        env = dict(os.environ, **(self.env or {}))
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env=env,
            stdin=subprocess.DEVNULL, cwd=self.cwd,
        )
        out.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll ``url`` until it answers 200; return seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{_tail(self.log)}")
            try:
                with urllib.request.urlopen(self.url, timeout=1) as answer:
                    if answer.status == 200:
                        answer.read()
                        self.ready_after = time.monotonic() - self.started_at
                        return self.ready_after
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{_tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _tail(path: str, lines: int = 15) -> str:
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])
