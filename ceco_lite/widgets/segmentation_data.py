"""Widgets of lesson 3 ("Imbalance in segmentation").

* :class:`SyntheticDataExplorer` -- the synthetic generator
  (:func:`data_utils.make_synthetic_segmentation`) behind an imbalance-factor and a
  context-strength slider: sample images and masks, and the per-class pixel and
  centre frequencies (:func:`data_utils.imbalance_stats`, supplement Fig. 6).
* :func:`imbalance_rows` / :func:`imbalance_table_figure` -- pixel versus centre
  imbalance factor of several data sets beside the paper's (Sec. 4.3, Table 12).
* :func:`cityscapes_sample_stats` -- the same statistics for the real Cityscapes
  sample, or ``None`` plus a one-line message when the data is missing.
* :func:`nc_comparison_figure` -- equiangularity / maximal-angle curves of a
  segmentation run against a classification run (paper Fig. 2, supplement Fig. 5),
  from the engine's run histories.

Each widget exposes ``.widget``, ``.figure`` and ``.update(**values)``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "PAPER_IMBALANCE_FACTORS",
    "PAPER_PEARSON",
    "SyntheticDataExplorer",
    "synthetic_class_names",
    "imbalance_rows",
    "imbalance_table_figure",
    "cityscapes_sample_stats",
    "nc_curves",
    "nc_comparison_figure",
    "dataset_status",
    "accuracy_frequency_correlation",
]

#: Pixel/point versus centre imbalance factor (CeCo paper Sec. 4.3, supplement Table 12; SPEC §5).
PAPER_IMBALANCE_FACTORS = {
    "ScanNet v2": (116.0, 11.0),
    "ScanNet200": (37256.0, 597.0),
    "ADE20K": (827.0, 282.0),
    "COCO-Stuff": (2612.0, 528.0),
    "Cityscapes": (373.0, 20.0),
}

#: Pearson(class accuracy, normalised frequency) (CeCo paper Sec. 4.3, supplement Fig. 7; SPEC §5).
PAPER_PEARSON = {
    "CIFAR-100-LT (images)": 0.76,
    "ScanNet200 (points)": 0.32,
    "ScanNet200 (centres)": 0.51,
    "ADE20K (pixels)": 0.31,
    "ADE20K (centres)": 0.49,
}


def synthetic_class_names(num_classes: int) -> list[str]:
    """Display names ``"k (head|common|tail)"`` of the synthetic generator's classes."""
    from data_utils.synthetic import synthetic_class_structure

    s = synthetic_class_structure(num_classes)
    group = {int(k): g for g in ("head", "common", "tail") for k in s[g]}
    return [f"{k} ({group[k]})" for k in range(num_classes)]


