"""Time per training epoch of the ``camvid-cpu`` preset (real CamVid), cross-entropy versus CeCo.

Measured side by side in one process: the two arms take turns, a few epochs each,
over several rounds, so that machine-load drift hits both equally; prints the median
time per epoch of each arm and their ratio (evaluation and NC statistics are not
timed: they do not depend on the training loss). The first epoch of every turn is a
warm-up (allocator, kernel selection) and is not counted. Needs the CamVid data
(``--data-root`` or ``$CECO_DATA_DIR``). Usage::

    python benchmarks/bench_camvid.py [--preset camvid-cpu] [--epochs 3] [--rounds 3] [--ceco-lambda L]
"""
from __future__ import annotations

import argparse
import os
import statistics

from ceco_lite.engine import get_preset, train


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="camvid-cpu")
    p.add_argument("--epochs", type=int, default=3, help="epochs per turn (the first one is a warm-up)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ceco-lambda", "--lambda", dest="ceco_lambda", type=float, default=None,
                   help="CeCo weight (default: the preset's)")
    p.add_argument("--data-root", dest="data_root", default=None)
    args = p.parse_args(argv)
    base = get_preset(args.preset, progress=False, checkpoint=False,
                      **({"data_root": args.data_root} if args.data_root else {}))
    lam = base.ceco_lambda if args.ceco_lambda is None else args.ceco_lambda
    # whole epochs only; the final evaluation is outside the timed epochs
    over = dict(epochs=args.epochs, eval_every=10_000, nc_every=10_000)
    times = {"CE": [], "CeCo": []}
    load_start = os.getloadavg()[0]
    for _ in range(args.rounds):
        for arm, value in (("CE", 0.0), ("CeCo", lam)):
            res = train(base.replace(ceco_lambda=value, **over))
            epoch_times = [r["epoch_time"] for r in res.history]
            times[arm] += epoch_times[1:] if len(epoch_times) > 1 else epoch_times
    ce, cc = statistics.median(times["CE"]), statistics.median(times["CeCo"])
    steps = res.metrics["steps"] // len(res.history)
    print(f"preset={args.preset} device={res.metrics['device']} image_size={base.image_size} model={base.model} "
          f"batch={base.batch_size} steps/epoch={steps} threads={base.num_threads} "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"1-minute load average: {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"epochs per turn={args.epochs} (first not counted) rounds={args.rounds} CeCo λ={lam:g} "
          f"α={base.ceco_scale:g}")
    print(f"CE   : {ce:7.2f} s/epoch (median; all: {[round(t, 2) for t in times['CE']]})")
    print(f"CeCo : {cc:7.2f} s/epoch (median; all: {[round(t, 2) for t in times['CeCo']]})")
    print(f"CeCo / CE = {cc / ce:.3f}  (paper Table 11: 1.094 DLV3P-R101, 1.102 MinkowskiNet-34)")


if __name__ == "__main__":
    main()
