"""Figures of training runs: what the engine's results look like beside the papers'.

Every function takes :class:`ceco_lite.engine.RunResult` objects (or their histories)
and returns a plotly figure; the numbers come from the runs, the reference values
from :mod:`ceco_lite.published`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from ..engine.evaluation import predict
from ..published import CECO_TABLE2, IMBALANCE_FACTORS
from .segmentation import (COLORS, curves_figure, grouped_bars_figure, imbalance_factor_figure, lambda_sweep_figure,
                           mask_grid_figure)

__all__ = ["NC_LABELS", "summary_rows", "per_class_iou_figure", "centre_geometry_figure", "lambda_sweep_plot",
           "rarest_class_overlays", "imbalance_rows", "imbalance_table_figure", "nc_curves", "nc_comparison_figure",
           "history_value"]


#: Short display names of the NC statistics (column headers).
NC_LABELS = {"equiangularity_centers": "equiang. centres", "max_angle_centers": "max-angle centres",
             "equiangularity_classifiers": "equiang. classifiers", "max_angle_classifiers": "max-angle classifiers",
             "nc1": "NC1", "delta_inter": "Δ_Inter", "delta_intra": "Δ_Intra", "self_duality": "NC3",
             "ncc_mismatch": "NC4", "s/step": "s / step"}


def summary_rows(results: Mapping[str, object], *, nc_keys: Sequence[str] = ("equiangularity_centers",
                 "max_angle_centers", "nc1")) -> dict:
    """``{run: {"mIoU", "head", "common", "tail", <nc keys>, "s/step"}}`` from engine results."""
    rows = {}
    for name, r in results.items():
        m = r.metrics
        row = {"mIoU": r.score, "head": m.get("head"), "common": m.get("common"),
               "tail": m.get("tail")}
        for k in nc_keys:
            row[k] = (m.get("nc") or {}).get(k)
        row["s/step"] = m.get("time_per_step")
        rows[name] = row
    return rows


def per_class_iou_figure(results: Mapping[str, object], class_names: Sequence[str] | None = None, *,
                         title: str = "Per-class IoU (classes sorted by training pixel frequency)"):
    """Grouped bars of the final per-class IoU of each run, head to tail."""
    first = next(iter(results.values())).metrics
    counts = np.asarray(first.get("class_counts") or [], dtype=float)
    K = len(first["per_class"])
    order = np.argsort(-counts, kind="stable") if counts.size == K else np.arange(K)
    groups = first.get("groups") or {}
    tag = {int(k): g[0].upper() for g in ("head", "common", "tail") for k in groups.get(g, [])}
    names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
    cats = [f"{names[k]} [{tag.get(int(k), '-')}]" for k in order]
    series = {name: [r.metrics["per_class"][k] for k in order] for name, r in results.items()}
    return grouped_bars_figure(cats, series, title=title, yaxis_title="IoU (%)", text_format="{:.0f}")


def centre_geometry_figure(results: Mapping[str, object], *, key: str = "equiangularity_centers",
                           title: str | None = None):
    """Paper Fig. 4: an NC statistic of the class centres over training for each run."""
    labels = {"equiangularity_centers": "Std cos(ẑ_k, ẑ_k')  (Fig. 4a)",
              "max_angle_centers": "Avg |cos(ẑ_k, ẑ_k') + 1/(K−1)|  (Fig. 4b)"}
    hist = {name: r.history for name, r in results.items()}
    return nc_comparison_figure(hist, key=f"nc.{key}", title=title or labels.get(key, key),
                                yaxis_title=labels.get(key, key))


def lambda_sweep_plot(results_by_lambda: Mapping[float, object]):
    """Our mIoU against λ beside CeCo Table 2 (ScanNet200, ADE20K)."""
    lams = sorted(results_by_lambda)
    ours = [results_by_lambda[lam].score for lam in lams]
    plams = sorted(CECO_TABLE2)
    paper = {"ScanNet200": [CECO_TABLE2[lam][0] for lam in plams], "ADE20K": [CECO_TABLE2[lam][1] for lam in plams]}
    return lambda_sweep_figure(lams, ours, paper, paper_lambdas=plams)


def rarest_class_overlays(results: Mapping[str, object], images, masks, *, num_images: int = 4, palette=None,
                          num_classes: int | None = None, decode=None):
    """Validation images holding the rarest classes, ground truth and each run's prediction.

    Images are ranked by how many pixels of the rarest classes (tail third by training
    frequency) they contain; predictions are the argmax of each run's pixel classifier
    (``result.model``), as in evaluation.

    ``images`` are the engine's stored validation images ``(N, 3, H, W)``: float32 in
    [0, 1] (synthetic) or uint8 (real data sets). ``decode`` (e.g. the data bundle's
    ``DataBundle.decode``) turns them into model input; uint8 images are shown as ``x / 255``.
    """
    first = next(iter(results.values())).metrics
    tail = [int(k) for k in (first.get("groups") or {}).get("tail", [])]
    masks = torch.as_tensor(masks)
    score = torch.isin(masks, torch.tensor(tail)).flatten(1).sum(1) if tail else torch.zeros(len(masks))
    pick = torch.argsort(score, descending=True, stable=True)[:num_images]
    x = torch.as_tensor(images)[pick]
    x_model = decode(x) if decode is not None else x.float()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    rows = {"ground truth": [m for m in masks[pick]]}
    for name, r in results.items():
        rows[name] = list(predict(r.model.to("cpu"), x_model, size=masks.shape[-2:]))
    return mask_grid_figure(list(x), rows, palette=palette, num_classes=num_classes,
                            title="Rarest classes: ground truth and predictions")


def imbalance_rows(measured: Mapping[str, Mapping], *, paper: Mapping[str, tuple[float, float]] | None = None
                   ) -> list[tuple[str, float, float]]:
    """Rows ``(name, pixel IF, centre IF)``: ours (from :func:`data_utils.imbalance_stats`) then the paper's.

    Parameters
    ----------
    measured : mapping name -> stats dict
        Each holding ``pixel_if`` and ``center_if``.
    paper : mapping name -> (pixel IF, centre IF), optional
        Default :data:`IMBALANCE_FACTORS`; paper names get a "(paper)" suffix.
    """
    rows = [(name, float(s["pixel_if"]), float(s["center_if"])) for name, s in measured.items()]
    ref = IMBALANCE_FACTORS if paper is None else paper
    rows += [(f"{name} (paper)", float(p), float(c)) for name, (p, c) in ref.items()]
    return rows


def imbalance_table_figure(measured: Mapping[str, Mapping], *, paper=None):
    """Bar chart of pixel vs centre IF: our data sets beside the paper's (Table 12)."""
    return imbalance_factor_figure(imbalance_rows(measured, paper=paper),
                                   title="Pixel versus centre imbalance factor (ours, then CeCo Sec. 4.3 / Table 12)")


