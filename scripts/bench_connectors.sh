#!/usr/bin/env bash
# The connector benchmarks of docs/performance.md, against a private
# PostgreSQL on this machine (scripts/lib/postgres.sh):
#
# - postgres sink: N generated rows upserted (by a unique key: every row a new
#   row), then appended, with create = true;
# - postgres-cdc: N rows inserted by one statement after the slot exists, read
#   by the change source into a file;
# - http source: N records POSTed in batches of 1,000 by a Python client
#   (http.client, keep-alive, two processes) into a pipeline that counts them.
#
# Each prints rows per second of the run (its own `seconds`, without the idle
# wait that ends the sources) and per CPU-second of the sluice process. Needs
# GNU time (`apt-get install time`).
#
#   scripts/bench_connectors.sh [ROWS]      # default 1,000,000; SLUICE_BIN picks the binary
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
sluice="${SLUICE_BIN:-target/release/sluice}"
[ -x "$sluice" ] || cargo build --release -q -p sluice-cli
dir="target/bench-connectors"
rm -rf "$dir" && mkdir -p "$dir"
source scripts/lib/postgres.sh
pg_start
url=$(pg_url postgres)

# run NAME FILE [IDLE_SECONDS]: runs a pipeline file, prints its figures.
run() {
  local name=$1 file=$2 idle=${3:-0}
  /usr/bin/env time -f "%e %U %S" -o "$dir/$name.time" "$sluice" run "$file" \
    > /dev/null 2> "$dir/$name.err" || { cat "$dir/$name.err"; exit 1; }
  python3 - "$name" "$dir/$name.err" "$dir/$name.time" "$idle" <<'PY'
import json, sys
name, err, timing, idle = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
summary = json.loads(next(l for l in open(err) if l.startswith("summary: "))[9:])
wall, user, system = map(float, open(timing).read().split())
rows, seconds = summary["read"], summary["seconds"] - idle
cpu = user + system
print(f"{name:<24} {rows:>10,} rows  {seconds:6.2f} s  {rows / seconds / 1e3:8.0f}k rows/s  "
      f"{rows / cpu / 1e3:8.0f}k rows per CPU-s (sluice: {cpu:.2f} CPU-s)")
PY
}

for mode in upsert append; do
  key=""
  [ "$mode" = upsert ] && key='key = ["sensor", "ts"]'
  cat > "$dir/sink_$mode.toml" <<TOML
name = "bench_$mode"
[source]
type = "generator"
events = $rows
keys = 1000
[[sink]]
from = "source"
type = "postgres"
url = "$url"
table = "bench_$mode"
create = true
$key
TOML
  run "postgres sink ($mode)" "$dir/sink_$mode.toml"
done

psql postgres -c "CREATE TABLE changes (id int PRIMARY KEY, sensor text, temperature float8)"
# The publication before the slot: changes are decoded with the catalog as it
# was when they were made.
psql postgres -c "CREATE PUBLICATION sluice_public_changes FOR TABLE changes"
psql postgres -c "SELECT pg_create_logical_replication_slot('sluice_public_changes', 'pgoutput')" > /dev/null
psql postgres -c "INSERT INTO changes SELECT i, 's' || (i % 100), i % 50 FROM generate_series(1, $rows) i"
cat > "$dir/cdc.toml" <<TOML
name = "bench_cdc"
[source]
type = "postgres-cdc"
url = "$url"
table = "changes"
schema = { id = "int", sensor = "string", temperature = "float" }
end_after_idle = "1s"
[[sink]]
from = "source"
type = "file"
path = "changes.jsonl"
TOML
run "postgres-cdc source" "$dir/cdc.toml" 1

port=$(free_port)
cat > "$dir/http.toml" <<TOML
name = "bench_http"
[source]
type = "http"
listen = "127.0.0.1:$port"
schema = { sensor = "string", temperature = "float", ts = "int" }
event_time = "ts"
end_after_idle = "3s"
max_body = 1000000
[[transform]]
name = "per_sensor"
type = "window"
key = ["sensor"]
window = { type = "tumbling", size = "10s" }
aggregates = { n = "count(*)" }
[[sink]]
from = "per_sensor"
type = "file"
path = "per_sensor.jsonl"
TOML
run "http source, 1000 a request" "$dir/http.toml" 3 &
http_run=$!
python3 - "$port" "$rows" <<'PY'
import http.client, multiprocessing, sys, time
port, rows = int(sys.argv[1]), int(sys.argv[2])
def client(part):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port); c.connect(); break
        except OSError:
            time.sleep(0.05)
    for r in range(part, rows // 1000, 2):
        body = "\n".join(
            f'{{"sensor":"s{(r * 1000 + i) % 100}","temperature":{i % 50},"ts":{1700000000000 + r * 1000 + i}}}'
            for i in range(1000))
        while True:
            c.request("POST", "/ingest", body, {"Content-Type": "application/x-ndjson"})
            response = c.getresponse(); response.read()
            if response.status == 202:
                break
            time.sleep(0.01)
with multiprocessing.Pool(2) as pool:
    pool.map(client, [0, 1])
PY
wait "$http_run"
