"""Center Collapse Regularizer (CeCo), CeCo paper Eq. 3-5, and the released-code variant.

``L_CR = CE(Z̄^T W*, [1..K])`` over the classes present in the batch: each class
centre ``z̄_k`` (Eq. 3) is classified by a fixed simplex ETF ``W*`` (Eq. 1, scaled
as in Sec. 4.2) and its label is ``k``.  Eq. 4's denominator is a typo; the
softmax runs over classes ``k'`` for the same centre (Eq. 7; docs/conventions.md,
section ceco-loss):

``L_CR = - sum_k log( exp(z̄_k^T w*_k) / sum_k' exp(z̄_k^T w*_k') )``.

Total loss (Eq. 5): ``L_total = L_PR + lambda * L_CR``; the paper's best
``lambda`` is 0.4 (ScanNet200) / 0.5 (ADE20K).  The branch is dropped at
inference (zero cost).
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .centers import align_features_and_labels, class_sums, no_autocast
from .etf import simplex_etf
from .validation import (
    IGNORE_INDEX,
    check_bool,
    check_choice,
    check_float,
    check_generator,
    check_ignore_index,
    check_int,
    check_features_labels,
    check_labels,
    check_num_classes,
    check_positive,
    check_tensor,
)

__all__ = ["CenterCollapseLoss", "ReleasedCenterCollapseLoss", "CompiledCenterLoss", "REDUCTIONS", "ALIGN_MODES"]

#: Reductions of the centre losses over the present classes (docs/conventions.md, section ceco-loss).
REDUCTIONS = ("mean", "sum")
#: How features and labels at different resolutions are matched (:func:`ceco_lite.centers.align_features_and_labels`).
ALIGN_MODES = ("nearest_labels", "bilinear_features")


def _resolve_sync(sync, process_group) -> str:
    if sync is None:
        sync = "global" if process_group is not None else "local"
    check_choice(sync, "sync", ("local", "global"))
    if process_group is not None and sync == "local":
        raise ValueError("process_group is given but sync='local'; use sync='global' (or leave sync=None)")
    return sync


class _AllReduceSum(torch.autograd.Function):
    """Autograd-aware all-reduce (SUM): forward sums over the group, backward all-reduces the gradient.

    The same as ``torch.distributed.nn.functional.all_reduce`` (whose backward is
    an all-reduce SUM of ``grad_output``), which torch 2.14 deprecates with a
    FutureWarning in favour of the private ``torch.distributed._functional_collectives``;
    written out here so the library emits no warning and uses public API only.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def _global_sums(sums: Tensor, counts: Tensor, process_group) -> tuple[Tensor, Tensor]:
    """All-reduce per-class sums (autograd-aware) and counts over ``process_group``.

    No-op when torch.distributed is not available or not initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return sums, counts
    group = process_group if process_group is not None else dist.group.WORLD
    sums = _AllReduceSum.apply(sums, group)
    counts = counts.clone()
    dist.all_reduce(counts, op=dist.ReduceOp.SUM, group=group)
    return sums, counts


def _masked_ce(logits: Tensor, present: Tensor, reduction: str) -> Tensor:
    """Cross-entropy of row k of ``logits`` against label k, over present rows only.

    ``-log_softmax(logits)[k, k]`` is read off the diagonal (no target tensor,
    no gather) and weighted by ``present`` in one dot product.  Absent rows are
    computed (zero centre, finite logits) and weighted by 0, so no boolean
    indexing (no host sync on CUDA) is needed and an empty batch gives an exact
    0 that stays connected to the graph.
    """
    w = present.to(logits.dtype)
    ce = -torch.log_softmax(logits, dim=1).diagonal()  # (K,): -log softmax_k'(z̄_k^T W*)[k]
    total = torch.dot(ce, w)
    if reduction == "sum":
        return total
    return total / w.sum().clamp_min(1.0)


def _center_ce(sums: Tensor, counts: Tensor, etf: Tensor, reduction: str) -> Tensor:
    """L_CR from per-class sums (autograd derives the backward, Eq. 6 and 8).

    ``z̄ = sums / n`` (Eq. 3), logits ``z̄^T W*``, masked cross-entropy (Eq. 4, 7); shared
    by :class:`CenterCollapseLoss` and the compiled graph of :class:`CompiledCenterLoss`.
    """
    centers = sums / counts.clamp_min(1).to(sums.dtype).unsqueeze(1)
    return _masked_ce(centers @ etf, counts > 0, reduction)


class CenterCollapseLoss(nn.Module):
    """Center collapse regularization loss L_CR (CeCo paper Eq. 3-4; Eq. 4 corrected as in
    docs/conventions.md, section ceco-loss).

    For a batch of pixel/point features ``z_i`` with labels ``y_i``:

    1. class centres ``z̄_k = mean_{y_i = k} z_i`` over the whole batch (Eq. 3),
       ignoring ``ignore_index``; absent classes are dropped;
    2. logits ``z̄_k^T W*`` with ``W*`` a simplex ETF ``(dim, K)`` of column norm
       ``scale`` (Eq. 1, scaled form of Sec. 4.2);
    3. ``L_CR = sum or mean over present k of -log softmax_k'(z̄_k^T W*)[k]``
       (Eq. 4 with the softmax over classes ``k'`` of the same centre, Eq. 7).

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    dim : int
        Feature dimension ``d >= K - 1``.
    scale : float, default 1.0
        ETF column norm ``alpha`` (Sec. 4.2).  The released code uses unit
        columns and multiplies the logits by 5 instead (see
        :class:`ReleasedCenterCollapseLoss`).
    reduction : {"mean", "sum"}, default "mean"
        ``"mean"`` over present centres (released code, default); ``"sum"``
        reproduces Eq. 4 literally.
    learnable : bool, default False
        ``False``: ``W*`` is a registered buffer (in ``state_dict``, moved by
        ``.to()``, never trained) -- the paper's fixed CC.  ``True``: an
        ``nn.Parameter`` initialised to the ETF (the "learned CC" ablation of Table 1).
    generator : torch.Generator, optional
        Randomness of the ETF rotation ``U``.
    ignore_index : int or None, default 255
    align : {"nearest_labels", "bilinear_features"}, default "nearest_labels"
        How ``(B, d, h, w)`` features at another resolution than ``(B, H, W)``
        labels are matched (:func:`ceco_lite.centers.align_features_and_labels`);
        the released code upsamples the features bilinearly.
    process_group : ProcessGroup, optional
        If given, centres are computed over the global batch of this group (implies
        ``sync="global"``).
    sync : {"local", "global"}, optional
        ``"local"`` (default without ``process_group``): centres of the per-process
        batch, as the released code.  ``"global"``: per-class sums (with an
        autograd-aware all-reduce, equivalent to
        ``torch.distributed.nn.functional.all_reduce``, whose backward
        all-reduces the gradient) and counts are summed over ``process_group``
        (default: the world) before dividing; without an initialised process
        group this is the same as ``"local"``.

    Notes
    -----
    Gradient bookkeeping with ``sync="global"`` and DDP.  Every rank computes
    the same global loss ``L`` from the all-reduced sums.  The backward of the
    autograd-aware all-reduce sums the incoming gradients of all ranks, so the
    gradient reaching a rank's local sums -- and hence its local features -- is
    ``world_size * dL/dsums``: each rank's ``features.grad`` is ``world_size``
    times the single-process gradient of ``L`` on the global batch.  DDP then
    *averages* parameter gradients over ranks (divides the sum by
    ``world_size``), which cancels the factor: the parameters receive exactly
    the gradient of the single-process loss on the global batch.  Without DDP
    averaging (e.g. a manual all-reduce SUM of gradients) divide by
    ``world_size`` yourself.  A learnable ETF (``learnable=True``) sits after
    the all-reduce, so its gradient is the same ``dL/dW*`` on every rank and
    DDP's average leaves it unchanged.  The ETF must be identical on all ranks:
    seed ``generator`` identically or rely on DDP's buffer broadcast from rank 0.
    ``tests/test_distributed.py`` checks this with two gloo processes (loss equal
    to the single-process loss on the concatenated batch; ``features.grad`` =
    2 x the single-process gradient).

    On CUDA the forward pass never synchronises with the host: centres come
    from a one-hot matrix product (deterministic), labels at an integer
    multiple of the feature resolution are subsampled by a strided view, and
    the label-range and finiteness checks are asynchronous device-side
    assertions (:func:`ceco_lite.centers.class_sums`): bad labels or NaN/inf
    features fail as a ``RuntimeError`` ("device-side assert") at the next
    synchronisation instead of a ``ValueError``.  On CPU they raise
    ``ValueError`` at once.

    Cost.  About fifty small tensor operations forward and backward (the
    per-class reduction, a ``(K, d) @ (d, K)`` product and a ``K``-way
    softmax). Where a training step is bound by kernel launches (a small model
    on a GPU), :class:`CompiledCenterLoss` compiles the whole loss (a CUDA
    graph on CUDA).

    Raises
    ------
    TypeError, ValueError
        Bad constructor arguments (naming them); features/labels of the wrong
        shape, dtype, device or values (see :func:`ceco_lite.centers.class_sums`;
        on CUDA bad values are device-side assertions, see above);
        ``features.shape[1] != dim``.

    Examples
    --------
    >>> loss_fn = CenterCollapseLoss(19, 64, generator=torch.Generator().manual_seed(0))
    >>> z = torch.randn(2, 64, 8, 8, requires_grad=True)
    >>> y = torch.randint(0, 19, (2, 32, 32))
    >>> loss = loss_fn(z, y)   # features at 1/4 resolution: labels are resampled
    >>> loss.backward()
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        scale: float = 1.0,
        reduction: str = "mean",
        learnable: bool = False,
        generator: torch.Generator | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        align: str = "nearest_labels",
        process_group=None,
        sync: str | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.dim = check_int(dim, "dim", minimum=1)
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.align = check_choice(align, "align", ALIGN_MODES)
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes)
        self.sync = _resolve_sync(sync, process_group)
        self.process_group = process_group
        self.learnable = check_bool(learnable, "learnable")
        self.scale = check_positive(scale, "scale")
        check_generator(generator)
        etf = simplex_etf(self.num_classes, self.dim, scale=scale, generator=generator)
        if self.learnable:
            self.etf = nn.Parameter(etf)
        else:
            self.register_buffer("etf", etf)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, dim={self.dim}, scale={self.scale}, reduction={self.reduction!r}, "
            f"learnable={self.learnable}, ignore_index={self.ignore_index}, sync={self.sync!r}"
        )

    def centers(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Class centres ``(K, d)`` and counts ``(K,)`` used by :meth:`forward` (Eq. 3).

        Applies the resolution alignment and, with ``sync="global"``, the
        cross-process reduction.  Counts are int64; absent classes have a zero centre.
        """
        sums, counts = self._sums(features, labels)
        centers = sums / counts.clamp_min(1).to(sums.dtype).unsqueeze(1)
        return centers, counts

    def _sums(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Per-class sums ``(K, d)`` and counts ``(K,)`` of the aligned batch (global with ``sync="global"``)."""
        features, labels = self._prepare(features, labels)
        sums, counts = class_sums(features, labels, self.num_classes, ignore_index=self.ignore_index)
        if self.sync == "global":
            sums, counts = _global_sums(sums, counts, self.process_group)
        return sums, counts

    def _prepare(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Features and labels at one resolution (``align``), checked against ``dim`` and the ETF's device."""
        if isinstance(features, Tensor) and isinstance(labels, Tensor):
            if features.ndim == 4 and labels.ndim == 3 and features.shape[-2:] != labels.shape[-2:]:
                features, labels = align_features_and_labels(features, labels, mode=self.align)
            if features.ndim in (2, 4) and features.shape[1] != self.dim:
                raise ValueError(
                    f"features must have {self.dim} channels (dim of the loss), got shape {tuple(features.shape)}"
                )
            if features.device != self.etf.device:
                raise ValueError(
                    f"features are on {features.device} but the loss module (ETF) is on {self.etf.device}; "
                    "move the module with .to(device)"
                )
        return features, labels

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """L_CR of one batch (CeCo paper Eq. 3-4; docs/conventions.md, section ceco-loss).

        Parameters
        ----------
        features : Tensor
            ``(N, dim)`` or ``(B, dim, h, w)``, floating (float16/bfloat16 are
            reduced in float32).
        labels : Tensor
            ``(N,)`` or ``(B, H, W)``, integer, in ``[0, K)`` or ``ignore_index``;
            ``(H, W) != (h, w)`` is aligned with ``align``.

        Returns
        -------
        Tensor
            0-d loss, float32 (float64 for float64 features).  With no valid
            label it is an exact 0 that still back-propagates (zero gradients).
        """
        sums, counts = self._sums(features, labels)
        with no_autocast(sums.device):
            # one autograd node for Eq. 3-4 (closed-form backward, Eq. 6 and 8)
            return _center_ce(sums, counts, self.etf.to(sums.dtype), self.reduction)


def _ceco_graph(features: Tensor, labels: Tensor, etf: Tensor, num_classes: int, ignore_index: int | None,
                reduction: str) -> tuple[Tensor, Tensor, Tensor]:
    """L_CR from aligned features and labels in one traceable function (CeCo paper Eq. 3-4).

    No host synchronisation and no data-dependent shape, so ``torch.compile(fullgraph=True)``
    takes it whole, backward included: per-pixel bins (``K`` for ignored pixels), counts as
    column sums of the one-hot labels, sums by a one-hot matrix product on CUDA (deterministic,
    as :func:`ceco_lite.centers.class_sums`) and by a scatter / index-add elsewhere, then
    :func:`_center_ce`.  Returns ``(loss, labels_ok, sums_finite)``, the last two 0-d bool
    tensors that the caller turns into errors.
    """
    K = num_classes
    with torch.autocast(device_type=features.device.type, enabled=False):
        lab = labels.long()
        is_class = (lab >= 0) & (lab < K)
        labels_ok = (is_class if ignore_index is None else is_class | (lab == ignore_index)).all()
        bins = torch.where(is_class, lab, K)
        acc = torch.float64 if features.dtype == torch.float64 else torch.float32
        d = features.shape[1]
        onehot = bins.reshape(-1, 1) == torch.arange(K, device=bins.device)  # (N, K)
        counts = onehot.sum(dim=0)
        if features.ndim == 4 and features.device.type == "cpu" and not features.is_contiguous(
            memory_format=torch.channels_last
        ):
            B, _, H, W = features.shape
            index = bins.reshape(B, 1, H * W).expand(B, d, H * W)
            buf = torch.zeros(B, d, K + 1, dtype=acc, device=features.device)
            sums = buf.scatter_add(2, index, features.reshape(B, d, H * W).to(acc)).sum(dim=0).T[:K]
        else:
            rows = features.permute(0, 2, 3, 1).reshape(-1, d) if features.ndim == 4 else features
            rows = rows.to(acc)
            if features.device.type == "cuda":
                sums = onehot.to(acc).T @ rows
            else:
                sums = torch.zeros(K + 1, d, dtype=acc, device=features.device).index_add(0, bins.reshape(-1), rows)[:K]
        loss = _center_ce(sums, counts, etf.to(acc), reduction)
    return loss, labels_ok, torch.isfinite(sums).all()


class CompiledCenterLoss:
    """:class:`CenterCollapseLoss` with its forward and backward compiled by ``torch.compile``
    (CeCo paper Eq. 3-4; the same loss as ``loss_fn(features, labels)`` to round-off).

    The per-class reduction, the centre classifier and the cross-entropy become a few fused
    kernels; on CUDA the default mode ``"reduce-overhead"`` also replays them as a CUDA graph
    (one launch per pass for a fixed batch shape; a new shape compiles and captures again).
    This pays where a step is bound by kernel launches (small models, small batches); the
    first call of each shape compiles (seconds to a minute).

    Parameters
    ----------
    loss_fn : CenterCollapseLoss
        The loss whose ETF ``loss_fn.etf`` (buffer, or parameter when learnable: it receives
        its gradient), ``num_classes``, ``ignore_index``, ``reduction`` and ``align`` are used.
    mode : str, optional
        ``torch.compile`` mode; default ``"reduce-overhead"`` when the loss lives on CUDA, else
        ``"default"``.
    backend : str, default "inductor"
        ``torch.compile`` backend (``"aot_eager"`` traces without generating code).

    Notes
    -----
    Calling it checks shapes, dtypes, channels and devices as the module does, and label
    values and finite sums after the compiled pass: a ``ValueError`` on CPU, a device-side
    assertion on CUDA (no host synchronisation), with the module's messages.  With
    ``sync="global"`` and an initialised process group it calls ``loss_fn`` itself (the
    all-reduce stays eager).  Double backward is not supported (compiled graphs are
    differentiable once).

    Raises
    ------
    TypeError
        ``loss_fn`` is not a :class:`CenterCollapseLoss`.
    """

    def __init__(self, loss_fn: "CenterCollapseLoss", *, mode: str | None = None, backend: str = "inductor"):
        if not isinstance(loss_fn, CenterCollapseLoss):
            raise TypeError(f"loss_fn must be a CenterCollapseLoss, got {type(loss_fn).__name__}")
        self.loss_fn = loss_fn
        if mode is None:
            mode = "reduce-overhead" if loss_fn.etf.device.type == "cuda" else "default"
        self.mode = mode
        self.backend = backend
        self._graph = torch.compile(_ceco_graph, fullgraph=True, dynamic=False, backend=backend,
                                    mode=None if backend != "inductor" else mode)

    def __repr__(self) -> str:
        return f"CompiledCenterLoss({self.loss_fn!r}, mode={self.mode!r}, backend={self.backend!r})"

    def __call__(self, features: Tensor, labels: Tensor) -> Tensor:
        """L_CR of one batch: ``features`` ``(N, dim)`` or ``(B, dim, h, w)``, ``labels`` ``(N,)`` or ``(B, H, W)``;
        a 0-d loss (float32, float64 for float64 features)."""
        fn = self.loss_fn
        if fn.sync == "global" and dist.is_available() and dist.is_initialized():
            return fn(features, labels)
        features, labels = fn._prepare(features, labels)
        check_features_labels(features, labels)
        loss, labels_ok, finite = self._graph(features, labels, fn.etf, fn.num_classes, fn.ignore_index,
                                              fn.reduction)
        K, ignore = fn.num_classes, fn.ignore_index
        if features.device.type == "cuda":
            torch._assert_async(labels_ok, f"class_sums: labels must lie in [0, num_classes) = [0, {K}) or equal "
                                           f"ignore_index={ignore}")
            torch._assert_async(finite, "class_sums: features contain non-finite values (NaN/inf), or their "
                                        "per-class sums overflow")
        else:
            if not bool(labels_ok):
                check_labels(labels, K, ignore)  # raises, naming a bad label
            if not bool(finite):
                raise ValueError("features contain non-finite values (NaN/inf), or their per-class sums overflow")
        return loss


class ReleasedCenterCollapseLoss(nn.Module):
    """CeCo as in the authors' released code (UPerNet head, ADE20K; docs/conventions.md,
    section ceco-released).

    Differs from the paper's Eq. 4 (docs/conventions.md, section ceco-loss), so it is a separate module and
    never mixed silently into :class:`CenterCollapseLoss`.  Pipeline (training only):

    1. pixel features ``(B, C, h, w)`` -> frozen 1x1 conv ``C -> proj_channels``
       (no bias) + BatchNorm (``self.projection``);
    2. bilinear upsampling (``align_corners=True``) to the label size ``(H, W)``;
    3. class centres over the whole per-process batch (Eq. 3), ignore 255,
       absent classes dropped;
    4. frozen ``Linear(proj_channels -> C)`` + ReLU (``self.center_mlp``), L2
       normalisation, dropout ``p = 0.1``;
    5. logits against a frozen, bias-free simplex ETF with unit-norm class
       vectors (Haar-random ``U``), times ``logit_scale = 5``;
    6. logit adjustment: ``+ log(prior + 1e-12)``, ``prior`` an image-level class
       prior (fraction of training images containing each class, normalised to sum 1);
    7. cross-entropy against the centre labels with the released "smooth"
       targets (``smooth`` on the true class, ``(1 - smooth)/(K - 1)`` elsewhere),
       mean over present centres.  Multiply by the loss weight yourself (0.2-0.8
       in the released configs; ``img_cls_weight`` there).

    "Frozen" means ``requires_grad=False`` for the conv, BN affine, linear and
    ETF (the released head sets the same and never trains them; the ETF is a
    buffer here).  BatchNorm still uses batch statistics and updates its running
    statistics in ``train()`` mode, as the frozen-weight BN of the released head
    does.  Gradients reach the incoming features only.

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    in_channels : int, default 512
        Channels ``C`` of the incoming pixel features (UPerNet ``channels``);
        also the ETF dimension (must be ``>= K - 1``).
    proj_channels : int, default 128
        Channels after the frozen 1x1 conv.
    logit_scale : float, default 5.0
        Multiplier of the ETF logits (``scale`` in the released configs).
    dropout : float, default 0.1
        Dropout on the normalised centres (the head's ``dropout_ratio``).
    smooth : float, default 1.0
        Target probability of the true class (released ``smooth``; 1.0 = plain
        one-hot targets; the released ADE20K configs use 0.5-1.0).  Not the same
        parametrisation as PyTorch's ``label_smoothing``.
    class_prior : Tensor, optional
        ``(K,)`` non-negative image-level class frequencies (e.g. number of
        training images that contain each class -- the released
        ``frequency_file``); normalised to sum 1.  If ``None`` and
        ``update_prior=True`` it is estimated on the fly: buffers
        ``prior_counts`` ``(K,)`` (images containing each class) and
        ``prior_images`` (images seen) are updated from every batch in
        ``train()`` mode, and ``prior_k = (count_k + 1) / (images + 2)``
        (add-one smoothing, so no class gets ``log 0``), normalised to sum 1.
        Before any batch this prior is uniform (a constant shift: no effect).
        Both buffers are in ``state_dict`` so a resumed run keeps its estimate.
    logit_adjust : bool, default True
        Add ``log(prior + 1e-12)`` to the logits (released behaviour).
    update_prior : bool, default True
        Update the running prior estimate (ignored if ``class_prior`` is given).
    generator : torch.Generator, optional
        Randomness of the ETF and of the frozen layers' initialisation
        (PyTorch's default init distributions, seeded).
    ignore_index : int or None, default 255
    align : {"bilinear_features", "nearest_labels"}, default "bilinear_features"
        Resolution matching (released: bilinear upsampling of the features).

    Notes
    -----
    Checked against the public code of the CeCo authors (an mmsegmentation
    fork; decode heads ``UPerHead_cecol`` -- "'Linear' version of CeCo" -- and
    ``UPerHead_ceco`` -- "Normalized" -- with configs passing
    ``frequency_file="stats/ade20k_image_label_stats.txt"``, ``img_cls_weight``,
    ``scale`` and ``smooth``).  Its training branch: ``reduce`` = Conv2d(channels, 128, 1, bias=False) +
    BatchNorm2d(128) on the head output, ``F.interpolate(..., mode="bilinear",
    align_corners=True)`` to the label size, centres by ``one_hot(y).T @
    features / counts`` over the valid pixels, ``torch.unique`` for present
    classes; ``gain`` = Linear(128, 512) + ReLU; ``F.normalize``; ``img_cls`` =
    (Dropout2d(0.1) of the head, Linear(512, K)) with weight = row-normalised
    ``sqrt(K/(K-1)) U (I - 11^T/K)`` from ``scipy.stats.ortho_group`` and zero
    bias; logits ``* scale``; loss ``-(t * log_softmax(logits + log(w +
    1e-12))).sum() / t.sum()`` with smoothed targets ``t`` and ``w`` the
    normalised image-level label statistics; all of ``reduce``, ``gain`` and
    ``img_cls`` have ``requires_grad=False``.  This module reproduces that
    branch (the prior estimate from batches is an addition here).  The
    centres are reduced with :func:`ceco_lite.centers.class_sums` (same values;
    a scatter-add on CPU, much faster there than the one-hot matrix product,
    which it uses on CUDA).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 512,
        proj_channels: int = 128,
        *,
        logit_scale: float = 5.0,
        dropout: float = 0.1,
        smooth: float = 1.0,
        class_prior: Tensor | None = None,
        logit_adjust: bool = True,
        update_prior: bool = True,
        generator: torch.Generator | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        align: str = "bilinear_features",
    ) -> None:
        super().__init__()
        K = self.num_classes = check_num_classes(num_classes)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.proj_channels = check_int(proj_channels, "proj_channels", minimum=1)
        if self.in_channels < K - 1:
            raise ValueError(
                f"in_channels must be >= num_classes - 1 = {K - 1} to hold a simplex ETF, got {self.in_channels}"
            )
        self.logit_scale = check_positive(logit_scale, "logit_scale")
        dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0, strict_maximum=True)
        self.smooth = check_float(smooth, "smooth", minimum=0.0, maximum=1.0)
        self.align = check_choice(align, "align", ALIGN_MODES)
        self.ignore_index = check_ignore_index(ignore_index, K)
        self.logit_adjust = check_bool(logit_adjust, "logit_adjust")
        update_prior = check_bool(update_prior, "update_prior")
        check_generator(generator)

        # frozen random layers (PyTorch default init distributions, drawn from `generator`)
        self.projection = nn.Sequential(
            nn.Conv2d(self.in_channels, self.proj_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(self.proj_channels),
        )
        self.center_mlp = nn.Sequential(nn.Linear(self.proj_channels, self.in_channels), nn.ReLU())
        with torch.no_grad():
            conv, lin = self.projection[0], self.center_mlp[0]
            conv.weight.copy_(_kaiming_uniform(conv.weight.shape, self.in_channels, generator))
            lin.weight.copy_(_kaiming_uniform(lin.weight.shape, self.proj_channels, generator))
            lin.bias.copy_(_uniform(lin.bias.shape, 1.0 / math.sqrt(self.proj_channels), generator))
        for p in list(self.projection.parameters()) + list(self.center_mlp.parameters()):
            p.requires_grad_(False)
        self.center_dropout = nn.Dropout(p=float(dropout))
        # unit-norm ETF class vectors, (C, K) columns = classes
        self.register_buffer("etf", simplex_etf(K, self.in_channels, scale=1.0, generator=generator))

        if class_prior is not None:
            if not isinstance(class_prior, Tensor):
                raise TypeError(f"class_prior must be a Tensor of shape ({K},), got {type(class_prior).__name__}")
            if class_prior.shape != (K,):
                raise ValueError(f"class_prior must have shape ({K},), got {tuple(class_prior.shape)}")
            cp = class_prior.detach().to(torch.float64)
            if not bool(torch.isfinite(cp).all()) or bool((cp < 0).any()) or float(cp.sum()) <= 0:
                raise ValueError("class_prior must be finite, non-negative and not all zero")
            self.register_buffer("class_prior", (cp / cp.sum()).to(torch.float32))
            self.update_prior = False
        else:
            self.class_prior = None
            self.update_prior = update_prior
        self.register_buffer("prior_counts", torch.zeros(K, dtype=torch.float64))
        self.register_buffer("prior_images", torch.zeros((), dtype=torch.float64))

    # ----------------------------------------------------------------- prior
    def prior(self) -> Tensor:
        """Image-level class prior ``(K,)`` float32 summing to 1 (given, or the running estimate)."""
        if self.class_prior is not None:
            return self.class_prior
        p = (self.prior_counts + 1.0) / (self.prior_images + 2.0)  # add-one (Laplace) smoothing
        return (p / p.sum()).to(torch.float32)

    @torch.no_grad()
    def _update_prior(self, labels: Tensor) -> None:
        K = self.num_classes
        lab = labels.reshape(labels.shape[0], -1).long()
        idx = torch.where((lab >= 0) & (lab < K), lab, K)
        present = torch.zeros(lab.shape[0], K + 1, dtype=torch.bool, device=lab.device)
        present.scatter_(1, idx, True)
        self.prior_counts += present[:, :K].sum(0).to(self.prior_counts)
        self.prior_images += lab.shape[0]

    # ----------------------------------------------------------------- forward
    def _check_values(self, features: Tensor, labels: Tensor) -> None:
        """Label range and finite features, before the BatchNorm statistics change.

        CPU: ``ValueError`` at once.  CUDA: device-side assertions queued ahead of
        the projection (no host synchronisation).
        """
        K, ignore = self.num_classes, self.ignore_index
        if features.device.type == "cuda":
            lab = labels.long()
            ok = (lab >= 0) & (lab < K)
            if ignore is not None:
                ok |= lab == ignore
            torch._assert_async(ok.all(), f"labels must lie in [0, num_classes) = [0, {K}) or equal "
                                          f"ignore_index={ignore}")
            torch._assert_async(torch.isfinite(features).all(), "features contain non-finite values (NaN/inf)")
            return
        check_labels(labels, K, ignore)
        if not bool(torch.isfinite(features).all()):
            raise ValueError("features contain non-finite values (NaN/inf)")

    def _project(self, features: Tensor) -> Tensor:
        """The frozen 1x1 conv + BatchNorm of the released head.

        Features of the frozen layers' dtype, and any features under autocast, go
        through ``self.projection`` as is; float16/bfloat16 outside autocast are
        computed in float32; another dtype (float64 features of a float32 module) in
        the features' dtype, with the layers cast to it and the BatchNorm running
        statistics updated in place in their own dtype (the update
        ``nn.BatchNorm2d`` makes).
        """
        conv, bn = self.projection
        dtype = features.dtype
        if torch.is_autocast_enabled(features.device.type):
            return self.projection(features)
        if dtype in (torch.float16, torch.bfloat16):
            features, dtype = features.float(), torch.float32
        if dtype == conv.weight.dtype:
            return self.projection(features)
        x = F.conv2d(features, conv.weight.to(dtype))
        factor = 0.0 if bn.momentum is None else bn.momentum
        if self.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:  # cumulative moving average
                factor = 1.0 / float(bn.num_batches_tracked)
        stats = None if bn.running_mean is None else (bn.running_mean.to(dtype, copy=True),
                                                       bn.running_var.to(dtype, copy=True))
        x = F.batch_norm(x, None if stats is None else stats[0], None if stats is None else stats[1],
                         None if bn.weight is None else bn.weight.to(dtype),
                         None if bn.bias is None else bn.bias.to(dtype),
                         self.training or stats is None, factor, bn.eps)
        if stats is not None and self.training:
            with torch.no_grad():
                bn.running_mean.copy_(stats[0])
                bn.running_var.copy_(stats[1])
        return x

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Released-code CeCo loss.

        Every input is validated before anything changes state: a rejected
        batch leaves the BatchNorm running statistics and the running prior
        untouched.

        Parameters
        ----------
        features : Tensor
            ``(B, in_channels, h, w)``, floating. float32 and autocast regions
            run the released pipeline as is; float16/bfloat16 outside autocast
            are computed in float32, float64 in float64 (the frozen layers are
            cast, their float32 BatchNorm statistics are updated in place).
        labels : Tensor
            ``(B, H, W)`` integer, in ``[0, K)`` or ``ignore_index``.

        Returns
        -------
        Tensor
            0-d loss, mean over present centres (float32; float64 for float64
            features).  An exact 0 that still back-propagates when no pixel is
            labelled or the batch is empty (an empty batch changes no state).

        Raises
        ------
        TypeError, ValueError
            Wrong shapes, channels, dtypes, devices or label values; non-finite
            features; a training-mode batch with a single feature pixel (its
            BatchNorm statistics are undefined).  On CUDA bad label values and
            non-finite features are device-side assertions (``RuntimeError`` at
            the next synchronisation), queued before the BatchNorm update.
        """
        check_tensor(features, "features", kind="floating")
        check_tensor(labels, "labels", kind="integer")
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(
                f"features must have shape (B, in_channels={self.in_channels}, h, w), got {tuple(features.shape)}"
            )
        if labels.ndim != 3 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"labels must have shape (B={features.shape[0]}, H, W), got {tuple(labels.shape)}"
            )
        if features.device != self.etf.device:
            raise ValueError(f"features are on {features.device} but the module is on {self.etf.device}")
        # spatial sizes as align_features_and_labels judges them, on a zero-channel view
        # (nearest-label matching of no channel: no resampling work)
        align_features_and_labels(features[:, :0], labels)
        if features.numel() == 0:  # empty batch: nothing to project or count, no state changes
            return features.sum().to(torch.float64 if features.dtype == torch.float64 else torch.float32) * 0.0
        B, _, h, w = features.shape
        if self.training and B * h * w == 1:
            raise ValueError(
                "features must hold more than one pixel in training mode (B * h * w > 1): the projection's "
                f"BatchNorm needs batch statistics; got shape {tuple(features.shape)}"
            )
        self._check_values(features, labels)
        proj = self._project(features)  # (B, proj, h, w)
        aligned = labels
        if proj.shape[-2:] != labels.shape[-2:]:
            proj, aligned = align_features_and_labels(proj, labels, mode=self.align, align_corners=True)
        sums, counts = class_sums(proj, aligned, self.num_classes, ignore_index=self.ignore_index)
        if self.training and self.update_prior and self.class_prior is None:
            self._update_prior(labels)  # full-resolution labels, after they were validated
        centers = sums / counts.clamp_min(1).to(sums.dtype).unsqueeze(1)  # (K, proj)
        K = self.num_classes
        with no_autocast(centers.device):
            lin = self.center_mlp[0]
            h = self.center_mlp[1](F.linear(centers, lin.weight.to(centers.dtype), lin.bias.to(centers.dtype)))
            h = self.center_dropout(F.normalize(h, dim=1))
            logits = self.logit_scale * (h @ self.etf.to(h.dtype))
            if self.logit_adjust:
                logits = logits + torch.log(self.prior().to(logits) + 1e-12)
            log_p = F.log_softmax(logits, dim=1)
            eye = torch.eye(K, dtype=log_p.dtype, device=log_p.device)
            target = self.smooth * eye + (1.0 - self.smooth) / (K - 1) * (1.0 - eye)
            ce = -(target * log_p).sum(dim=1)
            w = (counts > 0).to(ce.dtype)
            return (ce * w).sum() / w.sum().clamp_min(1.0)


def _uniform(shape, bound: float, generator) -> Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


def _kaiming_uniform(shape, fan_in: int, generator) -> Tensor:
    """PyTorch's default Conv/Linear weight init (kaiming_uniform with a = sqrt(5)), seeded."""
    bound = 1.0 / math.sqrt(fan_in)
    return _uniform(shape, bound, generator)
