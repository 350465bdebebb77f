#!/usr/bin/env bash
# Quick throughput check: /status of the demo bus (3 device services merged)
# against a plain twisted.web resource serving constant JSON, measured in the
# same run with `hey` (Debian package `hey`). Usage: bench/quick.sh [SECONDS] [ROUNDS]
# Prints req/s per round and the median of each, and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
py=.venv/bin/python
command -v hey >/dev/null || { echo "needs hey: apt-get install hey" >&2; exit 1; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

$py -m busd demo --devices-only --log-level warn & pids+=($!)
$py -m busd run -c etc/busgw.json --listen tcp:8000:interface=127.0.0.1 --log-level warn & pids+=($!)
$py - <<'PY' & pids+=($!)
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

BODY = b'{"vehicle":{"fuel":{"level_pct":78.0}},"service":{"line":"FW-12"}}'

class Plain(Resource):
    isLeaf = True
    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return BODY

site = Site(Plain())
site.log = lambda request: None  # no access log, as the gateway runs at warn
reactor.listenTCP(8100, site, interface="127.0.0.1")
reactor.run()
PY
# Wait until each server answers (devices first: /status needs them).
for url in 127.0.0.1:9101/vehicle 127.0.0.1:9102/location 127.0.0.1:9103/service \
           127.0.0.1:8000/status 127.0.0.1:8100/; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://$url" && break; sleep 0.1; done
done

measure() { hey -z "${secs}s" -c 100 "$1" | awk '/Requests\/sec/ {print $2}'; }
gw=(); plain=()
for r in $(seq "$rounds"); do
  gw+=("$(measure http://127.0.0.1:8000/status)")
  plain+=("$(measure http://127.0.0.1:8100/)")
  echo "round $r: busgw /status ${gw[-1]} req/s, plain twisted.web ${plain[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mg=$(median "${gw[@]}"); mp=$(median "${plain[@]}")
echo "median: busgw /status $mg req/s, plain twisted.web $mp req/s, ratio $(awk -v a="$mg" -v b="$mp" 'BEGIN {printf "%.3f", a/b}')"
