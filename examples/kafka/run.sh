#!/usr/bin/env bash
# Runs examples/kafka/windows.toml against a private Kafka-compatible broker
# (tansu, started on a free port with its topics in a temporary folder):
# loads the sensor readings into topic `readings`, computes the windows into
# topic `per_sensor` with checkpoints, and prints that topic.
#
#     examples/kafka/run.sh          # SLUICE_BIN=target/debug/sluice to use a debug build
set -euo pipefail
cd "$(dirname "$0")/../.."
sluice_bin="${SLUICE_BIN:-target/release/sluice}"
if [ -z "${SLUICE_BIN:-}" ] && [ ! -x "$sluice_bin" ]; then cargo build --release -q -p sluice-cli; fi
sluice_bin=$(realpath "$sluice_bin")
source scripts/lib/kafka.sh
kafka_start
cd examples/kafka
state=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kafka-state.XXXXXX")
on_exit "rm -rf $state"

"$sluice_bin" run load.toml --set "sink.source.brokers=$kafka_brokers" 2> /dev/null
"$sluice_bin" run windows.toml --state-dir "$state" --checkpoint-interval 1s \
  --set "source.brokers=$kafka_brokers" --set "sink.per_sensor.brokers=$kafka_brokers"
"$sluice_bin" run read.toml --set "source.brokers=$kafka_brokers"
