"""Widgets and helpers of lesson 5 ("Training with and without CeCo"), also used by 3 and 6.

Training is always :func:`ceco_lite.engine.train`; this module only

* names and caches runs (:func:`run_or_load`: one run directory per configuration,
  resumed by the engine, so re-running a lesson is instant);
* keeps pixel-feature snapshots at chosen epochs (:func:`snapshot_callback`, from the
  checkpoint the engine writes each epoch) for the t-SNE explorer;
* turns run results into tables and figures next to the paper's numbers (SPEC §5).

Widgets expose ``.widget``, ``.figure`` and ``.update(**values)``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_TABLE4",
    "PAPER_TABLE5",
    "PAPER_TABLE9",
    "PAPER_OVERHEAD",
    "NC_LABELS",
    "config_tag",
    "run_path",
    "run_or_load",
    "run_many",
    "snapshot_callback",
    "load_snapshots",
    "paper_group_rows",
    "summary_rows",
    "results_table",
    "per_class_iou_figure",
    "centre_geometry_figure",
    "lambda_sweep_plot",
    "ablation_rows",
    "TSNEExplorer",
    "rarest_class_overlays",
    "full_scale_plan",
]

#: CeCo paper Table 1 (mIoU, ScanNet200 / ADE20K): (pixel classifier, centre classifier) -> values.
PAPER_TABLE1 = {
    ("learned", None): (27.8, 44.5),
    ("fixed", "fixed"): (28.3, 44.8),
    ("fixed", "learned"): (27.2, 44.0),
    ("learned", "fixed"): (30.3, 45.7),
    ("learned", "learned"): (26.9, 43.7),
}
#: CeCo paper Table 2 (mIoU vs λ): λ -> (ScanNet200, ADE20K).
PAPER_TABLE2 = {0.0: (27.8, 44.5), 0.1: (28.6, 44.8), 0.2: (29.4, 45.0), 0.3: (30.1, 45.2),
                0.4: (30.3, 45.3), 0.5: (29.7, 45.7), 0.6: (28.7, 44.9)}
#: CeCo paper Table 4 (ADE20K mIoU, DeepLabV3+ ResNet-50: head, common, tail, all).
PAPER_TABLE4 = {"DLV3P (R50)": (67.7, 48.3, 36.4, 44.9), "+ CeCo": (67.7, 48.7, 39.0, 46.4)}
#: CeCo paper Table 5 (ScanNet200 val mIoU: head, common, tail, all).
PAPER_TABLE5 = {"MinkowskiNet": (48.3, 19.1, 7.9, 25.1), "+ CeCo": (51.2, 22.9, 17.1, 30.3)}
#: CeCo supplement Table 9 (Cityscapes mIoU, single scale).
PAPER_TABLE9 = {"DLV3P R18": (76.3, 77.5), "DLV3P R50": (79.8, 80.3)}
#: Training-time overhead (supplement Table 11, In2NeCT Table 4); inference overhead is 0.
PAPER_OVERHEAD = {"DLV3P R101 + CeCo": 9.37, "MinkowskiNet-34 + CeCo": 10.2, "UNetFormer + In2NeCT": 10.5}


#: Short display names of the NC statistics (column headers).
NC_LABELS = {"equiangularity_centers": "equiang. centres", "max_angle_centers": "max-angle centres",
             "equiangularity_classifiers": "equiang. classifiers", "max_angle_classifiers": "max-angle classifiers",
             "nc1": "NC1", "delta_inter": "Δ_Inter", "delta_intra": "Δ_Intra", "self_duality": "NC3",
             "ncc_mismatch": "NC4", "s/step": "s / step"}


# ----------------------------------------------------------------------- runs
# TrainConfig fields that do not change what a run computes (left out of the tag)
_NOT_IN_TAG = ("resume", "progress", "out_dir", "num_threads", "num_workers", "preset")


def config_tag(config) -> str:
    """Short hash of a :class:`~ceco_lite.engine.TrainConfig` (the fields that change results)."""
    d = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_TAG}
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_path(config, root, name: str) -> Path:
    """``root/<name>-<tag>``: the run directory :func:`run_or_load` uses for ``config``."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in str(name))
    return Path(root) / f"{safe}-{config_tag(config)}"


