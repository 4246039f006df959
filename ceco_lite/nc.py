"""Neural-collapse statistics (NC1--NC4) for classification and segmentation.

Definitions follow Papyan, Han & Donoho (PNAS 2020) and the CeCo paper
(Zhong et al., CVPR 2023, Sec. 3.2, Fig. 2, 4, 5) with the conventions fixed in
SPEC §3 of this project:

* samples whose label equals ``ignore_index`` (255) are dropped;
* classes with ``n_k = 0`` are dropped from *every* statistic and ``K`` is the
  number of classes present;
* the global mean ``z_G`` is the sample-weighted mean of all kept samples
  (``global_mean="samples"``, the paper's definition) or the unweighted mean of
  the class means (``global_mean="classes"``);
* ``ẑ_k = (z̄_k − z_G)/‖z̄_k − z_G‖`` and ``ŵ_k = w_k/‖w_k‖`` (classifiers are
  not centred);
* standard deviations are unbiased (``ddof = 1``).

Segmentation produces millions of pixel features, so everything is computed by
streaming (:class:`NCAccumulator`): per-class sums ``(K, d)``, counts ``(K,)``
and one pooled second-moment matrix ``(d, d)`` in float64. The one-shot
function :func:`nc_metrics` feeds its input through the same accumulator, so the
two can never disagree.

Layout: a classifier ``W`` has shape ``(d, K)`` -- one column per class. A
module holding an ``nn.Linear(d, K)`` passes ``linear.weight.T``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .centers import class_sums

__all__ = ["nc_metrics", "NCAccumulator", "delta_inter", "delta_intra"]

_GLOBAL_MEAN_OPTIONS = ("samples", "classes")
# rows converted to float64 at a time inside NCAccumulator.update (bounds the
# temporary memory to about 32 MiB whatever the batch size)
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- #
# input validation
# --------------------------------------------------------------------------- #
def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return int(num_classes)


def _check_global_mean(global_mean: Any) -> str:
    if global_mean not in _GLOBAL_MEAN_OPTIONS:
        raise ValueError(f"global_mean must be one of {_GLOBAL_MEAN_OPTIONS}, got {global_mean!r}")
    return global_mean


def _columns(
    features: Any,
    labels: Any,
    num_classes: int,
    ignore_index: int,
    dim: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``(features, labels)``; return channel-first views without copying.

    Returns ``X`` of shape ``(B, d, n)`` (input dtype and device; ``(N, d)``
    input becomes the transposed view ``(1, d, N)``, ``(B, d, H, W)`` the view
    ``(B, d, H*W)``) and ``Y`` of shape ``(B, n)`` (int64, same device). Checks
    dtypes, shapes, ``dim``, label values and finiteness of the kept samples
    before anything is accumulated.
    """
    features = _as_tensor(features, "features")
    labels = _as_tensor(labels, "labels")
    if not features.is_floating_point():
        raise TypeError(f"features must have a floating dtype, got {features.dtype}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
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
    keep = y != ignore_index
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


def _chunks(x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Yield ``(x_c (d, m) float64, y_c (m,))`` pieces of at most ~32 MiB on ``device``."""
    step = max(1, _CHUNK_ELEMENTS // x.shape[1])
    for b in range(x.shape[0]):
        for start in range(0, x.shape[2], step):
            yield (
                x[b, :, start : start + step].to(device=device, dtype=torch.float64),
                y[b, start : start + step].to(device),
            )


def _check_classifier(classifier: Any, dim: int, num_classes: int) -> torch.Tensor:
    w = _as_tensor(classifier, "classifier")
    if not w.is_floating_point():
        raise TypeError(f"classifier must have a floating dtype, got {w.dtype}")
    if tuple(w.shape) != (dim, num_classes):
        raise ValueError(
            f"classifier must have shape (d, num_classes) = ({dim}, {num_classes}) -- one column "
            f"per class (pass nn.Linear.weight.T); got {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()):
        raise ValueError("classifier contains NaN or Inf")
    return w.detach()


# --------------------------------------------------------------------------- #
# the statistics (each defined once)
# --------------------------------------------------------------------------- #
def _pairwise_cosine_stats(vectors: torch.Tensor) -> tuple[float, float]:
    """Equiangularity and maximal-angle statistics of ``K`` vectors.

    The one implementation of the pairwise-cosine statistics of SPEC §3 (CeCo
    paper Fig. 2 / Fig. 4): with ``c_kk' = cos(v_k, v_k')`` over the
    ``K(K−1)/2`` distinct pairs,

    * equiangularity = unbiased std of ``c_kk'`` (0.0 when ``K = 2``: a single
      pair has no spread);
    * maximal angle = mean ``|c_kk' + 1/(K−1)|`` -- this is also In2NeCT's
      ``Δ_Inter`` (Table 2) when the vectors are the centred class means.

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
    gram = unit @ unit.T
    iu = torch.triu_indices(k, k, offset=1, device=gram.device)
    cos = gram[iu[0], iu[1]]
    equiangularity = float(cos.std(unbiased=True)) if cos.numel() > 1 else 0.0
    max_angle = float((cos + 1.0 / (k - 1)).abs().mean())
    return equiangularity, max_angle


