"""Section hit@1, hit@5 and MRR@10 of pairs of runs side by side, as one PNG.

Run: .venv/bin/python benchmarks/compare_runs_plot.py OUT.png LABEL=BASE_RUN,NEW_RUN [LABEL=BASE_RUN,NEW_RUN ...]
       [--names "packaged MiniLM,tuned question model"]
Each LABEL is a test set half; BASE_RUN and NEW_RUN are folders written by ``sopilot eval run`` (their
metrics.json is read). The figures are printed too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = ("hit@1", "hit@5", "mrr@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("pairs", nargs="+", metavar="LABEL=BASE_RUN,NEW_RUN")
    parser.add_argument("--names", default="packaged MiniLM,tuned question model")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = args.names.split(",")
    labels, values = [], []
    for item in args.pairs:
        label, runs = item.split("=", 1)
        row = []
        for run in runs.split(","):
            section = json.loads((Path(run) / "metrics.json").read_text())["retrieval"]["section"]
            row.append([section[m] for m in METRICS])
        labels.append(label)
        values.append(row)
        print(label, " | ".join(f"{n}: " + " / ".join(f"{v:.3f}" for v in r) for n, r in zip(names, row, strict=True)))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6), sharey=True)
    width = 0.38
    for m, ax in enumerate(axes):
        for j, name in enumerate(names):
            xs = [i + (j - 0.5) * width for i in range(len(labels))]
            bars = ax.bar(xs, [v[j][m] for v in values], width, label=name)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.set_title(f"section {METRICS[m]}")
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
