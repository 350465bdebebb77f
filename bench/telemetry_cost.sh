#!/usr/bin/env bash
# Cost of telemetry on the request path: the demo config served twice in the
# same run, once as shipped (access log + request ids + Prometheus metrics)
# and once with the access log and the admin listener (metrics) off, loaded
# in alternation with `hey`. Usage: bench/telemetry_cost.sh [SECONDS] [ROUNDS] [PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; rounds=${2:-5}; path=${3:-/vehicle}
py=.venv/bin/python
command -v hey >/dev/null || { echo "needs hey: apt-get install hey" >&2; exit 1; }
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
$py - "$tmp/off.json" <<'PY'
import json, sys
raw = json.load(open("etc/busgw.json"))
raw.setdefault("extra_config", {})["busgw/telemetry"] = {"access_log": False}
json.dump(raw, open(sys.argv[1], "w"))
PY
export BUSGW_STATE_DIR="$tmp/state"
$py -m busd demo --devices-only --log-level warn & pids+=($!)
$py -m busd run -c etc/busgw.json --listen tcp:8000:interface=127.0.0.1 --log-level warn >/dev/null & pids+=($!)
$py -m busd run -c "$tmp/off.json" --listen tcp:8001:interface=127.0.0.1 --log-level warn >/dev/null & pids+=($!)
for url in 127.0.0.1:9101/vehicle 127.0.0.1:8000$path 127.0.0.1:8001$path; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://$url" && break; sleep 0.1; done
done
measure() { hey -z "${secs}s" -c 50 "$1" | awk '/Requests\/sec/ {print $2}'; }
on=(); off=()
for r in $(seq "$rounds"); do
  on+=("$(measure "http://127.0.0.1:8000$path")")
  off+=("$(measure "http://127.0.0.1:8001$path")")
  echo "round $r: telemetry on ${on[-1]} req/s, off ${off[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m1=$(median "${on[@]}"); m0=$(median "${off[@]}")
echo "median: on $m1 req/s, off $m0 req/s, on/off $(awk -v a="$m1" -v b="$m0" 'BEGIN {printf "%.3f", a/b}')"
