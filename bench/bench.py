"""busgw against nginx and Caddy in one run: ``make bench``.

Starts every server on loopback with its own config generated into a temp
dir, loads each for a bounded time (several short rounds, interleaved, so
the noise of a shared machine hits every row alike), stops each by PID and
prints one table: req/s, p50, p99, errors, the server's CPU share and peak
RSS, and the ratio of each busgw row to the Caddy reverse-proxy row of the
same load measured in the same run. See bench/README.md.

Environment: BENCH_SECONDS (per run, default 5), BENCH_ROUNDS (default 3),
BENCH_ONLY (comma-separated row name prefixes), BENCH_OUT (also write the
table to this file).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import attrs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _load import Sample, run_hey, run_wrk  # noqa: E402
from _servers import (  # noqa: E402
    Server,
    busgw_config,
    caddyfile,
    nginx_backend_conf,
    nginx_proxy_conf,
    tree_cpu,
    reset_peak_rss,
    tree_peak_rss,
    tree_rss,
)
from _table import Row, render  # noqa: E402
from _central import s5_rows  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZIPAPP = os.path.join(ROOT, "dist", "busgw-amd64-py311.pyz")
BACKENDS = (18101, 18102)
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ONLY = [p for p in os.environ.get("BENCH_ONLY", "").split(",") if p]


@attrs.define
class Load:
    """One row of the table: a server, a path, a tool and a concurrency."""

    name: str
    server: Server
    tool: str  # "wrk" or "hey"
    conc: int
    ref: Optional[str] = None  # the Caddy row this one is compared with
    samples: List[Sample] = attrs.Factory(list)
    cpu: List[float] = attrs.Factory(list)
    rss: List[float] = attrs.Factory(list)

    @property
    def key(self) -> str:
        return f"{self.tool} c={self.conc}"

    def run(self, seconds: float) -> Sample:
        url = self.server.url
        reset_peak_rss(self.server.pid)
        before, start = tree_cpu(self.server.pid), time.monotonic()
        if self.tool == "wrk":
            sample = run_wrk(url, seconds, self.conc)
        else:
            sample = run_hey(url, seconds, self.conc)
        wall = time.monotonic() - start
        self.cpu.append((tree_cpu(self.server.pid) - before) / wall)
        self.rss.append(tree_peak_rss(self.server.pid))
        self.samples.append(sample)
        return sample


def _wanted(name: str) -> bool:
    if name == "caddy" or name.startswith("caddy hey"):
        return True  # the reference of every ratio
    return not ONLY or any(name.startswith(p) for p in ONLY)


#: Another source tree to benchmark (a checkout of an older commit): its
#: busd is run instead of this one's, with this venv.
SRC = os.environ.get("BENCH_SRC", "")
_SRC_ENV = {"PYTHONPATH": SRC} if SRC else {}
#: An older source tree whose rows ("base ...") run beside this one's in
#: the same run, interleaved: a before/after table from one harness.
BASE = os.environ.get("BENCH_BASELINE", "")


def _busgw_argv(config: str, port: int, workers: int = 1) -> List[str]:
    argv = [sys.executable, "-m", "busd", "run", "-c", config]
    argv += ["--listen", f"tcp:{port}:interface=127.0.0.1", "--log-level", "warn"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


def _has_workers() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "busd", "run", "--help"],
        capture_output=True, text=True, cwd=SRC or ROOT, check=False,
        env=dict(os.environ, **_SRC_ENV),
    )
    return "--workers" in done.stdout


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(f"bench: signal {signum}, stopping the servers")


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so every server is stopped by PID.
    signal.signal(signal.SIGTERM, _interrupted)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for tool in ("wrk", "hey", "nginx", "caddy"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"bench: {tool} is missing (make bench installs it)", file=sys.stderr)
            return 1
    tmp = tempfile.mkdtemp(prefix="busgw-bench-")
    servers: List[Server] = []
    try:
        return _bench(tmp, servers)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _write(path: str, text: str) -> str:
    with open(path, "w") as handle:
        handle.write(text)
    return path


def _bench(tmp: str, servers: List[Server]) -> int:
    os.chdir(ROOT)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    log = os.path.join(tmp, "servers.log")

    def start(server: Server) -> Server:
        servers.append(server.start())
        return server

    back_dir = os.path.join(tmp, "backend")
    os.mkdir(back_dir)
    conf = _write(os.path.join(back_dir, "nginx.conf"), nginx_backend_conf(back_dir, BACKENDS))
    backend = start(Server("nginx backend", [nginx, "-p", back_dir, "-c", conf],
                           f"http://127.0.0.1:{BACKENDS[0]}/vehicle", log))
    backend.wait_ready()
    backend.url = f"http://127.0.0.1:{BACKENDS[1]}/service"
    backend.wait_ready()

    loads: List[Load] = []
    workers = _has_workers()

    def add(name: str, server_name: str, tool: str = "wrk", conc: int = 100,
            ref: Optional[str] = "caddy") -> None:
        if _wanted(name):
            loads.append(Load(name, server(server_name), tool, conc, ref))

    proxy_dir = os.path.join(tmp, "proxy")
    os.mkdir(proxy_dir)
    pconf = _write(os.path.join(proxy_dir, "nginx.conf"), nginx_proxy_conf(proxy_dir, 18200, BACKENDS[0]))
    lazy: Dict[str, Callable[[], Server]] = {
        "nginx proxy": lambda: Server("nginx proxy", [nginx, "-p", proxy_dir, "-c", pconf],
                                      "http://127.0.0.1:18200/", log),
        "caddy": lambda: Server("caddy", ["caddy", "run", "--adapter", "caddyfile", "--config",
                                          _write(os.path.join(tmp, "Caddyfile"), caddyfile(18300, BACKENDS[0]))],
                                "http://127.0.0.1:18300/", log,
                                env={"HOME": tmp, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp}),
        "caddy 1 core": lambda: Server("caddy 1 core", ["caddy", "run", "--adapter", "caddyfile", "--config",
                                                        _write(os.path.join(tmp, "Caddyfile1"), caddyfile(18301, BACKENDS[0]))],
                                       "http://127.0.0.1:18301/", log,
                                       env={"GOMAXPROCS": "1", "HOME": tmp, "XDG_DATA_HOME": tmp,
                                            "XDG_CONFIG_HOME": tmp}),
    }
    made: Dict[str, Server] = {}

    def server(name: str) -> Server:
        if name not in made:
            made[name] = start(lazy[name]())
            made[name].wait_ready()
        return made[name]

    port = 18400
    for scenario in ("S1", "S2", "S3"):
        for n in (1, 2):
            port += 1
            name = f"busgw {scenario} w{n}"
            if n > 1 and not workers:
                continue
            path = _write(os.path.join(tmp, f"{scenario}.json"),
                          json.dumps(busgw_config(port, BACKENDS, scenario), indent=1))
            lazy[name] = (lambda path=path, port=port, n=n, name=name:
                          Server(name, _busgw_argv(path, port, n), f"http://127.0.0.1:{port}/bench", log,
                                 env=_SRC_ENV, cwd=SRC or None))

    add("nginx proxy", "nginx proxy", ref=None)
    add("caddy", "caddy", ref=None)
    add("caddy 1 core", "caddy 1 core")
    for scenario in ("S1", "S2", "S3"):
        for n in (1, 2):
            name = f"busgw {scenario} w{n}"
            if name in lazy:
                add(name, name)
    if BASE:
        for i, scenario in enumerate(("S1", "S2", "S3")):
            name, bport = f"base {scenario} w1", 18421 + i
            path = _write(os.path.join(tmp, f"base-{scenario}.json"),
                          json.dumps(busgw_config(bport, BACKENDS, scenario)))
            lazy[name] = (lambda path=path, bport=bport, name=name:
                          Server(name, _busgw_argv(path, bport), f"http://127.0.0.1:{bport}/bench", log,
                                 env={"PYTHONPATH": BASE}, cwd=BASE))
            add(name, name)
    # S4: the reference story's test, hey at c=100 and c=1000 on S2, on
    # servers of their own (c=1000 leaves memory behind that would show in
    # the peak RSS of the wrk rows).
    n4 = 2 if workers else 1
    s4_config = _write(os.path.join(tmp, "S4.json"), json.dumps(busgw_config(18409, BACKENDS, "S2")))
    lazy["busgw S4"] = lambda: Server("busgw S4", _busgw_argv(s4_config, 18409, n4),
                                      "http://127.0.0.1:18409/bench", log, env=_SRC_ENV, cwd=SRC or None)
    lazy["caddy hey"] = lambda: Server("caddy hey", ["caddy", "run", "--adapter", "caddyfile", "--config",
                                                     _write(os.path.join(tmp, "Caddyfile4"), caddyfile(18302, BACKENDS[0]))],
                                       "http://127.0.0.1:18302/", log,
                                       env={"HOME": tmp, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp})
    for conc in (100, 1000):
        add(f"caddy hey c={conc}", "caddy hey", "hey", conc, ref=None)
        add(f"S4 S2 w{n4} hey c={conc}", "busgw S4", "hey", conc)
    if BASE:
        base4 = _write(os.path.join(tmp, "base-S4.json"), json.dumps(busgw_config(18429, BACKENDS, "S2")))
        lazy["base S4"] = lambda: Server("base S4", _busgw_argv(base4, 18429), "http://127.0.0.1:18429/bench",
                                         log, env={"PYTHONPATH": BASE}, cwd=BASE)
        add("base S4 S2 w1 hey c=1000", "base S4", "hey", 1000)

    # Warm every row up (JIT-less CPython still fills pools and caches).
    for ld in loads:
        if ld.tool == "wrk":
            run_wrk(ld.server.url, 1, ld.conc)
    for r in range(ROUNDS):
        for ld in loads:
            s = ld.run(SECONDS)
            print(f"round {r + 1}/{ROUNDS} {ld.name:<26} {s.rps:9.0f} req/s "
                  f"p99 {s.p99:7.1f} ms errors {s.errors}", file=sys.stderr, flush=True)
    rows = _rows(loads)
    rows.extend(_s5_central(tmp, log, servers))
    rows.extend(_cold_start(tmp, log, servers))
    text = render(rows, _machine(), SECONDS, ROUNDS)
    print(text)
    out = os.environ.get("BENCH_OUT")
    if out:
        _write(out, text + "\n")
    return 0


def _rows(loads: List[Load]) -> List[Row]:
    caddy = {ld.key: ld for ld in loads if ld.server.name in ("caddy", "caddy hey")}
    rows = []
    for ld in loads:
        rps = statistics.median(s.rps for s in ld.samples)
        ratio = None
        if ld.ref and ld.key in caddy:
            ratio = rps / statistics.median(s.rps for s in caddy[ld.key].samples)
        rows.append(Row(
            name=ld.name,
            load=f"{ld.tool} c={ld.conc}",
            rps=rps,
            p50=statistics.median(s.p50 for s in ld.samples),
            p99=statistics.median(s.p99 for s in ld.samples),
            errors=sum(s.errors for s in ld.samples),
            cpu=statistics.median(ld.cpu),
            rss=max(ld.rss),
            ratio=ratio,
        ))
    return rows


def _s5_central(tmp: str, log: str, servers: List[Server]) -> List[Row]:
    """S5, the central with 1,000 buses (bench/_central.py), unless
    BENCH_ONLY leaves it out."""
    if not _wanted("S5"):
        return []

    def start(server: Server) -> Server:
        servers.append(server.start())
        return server

    env_python = [sys.executable]
    try:
        return s5_rows(tmp, log, start, env_python, seconds=max(SECONDS * 3, 15),
                       rounds=ROUNDS)
    except RuntimeError as err:
        return [Row(name="S5 central", note=f"failed: {str(err).strip().splitlines()[-1]}")]


def _cold_start(tmp: str, log: str, servers: List[Server]) -> List[Row]:
    """Seconds from exec to the first answer, and the idle RSS after it,
    from the zipapp (already unpacked) if built, and ``python -m busd``."""
    config = os.path.join(tmp, "S2.json")
    raw = json.load(open(config))
    raw["port"] = 18499
    config = _write(os.path.join(tmp, "cold.json"), json.dumps(raw))
    url = "http://127.0.0.1:18499/bench"
    tail = ["run", "-c", config, "--log-level", "warn"]
    ways = [("python -m busd", [sys.executable, "-m", "busd"] + tail, _SRC_ENV)]
    if os.path.exists(ZIPAPP) and not SRC:
        ways.insert(0, ("zipapp", ["/usr/bin/python3", ZIPAPP, "busgw"] + tail,
                        {"SHIV_ROOT": os.path.join(tmp, "shiv")}))
    rows = []
    for what, argv, env in ways:
        times, idle = [], []
        try:
            for i in range(4):  # the first run unpacks the zipapp: not counted
                s = Server(f"cold {i}", argv, url, log, env=env, cwd=SRC or None)
                servers.append(s.start())
                try:
                    ready = s.wait_ready(60)
                    time.sleep(0.5)
                    if i:
                        times.append(ready)
                        idle.append(tree_rss(s.pid))
                finally:
                    s.stop()
                    servers.remove(s)
        except RuntimeError as err:
            last = str(err).strip().splitlines()[-1]
            rows.append(Row(name=f"cold start ({what})", note=f"failed: {last}"))
            continue
        rows.append(Row(name=f"cold start ({what})",
                        note=f"{statistics.median(times):.2f} s to first answer, "
                        f"idle RSS {statistics.median(idle):.1f} MB"))
    return rows


def _machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}, "
            f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    sys.exit(main())
