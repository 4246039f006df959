"""Time the neural-collapse statistics on a segmentation-sized batch.

Features ``(B, d, H, W) = (8, 64, 128, 256)`` (262,144 pixels), 19 classes
(Cityscapes-like imbalance, 5 % ignored pixels), classifier ``(64, 19)``.
Measured side by side in one run:

* ``nc_metrics`` (one shot, both passes, with classifier);
* ``NCAccumulator`` fed one image at a time (pass 1 + compute, and pass 2);
* a direct float64 reference that materialises ``z_i − z̄_{y_i}`` for all
  pixels (the memory-hungry way the streaming form avoids).

Usage::

    python benchmarks/bench_nc.py [--device cpu|cuda] [--repeats 3]
"""
from __future__ import annotations

import argparse

import torch

from ceco_lite.nc import NCAccumulator, nc_metrics

try:  # `python benchmarks/bench_x.py` (the documented way): benchmarks/ is on sys.path
    from _timing import best_time as _best
except ImportError:  # `python -m benchmarks.bench_x` from the repository root
    from benchmarks._timing import best_time as _best


def direct_reference(z, y, K):
    """Materialised float64 NC1 (all centred features held at once)."""
    d = z.shape[1]
    x = z.permute(0, 2, 3, 1).reshape(-1, d).double()
    lab = y.reshape(-1)
    keep = lab != 255
    x, lab = x[keep], lab[keep]
    counts = torch.bincount(lab, minlength=K)
    sums = torch.zeros(K, d, dtype=torch.float64, device=x.device).index_add_(0, lab, x)
    present = counts > 0
    means = sums / counts.clamp_min(1)[:, None]
    centred_x = x - means[lab]
    sigma_w = centred_x.T @ centred_x / x.shape[0]
    m = means[present] - x.mean(0)
    sigma_b = m.T @ m / m.shape[0]
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / m.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 64, 128, 256], metavar=("B", "d", "H", "W"))
    args = parser.parse_args()
    device = torch.device(args.device)
    B, d, H, W = args.shape
    K = 19
    g = torch.Generator().manual_seed(0)
    freq = torch.logspace(0, -2.5, K)
    y = torch.multinomial(freq / freq.sum(), B * H * W, replacement=True, generator=g).view(B, H, W)
    y[torch.rand(B, H, W, generator=g) < 0.05] = 255
    centres = torch.randn(K, d, generator=g) * 2
    z = centres[y.clamp_max(K - 1)].permute(0, 3, 1, 2) + torch.randn(B, d, H, W, generator=g)
    z, y = z.float().contiguous().to(device), y.to(device)
    w = torch.randn(d, K, generator=g).to(device)

    def one_shot():
        return nc_metrics(z, y, K, classifier=w)

    def streaming_pass1():
        acc = NCAccumulator(K, d)
        for b in range(B):
            acc.update(z[b : b + 1], y[b : b + 1])
        return acc.compute(w)

    acc2 = NCAccumulator(K, d)
    for b in range(B):
        acc2.update(z[b : b + 1], y[b : b + 1])
    acc2.freeze_means()

    def streaming_pass2():
        acc2._ncc_classifier, acc2._ncc_mismatch, acc2._ncc_total = None, 0, 0
        for b in range(B):
            acc2.update_ncc(z[b : b + 1], y[b : b + 1], w)

    def direct():
        return direct_reference(z, y, K)

    one_shot(), direct()  # warm-up (CUDA context, kernels)
    t_one = _best(one_shot, device, args.repeats)
    t_s1 = _best(streaming_pass1, device, args.repeats)
    t_s2 = _best(streaming_pass2, device, args.repeats)
    t_dir = _best(direct, device, args.repeats)
    stats = one_shot()
    streaming_pass2()
    print(f"device={device} features={tuple(z.shape)} {z.dtype} classes={K} pixels={B * H * W:,}")
    print(f"nc_metrics one-shot (2 passes, classifier): {t_one * 1e3:9.1f} ms")
    print(f"NCAccumulator per image, pass 1 + compute : {t_s1 * 1e3:9.1f} ms")
    print(f"NCAccumulator per image, pass 2 (NC4)     : {t_s2 * 1e3:9.1f} ms")
    print(f"direct float64 reference (NC1 only)       : {t_dir * 1e3:9.1f} ms")
    print(f"ratio one-shot / direct                    : {t_one / t_dir:9.2f}")
    print(f"throughput one-shot: {B * H * W / t_one / 1e6:.1f} Mpixel/s")
    print(f"accumulator state: {(K * d + K + d * d + d) * 8 / 1024:.1f} KiB vs features "
          f"{z.numel() * z.element_size() / 2**20:.0f} MiB")
    ref = direct()
    print(f"nc1 one-shot {stats['nc1']:.10g} vs direct {ref:.10g} (rel diff {abs(stats['nc1'] - ref) / ref:.1e})")


if __name__ == "__main__":
    main()
