"""Evaluation: mIoU / per-class IoU (segmentation), top-1 / per-class accuracy
(classification), head/common/tail means -- all from one confusion matrix
(:class:`torchmetrics.classification.MulticlassConfusionMatrix`, ``ignore_index=255``).

Only the pixel branch is used (CeCo paper Sec. 4.2: the centre branch is dropped at
evaluation).
"""
from __future__ import annotations

import math

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

__all__ = ["ConfusionEvaluator", "scores_from_confusion", "group_means"]


def scores_from_confusion(confmat: torch.Tensor, task: str) -> dict:
    """Scores from a ``(K, K)`` confusion matrix (rows = ground truth, columns = prediction).

    Segmentation: IoU_k = TP / (TP + FP + FN) (NaN where the union is empty, i.e. the
    class is absent from both truth and prediction); ``miou`` = mean over non-NaN.
    Classification: per-class accuracy = TP / row sum, ``top1`` = trace / total.
    Both also give ``pixel_acc`` / ``top1`` (overall accuracy).

    Returns
    -------
    dict with ``per_class`` (list of K floats, NaN for undefined) and ``miou`` or ``top1``
    (percent, 0–100 like the paper's tables), plus ``mean_class_acc``.
    """
    cm = confmat.double()
    tp = cm.diag()
    gt = cm.sum(1)
    pred = cm.sum(0)
    total = cm.sum()
    acc = tp / gt  # NaN where a class has no ground truth
    out = {}
    if task == "segmentation":
        union = gt + pred - tp
        iou = tp / union
        out["per_class"] = (100 * iou).tolist()
        out["miou"] = float(100 * torch.nanmean(iou)) if torch.isfinite(iou).any() else float("nan")
        out["pixel_acc"] = float(100 * tp.sum() / total) if total > 0 else float("nan")
    else:
        out["per_class"] = (100 * acc).tolist()
        out["top1"] = float(100 * tp.sum() / total) if total > 0 else float("nan")
    out["mean_class_acc"] = float(100 * torch.nanmean(acc)) if torch.isfinite(acc).any() else float("nan")
    return out


def group_means(per_class: list[float], groups: dict[str, list[int]]) -> dict[str, float]:
    """Mean of ``per_class`` over each group (head / common / tail), ignoring NaN."""
    out = {}
    for name, ids in groups.items():
        vals = [per_class[i] for i in ids if not math.isnan(per_class[i])]
        out[name] = float(sum(vals) / len(vals)) if vals else float("nan")
    return out


class ConfusionEvaluator:
    """Streaming confusion matrix on the device of the predictions.

    Parameters
    ----------
    num_classes : int
    task : {"segmentation", "classification"}
    ignore_index : int, default 255
    device : torch.device
    """

    def __init__(self, num_classes: int, task: str, *, ignore_index: int = 255, device="cpu"):
        self.task = task
        self.metric = MulticlassConfusionMatrix(
            num_classes=num_classes, ignore_index=ignore_index, validate_args=False, sync_on_compute=False
        ).to(device)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds`` class ids (B, H, W) or (B,), ``target`` same shape (255 = ignore)."""
        self.metric.update(preds, target)

    def compute(self, groups: dict[str, list[int]] | None = None) -> dict:
        cm = self.metric.compute().cpu()
        out = scores_from_confusion(cm, self.task)
        if groups:
            out.update(group_means(out["per_class"], groups))
        return out