def run_or_load(config, root, name: str, *, callback: Callable | None = None, progress: bool = False):
    """Train ``config`` in ``root/<name>-<tag>`` or load the finished run from there.

    The engine does the caching: with ``out_dir`` set and ``resume=True`` it continues
    from ``checkpoint.pt`` and, when the run is complete, only reloads it. The tag
    (:func:`config_tag`) makes a changed configuration (e.g. ``QUICK`` switched off) a
    new run instead of a resume error.

    Parameters
    ----------
    config : ceco_lite.engine.TrainConfig
    root : path-like
        Folder of the lesson's runs.
    name : str
        Readable prefix of the run folder (letters, digits, ``-_.``).
    callback : callable, optional
        Passed to :func:`ceco_lite.engine.train`.
    progress : bool, default False
        Show the engine's progress bars.

    Returns
    -------
    ceco_lite.engine.RunResult
    """
    from ceco_lite.engine import train

    cfg = config.replace(out_dir=str(run_path(config, root, name)), resume=True, progress=bool(progress))
    return train(cfg, callback=callback)


def run_many(configs: Mapping[str, object], root, *, progress: bool = True,
             callbacks: Mapping[str, Callable] | None = None) -> dict:
    """:func:`run_or_load` for every ``name -> config``, with one tqdm bar over the runs."""
    from tqdm.auto import tqdm

    out = {}
    bar = tqdm(list(configs.items()), desc="runs", disable=not progress)
    for name, cfg in bar:
        bar.set_postfix_str(name)
        out[name] = run_or_load(cfg, root, name, callback=(callbacks or {}).get(name))
    return out


def snapshot_callback(config, root, name: str, epochs: Sequence[int], *, max_images: int = 16) -> Callable:
    """An engine callback that keeps validation pixel features at the given epochs.

    After each epoch the engine writes ``checkpoint.pt`` and then calls the callback;
    at the epochs in ``epochs`` this one loads that checkpoint into a fresh model
    (:func:`ceco_lite.models.build_model`), runs the first ``max_images`` validation
    images and stores their feature maps and masks resized to the feature resolution
    (:func:`ceco_lite.align_features_and_labels`) in ``<run dir>/snapshots/epoch_XXX.pt``
    (written atomically). Use it with :func:`run_or_load` (same ``config``, ``root``
    and ``name``); read the files with :func:`load_snapshots`.
    """
    import torch

    from ceco_lite.centers import align_features_and_labels
    from ceco_lite.engine.checkpoint import atomic_save, load_checkpoint
    from ceco_lite.engine.data import load_data
    from ceco_lite.models import build_model

    want = {int(e) for e in epochs}
    run_dir = run_path(config, root, name)
    cache: dict = {}

    def callback(record, history):
        epoch = int(record["epoch"])
        if epoch not in want:
            return
        path = run_dir / "snapshots" / f"epoch_{epoch:03d}.pt"
        if path.exists():
            return
        if "data" not in cache:
            data = load_data(config)
            cache["data"] = data.decode(data.val_x[:max_images], data.val_y[:max_images])  # uint8 -> model input
        x, y = cache["data"]
        ck = load_checkpoint(run_dir / "checkpoint.pt", map_location="cpu")
        model = build_model(config.model, config.num_classes, fixed_classifier=config.fixed_pixel_classifier,
                            feature_dim=config.feature_dim, pretrained=False, **config.model_options)
        model.load_state_dict(ck["model"])
        model.eval()
        with torch.no_grad():
            feats = model(x)["features"].float()
        feats, labels = align_features_and_labels(feats, y)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save({"features": feats, "labels": labels, "epoch": epoch}, path)

    return callback


