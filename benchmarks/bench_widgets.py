"""Slider latency of the lesson widgets (lessons 1, 2, 4): median time of one callback.

A "slider move" is ``slider.value = v`` on the widget, which runs the callback the
browser would trigger (recomputation + figure update inside ``fig.batch_update()``);
the time to send the update to the browser is not included.  Requirements (issue):
median < 100 ms for lessons 1 and 4, < 500 ms for the live retraining of lesson 2,
on a 2-core CPU.

Also measured side by side: one layer-peeled-model training (lesson 2's callback work)
on one PyTorch thread (what :func:`ceco_lite.ufm.train_ufm` uses for small problems)
versus the default thread count -- the reason for that choice.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_widgets.py [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time_moves(slider, values, repeats: int, before=None) -> list[float]:
    times = []
    for _ in range(repeats):
        for v in values:
            if slider.value == v:
                continue
            if before is not None:
                before()
            t0 = time.perf_counter()
            slider.value = v
            times.append(time.perf_counter() - t0)
    return times


def lesson1(repeats: int) -> dict[str, list[float]]:
    from ceco_lite.widgets import ETFExplorer, Lemma1Explorer, SpreadAnimation

    etf = ETFExplorer(num_classes=4)
    lemma = Lemma1Explorer(num_classes=4, dim=3)  # default 400 random sets
    spread = SpreadAnimation(num_classes=4, dim=3)
    cold = lemma._optimiser_cache.clear  # time every move without the optimiser cache (worst case)
    return {
        "ETFExplorer K": _time_moves(etf.k_slider, [5, 6, 8, 12, 3, 4], repeats),
        "Lemma1Explorer K": _time_moves(lemma.k_slider, [5, 6, 3, 4], repeats, before=cold),
        "Lemma1Explorer d": _time_moves(lemma.dim_slider, [4, 8, 16, 3], repeats, before=cold),
        "SpreadAnimation step (Play)": _time_moves(spread.step_slider, list(range(1, 30, 3)) + [0], repeats),
        "SpreadAnimation K": _time_moves(spread.k_slider, [5, 3, 6, 4], repeats),
    }


def lesson2(repeats: int) -> dict[str, list[float]]:
    from ceco_lite.widgets import MinorityCollapseExplorer

    ex = MinorityCollapseExplorer(num_classes=10, dim=16, imbalance_ratio=10.0, num_minority=5)
    toggle = ex.classifier_toggle
    return {
        "R (retrain)": _time_moves(ex.r_slider, [20.0, 100.0, 316.0, 1000.0, 3.16, 10.0], repeats),
        "K_B (retrain + 2 sweeps)": _time_moves(ex.kb_slider, [3, 7, 5], repeats),
        "learned / fixed ETF": _time_moves(toggle, ["fixed_etf", "learned"], repeats),
    }


def lesson4(repeats: int) -> dict[str, list[float]]:
    from ceco_lite.widgets import GradientFlowExplorer

    ex = GradientFlowExplorer(num_classes=6, dim=8, imbalance_factor=100.0)
    # imbalance values not seen before (the explorer caches trained states): new values each repeat
    if_values = [v * (1 + 0.01 * r) for r in range(repeats) for v in (10.0, 31.6, 316.0, 1000.0, 3.16)]
    return {
        "imbalance factor (retrain)": _time_moves(ex.if_slider, if_values, 1),
        "λ": _time_moves(ex.ceco_lambda_slider, [0.1, 0.3, 0.7, 1.0, 0.5], repeats),
        "α": _time_moves(ex.alpha_slider, [0.5, 2.0, 3.0, 1.0], repeats),
    }


def threads_side_by_side(threads: int, repeats: int) -> tuple[float, float]:
    """Median time of one lesson-2 training on one thread vs ``threads`` threads (same run, alternating)."""
    from ceco_lite.ufm import minority_class_sizes, train_ufm

    sizes = minority_class_sizes(10, 5, 100.0)
    torch.set_num_threads(threads)
    one, many = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        train_ufm(sizes, 16, seed=0, cpu_threads=1)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        train_ufm(sizes, 16, seed=0, cpu_threads=None)  # torch's setting (``threads``) left alone
        many.append(time.perf_counter() - t0)
    return statistics.median(one), statistics.median(many)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the kernel (a 2-core CPU: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; repeats={args.repeats}")
    budgets = {"lesson 1": 0.100, "lesson 2": 0.500, "lesson 4": 0.100}
    for name, fn in (("lesson 1", lesson1), ("lesson 2", lesson2), ("lesson 4", lesson4)):
        results = fn(args.repeats)
        everything = [t for ts in results.values() for t in ts]
        med = statistics.median(everything)
        status = "OK" if med < budgets[name] else "OVER BUDGET"
        print(f"\n{name}: median {1e3 * med:.1f} ms over {len(everything)} moves "
              f"(budget {1e3 * budgets[name]:.0f} ms) {status}")
        for label, ts in results.items():
            print(f"  {label:32s} median {1e3 * statistics.median(ts):7.1f} ms"
                  f"   max {1e3 * max(ts):7.1f} ms   n={len(ts)}")
    one, many = threads_side_by_side(args.threads, max(args.repeats, 3))
    print(f"\nlayer-peeled model (K=10, d=16, 600 steps): 1 thread {1e3 * one:.1f} ms vs "
          f"{args.threads} threads {1e3 * many:.1f} ms (ratio {many / one:.2f}x)")


if __name__ == "__main__":
    main()
