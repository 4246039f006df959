"""Simplex equiangular tight frames (ETF) and Lemma 1 of the CeCo paper.

Sources
-------
Zhong, Cui, Yang, Wu, Qi, Zhang, Jia, "Understanding Imbalanced Semantic
Segmentation Through Neural Collapse", CVPR 2023 ("CeCo paper"):

* Def. 1, Eq. 1 -- ``M = sqrt(K/(K-1)) U (I_K - 1 1^T / K)`` with ``U^T U = I``;
* Eq. 2 -- ``m_i^T m_j = K/(K-1) delta_ij - 1/(K-1)``;
* Sec. 4.2 -- the scaled ETF ``w*_k^T w*_k' = alpha^2 (K delta_kk' - 1)/(K-1)``;
* Lemma 1 -- for unit vectors ``max_{k != k'} cos(w_k, w_k') >= -1/(K-1)``,
  with equality iff ``W`` is a simplex ETF (proof: supplement, Appendix B).

Layout convention (docs/conventions.md, section layout): an ETF / classifier
is ``W`` of shape ``(d, K)``, one column per class.  The paper asks ``d >= K``;
a simplex ETF spans only ``K - 1`` dimensions, so ``d >= K - 1`` is supported
(``d = K - 1`` gives the regular simplex, e.g. the tetrahedron for ``K = 4`` in
R^3; docs/conventions.md, section simplex-etf).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .validation import (
    check_bool,
    check_device,
    check_dtype,
    check_float,
    check_generator,
    check_int,
    check_matrix,
    check_num_classes,
    check_positive,
    check_tensor,
)

__all__ = [
    "simplex_etf",
    "etf_gram",
    "check_simplex_etf",
    "ETFCheck",
    "max_pairwise_cosine",
    "lemma1_bound",
    "spread_unit_vectors",
    "SpreadHistory",
]


def _haar_orthonormal(rows: int, cols: int, generator: torch.Generator | None) -> Tensor:
    """Haar-distributed ``(rows, cols)`` matrix with orthonormal columns (float64, CPU).

    QR of a Gaussian matrix with the sign of ``diag(R)`` folded into ``Q``
    (Mezzadri 2007), so the distribution is exactly Haar.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    g = torch.randn(rows, cols, generator=generator, dtype=torch.float64, device=gen_device).cpu()
    q, r = torch.linalg.qr(g, mode="reduced")
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs


