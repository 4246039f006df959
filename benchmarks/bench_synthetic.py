"""Throughput of the synthetic segmentation generator on one CPU core.

Target (issue 3): at least 2,000 images of 64x64 per second on one core, so the
generator can sit behind a slider. Prints images/s from wall-clock time and from the
process CPU time (the latter is robust to other processes sharing the machine).

    OMP_NUM_THREADS=1 python benchmarks/bench_synthetic.py [--images 2000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from data_utils import make_synthetic_segmentation


def bench(num_images: int, num_classes: int, size: int, imbalance_factor: float, repeats: int, **options):
    make_synthetic_segmentation(64, num_classes, size, imbalance_factor, seed=0, **options)  # warm-up
    wall, cpu = [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        make_synthetic_segmentation(num_images, num_classes, size, imbalance_factor, seed=r, **options)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return num_images / min(wall), num_images / statistics.median(wall), num_images / min(cpu)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.images} images per call")
    cases = [
        (10, 64, 100.0, {}),
        (19, 64, 100.0, {}),
        (19, 64, 373.0, {"ignore_region": True}),
        (19, 32, 100.0, {}),
        (19, 128, 100.0, {}),
    ]
    for K, size, IF, opts in cases:
        n = args.images if size <= 64 else max(1, args.images // 4)
        best, med, cpu = bench(n, K, size, IF, args.repeats, **opts)
        extra = ", ".join(f"{k}={v}" for k, v in opts.items())
        print(f"K={K:<3} {size}x{size} IF={IF:<5g} {extra:<18} images/s: best {best:8.0f}  median {med:8.0f}  "
              f"(CPU-time {cpu:8.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
