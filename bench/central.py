"""S5 alone: the central polling a fake fleet, and /fleet/health under
load (see bench/_central.py). ``.venv/bin/python bench/central.py [BUSES]
[SECONDS]``; needs nginx, hey and wrk (``bench/setup``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _central import s5_rows  # noqa: E402
from _servers import Server  # noqa: E402
from _table import render  # noqa: E402


def main() -> int:
    buses = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tmp = tempfile.mkdtemp(prefix="busgw-s5-")
    servers: List[Server] = []

    def start(server: Server) -> Server:
        servers.append(server.start())
        return server

    try:
        rows = s5_rows(tmp, os.path.join(tmp, "servers.log"), start, [sys.executable],
                       buses=buses, seconds=seconds)
        print(render(rows, f"{os.cpu_count()} cores", 10, 3))
    except RuntimeError as err:
        log = os.path.join(tmp, "servers.log")
        print(f"S5 failed: {err}\n{open(log).read()[-3000:] if os.path.exists(log) else ''}",
              file=sys.stderr)
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
