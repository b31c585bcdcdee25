#!/usr/bin/env bash
# Runs examples/postgres/orders.toml against a private PostgreSQL: makes a
# cluster in a temporary folder (as the `postgres` user when run as root: the
# server refuses root), an `orders` table with a few orders, a webhook receiver
# that prints what it is sent, then runs the pipeline while more orders come in
# and shows the `revenue` table it upserted.
#
#     examples/postgres/run.sh          # SLUICE_BIN=target/debug/sluice to use a debug build
set -euo pipefail
cd "$(dirname "$0")/../.."
sluice_bin="${SLUICE_BIN:-target/release/sluice}"
if [ -z "${SLUICE_BIN:-}" ] && [ ! -x "$sluice_bin" ]; then cargo build --release -q -p sluice-cli; fi
source scripts/lib/postgres.sh
pg_start
psql postgres -c "CREATE DATABASE shop"
psql shop -c "CREATE TABLE orders (id int PRIMARY KEY, product text, amount float8)" \
  -c "INSERT INTO orders VALUES (1, 'lamp', 40), (2, 'desk', 1200), (3, 'lamp', 35)"

# The webhook: prints each call's body.
hook_port=$(free_port)
python3 - "$hook_port" <<'PY' &
import http.server, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        print("webhook:", self.headers["Idempotency-Key"], body.decode(), flush=True)
        self.send_response(200); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
hook=$!
stop_hook() { kill "$hook" 2> /dev/null || true; }
on_exit stop_hook

url=$(pg_url shop)
"$sluice_bin" run examples/postgres/orders.toml \
  --set "source.url=$url" --set "sink.revenue.url=$url" \
  --set "sink.big_orders.url=http://127.0.0.1:$hook_port/big-orders" &
run=$!
sleep 1
for i in $(seq 4 12); do
  psql shop -c "INSERT INTO orders VALUES ($i, '$( ((i % 2)) && echo lamp || echo chair)', $((i * 150)))"
done
psql shop -c "UPDATE orders SET amount = 45 WHERE id = 1"
wait "$run"
psql shop -c "SELECT product, to_timestamp(window_start / 1000) AS minute, orders, revenue FROM revenue ORDER BY product, window_start"