class SyntheticDataExplorer:
    """Synthetic imbalanced segmentation behind two sliders (lesson 3).

    Moving the imbalance factor or the context strength regenerates
    ``num_images`` image/mask pairs (on slider release), redraws the first
    ``num_shown`` of them and the per-class pixel and centre frequencies, and
    prints the measured pixel and centre imbalance factors.

    Parameters
    ----------
    num_classes : int, default 8
    num_images : int, default 64
        Images used for the statistics.
    size : int, default 64
        Image side in pixels.
    imbalance_factor : float, default 100
        Initial pixel imbalance factor (slider: 1 ... 1000, log scale).
    context_strength : float, default 0.8
        Initial context strength (slider: 0 ... 1).
    num_shown : int, default 4
        Images drawn.
    seed : int, default 0
    """

    def __init__(self, *, num_classes: int = 8, num_images: int = 64, size: int = 64,
                 imbalance_factor: float = 100.0, context_strength: float = 0.8, num_shown: int = 4,
                 seed: int = 0) -> None:
        import ipywidgets as W

        from data_utils.synthetic import palette

        from ..plotting_segmentation import class_histogram_figure, mask_grid_figure

        self.num_classes, self.num_images, self.size = int(num_classes), int(num_images), int(size)
        self.num_shown, self.seed = int(num_shown), int(seed)
        self.palette = palette(self.num_classes)
        style = {"description_width": "initial"}
        self.imbalance = W.FloatLogSlider(value=float(imbalance_factor), base=10, min=0, max=3, step=0.05,
                                          description="pixel imbalance factor", continuous_update=False,
                                          readout_format=".0f", style=style)
        self.context = W.FloatSlider(value=float(context_strength), min=0.0, max=1.0, step=0.05,
                                     description="context strength", continuous_update=False, style=style)
        self.status = W.HTML()
        self.stats: dict = {}
        images, masks = self._generate(self.imbalance.value, self.context.value)
        self.samples = mask_grid_figure(images[: self.num_shown], {"mask": masks[: self.num_shown]},
                                        palette=self.palette, title="Samples (top: image, bottom: mask)")
        self.figure = class_histogram_figure(np.ones(self.num_classes), np.ones(self.num_classes),
                                             self._names())
        self.imbalance.observe(lambda ch: self.update(imbalance_factor=ch["new"]), names="value")
        self.context.observe(lambda ch: self.update(context_strength=ch["new"]), names="value")
        legend = "".join(
            f"<span style='display:inline-block;width:12px;height:12px;background:rgb{tuple(int(v) for v in c)};"
            f"margin:0 4px 0 10px'></span>{n}" for n, c in zip(self._names(), self.palette))
        self.widget = W.VBox([W.HBox([self.imbalance, self.context]), self.samples, W.HTML(legend),
                              self.figure, self.status])
        self._draw(images, masks)

    def _names(self) -> list[str]:
        return synthetic_class_names(self.num_classes)

    def _generate(self, imbalance_factor: float, context_strength: float):
        from data_utils import make_synthetic_segmentation

        return make_synthetic_segmentation(self.num_images, self.num_classes, self.size, float(imbalance_factor),
                                           seed=self.seed, context_strength=float(context_strength))

    def _draw(self, images, masks) -> None:
        from data_utils import imbalance_stats

        from ..plotting_segmentation import update_class_histogram, update_mask_grid

        self.stats = imbalance_stats(masks, self.num_classes)
        update_mask_grid(self.samples, images[: self.num_shown], {"mask": masks[: self.num_shown]},
                         palette=self.palette)
        update_class_histogram(self.figure, self.stats["pixel_counts"], self.stats["center_counts"],
                               self._names())
        s = self.stats
        self.status.value = (
            f"<b>{s['num_images']} images</b>: pixel imbalance factor <b>{s['pixel_if']:.1f}</b>, "
            f"centre imbalance factor (one centre per image in which a class appears) "
            f"<b>{s['center_if']:.1f}</b>, ratio {s['pixel_if'] / s['center_if']:.1f}. "
            f"Paper, Cityscapes: 373 vs 20 (supplement Table 12)."
        )

    def update(self, *, imbalance_factor: float | None = None, context_strength: float | None = None) -> None:
        """Regenerate the data with new slider values and redraw (the sliders' callback)."""
        imbalance_factor = self.imbalance.value if imbalance_factor is None else imbalance_factor
        context_strength = self.context.value if context_strength is None else context_strength
        self._draw(*self._generate(imbalance_factor, context_strength))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def imbalance_rows(measured: Mapping[str, Mapping], *, paper: Mapping[str, tuple[float, float]] | None = None
                   ) -> list[tuple[str, float, float]]:
    """Rows ``(name, pixel IF, centre IF)``: ours (from :func:`data_utils.imbalance_stats`) then the paper's.

    Parameters
    ----------
    measured : mapping name -> stats dict
        Each holding ``pixel_if`` and ``center_if``.
    paper : mapping name -> (pixel IF, centre IF), optional
        Default :data:`PAPER_IMBALANCE_FACTORS`; paper names get a "(paper)" suffix.
    """
    rows = [(name, float(s["pixel_if"]), float(s["center_if"])) for name, s in measured.items()]
    ref = PAPER_IMBALANCE_FACTORS if paper is None else paper
    rows += [(f"{name} (paper)", float(p), float(c)) for name, (p, c) in ref.items()]
    return rows


def imbalance_table_figure(measured: Mapping[str, Mapping], *, paper=None):
    """Bar chart of pixel vs centre IF: our data sets beside the paper's (Table 12)."""
    from ..plotting_segmentation import imbalance_factor_figure

    return imbalance_factor_figure(imbalance_rows(measured, paper=paper),
                                   title="Pixel versus centre imbalance factor (ours, then CeCo Sec. 4.3 / Table 12)")


