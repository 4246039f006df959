"""Unconstrained-features (layer-peeled) model: neural collapse and minority collapse in miniature.

The *layer-peeled model* (Fang, He, Long & Su, PNAS 2021, "Exploring deep neural
networks via layer-peeled model: minority collapse in imbalanced training") and
the *unconstrained features model* (Mixon et al. 2020; Zhu et al., NeurIPS 2021)
peel off the last layer of a network: the last-layer features ``h_i`` are free
variables, trained jointly with the linear classifier ``W`` (``(d, K)``, one
column per class, CeCo paper Sec. 3.1).  Here the penalised (weight-decay) form
is minimised::

    L(H, W) = (1/N) sum_i [ CE(W^T h_i, y_i) + (feature_decay / 2) ||h_i||^2 ]
              + (weight_decay / 2) ||W||_F^2                                  (UFM)

with ``n_k`` samples in class ``k`` and ``N = sum_k n_k``.

Known properties reproduced here (tested in ``tests/test_ufm.py``):

* balanced classes: every minimiser is neural collapse -- the features of a class
  coincide (NC1), their centred means and the classifier columns form a simplex ETF
  (CeCo paper Def. 1, Eq. 1-2; Fang et al., balanced case);
* ``K_A`` majority classes with ``n_A`` samples and ``K_B`` minority classes with
  ``n_B = n_A / R``: as the imbalance ratio ``R`` grows, the minority classifiers
  become parallel (their pairwise cosine tends to 1) -- *minority collapse*
  (Fang et al., minority-collapse theorem: w_k - w_k' -> 0 as R -> infinity; with
  weight decay it happens at a finite ``R``);
* with the classifier fixed to a simplex ETF only ``H`` is trained; each class's
  feature then solves the same problem whatever ``n_k`` is, so the class means
  stay a simplex ETF for every ``R`` (the fix the CeCo paper builds on, Sec. 4.4).

Cost does not grow with R
-------------------------
For a fixed ``W`` the objective is strictly convex in each ``h_i`` and identical
for all samples of a class, so at a minimiser all ``n_k`` features of class ``k``
are equal.  The model therefore keeps only ``samples_per_class = m`` free features
per class, feature ``j`` of class ``k`` standing for ``n_k / m`` samples (a
per-class weight ``c_k = n_k / (N m)``).  This is the exact UFM objective restricted
to features tied in ``m`` groups; ``m > 1`` keeps a visible within-class
variability that training removes (NC1).  Cost: ``O(K m d)`` per step, independent
of ``n_k``.  Many configurations (e.g. a sweep over R) are trained at once as a batch.

Optimiser: full-batch heavy-ball gradient descent with closed-form gradients.
The gradient of each free feature is divided by its weight ``c_k`` (a diagonal
preconditioner that leaves the stationary points unchanged); without it a
minority feature with weight ``~1/R`` would barely move.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .etf import simplex_etf
from .gradients import mean_pairwise_cosine
from .validation import (
    check_choice,
    check_device,
    check_dtype,
    check_float,
    check_generator,
    check_int,
    check_num_classes,
    check_optional_int,
    check_positive,
    check_real_array,
    check_seed,
    check_tensor,
)

__all__ = [
    "UFMResult",
    "minority_class_sizes",
    "ufm_objective",
    "train_ufm",
    "minority_collapse_sweep",
]

_CLASSIFIERS = ("learned", "fixed_etf")


# --------------------------------------------------------------------------- class sizes
def _as_class_sizes(class_sizes, dtype: torch.dtype, device) -> Tensor:
    sizes = torch.from_numpy(check_real_array(class_sizes, "class_sizes"))
    if sizes.ndim not in (1, 2):
        raise ValueError(f"class_sizes must have shape (K,) or (B, K), got {tuple(sizes.shape)}")
    if sizes.shape[-1] < 2:
        raise ValueError(f"class_sizes must hold at least 2 classes, got shape {tuple(sizes.shape)}")
    if not bool(torch.isfinite(sizes).all()) or bool((sizes <= 0).any()):
        raise ValueError("class_sizes must be positive and finite (a class with n_k = 0 does not exist)")
    return sizes.to(dtype=dtype, device=device)


def minority_class_sizes(
    num_classes: int,
    num_minority: int,
    imbalance_ratio: float,
    *,
    n_majority: float = 1000.0,
) -> Tensor:
    """Class sizes of Fang et al.'s two-level imbalance: ``K_A`` majority, ``K_B`` minority classes.

    Fang et al. (PNAS 2021), Sec. "Minority collapse": the first
    ``K_A = num_classes - num_minority`` classes have ``n_A = n_majority`` samples,
    the last ``K_B = num_minority`` have ``n_B = n_A / R``, ``R = imbalance_ratio``.
    Sizes may be fractional (they enter the model only as weights).

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    num_minority : int
        ``K_B``, ``1 <= K_B <= K - 1``.
    imbalance_ratio : float or sequence of float
        ``R = n_A / n_B >= 1``.  A sequence of ``B`` ratios gives a batch.
    n_majority : float, default 1000
        ``n_A``.

    Returns
    -------
    Tensor
        float64, shape ``(K,)`` (or ``(B, K)`` for a sequence of ratios).

    Raises
    ------
    TypeError, ValueError
        Bad ``num_classes``, ``num_minority`` out of range, ``R < 1``, ``n_majority <= 0``.

    Examples
    --------
    >>> minority_class_sizes(4, 2, 10.0, n_majority=100.0).tolist()
    [100.0, 100.0, 10.0, 10.0]
    """
    K = check_num_classes(num_classes)
    KB = check_int(num_minority, "num_minority", minimum=1, maximum=K - 1)
    n_a = check_positive(n_majority, "n_majority")
    ratios = torch.from_numpy(check_real_array(imbalance_ratio, "imbalance_ratio"))
    if ratios.ndim > 1:
        raise ValueError(f"imbalance_ratio must be a float or a 1-D sequence, got shape {tuple(ratios.shape)}")
    if not bool(torch.isfinite(ratios).all()) or bool((ratios < 1).any()):
        raise ValueError(f"imbalance_ratio must be >= 1 and finite, got {imbalance_ratio!r}")
    r = ratios.reshape(-1, 1)
    sizes = torch.full((r.shape[0], K), n_a, dtype=torch.float64)
    sizes[:, K - KB:] = n_a / r
    return sizes[0] if ratios.ndim == 0 else sizes


# --------------------------------------------------------------------------- objective
def _weights(class_sizes: Tensor, samples_per_class: int) -> Tensor:
    """Per free feature weight ``c = n_k / (N m)``: shape ``(..., K * m)``."""
    c = class_sizes / class_sizes.sum(dim=-1, keepdim=True) / samples_per_class
    return c.repeat_interleave(samples_per_class, dim=-1)


def ufm_objective(
    features: Tensor,
    classifier: Tensor,
    class_sizes,
    *,
    weight_decay: float,
    feature_decay: float,
) -> Tensor:
    """Penalised unconstrained-features / layer-peeled objective (UFM, module docstring).

    ``L = sum_{k,j} c_k [CE(W^T h_kj, k) + feature_decay/2 ||h_kj||^2] + weight_decay/2 ||W||_F^2``
    with ``c_k = n_k / (N m)``: the exact UFM objective of ``n_k`` samples per class
    tied into ``m`` groups (Fang et al. 2021, penalised form; Zhu et al. 2021).

    Parameters
    ----------
    features : Tensor
        ``H`` of shape ``(K, m, d)`` (or batched ``(B, K, m, d)``).
    classifier : Tensor
        ``W`` of shape ``(d, K)`` (or ``(B, d, K)``).
    class_sizes : array-like
        ``n_k``, shape ``(K,)`` (or ``(B, K)``), positive.
    weight_decay, feature_decay : float
        Penalties on ``W`` and on the features (>= 0).

    Returns
    -------
    Tensor
        Scalar (or ``(B,)``), differentiable in ``features`` and ``classifier``.
    """
    check_tensor(features, "features", kind="floating", ndim=(3, 4), shape="(K, m, d) or (B, K, m, d)")
    check_tensor(classifier, "classifier", kind="floating", ndim=(2, 3), shape="(d, K) or (B, d, K)")
    weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
    feature_decay = check_float(feature_decay, "feature_decay", minimum=0.0)
    sizes = _as_class_sizes(class_sizes, features.dtype, features.device)
    K, m, d = features.shape[-3:]
    if sizes.shape[-1] != K or classifier.shape[-2:] != (d, K):
        raise ValueError(
            f"shapes disagree: features {tuple(features.shape)}, classifier {tuple(classifier.shape)}, "
            f"class_sizes {tuple(sizes.shape)} (expected (..., K, m, d), (..., d, K), (..., K))"
        )
    c = _weights(sizes, m)  # (..., K m)
    H = features.reshape(*features.shape[:-3], K * m, d)
    logits = H @ classifier  # (..., K m, K)
    labels = torch.arange(K, device=features.device).repeat_interleave(m)
    logp = torch.log_softmax(logits, dim=-1)
    ce = -logp.gather(-1, labels.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    reg_h = 0.5 * feature_decay * H.pow(2).sum(-1)
    return (c * (ce + reg_h)).sum(-1) + 0.5 * weight_decay * classifier.pow(2).sum((-2, -1))


# --------------------------------------------------------------------------- result
@dataclass
class UFMResult:
    """Outcome of :func:`train_ufm`.

    Attributes
    ----------
    features : Tensor
        Free features ``(K, m, d)`` -- ``m = samples_per_class`` per class (batched: ``(B, K, m, d)``).
    classifier : Tensor
        ``W`` of shape ``(d, K)`` (batched ``(B, d, K)``); the fixed ETF for ``classifier="fixed_etf"``.
    class_sizes : Tensor
        ``n_k`` used as weights, ``(K,)`` (batched ``(B, K)``), float64.
    loss_history : Tensor
        Objective (UFM) at steps ``0, log_every, 2 log_every, ...`` and after the last step,
        ``(L,)`` (batched ``(B, L)``).
    loss_steps : Tensor
        Step index of each entry of ``loss_history``, ``(L,)`` int64.
    classifier_kind : str
        ``"learned"`` or ``"fixed_etf"``.
    """

    features: Tensor
    classifier: Tensor
    class_sizes: Tensor
    loss_history: Tensor
    loss_steps: Tensor
    classifier_kind: str

    @property
    def batched(self) -> bool:
        return self.features.ndim == 4

    @property
    def labels(self) -> Tensor:
        """Labels of :meth:`flat_features`, ``(K m,)`` int64 (class ``k`` repeated ``m`` times)."""
        K, m = self.features.shape[-3:-1]
        return torch.arange(K, device=self.features.device).repeat_interleave(m)

    def flat_features(self) -> Tensor:
        """Features as samples, ``(K m, d)`` (batched ``(B, K m, d)``), ordered like :attr:`labels`."""
        K, m, d = self.features.shape[-3:]
        return self.features.reshape(*self.features.shape[:-3], K * m, d)

    def class_means(self) -> Tensor:
        """Class means ``z_bar_k`` as columns, ``(d, K)`` (batched ``(B, d, K)``) -- CeCo paper Eq. 3."""
        return self.features.mean(dim=-2).transpose(-2, -1)

    def __getitem__(self, index: int) -> "UFMResult":
        """The ``index``-th configuration of a batched result (an unbatched :class:`UFMResult`)."""
        if not self.batched:
            raise TypeError("indexing needs a batched UFMResult (class_sizes of shape (B, K))")
        return UFMResult(
            self.features[index], self.classifier[index], self.class_sizes[index],
            self.loss_history[index], self.loss_steps, self.classifier_kind,
        )


# --------------------------------------------------------------------------- training
def train_ufm(
    class_sizes,
    dim: int,
    *,
    classifier: str = "learned",
    steps: int = 600,
    lr: float = 0.5,
    momentum: float = 0.9,
    weight_decay: float = 2e-2,
    feature_decay: float = 2e-2,
    samples_per_class: int = 4,
    log_every: int = 10,
    etf_scale: float = 1.0,
    init_scale: float = 0.1,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    cpu_threads: int | None = 1,
) -> UFMResult:
    """Train the unconstrained-features (layer-peeled) model (UFM, module docstring) to a minimiser.

    Full-batch heavy-ball gradient descent with closed-form gradients, vectorised
    over classes and over a batch of configurations::

        P = softmax(H W),  G = c * (P - Y)
        dL/dW = H^T G + weight_decay W,   dL/dh_kj = (G W^T)_kj + feature_decay c_k h_kj

    and the feature step is preconditioned by ``1 / c_k`` (see module docstring).

    Parameters
    ----------
    class_sizes : array-like
        ``n_k`` (positive, may be fractional), shape ``(K,)``; or ``(B, K)`` to train
        ``B`` independent models at once (same initialisation for all).
        See :func:`minority_class_sizes`.
    dim : int
        Feature dimension ``d``.  ``d >= K - 1`` is needed for an ETF; ``classifier="fixed_etf"``
        requires it.
    classifier : {"learned", "fixed_etf"}, default "learned"
        Train ``W`` jointly, or fix it to a simplex ETF with column norm ``etf_scale``
        (:func:`ceco_lite.simplex_etf`, CeCo paper Eq. 1) and train only ``H``.
    steps : int, default 600
        Gradient steps (the defaults reach the minimiser to ~1e-10 in the objective
        for K <= 10, R <= 1000 except right at the minority-collapse threshold).
    lr : float, default 0.5
    momentum : float, default 0.9
        Heavy-ball momentum in ``[0, 1)``.
    weight_decay : float, default 2e-2
        Penalty on ``W`` (ignored for the fixed ETF).
    feature_decay : float, default 2e-2
        Penalty on the features.  With 2e-2 for both, K = 10 and K_B = 5 the
        minority classifiers become parallel near R = 500.
    samples_per_class : int, default 4
        ``m``, the number of free features per class.
    log_every : int, default 10
        Record the objective every this many steps (and after the last step).
    etf_scale : float, default 1.0
        Column norm of the fixed ETF.
    init_scale : float, default 0.1
        Standard deviation of the Gaussian initialisation of ``H`` and ``W``.
    generator : torch.Generator, optional
        Randomness of the initialisation (and of the fixed ETF's rotation).
    seed : int, optional
        Shortcut for ``generator=torch.Generator().manual_seed(seed)``; give one or neither.
    dtype : torch.dtype, default torch.float64
    device : torch.device or str, optional
    cpu_threads : int or None, default 1
        PyTorch CPU threads during training (restored afterwards); ``None`` leaves the
        setting alone.  See Notes.

    Returns
    -------
    UFMResult
        Batched if ``class_sizes`` is 2-D (index it to get one configuration).

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named in the message).

    Notes
    -----
    On CPU the loop runs on ``cpu_threads`` PyTorch threads (default one,
    ``torch.set_num_threads``, restored afterwards): each step is a dozen ops on a few
    hundred numbers, for which synchronising threads costs more than it saves
    (``benchmarks/bench_widgets.py`` measures one thread against the default).
    """
    check_choice(classifier, "classifier", _CLASSIFIERS)
    d = check_int(dim, "dim", minimum=1)
    steps = check_int(steps, "steps", minimum=0)
    m = check_int(samples_per_class, "samples_per_class", minimum=1)
    log_every = check_int(log_every, "log_every", minimum=1)
    lr = check_positive(lr, "lr")
    momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0, strict_maximum=True)
    wd = check_float(weight_decay, "weight_decay", minimum=0.0)
    fd = check_float(feature_decay, "feature_decay", minimum=0.0)
    init_scale = check_positive(init_scale, "init_scale")
    cpu_threads = check_optional_int(cpu_threads, "cpu_threads", minimum=1)
    check_dtype(dtype)
    check_generator(generator)
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(check_seed(seed))
    device = check_device(device)

    sizes = _as_class_sizes(class_sizes, torch.float64, "cpu")
    batched = sizes.ndim == 2
    sizes_b = sizes if batched else sizes[None]
    B, K = sizes_b.shape
    if classifier == "fixed_etf" and d < K - 1:
        raise ValueError(f"classifier='fixed_etf' needs dim >= num_classes - 1 = {K - 1}, got dim={d}")

    gen_device = generator.device if generator is not None else torch.device("cpu")
    H0 = init_scale * torch.randn(K * m, d, generator=generator, dtype=torch.float64, device=gen_device)
    if classifier == "fixed_etf":
        W0 = simplex_etf(K, d, scale=etf_scale, generator=generator, dtype=torch.float64)
    else:
        W0 = init_scale * torch.randn(d, K, generator=generator, dtype=torch.float64, device=gen_device)
    H = H0.to(device=device, dtype=dtype).expand(B, K * m, d).clone()
    W = W0.to(device=device, dtype=dtype).expand(B, d, K).clone()

    c = _weights(sizes_b, m).to(device=device, dtype=dtype)[..., None]  # (B, K m, 1)
    labels = torch.arange(K, device=device).repeat_interleave(m)
    Y = torch.nn.functional.one_hot(labels, K).to(dtype)  # (K m, K)
    learn_w = classifier == "learned"
    vH = torch.zeros_like(H)
    vW = torch.zeros_like(W)
    logged = [t for t in range(0, steps, log_every)] + [steps]
    history = torch.empty(B, len(logged), dtype=dtype, device=device)

    def objective() -> Tensor:  # (UFM) for every configuration, (B,)
        Z = torch.bmm(H, W)
        ce = torch.logsumexp(Z, dim=-1, keepdim=True) - (Z * Y).sum(-1, keepdim=True)
        sq_h = H.pow(2).sum(-1, keepdim=True)
        return (c * (ce + 0.5 * fd * sq_h)).sum((1, 2)) + 0.5 * wd * W.pow(2).sum((1, 2))

    def gradient_descent() -> None:
        slot = 0
        for t in range(steps):
            if t % log_every == 0:
                history[:, slot] = objective()
                slot += 1
            R = torch.softmax(torch.bmm(H, W), dim=-1).sub_(Y)  # P - Y  (= G / c)
            # feature step preconditioned by 1/c:  (G W^T + fd c H) / c = (P - Y) W^T + fd H
            gH = torch.baddbmm(H, R, W.transpose(1, 2), beta=fd)
            if learn_w:
                gW = torch.baddbmm(W, (c * H).transpose(1, 2), R, beta=wd)  # H^T G + wd W
                vW.mul_(momentum).sub_(gW, alpha=lr)
                W.add_(vW)
            vH.mul_(momentum).sub_(gH, alpha=lr)
            H.add_(vH)
        history[:, slot] = objective()

    # see Notes: tiny CPU ops run faster on one thread
    previous_threads = torch.get_num_threads()
    switch = device.type == "cpu" and cpu_threads is not None and cpu_threads != previous_threads
    with torch.no_grad():
        if switch:
            torch.set_num_threads(cpu_threads)
        try:
            gradient_descent()
        finally:
            if switch:
                torch.set_num_threads(previous_threads)
    features = H.reshape(B, K, m, d)
    steps_t = torch.tensor(logged, dtype=torch.int64)
    if not batched:
        return UFMResult(features[0], W[0], sizes.to(dtype=torch.float64), history[0], steps_t, classifier)
    return UFMResult(features, W, sizes.to(dtype=torch.float64), history, steps_t, classifier)


# --------------------------------------------------------------------------- minority collapse
def minority_collapse_sweep(
    imbalance_ratios,
    num_classes: int,
    num_minority: int,
    dim: int,
    *,
    classifier: str = "learned",
    **train_kwargs,
) -> dict:
    """Minority collapse against the imbalance ratio R (Fang et al. 2021, Fig. of minority collapse).

    Trains one UFM per ratio -- all at once, as a batch (:func:`train_ufm`) -- with
    :func:`minority_class_sizes` and measures, among the ``K_B`` minority classes,
    the mean pairwise cosine (:func:`ceco_lite.gradients.mean_pairwise_cosine`)
    of the classifiers and of the centred class means
    ``z_bar_k - z_G``.  Here ``z_G`` is the *unweighted* mean of the class means
    (docs/conventions.md, section global-mean; ``global_mean="classes"`` of
    :func:`ceco_lite.nc.nc_metrics`): the sample-weighted mean of CeCo
    paper Sec. 3.1 sits next to the majority means when R is large and would make
    even an exact ETF of means (the fixed-ETF solution) look non-equiangular.

    Parameters
    ----------
    imbalance_ratios : sequence of float
        Ratios ``R >= 1``.
    num_classes, num_minority : int
        ``K`` and ``K_B >= 2`` (a pairwise cosine needs two minority classes).
    dim : int
        Feature dimension.
    classifier : {"learned", "fixed_etf"}
    **train_kwargs
        Passed to :func:`train_ufm` (``steps``, ``weight_decay``, ``seed``, ...).

    Returns
    -------
    dict
        ``"ratios"`` (R,) float64, ``"classifier_cosine"`` (R,), ``"feature_cosine"`` (R,),
        ``"result"`` (the batched :class:`UFMResult`).
    """
    check_int(num_minority, "num_minority", minimum=2, hint="a pairwise cosine needs two minority classes")
    ratios = torch.from_numpy(check_real_array(imbalance_ratios, "imbalance_ratios")).reshape(-1)
    sizes = minority_class_sizes(num_classes, num_minority, ratios)
    result = train_ufm(sizes, dim, classifier=classifier, **train_kwargs)
    minority = list(range(num_classes - num_minority, num_classes))
    means = result.class_means().to(torch.float64)  # (B, d, K)
    z_g = means.mean(-1, keepdim=True)  # unweighted mean of class means (global_mean="classes")
    return {
        "ratios": ratios,
        "classifier_cosine": torch.stack(
            [mean_pairwise_cosine(w, minority) for w in result.classifier.to(torch.float64)]),
        "feature_cosine": torch.stack([mean_pairwise_cosine(h, minority) for h in means - z_g]),
        "result": result,
    }
