"""Evaluation and statistics of a model on a data set, all with the signature ``(model, data, runtime)``.

* :func:`evaluate` -- mIoU / per-class IoU (or top-1 / per-class accuracy) and
  head / common / tail means, from the pixel branch only (CeCo paper Sec. 4.2: the
  centre branch is dropped at inference).
* :func:`collect_nc_stats` -- neural-collapse statistics of the features
  (:class:`ceco_lite.NCAccumulator`; docs/conventions.md, section
  nc-statistics), streamed over mini-batches.
* :func:`sample_features` -- a class-balanced sample of features (for t-SNE).
* :func:`upsample_logits` / :func:`predict` -- the logits at label resolution and the
  predicted masks, as evaluation computes them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..centers import align_features_and_labels
from ..nc import NCAccumulator
from ..sampling import sample_per_class
from .data import DataBundle
from .metrics import ConfusionEvaluator
from .runtime import Runtime

__all__ = ["evaluate", "collect_nc_stats", "sample_features", "upsample_logits", "predict", "NonFiniteOutputs"]


class NonFiniteOutputs(FloatingPointError):
    """The model's logits or features are NaN or infinite (its weights have diverged)."""


def _non_finite(what: str, split: str) -> NonFiniteOutputs:
    return NonFiniteOutputs(f"the model's {what} on the {split!r} split are NaN or infinite")


def upsample_logits(logits: torch.Tensor, size) -> torch.Tensor:
    """Segmentation logits ``(B, K, h, w)`` at label size ``(H, W)``: float32 (half / bfloat16
    are upcast first), bilinear with ``align_corners=False``; returned unchanged in size when equal."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    return logits


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, size=None) -> torch.Tensor:
    """Class predictions of ``model`` (argmax of the pixel classifier's logits) in eval mode.

    Parameters
    ----------
    model : nn.Module
        A ceco-lite model (``forward(x) -> {"logits", "features"}``).
    x : Tensor
        ``(B, 3, H, W)`` model-ready images.
    size : (int, int), optional
        Label size of segmentation predictions (default the logits' own size).

    Returns
    -------
    Tensor
        ``(B, H, W)`` (segmentation) or ``(B,)`` int64 class ids.
    """
    was_training = model.training
    model.eval()
    logits = model(x)["logits"]
    model.train(was_training)
    if logits.dim() == 4 and size is not None:
        logits = upsample_logits(logits, size)
    return logits.argmax(1)


def _model_batches(model, data: DataBundle, runtime: Runtime, split: str):
    """``(model(xb), yb)`` over mini-batches of a split, decoded on the device (autocast around the forward)."""
    x, y = data.split(split)
    bs = runtime.eval_batch_size
    for s in range(0, x.shape[0], bs):
        xb, yb = data.decode(x[s:s + bs], y[s:s + bs])
        with runtime.autocast():
            out = model(runtime.prepare(xb))
        yield out, yb


def _feature_batches(model, data: DataBundle, runtime: Runtime, split: str):
    for out, yb in _model_batches(model, data, runtime, split):
        feats = out["features"].float()
        if not bool(torch.isfinite(feats).all()):
            raise _non_finite("features", split)
        if data.task == "segmentation":
            feats, yb = align_features_and_labels(feats, yb)
        yield feats, yb


@torch.no_grad()
def evaluate(model: nn.Module, data: DataBundle, runtime: Runtime, *, split: str = "val") -> dict:
    """Scores of ``model`` on a split of ``data`` (pixel branch only, eval mode).

    Returns
    -------
    dict
        ``miou`` (segmentation) or ``top1`` (classification), ``per_class``, ``head``,
        ``common``, ``tail``, ``mean_class_acc`` and, for segmentation, ``pixel_acc``; all in
        percent (see :func:`ceco_lite.engine.metrics.scores_from_confusion`).

    Raises
    ------
    NonFiniteOutputs
        Some logits are NaN or infinite (their argmax would be meaningless).
    """
    was_training = model.training
    model.eval()
    ev = ConfusionEvaluator(data.num_classes, data.task, ignore_index=data.ignore_index, device=runtime.device)
    finite = torch.ones((), dtype=torch.bool, device=runtime.device)
    for out, yb in _model_batches(model, data, runtime, split):
        logits = out["logits"]
        finite &= torch.isfinite(logits).all()
        if data.task == "segmentation":
            logits = upsample_logits(logits, yb.shape[-2:])
        ev.update(logits.argmax(1), yb)
    model.train(was_training)
    if not bool(finite):
        raise _non_finite("logits", split)
    return ev.compute(data.groups)


@torch.no_grad()
def collect_nc_stats(model: nn.Module, data: DataBundle, runtime: Runtime, *, split: str = "nc") -> dict:
    """Neural-collapse statistics of the model's features on a split, with the pixel classifier ``W`` (d, K).

    Segmentation labels are resampled (nearest) to the feature resolution
    (:func:`ceco_lite.align_features_and_labels`). Returns ``{}`` when fewer than two
    classes are present; raises :class:`NonFiniteOutputs` when features are NaN or infinite.
    """
    was_training = model.training
    model.eval()
    acc = NCAccumulator(data.num_classes, model.feature_dim, ignore_index=data.ignore_index)
    for feats, yb in _feature_batches(model, data, runtime, split):
        acc.update(feats, yb)
    model.train(was_training)
    try:
        stats = acc.compute(classifier=model.classifier_weight().detach().float())
    except ValueError:
        return {}
    return {k: v for k, v in stats.items() if k != "present"}


@torch.no_grad()
def sample_features(model: nn.Module, data: DataBundle, runtime: Runtime, *, per_class: int, seed: int,
                    split: str = "val") -> dict:
    """Up to ``per_class`` features of every class of a split (:func:`ceco_lite.sampling.sample_per_class`,
    seeded), on the CPU.

    Returns
    -------
    dict
        ``features`` ``(M, d)`` float32 and ``labels`` ``(M,)`` int64, grouped by class.
    """
    was_training = model.training
    model.eval()
    zs, ys = [], []
    for feats, yb in _feature_batches(model, data, runtime, split):
        if feats.dim() == 4:
            feats = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
        zs.append(feats.cpu())
        ys.append(yb.reshape(-1).cpu())
    model.train(was_training)
    z, lab = torch.cat(zs), torch.cat(ys)
    sel = sample_per_class(lab, per_class, ignore_index=data.ignore_index,
                           generator=torch.Generator().manual_seed(seed))
    return {"features": z[sel], "labels": lab[sel]}