def load_snapshots(result) -> dict:
    """``{epoch: (features (B, d, h, w), labels (B, h, w))}`` saved by :func:`snapshot_callback`."""
    import torch

    out = {}
    if result.run_dir is None:
        return out
    for p in sorted((Path(result.run_dir) / "snapshots").glob("epoch_*.pt")):
        d = torch.load(p, map_location="cpu", weights_only=False)
        out[int(d["epoch"])] = (d["features"], d["labels"])
    return out


# --------------------------------------------------------------------- tables
def paper_group_rows() -> dict:
    """CeCo Tables 4 and 5 as reference rows ``{name: {"head", "common", "tail", "mIoU"}}``."""
    keys = ("head", "common", "tail", "mIoU")
    rows = {f"{k} (ADE20K, paper Table 4)": dict(zip(keys, v)) for k, v in PAPER_TABLE4.items()}
    rows.update({f"{k} (ScanNet200, paper Table 5)": dict(zip(keys, v)) for k, v in PAPER_TABLE5.items()})
    return rows


def summary_rows(results: Mapping[str, object], *, nc_keys: Sequence[str] = ("equiangularity_centers",
                 "max_angle_centers", "nc1")) -> dict:
    """``{run: {"mIoU", "head", "common", "tail", <nc keys>, "s/step"}}`` from engine results."""
    rows = {}
    for name, r in results.items():
        m = r.metrics
        row = {"mIoU": m.get("miou", m.get("top1")), "head": m.get("head"), "common": m.get("common"),
               "tail": m.get("tail")}
        for k in nc_keys:
            row[k] = (m.get("nc") or {}).get(k)
        row["s/step"] = m.get("time_per_step")
        rows[name] = row
    return rows


def results_table(results: Mapping[str, object], *, reference: Mapping[str, Mapping] | None = None,
                  nc_keys: Sequence[str] = ("equiangularity_centers", "max_angle_centers", "nc1"),
                  caption: str = "") -> str:
    """HTML table of :func:`summary_rows` (IoU in %, NC statistics, time per step) plus paper rows."""
    from .beyond import run_comparison_table

    cols = ["mIoU", "head", "common", "tail", *nc_keys, "s/step"]
    fmts = {"mIoU": "{:.1f}", "head": "{:.1f}", "common": "{:.1f}", "tail": "{:.1f}", "s/step": "{:.3f}"}
    return run_comparison_table(summary_rows(results, nc_keys=nc_keys), cols, reference=reference,
                                formats=fmts, caption=caption, headers=NC_LABELS)


def per_class_iou_figure(results: Mapping[str, object], class_names: Sequence[str] | None = None, *,
                         title: str = "Per-class IoU (classes sorted by training pixel frequency)"):
    """Grouped bars of the final per-class IoU of each run, head to tail."""
    from ..plotting_segmentation import grouped_bars_figure

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
    from .segmentation_data import nc_comparison_figure

    labels = {"equiangularity_centers": "Std cos(ẑ_k, ẑ_k')  (Fig. 4a)",
              "max_angle_centers": "Avg |cos(ẑ_k, ẑ_k') + 1/(K−1)|  (Fig. 4b)"}
    hist = {name: r.history for name, r in results.items()}
    return nc_comparison_figure(hist, key=f"nc.{key}", title=title or labels.get(key, key),
                                yaxis_title=labels.get(key, key))


def lambda_sweep_plot(results_by_lambda: Mapping[float, object]):
    """Our mIoU against λ beside CeCo Table 2 (ScanNet200, ADE20K)."""
    from ..plotting_segmentation import lambda_sweep_figure

    lams = sorted(results_by_lambda)
    ours = [results_by_lambda[lam].metrics.get("miou", results_by_lambda[lam].metrics.get("top1")) for lam in lams]
    plams = sorted(PAPER_TABLE2)
    paper = {"ScanNet200": [PAPER_TABLE2[lam][0] for lam in plams], "ADE20K": [PAPER_TABLE2[lam][1] for lam in plams]}
    return lambda_sweep_figure(lams, ours, paper, paper_lambdas=plams)


