#!/bin/bash
# Runs Sluice on the shared workloads under the peers' measure.py (wall, CPU and peak
# RSS of the process tree), appending to $PEERS_WORK/sluice/results.jsonl; run it in
# the same sitting as shared/bench/peers/*/run_all.sh, one engine at a time.
#   PEERS_WORK=/some/dir SHARED=../shared scripts/bench_sluice.sh
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
W=${PEERS_WORK:-$PWD/peers-work}/sluice
N=${N:-10000000}
cargo build --release -q -p sluice-cli --manifest-path "$ROOT/Cargo.toml"
BIN=$ROOT/target/release/sluice
mkdir -p "$W" && cd "$W"
M=$SHARED/bench/peers/common/measure.py
for P in 1 2; do
  python3 "$M" sluice_w0_p$P -- "$BIN" bench w0 --events "$N" --workers $P
  python3 "$M" sluice_w1_p$P -- "$BIN" bench w1 --events "$N" --workers $P
done
python3 "$M" sluice_w1_p1_event -- "$BIN" bench w1 --events "$N" --workers 1 --mode event