# --------------------------------------------------------------------------- ETF
def simplex_etf(
    num_classes: int,
    dim: int,
    *,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random simplex equiangular tight frame (CeCo paper Def. 1, Eq. 1).

    ``M = scale * sqrt(K/(K-1)) * U (I_K - 1_K 1_K^T / K)`` with a Haar-random
    ``U`` (``U^T U = I``).  For ``dim >= K``, ``U`` has shape ``(dim, K)``
    (Eq. 1 literally).  For ``dim == K - 1`` (allowed, docs/conventions.md,
    section simplex-etf) the frame is
    ``scale * sqrt(K/(K-1)) * U V^T`` with ``U`` of shape ``(dim, K-1)`` and
    ``V`` an orthonormal basis of the complement of ``1_K``; since
    ``I - 11^T/K = V V^T`` both give the same Gram matrix.

    Computed in float64 and cast to ``dtype`` at the end.

    Parameters
    ----------
    num_classes : int
        Number of classes ``K >= 2``.
    dim : int
        Ambient dimension ``d >= K - 1``.
    scale : float, default 1.0
        Column norm ``alpha`` of the scaled ETF of CeCo Sec. 4.2
        (``w_k^T w_k' = alpha^2 (K delta_kk' - 1)/(K-1)``).
    generator : torch.Generator, optional
        Source of randomness for ``U`` (reproducible frames).
    dtype : torch.dtype, default torch.float32
        Output dtype (floating).
    device : torch.device or str, optional
        Output device (default CPU).

    Returns
    -------
    Tensor
        ``W`` of shape ``(dim, num_classes)``: columns of norm ``scale`` with
        pairwise cosine ``-1/(K-1)`` (CeCo paper Eq. 2), summing to zero.

    Raises
    ------
    TypeError
        ``num_classes``/``dim`` not ints, ``scale`` not a number,
        ``generator`` not a ``torch.Generator``, ``dtype`` not floating.
    ValueError
        ``num_classes < 2``, ``dim < num_classes - 1``, ``scale <= 0``.

    Examples
    --------
    >>> W = simplex_etf(4, 3, generator=torch.Generator().manual_seed(0))
    >>> W.shape
    torch.Size([3, 4])
    """
    K = check_num_classes(num_classes)
    d = check_int(dim, "dim", minimum=K - 1,
                  hint=f"a simplex ETF of K = {K} vectors spans K - 1 dimensions: dim >= num_classes - 1")
    scale = check_positive(scale, "scale")
    check_generator(generator)
    check_dtype(dtype)
    device = check_device(device)

    factor = scale * math.sqrt(K / (K - 1))
    if d >= K:
        U = _haar_orthonormal(d, K, generator)  # (d, K)
        # U (I - 11^T/K) == U - (row means of U) 1^T, without forming the K x K matrix
        M = U - U.mean(dim=1, keepdim=True)
    else:  # d == K - 1: regular simplex in R^(K-1)
        U = _haar_orthonormal(d, K - 1, generator)  # (K-1, K-1)
        M = U @ _centered_basis(K).T  # (K-1, K)
    M = factor * M
    return M.to(dtype=dtype, device=device)


def _centered_basis(num_classes: int) -> Tensor:
    """Orthonormal basis ``V`` (K, K-1) of ``{x : 1^T x = 0}`` (float64); ``V V^T = I - 11^T/K``."""
    K = num_classes
    C = torch.eye(K, dtype=torch.float64) - 1.0 / K
    q, _ = torch.linalg.qr(C[:, : K - 1], mode="reduced")
    return q


def etf_gram(
    num_classes: int,
    *,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Target Gram matrix of a simplex ETF (CeCo paper Eq. 2 and its scaled form, Sec. 4.2).

    ``G_kk' = scale^2 * (K delta_kk' - 1) / (K - 1)``.

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    scale : float, default 1.0
        Column norm ``alpha``.
    dtype : torch.dtype, default torch.float32
    device : torch.device or str, optional

    Returns
    -------
    Tensor
        Shape ``(K, K)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`simplex_etf` for ``num_classes`` and ``scale``.

    Examples
    --------
    >>> etf_gram(3, dtype=torch.float64)
    tensor([[ 1.0000, -0.5000, -0.5000],
            [-0.5000,  1.0000, -0.5000],
            [-0.5000, -0.5000,  1.0000]], dtype=torch.float64)
    """
    K = check_num_classes(num_classes)
    scale = check_positive(scale, "scale")
    check_dtype(dtype)
    device = check_device(device)
    G = torch.full((K, K), -1.0 / (K - 1), dtype=torch.float64)
    G.fill_diagonal_(1.0)
    return (scale**2 * G).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class ETFCheck:
    """Result of :func:`check_simplex_etf`.

    Attributes
    ----------
    is_etf : bool
        ``max_deviation <= atol``.  ``bool(result)`` gives the same.
    max_deviation : float
        ``max_{k,k'} |G_kk' / s^2 - (K delta_kk' - 1)/(K-1)|`` -- the largest
        deviation of the normalised Gram from Eq. 2 (scale free).
    scale : float
        ``s = sqrt(mean_k ||w_k||^2)``, the scale read from ``W`` (or the one given).
    max_cosine : float
        Largest pairwise cosine (Lemma 1 says ``>= -1/(K-1)``).
    norm_spread : float
        ``(max_k ||w_k|| - min_k ||w_k||) / s`` (0 for an equinorm frame).
    """

    is_etf: bool
    max_deviation: float
    scale: float
    max_cosine: float
    norm_spread: float

    def __bool__(self) -> bool:
        return self.is_etf


