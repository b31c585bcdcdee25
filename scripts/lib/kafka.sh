# Sourced: starts a private Kafka-compatible broker (tansu) for a script, as
# the tests do. `kafka_start` runs it on a free loopback port with its topics
# in SQLite in a temporary folder, adds the index on headers that tansu's
# schema lacks (reads slow down as topics grow without it), sets
# `kafka_brokers`, and stops it and removes the folder when the script exits.
# The broker comes from SLUICE_TANSU, .kafka/bin/tansu (where .ci/run installs
# it) or `tansu` on the PATH:
#   cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root .kafka

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

kafka_start() {
  local tansu="${SLUICE_TANSU:-}"
  if [ -z "$tansu" ]; then
    if [ -x .kafka/bin/tansu ]; then tansu=.kafka/bin/tansu; else tansu=tansu; fi
  fi
  if ! command -v "$tansu" > /dev/null 2>&1; then
    echo "the Kafka broker tansu was not found: cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root .kafka" >&2
    return 1
  fi
  tansu=$(realpath "$(command -v "$tansu")")
  kafka_dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kafka.XXXXXX")
  local port
  port=$(free_port)
  kafka_brokers="127.0.0.1:$port"
  (cd "$kafka_dir" && exec "$tansu" broker --listener-url "tcp://$kafka_brokers" \
    --advertised-listener-url "tcp://$kafka_brokers" --storage-engine sqlite://topics.db \
    > broker.log 2>&1) &
  kafka_pid=$!
  on_exit kafka_cleanup
  # Indexed once it answers (its tables made): the broker fails on a
  # database locked while it makes them.
  for _ in $(seq 600); do
    if ! kill -0 "$kafka_pid" 2> /dev/null; then break; fi
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2> /dev/null \
      && python3 - "$kafka_dir/topics.db" 2> /dev/null <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
c.execute("create index if not exists sluice_header_record on header (topition, offset_id)")
c.commit()
PY
    then
      return 0
    fi
    sleep 0.1
  done
  echo "the Kafka broker did not start:" >&2
  cat "$kafka_dir/broker.log" >&2
  return 1
}

kafka_cleanup() {
  kill "$kafka_pid" 2> /dev/null || true
  wait "$kafka_pid" 2> /dev/null || true
  rm -rf "$kafka_dir"
}
