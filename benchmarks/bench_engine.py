"""Training-step cost of CeCo versus the cross-entropy baseline through the training engine (CeCo
paper Table 11: +9.4 % for DeepLabV3+ R101, +10.2 % for MinkowskiNet-34; inference unchanged).

Each arm is built once by the engine (:func:`ceco_lite.engine.trainer.build`: the same seed, so
the same initial weights and data) and trained by the engine's own loop
(:func:`ceco_lite.engine.trainer.run_epoch`). Epochs of the arms alternate (A B C, C B A, ...),
so that machine-load drift hits every arm alike; the first ``--warmup`` epochs of each arm are
not counted. Printed: the median time per step of each arm, the ratio of the medians to CE, the
median of the per-round ratios and the ratio of the 10th percentiles (the least disturbed epochs). Arms: ``CE`` (λ = 0), ``CeCo`` (λ > 0, the eager loss) and,
with ``--compile-loss``, ``CeCo+compile`` (``compile_loss=True``:
:class:`ceco_lite.ceco.CompiledCenterLoss`; its first epoch compiles).

Usage::

    python benchmarks/bench_engine.py [--preset synthetic-cpu] [--epochs 30] [--threads 1] [--compile-loss]
    python benchmarks/bench_engine.py --preset cifar100-lt --device cuda --compile-loss   # GPU
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from ceco_lite.engine import get_preset
from ceco_lite.engine.runtime import start_runtime
from ceco_lite.engine.trainer import TrainState, build, run_epoch


def interleaved_epochs(configs: dict, epochs: int, warmup: int) -> tuple[dict, dict, str]:
    """Per-step times of ``{arm: TrainConfig}`` (same runtime fields): ``(wall, cpu, device)``, each
    ``{arm: [seconds per step of each timed epoch]}``; ``cpu`` is the process CPU time
    (:func:`time.process_time`, all threads), which load from other processes on a shared
    machine inflates much less than the wall time.

    Every arm is built once; their epochs alternate (A B C, C B A, ...).
    """
    first = next(iter(configs.values()))
    wall: dict = {arm: [] for arm in configs}
    cpu: dict = {arm: [] for arm in configs}
    with start_runtime(first) as runtime:
        parts = {arm: build(cfg, runtime) for arm, cfg in configs.items()}
        states = {arm: TrainState() for arm in configs}
        arms = list(configs)
        for e in range(warmup + epochs):
            for arm in (arms if e % 2 == 0 else arms[::-1]):
                c0 = time.process_time()
                record = run_epoch(parts[arm], states[arm], configs[arm], runtime)
                steps = max(parts[arm].steps_per_epoch, 1)
                if e >= warmup:
                    wall[arm].append(record["time_per_step"])
                    cpu[arm].append((time.process_time() - c0) / steps)
    return wall, cpu, str(runtime.device)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="synthetic-cpu")
    p.add_argument("--epochs", type=int, default=30, help="timed epochs per arm")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs per arm")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--ceco-lambda", "--lambda", dest="ceco_lambda", type=float, default=0.4)
    p.add_argument("--compile-loss", action="store_true", help="add the arm CeCo+compile (compile_loss=True)")
    args = p.parse_args(argv)
    over = dict(progress=False, epochs=10_000, eval_every=10_000, nc_every=10_000, checkpoint=False)
    if args.device:
        over["device"] = args.device
    if args.threads:
        over["num_threads"] = args.threads
    configs = {"CE": get_preset(args.preset, ceco_lambda=0.0, **over),
               "CeCo": get_preset(args.preset, ceco_lambda=args.ceco_lambda, **over)}
    if args.compile_loss:
        configs["CeCo+compile"] = get_preset(args.preset, ceco_lambda=args.ceco_lambda, compile_loss=True, **over)
    wall, cpu, device = interleaved_epochs(configs, args.epochs, args.warmup)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cfg = configs["CE"]
    print(f"preset={args.preset} model={cfg.model} batch={cfg.batch_size} device={device} "
          f"threads={args.threads or 'default'} epochs timed={args.epochs} (+{args.warmup} warm-up) per arm, "
          f"interleaved; load average {load:.2f}")
    for clock, times in (("wall", wall), ("cpu", cpu)):
        if clock == "cpu" and device != "cpu":
            continue  # on an accelerator the process CPU time is not the step time
        ce = statistics.median(times["CE"])
        ce_low = sorted(times["CE"])[len(times["CE"]) // 10]
        for arm, ts in times.items():
            med = statistics.median(ts)
            pairs = statistics.median(t / c for t, c in zip(ts, times["CE"]))
            low = sorted(ts)[len(ts) // 10]
            print(f"{clock:4s} {arm:13s}: {1000 * med:8.2f} ms/step (median of {len(ts)})  / CE = {med / ce:.3f}  "
                  f"(median of round ratios {pairs:.3f}; 10th percentiles {low / ce_low:.3f})")
    print("paper Table 11: CeCo / CE = 1.094 (DLV3P-R101), 1.102 (MinkowskiNet-34); goal <= 1.03")


if __name__ == "__main__":
    main()