def check_simplex_etf(W: Tensor, *, atol: float = 1e-5, scale: float | None = None) -> ETFCheck:
    """Measure how far ``W`` is from a (scaled) simplex ETF (CeCo paper Eq. 2, Sec. 4.2).

    The Gram ``G = W^T W`` is computed in float64 and divided by ``s^2``,
    where ``s`` is ``scale`` if given, else ``sqrt(mean_k ||w_k||^2)`` read from
    ``W``; the result is compared entrywise with Eq. 2,
    ``K/(K-1) delta_kk' - 1/(K-1)``.

    Parameters
    ----------
    W : Tensor
        Shape ``(d, K)``, columns = classes, floating dtype, ``K >= 2``.
    atol : float, default 1e-5
        Tolerance on the maximal deviation for ``is_etf``.  Float32 frames
        built by :func:`simplex_etf` deviate by ~1e-7; float64 by ~1e-15.
    scale : float, optional
        Expected column norm; by default it is read from ``W``.

    Returns
    -------
    ETFCheck
        ``is_etf``, ``max_deviation``, ``scale``, ``max_cosine``, ``norm_spread``;
        ``bool(result) == result.is_etf``.

    Raises
    ------
    TypeError
        ``W`` not a floating tensor.
    ValueError
        ``W`` not 2-D, fewer than 2 columns, non-finite, or all-zero.

    Examples
    --------
    >>> W = simplex_etf(5, 8, scale=2.0, generator=torch.Generator().manual_seed(0))
    >>> result = check_simplex_etf(W)
    >>> bool(result), round(result.scale, 4), round(result.max_cosine, 4)
    (True, 2.0, -0.25)
    >>> bool(check_simplex_etf(torch.eye(3)))  # orthonormal: cosine 0, not -1/2
    False
    """
    W = check_matrix(W, "W", min_columns=2)
    atol = check_float(atol, "atol", minimum=0.0)
    K = W.shape[1]
    G = W.to(torch.float64).T @ W.to(torch.float64)
    norms_sq = torch.diagonal(G)
    if scale is None:
        s2 = float(norms_sq.mean())
        if s2 <= 0:
            raise ValueError("W must not be all zero")
    else:
        s2 = check_positive(scale, "scale") ** 2
    target = etf_gram(K, dtype=torch.float64)
    dev = float((G / s2 - target).abs().max())
    norms = norms_sq.clamp_min(0).sqrt()
    s = math.sqrt(s2)
    cos = G / (norms[:, None] * norms[None, :]).clamp_min(torch.finfo(torch.float64).tiny)
    cos.fill_diagonal_(-math.inf)
    return ETFCheck(
        is_etf=bool(dev <= atol),
        max_deviation=dev,
        scale=s,
        max_cosine=float(cos.max()),
        norm_spread=float((norms.max() - norms.min()) / s),
    )


# --------------------------------------------------------------------------- Lemma 1
def lemma1_bound(num_classes: int) -> float:
    """Lower bound of the largest pairwise cosine of K unit vectors (CeCo paper Lemma 1).

    ``max_{k != k'} cos(w_k, w_k') >= -1/(K-1)``, attained iff the vectors form
    a simplex ETF (supplement Appendix B, from ``||sum_k w_k||^2 >= 0``, Eq. 9
    of the supplement).

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.

    Returns
    -------
    float
        ``-1 / (K - 1)``.

    Examples
    --------
    >>> lemma1_bound(4)
    -0.3333333333333333
    """
    K = check_num_classes(num_classes)
    return -1.0 / (K - 1)


