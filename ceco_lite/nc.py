"""Neural-collapse statistics (NC1--NC4) for classification and segmentation.

Definitions follow Papyan, Han & Donoho (PNAS 2020) and the CeCo paper
(Zhong et al., CVPR 2023, Sec. 3.2, Fig. 2, 4, 5), with these conventions:

* samples whose label equals ``ignore_index`` (255) are dropped;
* classes with ``n_k = 0`` are dropped from *every* statistic and ``K`` is the
  number of classes present;
* the global mean ``z_G`` is the sample-weighted mean of all kept samples
  (``global_mean="samples"``, the paper's definition) or the unweighted mean of
  the class means (``global_mean="classes"``, the convention of Papyan et al.'s
  original code and of ``rhubarbwu/neural-collapse``);
* ``ẑ_k = (z̄_k − z_G)/‖z̄_k − z_G‖`` and ``ŵ_k = w_k/‖w_k‖`` (classifiers are
  not centred);
* standard deviations are unbiased (``ddof = 1``).

Beside these, :meth:`NCAccumulator.compute` returns the statistics of the public
neural-collapse libraries -- the class-distance normalised variance (CDNV,
Galanti et al. 2022), the ETF-structure and self-duality errors (Kothapalli
2023; ``tding1/Neural-Collapse``; ``rhubarbwu/neural-collapse``), the
hyperspherical-uniformity kernels of Liu et al. (2023), the trace quotient NC1
of Tirer et al. (2023), NC4 with a classifier bias and the bias residual --
each defined, with its source and the library's global-mean convention, in
``docs/conventions.md`` ("Neural-collapse statistics from other libraries").

Segmentation produces millions of pixel features, so everything is computed by
streaming (:class:`NCAccumulator`): per-class sums ``(K, d)``, counts ``(K,)``,
per-class sums of squared norms ``(K,)`` and one pooled second-moment matrix
``(d, d)`` in float64. The one-shot function :func:`nc_metrics` feeds its input
through the same accumulator, so the two can never disagree.

Layout: a classifier ``W`` has shape ``(d, K)`` -- one column per class. A
module holding an ``nn.Linear(d, K)`` passes ``linear.weight.T`` (and
``linear.bias`` as ``bias``).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .centers import class_sums
from .validation import (
    check_bias,
    check_choice,
    check_classifier,
    check_ignore_index,
    check_int,
    check_num_classes,
    check_tensor_like,
)

__all__ = ["nc_metrics", "NCAccumulator", "delta_inter", "delta_intra"]

_GLOBAL_MEAN_OPTIONS = ("samples", "classes")
# rows converted to float64 at a time inside NCAccumulator.update (bounds the
# temporary memory to about 32 MiB whatever the batch size)
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- #
# input layout
# --------------------------------------------------------------------------- #
def _columns(
    features: Any,
    labels: Any,
    num_classes: int,
    ignore_index: int | None,
    dim: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(features, labels)``; return channel-first views without copying.

    Returns ``X`` of shape ``(B, d, n)`` (input dtype and device; ``(N, d)``
    input becomes the transposed view ``(1, d, N)``, ``(B, d, H, W)`` the view
    ``(B, d, H*W)``) and ``Y`` of shape ``(B, n)`` (int64, same device). Checks
    dtypes, shapes, ``dim``, label values and finiteness of the kept samples
    before anything is accumulated.
    """
    features = check_tensor_like(features, "features", kind="floating")
    labels = check_tensor_like(labels, "labels", kind="integer")
    if features.ndim == 2:
        if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                "features of shape (N, d) need labels of shape (N,); got features "
                f"{tuple(features.shape)} and labels {tuple(labels.shape)}"
            )
        x = features.T.unsqueeze(0)
    elif features.ndim == 4:
        b, _, h, w = features.shape
        if tuple(labels.shape) != (b, h, w):
            raise ValueError(
                "features of shape (B, d, H, W) need labels of shape (B, H, W); got features "
                f"{tuple(features.shape)} and labels {tuple(labels.shape)}"
            )
        x = features.reshape(b, features.shape[1], h * w)
    else:
        raise ValueError(
            f"features must have shape (N, d) or (B, d, H, W), got {tuple(features.shape)}"
        )
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"features have feature dimension {x.shape[1]}, expected dim={dim}")
    y = labels.to(device=x.device, dtype=torch.int64).reshape(x.shape[0], x.shape[2])
    keep = _kept(y, ignore_index)
    bad = keep & ((y < 0) | (y >= num_classes))
    if bool(bad.any()):
        value = int(y[bad][0])
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}) or equal ignore_index="
            f"{ignore_index}; found {value}"
        )
    if not bool(torch.isfinite(x).all()) and not bool((torch.isfinite(x).all(dim=1) | ~keep).all()):
        raise ValueError("features contain NaN or Inf (at a non-ignored sample)")
    return x, y


