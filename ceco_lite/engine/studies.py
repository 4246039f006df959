"""Studies the lessons run on top of the engine: each trains (or loads) runs and measures one thing.

* :func:`dataset_status` -- whether a registered data set's files are there, and how to get them.
* :func:`measured_imbalance` -- pixel versus centre imbalance of a real segmentation data set
  (CeCo supplement Table 12), or ``None`` and a one-line message when it is missing.
* :func:`accuracy_vs_frequency` -- per-class accuracy against class frequency on CIFAR-10-LT
  and their Pearson correlation (CeCo supplement Fig. 7a).
* :func:`accuracy_frequency_correlation` -- the same correlation from a segmentation run,
  with pixel and with centre frequency.
* :func:`full_scale_plan` -- the full-scale run of lesson 5 (a GPU, or a smoke test).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from data_utils import imbalance_stats
from data_utils.registry import LoadRequest, get_dataset
from data_utils.stats import pearson

from ..published import PEARSON_ACCURACY_FREQUENCY
from ..verdicts import Verdict, best, compare
from .config import TrainConfig
from .presets import get_preset
from .runs import run_or_load
from .trainer import RunResult

__all__ = ["dataset_status", "measured_imbalance", "accuracy_vs_frequency", "accuracy_frequency_correlation",
           "full_scale_plan", "FULL_SCALE_ORDER"]

#: Data sets the full-scale cell tries, in this order.
FULL_SCALE_ORDER = ("cityscapes", "cifar10-lt")


def dataset_status(dataset: str, data_root=None) -> tuple[bool, str]:
    """Whether the files of a registered data set are found, and a one-line message.

    Returns
    -------
    (bool, str)
        ``(True, "")`` when they are there (or the data are generated); ``(False, message)``
        otherwise, the message saying what is missing and how to get it.
    """
    spec = get_dataset(dataset)
    try:
        spec.resolve_root(data_root)
    except FileNotFoundError as err:
        return False, f"{dataset} data not found: {str(err).splitlines()[0]}"
    return True, ""


def measured_imbalance(dataset: str, data_root=None, *, splits=("train",), size=None) -> tuple[dict | None, str]:
    """Pixel / centre imbalance statistics (:func:`data_utils.imbalance_stats`) of a real
    segmentation data set's masks, pooled over ``splits``.

    Parameters
    ----------
    dataset : str
        A registered segmentation data set (e.g. ``"camvid"``, ``"cityscapes"``).
    data_root : path-like, optional
    splits : sequence of str, default ("train",)
    size : (int, int), optional
        Masks are resized (nearest) to this size before counting; default the data set's.

    Returns
    -------
    (dict or None, str)
        The statistics plus ``class_names`` and ``palette``, and a one-line message; ``None``
        and a message saying how to get the data when they are missing. Never raises for
        missing data.
    """
    ok, message = dataset_status(dataset, data_root)
    if not ok:
        return None, message
    spec = get_dataset(dataset)
    root = spec.resolve_root(data_root)
    size = size or spec.default_size
    masks = [spec.load_split(root, LoadRequest(split=s, size=size, num_classes=spec.num_classes))[1]
             for s in splits]
    stats = imbalance_stats(torch.cat(masks), spec.num_classes)
    stats["class_names"] = list(spec.class_names())
    stats["palette"] = spec.colours()
    return stats, (f"{dataset}: {stats['num_images']} images of split(s) {', '.join(splits)} from {root}, "
                   f"masks at {size[0]}x{size[1]}")


def accuracy_vs_frequency(root="runs", *, full: bool = False, data_root=None, seed: int = 0,
                          fallback: bool = True, **overrides) -> dict:
    """Per-class accuracy against class frequency and their Pearson correlation (CeCo supplement Fig. 7a).

    Trains (or loads, :func:`ceco_lite.engine.run_or_load`) a classifier on CIFAR-10-LT and
    returns, per class, ``f_k = n_k / n_max`` and the test accuracy ``a_k``, with
    ``rho = Pearson(a, f)`` (:func:`data_utils.stats.pearson`), and the sentences a lesson
    may say about them, computed from the numbers (:mod:`ceco_lite.verdicts`).

    Parameters
    ----------
    root : path-like, default "runs"
        Root of the run folders.
    full : bool, default False
        ``False``: preset ``"cifar10-lt-quick"`` (ResNet-8, a few epochs, CPU). ``True``: preset
        ``"cifar10-lt"`` (ResNet-32, 200 epochs, LDAM-DRW recipe; a GPU job).
    data_root : path-like, optional
        Folder holding ``cifar-10-batches-py`` (or ``cifar/cifar-10-batches-py``).
    seed : int, default 0
    fallback : bool, default True
        If CIFAR-10 is missing, train preset ``"synthetic-tiny"`` instead and report per-class
        IoU against pixel frequency (``"source": "synthetic"``).
    **overrides
        Extra :class:`ceco_lite.engine.TrainConfig` fields.

    Returns
    -------
    dict
        ``frequency`` (K,) ``n_k / n_max``, ``accuracy`` (K,) in [0, 1] (IoU for the
        synthetic fallback), ``counts`` (K,), ``pearson`` (float), ``top1`` (percent or
        mIoU), ``source`` ("cifar10-lt" or "synthetic"), ``message`` (one line: what was
        run or why the fallback), ``run_dir``; for a figure and text that describe what was
        run: ``title``, ``score_name`` ("class accuracy" / "class IoU"), ``frequency_name``
        (HTML), ``class_names``; and ``verdicts`` (list of :class:`ceco_lite.verdicts.Verdict`):
        the correlation against the paper's (supplement Fig. 7), the mean score of the three
        most frequent against the three rarest classes, and the best and the worst class.

    Raises
    ------
    FileNotFoundError
        CIFAR-10 missing and ``fallback=False``.
    """
    extra = {"data_root": str(data_root)} if data_root is not None else {}
    config = get_preset("cifar10-lt" if full else "cifar10-lt-quick", seed=seed, **extra, **overrides)
    ok, message = dataset_status("cifar10-lt", data_root)
    source = "cifar10-lt"
    if ok:
        message = f"CIFAR-10-LT (IF {config.imbalance_factor:g}), {config.model}, {config.epochs} epochs"
    elif not fallback:
        raise FileNotFoundError(message)
    else:
        source = "synthetic"
        message = f"{message} Showing synthetic segmentation instead (per-class IoU vs pixel frequency)."
        config = get_preset("synthetic-tiny", seed=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_or_load(config, root, progress=full)
    for w in caught:
        if "checksums" in str(w.message):
            message += " (files differ from the official CIFAR-10 release: checksums not verified)"
            break
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    counts = np.asarray(result.metrics["class_counts"], dtype=np.float64)
    per_class = np.asarray(result.metrics["per_class"], dtype=np.float64) / 100.0
    frequency = counts / counts.max()
    keep = np.isfinite(per_class) & (counts > 0)
    rho = pearson(per_class[keep], frequency[keep]) if keep.sum() >= 3 else float("nan")
    if source == "cifar10-lt":
        title = f"CIFAR-10-LT (IF {config.imbalance_factor:g}), {config.model}, per-class test accuracy"
        score_name, unit = "class accuracy", "training images"
        frequency_name = "class frequency f<sub>k</sub> = n<sub>k</sub> / n<sub>max</sub> (training images)"
        paper_key, paper_name = "CIFAR-100-LT (images)", "the paper's CIFAR-100-LT model"
    else:
        title = "synthetic segmentation (no CIFAR-10 found), per-class validation IoU"
        score_name, unit = "class IoU", "training pixels"
        frequency_name = "pixel frequency f<sub>k</sub> = n<sub>k</sub> / n<sub>max</sub> (training pixels)"
        paper_key, paper_name = "ADE20K (pixels)", "the paper's ADE20K model"
    names = [f"class {k} (n = {int(n)})" for k, n in enumerate(counts)]
    verdicts = _frequency_verdicts(per_class, counts, rho, names, score_name=score_name, unit=unit,
                                   paper=(paper_name, PEARSON_ACCURACY_FREQUENCY[paper_key]))
    return {"frequency": frequency, "accuracy": per_class, "counts": counts, "pearson": rho, "top1": result.score,
            "source": source, "message": message, "run_dir": result.run_dir, "title": title,
            "score_name": score_name, "frequency_name": frequency_name, "class_names": names,
            "verdicts": verdicts}


def _frequency_verdicts(score, counts, rho, names, *, score_name, unit, paper) -> list[Verdict]:
    """The sentences about a per-class score against class frequency (see :func:`accuracy_vs_frequency`)."""
    keep = np.isfinite(score) & (counts > 0)
    paper_name, paper_rho = paper
    out = [compare(f"Pearson correlation of {score_name} with the number of {unit}",
                   {"this model": float(rho), paper_name: float(paper_rho)}, digits=2, difference="in ρ")]
    idx = np.flatnonzero(keep)
    if idx.size >= 6:
        order = idx[np.argsort(-counts[idx], kind="stable")]
        head, tail = order[:3], order[-3:]
        out.append(compare(f"mean {score_name}",
                           {"the head (3 most frequent classes)": 100.0 * float(score[head].mean()),
                            "the tail (3 rarest classes)": 100.0 * float(score[tail].mean())},
                           unit=" %", digits=1))
    values = {names[k]: 100.0 * float(score[k]) for k in idx}
    out.append(best(score_name, values, unit=" %"))
    lowest = min(values.values()) if values else None
    if lowest is not None and sum(v == lowest for v in values.values()) == 1:  # a unique worst class
        out.append(best(score_name, values, unit=" %", largest=False))
    else:
        tied = [n for n, v in values.items() if v == lowest]
        out.append(Verdict(score_name, {n: values[n] for n in tied}, "worst", tied[0], 0.0,
                           f"In this run, {len(tied)} classes share the smallest {score_name} "
                           f"({lowest:.1f} %): {', '.join(tied)}."))
    return out


def accuracy_frequency_correlation(result: RunResult) -> dict:
    """Pearson correlation of per-class scores with pixel and with centre frequency (CeCo supplement Fig. 7).

    Uses the run's final per-class IoU (in place of the paper's per-class accuracy) and
    the training pixel / centre counts the engine recorded (:func:`data_utils.stats.pearson`
    on ``f_k = n_k / n_max``).

    Returns
    -------
    dict
        ``pearson_pixel``, ``pearson_center`` (NaN when undefined).
    """
    m = result.metrics
    info = m.get("data_info") or {}
    acc = np.asarray(m["per_class"], dtype=float)
    pc = np.asarray(info.get("pixel_counts", m.get("class_counts")), dtype=float)
    cc = np.asarray(info.get("center_counts", []), dtype=float)
    out = {"pearson_pixel": float(pearson(acc, pc / max(pc.max(), 1))) if pc.size == acc.size else float("nan")}
    out["pearson_center"] = float(pearson(acc, cc / max(cc.max(), 1))) if cc.size == acc.size else float("nan")
    return out


def full_scale_plan(*, data_root=None, smoke: bool | None = None) -> tuple[TrainConfig, str, bool]:
    """Choose the full-scale run of lesson 5: the first data set of :data:`FULL_SCALE_ORDER` that
    is found, on the GPU -- or a 2-step smoke version of it on the CPU.

    Parameters
    ----------
    data_root : path-like, optional
        Folder holding the data sets (default :func:`data_utils.default_data_dir`).
    smoke : bool, optional
        Force (True) or forbid (False) the tiny smoke version; default: smoke unless a
        CUDA GPU is available.

    Returns
    -------
    (TrainConfig, str, bool)
        The configuration to train, a plain-language message, and whether it is the
        real full-scale run (``False``: a 2-step smoke version on the CPU).
    """
    gpu = torch.cuda.is_available()
    smoke = (not gpu) if smoke is None else bool(smoke)
    extra = {"data_root": str(data_root)} if data_root is not None else {}
    chosen, notes = None, []
    for name in FULL_SCALE_ORDER:
        ok, note = dataset_status(name, data_root)
        if ok:
            chosen = get_preset(name, **extra)
            break
        notes.append(note)
    if chosen is None:
        cfg = get_preset("synthetic-cpu", max_steps=2, epochs=1) if smoke else get_preset("synthetic-cpu",
                                                                                           device="auto")
        return cfg, ("No real data set was found (" + " ".join(notes) + "), so the full-scale cell uses the "
                     "synthetic preset."), not smoke
    if not smoke:
        where = f"GPU ({torch.cuda.get_device_name(0)})" if gpu else "CPU (no GPU: this will take very long)"
        return chosen, (f"Full scale on the {where}: preset '{chosen.preset}', {chosen.epochs} epochs, "
                        f"model {chosen.model}."), True
    tiny = dict(device="cpu", epochs=1, max_steps=2, batch_size=4, nc_max_images=8, num_workers=0, limit_images=8,
                eval_every=1)
    if chosen.task == "segmentation":
        tiny.update(image_size=(64, 128), model="small_seg")
    else:
        tiny.update(model="resnet8", limit_images=64, verify_checksums=False, warmup_epochs=0, lr_milestones=())
    why = "No CUDA GPU here" if not gpu else "Smoke mode was asked for"
    msg = (f"{why}: the full '{chosen.preset}' run ({chosen.epochs} epochs of {chosen.model}) would take many hours "
           f"on a CPU, so this cell runs a 2-step smoke test of the same engine and data instead. For the real run, "
           f"use a machine with a CUDA GPU and set FULL_SCALE = True, or run "
           f"`python -m ceco_lite train --preset {chosen.preset}` there.")
    return chosen.replace(**tiny), msg, False
