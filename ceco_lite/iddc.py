"""Cluster-size regularisers of IDDC (Liu, Zhang & Tang, IJCV 2024; docs/conventions.md, section iddc).

IDDC (Imbalance-Aware Dense Discriminative Clustering) trains an unsupervised
segmentation model whose per-pixel softmax assigns pixels to ``C`` clusters. To
keep clusters from degenerating (collapsing to empty) *without* forcing them to
equal sizes -- real pixel classes are imbalanced -- it adds a regulariser built
on the Weibull density with shape ``k < 1``, which falls monotonically: a
near-empty cluster (``x → 0``) is punished hard, while clusters of moderately
different sizes cost almost the same.

The formula follows the public IDDC code (``losses/contrast_loss.py`` of
github.com/MY-LIU100101/IDDC, ``balance_losses_wb``): ``λ = 5``, ``k = 0.3``,
``x = x/max(x) + 1e-6``; the released training script weights the term by
0.4/50. :func:`uniform_prior_regularizer` is the usual entropy / uniform-prior
alternative, for comparison.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .validation import check_positive

__all__ = ["weibull_density", "weibull_imbalance_regularizer", "uniform_prior_regularizer"]


def weibull_density(x: Any, *, scale: float = 5.0, k: float = 0.3) -> Any:
    """Weibull probability density ``f(x) = (k/s)(x/s)^(k−1) exp(−(x/s)^k)`` (docs/conventions.md, section iddc).

    The building block of the IDDC regulariser. For shape ``k < 1`` it is
    strictly decreasing on ``x > 0`` and tends to ``+inf`` as ``x → 0``.

    Parameters
    ----------
    x : torch.Tensor, numpy.ndarray or float
        Points ``x >= 0`` (``x = 0`` gives ``inf`` for ``k < 1``, ``k/s`` for
        ``k = 1``, 0 for ``k > 1``). A tensor stays a tensor (same dtype,
        device, differentiable); anything else is computed in float64 and
        returned as a numpy array (a float for a scalar input).
    scale : float, default 5.0
        Scale ``s > 0`` (the IDDC code calls it λ and uses 5; named ``scale`` here because λ is the CeCo weight).
    k : float, default 0.3
        Shape ``k > 0`` (IDDC code: 0.3).

    Returns
    -------
    torch.Tensor, numpy.ndarray or float
        ``f(x)``, same shape as ``x``.

    Raises
    ------
    TypeError
        ``scale`` or ``k`` not a real number; ``x`` of a non-numeric type.
    ValueError
        ``scale`` or ``k`` not finite and positive; ``x`` negative or NaN.

    Examples
    --------
    >>> f = weibull_density([0.1, 1.0, 2.0])  # shape k = 0.3 < 1: strictly decreasing
    >>> bool(f[0] > f[1] > f[2])
    True
    >>> round(weibull_density(1.0, scale=1.0, k=1.0), 6)  # k = 1: the exponential density
    0.367879
    """
    scale = check_positive(scale, "scale")
    k = check_positive(k, "k")
    is_tensor = isinstance(x, torch.Tensor)
    if is_tensor:
        t = x if x.is_floating_point() else x.to(torch.get_default_dtype())
    else:
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"x must be a tensor, array or number, got {type(x).__name__}") from err
    if bool(torch.isnan(t).any()) or bool((t < 0).any()):
        raise ValueError("x must be >= 0 (the Weibull density lives on x >= 0) and not NaN")
    u = t / scale
    f = (k / scale) * u.pow(k - 1.0) * torch.exp(-u.pow(k))
    if is_tensor:
        return f
    out = f.numpy()
    return float(out) if out.ndim == 0 else out


def _cluster_sizes(probs: Any) -> torch.Tensor:
    """Validate ``probs`` and return ``x̄_c`` = mean over all but dim 1, shape ``(C,)``."""
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must have a floating dtype, got {probs.dtype}")
    if probs.ndim < 2 or probs.shape[1] < 2 or probs.numel() == 0:
        raise ValueError(
            "probs must have shape (B, C, H, W) (or (B, C, ...)) with C >= 2 clusters on dim 1, "
            f"got {tuple(probs.shape)}"
        )
    work = probs.float() if probs.dtype in (torch.float16, torch.bfloat16) else probs
    tol = 1e-2 if probs.dtype in (torch.float16, torch.bfloat16) else 1e-4
    with torch.no_grad():
        if not bool(torch.isfinite(work).all()):
            raise ValueError("probs contain NaN or Inf")
        if bool((work < -tol).any()) or bool(((work.sum(dim=1) - 1.0).abs() > tol).any()):
            raise ValueError(
                "probs must be probabilities over dim 1 (non-negative, summing to 1): pass "
                "logits.softmax(dim=1), not logits"
            )
    dims = [0] + list(range(2, probs.ndim))
    return work.mean(dim=dims)


def weibull_imbalance_regularizer(
    probs: torch.Tensor, *, scale: float = 5.0, k: float = 0.3, eps: float = 1e-6
) -> torch.Tensor:
    """IDDC's Weibull cluster-size regulariser (docs/conventions.md, section iddc; public IDDC code).

    ``x_c`` = mean over batch and pixels of the probability of cluster ``c``;
    ``x = x / max(x) + eps``; ``R = (1/C) Σ_c f(x_c)`` with ``f`` the Weibull
    density of :func:`weibull_density`. With ``k < 1`` the largest cluster
    costs ``f(1 + eps)`` and smaller clusters cost more, sharply so near 0:
    degenerate (empty) clusters are punished while unequal sizes are allowed.
    The gradient flows through the ``max`` as in the released code.

    Parameters
    ----------
    probs : torch.Tensor, shape (B, C, H, W) (any (B, C, ...) works)
        Softmax probabilities over the ``C >= 2`` clusters on dim 1, floating
        (half/bfloat16 are computed in float32).
    scale : float, default 5.0
        Weibull scale ``s`` (λ in the IDDC code).
    k : float, default 0.3
        Weibull shape ``k``.
    eps : float, default 1e-6
        Added after max-normalisation (keeps ``x > 0``).

    Returns
    -------
    torch.Tensor
        Scalar, differentiable w.r.t. ``probs``. The released code multiplies
        it by 0.4/50 in the total loss; apply your weight outside.

    Raises
    ------
    TypeError
        ``probs`` not a floating tensor; ``scale``, ``k``, ``eps`` not numbers.
    ValueError
        ``probs`` with fewer than 2 dims or clusters, non-finite, negative, or not
        summing to 1 over dim 1 (tolerance 1e-4; 1e-2 for half/bfloat16);
        non-positive ``scale``, ``k`` or ``eps``.
    """
    eps = check_positive(eps, "eps")
    x = _cluster_sizes(probs)
    x = x / x.max() + eps
    return weibull_density(x, scale=scale, k=k).mean()


def uniform_prior_regularizer(probs: torch.Tensor) -> torch.Tensor:
    """Uniform-prior (entropy) cluster-size regulariser, for comparison with IDDC.

    ``R = KL(x̄ ‖ U_C) = Σ_c x̄_c log x̄_c + log C = log C − H(x̄)``, with
    ``x̄_c`` the mean over batch and pixels of the probability of cluster
    ``c`` (so ``Σ_c x̄_c = 1``). ``R >= 0``, and ``R = 0`` exactly at equal
    cluster sizes: unlike the Weibull regulariser it pulls *every* cluster
    towards size ``1/C``, imbalanced classes included. The IDDC code's
    ``balance_losses`` (``mean_c x̄_c log x̄_c``) equals ``(R − log C)/C``: same
    minimiser and gradients up to the factor ``1/C``.

    Parameters
    ----------
    probs : torch.Tensor, shape (B, C, H, W) (any (B, C, ...) works)
        Softmax probabilities over ``C >= 2`` clusters on dim 1.

    Returns
    -------
    torch.Tensor
        Scalar ``>= 0`` (nats), differentiable w.r.t. ``probs``.

    Raises
    ------
    TypeError, ValueError
        As :func:`weibull_imbalance_regularizer` for ``probs``.
    """
    x = _cluster_sizes(probs)
    x = x / x.sum()  # removes the O(tol) deviation from 1 of the validated input
    return torch.special.xlogy(x, x).sum() + float(np.log(x.numel()))
