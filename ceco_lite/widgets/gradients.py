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
from ..ufm import train_ufm
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
    widget, figure, if_slider, ceco_lambda_slider, alpha_slider
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
        self.figure = plotting.gradient_flow_figure(self.num_classes)
        style = {"description_width": "initial"}
        self.if_slider = W.FloatLogSlider(value=imbalance_factor, base=10, min=0, max=3, step=0.05,
                                          description="imbalance factor n_max/n_min", readout_format=".0f",
                                          continuous_update=False, style=style)
        self.ceco_lambda_slider = W.FloatSlider(value=ceco_lambda, min=0.0, max=1.0, step=0.05, description="λ (loss weight)",
                                        continuous_update=False, style=style)
        self.alpha_slider = W.FloatSlider(value=alpha, min=0.25, max=4.0, step=0.25, description="α (ETF scale)",
                                          continuous_update=False, style=style)
        self.info = W.HTML()
        self.if_slider.observe(lambda c: self.update(imbalance_factor=c["new"]), names="value")
        self.ceco_lambda_slider.observe(lambda c: self.update(ceco_lambda=c["new"]), names="value")
        self.alpha_slider.observe(lambda c: self.update(alpha=c["new"]), names="value")
        self.widget = W.VBox([W.HBox([self.if_slider, self.ceco_lambda_slider, self.alpha_slider]), self.figure, self.info])
        self.update()

    def _state(self, imbalance_factor: float):
        """Class sizes, pixel features/labels and learned classifier for one imbalance factor (cached)."""
        key = round(float(imbalance_factor), 6)
        if key not in self._cache:
            sizes = long_tail_sizes(self.num_classes, imbalance_factor, self.n_max)
            ufm = train_ufm(sizes.to(torch.float64), self.dim, classifier="learned", **self.ufm_kwargs)
            feats, labels = synthetic_pixel_features(ufm.class_means(), sizes, noise=self.noise,
                                                     generator=torch.Generator().manual_seed(self.seed))
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (sizes, feats, labels, ufm.classifier)
        return self._cache[key]

    @single_thread()
    def update(self, imbalance_factor: float | None = None, ceco_lambda: float | None = None,
               alpha: float | None = None) -> None:
        """Recompute the gradients for the given values (defaults: the sliders') and redraw."""
        IF = float(imbalance_factor if imbalance_factor is not None else self.if_slider.value)
        lam = float(ceco_lambda if ceco_lambda is not None else self.ceco_lambda_slider.value)
        alpha = float(alpha if alpha is not None else self.alpha_slider.value)
        K = self.num_classes
        sizes, feats, labels, w_learned = self._state(IF)
        self.grads_learned = gl = ceco_gradients(feats, labels, w_learned, K)
        self.grads_fixed = gf = ceco_gradients(feats, labels, alpha * self.etf_unit, K)
        d_learned = gl.classifier_distances
        min_pair = float(d_learned[-1, -2])
        title = (f"IF = {IF:.0f} (n_k = {int(sizes[0])} … {int(sizes[-1])}), λ = {lam:.2f}, α = {alpha:.2f}: "
                 f"‖w_{K - 2} − w_{K - 1}‖ learned {min_pair:.3f} vs ETF {gf.etf_distance:.3f}")
        plotting.update_gradient_flow(
            self.figure, class_sizes=sizes, within=lam * gl.within_norm, between=lam * gl.between_norm,
            feature_grad_learned=lam * gl.pixel_grad_norm, feature_grad_fixed=lam * gf.pixel_grad_norm,
            dist_learned=d_learned, dist_fixed=gf.classifier_distances, title=title)
        ratio_l = float(gl.pixel_grad_norm[-1] / gl.pixel_grad_norm[0])
        ratio_f = float(gf.pixel_grad_norm[-1] / gf.pixel_grad_norm[0])
        self.info.value = (
            f"Per-pixel gradient of the rarest vs the most frequent class (Eq. 8, ∝ 1/n_k): "
            f"learned ×{ratio_l:.1f}, fixed ETF ×{ratio_f:.1f}; n_max/n_min = {int(sizes[0]) / int(sizes[-1]):.0f}. "
            f"Centre-loss value: learned {float(gl.loss):.3f}, fixed ETF {float(gf.loss):.3f}."
        )




