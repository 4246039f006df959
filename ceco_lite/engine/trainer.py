"""``train(config)``: one training engine for the lessons and the command line.

Segmentation and classification, CPU / CUDA (bf16 autocast, channels-last,
optional ``torch.compile``) / MPS, single process or DistributedDataParallel
(``torchrun``). Per epoch it records every loss term, time per step, the learning
rate, mIoU (top-1), per-class IoU (accuracy), head/common/tail means and the
neural-collapse statistics of the training features -- the data of the CeCo paper's
Fig. 2, 4 and 5. Evaluation uses the pixel branch only (CeCo paper Sec. 4.2).

A run is a sequence of named steps, each a function of this module::

    start_runtime(config)        device, precision, processes           (runtime.py)
    RunFolder(config)            lock the run folder, refuse to overwrite (folder.py)
    build(config, runtime)       model, losses, optimiser, schedule, data
    resume(parts, folder)        continue from checkpoint.pt, or start at epoch 0
    run_epoch(parts, state)      one pass over the training data
    evaluate / collect_nc_stats  scores and NC statistics of the epoch  (evaluation.py)
    finalize(parts, state)       final metrics, metrics.json, features.pt

Losses (CeCo paper Eq. 5, In2NeCT Eq. 7; :class:`~ceco_lite.engine.step.TrainStep`)::

    L = CE(logits, y) + λ L_CR(features, y) + w (L_Inter + L_Intra)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..fileio import CorruptFileError
from ..models import MODEL_TASKS, build_model
from .batchnorm import convert_batchnorm
from .checkpoint import rng_state, set_rng_state
from .config import TrainConfig
from .data import DataBundle, iterate_batches, load_data, resolve_data_root
from .evaluation import NonFiniteOutputs, collect_nc_stats, evaluate, sample_features
from .folder import RunFolder
from .runtime import Runtime, start_runtime
from .schedule import LRFactor, build_scheduler
from .step import TrainStep, build_losses

__all__ = ["train", "RunResult", "TrainingDiverged", "build", "resume", "run_epoch", "finalize", "TrainParts",
           "TrainState"]


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite (usually: the learning rate is too high)."""


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

    @property
    def score(self) -> float | None:
        """The main score in percent: mIoU (segmentation) or top-1 accuracy (classification)."""
        return self.metrics.get("miou" if self.config.task == "segmentation" else "top1")


@dataclass
class TrainParts:
    """What :func:`build` makes: the modules, optimiser, schedule and data of a run."""

    model: nn.Module
    ceco: nn.Module | None
    in2nect: nn.Module | None
    step_module: TrainStep
    runner: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    data: DataBundle
    steps_per_epoch: int

    def states(self) -> dict:
        """``state_dict`` of the model and loss modules, by name."""
        out = {"model": self.model.state_dict()}
        for name in ("ceco", "in2nect"):
            module = getattr(self, name)
            if module is not None:
                out[name] = module.state_dict()
        return out

    def load_states(self, ck: dict) -> None:
        """Inverse of :meth:`states`."""
        self.model.load_state_dict(ck["model"])
        for name in ("ceco", "in2nect"):
            module = getattr(self, name)
            if module is not None:
                module.load_state_dict(ck[name])


@dataclass
class TrainState:
    """Progress of a run: epochs completed, optimiser steps taken, one record per epoch."""

    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    #: ``(first step, losses)`` of the last epoch run: its total loss at every step (for messages)
    loss_trace: tuple | None = None

    def done(self, config: TrainConfig) -> bool:
        """All epochs (or ``max_steps``) are done."""
        return self.epoch >= config.epochs or (config.max_steps is not None and self.step >= config.max_steps)


# --------------------------------------------------------------------------- build
def _require_etf_dim(config: TrainConfig, dim: int) -> None:
    if config.ceco_lambda > 0 and dim < config.num_classes - 1:
        raise ValueError(
            f"CeCo's centre classifier is a simplex ETF of K = {config.num_classes} vectors, which needs "
            f"feature_dim >= K - 1 = {config.num_classes - 1}, but model {config.model!r} has feature_dim = {dim}; "
            f"set feature_dim (e.g. feature_dim={config.num_classes - 1}) or use fewer classes"
        )


