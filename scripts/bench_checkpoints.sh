#!/usr/bin/env bash
# The overhead of checkpoints (docs/performance.md): W1 of the shared
# workloads as a pipeline file (benches/pipelines/w1.toml: the formula
# source, 1-second tumbling windows per key, a JSON-lines file sink), run
# without checkpoints and with a checkpoint every second, alternating, and
# compared by the median wall time.
#
#   scripts/bench_checkpoints.sh [EVENTS] [ROUNDS] [INTERVAL]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
rounds="${2:-3}"
interval="${3:-1s}"
dir="target/bench-checkpoints"
rm -rf "$dir" && mkdir -p "$dir"
cargo build --release --quiet -p sluice-cli
sluice=target/release/sluice
run() { # name, extra args...
  local name="$1"; shift
  /usr/bin/env time -f "%e %U %S %M" -o "$dir/time.txt" \
    "$sluice" run benches/pipelines/w1.toml --set source.events="$events" \
      --set "sink.per_key.path=$(pwd)/$dir/per_key-$name.jsonl" "$@" 2> "$dir/stderr.txt"
  read -r wall user sys rss < "$dir/time.txt"
  local checkpoints
  checkpoints=$(grep -o '"committed":[0-9]*' "$dir/stderr.txt" | cut -d: -f2 || true)
  echo "$name $wall $user $sys $rss ${checkpoints:-0}" | tee -a "$dir/results.txt"
}
for round in $(seq 1 "$rounds"); do
  run plain
  rm -rf "$dir/state"
  run checkpointed --state-dir "$dir/state" --checkpoint-interval "$interval"
done
cmp "$dir/per_key-plain.jsonl" "$dir/per_key-checkpointed.jsonl" \
  && echo "outputs identical"
python3 - "$dir/results.txt" "$events" "$interval" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
events, interval = int(sys.argv[2]), sys.argv[3]
def med(name, i):
    return statistics.median(float(r[i]) for r in rows if r[0] == name)
plain, ckpt = med("plain", 1), med("checkpointed", 1)
n = int(med("checkpointed", 5))
print(f"W1 pipeline, {events} events: without checkpoints {plain:.2f} s "
      f"({events/plain/1e6:.2f} M events/s), with a checkpoint every {interval} "
      f"{ckpt:.2f} s ({n} checkpoints): {100*(ckpt/plain-1):+.1f}% wall time")
print(f"peak RSS: {med('plain', 4)/1024:.0f} MB without, {med('checkpointed', 4)/1024:.0f} MB with")
PY
