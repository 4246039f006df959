"""Numerical checks of the CeCo paper's closed forms (Eq. 6-8) and errata, on toy pixel features.

* :func:`long_tail_sizes` / :func:`synthetic_pixel_features` -- long-tailed class sizes and
  Gaussian pixel features around given class means;
* :func:`check_closed_forms` -- :func:`ceco_lite.ceco_gradients` against autograd;
* :func:`closed_form_verdict` -- the sentence a lesson shows about such a check, computed from it;
* :func:`check_errata` -- the errata of docs/conventions.md, sections ceco-loss and ceco-gradients, measured.
"""
from __future__ import annotations

import math

import torch

from data_utils.profiles import long_tail_profile

from .ceco import CenterCollapseLoss
from .etf import simplex_etf
from .gradients import ceco_gradients, classifier_pairwise_distances
from .verdicts import Verdict

__all__ = ["long_tail_sizes", "synthetic_pixel_features", "check_closed_forms", "closed_form_verdict",
           "check_errata", "DIFFERENCE_KEYS", "ROUND_OFF"]

#: keys of :func:`check_closed_forms` that are differences |closed form − autograd|
DIFFERENCE_KEYS = ("loss", "dL/dW (Eq. 6)", "within + between - dL/dW", "dL/dz_i (Eq. 8)")
#: a difference up to this size (relative to the largest gradient entry) counts as float64 round-off
ROUND_OFF = 1e-10


def long_tail_sizes(num_classes: int, imbalance_factor: float, n_max: int) -> torch.Tensor:
    """Integer class sizes ``n_k = max(1, round(n_max * IF^(-k/(K-1))))`` (the exponential long-tailed profile).

    Uses :func:`data_utils.profiles.long_tail_profile` (docs/conventions.md, section imbalance-factor).

    Returns
    -------
    Tensor
        ``(K,)`` int64.
    """
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


def closed_form_verdict(report: dict, *, name: str = "the closed forms", tolerance: float = ROUND_OFF) -> Verdict:
    """The statement "the closed forms agree with autograd to round-off", computed from a :func:`check_closed_forms` report.

    The largest of the differences :data:`DIFFERENCE_KEYS`, divided by the scale
    ``max(1, max |dL/dW|, max |dL/dz_i|)``, is compared with ``tolerance``; the verdict's
    relation is ``"less"`` (agreement) or ``"greater"`` (a real mismatch), and its text says
    which, with the numbers.

    Parameters
    ----------
    report : dict
        From :func:`check_closed_forms`.
    name : str
        What was checked (start of the sentence's subject).
    tolerance : float, default :data:`ROUND_OFF`

    Returns
    -------
    ceco_lite.verdicts.Verdict
        ``values = {"relative difference": r, "round-off tolerance": tolerance}``;
        :func:`ceco_lite.verdicts.holds` re-checks it.

    Examples
    --------
    >>> r = {"loss": 0.0, "dL/dW (Eq. 6)": 2e-17, "within + between - dL/dW": 1e-17, "dL/dz_i (Eq. 8)": 3e-18,
    ...      "max |dL/dW|": 0.5, "max |dL/dz_i|": 0.01}
    >>> v = closed_form_verdict(r)
    >>> v.relation, "agree" in v.text
    ('less', True)
    """
    scale = max(1.0, float(report["max |dL/dW|"]), float(report["max |dL/dz_i|"]))
    worst_key = max(DIFFERENCE_KEYS, key=lambda k: float(report[k]))
    rel = float(report[worst_key]) / scale
    values = {"relative difference": rel, "round-off tolerance": float(tolerance)}
    if rel < tolerance:
        relation = "less"
        text = (f"In this check, {name} agree with autograd to float64 round-off: the largest difference "
                f"({worst_key}) is {float(report[worst_key]):.1e}, {rel:.1e} of the gradient scale "
                f"(tolerance {tolerance:.0e}).")
    else:
        relation = "greater"
        text = (f"In this check, {name} do NOT agree with autograd: the difference in {worst_key} is "
                f"{float(report[worst_key]):.1e}, {rel:.1e} of the gradient scale (tolerance {tolerance:.0e}).")
    return Verdict("relative difference", values, relation, "relative difference", 0.0, text)


def check_errata(num_classes: int, dim: int, *, alpha: float = 1.0, seed: int = 0) -> dict:
    """The CeCo paper's errata (docs/conventions.md, sections ceco-loss and ceco-gradients), measured.

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
