"""Time the class-centre reduction (CeCo paper Eq. 3) against the released code's one-hot product.

Features ``(B, d, H, W) = (8, 256, 128, 256)`` float32 (262,144 pixels, 5 %
ignored, Zipf-like class frequencies) with K = 19 and K = 150.  Measured side by
side in one run, on the same inputs:

* ``ceco_lite.class_centers`` (scatter-add along the pixel axis on CPU, no
  transpose copy; on CUDA a float32 one-hot matrix product ``onehot(y)^T @ Z``,
  see ``_class_sums_onehot`` in ``ceco_lite/centers.py``);
* the released CeCo code's reduction: ``permute(0, 2, 3, 1)``, boolean
  selection of the valid pixels, ``one_hot(y).T @ features / counts`` and
  ``torch.unique`` for the present classes.

Both forward only and forward + backward (``centers.sum().backward()``) are
timed; the best of ``--repeats`` runs is reported with the speed-up ratio, and
the centres of the two methods are asserted equal to 1e-5.

``--kernels`` also times the raw reduction kernels (scatter-add along the pixel
axis, ``index_add_`` of pixel rows, one-hot matrix product), which is how the
per-device choice in :func:`ceco_lite.centers.class_sums` was made.

Usage::

    python benchmarks/bench_centers.py            # full size, CPU
    python benchmarks/bench_centers.py --small    # (2, 64, 64, 128): a few seconds
    python benchmarks/bench_centers.py --device cuda --repeats 10 --kernels
"""
from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F

from ceco_lite.centers import class_centers

try:  # `python benchmarks/bench_x.py` (the documented way): benchmarks/ is on sys.path
    from _timing import best_time
except ImportError:  # `python -m benchmarks.bench_x` from the repository root
    from benchmarks._timing import best_time

_best = functools.partial(best_time, warmup=True)  # one untimed call, then the best of `repeats`


def released_centers(features: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """The released CeCo head's reduction (UPerHead_cecol.forward, training branch)."""
    pix = features.permute(0, 2, 3, 1).contiguous()
    valid = labels != 255
    y_valid = labels[valid].long()
    out_valid = pix[valid, :]
    onehot = F.one_hot(y_valid, num_classes).float()
    sums = onehot.T @ out_valid
    present = torch.unique(y_valid)
    counts = onehot.T.sum(dim=1)
    return sums[present] / counts[present].unsqueeze(1), present


def raw_kernels(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """Per-class sums ``(K+1, d)`` (last row: ignored pixels) by three raw kernels."""
    B, d, H, W = features.shape
    K = num_classes
    idx = torch.where(labels == 255, K, labels)

    def scatter_pixel_axis():
        buf = torch.zeros(B, d, K + 1, device=features.device, dtype=features.dtype)
        index = idx.reshape(B, 1, H * W).expand(B, d, H * W)
        return buf.scatter_add(2, index, features.reshape(B, d, H * W)).sum(0).T

    def index_add_rows():
        rows = features.permute(0, 2, 3, 1).reshape(-1, d)
        return torch.zeros(K + 1, d, device=features.device, dtype=features.dtype).index_add(0, idx.reshape(-1), rows)

    def onehot_matmul():
        rows = features.permute(0, 2, 3, 1).reshape(-1, d)
        return F.one_hot(idx.reshape(-1), K + 1).to(features.dtype).T @ rows

    return {"scatter_add (pixel axis)": scatter_pixel_axis, "index_add_ (pixel rows)": index_add_rows,
            "one-hot matmul": onehot_matmul}


def make_batch(B, d, H, W, K, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, d, H, W, generator=g)
    freq = 1.0 / torch.arange(1, K + 1, dtype=torch.float64) ** 1.2  # Zipf-like imbalance
    labels = torch.multinomial(freq, B * H * W, replacement=True, generator=g).reshape(B, H, W)
    labels[torch.rand(B, H, W, generator=g) < 0.05] = 255
    return feats.to(device), labels.to(device)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="(2, 64, 64, 128) instead of (8, 256, 128, 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--classes", type=int, nargs="+", default=[19, 150])
    p.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    p.add_argument("--kernels", action="store_true", help="also time the raw reduction kernels")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    B, d, H, W = (2, 64, 64, 128) if args.small else (8, 256, 128, 256)
    print(f"class centres (CeCo Eq. 3): features ({B}, {d}, {H}, {W}) float32 on {device}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'K':>5} {'pass':>9} {'class_centers':>15} {'released one-hot':>18} {'speed-up':>9}")
    for K in args.classes:
        feats, labels = make_batch(B, d, H, W, K, device)
        ours, counts = class_centers(feats, labels, K)
        ref, present = released_centers(feats, labels, K)
        err = (ours[present] - ref).abs().max().item()
        assert torch.equal(present, counts.nonzero().flatten()), "present classes differ"
        assert err <= 1e-5, f"centres differ by {err:.2e}"
        t_ours = _best(lambda: class_centers(feats, labels, K), device, args.repeats)
        t_ref = _best(lambda: released_centers(feats, labels, K), device, args.repeats)
        print(f"{K:>5} {'forward':>9} {t_ours * 1e3:>12.1f} ms {t_ref * 1e3:>15.1f} ms {t_ref / t_ours:>8.2f}x"
              f"   (max |diff| {err:.1e})")
        if not args.no_backward:
            leaf = feats.clone().requires_grad_(True)

            def fb_ours():
                leaf.grad = None
                class_centers(leaf, labels, K)[0].sum().backward()

            def fb_ref():
                leaf.grad = None
                released_centers(leaf, labels, K)[0].sum().backward()

            fb_ours()
            # gradients agree too (1/n_k for every valid pixel)
            g_ours = leaf.grad.clone()
            fb_ref()
            assert (g_ours - leaf.grad).abs().max().item() <= 1e-5
            t_ours = _best(fb_ours, device, args.repeats)
            t_ref = _best(fb_ref, device, args.repeats)
            print(f"{K:>5} {'fwd+bwd':>9} {t_ours * 1e3:>12.1f} ms {t_ref * 1e3:>15.1f} ms {t_ref / t_ours:>8.2f}x")
        if args.kernels:
            for name, fn in raw_kernels(feats, labels, K).items():
                out = fn()
                err_k = (out[:K][present] / counts[present, None].to(out.dtype) - ref).abs().max().item()
                assert err_k <= 1e-5, f"{name} differs by {err_k:.2e}"
                print(f"{K:>5} {'kernel':>9} {name:>28}: {_best(fn, device, args.repeats) * 1e3:8.1f} ms")
        del feats, labels


if __name__ == "__main__":
    main()
