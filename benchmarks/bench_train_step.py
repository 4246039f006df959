"""Training-step time with and without the CeCo loss (CenterCollapseLoss), side by side.

For each model, two copies with identical initial weights are trained on the
same synthetic imbalanced batch: the baseline (pixel cross-entropy, L_PR) and
CeCo (L_PR + lambda * L_CR, CeCo paper Eq. 5). Steps of the two variants are
interleaved (A B B A ...) so drifts in machine load hit both alike; the figure
reported is the median step time and the overhead ``median(CeCo)/median(base) - 1``
(the paper's Table 11 reports +9.37 % for DeepLabV3+ R101, +10.2 % for
MinkowskiNet-34; our goal is <= +3 %). The median of the per-pair ratios is
printed too. ``--clock cpu`` times the process CPU time instead of the wall time (CPU
runs on a shared, oversubscribed machine: other processes' load then barely enters the
figures; use it with ``--threads 1``). ``--compile-loss`` adds the interleaved variant
``ceco_compiled`` (:class:`ceco_lite.ceco.CompiledCenterLoss`: the loss compiled by
``torch.compile``, a CUDA graph on CUDA; compiled during the warm-up steps). ``--profile``
adds a further interleaved variant (CeCo with the
label/finiteness validation of ``class_sums`` switched off, to show what the
checks cost: on CPU they raise ``ValueError`` at once, on CUDA they are queued
device-side assertions, ``torch._assert_async``, with no host synchronisation),
the time of the CeCo loss alone (forward + backward on fixed features) and a
torch.profiler table of it.

Examples::

    python benchmarks/bench_train_step.py                       # CPU, small_seg + lraspp
    python benchmarks/bench_train_step.py --device cuda         # bf16 autocast, channels-last, larger sizes
    python benchmarks/bench_train_step.py --models small_seg --steps 100 --profile
    python benchmarks/bench_train_step.py --threads 1 --clock cpu --steps 200 --compile-loss   # shared CPU
    python benchmarks/bench_train_step.py --device cuda --models small_seg,lraspp_mobilenet_v3,deeplabv3_resnet50 \
        --compile-loss
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

from ceco_lite.models import build_model

try:  # `python benchmarks/bench_x.py` (the documented way): benchmarks/ is on sys.path
    from _timing import time_once as timed
except ImportError:  # `python -m benchmarks.bench_x` from the repository root
    from benchmarks._timing import time_once as timed

DEFAULTS = {  # (batch, size) per device and model
    "cpu": {"small_seg": (8, 64), "lraspp_mobilenet_v3": (4, 96), "deeplabv3_resnet50": (1, 64)},
    "cuda": {"small_seg": (32, 256), "lraspp_mobilenet_v3": (16, 512), "deeplabv3_resnet50": (8, 512)},
}


def synthetic_batch(batch: int, size: int, num_classes: int, *, device, seed: int = 0):
    """Random images and blocky, imbalanced label maps (class k with probability ~ 2^-k, 2 % ignore 255)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g)
    prior = 0.5 ** torch.arange(num_classes, dtype=torch.float64)
    coarse = torch.multinomial(prior / prior.sum(), batch * (size // 8) ** 2, replacement=True, generator=g)
    y = coarse.view(batch, 1, size // 8, size // 8).float()
    y = F.interpolate(y, size=(size, size), mode="nearest").long().squeeze(1)
    y[torch.rand(y.shape, generator=g) < 0.02] = 255
    return x.to(device), y.to(device)


def make_step(model, criterion, ceco, lam, x, y, device, amp_dtype):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                          weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x)
            loss = criterion(out["logits"], y)
            if ceco is not None:
                loss = loss + lam * ceco(out["features"], y)
        loss.backward()
        opt.step()
        return loss

    return step


def cpu_time_once(fn) -> float:
    """Process CPU time in seconds (all threads) of one call ``fn()`` (CPU runs only)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _without_validation(step):
    """Run ``step`` with ``class_sums(..., validate=False)`` inside CenterCollapseLoss.

    Diagnostic only: shows what the label-range and finiteness checks cost inside
    a training step (on CUDA they are ``torch._assert_async`` device-side
    assertions, no host synchronisation; on CPU they are checked at once).
    """
    import functools

    import ceco_lite.ceco as ceco_mod

    original = ceco_mod.class_sums
    fast = functools.partial(original, validate=False)

    def wrapped():
        ceco_mod.class_sums = fast
        try:
            return step()
        finally:
            ceco_mod.class_sums = original

    return wrapped


def bench_model(name, args, device, amp_dtype, CenterCollapseLoss, CompiledCenterLoss=None):
    batch, size = DEFAULTS[device.type].get(name, (4, 64))
    batch = args.batch or batch
    size = args.size or size
    channels_last = device.type == "cuda" or args.channels_last
    torch.manual_seed(0)
    base_model = build_model(name, args.num_classes).to(device).train()
    if channels_last:
        base_model = base_model.to(memory_format=torch.channels_last)
    x, y = synthetic_batch(batch, size, args.num_classes, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    ceco = CenterCollapseLoss(args.num_classes, base_model.feature_dim,
                              generator=torch.Generator().manual_seed(0)).to(device)
    models = {"base": base_model, "ceco": copy.deepcopy(base_model)}
    steps = {"base": make_step(models["base"], criterion, None, args.ceco_lambda, x, y, device, amp_dtype),
             "ceco": make_step(models["ceco"], criterion, ceco, args.ceco_lambda, x, y, device, amp_dtype)}
    if args.compile_loss:
        models["ceco_compiled"] = copy.deepcopy(base_model)
        steps["ceco_compiled"] = make_step(models["ceco_compiled"], criterion, CompiledCenterLoss(ceco),
                                           args.ceco_lambda, x, y, device, amp_dtype)
    if args.profile:
        models["ceco_noval"] = copy.deepcopy(base_model)
        steps["ceco_noval"] = _without_validation(
            make_step(models["ceco_noval"], criterion, ceco, args.ceco_lambda, x, y, device, amp_dtype))
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    keys = list(steps)
    times = {k: [] for k in keys}
    clock = (lambda fn: cpu_time_once(fn)) if args.clock == "cpu" else (lambda fn: timed(fn, device))
    for i in range(args.steps):
        for key in (keys if i % 2 == 0 else keys[::-1]):  # A B C, C B A, ...
            times[key].append(clock(steps[key]))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}

    def overhead(key):
        pair = statistics.median(c / b for b, c in zip(times["base"], times[key]))
        return (med[key] / med["base"] - 1) * 100, (pair - 1) * 100

    def overhead_low(key):  # of the 10th percentiles: the least disturbed steps of each variant
        lo = {k: sorted(times[k])[len(times[k]) // 10] for k in ("base", key)}
        return (lo[key] / lo["base"] - 1) * 100

    with torch.no_grad():
        feat_shape = tuple(base_model(x)["features"].shape)
    ov, ov_pair = overhead("ceco")
    print(f"{name:20s} batch {batch:3d} x {size}x{size}  features {feat_shape}  "
          f"base {med['base']:8.2f} ms/step  ceco {med['ceco']:8.2f} ms/step  "
          f"overhead {ov:+6.2f} %  (median of pair ratios {ov_pair:+6.2f} %, 10th percentiles "
          f"{overhead_low('ceco'):+6.2f} %)", flush=True)
    if args.compile_loss:
        ovc, ovc_pair = overhead("ceco_compiled")
        print(f"{'':20s} ceco_compiled (CompiledCenterLoss): {med['ceco_compiled']:8.2f} ms/step  "
              f"overhead {ovc:+6.2f} %  (pairs {ovc_pair:+6.2f} %, 10th percentiles "
              f"{overhead_low('ceco_compiled'):+6.2f} %)", flush=True)
    if args.profile:
        ov2, ov2_pair = overhead("ceco_noval")
        print(f"{'':20s} ceco with class_sums(validate=False): {med['ceco_noval']:8.2f} ms/step  "
              f"overhead {ov2:+6.2f} %  (pairs {ov2_pair:+6.2f} %)", flush=True)
        _profile_loss(ceco, models["ceco"], x, y, med["base"], args, device, amp_dtype)
    return med, ov


def _profile_loss(ceco, model, x, y, base_ms, args, device, amp_dtype):
    """Time the CeCo loss alone (forward + backward on fixed features) and print a profiler table."""
    from torch.profiler import ProfilerActivity, profile

    autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731
    with torch.no_grad(), autocast():
        feats = model(x)["features"]
    feats = feats.detach().requires_grad_(True)

    def loss_only():
        with autocast():
            loss = ceco(feats, y)
        loss.backward()
        feats.grad = None

    for _ in range(args.warmup):
        loss_only()
    t_loss = statistics.median(timed(loss_only, device) for _ in range(args.steps)) * 1e3
    print(f"{'':20s} CeCo loss alone (fwd+bwd, synchronised): {t_loss:.3f} ms "
          f"= {100 * t_loss / base_ms:.2f} % of a baseline step", flush=True)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        loss_only()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    try:
        table = prof.key_averages().table(sort_by=sort, row_limit=args.profile_rows)
    except (KeyError, AttributeError, ValueError):
        table = prof.key_averages().table(row_limit=args.profile_rows)
    print(table, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", default="small_seg,lraspp_mobilenet_v3",
                   help="comma-separated build_model names (segmentation)")
    p.add_argument("--num-classes", type=int, default=19)
    p.add_argument("--batch", type=int, default=None, help="override the per-model default batch")
    p.add_argument("--size", type=int, default=None, help="override the per-model default image size")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant (default cpu 40, cuda 100)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--ceco-lambda", dest="ceco_lambda", type=float, default=0.4, help="CeCo loss weight λ")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--channels-last", action="store_true", help="channels-last on CPU (always on for CUDA)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall time (synchronised) or process CPU time (CPU runs on a shared machine)")
    p.add_argument("--compile-loss", action="store_true",
                   help="add the variant ceco_compiled (CompiledCenterLoss, torch.compile of the loss)")
    p.add_argument("--profile", action="store_true", help="time the CeCo loss alone and print a profiler table")
    p.add_argument("--profile-rows", type=int, default=15)
    args = p.parse_args(argv)
    try:
        from ceco_lite.ceco import CenterCollapseLoss
    except ImportError as exc:  # pragma: no cover
        raise SystemExit(f"CenterCollapseLoss is not available: {exc}")
    CompiledCenterLoss = None
    if args.compile_loss:
        from ceco_lite.ceco import CompiledCenterLoss
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu measures CPU runs only")
    if args.steps is None:
        args.steps = 100 if device.type == "cuda" else 40
    amp_dtype = torch.bfloat16 if device.type == "cuda" and not args.no_amp else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  bf16 autocast: "
              f"{amp_dtype is not None}  channels-last", flush=True)
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"device: cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores, load average {load:.2f})  "
              f"torch {torch.__version__}  clock: {args.clock}", flush=True)
    print(f"K = {args.num_classes}, lambda = {args.ceco_lambda}, {args.steps} interleaved steps per variant, "
          f"{args.warmup} warm-up; goal overhead <= +3 % (CeCo paper Table 11: +9.37 % to +10.2 %)", flush=True)
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        bench_model(name, args, device, amp_dtype, CenterCollapseLoss, CompiledCenterLoss)


if __name__ == "__main__":
    main()