def ablation_rows(results: Mapping[tuple, object]) -> str:
    """CeCo Table 1 as HTML: our mIoU (and tail) per (pixel, centre classifier) beside the paper's."""
    from .beyond import run_comparison_table

    rows = {}
    for (pc, cc), r in results.items():
        p = PAPER_TABLE1.get((pc, cc), (None, None))
        rows[f"PC {pc} / CC {cc or '–'}"] = {"ours mIoU": r.metrics.get("miou"), "ours tail": r.metrics.get("tail"),
                                            "paper ScanNet200": p[0], "paper ADE20K": p[1]}
    cols = ["ours mIoU", "ours tail", "paper ScanNet200", "paper ADE20K"]
    return run_comparison_table(rows, cols, formats={c: "{:.1f}" for c in cols},
                                caption="PC: pixel classifier, CC: centre classifier (CeCo Table 1).")


# ---------------------------------------------------------------------- t-SNE
class TSNEExplorer:
    """Switch instantly between precomputed t-SNE embeddings (run x epoch) and class subsets.

    Parameters
    ----------
    embeddings : mapping (run, epoch) -> dict
        Outputs of :func:`ceco_lite.tsne.cached_tsne` (``embedding``, ``labels``).
    class_names : sequence of str
    groups : mapping, optional
        ``{"head": [...], "common": [...], "tail": [...]}`` for the subset buttons.
    """

    def __init__(self, embeddings: Mapping[tuple, Mapping], class_names: Sequence[str], *,
                 groups: Mapping[str, Sequence[int]] | None = None, palette=None) -> None:
        import ipywidgets as W

        from ..plotting_segmentation import embedding_figure

        if not embeddings:
            raise ValueError("embeddings is empty")
        self.embeddings = dict(embeddings)
        self.class_names = list(class_names)
        self.groups = {g: [int(k) for k in v] for g, v in (groups or {}).items()}
        runs = list(dict.fromkeys(k[0] for k in self.embeddings))
        epochs = sorted({k[1] for k in self.embeddings})
        self.run = W.ToggleButtons(options=runs, value=runs[0], description="run")
        self.epoch = W.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                       continuous_update=False)
        subsets = ["all"] + [g for g in ("head", "common", "tail") if self.groups.get(g)]
        self.subset = W.ToggleButtons(options=subsets, value="all", description="classes")
        first = self.embeddings[(runs[0], epochs[-1])] if (runs[0], epochs[-1]) in self.embeddings \
            else next(iter(self.embeddings.values()))
        self.figure = embedding_figure(first["embedding"], first["labels"], self.class_names, palette=palette,
                                       num_classes=len(self.class_names))
        for w, key in ((self.run, "run"), (self.epoch, "epoch"), (self.subset, "subset")):
            w.observe(lambda ch, key=key: self.update(**{key: ch["new"]}), names="value")
        self.widget = W.VBox([self.run, self.epoch, self.subset, self.figure])
        self.update()

    def update(self, *, run: str | None = None, epoch: int | None = None, subset: str | None = None) -> None:
        """Show embedding ``(run, epoch)`` restricted to ``subset`` (no recomputation)."""
        from ..plotting_segmentation import update_embedding

        run = self.run.value if run is None else run
        epoch = self.epoch.value if epoch is None else epoch
        subset = self.subset.value if subset is None else subset
        emb = self.embeddings.get((run, epoch))
        if emb is None:
            raise KeyError(f"no embedding for run {run!r} at epoch {epoch!r}")
        visible = None if subset == "all" else self.groups[subset]
        update_embedding(self.figure, emb["embedding"], emb["labels"], visible_classes=visible,
                         title=f"t-SNE of pixel features: {run}, epoch {epoch}, {subset} classes")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# ------------------------------------------------------------------- overlays
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
    import torch

    from ..plotting_segmentation import mask_grid_figure

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
        model = r.model.to("cpu").eval()
        with torch.no_grad():
            logits = model(x_model)["logits"]
            if logits.shape[-2:] != masks.shape[-2:]:
                logits = torch.nn.functional.interpolate(logits, size=masks.shape[-2:], mode="bilinear",
                                                         align_corners=False)
        rows[name] = list(logits.argmax(1))
    return mask_grid_figure(list(x), rows, palette=palette, num_classes=num_classes,
                            title="Rarest classes: ground truth and predictions")


