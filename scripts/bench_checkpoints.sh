#!/usr/bin/env bash
# The overhead of checkpoints (docs/performance.md): W1 of the shared
# workloads as a pipeline file (benches/pipelines/w1.toml: the formula
# source, 1-second tumbling windows per key, a JSON-lines file sink), run
# without checkpoints and with a checkpoint every second, alternating, and
# compared by the median wall time.
#
#   scripts/bench_checkpoints.sh [EVENTS] [ROUNDS] [INTERVAL] [OUTPUT_DIR]
#
# The output (6.3 million rows, ~0.5 GB for 10M events) goes to OUTPUT_DIR,
# by default target/bench-checkpoints; give a tmpfs (/dev/shm/...) to take
# the disk out of the comparison (a sync on tmpfs costs nothing), so that
# what remains is the cost of the barriers, snapshots and commits. The
# state directory stays in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
rounds="${2:-3}"
interval="${3:-1s}"
dir="target/bench-checkpoints"
out="${4:-$dir}"
rm -rf "$dir" && mkdir -p "$dir" "$out"
cargo build --release --quiet -p sluice-cli
sluice=target/release/sluice
run() { # name, extra args...
  local name="$1"; shift
  sync # start each run with nothing left to write back from the one before
  /usr/bin/env time -f "%e %U %S %M" -o "$dir/time.txt" \
    "$sluice" run benches/pipelines/w1.toml --set source.events="$events" \
      --set "sink.per_key.path=$(cd "$out" && pwd)/per_key-$name.jsonl" "$@" 2> "$dir/stderr.txt"
  read -r wall user sys rss < "$dir/time.txt"
  local checkpoints
  checkpoints=$(grep -o '"committed":[0-9]*' "$dir/stderr.txt" | cut -d: -f2 || true)
  echo "$name $wall $user $sys $rss ${checkpoints:-0}" | tee -a "$dir/results.txt"
}
# The time to make an output durable after a run without checkpoints: what
# the run left in the page cache goes to the disk.
sync_time() {
  python3 -c 'import os, sys, time
t = time.monotonic(); fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)
print(f"{time.monotonic() - t:.2f}")' "$1"
}
for round in $(seq 1 "$rounds"); do
  run plain
  synced=$(sync_time "$out/per_key-plain.jsonl")
  wall=$(awk '$1 == "plain" { w = $2 } END { print w }' "$dir/results.txt")
  echo "plain+sync $(python3 -c "print(round($wall + $synced, 2))") 0 0 0 0" | tee -a "$dir/results.txt"
  rm -rf "$dir/state"
  run checkpointed --state-dir "$dir/state" --checkpoint-interval "$interval"
done
cmp "$out/per_key-plain.jsonl" "$out/per_key-checkpointed.jsonl" \
  && echo "outputs identical"
python3 - "$dir/results.txt" "$events" "$interval" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
events, interval = int(sys.argv[2]), sys.argv[3]
def med(name, i):
    return statistics.median(float(r[i]) for r in rows if r[0] == name)
plain, synced, ckpt = med("plain", 1), med("plain+sync", 1), med("checkpointed", 1)
n = int(med("checkpointed", 5))
print(f"W1 pipeline, {events} events (medians of {len(rows) // 3} runs each):")
print(f"  without checkpoints        {plain:6.2f} s ({events/plain/1e6:.2f} M events/s)")
print(f"  without, output synced     {synced:6.2f} s (the run, then fsync of its output)")
print(f"  checkpoint every {interval:<9} {ckpt:6.2f} s ({n} checkpoints, output synced at each): "
      f"{100*(ckpt/plain-1):+.1f}% against the first, {100*(ckpt/synced-1):+.1f}% against the second")
print(f"peak RSS: {med('plain', 4)/1024:.0f} MB without, {med('checkpointed', 4)/1024:.0f} MB with")
PY
