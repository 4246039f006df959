"""The synthetic-data explorer of lesson 3: imbalanced, context-correlated segmentation behind two sliders.

The generator is :func:`data_utils.make_synthetic_segmentation`; the per-class pixel and
centre frequencies are :func:`data_utils.imbalance_stats` (CeCo supplement Fig. 6).
"""
from __future__ import annotations

import ipywidgets as W
import numpy as np

from data_utils import imbalance_stats, make_synthetic_segmentation
from data_utils.synthetic import class_names, palette

from ..plotting.segmentation import (class_histogram_figure, mask_grid_figure, update_class_histogram,
                                     update_mask_grid)

__all__ = ["SyntheticDataExplorer"]


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
        return class_names(self.num_classes)

    def _generate(self, imbalance_factor: float, context_strength: float):
        return make_synthetic_segmentation(self.num_images, self.num_classes, self.size, float(imbalance_factor),
                                           seed=self.seed, context_strength=float(context_strength))

    def _draw(self, images, masks) -> None:
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
