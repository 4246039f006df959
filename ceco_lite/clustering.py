"""A tiny imbalance-aware clustering demo after IDDC (lesson 6).

IDDC (Liu, Zhang & Tang, IJCV 2024) clusters pixels without labels by
transferring the affinity structure of pixel features to the label space and adds a
Weibull regulariser (:func:`ceco_lite.iddc.weibull_imbalance_regularizer`) that
prevents empty clusters without forcing equal cluster sizes. This module reproduces
that mechanism at toy scale: a small softmax clustering head is trained on synthetic
imbalanced "pixel features" (Gaussian blobs with imbalanced sizes) with

``L = L_pos + L_neg + prior_weight * R(p)``,

where ``L_pos``/``L_neg`` are the affinity-transfer terms of the released IDDC code
(:func:`affinity_clustering_loss`) and ``R`` is either the Weibull regulariser, the
uniform (marginal-entropy) prior :func:`ceco_lite.iddc.uniform_prior_regularizer`,
or nothing. Lesson 6 moves an imbalance slider and compares the resulting cluster
sizes with the true sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.datasets import make_blobs
from sklearn.metrics import normalized_mutual_info_score

from data_utils.profiles import long_tail_profile

from .iddc import uniform_prior_regularizer, weibull_imbalance_regularizer
from .validation import (
    check_choice,
    check_float,
    check_imbalance_factor,
    check_int,
    check_positive,
    check_seed,
    check_tensor,
)

__all__ = [
    "PRIORS",
    "ClusteringResult",
    "imbalanced_blobs",
    "affinity_clustering_loss",
    "train_clustering_head",
]

#: Priors accepted by :func:`train_clustering_head`.
PRIORS = ("weibull", "uniform", "none")


def imbalanced_blobs(
    num_clusters: int,
    imbalance_factor: float,
    *,
    n_max: int = 400,
    dim: int = 16,
    radius: float = 2.0,
    cluster_std: float = 0.5,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Gaussian blobs with exponentially imbalanced sizes (synthetic pixel features).

    Cluster ``i`` holds ``n_i = int(n_max * IF ** (-i / (C - 1)))`` points (the
    long-tailed profile of Cao et al. 2019, docs/conventions.md, section cifar-lt,
    :func:`data_utils.profiles.long_tail_profile`); centres are random points on a
    sphere of radius ``radius`` in ``R^dim``; points are drawn with
    :func:`sklearn.datasets.make_blobs`.

    Parameters
    ----------
    num_clusters : int
        Number of true clusters ``C`` (>= 2).
    imbalance_factor : float
        ``n_max / n_min`` (>= 1).
    n_max : int, default 400
        Size of the largest cluster.
    dim : int, default 16
        Feature dimension.
    radius : float, default 2.0
        Norm of the blob centres.
    cluster_std : float, default 0.5
        Standard deviation of each blob (per coordinate).
    seed : int, default 0
        Seed of the centres and of the points.

    Returns
    -------
    features : torch.Tensor
        ``(N, dim)`` float32.
    labels : torch.Tensor
        ``(N,)`` int64 true cluster ids ``0..C-1`` (cluster 0 is the largest).
    sizes : numpy.ndarray
        ``(C,)`` int64 true cluster sizes.

    Raises
    ------
    TypeError, ValueError
        If ``num_clusters < 2``, ``imbalance_factor < 1``, ``n_max < 1``,
        ``dim < 1``, ``radius`` or ``cluster_std`` not positive, or a bad ``seed``.
    """
    C = check_int(num_clusters, "num_clusters", minimum=2)
    imbalance_factor = check_imbalance_factor(imbalance_factor)
    n_max = check_int(n_max, "n_max", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    radius = check_positive(radius, "radius")
    cluster_std = check_positive(cluster_std, "cluster_std")
    seed = check_seed(seed)
    sizes = np.maximum((n_max * long_tail_profile(C, imbalance_factor)).astype(np.int64), 1)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, dim))
    centres *= radius / np.linalg.norm(centres, axis=1, keepdims=True)
    X, y = make_blobs(
        n_samples=sizes.tolist(), centers=centres, cluster_std=cluster_std, random_state=seed
    )
    return (
        torch.as_tensor(X, dtype=torch.float32),
        torch.as_tensor(y, dtype=torch.int64),
        sizes,
    )


