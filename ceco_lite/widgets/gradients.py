"""Lesson 4 widget and checks: gradient flow of the centre loss (CeCo paper Sec. 4.4, Eq. 6-8).

* :class:`GradientFlowExplorer` -- sliders for the imbalance of the class sizes
  ``n_k``, the loss weight λ (Eq. 5) and the ETF scale α (Sec. 4.2); per class the
  within- and between-class parts of ``dL/dw_k`` (Eq. 6), the per-pixel gradient
  ``||dL/dz_i||`` (Eq. 8) and ``||w_k - w_k'||`` for a learned and a fixed-ETF
  centre classifier.  The gradients are those of :func:`ceco_lite.ceco_gradients`.
* :func:`check_closed_forms` -- the closed forms against autograd on
  :class:`ceco_lite.CenterCollapseLoss`.
* :func:`check_errata` -- SPEC §3's errata, numerically.

Where the data come from: the "learned" centre classifier and the class means are
the minimiser of the layer-peeled model (:func:`ceco_lite.ufm.train_ufm`) for the
same class sizes -- the state an imbalanced, learned classifier ends in (minority
collapse, lesson 2); the pixel features are the class means plus Gaussian noise.
"""
from __future__ import annotations

import math

import ipywidgets as W
import torch

from .. import plotting
from . import single_thread
from ..ceco import CenterCollapseLoss
from ..etf import simplex_etf
from ..gradients import ceco_gradients, classifier_pairwise_distances
from ..ufm import train_ufm

__all__ = ["GradientFlowExplorer", "long_tail_sizes", "synthetic_pixel_features", "check_closed_forms",
           "check_errata"]


def long_tail_sizes(num_classes: int, imbalance_factor: float, n_max: int) -> torch.Tensor:
    """Integer class sizes ``n_k = max(1, round(n_max * IF^(-k/(K-1))))`` (SPEC §4 exponential profile).

    Uses :func:`data_utils.profiles.long_tail_profile`.

    Returns
    -------
    Tensor
        ``(K,)`` int64.
    """
    from data_utils.profiles import long_tail_profile

    rel = torch.as_tensor(long_tail_profile(num_classes, imbalance_factor), dtype=torch.float64)
    return (rel * n_max).round().clamp_min(1).to(torch.int64)


def synthetic_pixel_features(class_means: torch.Tensor, class_sizes: torch.Tensor, *, noise: float,
                             generator: torch.Generator | None = None):
    """Pixel features ``z_i = m_{y_i} + noise * eps_i`` around given class means.

    Parameters
    ----------
    class_means : Tensor
        ``(d, K)`` (columns = classes), floating.
    class_sizes : Tensor
        ``(K,)`` integer counts ``n_k >= 1``.
    noise : float
        Standard deviation of the isotropic Gaussian noise.
    generator : torch.Generator, optional

    Returns
    -------
    features : Tensor
        ``(N, d)`` with ``N = sum n_k``, same dtype as ``class_means``.
    labels : Tensor
        ``(N,)`` int64, sorted by class.
    """
    sizes = torch.as_tensor(class_sizes, dtype=torch.int64)
    labels = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    eps = torch.randn(len(labels), class_means.shape[0], generator=generator, dtype=class_means.dtype)
    return class_means.T[labels] + noise * eps, labels