def max_pairwise_cosine(vectors: Tensor) -> Tensor:
    """Largest cosine similarity among distinct columns (the quantity of CeCo Lemma 1).

    Parameters
    ----------
    vectors : Tensor
        Shape ``(d, K)``, columns = vectors, floating, ``K >= 2``, no zero column; or a
        batch ``(B, d, K)`` of such sets.

    Returns
    -------
    Tensor
        0-d tensor (``(B,)`` for a batch; same dtype as ``vectors``, differentiable):
        ``max_{k != k'} w_k^T w_k' / (||w_k|| ||w_k'||)``.  Lemma 1: ``>= -1/(K-1)``.

    Raises
    ------
    TypeError
        Not a floating tensor.
    ValueError
        Not 2-D or 3-D, fewer than 2 columns, non-finite, or a zero column.

    Examples
    --------
    >>> round(float(max_pairwise_cosine(torch.eye(3))), 6)
    0.0
    >>> W = simplex_etf(3, 2, generator=torch.Generator().manual_seed(0))
    >>> round(float(max_pairwise_cosine(W)), 6) == lemma1_bound(3)
    True
    >>> max_pairwise_cosine(torch.stack([torch.eye(3), W.T @ W])).shape
    torch.Size([2])
    """
    check_tensor(vectors, "vectors", kind="floating", ndim=(2, 3), shape="(d, K) or (B, d, K)")
    if vectors.shape[-1] < 2:
        raise ValueError(f"vectors must have at least 2 columns (classes), got shape {tuple(vectors.shape)}")
    if not bool(torch.isfinite(vectors).all()):
        raise ValueError("vectors contains non-finite values")
    V = vectors if vectors.ndim == 3 else vectors[None]
    norms = V.norm(dim=-2, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("vectors must not contain a zero column (cosine undefined)")
    U = V / norms
    G = U.transpose(-1, -2) @ U
    K = G.shape[-1]
    mask = ~torch.eye(K, dtype=torch.bool, device=G.device)
    out = G[:, mask].amax(dim=-1)
    return out if vectors.ndim == 3 else out[0]


class SpreadHistory(NamedTuple):
    """History returned by :func:`spread_unit_vectors` with ``return_history=True``.

    Attributes
    ----------
    max_cosine : Tensor
        Shape ``(steps + 1,)`` float64: the (exact, unsmoothed) largest pairwise
        cosine before the first step and after each step.
    vectors : Tensor
        Shape ``(S, dim, K)``: snapshots of the unit vectors, taken at ``snapshot_steps``.
    snapshot_steps : Tensor
        Shape ``(S,)`` int64: step index of each snapshot (0 = initial vectors).
    """

    max_cosine: Tensor
    vectors: Tensor
    snapshot_steps: Tensor


def spread_unit_vectors(
    num_classes: int,
    dim: int,
    *,
    steps: int = 300,
    lr: float = 0.15,
    temperature: tuple[float, float] = (0.2, 5e-4),
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
    return_history: bool = False,
    snapshot_every: int = 10,
    dtype: torch.dtype = torch.float64,
):
    """Spread K unit vectors apart by minimising their largest pairwise cosine (CeCo Lemma 1, numerically).

    Projected gradient descent on the unit sphere of the smoothed maximum

    ``f_tau(V) = tau * log sum_{k != k'} exp(cos(v_k, v_k') / tau)``,

    whose exact gradient is ``2 V P`` with ``P`` the softmax weights of the
    off-diagonal cosines; the radial part of each column's gradient is removed
    (Riemannian gradient on the sphere) and the columns are renormalised after
    each step.  ``tau`` is annealed geometrically from ``temperature[0]`` to
    ``temperature[1]``, so ``f_tau`` tends to the true maximum.  For every
    ``tau`` the minimisers of ``f_tau`` are exactly the simplex ETFs (Jensen's
    inequality plus ``sum_{k != k'} cos >= -K``, supplement Eq. 9), so the
    iterates converge to a simplex ETF -- the equality case of Lemma 1 -- when
    ``dim >= K - 1``.

    The step is ``lr * tau * K (K-1) * grad`` (the curvature of ``f_tau`` near an
    ETF scales like ``1 / (tau K (K-1))``), so one ``lr`` suits every K; for
    ``K = 2`` the factor ``tau`` is dropped (a single pair: no curvature from the
    softmax).  For ``dim == 1`` the sphere is ``{-1, +1}`` (no tangent space):
    the vectors get alternating signs, which is optimal (``v_2 = -v_1`` for
    ``K = 2``; for ``K > 2`` every arrangement has a cosine of 1).

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    dim : int
        Dimension ``d >= K - 1`` (``d < K - 1`` is allowed too but then no ETF exists).
    steps : int, default 300
        Number of gradient steps.
    lr : float, default 0.15
        Step size (dimensionless, see above).
    temperature : (float, float), default (0.2, 5e-4)
        Start and end temperature ``tau`` of the smoothed max.
    generator : torch.Generator, optional
        Randomness for the initial vectors (ignored if ``init`` is given).
    init : Tensor, optional
        Initial vectors ``(dim, K)``; normalised to unit columns.
    return_history : bool, default False
        Also return a :class:`SpreadHistory`.
    snapshot_every : int, default 10
        Keep the vectors every this many steps in the history (plus the last).
    dtype : torch.dtype, default torch.float64

    Returns
    -------
    Tensor or (Tensor, SpreadHistory)
        Unit vectors ``(dim, K)``; with ``return_history=True`` also the history.

    Raises
    ------
    TypeError, ValueError
        Bad ``num_classes``, ``dim``, ``steps``, ``lr``, ``init``.

    Notes
    -----
    With the defaults (300 steps) the maximal deviation from Eq. 2 reaches
    float64 round-off for 3 <= K <= 100 from random starts.
    """
    K = check_num_classes(num_classes)
    dim = check_int(dim, "dim", minimum=1)
    steps = check_int(steps, "steps", minimum=0)
    lr = check_positive(lr, "lr")
    snapshot_every = check_int(snapshot_every, "snapshot_every", minimum=1)
    return_history = check_bool(return_history, "return_history")
    try:
        tau0, tau1 = temperature
    except (TypeError, ValueError):
        raise TypeError(f"temperature must be a pair (start, end) of positive floats, got {temperature!r}") from None
    tau0, tau1 = check_positive(tau0, "temperature"), check_positive(tau1, "temperature")
    check_generator(generator)
    check_dtype(dtype)

    if init is not None:
        V = check_matrix(init, "init", min_columns=2)
        if V.shape != (dim, K):
            raise ValueError(f"init must have shape (dim, num_classes) = {(dim, K)}, got {tuple(V.shape)}")
        V = V.detach().to(dtype=dtype, device="cpu").clone()
    else:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        V = torch.randn(dim, K, generator=generator, dtype=dtype, device=gen_device).cpu()
    norms = V.norm(dim=0)
    if bool((norms == 0).any()):
        raise ValueError("init must not contain a zero column")
    V = V / norms

    offdiag = ~torch.eye(K, dtype=torch.bool)
    neg_inf_diag = torch.zeros(K, K, dtype=dtype)
    neg_inf_diag[~offdiag] = -math.inf

    hist_max = torch.empty(steps + 1, dtype=torch.float64)
    snaps, snap_steps = [], []
    with torch.no_grad():
        for t in range(steps + 1):
            G = V.T @ V
            Gm = G + neg_inf_diag
            hist_max[t] = Gm.max()
            if return_history and (t % snapshot_every == 0 or t == steps):
                snaps.append(V.clone())
                snap_steps.append(t)
            if t == steps:
                break
            frac = t / max(steps - 1, 1)
            tau = tau0 * (tau1 / tau0) ** frac
            if dim == 1:  # S^0 = {-1, +1}: no tangent space; alternate signs (optimal: v_2 = -v_1 for K = 2)
                alt = torch.ones(1, K, dtype=V.dtype)
                alt[:, 1::2] = -1.0
                V = V[:, :1] * alt
                continue
            P = torch.softmax((Gm / tau).reshape(-1), dim=0).reshape(K, K)
            grad = V @ (P + P.T)
            # Riemannian gradient on the sphere: remove the radial component of each column
            grad -= V * (V * grad).sum(dim=0, keepdim=True)
            V = V - (lr * K * (K - 1) * (tau if K > 2 else 1.0)) * grad
            V = V / V.norm(dim=0)
    if not return_history:
        return V
    return V, SpreadHistory(
        max_cosine=hist_max,
        vectors=torch.stack(snaps) if snaps else torch.empty(0, dim, K, dtype=dtype),
        snapshot_steps=torch.tensor(snap_steps, dtype=torch.int64),
    )
