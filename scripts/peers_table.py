#!/usr/bin/env python3
"""Prints the side-by-side table of docs/performance.md from the results.jsonl files
that shared/bench/peers/*/run_all.sh and scripts/bench_sluice.sh write
($PEERS_WORK/{flink,spark,bytewax,sluice}/results.jsonl).

    python3 scripts/peers_table.py $PEERS_WORK
"""
import json
import os
import re
import sys

work = sys.argv[1] if len(sys.argv) > 1 else "peers-work"
rows = []
for engine in ("sluice", "flink", "spark", "bytewax"):
    path = os.path.join(work, engine, "results.jsonl")
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line)
        if "tiny" in r["label"] or r.get("rc", 0) != 0:
            continue
        out = os.path.join(work, engine, r["label"] + ".out")
        rate = r.get("events_per_s_job")
        n = r.get("N") or int(r["label"].endswith("_10M") and 10_000_000 or 1_000_000)
        if rate is None and r.get("wall_s"):
            rate = n / r["wall_s"]  # Bytewax reports no job time: whole process
        if engine == "sluice" and os.path.exists(out):
            report = json.loads(open(out).read().strip().splitlines()[-1])
            rate, n = report["events_per_sec"], report["events"]
        rows.append((engine, r["label"], n, rate, r["wall_s"], r.get("tree_cpu_s_sampled"), r["tree_peak_rss_mb"]))

def workload_of(label):
    return re.search(r"_(w[01])(check)?(_|$)", label).group(1)


best = {}
for engine, label, n, rate, *_ in rows:
    workload = workload_of(label)
    if engine == "sluice" and rate:
        best[workload] = max(best.get(workload, 0), rate)

print("| engine | run | events | job events/s | wall s (process) | CPU s (tree) | peak RSS MB (tree) | best Sluice / this |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for engine, label, n, rate, wall, cpu, rss in rows:
    workload = workload_of(label)
    ratio = f"{best[workload] / rate:.0f}x" if rate and workload in best and engine != "sluice" else ""
    rate_s = f"{rate:,.0f}" if rate else ""
    print(f"| {engine} | {label} | {n:,} | {rate_s} | {wall} | {cpu} | {rss} | {ratio} |")
