#!/usr/bin/env bash
# Kafka -> filter + tumbling window -> Kafka against a private tansu broker
# (scripts/lib/kafka.sh), beside the broker's own ceiling with a plain
# producer and consumer (Python's confluent-kafka, librdkafka as Sluice
# uses). Prints records per second, and per CPU-second of Sluice's process
# and of the broker apart: they share the machine's cores.
#
#     scripts/bench_kafka.sh [RECORDS]      # default 500000; SLUICE_BIN to pick the binary
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-500000}"
sluice_bin="${SLUICE_BIN:-target/release/sluice}"
if [ -z "${SLUICE_BIN:-}" ] && [ ! -x "$sluice_bin" ]; then cargo build --release -q -p sluice-cli; fi
sluice_bin=$(realpath "$sluice_bin")
if ! PYTHONPATH=.kafka/py python3 -c 'import confluent_kafka' 2> /dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --target .kafka/py confluent-kafka==2.16.1
fi
export PYTHONPATH="$PWD/.kafka/py"
source scripts/lib/kafka.sh
kafka_start
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-kafka.XXXXXX")
on_exit "rm -rf $work"

# CPU seconds a process has used (user + system).
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
# Runs a command; prints "wall cpu" (its own CPU seconds, children included).
timed() { /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" > /dev/null 2> "$work/stderr" || { cat "$work/stderr" >&2; return 1; }
  awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$work/time"; }
row() { # name records wall cpu broker_before broker_after
  awk -v name="$1" -v n="$2" -v wall="$3" -v cpu="$4" -v b0="$5" -v b1="$6" 'BEGIN {
    printf "| %s | %d | %.2f | %.0f | %.2f | %.0f | %.2f |\n", name, n, wall, n / wall, cpu, (cpu > 0 ? n / cpu : 0), b1 - b0 }'
}

python3 - "$records" > "$work/readings.jsonl" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write('{"sensor":"s%d","temperature":%d,"ts":%d}\n' % (i % 64, (i * 37) % 100 - 10, 1_700_000_000_000 + i))
PY
cat > "$work/load.toml" <<EOF
name = "bench_kafka_load"
[source]
type = "file"
path = "$work/readings.jsonl"
event_time = "ts"
schema = { sensor = "string", temperature = "int", ts = "int" }
[[sink]]
from = "source"
type = "kafka"
brokers = "$kafka_brokers"
topic = "readings"
key = "sensor"
partitions = 4
EOF
cat > "$work/windows.toml" <<EOF
name = "bench_kafka_windows"
[source]
type = "kafka"
brokers = "$kafka_brokers"
topic = "readings"
end = "caught-up"
event_time = "ts"
schema = { sensor = "string", temperature = "int", ts = "int" }
[[transform]]
name = "valid"
type = "filter"
where = "temperature >= 0"
[[transform]]
name = "per_sensor"
type = "window"
key = ["sensor"]
window = { type = "tumbling", size = "1s" }
aggregates = { n = "count(*)", total = "sum(temperature)" }
[[sink]]
from = "per_sensor"
type = "kafka"
brokers = "$kafka_brokers"
topic = "per_sensor"
key = "sensor"
EOF

echo "records: $records; machine: $(nproc) cores; sluice: $sluice_bin"
echo
echo "| run | records | seconds | records/s | CPU-s (own) | records per CPU-s | broker CPU-s |"
echo "|---|---:|---:|---:|---:|---:|---:|"

# The broker's ceiling: a plain producer, then a plain consumer.
b0=$(cpu "$kafka_pid")
read -r wall own < <(timed python3 - "$kafka_brokers" "$records" <<'PY'
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
brokers, n = sys.argv[1], int(sys.argv[2])
admin = AdminClient({"bootstrap.servers": brokers})
admin.create_topics([NewTopic("plain", 4, 1)])["plain"].result()
p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "acks": "all", "enable.idempotence": True})
for i in range(n):
    while True:
        try:
            p.produce("plain", key="s%d" % (i % 64), value='{"sensor":"s%d","temperature":%d,"ts":%d}' % (i % 64, (i * 37) % 100 - 10, 1_700_000_000_000 + i))
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
assert p.flush(300) == 0
PY
)
b1=$(cpu "$kafka_pid"); row "plain producer (Python, librdkafka)" "$records" "$wall" "$own" "$b0" "$b1"
b0=$b1
read -r wall own < <(timed python3 - "$kafka_brokers" "$records" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
brokers, n = sys.argv[1], int(sys.argv[2])
c = Consumer({"bootstrap.servers": brokers, "group.id": "plain", "enable.auto.commit": False, "fetch.wait.max.ms": 100})
c.assign([TopicPartition("plain", p, 0) for p in range(4)])
got = 0
while got < n:
    for m in c.consume(10000, 1.0):
        if m.error() is None:
            got += 1
PY
)
b1=$(cpu "$kafka_pid"); row "plain consumer (Python, librdkafka)" "$records" "$wall" "$own" "$b0" "$b1"

b0=$(cpu "$kafka_pid")
read -r wall own < <(timed "$sluice_bin" run "$work/load.toml")
b1=$(cpu "$kafka_pid"); row "sluice: file -> kafka" "$records" "$wall" "$own" "$b0" "$b1"

b0=$(cpu "$kafka_pid")
read -r wall own < <(timed "$sluice_bin" run "$work/windows.toml" --set sink.per_sensor.topic=per_sensor_1)
b1=$(cpu "$kafka_pid"); row "sluice: kafka -> filter + window -> kafka" "$records" "$wall" "$own" "$b0" "$b1"

b0=$(cpu "$kafka_pid")
read -r wall own < <(timed "$sluice_bin" run "$work/windows.toml" --set sink.per_sensor.topic=per_sensor_2 \
  --state-dir "$work/state" --checkpoint-interval 1s)
b1=$(cpu "$kafka_pid"); row "the same, checkpoints every 1 s" "$records" "$wall" "$own" "$b0" "$b1"