def build(config: TrainConfig, runtime: Runtime) -> TrainParts:
    """Model, losses, optimiser, schedule and data of ``config`` on ``runtime.device``.

    The model and losses come first (cheap; a bad combination fails before data are
    loaded). The model is seeded with ``config.seed``. Under DistributedDataParallel
    every BatchNorm layer (model and losses) normalises over the global batch
    (:func:`ceco_lite.engine.batchnorm.convert_batchnorm`), so a distributed run computes
    the single-process run's function of the global batch; when any process fails to
    build, every process raises (:meth:`Runtime.agree`) before the collective set-up.
    """
    failure = None
    try:
        torch.manual_seed(config.seed)
        model = build_model(config.model, config.num_classes, fixed_classifier=config.fixed_pixel_classifier,
                            feature_dim=config.feature_dim, pretrained=config.pretrained, **config.model_options)
        _require_etf_dim(config, model.feature_dim)
        model = model.to(runtime.device)
        ceco, in2nect = build_losses(config, model.feature_dim, runtime.device, runtime.process_group)
        data = load_data(config).to(runtime.device)
        n_train = data.train_x.shape[0]
        if n_train < config.batch_size:
            raise ValueError(f"batch_size={config.batch_size} exceeds the {n_train} training images")
        step_module = TrainStep(model, config, ceco=ceco, in2nect=in2nect, process_group=runtime.process_group,
                                world_size=runtime.world_size)
        if runtime.distributed:
            convert_batchnorm(step_module)  # in place: the model's and the losses' BatchNorm layers
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
    except Exception as exc:  # noqa: BLE001 - re-raised below, on every process
        failure = exc
    runtime.agree(failure)
    if config.compile:
        step_module.model = torch.compile(model)
    runner: nn.Module = step_module
    if runtime.distributed:
        runner = DistributedDataParallel(step_module,
                                         device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
    params = [p for p in step_module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov)
    steps_per_epoch = max(n_train // config.batch_size, 1)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    factor = LRFactor(config.schedule, total_steps, steps_per_epoch, power=config.poly_power,
                      warmup_epochs=config.warmup_epochs, milestones=config.lr_milestones, gamma=config.lr_gamma)
    return TrainParts(model=model, ceco=ceco, in2nect=in2nect, step_module=step_module, runner=runner,
                      optimizer=optimizer, scheduler=build_scheduler(optimizer, factor), data=data,
                      steps_per_epoch=steps_per_epoch)


# -------------------------------------------------------------------------- resume
def resume(parts: TrainParts, folder: RunFolder, runtime: Runtime) -> TrainState:
    """The :class:`TrainState` to start from: the folder's checkpoint when resuming, else epoch 0.

    :meth:`RunFolder.checkpoint` checks that the checkpoint belongs to this configuration;
    this restores the modules, optimiser, schedule and RNG states from it.

    Raises
    ------
    ceco_lite.fileio.CorruptFileError
        The checkpoint cannot be read, or its states do not fit this run's modules (the
        message names the file).
    """
    ck = folder.checkpoint(map_location=runtime.device) if folder.resuming else None
    if ck is None:
        return TrainState()
    try:
        parts.load_states(ck)
        parts.optimizer.load_state_dict(ck["optimizer"])
        parts.scheduler.load_state_dict(ck["scheduler"])
        set_rng_state(ck["rng"])
        state = TrainState(epoch=int(ck["epoch"]), step=int(ck["step"]), history=list(ck["history"]))
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CorruptFileError(folder.path / "checkpoint.pt",
                               f"its states do not fit this run: {type(exc).__name__}: {first}; start the run "
                               "again with overwrite=True") from None
    if len(state.history) != state.epoch or state.step < 0:
        raise CorruptFileError(folder.path / "checkpoint.pt",
                               f"it records epoch {state.epoch} but {len(state.history)} history entries")
    return state


# --------------------------------------------------------------------------- epoch
def run_epoch(parts: TrainParts, state: TrainState, config: TrainConfig, runtime: Runtime) -> dict:
    """One pass over the training data (or up to ``max_steps``): returns the epoch's record
    (``epoch``, ``step``, ``lr``, mean ``loss`` terms, ``time_per_step``, ``epoch_time``). Under
    DistributedDataParallel the loss terms are averaged over the processes: with global centres,
    the loss of the global batch.

    Raises
    ------
    TrainingDiverged
        The loss became NaN / infinite (the message names the first such step), or the
        weights / BatchNorm statistics did (at the epoch's last step). Under
        DistributedDataParallel every process raises, naming the same step.
    """
    epoch = state.epoch
    sums: dict[str, torch.Tensor] = {}
    totals: list[torch.Tensor] = []
    n_steps = 0
    first_step = state.step + 1
    t0 = time.perf_counter()
    batches = iterate_batches(parts.data.train_x, parts.data.train_y, config.batch_size, seed=config.seed,
                              epoch=epoch, augment=config.augment, task=config.task, rank=runtime.rank,
                              world_size=runtime.world_size, decode=parts.data.decode)
    bar = tqdm(batches, total=parts.steps_per_epoch, desc=f"epoch {epoch + 1}", disable=not runtime.progress,
               leave=False, dynamic_ncols=True)
    parts.runner.train()
    try:
        for xb, yb in bar:
            try:
                with runtime.autocast():
                    loss, terms = parts.runner(runtime.prepare(xb), yb)
            except (ValueError, FloatingPointError) as exc:
                if not _finite_state(parts):
                    raise _divergence(config, state.step + 1, epoch, "the weights are NaN or infinite",
                                      state.loss_trace) from exc
                raise
            parts.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            parts.optimizer.step()
            parts.scheduler.step()
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            totals.append(terms["total"])
            state.step += 1
            n_steps += 1
            if runtime.progress and n_steps % 10 == 1 and runtime.device.type == "cpu":
                bar.set_postfix(loss=f"{float(terms['total']):.3f}")  # reading a GPU loss would make the host wait
            if config.max_steps is not None and state.step >= config.max_steps:
                break
    finally:
        bar.close()
    trace = torch.stack(totals).detach().double().cpu() if totals else torch.zeros(0, dtype=torch.float64)
    state.loss_trace = (first_step, trace)
    bad = (~torch.isfinite(trace)).nonzero()
    # code = 2 * step + kind of the first failure on this process: the loss (kind 0) or, after
    # the last step, the weights / BatchNorm statistics (kind 1); the smallest over the processes wins
    if len(bad):
        code = 2 * (int(bad[0]) + first_step)
    elif not _finite_state(parts):
        code = 2 * state.step + 1
    else:
        code = _NO_FAILURE
    code = runtime.min_over_processes(code)
    if code != _NO_FAILURE:
        what = ("the weights or BatchNorm statistics became NaN or infinite" if code % 2
                else "the training loss is NaN or infinite")
        raise _divergence(config, code // 2, epoch, what, state.loss_trace)
    if runtime.distributed and sums:  # each process's terms sum to world_size x the global batch's loss
        names = sorted(sums)
        stacked = torch.stack([sums[k].float() for k in names])
        dist.all_reduce(stacked)
        sums = dict(zip(names, stacked / runtime.world_size))
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)
    train_time = time.perf_counter() - t0
    state.epoch += 1
    return {"epoch": state.epoch, "step": state.step, "lr": parts.optimizer.param_groups[0]["lr"],
            "loss": {k: float(v) / max(n_steps, 1) for k, v in sums.items()},
            "time_per_step": train_time / max(n_steps, 1), "epoch_time": train_time}


_NO_FAILURE = 2**62


def _finite_state(parts: TrainParts) -> bool:
    """Every floating parameter and buffer of the model and losses is finite."""
    tensors = [t.detach() for t in (*parts.step_module.parameters(), *parts.step_module.buffers())
               if t.is_floating_point()]
    return not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def _divergence(config: TrainConfig, step: int, epoch: int, what: str, trace=None) -> TrainingDiverged:
    """The :class:`TrainingDiverged` of step ``step``: what went wrong, the loss so far, a lower learning rate."""
    growth = ""
    if trace is not None and len(trace[1]):
        first, losses = trace
        finite = torch.isfinite(losses)
        if finite.any():
            vals = losses.clone()
            vals[~finite] = -math.inf
            top = int(vals.argmax())
            if top > 0:
                growth = (f"; the training loss went from {float(losses[0]):.4g} at step {first} to "
                          f"{float(losses[top]):.4g} at step {first + top}")
    return TrainingDiverged(
        f"the training diverged at step {step} (epoch {epoch + 1}): {what}{growth}; lr={config.lr:g} is too high "
        f"for this run, try a lower learning rate, e.g. lr={config.lr / 10:g}"
    )


# --------------------------------------------------------------------- evaluation
def _evaluate_epoch(parts: TrainParts, state: TrainState, config: TrainConfig, runtime: Runtime, *,
                    scores: bool, nc: bool) -> dict:
    """Scores and NC statistics of the model after the epoch (rank 0); model outputs that are
    NaN or infinite mean the training diverged (:class:`TrainingDiverged`)."""
    out: dict = {}
    try:
        if scores:
            out.update(evaluate(parts.model, parts.data, runtime))
        if nc:
            out["nc"] = collect_nc_stats(parts.model, parts.data, runtime)
    except NonFiniteOutputs as exc:
        raise _divergence(config, state.step, max(state.epoch - 1, 0), str(exc), state.loss_trace) from None
    return out


# ------------------------------------------------------------------------ finalize
def finalize(parts: TrainParts, state: TrainState, folder: RunFolder, config: TrainConfig, runtime: Runtime,
             wall_start: float) -> RunResult:
    """Final metrics (re-evaluating when the last epoch was not evaluated), ``metrics.json``,
    ``history.json``, ``features.pt``; returns the :class:`RunResult`."""
    parts.model.eval()
    metrics: dict = {}
    features = None
    data = parts.data
    failure = None
    try:
        if runtime.is_main:
            final = state.history[-1] if state.history else {}
            if "per_class" not in final:  # e.g. eval_every skipped the last epoch
                final = dict(final, **_evaluate_epoch(parts, state, config, runtime, scores=True, nc=False))
            history = state.history
            key = "miou" if config.task == "segmentation" else "top1"
            metrics = {
                key: final.get(key), "per_class": final.get("per_class"),
                "head": final.get("head"), "common": final.get("common"), "tail": final.get("tail"),
                "mean_class_acc": final.get("mean_class_acc"), "nc": final.get("nc", {}),
                "groups": data.groups, "class_counts": data.class_counts.tolist(), "data_info": data.info,
                "time_per_step": (sum(r["time_per_step"] for r in history) / len(history)) if history else None,
                "epochs_run": len(history), "steps": state.step, "device": str(runtime.device),
                "world_size": runtime.world_size, "wall_time": time.perf_counter() - wall_start,
                "history": history, "config": config.to_dict(),
            }
            if config.task == "segmentation":
                metrics["pixel_acc"] = final.get("pixel_acc")
            if config.save_features > 0:
                try:
                    features = sample_features(parts.model, data, runtime, per_class=config.save_features,
                                               seed=config.seed)
                except NonFiniteOutputs as exc:
                    raise _divergence(config, state.step, max(state.epoch - 1, 0), str(exc)) from None
                folder.write_features(features)
            folder.write_history(history)
            folder.write_metrics(metrics)
    except Exception as exc:  # noqa: BLE001 - re-raised below, on every process
        failure = exc
    runtime.agree(failure)
    losses = {k: v for k, v in (("ceco", parts.ceco), ("in2nect", parts.in2nect)) if v is not None}
    return RunResult(config=config, history=state.history, metrics=metrics, model=parts.model,
                     run_dir=folder.path, features=features, losses=losses)


# --------------------------------------------------------------------------- train
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

    Raises
    ------
    FileExistsError
        ``out_dir`` already holds a run and neither ``resume`` nor ``overwrite`` is set.
    ceco_lite.fileio.FolderLockedError
        Another process is using ``out_dir``.
    ceco_lite.fileio.CorruptFileError
        ``resume=True`` and the checkpoint is damaged (the message names it).
    TrainingDiverged
        The loss became NaN or infinite.

    Notes
    -----
    Each history record holds: ``epoch``, ``step``, ``lr``, ``loss`` (dict of the mean
    of every loss term: ``ce``, ``ceco``, ``in2nect_inter``..., ``total``), ``time_per_step``
    (s), ``epoch_time`` (s), ``miou`` (or ``top1``), ``per_class``, ``head``, ``common``,
    ``tail``, ``pixel_acc`` / ``mean_class_acc`` and ``nc`` (NC statistics of the
    training features: ``equiangularity_centers``, ``max_angle_centers``,
    ``equiangularity_classifiers``, ``nc1``, ...).

    With ``out_dir`` set, the run directory holds ``config.json``, ``history.json``
    (rewritten each epoch), ``checkpoint.pt`` (each epoch, atomic: model, optimiser,
    scheduler, loss modules, RNG states, epoch, step, history), ``metrics.json`` at the
    end and ``features.pt`` when ``save_features > 0`` (see :class:`RunFolder`).
    ``resume=True`` continues from ``checkpoint.pt`` and, on CPU, ends with bitwise the
    same weights as an uninterrupted run. A KeyboardInterrupt leaves the last checkpoint intact.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or dict, got {type(config).__name__}")
    resolve_data_root(config)  # missing real data fail before any work
    task = MODEL_TASKS.get(config.model.lower(), config.task)
    if task != config.task:
        raise ValueError(f"model {config.model!r} solves {task}, but dataset {config.dataset!r} is {config.task}")
    wall_start = time.perf_counter()
    with start_runtime(config) as runtime:
        folder = RunFolder(config, main=runtime.is_main)
        failure = None
        try:
            folder.open()  # lock, clean, check what the folder holds (every process checks)
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every process
            failure = exc
        runtime.agree(failure)
        try:
            parts = build(config, runtime)
            state = resume(parts, folder, runtime)
            runtime.agree()  # every process has read the folder before rank 0 writes to it
            folder.start()
            _train_epochs(parts, state, folder, config, runtime, callback)
            result = finalize(parts, state, folder, config, runtime, wall_start)
        except BaseException:
            folder.close(failed=True)
            raise
        folder.close()
        return result


def _train_epochs(parts: TrainParts, state: TrainState, folder: RunFolder, config: TrainConfig, runtime: Runtime,
                  callback) -> None:
    """The epochs still to run: train, evaluate, record (``checkpoint.pt``, ``history.json``), call back."""
    epochs = tqdm(total=config.epochs, initial=state.epoch, desc="epochs", disable=not runtime.progress,
                  leave=True, dynamic_ncols=True)
    try:
        while not state.done(config):
            record = run_epoch(parts, state, config, runtime)
            last = state.done(config)
            failure = None
            try:
                if runtime.is_main:
                    record.update(_evaluate_epoch(parts, state, config, runtime,
                                                  scores=state.epoch % config.eval_every == 0 or last,
                                                  nc=state.epoch % config.nc_every == 0 or last))
                    state.history.append(record)
                    if config.checkpoint:
                        folder.save_checkpoint({**parts.states(), "optimizer": parts.optimizer.state_dict(),
                                                "scheduler": parts.scheduler.state_dict(), "rng": rng_state(),
                                                "epoch": state.epoch, "step": state.step,
                                                "history": state.history, "config": config.to_dict()})
                    folder.write_history(state.history)
                else:
                    state.history.append(record)
            except Exception as exc:  # noqa: BLE001 - re-raised below, on every process
                failure = exc
            runtime.agree(failure)
            epochs.update(1)
            score = record.get("miou" if config.task == "segmentation" else "top1")
            epochs.set_postfix(loss=f"{record['loss']['total']:.3f}",
                               **({"score": f"{score:.1f}"} if score is not None else {}))
            if callback is not None and runtime.is_main:
                callback(record, state.history)
    finally:
        epochs.close()
