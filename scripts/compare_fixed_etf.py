#!/usr/bin/env python3
"""Cross-entropy versus a fixed simplex-ETF classifier trained with cross-entropy or dot regression.

Yang et al. (NeurIPS 2022) fix the classifier to a simplex ETF and train the features
with the dot-regression loss. This script trains three arms of one preset per seed
(same data, initialisation and batches; only the classifier and its loss differ):

* ``CE``: learned classifier, cross-entropy;
* ``ETF + CE``: fixed simplex-ETF classifier, cross-entropy;
* ``ETF + DR``: fixed simplex-ETF classifier, dot-regression loss (``classifier_loss="dot_regression"``);

and prints top-1 accuracy and the Pearson correlation of per-class accuracy with class
frequency (CeCo supplement Fig. 7), mean ± std over seeds. Runs are cached under ``--out``.

Usage::

    python scripts/compare_fixed_etf.py --preset cifar10-lt-cpu --seeds 0 1 2 [--out runs]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from ceco_lite.engine import get_preset, run_many
from ceco_lite.fileio import atomic_write_json
from data_utils.stats import pearson

ARMS = {
    "CE": dict(fixed_pixel_classifier=False, classifier_loss="cross_entropy"),
    "ETF + CE": dict(fixed_pixel_classifier=True, classifier_loss="cross_entropy"),
    "ETF + DR": dict(fixed_pixel_classifier=True, classifier_loss="dot_regression"),
}


def _pearson(metrics: dict) -> float:
    acc = np.asarray(metrics["per_class"], dtype=float)
    counts = np.asarray(metrics["class_counts"], dtype=float)
    keep = np.isfinite(acc) & (counts > 0)
    return pearson(acc[keep], counts[keep] / counts.max())


def _cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:6.2f} ± {std:5.2f}" if std == std else f"{mean:6.2f} ±   n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cifar10-lt-cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct")
    configs = {(arm, seed): get_preset(args.preset, seed=seed, ceco_lambda=0.0, progress=False, **kw)
               for seed in args.seeds for arm, kw in ARMS.items()}
    results = run_many(configs, args.out)
    rows = {arm: {"top1": [results[(arm, s)].score for s in args.seeds],
                  "pearson": [_pearson(results[(arm, s)].metrics) for s in args.seeds],
                  "tail": [results[(arm, s)].metrics["tail"] for s in args.seeds],
                  "time_per_step": [results[(arm, s)].metrics["time_per_step"] for s in args.seeds]}
            for arm in ARMS}
    print(f"{args.preset}, seeds {args.seeds}: mean ± std over seeds")
    print(f"{'arm':<10}{'top-1 (%)':>18}{'tail acc. (%)':>18}{'Pearson(acc, freq)':>22}")
    for arm, r in rows.items():
        print(f"{arm:<10}{_cell(r['top1']):>18}{_cell(r['tail']):>18}{_cell(r['pearson']):>22}")
    path = Path(args.out) / f"compare-fixed-etf-{args.preset}-seeds{'-'.join(map(str, args.seeds))}.json"
    atomic_write_json({"preset": args.preset, "seeds": args.seeds, "rows": rows}, path)
    print(f"runs under {args.out}; table in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