def _kept(y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Boolean mask of the samples that are not ignored."""
    if ignore_index is None:
        return torch.ones_like(y, dtype=torch.bool)
    return y != ignore_index


def _chunks(x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Yield ``(x_c (d, m) float64, y_c (m,))`` pieces of at most ~32 MiB on ``device``."""
    step = max(1, _CHUNK_ELEMENTS // x.shape[1])
    for b in range(x.shape[0]):
        for start in range(0, x.shape[2], step):
            yield (
                x[b, :, start : start + step].to(device=device, dtype=torch.float64),
                y[b, start : start + step].to(device),
            )


def _overflow_error(what: str) -> ValueError:
    return ValueError(
        f"features are too large for the statistics: {what} overflow float64 "
        f"(largest float64 {torch.finfo(torch.float64).max:.3g}); rescale the features "
        "(every statistic except delta_intra is scale-invariant)"
    )


# --------------------------------------------------------------------------- #
# the statistics (each defined once)
# --------------------------------------------------------------------------- #
def _pairwise_cosine_stats(vectors: torch.Tensor) -> tuple[float, float]:
    """Equiangularity and maximal-angle statistics of ``K`` vectors.

    The one implementation of the pairwise-cosine statistics (CeCo paper Fig. 2
    / Fig. 4): with ``c_kk' = cos(v_k, v_k')`` over the ``K(K−1)/2`` distinct
    pairs,

    * equiangularity = unbiased std of ``c_kk'`` (0.0 when ``K = 2``: a single
      pair has no spread);
    * maximal angle = mean ``|c_kk' + 1/(K−1)|`` -- this is also In2NeCT's
      ``Δ_Inter`` (Table 2) when the vectors are the centred class means, and
      the "mutual coherence" of Papyan et al.'s code.

    Parameters
    ----------
    vectors : torch.Tensor, shape (K, d), float64
        One row per class, ``K >= 2``, no zero rows.

    Returns
    -------
    (equiangularity, max_angle) : tuple of float
    """
    k = vectors.shape[0]
    unit = vectors / vectors.norm(dim=1, keepdim=True)
    cos = _upper(unit @ unit.T)
    equiangularity = float(cos.std(unbiased=True)) if cos.numel() > 1 else 0.0
    max_angle = float((cos + 1.0 / (k - 1)).abs().mean())
    return equiangularity, max_angle


def _upper(square: torch.Tensor) -> torch.Tensor:
    """Entries ``(k, k')`` with ``k < k'`` of a ``(K, K)`` matrix, row by row."""
    k = square.shape[0]
    iu = torch.triu_indices(k, k, offset=1, device=square.device)
    return square[iu[0], iu[1]]


def _equinorm(vectors: torch.Tensor) -> float:
    """Equinorm = unbiased std / mean of the row norms of ``vectors``."""
    norms = vectors.norm(dim=1)
    return float(norms.std(unbiased=True) / norms.mean())


def _nc1(sigma_w: torch.Tensor, centred: torch.Tensor) -> float:
    """NC1 = Tr(Σ_W Σ_B^†)/K (Papyan et al. 2020).

    ``Σ_B = (1/K) M̃ M̃^T`` with ``M̃`` the centred class means (rows of
    ``centred``, shape ``(K, d)``). ``Σ_B`` has rank ``<= K−1`` (the centred
    means sum to zero, with weights ``n_k`` for the sample-weighted global
    mean), so the pseudo-inverse keeps the top ``min(K−1, d)`` singular
    directions of ``M̃`` (as Papyan et al. do with ``svds(Σ_B, K−1)``) and drops
    singular values below ``max(K, d)·eps·s_max``. With ``M̃ = U S V^T``:
    ``Tr(Σ_W Σ_B^†)/K = Σ_j v_j^T Σ_W v_j / s_j²`` (the ``K`` cancels).
    """
    k, d = centred.shape
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    r = min(k - 1, d)
    s, vh = s[:r], vh[:r]
    keep = s > s[0] * max(k, d) * torch.finfo(s.dtype).eps
    s, vh = s[keep], vh[keep]
    quad = ((vh @ sigma_w) * vh).sum(dim=1)  # v_j^T Σ_W v_j
    return max(float((quad / s.square()).sum()), 0.0)


def _structure_error(cross: torch.Tensor) -> float:
    """``‖C/‖C‖_F − (I − 11^T/K)/√(K−1)‖_F`` for a ``(K, K)`` matrix ``C``.

    Kothapalli (2023, TMLR) review's NC2/NC3 forms as coded in
    ``tding1/Neural-Collapse`` (``compute_ETF``, ``compute_W_H_relation``) and
    ``rhubarbwu/neural-collapse`` (``structure_error``): ``C`` is a Gram matrix
    ``A^T A`` (ETF error) or a cross matrix ``W^T M̃`` (self-duality error).
    The target has Frobenius norm 1, so the error lies in ``[0, 2]``.
    """
    k = cross.shape[0]
    ideal = (torch.eye(k, dtype=cross.dtype, device=cross.device) - 1.0 / k) / math.sqrt(k - 1)
    return float((cross / cross.norm() - ideal).norm())


def _cdnv(means: torch.Tensor, variances: torch.Tensor) -> float:
    """Mean over class pairs of ``(Var_k + Var_k')/(2‖z̄_k − z̄_k'‖²)`` (Galanti et al. 2022).

    ``means`` ``(K, d)`` in any common shift (only differences enter),
    ``variances`` ``(K,)``. ``inf`` when two class means coincide.
    """
    sq = means.square().sum(dim=1)
    dist2 = (sq[:, None] + sq[None, :] - 2.0 * means @ means.T).clamp_min(0.0)
    pair_var = 0.5 * (variances[:, None] + variances[None, :])
    return float((_upper(pair_var) / _upper(dist2)).mean())


def _uniformity_stats(centred: torch.Tensor) -> dict[str, float]:
    """Hyperspherical-uniformity kernels of the normalised centred class means.

    With ``ẑ_k = M̃_k/‖M̃_k‖`` and ``r_kk' = ‖ẑ_k − ẑ_k'‖`` over the distinct
    pairs, the kernels of Liu et al. (2023, "Generalizing and decoupling neural
    collapse via hyperspherical uniformity gap") as coded in
    ``rhubarbwu/neural-collapse`` (``kernels.py``): distance ``r``, logarithmic
    ``log(1/r)`` and Riesz ``sign(s) r^(−s)`` with ``s = d − 2``. For each, the
    mean over pairs (the energy per pair) and the variance over pairs with
    ``ddof = 0`` (that library's ``kernel_stats``).
    """
    d = centred.shape[1]
    unit = centred / centred.norm(dim=1, keepdim=True)
    r = (2.0 - 2.0 * _upper(unit @ unit.T)).clamp_min(0.0).sqrt()
    s = d - 2
    kernels = {
        "distance": r,
        "log": -torch.log(r),
        "riesz": math.copysign(1.0, s) * torch.exp(-s * torch.log(r)),
    }
    out = {}
    for name, values in kernels.items():
        out[f"uniformity_{name}_mean"] = float(values.mean())
        out[f"uniformity_{name}_var"] = float(values.var(unbiased=False))
    return out


# --------------------------------------------------------------------------- #
# streaming accumulator
# --------------------------------------------------------------------------- #
class NCAccumulator:
    """Streaming neural-collapse statistics for data fed in batches.

    Memory does not depend on the number of samples: the state is the
    per-class sums ``(K, d)`` (from :func:`ceco_lite.centers.class_sums`, CeCo
    Eq. 3), the counts ``(K,)``, the per-class sums of squared norms ``(K,)``
    and one pooled second-moment matrix ``(d, d)``, all float64 and taken about
    a shift ``s`` (the mean of the first non-empty batch) to limit
    cancellation. The within-class covariance is recovered as

    ``Σ_W = (1/N) (Σ_i (z_i−s)(z_i−s)^T − Σ_k n_k (z̄_k−s)(z̄_k−s)^T)``

    and the per-class variance of the CDNV as
    ``Var_k = (1/n_k) Σ_{y_i=k} ‖z_i−s‖² − ‖z̄_k−s‖²``.

    NC4 (``ncc_mismatch``) compares each sample with the class means, which are
    only known after the whole data set has been seen, so it needs a second
    pass over the same data::

        acc = NCAccumulator(num_classes, dim)
        for z, y in loader:            # pass 1: means and scatter
            acc.update(z, y)
        acc.freeze_means()
        for z, y in loader:            # pass 2 (optional): NC4
            acc.update_ncc(z, y, W, bias=b)
        stats = acc.compute(classifier=W, bias=b)

    Without the second pass ``compute`` returns every statistic except
    ``ncc_mismatch``.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C >= 2`` (labels lie in ``[0, C)``).
    dim : int
        Feature dimension ``d >= 1``.
    ignore_index : int or None, default 255
        Label of samples to drop (``None``: keep every sample); must lie
        outside ``[0, num_classes)``.
    global_mean : {"samples", "classes"}, default "samples"
        ``z_G`` = sample-weighted mean of all kept samples (the paper's
        definition) or unweighted mean of the class means.
    device : torch.device or str, optional
        Where the float64 state lives. Default: the device of the first batch.

    Raises
    ------
    TypeError, ValueError
        For a bad ``num_classes``, ``dim``, ``ignore_index`` or ``global_mean``.

    Examples
    --------
    >>> acc = NCAccumulator(3, 4)
    >>> for seed in range(3):
    ...     g = torch.Generator().manual_seed(seed)
    ...     _ = acc.update(torch.randn(50, 4, generator=g), torch.arange(50) % 3)
    >>> acc.num_samples
    150
    >>> stats = acc.compute()
    >>> stats["num_present"], stats["cdnv"] > 0
    (3, True)
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        ignore_index: int | None = 255,
        global_mean: str = "samples",
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.dim = check_int(dim, "dim", minimum=1)
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes)
        self.global_mean = check_choice(global_mean, "global_mean", _GLOBAL_MEAN_OPTIONS)
        self.device = torch.device(device) if device is not None else None
        self.reset()

    # -- state ------------------------------------------------------------- #
    def reset(self) -> "NCAccumulator":
        """Forget all data (both passes). Returns ``self``."""
        self._shift: torch.Tensor | None = None
        self._sums: torch.Tensor | None = None
        self._counts: torch.Tensor | None = None
        self._sq_sums: torch.Tensor | None = None
        self._second: torch.Tensor | None = None
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ncc_classifier: torch.Tensor | None = None
        self._ncc_bias: torch.Tensor | None = None
        self._ncc_mismatch = 0
        self._ncc_total = 0
        return self

    @property
    def num_samples(self) -> int:
        """Number of kept (non-ignored) samples seen by :meth:`update`."""
        return 0 if self._counts is None else int(self._counts.sum())

    @property
    def counts(self) -> torch.Tensor:
        """Samples per class, shape ``(num_classes,)``, int64 (zeros before any data)."""
        if self._counts is None:
            return torch.zeros(self.num_classes, dtype=torch.int64)
        return self._counts.clone()

    def _init_state(self, shift: torch.Tensor) -> None:
        f64 = dict(dtype=torch.float64, device=shift.device)
        self._shift = shift
        self._sums = torch.zeros(self.num_classes, self.dim, **f64)
        self._counts = torch.zeros(self.num_classes, dtype=torch.int64, device=shift.device)
        self._sq_sums = torch.zeros(self.num_classes, **f64)
        self._second = torch.zeros(self.dim, self.dim, **f64)

    # -- pass 1 ------------------------------------------------------------ #
    @torch.no_grad()
    def update(self, features: Any, labels: Any) -> "NCAccumulator":
        """Add a batch (pass 1: class sums, counts, squared norms, pooled second moment).

        Parameters
        ----------
        features : torch.Tensor or numpy.ndarray, shape (N, d) or (B, d, H, W)
            Any floating dtype (accumulated in float64); no gradient is kept.
        labels : torch.Tensor or numpy.ndarray, shape (N,) or (B, H, W)
            Integer class indices in ``[0, num_classes)`` or ``ignore_index``.

        Returns
        -------
        NCAccumulator
            ``self`` (so calls can be chained).

        Raises
        ------
        RuntimeError
            After :meth:`freeze_means` (call :meth:`reset` to start again).
        TypeError, ValueError
            For bad dtypes, mismatched shapes, a wrong feature dimension, labels
            out of range, non-finite features, or features so large that their
            squares overflow float64 (the state is left unchanged).
        """
        if self._frozen is not None:
            raise RuntimeError("update() after freeze_means(); call reset() to start again")
        x, y = _columns(features, labels, self.num_classes, self.ignore_index, self.dim)
        dev = self._sums.device if self._sums is not None else (self.device or x.device)
        shift = self._shift
        batch = None  # [sums (K, d), counts (K,), squared norms (K,), second moment (d, d)] of this batch
        for xc, yc in _chunks(x, y, dev):
            keep = _kept(yc, self.ignore_index)
            if shift is None:
                if not bool(keep.any()):
                    continue
                shift = xc[:, keep].mean(dim=1)
                if not bool(torch.isfinite(shift).all()):
                    raise _overflow_error("the sums of the features")
            xs = (xc - shift[:, None]).masked_fill_(~keep, 0.0)  # (d, m), ignored -> 0
            sums, counts = class_sums(
                xs.T, yc, self.num_classes, ignore_index=self.ignore_index, validate=False
            )
            sq, _ = class_sums(
                xs.square().sum(dim=0, keepdim=True).T, yc, self.num_classes,
                ignore_index=self.ignore_index, validate=False,
            )
            piece = [sums, counts, sq[:, 0], xs @ xs.T]
            batch = piece if batch is None else [a + b for a, b in zip(batch, piece)]
        if batch is None:  # nothing kept
            return self
        if self._shift is None:
            self._init_state(shift)
        state = [self._sums + batch[0], self._counts + batch[1], self._sq_sums + batch[2], self._second + batch[3]]
        if not all(bool(torch.isfinite(t).all()) for t in (state[0], state[2], state[3])):
            if self.num_samples == 0:
                self.reset()
            raise _overflow_error("the squared features")
        self._sums, self._counts, self._sq_sums, self._second = state
        return self

    def _present(self, min_classes: int = 2) -> torch.Tensor:
        if self._counts is None:
            raise ValueError("no (non-ignored) samples have been seen; call update() first")
        present = torch.nonzero(self._counts > 0).flatten()
        if present.numel() < min_classes:
            raise ValueError(
                "neural-collapse statistics need at least 2 classes present, got "
                f"{present.numel()} (classes {present.tolist()})"
            )
        return present

    def _shifted_means(self, min_classes: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        present = self._present(min_classes)
        n = self._counts[present].to(torch.float64)
        return present, n, self._sums[present] / n[:, None]

    def class_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Class means of the classes present (CeCo paper Eq. 3 over all data).

        Returns
        -------
        means : torch.Tensor, shape (K, d), float64
            ``z̄_k`` for the ``K`` classes present, in class order.
        present : torch.Tensor, shape (K,), int64
            Their class indices.

        Raises
        ------
        ValueError
            When fewer than 2 classes have been seen.
        """
        present, _, means = self._shifted_means()
        return means + self._shift, present

    def _global_mean_shifted(self, n: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        """``z_G − s`` (d,) by the ``global_mean`` convention."""
        if self.global_mean == "samples":
            return (means * n[:, None]).sum(dim=0) / n.sum()
        return means.mean(dim=0)

    def _centred_means(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(present, shifted means (K, d), M̃ = z̄_k − z_G rows (K, d))``.

        Raises ``ValueError`` when a centred class mean is zero (its direction,
        hence every angle statistic, is undefined) -- e.g. constant features.
        """
        present, n, means = self._shifted_means()
        centred = means - self._global_mean_shifted(n, means)
        norms = centred.norm(dim=1)
        if not bool(torch.isfinite(norms).all()):
            raise _overflow_error("the squared class means")
        zero = norms <= torch.finfo(torch.float64).tiny
        if bool(zero.any()):
            classes = present[zero].tolist()
            raise ValueError(
                f"the class mean of class(es) {classes} equals the global mean z_G "
                f"(global_mean={self.global_mean!r}), so its direction and every angle statistic "
                "are undefined; features are constant or collapsed onto z_G"
            )
        return present, means, centred

    def within_class_covariance(self) -> torch.Tensor:
        """``Σ_W = (1/N) Σ_i (z_i − z̄_{y_i})(z_i − z̄_{y_i})^T``.

        Returns
        -------
        torch.Tensor, shape (d, d), float64, symmetric.

        Raises
        ------
        ValueError
            Before any (non-ignored) sample has been seen.
        """
        _, n, means = self._shifted_means(min_classes=1)
        between = (means * n[:, None]).T @ means
        sigma_w = (self._second - between) / n.sum()
        return 0.5 * (sigma_w + sigma_w.T)

    def class_variances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class variances ``Var_k = (1/n_k) Σ_{y_i=k} ‖z_i − z̄_k‖²`` (= ``Tr Σ_W^(k)``).

        The within-class variance of Galanti et al. (2022) used by the CDNV
        (``ddof = 0``, as in their definition and ``rhubarbwu/neural-collapse``'s
        ``VarNormAccumulator``).

        Returns
        -------
        variances : torch.Tensor, shape (K,), float64
            For the ``K`` classes present, in class order (``>= 0``).
        present : torch.Tensor, shape (K,), int64

        Raises
        ------
        ValueError
            When fewer than 2 classes have been seen.
        """
        present, n, means = self._shifted_means()
        var = self._sq_sums[present] / n - means.square().sum(dim=1)
        return var.clamp_min(0.0), present

    # -- pass 2 (NC4) ------------------------------------------------------ #
    def freeze_means(self) -> "NCAccumulator":
        """End pass 1: fix the class means used by :meth:`update_ncc`.

        Returns
        -------
        NCAccumulator
            ``self``.

        Raises
        ------
        ValueError
            When fewer than 2 classes have been seen.
        """
        present, _, means = self._shifted_means()
        self._frozen = (present, means)
        return self

    def _check_classifier_pair(self, classifier: Any, bias: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validated ``(W (d, C), b (C,) or None)`` in float64 on the state's device."""
        if classifier is None:
            if bias is not None:
                raise ValueError("bias is given without a classifier; pass classifier=W too")
            return None, None
        dev = self._sums.device if self._sums is not None else None
        w = check_classifier(classifier, self.dim, self.num_classes).to(device=dev, dtype=torch.float64)
        b = None
        if bias is not None:
            b = check_bias(bias, self.num_classes).to(device=w.device, dtype=torch.float64)
        return w, b

    @torch.no_grad()
    def update_ncc(self, features: Any, labels: Any, classifier: Any, bias: Any = None) -> "NCAccumulator":
        """Add a batch to the NC4 count (pass 2; same data as pass 1).

        A sample counts as a mismatch when the classifier's decision
        ``argmax_k (z^T w_k + b_k)`` differs from its nearest class mean
        ``argmin_k ‖z − z̄_k‖`` (Papyan et al. 2020, NC4; their code takes the
        network's own logits, bias included). Both run over the classes present
        in pass 1 only (absent classes are dropped from every statistic). Labels
        are used only to drop ``ignore_index``.

        Parameters
        ----------
        features, labels
            As in :meth:`update`.
        classifier : torch.Tensor or numpy.ndarray, shape (d, num_classes)
            ``W``, one column per class; must be the same in every call and in
            :meth:`compute`.
        bias : torch.Tensor or numpy.ndarray, shape (num_classes,), optional
            ``b`` (``nn.Linear.bias``); ``None`` = no bias. Same rule as ``classifier``.

        Returns
        -------
        NCAccumulator
            ``self``.

        Raises
        ------
        RuntimeError
            Before :meth:`freeze_means`.
        ValueError
            When ``classifier`` or ``bias`` differs from the one of an earlier
            call, or for bad input (see :meth:`update`).
        """
        if self._frozen is None:
            raise RuntimeError("update_ncc() needs the class means: call freeze_means() first")
        w, b = self._check_classifier_pair(classifier, bias)
        if self._ncc_classifier is None:
            self._ncc_classifier = w.clone()
            self._ncc_bias = None if b is None else b.clone()
        elif not (torch.equal(self._ncc_classifier, w) and _same_bias(self._ncc_bias, b)):
            raise ValueError("classifier or bias differs from the one used in earlier update_ncc() calls")
        x, y = _columns(features, labels, self.num_classes, self.ignore_index, self.dim)
        present, means = self._frozen
        w_p = w[:, present]  # (d, K)
        offset = self._shift @ w_p  # logits are not shift-invariant
        if b is not None:
            offset = offset + b[present]
        sq = means.square().sum(dim=1)
        for xc, yc in _chunks(x, y, w.device):
            keep = _kept(yc, self.ignore_index)
            xs = (xc - self._shift[:, None]).T  # (m, d) view: row-major (m, K) scores below
            by_classifier = (xs @ w_p + offset).argmax(dim=1)
            # ‖z − z̄_k‖² up to the per-sample constant ‖z − s‖², in shifted coordinates
            by_mean = (sq - 2.0 * xs @ means.T).argmin(dim=1)
            self._ncc_mismatch += int(((by_classifier != by_mean) & keep).sum())
            self._ncc_total += int(keep.sum())
        return self

    # -- results ----------------------------------------------------------- #
    def compute(self, classifier: Any = None, bias: Any = None) -> dict[str, Any]:
        """Neural-collapse statistics of all data seen.

        ``K`` = number of classes present, ``M̃`` = centred class means,
        ``ẑ_k`` their directions, ``P = (I − 11^T/K)/√(K−1)`` the normalised
        simplex-ETF Gram; the statistics of other libraries, their sources and
        global-mean conventions are in ``docs/conventions.md``.

        Parameters
        ----------
        classifier : torch.Tensor or numpy.ndarray, shape (d, num_classes), optional
            ``W`` (one column per class). When given, the classifier statistics
            are added, and ``ncc_mismatch`` too if :meth:`update_ncc` has run
            (with this same classifier and bias).
        bias : torch.Tensor or numpy.ndarray, shape (num_classes,), optional
            Classifier bias ``b``: adds ``bias_residual``; must equal the bias
            given to :meth:`update_ncc` (``None`` there means no bias).

        Returns
        -------
        dict
            Python floats unless stated:

            ``nc1``
                ``Tr(Σ_W Σ_B^†)/K`` (NC1, Papyan et al.; pseudo-inverse on the
                rank-(K−1) range of ``Σ_B``).
            ``nc1_quotient``
                ``Tr(Σ_W)/Tr(Σ_B)`` (Tirer et al. 2023; ``rhubarbwu``
                ``covariance_ratio(metric="quotient")``).
            ``cdnv``
                mean over pairs ``k < k'`` of ``(Var_k + Var_k')/(2‖z̄_k − z̄_k'‖²)``
                (Galanti et al. 2022; :meth:`class_variances`); ``inf`` when two
                class means coincide.
            ``equinorm_centers``
                unbiased std / mean of ``‖z̄_k − z_G‖``.
            ``equiangularity_centers``
                unbiased std of ``cos(ẑ_k, ẑ_k')`` over distinct pairs
                (CeCo Fig. 2; 0.0 when ``K = 2``).
            ``max_angle_centers``
                mean of ``|cos(ẑ_k, ẑ_k') + 1/(K−1)|`` (CeCo Fig. 4b).
            ``etf_error_centers``
                ``‖M̃^T M̃/‖M̃^T M̃‖_F − P‖_F`` (NC2 of Kothapalli's review,
                ``rhubarbwu`` ``simplex_etf_error``).
            ``uniformity_{distance,log,riesz}_{mean,var}``
                hyperspherical-uniformity kernels of the ``ẑ_k`` (Liu et al.
                2023, ``rhubarbwu`` ``kernel_stats``): pair distance ``r``,
                ``log(1/r)`` and ``sign(s) r^(−s)`` with ``s = d − 2``; mean and
                variance (``ddof = 0``) over pairs.
            ``delta_inter``
                In2NeCT ``Δ_Inter`` (Table 2) = ``max_angle_centers``.
            ``delta_intra``
                In2NeCT ``Δ_Intra`` = mean over samples of ``‖z_i − z̄_{y_i}‖²``
                = ``Tr(Σ_W)``.
            ``num_present`` (int), ``present`` (list of int), ``num_samples`` (int)
                classes present and kept samples.
            ``equinorm_classifiers``, ``equiangularity_classifiers``, ``max_angle_classifiers``
                the same statistics for the columns ``w_k`` (not centred) of
                the present classes -- only with ``classifier``.
            ``etf_error_classifiers``
                ``‖W^T W/‖W^T W‖_F − P‖_F`` over the present columns (NC2 of
                ``tding1``'s ``compute_ETF``) -- only with ``classifier``.
            ``self_duality``
                NC3 = ``‖W/‖W‖_F − M̃/‖M̃‖_F‖_F²`` with ``W`` and
                ``M̃ = [z̄_k − z_G]`` both ``(d, K)`` (Papyan et al.) -- only
                with ``classifier``.
            ``self_duality_error``
                ``‖W^T M̃/‖W^T M̃‖_F − P‖_F`` (NC3 of Kothapalli's review,
                ``tding1`` ``compute_W_H_relation``, ``rhubarbwu``
                ``self_duality_error``) -- only with ``classifier``.
            ``bias_residual``
                ``‖W^T z_G + b‖`` over the present classes (the bias residual
                that ``tding1``'s plots label NC4) -- only with ``bias``.
            ``ncc_mismatch``
                NC4, see :meth:`update_ncc` (with the bias when one was given)
                -- only with ``classifier`` after the second pass.

        Raises
        ------
        ValueError
            If fewer than 2 classes are present; if a centred class mean is zero
            (constant features: the angles are undefined); if the features are
            so large that squared quantities overflow float64; for a bad
            ``classifier``/``bias``, ``bias`` without ``classifier``, or a
            classifier/bias different from the one given to :meth:`update_ncc`.
        """
        present, means, centred = self._centred_means()
        sigma_w = self.within_class_covariance()
        if not bool(torch.isfinite(sigma_w).all()):
            raise _overflow_error("the squared features")
        variances, _ = self.class_variances()
        k = int(present.numel())
        eq_c, ang_c = _pairwise_cosine_stats(centred)
        trace_w = max(float(torch.trace(sigma_w)), 0.0)
        out: dict[str, Any] = {
            "nc1": _nc1(sigma_w, centred),
            "nc1_quotient": trace_w / float(centred.square().sum() / k),
            "cdnv": _cdnv(centred, variances),
            "equinorm_centers": _equinorm(centred),
            "equiangularity_centers": eq_c,
            "max_angle_centers": ang_c,
            "etf_error_centers": _structure_error(centred @ centred.T),
            **_uniformity_stats(centred),
            "delta_inter": ang_c,
            "delta_intra": trace_w,
            "num_present": k,
            "present": present.tolist(),
            "num_samples": self.num_samples,
        }
        w, b = self._check_classifier_pair(classifier, bias)
        if w is not None:
            cols = w[:, present].T  # (K, d): one row per present class
            eq_w, ang_w = _pairwise_cosine_stats(cols)
            out["equinorm_classifiers"] = _equinorm(cols)
            out["equiangularity_classifiers"] = eq_w
            out["max_angle_classifiers"] = ang_w
            out["etf_error_classifiers"] = _structure_error(cols @ cols.T)
            out["self_duality"] = float(
                (cols / cols.norm() - centred / centred.norm()).square().sum()
            )
            out["self_duality_error"] = _structure_error(cols @ centred.T)
            if b is not None:
                n = self._counts[present].to(torch.float64)
                z_g = self._shift + self._global_mean_shifted(n, means)
                out["bias_residual"] = float((cols @ z_g + b[present]).norm())
            if self._ncc_classifier is not None:
                if not (torch.equal(self._ncc_classifier, w) and _same_bias(self._ncc_bias, b)):
                    raise ValueError("classifier or bias differs from the one given to update_ncc()")
                out["ncc_mismatch"] = self._ncc_mismatch / max(self._ncc_total, 1)
        return out

    def __repr__(self) -> str:
        return (
            f"NCAccumulator(num_classes={self.num_classes}, dim={self.dim}, "
            f"global_mean={self.global_mean!r}, num_samples={self.num_samples})"
        )


def _same_bias(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a, b)


# --------------------------------------------------------------------------- #
# one-shot functions
# --------------------------------------------------------------------------- #
def nc_metrics(
    features: Any,
    labels: Any,
    num_classes: int,
    *,
    classifier: Any = None,
    bias: Any = None,
    ignore_index: int | None = 255,
    global_mean: str = "samples",
) -> dict[str, Any]:
    """Neural-collapse statistics NC1--NC4 of one set of features.

    Papyan, Han & Donoho (2020); CeCo paper Sec. 3.2, Fig. 2, 4, 5; In2NeCT
    Table 2 (``delta_inter``, ``delta_intra``); and the statistics of the public
    NC libraries (CDNV, ETF and self-duality errors, hyperspherical uniformity,
    NC1 quotient, NC4 with bias; see :meth:`NCAccumulator.compute` and
    ``docs/conventions.md``). Runs both passes of :class:`NCAccumulator` on the
    whole input, so it returns exactly what the accumulator returns for the
    same data fed in batches.

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray, shape (N, d) or (B, d, H, W)
        Last-layer features, any floating dtype (computed in float64).
    labels : torch.Tensor or numpy.ndarray, shape (N,) or (B, H, W)
        Integer labels in ``[0, num_classes)`` or ``ignore_index``.
    num_classes : int
        Number of classes ``C``.
    classifier : torch.Tensor or numpy.ndarray, shape (d, num_classes), optional
        Classifier ``W`` (columns = classes; pass ``nn.Linear.weight.T``). Adds
        the classifier statistics, ``self_duality`` (NC3) and ``ncc_mismatch``
        (NC4: fraction of kept samples whose ``argmax_k z^T w_k + b_k`` over the
        present classes differs from their nearest present class mean).
    bias : torch.Tensor or numpy.ndarray, shape (num_classes,), optional
        Classifier bias ``b`` (``nn.Linear.bias``): used by NC4 and adds
        ``bias_residual``. Needs ``classifier``.
    ignore_index : int or None, default 255
        Label of samples to drop.
    global_mean : {"samples", "classes"}, default "samples"
        Definition of ``z_G``: sample-weighted mean (paper) or mean of class means.

    Returns
    -------
    dict
        Keys and definitions as in :meth:`NCAccumulator.compute`; values are
        Python floats (``num_present``, ``num_samples``: int; ``present``: list).

    Raises
    ------
    TypeError
        Non-tensor input, non-floating features or classifier, non-integer labels.
    ValueError
        Mismatched shapes, labels out of range, non-finite features or
        classifier, a wrong ``global_mean``, fewer than 2 classes present,
        constant features (a centred class mean is zero: angles undefined),
        features whose squares overflow float64.

    Examples
    --------
    >>> import torch
    >>> z = torch.randn(1000, 16); y = torch.randint(0, 5, (1000,))
    >>> stats = nc_metrics(z, y, 5)
    >>> sorted(stats)[:3]
    ['cdnv', 'delta_inter', 'delta_intra']
    >>> nc_metrics(torch.zeros(10, 4), torch.arange(10) % 2, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the class mean of class(es) [0, 1] equals the global mean z_G ...
    """
    features = check_tensor_like(features, "features")
    acc = _accumulate(features, labels, num_classes, ignore_index, global_mean)
    if classifier is not None:
        acc.freeze_means()
        acc.update_ncc(features, labels, classifier, bias)
    return acc.compute(classifier, bias)


def _accumulate(features, labels, num_classes, ignore_index, global_mean) -> NCAccumulator:
    num_classes = check_num_classes(num_classes)
    features = check_tensor_like(features, "features")
    if features.ndim not in (2, 4):
        raise ValueError(
            f"features must have shape (N, d) or (B, d, H, W), got {tuple(features.shape)}"
        )
    acc = NCAccumulator(
        num_classes, features.shape[1], ignore_index=ignore_index, global_mean=global_mean
    )
    return acc.update(features, labels)


def delta_inter(
    features: Any,
    labels: Any,
    num_classes: int,
    *,
    ignore_index: int | None = 255,
    global_mean: str = "samples",
) -> float:
    """In2NeCT's inter-class collapse degree ``Δ_Inter`` (In2NeCT Table 2).

    ``Δ_Inter = mean over distinct pairs k < k' of |cos(ẑ_k, ẑ_k') + 1/(K−1)|``
    with ``ẑ_k = (z̄_k − z_G)/‖z̄_k − z_G‖`` over the ``K`` classes present.
    The paper's printed formula is garbled; this reading coincides with the
    CeCo paper's maximal-angle statistic (Fig. 4b) and with
    ``nc_metrics(...)["max_angle_centers"]`` -- the same internal function
    computes both. 0 for a simplex ETF of class means.

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray, shape (N, d) or (B, d, H, W)
    labels : torch.Tensor or numpy.ndarray, shape (N,) or (B, H, W)
    num_classes : int
    ignore_index : int or None, default 255
    global_mean : {"samples", "classes"}, default "samples"

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        As :func:`nc_metrics`.
    """
    acc = _accumulate(features, labels, num_classes, ignore_index, global_mean)
    _, _, centred = acc._centred_means()
    return _pairwise_cosine_stats(centred)[1]


def delta_intra(
    features: Any,
    labels: Any,
    num_classes: int,
    *,
    ignore_index: int | None = 255,
) -> float:
    """In2NeCT's intra-class collapse degree ``Δ_Intra`` (In2NeCT Table 2).

    ``Δ_Intra = mean over kept samples of ‖z_{k,i} − z̄_k‖² = Tr(Σ_W)``. The
    paper writes ``Avg_{k,i} ‖(z_{k,i} − z̄_k)(z_{k,i} − z̄_k)^T‖``; the
    (Frobenius or spectral) norm of the rank-one matrix ``v v^T`` is ``‖v‖²``,
    so both readings agree. Units: squared feature units (not scale-free).

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray, shape (N, d) or (B, d, H, W)
    labels : torch.Tensor or numpy.ndarray, shape (N,) or (B, H, W)
    num_classes : int
    ignore_index : int or None, default 255

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        As :func:`nc_metrics`.
    """
    acc = _accumulate(features, labels, num_classes, ignore_index, "samples")
    return max(float(torch.trace(acc.within_class_covariance())), 0.0)
