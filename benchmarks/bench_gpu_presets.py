"""Time to result of the GPU presets on one GPU: CIFAR-100-LT, CamVid and Cityscapes, CE and CeCo side by side.

The data are random tensors of each data set's exact shape (uint8 images and masks, as the
engine stores real data, so decoding runs on the device every batch; class frequencies
long-tailed), registered as generated data sets: the timings are those of the real data,
the scores are meaningless.

* ``cifar100-lt`` -- the preset as it is (ResNet-32 with a 128-d projection, batch 128,
  LDAM-DRW schedule, evaluation and NC statistics every epoch) on 10,847 training images
  in CIFAR-100-LT's exact per-class counts (IF 100: 500 ... 5) and 10,000 test images.
  Each arm trains ``--epochs`` epochs through :func:`ceco_lite.engine.train` (checkpoints
  written as in a real run); ``time to result`` = first epoch (warm-up, compilation) +
  199 x the median of the later epochs (each timed from the end of the previous one:
  training, evaluation, NC statistics, checkpoint). Arms: CE, CeCo (λ 0.4), CeCo with
  ``compile_loss``, and both with ``compile=True`` (the model compiled) when ``--compile``.
* ``camvid`` (360x480, 367 / 101 images, 11 classes) and ``cityscapes`` (512x1024,
  2,975 / 500 images, 19 classes) -- the ``cityscapes`` preset's recipe (DeepLabV3-ResNet50,
  batch 8; CamVid's own preset where the engine has one) on ``--seg-images`` images of
  the exact shape, CE and CeCo epochs interleaved through the engine's loop
  (``benchmarks/bench_engine.py``); time to result = steps of the full split x preset
  epochs x time per step, plus the measured evaluation time per image x evaluation images
  x epochs.

On CUDA the training loop is checked for host synchronisation: one epoch runs under
``torch.cuda.set_sync_debug_mode("warn")`` and the synchronising calls are counted
(the engine's loop waits only at the end of an epoch).

``--tiny`` runs everything at a few-second size (small models, small images, 2 epochs) on
any device: the same code and output, for the CPU test. ``--json PATH`` writes the results.
``--data-root DIR`` times the segmentation presets on the real CamVid / Cityscapes frames
found there (at least one batch of them) instead of random ones.

Usage::

    python benchmarks/bench_gpu_presets.py --device cuda --compile --json gpu_presets.json
    python benchmarks/bench_gpu_presets.py --tiny --device cpu          # a few seconds
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ceco_lite.engine import get_preset, train
from ceco_lite.engine.evaluation import evaluate
from ceco_lite.engine.presets import preset_names
from ceco_lite.engine.studies import dataset_status
from ceco_lite.engine.runtime import start_runtime
from ceco_lite.engine.trainer import TrainState, build, run_epoch
from data_utils.cifar_lt import cifar_lt_counts
from data_utils.registry import DatasetSpec, get_dataset, register_dataset

try:  # `python benchmarks/bench_x.py` (the documented way): benchmarks/ is on sys.path
    from bench_engine import interleaved_epochs
except ImportError:  # `python -m benchmarks.bench_x` from the repository root
    from benchmarks.bench_engine import interleaved_epochs

#: Real split sizes and image sizes (H, W) of the data sets.
SHAPES = {
    "cifar100-lt": dict(train=10_847, val=10_000, size=(32, 32)),
    "camvid": dict(train=367, val=101, size=(360, 480)),
    "cityscapes": dict(train=2_975, val=500, size=(512, 1024)),
}


# ------------------------------------------------------------------------------------------- data
def _blocky_masks(n: int, size, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, H, W)`` uint8 masks: 1/16-resolution blocks of long-tailed classes (p_k ~ 0.7^k), 3 % ignore 255."""
    H, W = size
    h, w = max(H // 16, 1), max(W // 16, 1)
    prior = 0.7 ** torch.arange(num_classes, dtype=torch.float64)
    coarse = torch.multinomial(prior / prior.sum(), n * h * w, replacement=True, generator=generator)
    masks = F.interpolate(coarse.view(n, 1, h, w).float(), size=(H, W), mode="nearest").view(n, H, W).to(torch.uint8)
    masks[torch.rand(n, H, W, generator=generator) < 0.03] = 255
    return masks


def register_shape_dataset(like: str, *, train: int, val: int, size, counts=None, seed: int = 0) -> str:
    """Register ``"<like>-shape"``: a generated data set with the task, classes, normalisation and
    evaluation split of ``like`` whose splits are random uint8 images of ``size`` (and masks, or
    labels in the per-class ``counts`` for classification); returns its name."""
    spec = get_dataset(like)
    K = spec.num_classes

    def loader(root, request):
        n = train if request.split == "train" else val
        g = torch.Generator().manual_seed(seed + (0 if request.split == "train" else 1))
        x = torch.randint(0, 256, (n, 3, *size), dtype=torch.uint8, generator=g)
        if spec.task == "classification":
            if request.split == "train" and counts is not None:
                y = torch.repeat_interleave(torch.arange(K), torch.tensor(counts))
            else:
                y = torch.arange(n) % K
            return x, y[torch.randperm(n, generator=g)]
        return x, _blocky_masks(n, size, K, g)

    name = f"{like}-shape"
    register_dataset(DatasetSpec(name=name, task=spec.task, num_classes=K, loader=loader, classes=spec.classes,
                                 palette=spec.palette, mean=spec.mean, std=spec.std, eval_split=spec.eval_split,
                                 default_size=tuple(size)))
    return name


def segmentation_preset(name: str, **overrides):
    """The engine's preset ``name`` where there is one, else the ``cityscapes`` preset's recipe
    (DeepLabV3-ResNet50, batch 8, SGD lr 0.01, poly) with ``overrides`` (the data set among them)."""
    if name in preset_names():
        return get_preset(name, **overrides)
    return get_preset("cityscapes", **overrides)


# ------------------------------------------------------------------------------------------ timing
def _sync_count(fn) -> int | None:
    """Synchronising CUDA calls made by ``fn()`` (``torch.cuda.set_sync_debug_mode("warn")``); None off CUDA."""
    if not torch.cuda.is_available():
        fn()
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def time_classification(args, device: str) -> dict:
    """CIFAR-100-LT: every arm trained for ``args.epochs`` epochs by :func:`train`; per-epoch wall times."""
    shape = SHAPES["cifar100-lt"]
    if args.tiny:
        counts = cifar_lt_counts(10, 100, 100.0)
        dataset = register_shape_dataset("cifar100-lt", train=sum(counts), val=200, size=(32, 32), counts=counts)
        base = dict(model="resnet8", feature_dim=128, nc_max_images=64)
    else:
        counts = cifar_lt_counts(500, 100, 100.0)
        dataset = register_shape_dataset("cifar100-lt", train=sum(counts), val=shape["val"], size=shape["size"],
                                         counts=counts)
        base = {}
    preset = get_preset("cifar100-lt")
    arms = {"CE": dict(ceco_lambda=0.0), "CeCo": dict(ceco_lambda=preset.ceco_lambda),
            "CeCo+compile_loss": dict(ceco_lambda=preset.ceco_lambda, compile_loss=True)}
    if args.compile:
        arms["CE+compile"] = dict(ceco_lambda=0.0, compile=True)
        arms["CeCo+compile+compile_loss"] = dict(ceco_lambda=preset.ceco_lambda, compile=True, compile_loss=True)
    out = {"dataset": "cifar100-lt", "data": f"random uint8 tensors of CIFAR-100-LT's shape: {sum(counts)} training "
           f"images in its per-class counts ({counts[0]} ... {counts[-1]}), {'200' if args.tiny else '10000'} test "
           f"images", "epochs_preset": preset.epochs, "epochs_timed": args.epochs, "arms": {}}
    for arm, over in arms.items():
        stamps = []
        with tempfile.TemporaryDirectory() as tmp:
            cfg = get_preset("cifar100-lt", dataset=dataset, epochs=args.epochs, device=device, progress=False,
                             out_dir=str(Path(tmp) / "run"), num_threads=args.threads, **base, **over)
            t0 = time.perf_counter()
            res = train(cfg, callback=lambda record, history: stamps.append(time.perf_counter()))
        walls = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
        steady = statistics.median(walls[1:]) if len(walls) > 1 else walls[0]
        train_steady = statistics.median(r["epoch_time"] for r in res.history[1:]) if len(res.history) > 1 \
            else res.history[0]["epoch_time"]
        out["arms"][arm] = {
            "epoch_wall_s": walls, "first_epoch_s": walls[0], "steady_epoch_s": steady,
            "train_time_per_step_ms": 1000 * statistics.median(r["time_per_step"] for r in res.history[1:] or
                                                                res.history),
            "train_epoch_s": train_steady, "eval_nc_checkpoint_epoch_s": steady - train_steady,
            "time_to_result_s": walls[0] + (preset.epochs - 1) * steady,
            "steps_per_epoch": res.history[0]["step"], "score": res.score,
        }
    ce = out["arms"]["CE"]["time_to_result_s"]
    for arm, r in out["arms"].items():
        r["vs_CE"] = r["time_to_result_s"] / ce
    if device.startswith("cuda"):
        cfg = get_preset("cifar100-lt", dataset=dataset, epochs=10_000, device=device, progress=False,
                         checkpoint=False, eval_every=10_000, nc_every=10_000, ceco_lambda=preset.ceco_lambda,
                         num_threads=args.threads, **base)
        out["host_syncs_in_one_training_epoch"] = host_syncs_per_epoch(cfg)
    return out


def host_syncs_per_epoch(cfg) -> dict:
    """Synchronising CUDA calls in one training epoch of the engine's loop, after a warm-up epoch."""
    with start_runtime(cfg) as runtime:
        parts = build(cfg, runtime)
        state = TrainState()
        run_epoch(parts, state, cfg, runtime)  # warm-up: allocator, cuDNN autotuning
        syncs = _sync_count(lambda: run_epoch(parts, state, cfg, runtime))
    return {"syncs": syncs, "steps": parts.steps_per_epoch}


def time_segmentation(dataset: str, args, device: str) -> dict:
    """Time per step of CE and CeCo at the data set's full image size, and evaluation time per image.

    Real images when ``args.data_root`` holds the data set (at least one batch of them), else
    random tensors of the same shape."""
    shape = SHAPES[dataset]
    size = (32, 64) if args.tiny else shape["size"]
    n_img = 8 if args.tiny else args.seg_images
    real = args.data_root is not None and dataset_status(dataset, args.data_root)[0]
    if real:
        name, source = dataset, "real frames found under --data-root"
    else:
        name = register_shape_dataset(dataset, train=n_img, val=max(n_img // 4, 2), size=size)
        source = "random uint8 images and long-tailed masks"
    over = dict(dataset=name, image_size=size, device=device, progress=False, checkpoint=False, epochs=10_000,
                eval_every=10_000, nc_every=10_000, num_workers=0, num_threads=args.threads,
                num_classes=get_dataset(dataset).num_classes)
    if real:
        over["data_root"] = str(args.data_root)
    if args.tiny:
        over.update(model="small_seg", batch_size=4, nc_max_images=8)
    preset = segmentation_preset(dataset)
    configs = {"CE": segmentation_preset(dataset, ceco_lambda=0.0, **over),
               "CeCo": segmentation_preset(dataset, ceco_lambda=preset.ceco_lambda or 0.4, **over)}
    epochs = max(args.epochs, 2)
    wall, _, dev = interleaved_epochs(configs, epochs, 1)
    cfg = configs["CE"]
    with start_runtime(cfg) as runtime:
        parts = build(cfg, runtime)
        evaluate(parts.model, parts.data, runtime)  # warm-up
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        evaluate(parts.model, parts.data, runtime)
        eval_per_image = (time.perf_counter() - t0) / parts.data.val_x.shape[0]
    steps_full = shape["train"] // cfg.batch_size
    ms = {arm: 1000 * statistics.median(ts) for arm, ts in wall.items()}
    timed = parts.data.train_x.shape[0]
    out = {"dataset": dataset, "data": f"{source} of {size[0]}x{size[1]} ({timed} training images timed; the "
           f"full split has {shape['train']} / {shape['val']})", "real_data": bool(real),
           "model": cfg.model, "batch_size": cfg.batch_size, "image_size": list(size), "device": dev,
           "preset": preset.preset, "epochs_preset": preset.epochs, "steps_per_epoch_full": steps_full,
           "time_per_step_ms": ms, "CeCo_vs_CE": ms["CeCo"] / ms["CE"], "eval_s_per_image": eval_per_image}
    train_h = steps_full * preset.epochs * ms["CeCo"] / 1000 / 3600
    eval_h = shape["val"] * preset.epochs * eval_per_image / 3600
    out["time_to_result_h"] = {"train": train_h, "eval_every_epoch": eval_h, "total": train_h + eval_h}
    return out


# -------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="a few seconds: small models and images, 2 epochs")
    p.add_argument("--epochs", type=int, default=None, help="epochs per arm (default 3; tiny 2)")
    p.add_argument("--seg-images", type=int, default=32, help="segmentation images of the full size timed")
    p.add_argument("--compile", action="store_true", help="CIFAR-100-LT: also the arms with the model compiled")
    p.add_argument("--presets", default="cifar100-lt,camvid,cityscapes")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: 1 with --tiny on the CPU)")
    p.add_argument("--json", default=None, help="write the results to this file")
    p.add_argument("--data-root", default=None,
                   help="time the segmentation presets on the real CamVid / Cityscapes frames found here")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.tiny else 3
    if args.threads is None and args.tiny and args.device == "cpu":
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda requested but CUDA is not available")
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    results = {"device": args.device, "tiny": args.tiny, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    wanted = [s.strip() for s in args.presets.split(",") if s.strip()]
    if "cifar100-lt" in wanted:
        r = results["cifar100-lt"] = time_classification(args, args.device)
        print(f"cifar100-lt ({r['data']}), {r['epochs_timed']} epochs timed per arm:")
        for arm, a in r["arms"].items():
            print(f"  {arm:27s} first epoch {a['first_epoch_s']:7.2f} s, then {a['steady_epoch_s']:6.3f} s/epoch "
                  f"(train {a['train_epoch_s']:6.3f} s = {a['train_time_per_step_ms']:6.2f} ms/step x "
                  f"{a['steps_per_epoch']}; eval + NC + checkpoint {a['eval_nc_checkpoint_epoch_s']:6.3f} s)  "
                  f"-> {r['epochs_preset']} epochs in {a['time_to_result_s']:7.1f} s ({a['vs_CE']:.3f} x CE)",
                  flush=True)
        if r.get("host_syncs_in_one_training_epoch") is not None:
            h = r["host_syncs_in_one_training_epoch"]
            print(f"  host synchronisations in one training epoch of the engine's loop: {h['syncs']} in "
                  f"{h['steps']} steps", flush=True)
    for dataset in ("camvid", "cityscapes"):
        if dataset in wanted:
            r = results[dataset] = time_segmentation(dataset, args, args.device)
            t = r["time_to_result_h"]
            print(f"{dataset} {r['image_size'][0]}x{r['image_size'][1]} ({r['model']}, batch {r['batch_size']}): "
                  f"CE {r['time_per_step_ms']['CE']:.1f} ms/step, CeCo {r['time_per_step_ms']['CeCo']:.1f} ms/step "
                  f"(x{r['CeCo_vs_CE']:.3f}); eval {1000 * r['eval_s_per_image']:.1f} ms/image; preset "
                  f"'{r['preset']}' ({r['epochs_preset']} epochs x {r['steps_per_epoch_full']} steps): train "
                  f"{t['train']:.2f} h + eval {t['eval_every_epoch']:.2f} h = {t['total']:.2f} h", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
