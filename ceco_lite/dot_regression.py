"""Dot-regression (DR) loss for a fixed simplex-ETF classifier (Yang et al., NeurIPS 2022).

Yang, Chen, Li, Xie, Lin & Tao, "Inducing Neural Collapse in Imbalanced
Learning: Do We Really Need a Learnable Classifier at the End of Deep Neural
Network?" (NeurIPS 2022): the classifier is a simplex ETF ``W*`` fixed at
initialisation, and the features are trained with a squared loss ``L_DR`` on
the dot product with their own class vector only. In the paper's layer-peeled
model the class vectors have length ``√E_W`` and the features ``√E_H``; the
loss regresses ``w*_yᵀ h`` onto ``√(E_W E_H)``.

The definition used here is that of the authors' released code
(``methods.dot_loss``, ``criterion="reg_dot_loss"``): per sample

``L_i = (w*_yᵀ h − ‖w*_y‖ r)² / (2 r)``,  ``r = √E_H = ‖h‖`` taken without gradient

(clamped at ``1e-8``). For unit class vectors its gradient is
``∂L_i/∂h = −(1 − cos∠(w*_y, h)) w*_y``: the "pull" term of cross-entropy
without the "push" terms towards the other classes, the paper's argument for
why the fixed ETF keeps its geometry under class imbalance. The released
configurations use unit ETF columns and L2-normalised features
(``normalize_features=True`` here). Their class-dependent lengths
(``produce_Ew`` / ``produce_global_Ew``) rescale the class vectors to
``‖w*_k‖ = √(γ/n_k)`` and are ``class_lengths="batch"`` / ``"global"``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .centers import align_features_and_labels
from .etf import simplex_etf
from .validation import (
    check_bool,
    check_choice,
    check_classifier,
    check_float,
    check_ignore_index,
    check_int,
    check_num_classes,
    check_tensor,
)

__all__ = ["DotRegressionLoss", "dot_regression_class_lengths"]

#: lower clamp of the feature norm used as √E_H (the released code's value)
FEATURE_NORM_EPS = 1e-8


def dot_regression_class_lengths(counts: Tensor, *, present_only: bool = False) -> Tensor:
    """Class-dependent ETF lengths ``ℓ_k = √(γ/n_k)`` of Yang et al.'s released code.

    ``γ = (Σ_k n_k)/K`` -- the mean count -- so a class with the mean count keeps
    length 1, rare classes get longer class vectors and frequent ones shorter.
    ``present_only=False`` with ``K = num_classes`` is ``produce_global_Ew`` (counts
    of the training set); ``present_only=True`` with ``K`` = number of classes
    present is ``produce_Ew`` (counts of the batch). Absent classes get length 1.

    Parameters
    ----------
    counts : Tensor, shape (K,)
        Non-negative sample counts per class (integer or floating).
    present_only : bool, default False
        Average over the classes with ``n_k > 0`` only.

    Returns
    -------
    Tensor, shape (K,), float64 (float32 for float32 counts)

    Raises
    ------
    TypeError, ValueError
        ``counts`` not a 1-d tensor, negative, all zero, or (``present_only=False``)
        with a zero entry (its length would be infinite).

    Examples
    --------
    >>> dot_regression_class_lengths(torch.tensor([300, 100, 200]))
    tensor([0.8165, 1.4142, 1.0000], dtype=torch.float64)
    """
    counts = check_tensor(counts, "counts", ndim=1, shape="(K,)")
    if counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"counts must be integer or floating, got {counts.dtype}")
    n = counts.to(torch.float32 if counts.dtype == torch.float32 else torch.float64)
    if bool((n < 0).any()) or not bool(torch.isfinite(n).all()):
        raise ValueError("counts must be finite and non-negative")
    present = n > 0
    if not bool(present.any()):
        raise ValueError("counts must not all be zero")
    if not present_only and not bool(present.all()):
        raise ValueError("counts has zero entries: their length sqrt(gamma/0) is infinite; use present_only=True")
    gamma = n[present].sum() / present.sum()
    return torch.where(present, (gamma / n.clamp_min(1e-300)).sqrt(), torch.ones_like(n))


class DotRegressionLoss(nn.Module):
    """Dot-regression loss ``L_DR`` of Yang et al. (NeurIPS 2022) for a fixed simplex ETF.

    For features ``h_i`` with labels ``y_i`` and a fixed classifier ``W*`` ``(dim, K)``:

    ``L_DR = mean_i (w_iᵀ h_i − ‖w_i‖ r_i)² / (2 r_i) + reg_lambda · mean_i ‖h_i‖``

    with ``w_i = ℓ_{y_i} w*_{y_i}`` (``ℓ = 1`` unless ``class_lengths``) and
    ``r_i = √E_H`` the feature length: ``‖h_i‖`` without gradient
    (``feature_length="detached"``, the released code's ``reg_dot_loss``) or a
    constant. The gradient with respect to ``h_i`` is
    ``(w_iᵀ h_i − ‖w_i‖ r_i) w_i / (N r_i)`` (+ ``reg_lambda h_i/(N ‖h_i‖)``),
    ``N`` = number of kept samples: only the true class's vector pulls.

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    dim : int
        Feature dimension ``d >= K - 1``.
    etf : Tensor, shape (dim, num_classes), optional
        The fixed classifier ``W*`` (one column per class, e.g. the model's
        fixed classifier ``conv.weight[:, :, 0, 0].T``). Default: a simplex ETF
        (:func:`ceco_lite.simplex_etf`) of column norm ``scale``.
    scale : float, default 1.0
        Column norm of the generated ETF (ignored when ``etf`` is given). The
        released code uses unit columns.
    generator : torch.Generator, optional
        Randomness of the generated ETF's rotation.
    feature_length : "detached" or float, default "detached"
        ``√E_H``: each sample's own ``‖h_i‖`` without gradient (released code;
        clamped at ``1e-8``), or a fixed positive length.
    normalize_features : bool, default False
        L2-normalise ``h`` before the loss (the released code's ETF classifier
        does this after a BatchNorm), so that ``‖h‖ = 1``.
    class_lengths : {None, "batch", "global"}, default None
        Class-dependent class-vector lengths ``ℓ_k = √(γ/n_k)``
        (:func:`dot_regression_class_lengths`): ``"batch"`` from the counts
        of each batch (released ``produce_Ew``), ``"global"`` from
        ``class_counts`` (released ``produce_global_Ew``).
    class_counts : Tensor, shape (num_classes,), optional
        Training-set counts per class; required by ``class_lengths="global"``.
    reg_lambda : float, default 0.0
        Weight of the feature-length regulariser ``mean_i ‖h_i‖`` (released ``reg_lam``).
    reduction : {"mean", "sum"}, default "mean"
        Over the kept samples.
    ignore_index : int or None, default 255
    align : {"nearest_labels", "bilinear_features"}, default "nearest_labels"
        How ``(B, d, h, w)`` features at another resolution than ``(B, H, W)``
        labels are matched (:func:`ceco_lite.centers.align_features_and_labels`).

    Raises
    ------
    TypeError, ValueError
        Bad constructor arguments (naming them); at call time features/labels
        of the wrong shape, dtype, device or values (labels outside
        ``[0, K)`` other than ``ignore_index``), ``features.shape[1] != dim``.

    Examples
    --------
    >>> loss_fn = DotRegressionLoss(10, 64, generator=torch.Generator().manual_seed(0))
    >>> h = torch.randn(32, 64, requires_grad=True)
    >>> y = torch.randint(0, 10, (32,))
    >>> loss = loss_fn(h, y)
    >>> loss.backward()
    >>> loss_fn.logits(h).shape           # predictions: argmax over the fixed ETF
    torch.Size([32, 10])
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        etf: Tensor | None = None,
        scale: float = 1.0,
        generator: torch.Generator | None = None,
        feature_length: str | float = "detached",
        normalize_features: bool = False,
        class_lengths: str | None = None,
        class_counts: Tensor | None = None,
        reg_lambda: float = 0.0,
        reduction: str = "mean",
        ignore_index: int | None = 255,
        align: str = "nearest_labels",
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.dim = check_int(dim, "dim", minimum=1)
        if isinstance(feature_length, str):
            check_choice(feature_length, "feature_length", ("detached",))
            self.feature_length: str | float = feature_length
        else:
            self.feature_length = check_float(feature_length, "feature_length", minimum=0.0, strict_minimum=True,
                                              hint='a positive length, or "detached"')
        self.normalize_features = check_bool(normalize_features, "normalize_features")
        self.class_lengths = check_choice(class_lengths, "class_lengths", (None, "batch", "global"))
        self.reg_lambda = check_float(reg_lambda, "reg_lambda", minimum=0.0)
        self.reduction = check_choice(reduction, "reduction", ("mean", "sum"))
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes)
        self.align = check_choice(align, "align", ("nearest_labels", "bilinear_features"))
        if etf is None:
            etf = simplex_etf(self.num_classes, self.dim, scale=scale, generator=generator)
        else:
            etf = check_classifier(etf, self.dim, self.num_classes, name="etf").clone()
        self.register_buffer("etf", etf)
        if self.class_lengths == "global":
            if class_counts is None:
                raise ValueError('class_lengths="global" needs class_counts (training-set counts per class)')
            counts = check_tensor(class_counts, "class_counts", ndim=1, shape="(num_classes,)")
            if counts.shape[0] != self.num_classes:
                raise ValueError(f"class_counts must have shape ({self.num_classes},), got {tuple(counts.shape)}")
            self.register_buffer("global_lengths", dot_regression_class_lengths(counts).to(torch.float32))
        elif class_counts is not None:
            raise ValueError('class_counts is only used with class_lengths="global"')
        else:
            self.global_lengths = None

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, dim={self.dim}, feature_length={self.feature_length!r}, "
            f"normalize_features={self.normalize_features}, class_lengths={self.class_lengths!r}, "
            f"reg_lambda={self.reg_lambda}, reduction={self.reduction!r}, ignore_index={self.ignore_index}"
        )

    def logits(self, features: Tensor) -> Tensor:
        """Scores ``hᵀ W*`` of the fixed classifier (no class lengths): ``(N, K)`` or ``(B, K, H, W)``."""
        check_tensor(features, "features", kind="floating", ndim=(2, 4), shape="(N, d) or (B, d, H, W)")
        w = self.etf.to(features.dtype)
        if features.ndim == 2:
            return features @ w
        return torch.einsum("bdhw,dk->bkhw", features, w)

    def _flatten(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``(M, d)`` kept features and ``(M,)`` labels (aligned, validated)."""
        check_tensor(features, "features", kind="floating", ndim=(2, 4), shape="(N, d) or (B, d, H, W)")
        check_tensor(labels, "labels", kind="integer")
        if features.ndim == 4 and labels.ndim == 3 and features.shape[-2:] != labels.shape[-2:]:
            features, labels = align_features_and_labels(features, labels, mode=self.align)
        if features.shape[1] != self.dim:
            raise ValueError(f"features must have {self.dim} channels (dim of the loss), got shape {tuple(features.shape)}")
        if features.ndim == 4:
            if labels.shape != (features.shape[0], *features.shape[2:]):
                raise ValueError(
                    f"labels must have shape (B, H, W) = {(features.shape[0], *features.shape[2:])}, "
                    f"got {tuple(labels.shape)}"
                )
            features = features.permute(0, 2, 3, 1).reshape(-1, self.dim)
        elif labels.shape != (features.shape[0],):
            raise ValueError(f"labels must have shape (N,) = ({features.shape[0]},), got {tuple(labels.shape)}")
        if features.device != self.etf.device:
            raise ValueError(
                f"features are on {features.device} but the loss module (ETF) is on {self.etf.device}; "
                "move the module with .to(device)"
            )
        labels = labels.reshape(-1).to(device=features.device, dtype=torch.int64)
        keep = torch.ones_like(labels, dtype=torch.bool) if self.ignore_index is None else labels != self.ignore_index
        bad = keep & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            raise ValueError(
                f"labels must lie in [0, num_classes={self.num_classes}) or equal ignore_index="
                f"{self.ignore_index}; found {int(labels[bad][0])}"
            )
        return features[keep], labels[keep]

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """``L_DR`` of one batch.

        Parameters
        ----------
        features : Tensor
            ``(N, dim)`` or ``(B, dim, h, w)``, floating (float16/bfloat16 are
            computed in float32, also under autocast).
        labels : Tensor
            ``(N,)`` or ``(B, H, W)``, integer, in ``[0, K)`` or ``ignore_index``;
            ``(H, W) != (h, w)`` is aligned with ``align``.

        Returns
        -------
        Tensor
            0-d loss, float32 (float64 for float64 features). With no kept
            sample it is an exact 0 that still back-propagates (zero gradients).
        """
        h, y = self._flatten(features, labels)
        dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = h.to(dtype)
            if self.normalize_features:
                h = h / h.norm(dim=1, keepdim=True).clamp_min(FEATURE_NORM_EPS)
            if h.shape[0] == 0:
                return (features.sum() * 0.0).to(dtype)
            target = self.etf.to(dtype)[:, y].T  # (M, d): w*_{y_i}
            if self.class_lengths == "batch":
                counts = torch.bincount(y, minlength=self.num_classes)
                target = target * dot_regression_class_lengths(counts, present_only=True).to(dtype)[y, None]
            elif self.class_lengths == "global":
                target = target * self.global_lengths.to(dtype)[y, None]
            if self.feature_length == "detached":
                r = h.detach().norm(dim=1).clamp_min(FEATURE_NORM_EPS)
            else:
                r = torch.full((h.shape[0],), self.feature_length, dtype=dtype, device=h.device)
            dot = (h * target).sum(dim=1)
            per_sample = (dot - target.norm(dim=1) * r).square() / (2.0 * r)
            if self.reg_lambda > 0:
                per_sample = per_sample + self.reg_lambda * h.norm(dim=1)
            return per_sample.sum() if self.reduction == "sum" else per_sample.mean()
