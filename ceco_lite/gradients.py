"""Closed-form gradients of the CeCo loss (CeCo paper Sec. 4.4, Eq. 6-8) and minority-collapse measures.

With the sum-reduced loss ``L = - sum_{k present} log p_k(z̄_k)``, where
``p_k'(z̄) = softmax_k'(z̄^T W)`` (Eq. 7) and ``z̄_k`` the class centres (Eq. 3):

* Eq. 6: ``dL/dw_k = (p_k(z̄_k) - 1) z̄_k + sum_{k' != k} p_k(z̄_k') z̄_k'``
  -- a *within-class* part (the ``n_k`` pixels of class k, through ``z̄_k``) and
  a *between-class* part (the ``sum_{k' != k} n_k'`` pixels of the other classes);
* ``dL/dz̄_k = sum_k' p_k'(z̄_k) (w_k' - w_k)`` (from Eq. 7);
* Eq. 8: ``dL/dz_i = sum_k' p_k'(z̄_k) (w_k' - w_k) / n_k`` for ``y_i = k``.

Erratum (docs/conventions.md, section ceco-gradients): for a unit-norm simplex
ETF, ``||w_k' - w_k||^2 = 2K/(K-1)`` (from Eq. 2: ``1 + 1 + 2/(K-1)``); the
paper writes this value for the norm itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .centers import class_centers
from .validation import IGNORE_INDEX, check_choice, check_matrix

__all__ = ["CeCoGradients", "ceco_gradients", "classifier_pairwise_distances", "mean_pairwise_cosine"]


@dataclass(frozen=True)
class CeCoGradients:
    """Closed-form gradients returned by :func:`ceco_gradients` (CeCo paper Eq. 6-8).

    Attributes
    ----------
    loss : Tensor
        0-d, ``sum`` (or ``mean``) over present classes of ``-log p_k(z̄_k)``.
    centers : Tensor
        ``(K, d)`` class centres (Eq. 3); zero rows for absent classes.
    counts : Tensor
        ``(K,)`` int64 pixel counts ``n_k``.
    probs : Tensor
        ``(K, K)``; ``probs[k, k'] = p_k'(z̄_k)`` (Eq. 7); zero rows for absent classes.
    grad_weight : Tensor
        ``(d, K)``; column k = ``dL/dw_k`` (Eq. 6).
    grad_weight_within : Tensor
        ``(d, K)``; column k = ``(p_k(z̄_k) - 1) z̄_k`` (zero if k is absent).
    grad_weight_between : Tensor
        ``(d, K)``; column k = ``sum_{k' != k} p_k(z̄_k') z̄_k'`` over present ``k'``.
        ``grad_weight_within + grad_weight_between == grad_weight``.
    grad_centers : Tensor
        ``(K, d)``; row k = ``dL/dz̄_k = sum_k' p_k'(z̄_k)(w_k' - w_k)``; zero rows for absent classes.
    grad_features : Tensor
        ``(N, d)``; row i = ``dL/dz_i`` (Eq. 8); zero rows for ignored pixels.
    within_norm, between_norm, weight_grad_norm : Tensor
        ``(K,)`` column norms of the three ``(d, K)`` gradients above.
    center_grad_norm : Tensor
        ``(K,)`` norms of ``grad_centers`` rows.
    pixel_grad_norm : Tensor
        ``(K,)`` norm of the gradient of one pixel of class k, ``||dL/dz̄_k|| / n_k``
        (Eq. 8; 0 for absent classes) -- shrinks like ``1/n_k``.
    classifier_distances : Tensor
        ``(K, K)``; ``||w_k - w_k'||`` (the factor of Eq. 8 that minority collapse drives to 0).
    etf_distance : float
        ``||w_k - w_k'||`` of a simplex ETF with the mean column norm ``alpha`` of
        ``weight``: ``alpha * sqrt(2K/(K-1))`` (Eq. 2; corrected value,
        docs/conventions.md, section ceco-gradients).
    paper_distance : float
        The value printed in the paper after Eq. 8 for ``||w_k' - w_k||``:
        ``2K/(K-1)`` -- which is in fact the *squared* distance of a unit-norm ETF.
    """

    loss: Tensor
    centers: Tensor
    counts: Tensor
    probs: Tensor
    grad_weight: Tensor
    grad_weight_within: Tensor
    grad_weight_between: Tensor
    grad_centers: Tensor
    grad_features: Tensor
    within_norm: Tensor
    between_norm: Tensor
    weight_grad_norm: Tensor
    center_grad_norm: Tensor
    pixel_grad_norm: Tensor
    classifier_distances: Tensor
    etf_distance: float
    paper_distance: float


def ceco_gradients(
    features: Tensor,
    labels: Tensor,
    weight: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    reduction: str = "sum",
) -> CeCoGradients:
    """Closed-form gradients of the CeCo loss w.r.t. a (learnable) centre classifier and the pixel features.

    Implements CeCo paper Eq. 6 (``dL/dW``, split into within- and
    between-class parts), Eq. 7 (softmax ``p``) and Eq. 8 (``dL/dz_i``) for the
    loss of :class:`ceco_lite.ceco.CenterCollapseLoss` with ``W = weight``.  All
    quantities are computed in the dtype of ``features`` (use float64 to compare
    with autograd at round-off level).

    Parameters
    ----------
    features : Tensor
        ``(N, d)`` pixel/point features ``z_i``, floating.
    labels : Tensor
        ``(N,)`` integer labels in ``[0, K)`` or ``ignore_index``.
    weight : Tensor
        ``(d, K)`` centre classifier ``W`` (columns = classes), e.g. a simplex ETF.
    num_classes : int
        ``K >= 2`` (must equal ``weight.shape[1]``).
    ignore_index : int or None, default 255
    reduction : {"sum", "mean"}, default "sum"
        ``"sum"``: Eq. 4/6 literally; ``"mean"``: every gradient divided by the
        number of present classes (the default reduction of the loss module).

    Returns
    -------
    CeCoGradients
        See its attributes.  Absent classes give zero rows (centres, ``probs``,
        ``grad_centers``, within part) and never NaN; ``grad_weight`` columns of
        absent classes still hold their between-class part (their classifier is
        pushed away from the present centres).

    Raises
    ------
    TypeError, ValueError
        As :func:`ceco_lite.centers.class_centers`; ``features`` not ``(N, d)``;
        ``weight`` not ``(d, K)`` with matching ``d`` and ``K``, non-finite, or on
        another device; bad ``reduction``.
    """
    weight = check_matrix(weight, "weight")
    if isinstance(features, Tensor) and features.ndim != 2:
        raise ValueError(f"features must have shape (N, d), got {tuple(features.shape)}")
    check_choice(reduction, "reduction", ("sum", "mean"))
    centers, counts = class_centers(features, labels, num_classes, ignore_index=ignore_index)
    K = centers.shape[0]
    d = centers.shape[1]
    if weight.shape != (d, K):
        raise ValueError(f"weight must have shape (d, K) = {(d, K)}, got {tuple(weight.shape)}")
    if weight.device != centers.device:
        raise ValueError(f"weight must be on {centers.device} like features, got {weight.device}")
    W = weight.to(centers.dtype)
    present = counts > 0
    pm = present.to(centers.dtype)
    n_present = max(int(present.sum()), 1)
    factor = 1.0 if reduction == "sum" else 1.0 / n_present

    logits = centers @ W  # (K, K): [k, k'] = z̄_k^T w_k'
    probs = torch.softmax(logits, dim=1) * pm[:, None]  # rows of absent classes zeroed
    logp_diag = torch.log_softmax(logits, dim=1).diagonal()
    loss = -(logp_diag * pm).sum() * factor

    eye = torch.eye(K, dtype=centers.dtype, device=centers.device)
    diag_p = probs.diagonal()  # p_k(z̄_k), 0 for absent k
    # within: column k = (p_k(z̄_k) - 1) z̄_k for present k
    grad_within = centers.T * ((diag_p - 1.0) * pm)[None, :]
    # between: column k = sum_{j != k} p_k(z̄_j) z̄_j  ==  Z̄^T (P with zero diagonal)
    grad_between = centers.T @ (probs * (1.0 - eye))
    grad_within, grad_between = grad_within * factor, grad_between * factor
    grad_weight = grad_within + grad_between

    # dL/dz̄_k = sum_k' p_k'(z̄_k) (w_k' - w_k) = W p(z̄_k) - w_k   (rows of present k)
    grad_centers = (probs @ W.T - W.T * pm[:, None]) * factor
    inv_n = torch.where(present, 1.0 / counts.clamp_min(1).to(centers.dtype), torch.zeros_like(pm))
    per_pixel = grad_centers * inv_n[:, None]  # (K, d)
    idx = labels.long()
    valid = (idx >= 0) & (idx < K)
    grad_features = torch.where(valid[:, None], per_pixel[idx.clamp(0, K - 1)], torch.zeros((), dtype=centers.dtype))

    distances = classifier_pairwise_distances(W)
    alpha = float(W.pow(2).sum(0).mean().sqrt())
    return CeCoGradients(
        loss=loss,
        centers=centers,
        counts=counts,
        probs=probs,
        grad_weight=grad_weight,
        grad_weight_within=grad_within,
        grad_weight_between=grad_between,
        grad_centers=grad_centers,
        grad_features=grad_features,
        within_norm=grad_within.norm(dim=0),
        between_norm=grad_between.norm(dim=0),
        weight_grad_norm=grad_weight.norm(dim=0),
        center_grad_norm=grad_centers.norm(dim=1),
        pixel_grad_norm=per_pixel.norm(dim=1),
        classifier_distances=distances,
        etf_distance=alpha * math.sqrt(2.0 * K / (K - 1)),
        paper_distance=2.0 * K / (K - 1),
    )


def classifier_pairwise_distances(weight: Tensor) -> Tensor:
    """Pairwise distances ``||w_k - w_k'||`` between classifier columns (minority-collapse measure).

    Minority collapse (Fang et al. 2021, cited as [21] in the CeCo paper, Sec. 4.4):
    under extreme imbalance the minority classifiers converge, ``w_k' - w_k -> 0``,
    which kills the Eq. 8 gradient between them; a fixed ETF keeps
    ``||w_k - w_k'|| = alpha sqrt(2K/(K-1))`` for all pairs.

    Parameters
    ----------
    weight : Tensor
        ``(d, K)`` classifier (columns = classes), floating.

    Returns
    -------
    Tensor
        ``(K, K)`` symmetric, zero diagonal, same dtype as ``weight``; computed from
        the differences directly (no ``|a|^2 + |b|^2 - 2ab`` cancellation).

    Raises
    ------
    TypeError, ValueError
        Not a floating ``(d, K)`` tensor, or non-finite.

    Examples
    --------
    >>> from ceco_lite.etf import simplex_etf
    >>> D = classifier_pairwise_distances(simplex_etf(4, 3, generator=torch.Generator().manual_seed(0)))
    >>> round(float(D[0, 1]) ** 2, 4)  # squared distance 2K/(K-1) of a unit-norm ETF
    2.6667
    """
    W = check_matrix(weight, "weight")
    cols = W.T.unsqueeze(0)  # (1, K, d)
    return torch.cdist(cols, cols, compute_mode="donot_use_mm_for_euclid_dist")[0]


def mean_pairwise_cosine(weight: Tensor, classes=None) -> Tensor:
    """Mean cosine similarity over distinct pairs of a subset of classifier columns.

    Used to quantify minority collapse: the mean cosine among the minority
    (tail) classifiers tends to 1 as they collapse; for a simplex ETF every pair has
    cosine ``-1/(K-1)`` (CeCo paper Eq. 2).

    Parameters
    ----------
    weight : Tensor
        ``(d, K)`` classifier (columns = classes), floating, no zero column among ``classes``.
    classes : sequence of int, bool mask or Tensor, optional
        Class indices (or a ``(K,)`` boolean mask) of the subset, at least two
        classes; default all classes.

    Returns
    -------
    Tensor
        0-d, mean of ``cos(w_k, w_k')`` over the ``m(m-1)/2`` distinct pairs.

    Raises
    ------
    TypeError, ValueError
        Bad ``weight``; fewer than two classes, out-of-range or repeated indices;
        zero column.
    """
    W = check_matrix(weight, "weight")
    K = W.shape[1]
    if classes is None:
        idx = torch.arange(K, device=W.device)
    else:
        try:
            idx = torch.as_tensor(classes, device=W.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"classes must be integer indices or a boolean mask, got {classes!r}") from None
        if idx.dtype == torch.bool:
            if idx.shape != (K,):
                raise ValueError(f"classes as a boolean mask must have shape ({K},), got {tuple(idx.shape)}")
            idx = idx.nonzero().flatten()
        elif idx.dtype.is_floating_point or idx.dtype.is_complex:
            raise TypeError("classes must be integer indices or a boolean mask")
        idx = idx.flatten().long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= K):
            raise ValueError(f"classes must lie in [0, {K}), got {idx.tolist()}")
        if idx.unique().numel() != idx.numel():
            raise ValueError(f"classes must not repeat, got {idx.tolist()}")
    if idx.numel() < 2:
        raise ValueError(f"classes must select at least 2 classes, got {idx.numel()}")
    sub = W[:, idx]
    norms = sub.norm(dim=0)
    if bool((norms == 0).any()):
        raise ValueError("weight has a zero column among the selected classes (cosine undefined)")
    U = sub / norms
    G = U.T @ U
    m = G.shape[0]
    iu = torch.triu_indices(m, m, offset=1, device=W.device)
    return G[iu[0], iu[1]].mean()
