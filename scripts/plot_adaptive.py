#!/usr/bin/env python3
"""Turns the CSV of `sluice bench adaptive` into a PNG chart: p99 latency
against throughput, one marker per policy and phase.

    pip install matplotlib
    python3 scripts/plot_adaptive.py bench-adaptive.csv docs/adaptive.png [--target-ms 5]
"""

import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = {"light": "o", "saturating": "s", "light-again": "^", "burst": "D"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="the CSV written by `sluice bench adaptive`")
    parser.add_argument("png", help="the chart to write")
    parser.add_argument("--target-ms", type=float, default=5.0,
                        help="the adaptive target latency, drawn as a line")
    args = parser.parse_args()

    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print(f"{args.csv}: no rows", file=sys.stderr)
        return 1

    policies = list(dict.fromkeys(r["policy"] for r in rows))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for i, policy in enumerate(policies):
        mine = [r for r in rows if r["policy"] == policy]
        xs = [float(r["events_per_sec"]) for r in mine]
        ys = [float(r["latency_p99_us"]) / 1000.0 for r in mine]
        colour = colours(i % 10)
        bold = policy.startswith("Adaptive")
        ax.plot(xs, ys, color=colour, linewidth=2.5 if bold else 1, alpha=0.5)
        for r, x, y in zip(mine, xs, ys):
            ax.scatter(x, y, color=colour, marker=MARKERS.get(r["phase"], "x"),
                       s=90 if bold else 45, edgecolors="black" if bold else "none",
                       zorder=3)
        ax.plot([], [], color=colour, linewidth=2.5 if bold else 1.5, label=policy)
    for phase, marker in MARKERS.items():
        ax.scatter([], [], color="grey", marker=marker, label=f"phase: {phase}")
    ax.axhline(args.target_ms, color="red", linestyle="--", linewidth=1)
    ax.text(0.01, args.target_ms * 1.1,
            f"target {args.target_ms:g} ms", color="red", fontsize=8,
            transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (events/s)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("sluice bench adaptive: p99 latency against throughput, per policy and phase")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
