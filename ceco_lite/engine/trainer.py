"""``train(config)``: one training engine for the lessons and the command line.

Segmentation and classification, CPU / CUDA (bf16 autocast, channels-last,
optional ``torch.compile``) / MPS, single process or DistributedDataParallel
(``torchrun``). Per epoch it records every loss term, time per step, the learning
rate, mIoU (top-1), per-class IoU (accuracy), head/common/tail means and the
neural-collapse statistics (:class:`ceco_lite.NCAccumulator`) of the training
features -- the data of the CeCo paper's Fig. 2, 4 and 5. Evaluation uses the
pixel branch only (CeCo paper Sec. 4.2).

Losses (CeCo paper Eq. 5, In2NeCT Eq. 7)::

    L = CE(logits, y) + λ L_CR(features, y) + w (L_Inter + L_Intra)
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_save, atomic_write_json, load_checkpoint, rng_state, set_rng_state
from .config import TrainConfig
from .data import DataBundle, check_data_available, decode_batch, iterate_batches, load_data
from .metrics import ConfusionEvaluator
from .schedule import LRFactor, build_scheduler

__all__ = ["train", "RunResult", "TrainStep", "resolve_device", "evaluate", "collect_nc_stats"]

IGNORE_INDEX = 255
# config fields that may change between a stopped run and its resumption
_RESUME_FREE = {"resume", "progress", "out_dir", "device", "num_threads", "num_workers", "compile", "preset"}


@dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes
    ----------
    config : TrainConfig
    history : list of dict
        One record per epoch (see :func:`train`).
    metrics : dict
        Final evaluation: ``miou`` (segmentation) or ``top1`` (classification), ``per_class``,
        ``head``, ``common``, ``tail``, ``nc`` (final NC statistics), ``groups``, ...
    model : nn.Module
        The trained model (unwrapped, on the training device, eval mode).
    run_dir : pathlib.Path or None
    features : dict or None
        ``{"features": (M, d), "labels": (M,)}`` when ``save_features > 0``.
    losses : dict
        The training-loss modules: ``"ceco"`` (its ``etf`` is the centre classifier ``W*``
        (d, K)), ``"in2nect"`` -- present when used.
    """

    config: TrainConfig
    history: list
    metrics: dict
    model: nn.Module
    run_dir: Path | None = None
    features: dict | None = None
    losses: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- device
def resolve_device(spec: str = "auto") -> torch.device:
    """"auto" -> CUDA if available, else MPS, else CPU; otherwise ``torch.device(spec)``.

    Raises
    ------
    ValueError
        A CUDA / MPS device was asked for but is not available.
    """
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={spec!r} but CUDA is not available (use device='auto' or 'cpu')")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={spec!r} but MPS is not available")
    return dev