def affinity_clustering_loss(
    features: torch.Tensor,
    probs: torch.Tensor,
    *,
    shift: float = 0.5,
    shift_neg: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IDDC's affinity-transfer terms: similar features -> similar cluster codes.

    With feature correlations ``f_ij = cos(x_i, x_j)`` (no gradient) and code
    correlations ``c_ij = p_i^T p_j``, following ``CrossContrastiveCorrelationLoss``
    of the public IDDC code (one view, all pairs of the batch):

    * ``L_pos = mean_{f_ij > shift} exp(1 - c_ij) * max(f_ij, 1e-8)`` pulls the codes
      of feature-similar pairs together;
    * ``L_neg = mean_{f_ij < shift_neg} exp(c_ij) * (1 - max(f_ij, 0))`` pushes the
      codes of dissimilar pairs apart.

    Parameters
    ----------
    features : torch.Tensor
        ``(B, d)`` features (normalised inside).
    probs : torch.Tensor
        ``(B, C)`` cluster probabilities (rows sum to one).
    shift, shift_neg : float
        Cosine thresholds for positive and negative pairs.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        Scalars ``L_pos`` and ``L_neg`` (zero when no pair passes a threshold).

    Raises
    ------
    TypeError
        Not floating tensors.
    ValueError
        If the shapes do not match.
    """
    check_tensor(features, "features", kind="floating")
    check_tensor(probs, "probs", kind="floating")
    if features.ndim != 2 or probs.ndim != 2 or features.shape[0] != probs.shape[0]:
        raise ValueError(
            "features must be (B, d) and probs (B, C) with the same B, got "
            f"{tuple(features.shape)} and {tuple(probs.shape)}"
        )
    with torch.no_grad():
        fn = F.normalize(features.to(probs.dtype), dim=1)
        f_cor = fn @ fn.T
        pos = f_cor > shift
        neg = f_cor < shift_neg
    c_cor = probs @ probs.T
    zero = probs.sum() * 0
    l_pos = (torch.exp(1 - c_cor) * f_cor.clamp(min=1e-8))[pos].mean() if pos.any() else zero
    l_neg = (torch.exp(c_cor) * (1 - f_cor.clamp(min=0)))[neg].mean() if neg.any() else zero
    return l_pos, l_neg


@dataclass
class ClusteringResult:
    """Outcome of :func:`train_clustering_head`.

    Attributes
    ----------
    prior : str
        ``"weibull"``, ``"uniform"`` or ``"none"``.
    assignments : numpy.ndarray
        ``(N,)`` int64 predicted cluster of each point (argmax of the head).
    cluster_sizes : numpy.ndarray
        ``(C,)`` int64 number of points per predicted cluster (cluster id order).
    true_sizes : numpy.ndarray or None
        ``(C_true,)`` true sizes when labels were given.
    matched_accuracy : float or None
        Accuracy after the best one-to-one matching of clusters to labels
        (Hungarian, :func:`scipy.optimize.linear_sum_assignment`).
    nmi : float or None
        Normalised mutual information (:func:`sklearn.metrics.normalized_mutual_info_score`).
    size_distance : float or None
        Total-variation distance between the sorted predicted and the sorted true
        size distributions, ``0.5 * sum_r |p_(r) - q_(r)|`` with sizes divided by N
        (0: the cluster sizes match the true sizes whatever the assignment;
        padded with zeros when the numbers of clusters differ).
    loss_history : list of float
        Total loss per step.
    """

    prior: str
    assignments: np.ndarray
    cluster_sizes: np.ndarray
    true_sizes: np.ndarray | None = None
    matched_accuracy: float | None = None
    nmi: float | None = None
    size_distance: float | None = None
    loss_history: list = field(default_factory=list)

    @property
    def num_empty(self) -> int:
        """Number of predicted clusters with no point."""
        return int((self.cluster_sizes == 0).sum())

    def sorted_sizes(self) -> np.ndarray:
        """Predicted cluster sizes sorted from largest to smallest."""
        return np.sort(self.cluster_sizes)[::-1]


def _prior_term(prior: str, probs: torch.Tensor) -> torch.Tensor:
    p4 = probs[:, :, None, None]  # (B, C, 1, 1): the regularisers average over batch and pixels
    if prior == "weibull":
        return weibull_imbalance_regularizer(p4)
    if prior == "uniform":
        return uniform_prior_regularizer(p4)
    return probs.sum() * 0


def train_clustering_head(
    features: torch.Tensor,
    num_clusters: int,
    *,
    prior: str = "weibull",
    prior_weight: float = 0.5,
    labels: torch.Tensor | None = None,
    steps: int = 200,
    batch_size: int = 256,
    lr: float = 1e-2,
    hidden: int = 64,
    shift: float = 0.5,
    shift_neg: float = 0.0,
    seed: int = 0,
) -> ClusteringResult:
    """Train a small softmax clustering head with IDDC's objective and a size prior.

    Minimises ``L_pos + L_neg + prior_weight * R(p)`` (see
    :func:`affinity_clustering_loss`) with Adam on random mini-batches, where ``R``
    is IDDC's Weibull regulariser (docs/conventions.md, section iddc;
    :func:`ceco_lite.iddc.weibull_imbalance_regularizer`,
    lambda = 5, k = 0.3), the uniform prior
    (:func:`ceco_lite.iddc.uniform_prior_regularizer`) or nothing (``"none"``).
    The head is ``Linear(d, hidden) - ReLU - Linear(hidden, C)`` (a single linear
    layer when ``hidden=0``). Runs on the CPU in about a second for ``N ~ 2000``.

    Parameters
    ----------
    features : torch.Tensor
        ``(N, d)`` float features.
    num_clusters : int
        Number of clusters ``C`` of the head (>= 2).
    prior : {"weibull", "uniform", "none"}, default "weibull"
        Size prior.
    prior_weight : float, default 0.5
        Weight of the prior (>= 0).
    labels : torch.Tensor, optional
        ``(N,)`` true labels, only used to score the result.
    steps, batch_size : int
        Optimisation steps and mini-batch size.
    lr : float, default 1e-2
        Adam learning rate.
    hidden : int, default 64
        Hidden width of the head (0: linear head).
    shift, shift_neg : float
        Thresholds of :func:`affinity_clustering_loss`.
    seed : int, default 0
        Seed of the initialisation and the mini-batches (runs are deterministic).

    Returns
    -------
    ClusteringResult

    Raises
    ------
    TypeError, ValueError
        For an unknown prior, a negative weight, bad shapes or dtypes, too few
        clusters, or another argument out of its range (named in the message).
    """
    check_choice(prior, "prior", PRIORS)
    prior_weight = check_float(prior_weight, "prior_weight", minimum=0.0)
    C = check_int(num_clusters, "num_clusters", minimum=2)
    if not isinstance(features, torch.Tensor):
        features = torch.as_tensor(features)
    check_tensor(features, "features", kind="floating", ndim=2, shape="(N, d)")
    if features.shape[0] < 1:
        raise ValueError(f"features must hold at least one point, got shape {tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contain non-finite values (NaN/inf)")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.shape != features.shape[:1]:
            raise ValueError(f"labels must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
        check_tensor(labels, "labels", kind="integer")
        if labels.numel() and int(labels.min()) < 0:
            raise ValueError(f"labels must be non-negative class ids, found {int(labels.min())}")
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    lr = check_positive(lr, "lr")
    hidden = check_int(hidden, "hidden", minimum=0)
    shift = check_float(shift, "shift", minimum=-1.0, maximum=1.0)
    shift_neg = check_float(shift_neg, "shift_neg", minimum=-1.0, maximum=1.0)
    seed = check_seed(seed)

    X = features.detach().float()
    N, d = X.shape
    gen = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if hidden:
            head = torch.nn.Sequential(
                torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, C)
            )
        else:
            head = torch.nn.Linear(d, C)
    finally:
        torch.random.set_rng_state(torch_state)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    history: list[float] = []
    bs = min(batch_size, N)
    for _ in range(steps):
        idx = torch.randint(0, N, (bs,), generator=gen)
        xb = X[idx]
        probs = head(xb).softmax(dim=1)
        l_pos, l_neg = affinity_clustering_loss(xb, probs, shift=shift, shift_neg=shift_neg)
        loss = l_pos + l_neg
        if prior != "none" and prior_weight > 0:
            loss = loss + prior_weight * _prior_term(prior, probs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))

    with torch.no_grad():
        assignments = head(X).argmax(dim=1).numpy().astype(np.int64)
    sizes = np.bincount(assignments, minlength=C).astype(np.int64)
    result = ClusteringResult(prior=prior, assignments=assignments, cluster_sizes=sizes,
                              loss_history=history)
    if labels is not None:
        y = labels.numpy().astype(np.int64)
        K = int(y.max()) + 1
        cm = np.zeros((K, C), dtype=np.int64)
        np.add.at(cm, (y, assignments), 1)
        r, c = linear_sum_assignment(-cm)
        result.true_sizes = np.bincount(y, minlength=K).astype(np.int64)
        result.matched_accuracy = float(cm[r, c].sum() / len(y))
        result.nmi = float(normalized_mutual_info_score(y, assignments))
        m = max(K, C)
        p = np.zeros(m)
        q = np.zeros(m)
        p[:C] = np.sort(sizes)[::-1] / len(y)
        q[:K] = np.sort(result.true_sizes)[::-1] / len(y)
        result.size_distance = float(0.5 * np.abs(p - q).sum())
    return result
