"""Studies the lessons run on top of the engine: each trains (or loads) runs and measures one thing.

* :func:`dataset_status` -- whether a registered data set's files are there, and how to get them.
* :func:`measured_imbalance` -- pixel versus centre imbalance of a real segmentation data set
  (CeCo supplement Table 12), or ``None`` and a one-line message when it is missing.
* :func:`accuracy_vs_frequency` -- per-class accuracy against class frequency on CIFAR-10-LT
  and their Pearson correlation (CeCo supplement Fig. 7a).
* :func:`accuracy_frequency_correlation` -- the same correlation from a segmentation run,
  with pixel and with centre frequency.
* :func:`imbalance_verdicts` -- one checkable sentence per measured data set: its pixel
  against its centre imbalance factor.
* :func:`classification_nc_history` -- neural-collapse statistics of a classification model
  over training (CeCo paper Fig. 2): ResNet-8 on CIFAR-10 when found, else the
  unconstrained-features model.
* :func:`camvid_comparison` -- cross-entropy against CeCo on real CamVid (lesson 5).
* :func:`full_scale_plan` -- the full-scale run of lesson 5 (a GPU, or a smoke test).
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import torch

from data_utils import imbalance_stats
from data_utils.registry import LoadRequest, get_dataset
from data_utils.stats import pearson

from ..nc import nc_metrics
from ..published import PEARSON_ACCURACY_FREQUENCY
from ..ufm import train_ufm
from ..validation import check_int
from ..verdicts import Verdict, best, compare
from .config import TrainConfig
from .presets import get_preset
from .runs import run_many, run_or_load
from .trainer import RunResult

__all__ = ["dataset_status", "measured_imbalance", "accuracy_vs_frequency", "accuracy_frequency_correlation",
           "imbalance_verdicts", "classification_nc_history", "camvid_comparison", "full_scale_plan",
           "FULL_SCALE_ORDER", "CAMVID_RARE_CLASSES", "CE_NAME", "CECO_NAME"]

#: Data sets the full-scale cell tries, in this order.
FULL_SCALE_ORDER = ("cityscapes", "cifar10-lt")

#: The five rarest CamVid classes by training pixels (bicyclist 0.29 %, pedestrian 0.64 %, pole 0.98 %,
#: fence 1.1 %, sign_symbol 1.2 %; docs/conventions.md, section camvid), rarest first.
CAMVID_RARE_CLASSES = ("bicyclist", "pedestrian", "pole", "fence", "sign_symbol")

#: Run names of :func:`camvid_comparison` (and of the lessons' verdicts about it).
CE_NAME, CECO_NAME = "cross-entropy", "CeCo"


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


def imbalance_verdicts(measured: Mapping[str, Mapping]) -> list[Verdict]:
    """One :class:`ceco_lite.verdicts.Verdict` per data set: its pixel against its centre imbalance factor.

    The sentence says how many times larger the pixel imbalance factor is than the centre
    imbalance factor (CeCo Sec. 4.3, supplement Table 12), or that it is not, as measured.

    Parameters
    ----------
    measured : mapping name -> stats
        :func:`data_utils.imbalance_stats` outputs (``pixel_if``, ``center_if``, ``num_images``),
        e.g. those of :func:`measured_imbalance`.

    Returns
    -------
    list of Verdict
        Relation ``"greater"`` (pixel IF above centre IF), ``"less"`` or ``"equal"`` between
        ``values = {"pixel IF": ..., "centre IF": ...}``; ``extra["dataset"]`` is the name.

    Examples
    --------
    >>> v = imbalance_verdicts({"toy": {"pixel_if": 100.0, "center_if": 4.0, "num_images": 8}})[0]
    >>> print(v.text)
    toy (8 images): the pixel imbalance factor (100.0) is 25.0 times the centre imbalance factor (4.0).
    """
    out = []
    for name, stats in measured.items():
        p, c = float(stats["pixel_if"]), float(stats["center_if"])
        values = {"pixel IF": p, "centre IF": c}
        where = f"{name} ({stats['num_images']} images)" if "num_images" in stats else name
        if p > c:
            relation, text = "greater", (f"{where}: the pixel imbalance factor ({p:.1f}) is {p / c:.1f} times "
                                         f"the centre imbalance factor ({c:.1f}).")
        elif p < c:
            relation, text = "less", (f"{where}: the pixel imbalance factor ({p:.1f}) is below the centre "
                                      f"imbalance factor ({c:.1f}).")
        else:
            relation, text = "equal", f"{where}: pixel and centre imbalance factors are equal ({p:.1f})."
        out.append(Verdict("imbalance factor", values, relation, "pixel IF", 0.0, text, {"dataset": name}))
    return out


def _ufm_history(num_classes: int, dim: int, checkpoints: Sequence[int], seed: int) -> list[dict]:
    """NC statistics of the unconstrained-features model after each number of steps in ``checkpoints``.

    Training is deterministic for a seed and its step size does not depend on the total, so
    the model after ``s`` steps is the one ``train_ufm(steps=s)`` returns.
    """
    sizes = torch.ones(num_classes, dtype=torch.float64)
    history = []
    for steps in checkpoints:
        res = train_ufm(sizes, dim, steps=int(steps), seed=seed)
        nc = nc_metrics(res.flat_features(), res.labels, num_classes, classifier=res.classifier)
        loss = float(res.loss_history[-1])
        history.append({"epoch": int(steps), "loss": {"total": loss}, "nc": nc})
    return history


def classification_nc_history(root="runs", *, full: bool = False, data_root=None, seed: int = 0,
                              ufm_steps: int = 150, ufm_points: int = 16) -> dict:
    """Neural-collapse statistics of a classification model over training (CeCo paper Fig. 2, supplement Fig. 5).

    ResNet-8 on balanced CIFAR-10 images (presets ``"cifar10-balanced-quick"`` /
    ``"cifar10-balanced"``, trained or loaded with :func:`ceco_lite.engine.run_or_load`)
    when CIFAR-10 is found; otherwise the unconstrained-features (layer-peeled) model of
    :func:`ceco_lite.ufm.train_ufm` with 10 balanced classes -- the idealised classifier in
    which neural collapse is proven -- measured at ``ufm_points`` step counts from 0 to
    ``ufm_steps`` (:func:`ceco_lite.nc_metrics` with its classifier).

    Parameters
    ----------
    root : path-like, default "runs"
        Root of the run folders.
    full : bool, default False
        The longer CIFAR-10 preset (100 epochs instead of 12).
    data_root : path-like, optional
    seed : int, default 0
    ufm_steps : int, default 150
        Length of the unconstrained-features run (its statistics are near 0 after about 100 steps).
    ufm_points : int, default 16
        Number of its measurements (>= 2), evenly spaced, the initialisation included.

    Returns
    -------
    dict
        ``history`` (engine-style records: ``epoch``, ``loss.total``, ``nc``), ``name``
        (the curve's label), ``source`` (``"cifar10"`` or ``"ufm"``), ``message`` (one line:
        what was trained, or why CIFAR-10 is missing and how to get it), ``result``
        (the :class:`RunResult`, ``None`` for the unconstrained-features model).
    """
    ufm_steps = check_int(ufm_steps, "ufm_steps", minimum=1)
    ufm_points = check_int(ufm_points, "ufm_points", minimum=2)
    ok, message = dataset_status("cifar10-lt", data_root)
    if ok:
        extra = {"data_root": str(data_root)} if data_root is not None else {}
        config = get_preset("cifar10-balanced" if full else "cifar10-balanced-quick", seed=seed, **extra)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*checksums.*")  # a truncated copy is accepted
            result = run_or_load(config, root)
        return {"history": result.history, "name": "classification (CIFAR-10, ResNet-8)", "source": "cifar10",
                "result": result,
                "message": (f"classification: ResNet-8 on {config.limit_images} balanced CIFAR-10 images, "
                            f"{config.epochs} epochs: top-1 {result.score:.1f} % on the test images, final "
                            f"training loss {result.history[-1]['loss']['total']:.3f}")}
    checkpoints = np.unique(np.linspace(0, ufm_steps, ufm_points).round().astype(int))
    history = _ufm_history(10, 16, checkpoints.tolist(), seed)
    return {"history": history, "name": "classification (unconstrained features)", "source": "ufm",
            "result": None,
            "message": (f"{message} The classification model is therefore the unconstrained-features model "
                        f"of lesson 2 (10 balanced classes, free 16-d features, {ufm_steps} full-batch gradient "
                        f"steps): the idealised classifier, not a trained network.")}


def camvid_comparison(root="runs", *, full: bool = False, data_root=None, seed: int = 0,
                      progress: bool = False) -> tuple[dict | None, str]:
    """Cross-entropy against CeCo on real CamVid: the same preset with λ = 0 and with its λ.

    Presets ``"camvid-quick"`` (``full=False``) and ``"camvid-cpu"``, read by name; both runs
    are trained once and then loaded from their folders (:func:`ceco_lite.engine.run_many`).

    Parameters
    ----------
    root : path-like, default "runs"
    full : bool, default False
    data_root : path-like, optional
        Folder holding ``camvid/`` (default :func:`data_utils.default_data_dir`).
    seed : int, default 0
    progress : bool, default False
        Progress bars while training.

    Returns
    -------
    (dict or None, str)
        ``{CE_NAME: RunResult, CECO_NAME: RunResult}`` and a one-line description of the runs;
        ``None`` and a message saying that CamVid is missing and how to get it. Never raises for
        missing data.
    """
    ok, message = dataset_status("camvid", data_root)
    if not ok:
        return None, message
    extra = {"data_root": str(data_root)} if data_root is not None else {}
    ceco = get_preset("camvid-cpu" if full else "camvid-quick", seed=seed, **extra)
    configs = {CE_NAME: ceco.replace(ceco_lambda=0.0), CECO_NAME: ceco}
    results = run_many(configs, root, progress=progress)
    info = results[CE_NAME].metrics.get("data_info") or {}
    n_train = info.get("num_images") if isinstance(info, dict) else None
    h, w = ceco.image_size
    where = f"{n_train} training images" if n_train else "the training images"
    return results, (f"CamVid (preset '{ceco.preset}'): {where} at {h}x{w}, {ceco.model}, {ceco.epochs} epochs, "
                     f"seed {seed}: {CE_NAME} (λ = 0) and {CECO_NAME} (λ = {ceco.ceco_lambda:g}), "
                     f"evaluated on the {ceco.dataset_spec.eval_split} split")


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