def nc_curves(histories: Mapping[str, Sequence[Mapping]], key: str, *, x_key: str = "epoch",
              normalise_x: bool = True) -> dict:
    """``{run: (x, y)}`` of one NC statistic over training from engine histories.

    ``key`` may be dotted (``"nc.equiangularity_centers"``). With ``normalise_x`` the
    x axis is the fraction of training done (runs of different lengths share one axis,
    as the paper's Fig. 2 plots each data set against its own iterations).
    """
    out = {}
    for name, hist in histories.items():
        pts = [(history_value(h, x_key), history_value(h, key)) for h in hist]
        pts = [(x, y) for x, y in pts if x is not None and y is not None]
        if not pts:
            continue
        xs = np.array([p[0] for p in pts], dtype=float)
        if normalise_x and xs.max() > 0:
            xs = xs / xs.max()
        out[name] = (xs.tolist(), [p[1] for p in pts])
    return out


def nc_comparison_figure(histories: Mapping[str, Sequence[Mapping]], *, key: str, title: str,
                         yaxis_title: str, classifier_key: str | None = None):
    """Lines of an NC statistic for several runs (class means solid, classifiers dashed).

    For paper Fig. 2 use ``key="nc.equiangularity_centers"`` with
    ``classifier_key="nc.equiangularity_classifiers"``; for supplement Fig. 5
    ``key="nc.max_angle_centers"``.
    """
    curves, dashes, colors = {}, {}, {}
    for i, (name, xy) in enumerate(nc_curves(histories, key).items()):
        curves[f"{name}: class means"] = xy
        colors[f"{name}: class means"] = COLORS[i % len(COLORS)]
    if classifier_key:
        for i, (name, xy) in enumerate(nc_curves(histories, classifier_key).items()):
            curves[f"{name}: classifiers"] = xy
            dashes[f"{name}: classifiers"] = "dash"
            colors[f"{name}: classifiers"] = COLORS[i % len(COLORS)]
    return curves_figure(curves, title=title, xaxis_title="fraction of training", yaxis_title=yaxis_title,
                         dashes=dashes, colors=colors, reference=0.0)


def history_value(entry: Mapping, key: str):
    """``entry[key]`` as a float, where ``key`` may be dotted (``"nc.equiangularity_centers"``).

    Returns ``None`` when a part of the key is missing or the value is not a number
    (engine history records omit statistics on epochs where they were not computed).
    """
    cur = entry
    for part in key.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    try:
        return float(cur)
    except (TypeError, ValueError):
        return None
