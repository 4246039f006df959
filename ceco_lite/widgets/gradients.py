"""The gradient-flow explorer of lesson 4: gradient flow of the centre loss (CeCo paper Sec. 4.4, Eq. 6-8).

* :class:`GradientFlowExplorer` -- sliders for the imbalance of the class sizes
  ``n_k``, the loss weight λ (Eq. 5) and the ETF scale α (Sec. 4.2); per class the
  within- and between-class parts of ``dL/dw_k`` (Eq. 6), the per-pixel gradient
  ``||dL/dz_i||`` (Eq. 8) and ``||w_k - w_k'||`` for a learned and a fixed-ETF
  centre classifier.  The gradients are those of :func:`ceco_lite.ceco_gradients`.
The closed forms are checked against autograd, and the errata measured, by
:mod:`ceco_lite.closed_forms`.

Where the data come from: the "learned" centre classifier and the class means are
the minimiser of the layer-peeled model (:func:`ceco_lite.ufm.train_ufm`) for the
same class sizes -- the state an imbalanced, learned classifier ends in (minority
collapse, lesson 2); the pixel features are the class means plus Gaussian noise.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from ..closed_forms import long_tail_sizes, synthetic_pixel_features
from ..etf import simplex_etf
from ..gradients import ceco_gradients
from ..plotting import geometry as plotting
from ..plotting.style import NOTATION
from ..ufm import train_ufm
from ._busy import BusySign
from ._controls import control_row, slider
from ._figure_view import FigureView
from ._threads import single_thread

__all__ = ["GradientFlowExplorer"]


class GradientFlowExplorer:
    """Per-class gradients of the centre loss L_CR for a learned and a fixed-ETF centre classifier.

    Parameters
    ----------
    num_classes : int, default 6
    dim : int, default 8
    imbalance_factor : float, default 100
        ``n_max / n_min`` of the exponential profile (slider 1 ... 1000, log scale).
    ceco_lambda : float, default 0.5
        λ of Eq. 5; the plotted gradients are those of ``λ L_CR``.
    alpha : float, default 1.0
        Column norm α of the fixed ETF (Sec. 4.2).
    n_max : int, default 2000
        Pixels of the largest class.
    noise : float, default 0.3
        Standard deviation of the pixel features around their class mean.
    seed : int, default 0
    ufm_kwargs : dict, optional
        Passed to :func:`ceco_lite.ufm.train_ufm` (the learned classifier).

    Attributes
    ----------
    widget, if_slider, ceco_lambda_slider, alpha_slider
    figure : plotly.graph_objects.Figure
        Per-class gradient bars (:func:`ceco_lite.plotting.geometry.gradient_bars_figure`).
    distance_figure : plotly.graph_objects.Figure
        ``‖w_k − w_k′‖`` heatmaps (:func:`ceco_lite.plotting.geometry.distance_heatmaps_figure`).
    views : tuple of FigureView
        Show :attr:`figure` and :attr:`distance_figure`.
    headline : ipywidgets.HTML
    grads_learned, grads_fixed : ceco_lite.gradients.CeCoGradients
        Gradients of the current state (not multiplied by λ).
    """

    def __init__(self, num_classes: int = 6, dim: int = 8, *, imbalance_factor: float = 100.0, ceco_lambda: float = 0.5,
                 alpha: float = 1.0, n_max: int = 2000, noise: float = 0.3, seed: int = 0,
                 ufm_kwargs: dict | None = None):
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.n_max = int(n_max)
        self.noise = float(noise)
        self.seed = int(seed)
        self.ufm_kwargs = dict(steps=400, seed=self.seed, weight_decay=5e-2, feature_decay=5e-2)
        self.ufm_kwargs.update(ufm_kwargs or {})
        self._cache: dict = {}
        self.etf_unit = simplex_etf(self.num_classes, self.dim, generator=torch.Generator().manual_seed(self.seed),
                                    dtype=torch.float64)
        self.figure = plotting.gradient_bars_figure(self.num_classes)
        self.distance_figure = plotting.distance_heatmaps_figure(self.num_classes)
        self.if_slider = slider(W.FloatLogSlider, description="IF",
                                tooltip="imbalance factor IF = n_max / n_min of the class sizes",
                                value=imbalance_factor, base=10, min=0, max=3, step=0.05, readout_format=".0f",
                                continuous_update=False)
        self.ceco_lambda_slider = slider(W.FloatSlider, description="λ", tooltip="λ: weight of the centre loss (Eq. 5)",
                                         value=ceco_lambda, min=0.0, max=1.0, step=0.05, continuous_update=False)
        self.alpha_slider = slider(W.FloatSlider, description="α", tooltip="α: column norm of the fixed ETF",
                                   value=alpha, min=0.25, max=4.0, step=0.25, continuous_update=False)
        self.headline = W.HTML()
        self.info = W.HTML()
        self.busy_sign = BusySign()
        self._drawn: dict = {}
        self.if_slider.observe(lambda c: self.update(imbalance_factor=c["new"]), names="value")
        self.ceco_lambda_slider.observe(lambda c: self.update(ceco_lambda=c["new"]), names="value")
        self.alpha_slider.observe(lambda c: self.update(alpha=c["new"]), names="value")
        self.widget = None
        self.views = ()
        self._trained: dict = {}
        with single_thread():
            self._train_slider_values()
        self.update()
        self.views = (FigureView(self.figure), FigureView(self.distance_figure))
        self.widget = W.VBox([control_row(self.if_slider, self.ceco_lambda_slider, self.alpha_slider),
                              self.busy_sign.line, self.headline, *(v.widget for v in self.views), self.info])

    def _slider_values(self) -> list[float]:
        """Every imbalance factor the IF slider can show (its log10 grid)."""
        s = self.if_slider
        count = int(round((s.max - s.min) / s.step)) + 1
        return [float(s.base ** (s.min + i * s.step)) for i in range(count)]

    def _train_slider_values(self) -> None:
        """Train the layer-peeled model for every slider position at once (one batched run of
        :func:`ceco_lite.ufm.train_ufm`, identical to one run per value), so that moving the
        IF slider never waits for training."""
        values = self._slider_values()
        sizes = torch.stack([long_tail_sizes(self.num_classes, v, self.n_max) for v in values])
        batch = train_ufm(sizes.to(torch.float64), self.dim, classifier="learned", **self.ufm_kwargs)
        self._trained = {round(v, 6): batch[i] for i, v in enumerate(values)}

    def _state(self, imbalance_factor: float):
        """Class sizes, pixel features/labels and learned classifier for one imbalance factor (cached)."""
        key = round(float(imbalance_factor), 6)
        if key not in self._cache:
            sizes = long_tail_sizes(self.num_classes, imbalance_factor, self.n_max)
            ufm = self._trained.get(key)
            if ufm is None:  # a value off the slider's grid (set from code)
                ufm = train_ufm(sizes.to(torch.float64), self.dim, classifier="learned", **self.ufm_kwargs)
            feats, labels = synthetic_pixel_features(ufm.class_means(), sizes, noise=self.noise,
                                                     generator=torch.Generator().manual_seed(self.seed))
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (sizes, feats, labels, ufm.classifier)
        return self._cache[key]

    def update(self, imbalance_factor: float | None = None, ceco_lambda: float | None = None,
               alpha: float | None = None) -> None:
        """Recompute the gradients for the given values (defaults: the sliders') and redraw.

        The slider's imbalance factors were all trained when the widget was built; another value
        trains the layer-peeled model once (cached; the busy sign shows);
        a figure that did not change is not sent to the browser again.
        """
        IF = float(imbalance_factor if imbalance_factor is not None else self.if_slider.value)
        key = round(IF, 6)
        if self.widget is not None and key not in self._cache and key not in self._trained:
            with self.busy_sign.busy(self.widget, "training the layer-peeled model for this imbalance factor"):
                self._update(imbalance_factor, ceco_lambda, alpha)
        else:
            self._update(imbalance_factor, ceco_lambda, alpha)

    @single_thread()
    def _update(self, imbalance_factor, ceco_lambda, alpha) -> None:
        IF = float(imbalance_factor if imbalance_factor is not None else self.if_slider.value)
        lam = float(ceco_lambda if ceco_lambda is not None else self.ceco_lambda_slider.value)
        alpha = float(alpha if alpha is not None else self.alpha_slider.value)
        K = self.num_classes
        sizes, feats, labels, w_learned = self._state(IF)
        self.grads_learned = gl = ceco_gradients(feats, labels, w_learned, K)
        self.grads_fixed = gf = ceco_gradients(feats, labels, alpha * self.etf_unit, K)
        d_learned = gl.classifier_distances
        min_pair = float(d_learned[-1, -2])
        plotting.update_gradient_bars(
            self.figure, class_sizes=sizes, within=lam * gl.within_norm, between=lam * gl.between_norm,
            pixel_learned=lam * gl.pixel_grad_norm, pixel_fixed=lam * gf.pixel_grad_norm)
        changed = {}
        if self._drawn.get("learned") != IF:
            changed["dist_learned"] = d_learned
        if self._drawn.get("fixed") != alpha:
            changed["dist_fixed"] = gf.classifier_distances
        if changed:
            plotting.update_distance_heatmaps(self.distance_figure, **changed)
            self._drawn.update(learned=IF, fixed=alpha)
        for view in self.views:
            view.redraw()  # the figures first, then the text: the plots change sooner
        self.headline.value = (
            f"<b>IF = {IF:.0f} ({NOTATION['n_k']} = {int(sizes[0])} … {int(sizes[-1])}), λ = {lam:.2f}, "
            f"α = {alpha:.2f}: ‖w<sub>{K - 2}</sub> − w<sub>{K - 1}</sub>‖ learned {min_pair:.3f} vs fixed ETF "
            f"{gf.etf_distance:.3f}</b>")
        ratio_l = float(gl.pixel_grad_norm[-1] / gl.pixel_grad_norm[0])
        ratio_f = float(gf.pixel_grad_norm[-1] / gf.pixel_grad_norm[0])
        self.info.value = (
            f"Per-pixel gradient of the rarest vs the most frequent class (Eq. 8, ∝ 1/{NOTATION['n_k']}): "
            f"learned ×{ratio_l:.1f}, fixed ETF ×{ratio_f:.1f}; n<sub>max</sub>/n<sub>min</sub> = {int(sizes[0]) / int(sizes[-1]):.0f}. "
            f"Centre-loss value: learned {float(gl.loss):.3f}, fixed ETF {float(gf.loss):.3f}."
        )
