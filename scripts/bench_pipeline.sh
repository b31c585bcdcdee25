#!/usr/bin/env bash
# The pipeline benchmark of docs/performance.md: a JSON-lines file of N events
# (default 10 million) through filter -> tumbling window -> file sink, run by
# `sluice run`; prints events/s and events per CPU-second.
#
#   scripts/bench_pipeline.sh [EVENTS] [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
workers="${2:-1}"
dir="target/bench-pipeline"
source scripts/lib/bench_input.sh
echo "input: $(du -h "$input" | cut -f1), $events lines"
/usr/bin/env time -f "%e %U %S %M" -o "$dir/time.txt" \
  "$sluice" run benches/pipelines/filter_window.toml --workers "$workers" \
    --set "source.path=$(pwd)/$input" \
    --set "sink.per_sensor.path=$(pwd)/$dir/per_sensor.jsonl" \
    --set "sink.dead_letter.path=$(pwd)/$dir/dead_letter.jsonl" 2> "$dir/stderr.txt"
grep '^summary:' "$dir/stderr.txt"
read -r wall user sys rss < "$dir/time.txt"
python3 - "$events" "$wall" "$user" "$sys" "$rss" "$workers" <<'PY'
import sys
events, wall, user, sys_, rss, workers = int(sys.argv[1]), *map(float, sys.argv[2:6]), sys.argv[6]
cpu = user + sys_
print(f"workers {workers}: {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss/1024:.0f} MB")
print(f"{events/wall/1e6:.2f} M events/s; {events/cpu/1e6:.2f} M events per CPU-second (per core)")
PY