# ------------------------------------------------------------------------ the step
class TrainStep(nn.Module):
    """Model plus training losses in one module (so DDP synchronises every parameter,
    including a learned centre classifier).

    ``forward(x, y) -> (total_loss, terms)`` with ``terms`` a dict of detached scalars
    (``"ce"``, ``"ceco"``, ``"in2nect"`` ...). Under DistributedDataParallel with global
    centres the cross-entropy is normalised by the global number of labelled pixels and
    multiplied by the world size, so that DDP's gradient averaging yields exactly the
    gradient of the single-process loss on the global batch (the CeCo term's all-reduce
    of per-class sums already makes each process's gradient world-size times its share).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, *, ceco: nn.Module | None = None,
                 in2nect: nn.Module | None = None, process_group=None, world_size: int = 1):
        super().__init__()
        self.model = model
        self.ceco = ceco
        self.in2nect = in2nect
        self.task = config.task
        self.ceco_lambda = float(config.ceco_lambda)
        self.in2nect_weight = float(config.in2nect_weight)
        self.world_size = int(world_size)
        self.global_ce = world_size > 1 and config.ceco_sync == "global"
        self._pg = process_group

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        out = self.model(x)
        logits, feats = out["logits"], out["features"]
        if self.task == "segmentation" and logits.shape[-2:] != y.shape[-2:]:
            logits = F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
        logits = _upcast(logits)
        if self.global_ce:
            import torch.distributed as dist

            n = (y != IGNORE_INDEX).sum().to(logits.dtype)
            n_global = n.detach().clone()
            dist.all_reduce(n_global, group=self._pg)
            ce_sum = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="sum")
            ce = ce_sum * (self.world_size / n_global.clamp_min(1))
        else:
            ce = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
        total = ce
        terms = {"ce": ce.detach()}
        if self.ceco is not None and self.ceco_lambda > 0:
            l_cr = self.ceco(_upcast(feats), y)
            total = total + self.ceco_lambda * l_cr
            terms["ceco"] = l_cr.detach()
        if self.in2nect is not None and self.in2nect_weight > 0:
            # In2NeCT Eq. 7: L_Seg + w (L_Inter + L_Intra), with L_Seg = the cross-entropy above
            total_in, parts = self.in2nect(_upcast(feats), y, seg_loss=ce, return_parts=True)
            total = total + (total_in - ce)
            terms["in2nect_inter"] = parts["inter"].detach()
            terms["in2nect_intra"] = parts["intra"].detach()
        terms["total"] = total.detach()
        return total, terms


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 (autocast) -> float32 for the losses; float32 / float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _build_losses(config: TrainConfig, dim: int, device, process_group):
    """CeCo (paper or released variant) and In2NeCT modules for ``config``."""
    import ceco_lite

    ceco = in2nect = None
    gen = torch.Generator().manual_seed(config.seed + 1)
    if config.ceco_lambda > 0:
        if config.ceco_variant == "paper":
            ceco = ceco_lite.CenterCollapseLoss(
                config.num_classes, dim, scale=config.ceco_scale, reduction=config.ceco_reduction,
                learnable=not config.fixed_center_classifier, generator=gen, ignore_index=IGNORE_INDEX,
                process_group=process_group,
            )
        else:
            ceco = ceco_lite.ReleasedCenterCollapseLoss(config.num_classes, dim, generator=gen,
                                                        ignore_index=IGNORE_INDEX)  # per-process centres
        ceco = ceco.to(device)
    if config.in2nect_weight > 0:
        # generator=None: pixel sampling draws from torch's global RNG, which checkpoints save and restore
        in2nect = ceco_lite.In2NeCTLoss(config.num_classes, dim, weight=config.in2nect_weight,
                                        ignore_index=IGNORE_INDEX)
        in2nect = in2nect.to(device)
    return ceco, in2nect


# ----------------------------------------------------------------------- evaluation
def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, task: str, num_classes: int,
             groups: dict | None = None, batch_size: int = 16, amp: bool = False,
             channels_last: bool = False, mean=None, std=None) -> dict:
    """mIoU / per-class IoU (or top-1 / per-class accuracy) and head/common/tail means
    of ``model`` on ``(x, y)``, using only the pixel branch (argmax of the logits).

    ``x`` is ``(N, 3, H, W)`` float32 model input, or uint8 raw pixels decoded per batch
    (:func:`ceco_lite.engine.data.decode_batch`: / 255, then ``(x - mean) / std`` when
    ``mean`` / ``std`` are given, e.g. a :class:`DataBundle`'s); ``y`` any integer dtype.
    """
    was_training = model.training
    model.eval()
    ev = ConfusionEvaluator(num_classes, task, ignore_index=IGNORE_INDEX, device=x.device)
    for out, yb in _model_batches(model, x, y, batch_size=batch_size, amp=amp, channels_last=channels_last,
                                  mean=mean, std=std):
        logits = out["logits"]
        if task == "segmentation" and logits.shape[-2:] != yb.shape[-2:]:
            logits = F.interpolate(logits.float(), size=yb.shape[-2:], mode="bilinear", align_corners=False)
        ev.update(logits.argmax(1), yb)
    model.train(was_training)
    return ev.compute(groups)


def _model_batches(model, x, y, *, batch_size, amp, channels_last, mean=None, std=None):
    """``(model(xb), yb)`` over mini-batches of ``(x, y)``, each decoded on the device
    (:func:`decode_batch`; autocast around the forward only)."""
    for s in range(0, x.shape[0], batch_size):
        xb, yb = decode_batch(x[s:s + batch_size], y[s:s + batch_size], mean=mean, std=std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(x.device, amp):
            out = model(xb)
        yield out, yb


def _feature_batches(model, x, y, *, task, batch_size, amp, channels_last, mean=None, std=None):
    for out, yb in _model_batches(model, x, y, batch_size=batch_size, amp=amp, channels_last=channels_last,
                                  mean=mean, std=std):
        feats = out["features"].float()
        if task == "segmentation":
            from ceco_lite.centers import align_features_and_labels

            feats, yb = align_features_and_labels(feats, yb)
        yield feats, yb


@torch.no_grad()
def collect_nc_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, task: str, num_classes: int,
                     batch_size: int = 16, amp: bool = False, channels_last: bool = False,
                     mean=None, std=None) -> dict:
    """Neural-collapse statistics (:class:`ceco_lite.NCAccumulator`, SPEC §3) of the
    model's features on ``(x, y)`` in eval mode, with the pixel classifier ``W`` (d, K).

    Segmentation labels are resampled (nearest) to the feature resolution
    (:func:`ceco_lite.align_features_and_labels`). Returns ``{}`` when fewer than two
    classes are present. uint8 ``x`` is decoded per batch as in :func:`evaluate`.
    """
    from ceco_lite.nc import NCAccumulator

    was_training = model.training
    model.eval()
    acc = NCAccumulator(num_classes, model.feature_dim, ignore_index=IGNORE_INDEX)
    for feats, yb in _feature_batches(model, x, y, task=task, batch_size=batch_size, amp=amp,
                                      channels_last=channels_last, mean=mean, std=std):
        acc.update(feats, yb)
    model.train(was_training)
    try:
        stats = acc.compute(classifier=model.classifier_weight().detach().float())
    except ValueError:
        return {}
    return {k: v for k, v in stats.items() if k != "present"}


@torch.no_grad()
def _sample_features(model, x, y, *, task, num_classes, per_class, batch_size, amp, channels_last, seed,
                     mean=None, std=None):
    """Up to ``per_class`` features per class from ``(x, y)`` (uniformly sampled, seeded)."""
    was_training = model.training
    model.eval()
    zs, ys = [], []
    for feats, yb in _feature_batches(model, x, y, task=task, batch_size=batch_size, amp=amp,
                                      channels_last=channels_last, mean=mean, std=std):
        if feats.dim() == 4:
            feats = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
        yb = yb.reshape(-1)
        keep = yb != IGNORE_INDEX
        zs.append(feats[keep].cpu())
        ys.append(yb[keep].cpu())
    model.train(was_training)
    z, lab = torch.cat(zs), torch.cat(ys)
    g = torch.Generator().manual_seed(seed)
    # random key per sample, keep the per_class smallest keys of each class (vectorised)
    key = torch.rand(lab.numel(), generator=g)
    order = torch.argsort(lab.double() * 2 + key.double())  # grouped by class, random inside
    lab_sorted = lab[order]
    counts = torch.bincount(lab_sorted, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(lab_sorted.numel()) - starts[lab_sorted]
    sel = order[rank_in_class < per_class]
    return {"features": z[sel], "labels": lab[sel]}


# --------------------------------------------------------------------- distributed
def _dist_context():
    """(is_distributed, rank, world_size, initialised_here)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size(), False
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws > 1 and dist.is_available():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        return True, dist.get_rank(), dist.get_world_size(), True
    return False, 0, 1, False


# ---------------------------------------------------------------------------- train
def train(config: TrainConfig | dict, *, callback: Callable[[dict, list], Any] | None = None) -> RunResult:
    """Train ``config`` and return a :class:`RunResult`.

    Parameters
    ----------
    config : TrainConfig or dict
        Validated before anything else happens (bad values raise ValueError/TypeError);
        missing real data raise FileNotFoundError before any training.
    callback : callable, optional
        ``callback(record, history)`` after every epoch (record = this epoch's dict,
        history = all records so far), on rank 0 only. The lessons use it for live plots.

    Returns
    -------
    RunResult

    Notes
    -----
    Each history record holds: ``epoch``, ``step``, ``lr``, ``loss`` (dict of the mean
    of every loss term: ``ce``, ``ceco``, ``in2nect``..., ``total``), ``time_per_step``
    (s), ``epoch_time`` (s), ``miou`` (or ``top1``), ``per_class``, ``head``, ``common``,
    ``tail``, ``pixel_acc`` / ``mean_class_acc`` and ``nc`` (NC statistics of the
    training features: ``equiangularity_centers``, ``max_angle_centers``,
    ``equiangularity_classifiers``, ``nc1``, ...).

    With ``out_dir`` set, the run directory holds ``config.json``, ``history.json``
    (rewritten each epoch), ``checkpoint.pt`` (each epoch, atomic: model, optimiser,
    scheduler, loss modules, RNG states, epoch, step, history), ``metrics.json`` at the
    end and ``features.pt`` when ``save_features > 0``. ``resume=True`` continues from
    ``checkpoint.pt`` and, on CPU, ends with bitwise the same weights as an
    uninterrupted run. A KeyboardInterrupt leaves the last checkpoint intact.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or dict, got {type(config).__name__}")
    check_data_available(config)  # fail before any work
    from ceco_lite.models import MODEL_TASKS

    if MODEL_TASKS.get(config.model.lower(), config.task) != config.task:
        raise ValueError(f"model {config.model!r} solves {MODEL_TASKS[config.model.lower()]}, "
                         f"but dataset {config.dataset!r} is {config.task}")

    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    is_dist, rank, world, init_here = _dist_context()
    try:
        return _train(config, callback, is_dist, rank, world)
    finally:
        if config.num_threads:
            torch.set_num_threads(old_threads)
        if init_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(config: TrainConfig, callback, is_dist: bool, rank: int, world: int) -> RunResult:
    import torch.distributed as dist

    t_start = time.perf_counter()
    if is_dist and torch.cuda.is_available() and config.device in ("auto", "cuda"):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    else:
        device = resolve_device(config.device)
    if is_dist and config.batch_size % world:
        raise ValueError(f"batch_size={config.batch_size} (the global batch) must be divisible by the "
                         f"world size {world}")
    amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"
    is_main = rank == 0
    run_dir = Path(config.out_dir) if config.out_dir else None

    # ---- model and losses first (cheap; a bad combination fails before data are loaded), then data
    from ceco_lite.models import build_model

    torch.manual_seed(config.seed)
    model = build_model(config.model, config.num_classes, fixed_classifier=config.fixed_pixel_classifier,
                        feature_dim=config.feature_dim, pretrained=config.pretrained, **config.model_options)
    model = model.to(device)
    if is_dist and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    pg = dist.group.WORLD if (is_dist and config.ceco_sync == "global") else None
    ceco, in2nect = _build_losses(config, model.feature_dim, device, pg)
    data: DataBundle = load_data(config).to(device)
    if data.train_x.shape[0] < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {data.train_x.shape[0]} training images")
    step_module = TrainStep(model, config, ceco=ceco, in2nect=in2nect, process_group=pg, world_size=world)
    if config.compile:
        step_module.model = torch.compile(model)
    runner: nn.Module = step_module
    if is_dist:
        from torch.nn.parallel import DistributedDataParallel as DDP

        runner = DDP(step_module, device_ids=[device.index] if device.type == "cuda" else None)

    params = [p for p in step_module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    n_train = data.train_x.shape[0]
    steps_per_epoch = max(n_train // config.batch_size, 1)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    factor = LRFactor(config.schedule, total_steps, steps_per_epoch, power=config.poly_power,
                      warmup_epochs=config.warmup_epochs, milestones=config.lr_milestones, gamma=config.lr_gamma)
    scheduler = build_scheduler(optimizer, factor)

    # NC statistics on a fixed random subset of nc_max_images training images (all when None)
    if config.nc_max_images is None or config.nc_max_images >= n_train:
        nc_x, nc_y = data.train_x, data.train_y
    else:
        keep = torch.randperm(n_train, generator=torch.Generator().manual_seed(12345))[:config.nc_max_images]
        keep = keep.sort().values.to(device)
        nc_x, nc_y = data.train_x.index_select(0, keep), data.train_y.index_select(0, keep)
    eval_bs = max(config.batch_size, 16) if config.task == "classification" else max(config.batch_size, 4)

    history: list[dict] = []
    start_epoch, step = 0, 0
    ckpt_path = run_dir / "checkpoint.pt" if run_dir else None
    if config.resume:
        if ckpt_path is None:
            raise ValueError("resume=True needs out_dir (the run directory holding checkpoint.pt)")
        if ckpt_path.exists():
            ck = load_checkpoint(ckpt_path, map_location=device)
            _check_resumable(TrainConfig.from_dict(ck["config"]), config)
            _load_modules(ck, model, ceco, in2nect)
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            set_rng_state(ck["rng"])
            start_epoch, step, history = ck["epoch"], ck["step"], ck["history"]
    if run_dir and is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config.to_dict(), run_dir / "config.json")

    from tqdm.auto import tqdm

    show = config.progress and is_main
    epoch_bar = tqdm(range(start_epoch, config.epochs), desc="epochs", disable=not show,
                     initial=start_epoch, total=config.epochs, leave=True, dynamic_ncols=True)
    runner.train()
    try:
        for epoch in epoch_bar:
            if config.max_steps is not None and step >= config.max_steps:
                break
            sums: dict[str, torch.Tensor] = {}
            n_steps = 0
            t0 = time.perf_counter()
            batches = iterate_batches(data.train_x, data.train_y, config.batch_size, seed=config.seed,
                                      epoch=epoch, augment=config.augment, task=config.task, rank=rank,
                                      world_size=world, mean=data.mean, std=data.std)
            step_bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}", disable=not show,
                            leave=False, dynamic_ncols=True)
            for xb, yb in step_bar:
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    loss, terms = runner(xb, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                for k, v in terms.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                n_steps += 1
                step += 1
                if show and (n_steps % 10 == 1):
                    step_bar.set_postfix(loss=f"{float(terms['total']):.3f}")
                if config.max_steps is not None and step >= config.max_steps:
                    break
            step_bar.close()
            if not math.isfinite(float(sums["total"])):
                raise FloatingPointError(f"loss became non-finite in epoch {epoch + 1} (lower lr?)")
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_time = time.perf_counter() - t0
            record = {
                "epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                "loss": {k: float(v) / max(n_steps, 1) for k, v in sums.items()},
                "time_per_step": train_time / max(n_steps, 1), "epoch_time": train_time,
            }
            last = (epoch + 1 == config.epochs) or (config.max_steps is not None and step >= config.max_steps)
            if is_main and ((epoch + 1) % config.eval_every == 0 or last):
                record.update(evaluate(model, data.val_x, data.val_y, task=config.task,
                                       num_classes=config.num_classes, groups=data.groups,
                                       batch_size=eval_bs, amp=amp, channels_last=channels_last,
                                       mean=data.mean, std=data.std))
            if is_main and ((epoch + 1) % config.nc_every == 0 or last):
                record["nc"] = collect_nc_stats(model, nc_x, nc_y, task=config.task,
                                                num_classes=config.num_classes, batch_size=eval_bs,
                                                amp=amp, channels_last=channels_last, mean=data.mean,
                                                std=data.std)
            history.append(record)
            if is_main and run_dir:
                if config.checkpoint:
                    atomic_save({
                        **_module_states(model, ceco, in2nect), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "rng": rng_state(), "epoch": epoch + 1,
                        "step": step, "history": history, "config": config.to_dict(),
                    }, ckpt_path)
                atomic_write_json(history, run_dir / "history.json")
            if show:
                main_metric = record.get("miou", record.get("top1"))
                epoch_bar.set_postfix(loss=f"{record['loss']['total']:.3f}",
                                      **({"score": f"{main_metric:.1f}"} if main_metric is not None else {}))
            if is_dist:
                dist.barrier()
            if callback is not None and is_main:
                callback(record, history)
            if last:
                break
    finally:
        epoch_bar.close()

    # ---- final metrics
    model.eval()
    metrics: dict = {}
    features = None
    if is_main:
        final = history[-1] if history else {}
        if "per_class" not in final:  # e.g. resumed after the last epoch or eval_every skipped it
            final = dict(final)
            final.update(evaluate(model, data.val_x, data.val_y, task=config.task, num_classes=config.num_classes,
                                  groups=data.groups, batch_size=eval_bs, amp=amp, channels_last=channels_last,
                                  mean=data.mean, std=data.std))
        key = "miou" if config.task == "segmentation" else "top1"
        metrics = {
            key: final.get(key), "per_class": final.get("per_class"),
            "head": final.get("head"), "common": final.get("common"), "tail": final.get("tail"),
            "mean_class_acc": final.get("mean_class_acc"), "nc": final.get("nc", {}),
            "groups": data.groups, "class_counts": data.class_counts.tolist(), "data_info": data.info,
            "time_per_step": (sum(r["time_per_step"] for r in history) / len(history)) if history else None,
            "epochs_run": len(history), "steps": step, "device": str(device), "world_size": world,
            "wall_time": time.perf_counter() - t_start,
            "history": history, "config": config.to_dict(),
        }
        if config.task == "segmentation":
            metrics["pixel_acc"] = final.get("pixel_acc")
        if config.save_features > 0:
            features = _sample_features(model, data.val_x, data.val_y, task=config.task,
                                        num_classes=config.num_classes, per_class=config.save_features,
                                        batch_size=eval_bs, amp=amp, channels_last=channels_last, seed=config.seed,
                                        mean=data.mean, std=data.std)
            if run_dir:
                atomic_save(features, run_dir / "features.pt")
        if run_dir:
            atomic_write_json(metrics, run_dir / "metrics.json")
    if is_dist:
        dist.barrier()
    losses = {k: v for k, v in (("ceco", ceco), ("in2nect", in2nect)) if v is not None}
    return RunResult(config=config, history=history, metrics=metrics, model=model, run_dir=run_dir,
                     features=features, losses=losses)


def _module_states(model, ceco, in2nect) -> dict:
    out = {"model": model.state_dict()}
    if ceco is not None:
        out["ceco"] = ceco.state_dict()
    if in2nect is not None:
        out["in2nect"] = in2nect.state_dict()
    return out


def _load_modules(ck: dict, model, ceco, in2nect) -> None:
    model.load_state_dict(ck["model"])
    if ceco is not None:
        ceco.load_state_dict(ck["ceco"])
    if in2nect is not None:
        in2nect.load_state_dict(ck["in2nect"])


def _check_resumable(saved: TrainConfig, now: TrainConfig) -> None:
    a, b = saved.to_dict(), now.to_dict()
    diff = sorted(k for k in a if k not in _RESUME_FREE and a[k] != b.get(k))
    if diff:
        detail = ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in diff)
        raise ValueError(f"cannot resume: the configuration differs from the checkpoint's ({detail})")