def _equinorm(vectors: torch.Tensor) -> float:
    """Equinorm = unbiased std / mean of the row norms of ``vectors`` (SPEC §3)."""
    norms = vectors.norm(dim=1)
    return float(norms.std(unbiased=True) / norms.mean())


def _nc1(sigma_w: torch.Tensor, centred: torch.Tensor) -> float:
    """NC1 = Tr(Σ_W Σ_B^†)/K (Papyan et al. 2020; SPEC §3).

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


# --------------------------------------------------------------------------- #
# streaming accumulator
# --------------------------------------------------------------------------- #
class NCAccumulator:
    """Streaming neural-collapse statistics (SPEC §3) for data fed in batches.

    Memory does not depend on the number of samples: the state is the
    per-class sums ``(K, d)`` (from :func:`ceco_lite.centers.class_sums`, CeCo
    Eq. 3), the counts ``(K,)`` and one pooled second-moment
    matrix ``(d, d)``, all float64 and taken about a shift ``s`` (the mean of
    the first non-empty batch) to limit cancellation. The within-class
    covariance is recovered as

    ``Σ_W = (1/N) (Σ_i (z_i−s)(z_i−s)^T − Σ_k n_k (z̄_k−s)(z̄_k−s)^T)``.

    NC4 (``ncc_mismatch``) compares each sample with the class means, which are
    only known after the whole data set has been seen, so it needs a second
    pass over the same data::

        acc = NCAccumulator(num_classes, dim)
        for z, y in loader:            # pass 1: means and scatter
            acc.update(z, y)
        acc.freeze_means()
        for z, y in loader:            # pass 2 (optional): NC4
            acc.update_ncc(z, y, W)
        stats = acc.compute(classifier=W)

    Without the second pass ``compute`` returns every statistic except
    ``ncc_mismatch``.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C >= 2`` (labels lie in ``[0, C)``).
    dim : int
        Feature dimension ``d``.
    ignore_index : int, default 255
        Label of samples to drop.
    global_mean : {"samples", "classes"}, default "samples"
        ``z_G`` = sample-weighted mean of all kept samples (the paper's
        definition) or unweighted mean of the class means.
    device : torch.device or str, optional
        Where the float64 state lives. Default: the device of the first batch.

    Raises
    ------
    TypeError, ValueError
        For a bad ``num_classes``, ``dim`` or ``global_mean``.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        ignore_index: int = 255,
        global_mean: str = "samples",
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes = _check_num_classes(num_classes)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
        if 0 <= ignore_index < self.num_classes:
            raise ValueError(
                f"ignore_index must lie outside [0, num_classes) = [0, {self.num_classes}), "
                f"got {ignore_index}"
            )
        self.ignore_index = int(ignore_index)
        self.global_mean = _check_global_mean(global_mean)
        self.device = torch.device(device) if device is not None else None
        self.reset()

    # -- state ------------------------------------------------------------- #
    def reset(self) -> "NCAccumulator":
        """Forget all data (both passes). Returns ``self``."""
        self._shift: torch.Tensor | None = None
        self._sums: torch.Tensor | None = None
        self._counts: torch.Tensor | None = None
        self._second: torch.Tensor | None = None
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ncc_classifier: torch.Tensor | None = None
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
        self._second = torch.zeros(self.dim, self.dim, **f64)

    # -- pass 1 ------------------------------------------------------------ #
    @torch.no_grad()
    def update(self, features: Any, labels: Any) -> "NCAccumulator":
        """Add a batch (pass 1: class sums, counts, pooled second moment).

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
            out of range, or non-finite features.
        """
        if self._frozen is not None:
            raise RuntimeError("update() after freeze_means(); call reset() to start again")
        x, y = _columns(features, labels, self.num_classes, self.ignore_index, self.dim)
        dev = self._sums.device if self._sums is not None else (self.device or x.device)
        for xc, yc in _chunks(x, y, dev):
            keep = yc != self.ignore_index
            if self._shift is None:
                if not bool(keep.any()):
                    continue
                self._init_state(xc[:, keep].mean(dim=1))
            xs = (xc - self._shift[:, None]).masked_fill_(~keep, 0.0)  # (d, m), ignored -> 0
            sums, counts = class_sums(
                xs.T, yc, self.num_classes, ignore_index=self.ignore_index, validate=False
            )
            self._sums += sums
            self._counts += counts
            self._second.addmm_(xs, xs.T)
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

    def _centred_means(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(present, shifted means (K, d), M̃ = z̄_k − z_G rows (K, d))``."""
        present, n, means = self._shifted_means()
        if self.global_mean == "samples":
            z_g = (means * n[:, None]).sum(dim=0) / n.sum()
        else:
            z_g = means.mean(dim=0)
        return present, means, means - z_g

    def within_class_covariance(self) -> torch.Tensor:
        """``Σ_W = (1/N) Σ_i (z_i − z̄_{y_i})(z_i − z̄_{y_i})^T`` (SPEC §3).

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

    @torch.no_grad()
    def update_ncc(self, features: Any, labels: Any, classifier: Any) -> "NCAccumulator":
        """Add a batch to the NC4 count (pass 2; same data as pass 1).

        A sample counts as a mismatch when the classifier's argmax
        ``argmax_k z^T w_k`` differs from its nearest class mean
        ``argmin_k ‖z − z̄_k‖``. Both run over the classes present in pass 1
        only (absent classes are dropped from every statistic, SPEC §3), and the
        classifier has no bias. Labels are used only to drop ``ignore_index``.

        Parameters
        ----------
        features, labels
            As in :meth:`update`.
        classifier : torch.Tensor or numpy.ndarray, shape (d, num_classes)
            ``W``, one column per class; must be the same in every call and in
            :meth:`compute`.

        Returns
        -------
        NCAccumulator
            ``self``.

        Raises
        ------
        RuntimeError
            Before :meth:`freeze_means`.
        ValueError
            When ``classifier`` differs from the one of an earlier call, or for
            bad input (see :meth:`update`).
        """
        if self._frozen is None:
            raise RuntimeError("update_ncc() needs the class means: call freeze_means() first")
        w = _check_classifier(classifier, self.dim, self.num_classes)
        dev = self._sums.device
        w = w.to(device=dev, dtype=torch.float64)
        if self._ncc_classifier is None:
            self._ncc_classifier = w.clone()
        elif not torch.equal(self._ncc_classifier, w):
            raise ValueError("classifier differs from the one used in earlier update_ncc() calls")
        x, y = _columns(features, labels, self.num_classes, self.ignore_index, self.dim)
        present, means = self._frozen
        w_p = w[:, present]  # (d, K)
        offset = self._shift @ w_p  # logits are not shift-invariant
        sq = means.square().sum(dim=1)
        for xc, yc in _chunks(x, y, dev):
            keep = yc != self.ignore_index
            xs = (xc - self._shift[:, None]).T  # (m, d) view: row-major (m, K) scores below
            by_classifier = (xs @ w_p + offset).argmax(dim=1)
            # ‖z − z̄_k‖² up to the per-sample constant ‖z − s‖², in shifted coordinates
            by_mean = (sq - 2.0 * xs @ means.T).argmin(dim=1)
            self._ncc_mismatch += int(((by_classifier != by_mean) & keep).sum())
            self._ncc_total += int(keep.sum())
        return self

    # -- results ----------------------------------------------------------- #
    def compute(self, classifier: Any = None) -> dict[str, Any]:
        """Neural-collapse statistics of all data seen (SPEC §3).

        Parameters
        ----------
        classifier : torch.Tensor or numpy.ndarray, shape (d, num_classes), optional
            ``W`` (one column per class). When given, the classifier statistics
            are added, and ``ncc_mismatch`` too if :meth:`update_ncc` has run
            (with this same classifier).

        Returns
        -------
        dict
            Python floats unless stated (``K`` = number of classes present):

            ``nc1``
                ``Tr(Σ_W Σ_B^†)/K`` (NC1; pseudo-inverse on the rank-(K−1)
                range of ``Σ_B``).
            ``equinorm_centers``
                unbiased std / mean of ``‖z̄_k − z_G‖``.
            ``equiangularity_centers``
                unbiased std of ``cos(ẑ_k, ẑ_k')`` over distinct pairs
                (CeCo Fig. 2; 0.0 when ``K = 2``).
            ``max_angle_centers``
                mean of ``|cos(ẑ_k, ẑ_k') + 1/(K−1)|`` (CeCo Fig. 4b).
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
            ``self_duality``
                NC3 = ``‖W/‖W‖_F − M̃/‖M̃‖_F‖_F²`` with ``W`` and
                ``M̃ = [z̄_k − z_G]`` both ``(d, K)`` (SPEC's ``W^T`` is for the
                ``(K, d)`` layout) -- only with ``classifier``.
            ``ncc_mismatch``
                NC4, see :meth:`update_ncc` -- only with ``classifier`` after
                the second pass.

        Raises
        ------
        ValueError
            If fewer than 2 classes are present, for a bad ``classifier``, or a
            classifier different from the one given to :meth:`update_ncc`.
        """
        present, _, centred = self._centred_means()
        sigma_w = self.within_class_covariance()
        eq_c, ang_c = _pairwise_cosine_stats(centred)
        out: dict[str, Any] = {
            "nc1": _nc1(sigma_w, centred),
            "equinorm_centers": _equinorm(centred),
            "equiangularity_centers": eq_c,
            "max_angle_centers": ang_c,
            "delta_inter": ang_c,
            "delta_intra": max(float(torch.trace(sigma_w)), 0.0),
            "num_present": int(present.numel()),
            "present": present.tolist(),
            "num_samples": self.num_samples,
        }
        if classifier is not None:
            w = _check_classifier(classifier, self.dim, self.num_classes)
            w = w.to(device=centred.device, dtype=torch.float64)
            cols = w[:, present].T  # (K, d): one row per present class
            eq_w, ang_w = _pairwise_cosine_stats(cols)
            out["equinorm_classifiers"] = _equinorm(cols)
            out["equiangularity_classifiers"] = eq_w
            out["max_angle_classifiers"] = ang_w
            out["self_duality"] = float(
                (cols / cols.norm() - centred / centred.norm()).square().sum()
            )
            if self._ncc_classifier is not None:
                if not torch.equal(self._ncc_classifier, w):
                    raise ValueError("classifier differs from the one given to update_ncc()")
                out["ncc_mismatch"] = self._ncc_mismatch / max(self._ncc_total, 1)
        return out

    def __repr__(self) -> str:
        return (
            f"NCAccumulator(num_classes={self.num_classes}, dim={self.dim}, "
            f"global_mean={self.global_mean!r}, num_samples={self.num_samples})"
        )


# --------------------------------------------------------------------------- #
# one-shot functions
# --------------------------------------------------------------------------- #
def nc_metrics(
    features: Any,
    labels: Any,
    num_classes: int,
    *,
    classifier: Any = None,
    ignore_index: int = 255,
    global_mean: str = "samples",
) -> dict[str, Any]:
    """Neural-collapse statistics NC1--NC4 of one set of features (SPEC §3).

    Papyan, Han & Donoho (2020); CeCo paper Sec. 3.2, Fig. 2, 4, 5; In2NeCT
    Table 2 (``delta_inter``, ``delta_intra``). Runs both passes of
    :class:`NCAccumulator` on the whole input, so it returns exactly what the
    accumulator returns for the same data fed in batches.

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
        ``equinorm_classifiers``, ``equiangularity_classifiers``,
        ``max_angle_classifiers``, ``self_duality`` (NC3) and ``ncc_mismatch``
        (NC4: fraction of kept samples whose ``argmax_k z^T w_k`` over the
        present classes differs from their nearest present class mean; no bias).
    ignore_index : int, default 255
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
        classifier, a wrong ``global_mean``, fewer than 2 classes present.

    Examples
    --------
    >>> import torch
    >>> z = torch.randn(1000, 16); y = torch.randint(0, 5, (1000,))
    >>> stats = nc_metrics(z, y, 5)
    >>> sorted(stats)[:3]
    ['delta_inter', 'delta_intra', 'equiangularity_centers']
    """
    features = _as_tensor(features, "features")
    acc = _accumulate(features, labels, num_classes, ignore_index, global_mean)
    if classifier is not None:
        acc.freeze_means()
        acc.update_ncc(features, labels, classifier)
    return acc.compute(classifier)


def _accumulate(features, labels, num_classes, ignore_index, global_mean) -> NCAccumulator:
    num_classes = _check_num_classes(num_classes)
    features = _as_tensor(features, "features")
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
    ignore_index: int = 255,
    global_mean: str = "samples",
) -> float:
    """In2NeCT's inter-class collapse degree ``Δ_Inter`` (In2NeCT Table 2; SPEC §3).

    ``Δ_Inter = mean over distinct pairs k < k' of |cos(ẑ_k, ẑ_k') + 1/(K−1)|``
    with ``ẑ_k = (z̄_k − z_G)/‖z̄_k − z_G‖`` over the ``K`` classes present.
    The paper's printed formula is garbled; SPEC §3 fixes this reading, which
    coincides with the CeCo paper's maximal-angle statistic (Fig. 4b) and with
    ``nc_metrics(...)["max_angle_centers"]`` -- the same internal function
    computes both. 0 for a simplex ETF of class means.

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray, shape (N, d) or (B, d, H, W)
    labels : torch.Tensor or numpy.ndarray, shape (N,) or (B, H, W)
    num_classes : int
    ignore_index : int, default 255
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
    ignore_index: int = 255,
) -> float:
    """In2NeCT's intra-class collapse degree ``Δ_Intra`` (In2NeCT Table 2; SPEC §3).

    ``Δ_Intra = mean over kept samples of ‖z_{k,i} − z̄_k‖² = Tr(Σ_W)``. The
    paper writes ``Avg_{k,i} ‖(z_{k,i} − z̄_k)(z_{k,i} − z̄_k)^T‖``; the
    (Frobenius or spectral) norm of the rank-one matrix ``v v^T`` is ``‖v‖²``,
    so both readings agree. Units: squared feature units (not scale-free).

    Parameters
    ----------
    features : torch.Tensor or numpy.ndarray, shape (N, d) or (B, d, H, W)
    labels : torch.Tensor or numpy.ndarray, shape (N,) or (B, H, W)
    num_classes : int
    ignore_index : int, default 255

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
