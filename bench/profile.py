"""Profile the gateway under load: ``python bench/profile.py S2 [SECONDS]``.

Starts the nginx backends and one busgw process (scenario S1, S2 or S3
of bench.py, one worker), loads it with wrk (c=100) while ``py-spy
record`` samples it, and prints where the time goes: by area (treq,
Agent, twisted.web server, Klein/werkzeug, busd...) and the top frames by
own and by inclusive time. The raw collapsed stacks stay in
build/bench/profile-SCENARIO.txt (flamegraph.pl input). Needs py-spy in
the venv (``make bench-tools``).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _load import run_wrk  # noqa: E402
from _servers import Server, busgw_config, nginx_backend_conf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = (18111, 18112)

# Area of a frame, by the first matching fragment of its file path.
AREAS: List[Tuple[str, str]] = [
    ("treq/", "treq"),
    ("hyperlink/", "treq (hyperlink URLs)"),
    ("idna/", "treq (idna)"),
    ("http/cookiejar", "cookies"),
    ("twisted/web/client.py", "Agent"),
    ("twisted/web/_newclient.py", "Agent"),
    ("twisted/internet/endpoints.py", "Agent"),
    ("klein/", "Klein"),
    ("werkzeug/", "werkzeug"),
    ("twisted/web/server.py", "twisted.web server"),
    ("twisted/web/http.py", "twisted.web server"),
    ("twisted/web/http_headers.py", "headers"),
    ("twisted/web/resource.py", "twisted.web server"),
    ("twisted/internet/defer.py", "Deferreds"),
    ("twisted/internet/", "reactor and TCP"),
    ("twisted/logger/", "logging"),
    ("twisted/python/", "twisted.python"),
    ("zope/", "zope.interface"),
    ("busd/", "busd"),
    ("json/", "json"),
    ("orjson", "json"),
    ("attr/", "attrs"),
]


def area(frame: str) -> str:
    for fragment, name in AREAS:
        if fragment in frame:
            return name
    return "other"


def summarise(path: str, top: int = 25) -> str:
    """Areas by own time, then the top frames by own and inclusive time."""
    own: Dict[str, int] = collections.Counter()
    incl: Dict[str, int] = collections.Counter()
    areas: Dict[str, int] = collections.Counter()
    total = 0
    with open(path) as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            # Idle: the reactor waiting in epoll.
            leaf = frames[-1]
            own[leaf] += count
            areas["idle (epoll)" if "poll (" in leaf and "epollreactor" in leaf else area(leaf)] += count
            for f in set(frames):
                incl[f] += count
    out = [f"{total} samples"]
    out.append("By area (own time):")
    for name, n in sorted(areas.items(), key=lambda kv: -kv[1]):
        out.append(f"  {100.0 * n / total:5.1f}%  {name}")
    out.append("Top frames by own time:")
    for f, n in own.most_common(top):
        out.append(f"  {100.0 * n / total:5.1f}%  {f}")
    out.append("Top frames by inclusive time:")
    for f, n in incl.most_common(top + 15):
        out.append(f"  {100.0 * n / total:5.1f}%  {f}")
    return "\n".join(out)


def main() -> int:
    scenario = sys.argv[1] if len(sys.argv) > 1 else "S2"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        print("needs py-spy in the venv: make bench-tools", file=sys.stderr)
        return 1
    os.makedirs(os.path.join(ROOT, "build", "bench"), exist_ok=True)
    out = os.path.join(ROOT, "build", "bench", f"profile-{scenario}.txt")
    tmp = tempfile.mkdtemp(prefix="busgw-profile-")
    log = os.path.join(tmp, "servers.log")
    servers: List[Server] = []
    try:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as handle:
            handle.write(nginx_backend_conf(tmp, BACKENDS))
        backend = Server("nginx", [nginx, "-p", tmp, "-c", conf],
                         f"http://127.0.0.1:{BACKENDS[0]}/vehicle", log)
        servers.append(backend.start())
        backend.wait_ready()
        cfg = os.path.join(tmp, "gw.json")
        with open(cfg, "w") as handle:
            json.dump(busgw_config(18410, BACKENDS, scenario), handle)
        gw = Server("busgw", [sys.executable, "-m", "busd", "run", "-c", cfg,
                              "--log-level", "warn"], "http://127.0.0.1:18410/bench", log)
        servers.append(gw.start())
        gw.wait_ready()
        run_wrk(gw.url, 2)  # warm up
        load = threading.Thread(target=run_wrk, args=(gw.url, seconds + 2))
        load.start()
        subprocess.run([spy, "record", "--pid", str(gw.pid), "--duration", str(seconds),
                        "--rate", "250", "--format", "raw", "--output", out, "--nonblocking"],
                       check=True, capture_output=True, cwd=ROOT)
        load.join()
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(summarise(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