def cityscapes_sample_stats(root=None, *, splits: Sequence[str] = ("train", "val"),
                            size: tuple[int, int] = (256, 512)) -> tuple[dict | None, str]:
    """Pixel/centre imbalance statistics of the available Cityscapes images.

    Parameters
    ----------
    root : path-like, optional
        Cityscapes root (holding ``leftImg8bit/`` and ``gtFine/``), or a folder
        holding ``cityscapes/``; default :func:`data_utils.default_data_dir`.
    splits : sequence of str
        Splits to pool.
    size : (int, int)
        Resize of the masks (nearest) before counting.

    Returns
    -------
    (dict or None, str)
        The :func:`data_utils.imbalance_stats` dict (plus ``class_names``) and a
        one-line message; ``None`` and a message saying how to get the data when
        it is missing. Never raises for missing data.
    """
    from pathlib import Path

    from data_utils import CityscapesSubset, default_data_dir, imbalance_stats

    base = Path(root).expanduser() if root is not None else default_data_dir()
    how = ("Cityscapes needs a free account: download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip "
           "from https://www.cityscapes-dataset.com, unzip both into one folder and pass it as the data root "
           "(or set CECO_DATA_DIR).")
    if base is None:
        return None, "No Cityscapes data found; using synthetic data only. " + how
    candidates = [base, base / "cityscapes"]
    cs_root = next((c for c in candidates if (c / "leftImg8bit").is_dir() and (c / "gtFine").is_dir()), None)
    if cs_root is None:
        return None, f"No Cityscapes data under {base}; using synthetic data only. " + how
    masks = []
    names = None
    for split in splits:
        try:
            ds = CityscapesSubset(cs_root, split=split, size=size)
        except (FileNotFoundError, ValueError, RuntimeError):
            continue
        names = getattr(ds, "classes", names)
        for i in range(len(ds)):
            masks.append(_mask_of(ds[i]))
    if not masks:
        return None, f"No Cityscapes image/label pairs found under {cs_root}; using synthetic data only. " + how
    import torch

    stats = imbalance_stats(torch.stack(masks), 19)
    stats["class_names"] = list(names) if names is not None else [str(k) for k in range(19)]
    stats["palette"] = np.asarray(CityscapesSubset.palette)
    msg = (f"Cityscapes sample: {stats['num_images']} images from {cs_root} (splits {', '.join(splits)}), "
           f"masks resized to {size[0]}x{size[1]}.")
    return stats, msg


def _mask_of(item):
    import torch

    mask = item[1] if isinstance(item, (tuple, list)) else item["mask"]
    return torch.as_tensor(np.asarray(mask)).long() if not isinstance(mask, torch.Tensor) else mask.long()


def nc_curves(histories: Mapping[str, Sequence[Mapping]], key: str, *, x_key: str = "epoch",
              normalise_x: bool = True) -> dict:
    """``{run: (x, y)}`` of one NC statistic over training from engine histories.

    ``key`` may be dotted (``"nc.equiangularity_centers"``). With ``normalise_x`` the
    x axis is the fraction of training done (runs of different lengths share one axis,
    as the paper's Fig. 2 plots each data set against its own iterations).
    """
    from .beyond import history_value

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
    from ..plotting_segmentation import COLORS, curves_figure

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


_HOW_TO_GET = {
    "cityscapes": ("register at https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and "
                   "leftImg8bit_trainvaltest.zip, unzip both into one folder and pass it as the data root "
                   "(or set CECO_DATA_DIR to its parent)"),
    "cifar10-lt": ("torchvision can download it: `torchvision.datasets.CIFAR10(root, download=True)`, then pass "
                   "root (or set CECO_DATA_DIR to the folder holding cifar/)"),
    "cifar100-lt": ("torchvision can download it: `torchvision.datasets.CIFAR100(root, download=True)`, then pass "
                    "root (or set CECO_DATA_DIR to the folder holding cifar/)"),
}


def dataset_status(config) -> tuple[bool, str]:
    """Whether the real data of an engine configuration are present, and a one-line message.

    Uses :func:`ceco_lite.engine.data.check_data_available` (the engine's own check), so a
    lesson can say what is missing and how to get it instead of stopping with a traceback.

    Returns
    -------
    (bool, str)
        ``(True, "")`` when the data are there (or synthetic); ``(False, message)`` otherwise.
    """
    from ceco_lite.engine.data import check_data_available

    try:
        check_data_available(config)
    except FileNotFoundError as err:
        first = str(err).splitlines()[0]
        how = _HOW_TO_GET.get(config.dataset, "see the README")
        return False, f"{config.dataset} data not found ({first}). To get it: {how}."
    return True, ""


def accuracy_frequency_correlation(result) -> dict:
    """Pearson correlation of per-class scores with pixel and with centre frequency (supplement Fig. 7).

    Uses the engine's final per-class IoU (in place of the paper's per-class accuracy)
    and the training pixel / centre counts the engine recorded
    (:func:`data_utils.stats.pearson` on ``f_k = n_k / n_max``).

    Returns
    -------
    dict
        ``pearson_pixel``, ``pearson_center`` (NaN when undefined).
    """
    from data_utils.stats import pearson

    m = result.metrics
    info = m.get("data_info") or {}
    acc = np.asarray(m["per_class"], dtype=float)
    pc = np.asarray(info.get("pixel_counts", m.get("class_counts")), dtype=float)
    cc = np.asarray(info.get("center_counts", []), dtype=float)
    out = {"pearson_pixel": float(pearson(acc, pc / max(pc.max(), 1))) if pc.size == acc.size else float("nan")}
    out["pearson_center"] = float(pearson(acc, cc / max(cc.max(), 1))) if cc.size == acc.size else float("nan")
    return out