class GradientFlowExplorer:
    """Per-class gradients of the centre loss L_CR for a learned and a fixed-ETF centre classifier.

    Parameters
    ----------
    num_classes : int, default 6
    dim : int, default 8
    imbalance_factor : float, default 100
        ``n_max / n_min`` of the exponential profile (slider 1 ... 1000, log scale).
    lam : float, default 0.5
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
    widget, figure, if_slider, lam_slider, alpha_slider
    grads_learned, grads_fixed : ceco_lite.gradients.CeCoGradients
        Gradients of the current state (not multiplied by λ).
    """

    def __init__(self, num_classes: int = 6, dim: int = 8, *, imbalance_factor: float = 100.0, lam: float = 0.5,
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
        self.lam_slider = W.FloatSlider(value=lam, min=0.0, max=1.0, step=0.05, description="λ (loss weight)",
                                        continuous_update=False, style=style)
        self.alpha_slider = W.FloatSlider(value=alpha, min=0.25, max=4.0, step=0.25, description="α (ETF scale)",
                                          continuous_update=False, style=style)
        self.info = W.HTML()
        self.if_slider.observe(lambda c: self.update(imbalance_factor=c["new"]), names="value")
        self.lam_slider.observe(lambda c: self.update(lam=c["new"]), names="value")
        self.alpha_slider.observe(lambda c: self.update(alpha=c["new"]), names="value")
        self.widget = W.VBox([W.HBox([self.if_slider, self.lam_slider, self.alpha_slider]), self.figure, self.info])
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
    def update(self, imbalance_factor: float | None = None, lam: float | None = None,
               alpha: float | None = None) -> None:
        """Recompute the gradients for the given values (defaults: the sliders') and redraw."""
        IF = float(imbalance_factor if imbalance_factor is not None else self.if_slider.value)
        lam = float(lam if lam is not None else self.lam_slider.value)
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


def check_closed_forms(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                       num_classes: int) -> dict:
    """Largest differences between :func:`ceco_lite.ceco_gradients` and autograd (CeCo paper Eq. 6-8).

    The reference is autograd through :class:`ceco_lite.CenterCollapseLoss`
    (``learnable=True``, ``reduction="sum"``, its ``etf`` set to ``weight``), in float64.

    Parameters
    ----------
    features : Tensor ``(N, d)``; labels : Tensor ``(N,)``; weight : Tensor ``(d, K)``; num_classes : int

    Returns
    -------
    dict
        ``"loss"``, ``"dL/dW (Eq. 6)"``, ``"within + between - dL/dW"``, ``"dL/dz_i (Eq. 8)"``:
        max absolute differences (float), and ``"max |dL/dW|"``, ``"max |dL/dz_i|"`` for scale.
    """
    z = features.detach().to(torch.float64).clone().requires_grad_(True)
    w64 = weight.detach().to(torch.float64)
    loss_fn = CenterCollapseLoss(num_classes, w64.shape[0], reduction="sum", learnable=True).double()
    with torch.no_grad():
        loss_fn.etf.copy_(w64)
    loss = loss_fn(z, labels)
    gz, gw = torch.autograd.grad(loss, [z, loss_fn.etf])
    cf = ceco_gradients(z.detach(), labels, w64, num_classes)
    return {
        "loss": float((cf.loss - loss.detach()).abs()),
        "dL/dW (Eq. 6)": float((cf.grad_weight - gw).abs().max()),
        "within + between - dL/dW": float(
            (cf.grad_weight_within + cf.grad_weight_between - cf.grad_weight).abs().max()),
        "dL/dz_i (Eq. 8)": float((cf.grad_features - gz).abs().max()),
        "max |dL/dW|": float(gw.abs().max()),
        "max |dL/dz_i|": float(gz.abs().max()),
    }


def check_errata(num_classes: int, dim: int, *, alpha: float = 1.0, seed: int = 0) -> dict:
    """SPEC §3's errata of the CeCo paper, measured.

    1. After Eq. 8 the paper writes ``||w_k' - w_k|| = 2K/(K-1)`` for a fixed ETF; for a
       unit-norm ETF (Eq. 2) ``||w_k' - w_k||^2 = 1 + 1 + 2/(K-1) = 2K/(K-1)``, so the norm
       is ``sqrt(2K/(K-1))`` (times α for the scaled ETF).
    2. Eq. 4's denominator sums ``exp(z̄_k'^T w_k')`` over *other centres*; Eq. 7 shows
       the intended softmax over the classes ``k'`` of the *same* centre.  The two differ.

    Returns
    -------
    dict
        ``measured_distance`` (max over pairs of ``||w_k - w_k'||`` of an α-ETF),
        ``min_distance``, ``corrected_distance`` ``α sqrt(2K/(K-1))``, ``paper_distance``
        ``2K/(K-1)``, ``measured_squared_unit`` (squared distance for α = 1);
        ``eq4_literal`` and ``eq4_corrected`` loss values on random centres and
        ``eq4_corrected_module`` (:class:`ceco_lite.CenterCollapseLoss`, sum).
    """
    gen = torch.Generator().manual_seed(seed)
    K = int(num_classes)
    M = simplex_etf(K, dim, scale=alpha, generator=gen, dtype=torch.float64)
    dist = classifier_pairwise_distances(M)
    off = dist[~torch.eye(K, dtype=torch.bool)]
    unit = classifier_pairwise_distances(M / alpha)[~torch.eye(K, dtype=torch.bool)]
    # Eq. 4 literally vs as intended, on random centres (one sample per class, so centres = features)
    centres = torch.randn(K, dim, generator=gen, dtype=torch.float64)
    logits = centres @ M  # [k, k'] = z̄_k^T w_k'
    diag = logits.diagonal()
    eq4_literal = float(-(diag - torch.logsumexp(diag, dim=0)).sum())
    eq4_corrected = float(-(diag - torch.logsumexp(logits, dim=1)).sum())
    loss_fn = CenterCollapseLoss(K, dim, reduction="sum", learnable=False).double()
    with torch.no_grad():
        loss_fn.etf.copy_(M)
    module_value = float(loss_fn(centres, torch.arange(K)))
    return {
        "measured_distance": float(off.max()),
        "min_distance": float(off.min()),
        "corrected_distance": alpha * math.sqrt(2 * K / (K - 1)),
        "paper_distance": 2 * K / (K - 1),
        "measured_squared_unit": float(unit.pow(2).mean()),
        "eq4_literal": eq4_literal,
        "eq4_corrected": eq4_corrected,
        "eq4_corrected_module": module_value,
    }