# ----------------------------------------------------------------- full scale
def full_scale_plan(*, data_root=None, smoke: bool | None = None) -> tuple[object, str, bool]:
    """Choose the full-scale run: Cityscapes if available, else CIFAR-10-LT; GPU or smoke test.

    Parameters
    ----------
    data_root : path-like, optional
        Folder holding ``cityscapes/`` and/or ``cifar/`` (default :func:`data_utils.default_data_dir`).
    smoke : bool, optional
        Force (True) or forbid (False) the tiny smoke version; default: smoke unless a
        CUDA GPU is available.

    Returns
    -------
    (TrainConfig, str, bool)
        The configuration to train, a plain-language message, and whether it is the
        real full-scale run (``False``: a 2-step smoke version on the CPU).
    """
    import torch

    from ceco_lite.engine import get_preset
    from ceco_lite.engine.data import resolve_data_root

    gpu = torch.cuda.is_available()
    smoke = (not gpu) if smoke is None else bool(smoke)
    chosen, notes = None, []
    for preset in ("cityscapes", "cifar10-lt"):
        cfg = get_preset(preset, **({"data_root": str(data_root)} if data_root else {}))
        try:
            resolve_data_root(cfg)
        except FileNotFoundError as err:
            notes.append(f"{preset}: {str(err).splitlines()[0]}")
            continue
        chosen = cfg
        break
    if chosen is None:
        cfg = (get_preset("synthetic-cpu", max_steps=2, epochs=1) if smoke
               else get_preset("synthetic-cpu", device="auto"))
        return cfg, ("Neither Cityscapes nor CIFAR-10 was found (" + "; ".join(notes) + "), so the full-scale "
                     "cell uses the synthetic preset. Cityscapes: register at https://www.cityscapes-dataset.com; "
                     "CIFAR-10: torchvision.datasets.CIFAR10(root, download=True)."), not smoke
    if not smoke:
        where = f"GPU ({torch.cuda.get_device_name(0)})" if gpu else "CPU (no GPU: this will take very long)"
        return chosen, (f"Full scale on the {where}: preset '{chosen.preset}', {chosen.epochs} epochs, "
                        f"model {chosen.model}."), True
    tiny = dict(device="cpu", epochs=1, max_steps=2, batch_size=4, nc_max_images=8, num_workers=0, limit_images=8,
                eval_every=1)
    if chosen.dataset == "cityscapes":
        tiny.update(image_size=(64, 128), model="small_seg")
    else:
        tiny.update(model="resnet8", limit_images=64, verify_checksums=False, warmup_epochs=0, lr_milestones=())
    why = "No CUDA GPU here" if not gpu else "Smoke mode was asked for"
    msg = (f"{why}: the full '{chosen.preset}' run ({chosen.epochs} epochs of {chosen.model}) would take many hours "
           f"on a CPU, so this cell runs a 2-step smoke test of the same engine and data instead. For the real run, "
           f"use a machine with a CUDA GPU and set FULL_SCALE = True, or run "
           f"`python -m ceco_lite train --preset {chosen.preset}` there.")
    return chosen.replace(**tiny), msg, False
