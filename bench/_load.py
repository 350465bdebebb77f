"""Load generators: ``wrk`` (S1-S3) and ``hey`` (S4), each run for a
bounded time, their output parsed into one :class:`Sample`."""

from __future__ import annotations

import re
import subprocess
from typing import List, Optional

import attrs

__all__ = ["Sample", "run_wrk", "run_hey", "parse_wrk", "parse_hey"]


@attrs.frozen
class Sample:
    """One load run: throughput, latency percentiles (ms) and errors
    (socket errors, timeouts and answers other than 2xx/3xx)."""

    rps: float
    p50: float
    p99: float
    errors: int
    requests: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> Sample:
    """Read ``wrk --latency`` output."""
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sock:
        # A read error is a server closing a connection, as it may at
        # the end of the run; count connects, writes and timeouts.
        errors += int(sock.group(1)) + int(sock.group(3)) + int(sock.group(4))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        errors += int(bad.group(1))
    return Sample(rps, _ms(pct["50"]), _ms(pct["99"]), errors, total)


def parse_hey(out: str) -> Sample:
    """Read ``hey``'s summary."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)%% in ([\d.]+) secs".replace("%%", "%"), out, re.M))
    ok = 0
    errors = 0
    for code, count in re.findall(r"^\s+\[(\d+)\]\s+(\d+) responses", out, re.M):
        if 200 <= int(code) < 400:
            ok += int(count)
        else:
            errors += int(count)
    section = out.split("Error distribution:", 1)
    if len(section) == 2:
        errors += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]", section[1], re.M))
    p50 = float(pct.get("50", "nan")) * 1000.0
    p99 = float(pct.get("99", "nan")) * 1000.0
    return Sample(rps, p50, p99, errors, ok + errors)


def _run(argv: List[str], timeout: float) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def run_wrk(
    url: str, seconds: float, connections: int = 100, threads: int = 2
) -> Sample:
    """``wrk`` with keep-alive connections for ``seconds``."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "--latency",
        url,
    ]
    return parse_wrk(_run(argv, seconds + 30))


def run_hey(
    url: str, seconds: float, concurrency: int, timeout: Optional[int] = 10
) -> Sample:
    """``hey`` (the reference story's tool) for ``seconds``."""
    argv = ["hey", "-z", f"{seconds:g}s", "-c", str(concurrency)]
    if timeout:
        argv += ["-t", str(timeout)]
    return parse_hey(_run(argv + [url], seconds + 60))
