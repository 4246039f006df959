"""Training-step cost of CeCo versus the cross-entropy baseline (CeCo paper Table 11:
+9.4 % for DeepLabV3+ R101, +10.2 % for MinkowskiNet-34; inference unchanged).

Measured side by side in one process, alternating the two arms over several rounds
so that machine-load drift hits both equally; prints the median time per step and
the ratio. Usage::

    python benchmarks/bench_engine.py [--preset synthetic-cpu] [--steps 40] [--rounds 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics

from ceco_lite.engine import get_preset, train


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="synthetic-cpu")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--ceco-lambda", "--lambda", dest="ceco_lambda", type=float, default=0.4)
    args = p.parse_args(argv)
    over = dict(progress=False, max_steps=args.steps, epochs=10_000, eval_every=10_000, nc_every=10_000)
    if args.device:
        over["device"] = args.device
    times = {"CE": [], "CeCo": []}
    for _ in range(args.rounds):
        for arm, lam in (("CE", 0.0), ("CeCo", args.ceco_lambda)):
            res = train(get_preset(args.preset, ceco_lambda=lam, **over))
            h = res.history
            per_epoch = [(r["epoch_time"], r["step"] - (h[i - 1]["step"] if i else 0)) for i, r in enumerate(h)]
            if len(per_epoch) > 1:  # skip the first epoch (warm-up: allocator, kernel selection)
                per_epoch = per_epoch[1:]
            total = sum(t for t, _ in per_epoch)
            steps = sum(n for _, n in per_epoch)
            times[arm].append(total / max(steps, 1))
    ce, cc = statistics.median(times["CE"]), statistics.median(times["CeCo"])
    print(f"preset={args.preset} device={res.metrics['device']} steps/run={args.steps} rounds={args.rounds}")
    print(f"CE   : {1000 * ce:8.2f} ms/step (median; all: {[round(1000 * t, 2) for t in times['CE']]})")
    print(f"CeCo : {1000 * cc:8.2f} ms/step (median; all: {[round(1000 * t, 2) for t in times['CeCo']]})")
    print(f"CeCo / CE = {cc / ce:.3f}  (paper Table 11: 1.094 DLV3P-R101, 1.102 MinkowskiNet-34)")


if __name__ == "__main__":
    main()
