#!/usr/bin/env bash
# A SQL pipeline against its TOML twin, side by side on one input:
# benches/pipelines/filter_window.sql and filter_window.toml (filter ->
# tumbling window -> file), alternating, RUNS runs each (default 2). Prints
# each run's events/s and the ratio of the medians (SQL / TOML). The input
# is scripts/bench_pipeline.sh's (written once).
#
#   scripts/bench_sql.sh [EVENTS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
runs="${2:-2}"
dir="target/bench-pipeline"
mkdir -p "$dir/sql"
source scripts/lib/bench_input.sh
sed -e "s|'input.jsonl'|'$(pwd)/$input'|" \
    -e "s|'per_sensor.jsonl'|'$(pwd)/$dir/sql/per_sensor.jsonl'|" \
    -e "s|'dead_letter.jsonl'|'$(pwd)/$dir/sql/dead_letter.jsonl'|" \
    benches/pipelines/filter_window.sql > "$dir/sql/filter_window.sql"
one() {
  local start end
  start=$(date +%s.%N)
  if [ "$1" = toml ]; then
    "$sluice" run benches/pipelines/filter_window.toml \
      --set "source.path=$(pwd)/$input" \
      --set "sink.per_sensor.path=$(pwd)/$dir/per_sensor.jsonl" \
      --set "sink.dead_letter.path=$(pwd)/$dir/dead_letter.jsonl" 2> /dev/null
  else
    "$sluice" run "$dir/sql/filter_window.sql" 2> /dev/null
  fi
  end=$(date +%s.%N)
  python3 -c "print(f'{$events / ($end - $start) / 1e6:.2f}')"
}
toml=(); sql=()
for _ in $(seq "$runs"); do
  toml+=("$(one toml)"); sql+=("$(one sql)")
done
cmp <(sort "$dir/per_sensor.jsonl") <(sort "$dir/sql/per_sensor.jsonl") \
  && echo "outputs: identical"
python3 - "${toml[*]}" "${sql[*]}" <<'PY'
import statistics, sys
toml = [float(x) for x in sys.argv[1].split()]
sql = [float(x) for x in sys.argv[2].split()]
print(f"TOML: {toml} M events/s")
print(f"SQL:  {sql} M events/s")
print(f"SQL / TOML (medians): {statistics.median(sql) / statistics.median(toml):.3f}")
PY
