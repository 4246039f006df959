"""In2NeCT: inter- and intra-class neural-collapse tuning (Shen et al., AAAI 2024).

The paper adds two regularisation branches to any segmentation model (its
Eq. 7; docs/conventions.md, section in2nect)::

    L = L_Seg + w (L_Inter + L_Intra),      w = 0.2

* ``L_Inter`` (its Eq. 3-5) is CeCo's centre loss with a fixed, unit-norm
  (``α = 1``) simplex ETF classifier -- :class:`InterClassLoss` is a thin
  subclass of :class:`ceco_lite.ceco.CenterCollapseLoss`.
* ``L_Intra`` (its Eq. 6) is a class-balanced supervised-contrastive loss on
  L2-normalised pixel features -- :class:`IntraClassLoss`.

No public code exists; choices the paper leaves open (pixel sampling,
temperature, the anchor in the denominator, reduction) are fixed and documented
here.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ceco import ALIGN_MODES, CenterCollapseLoss
from .centers import align_features_and_labels, no_autocast
from .sampling import sample_per_class
from .validation import (
    IGNORE_INDEX,
    check_bool,
    check_choice,
    check_features_labels,
    check_float,
    check_generator,
    check_ignore_index,
    check_labels,
    check_num_classes,
    check_optional_int,
    check_positive,
    check_tensor,
)

__all__ = ["InterClassLoss", "IntraClassLoss", "In2NeCTLoss"]

_REDUCTIONS = ("sum", "mean")


# --------------------------------------------------------------------------- #
# L_Inter (In2NeCT Eq. 5)
# --------------------------------------------------------------------------- #
class InterClassLoss(CenterCollapseLoss):
    """In2NeCT inter-class regularisation loss ``L_Inter`` (In2NeCT Eq. 3-5).

    ``L_Inter = − Σ_k log( exp(z̄_k^T w*_k) / Σ_k' exp(z̄_k^T w*_k') )`` over the
    classes present in the batch, ``z̄_k`` the batch class means (Eq. 3) and
    ``W*`` a fixed simplex ETF with unit columns (Eq. 4, i.e. CeCo's scaled ETF
    with ``α = 1``). This is exactly CeCo's centre loss: the class inherits
    :class:`ceco_lite.ceco.CenterCollapseLoss` with ``scale=1.0`` and
    ``learnable=False`` fixed. Like CeCo's Eq. 4, the printed denominator of
    Eq. 5 (``Σ_k' exp(z̄_k'^T w*_k')``) is a typo; the paper's own Eq. 10
    shows the softmax over classes ``k'`` for the same centre.

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    dim : int
        Feature dimension ``d >= K − 1``.
    reduction : {"sum", "mean"}, default "sum"
        ``"sum"`` over present classes reproduces Eq. 5 literally (In2NeCT has
        no released code to say otherwise); ``"mean"`` averages over present
        classes (CeCo's released-code default).
    generator : torch.Generator, optional
        Randomness of the ETF rotation.
    ignore_index : int or None, default 255
    **kwargs
        ``align``, ``process_group``, ``sync`` of
        :class:`~ceco_lite.ceco.CenterCollapseLoss`.

    Notes
    -----
    The paper's Eq. 9 (gradient w.r.t. a pixel feature) has a typo: it prints
    ``p(z̄_k − 1)``. The correct gradient (CeCo Eq. 8; docs/conventions.md,
    section in2nect) for
    ``y_i = k`` is ``∂L/∂z_i = Σ_k' (p_k'(z̄_k) − δ_kk') w*_k' / n_k
    = Σ_k' p_k'(z̄_k) (w*_k' − w*_k) / n_k``.
    ``forward(features, labels)`` takes ``(N, d)`` + ``(N,)`` or
    ``(B, d, h, w)`` + ``(B, H, W)`` and returns a 0-d tensor.

    Raises
    ------
    TypeError, ValueError
        As :class:`~ceco_lite.ceco.CenterCollapseLoss`.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        reduction: str = "sum",
        generator: torch.Generator | None = None,
        ignore_index: int | None = IGNORE_INDEX,
        **kwargs: Any,
    ) -> None:
        for fixed in ("scale", "learnable"):
            if fixed in kwargs:
                raise TypeError(f"InterClassLoss fixes {fixed} (α = 1, frozen ETF); do not pass it")
        super().__init__(
            num_classes,
            dim,
            scale=1.0,
            reduction=reduction,
            learnable=False,
            generator=generator,
            ignore_index=ignore_index,
            **kwargs,
        )


# --------------------------------------------------------------------------- #
# L_Intra (In2NeCT Eq. 6)
# --------------------------------------------------------------------------- #
class IntraClassLoss(nn.Module):
    """In2NeCT intra-class regularisation loss ``L_Intra`` (In2NeCT Eq. 6).

    A class-balanced supervised-contrastive loss on L2-normalised pixel
    features ``u_i = z_i/‖z_i‖``, with ``s_ij = u_i^T u_j / τ``::

        L_Intra = − Σ_k (1/n_k) Σ_{i∈k} 1/(n_k − 1) Σ_{i'∈k, i'≠i}
                      log( exp(s_ii') / Σ_k' (1/m_k') Σ_{j∈k'} exp(s_ij) )

    Every class contributes the *average* of its anchors' terms (``1/n_k``) and
    the denominator averages each class's similarities (``1/m_k'``), so major
    classes cannot dominate either the sum or the denominator (In2NeCT Eq.
    11-12).

    Choices the paper leaves open:

    * **Anchor in the denominator** (``include_anchor_in_denominator=False``):
      as in SupCon (Khosla et al. 2020) and its class-balanced form BCL (Zhu et
      al. 2022), the anchor ``j = i`` is left out of the denominator and its own
      class is averaged over its ``m_k = n_k − 1`` other pixels
      (``m_k' = n_k'`` for other classes). Eq. 6 as printed keeps ``j = i``
      with ``m_k = n_k``; that term is the constant ``exp(1/τ)/n_k``, which for
      a small class and ``τ = 0.1`` (``e^10/n_k``) swamps the denominator and
      kills the gradient of exactly the minority classes the loss is meant to
      help. ``True`` reproduces Eq. 6 literally.
    * **Temperature** ``τ = 0.1`` (Eq. 6 prints none, i.e. ``τ = 1``): on unit
      vectors ``s ∈ [−1, 1]`` gives a nearly flat softmax; 0.1 is the value of
      pixel-contrastive segmentation (Wang et al., ICCV 2021) and close to
      SupCon's 0.07.
    * **Pixel sampling** ``max_pixels_per_class = 100``: the loss needs the
      ``P × P`` similarity matrix, so at most 100 random pixels per class and
      batch are used (:func:`ceco_lite.sampling.sample_per_class`), as the "max views" of
      pixel-contrastive segmentation (Wang et al. 2021); ``K = 19`` gives
      ``P <= 1900`` (14 MB float32). ``n_k`` then counts *sampled* pixels.
    * Classes with fewer than 2 sampled pixels have no positive pair: they add
      no term but still serve as negatives.

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    temperature : float, default 0.1
        ``τ > 0``.
    max_pixels_per_class : int or None, default 100
        Cap per class (``>= 2``); ``None`` uses every pixel (small inputs only).
    ignore_index : int or None, default 255
    reduction : {"sum", "mean"}, default "sum"
        ``"sum"`` over classes reproduces Eq. 6; ``"mean"`` averages over the
        classes that contribute a term.
    include_anchor_in_denominator : bool, default False
        See above.
    align : {"nearest_labels", "bilinear_features"}, default "nearest_labels"
        How ``(B, d, h, w)`` features at another resolution than the labels are
        matched (:func:`ceco_lite.centers.align_features_and_labels`).
    generator : torch.Generator, optional
        Randomness of the pixel sampling.

    Notes
    -----
    ``forward(features, labels)``: ``features`` ``(N, d)`` with ``labels``
    ``(N,)``, or ``(B, d, h, w)`` with ``(B, H, W)``; floating features
    (half/bfloat16 and autocast are computed in float32; the result is float32,
    or float64 for float64 features). Returns a 0-d tensor, an exact 0 still
    connected to the graph when no class has 2 sampled pixels.

    Raises
    ------
    TypeError, ValueError
        Bad constructor arguments (naming them); features/labels of the wrong
        shape, dtype, device or label values (see
        :func:`ceco_lite.centers.class_sums`); non-finite sampled features.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        temperature: float = 0.1,
        max_pixels_per_class: int | None = 100,
        ignore_index: int | None = IGNORE_INDEX,
        reduction: str = "sum",
        include_anchor_in_denominator: bool = False,
        align: str = "nearest_labels",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.temperature = check_positive(temperature, "temperature")
        # a positive pair needs two pixels of a class: the cap is >= 2
        self.max_pixels_per_class = check_optional_int(max_pixels_per_class, "max_pixels_per_class", minimum=2)
        self.ignore_index = check_ignore_index(ignore_index, self.num_classes)
        self.reduction = check_choice(reduction, "reduction", _REDUCTIONS)
        self.include_anchor_in_denominator = check_bool(include_anchor_in_denominator,
                                                        "include_anchor_in_denominator")
        self.align = check_choice(align, "align", ALIGN_MODES)
        self.generator = check_generator(generator)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, temperature={self.temperature}, "
            f"max_pixels_per_class={self.max_pixels_per_class}, reduction={self.reduction!r}, "
            f"include_anchor_in_denominator={self.include_anchor_in_denominator}"
        )

    def sampled_features(self, features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The pixel features ``(P, d)`` and labels ``(P,)`` the loss uses.

        Aligns resolutions, drops ``ignore_index`` and samples at most
        ``max_pixels_per_class`` pixels per class (consumes ``generator``).
        Gathers only the sampled rows (no copy of the whole feature map).
        """
        if isinstance(features, Tensor) and isinstance(labels, Tensor):
            if features.ndim == 4 and labels.ndim == 3 and features.shape[-2:] != labels.shape[-2:]:
                features, labels = align_features_and_labels(features, labels, mode=self.align)
        check_features_labels(features, labels)
        check_labels(labels, self.num_classes, self.ignore_index)
        idx = sample_per_class(
            labels, self.max_pixels_per_class, ignore_index=self.ignore_index, generator=self.generator
        )
        y = labels.reshape(-1)[idx].long()
        if features.ndim == 4:
            hw = features.shape[2] * features.shape[3]
            z = features.flatten(2)[idx // hw, :, idx % hw]
        else:
            z = features[idx]
        if not bool(torch.isfinite(z.detach()).all()):
            raise ValueError("features contain NaN or Inf (at a sampled pixel)")
        return z, y

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        z, y = self.sampled_features(features, labels)
        work = torch.float64 if z.dtype == torch.float64 else torch.float32
        with no_autocast(z.device):
            return self._loss(z.to(work), y)

    def _loss(self, z: Tensor, y: Tensor) -> Tensor:
        """Eq. 6 on the sampled rows ``z`` ``(P, d)`` (float32/64), ``y`` ``(P,)``."""
        counts = torch.bincount(y, minlength=self.num_classes)
        n_anchor = counts[y]  # n_k of each row's class
        valid = n_anchor >= 2  # anchors with at least one positive
        if not bool(valid.any()):
            return z.sum() * 0.0
        u = F.normalize(z, dim=1)
        ua, ya, na = u[valid], y[valid], n_anchor[valid].to(z.dtype)
        sim = ua @ u.T / self.temperature  # (A, P)
        same = ya[:, None] == y[None, :]
        is_self = torch.zeros_like(same)
        is_self[torch.arange(ua.shape[0], device=z.device), torch.nonzero(valid).flatten()] = True
        # log of the class-averaging weight 1/m_k' of column j in anchor i's denominator
        log_m = torch.log(counts.to(z.dtype))[y][None, :].expand_as(sim)
        if not self.include_anchor_in_denominator:
            log_m = torch.where(same, torch.log(na - 1.0)[:, None], log_m)
            sim_den = sim.masked_fill(is_self, float("-inf"))
        else:
            sim_den = sim
        log_den = torch.logsumexp(sim_den - log_m, dim=1)  # (A,)
        positive = same & ~is_self
        log_prob = torch.where(positive, sim - log_den[:, None], torch.zeros_like(sim))
        per_anchor = -log_prob.sum(dim=1) / (na - 1.0)  # 1/(n_k-1) Σ_{i'≠i}
        total = (per_anchor / na).sum()  # Σ_k (1/n_k) Σ_{i∈k}
        if self.reduction == "sum":
            return total
        return total / int((counts >= 2).sum())


# --------------------------------------------------------------------------- #
# total loss (In2NeCT Eq. 7)
# --------------------------------------------------------------------------- #
class In2NeCTLoss(nn.Module):
    """Total In2NeCT objective ``L = L_Seg + w (L_Inter + L_Intra)`` (In2NeCT Eq. 7).

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    dim : int
        Feature dimension ``d >= K − 1`` of the pixel features regularised.
    weight : float, default 0.2
        ``w`` (the paper uses 0.2 in all experiments).
    temperature, max_pixels_per_class, include_anchor_in_denominator
        Passed to :class:`IntraClassLoss`.
    reduction : {"sum", "mean"}, default "sum"
        Passed to both regularisers (``"sum"`` = Eq. 5 and 6 literally).
    ignore_index : int or None, default 255
    align : {"nearest_labels", "bilinear_features"}, default "nearest_labels"
    generator : torch.Generator, optional
        Used for the ETF rotation (at construction) and the pixel sampling.

    Notes
    -----
    ``forward(features, labels, seg_logits=None, *, seg_loss=None, return_parts=False)``

    * ``features`` ``(B, d, h, w)`` or ``(N, d)``: the last-layer pixel features
      ``Z`` the two branches regularise; ``labels`` ``(B, H, W)`` or ``(N,)``.
    * ``L_Seg`` comes from exactly one of ``seg_logits`` -- ``(B, K, H, W)`` or
      ``(N, K)`` logits of the segmentation branch, scored by cross-entropy with
      ``ignore_index`` (the paper's choice) -- or ``seg_loss``, a precomputed 0-d
      tensor (any segmentation loss: focal, Dice, ...).
    * Returns the 0-d total, or ``(total, {"seg", "inter", "intra"})`` with
      ``return_parts=True``.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (naming them); neither or both of ``seg_logits`` /
        ``seg_loss``; ``seg_logits`` not matching ``labels``.

    Examples
    --------
    >>> loss_fn = In2NeCTLoss(4, 8, generator=torch.Generator().manual_seed(0))
    >>> z = torch.randn(2, 8, 4, 4, requires_grad=True)
    >>> y = torch.randint(0, 4, (2, 16, 16))
    >>> logits = torch.randn(2, 4, 16, 16, requires_grad=True)
    >>> total, parts = loss_fn(z, y, logits, return_parts=True)
    >>> sorted(parts)
    ['inter', 'intra', 'seg']
    >>> bool(torch.isclose(total, parts["seg"] + 0.2 * (parts["inter"] + parts["intra"])))
    True
    >>> loss_fn(z, torch.full((2, 16, 16), 255), logits).item()  # nothing labelled: an exact 0
    0.0
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        weight: float = 0.2,
        temperature: float = 0.1,
        max_pixels_per_class: int | None = 100,
        include_anchor_in_denominator: bool = False,
        reduction: str = "sum",
        ignore_index: int | None = IGNORE_INDEX,
        align: str = "nearest_labels",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.weight = check_float(weight, "weight", minimum=0.0)
        self.ignore_index = check_ignore_index(ignore_index, check_num_classes(num_classes))
        self.inter = InterClassLoss(
            num_classes, dim, reduction=reduction, generator=generator, ignore_index=ignore_index, align=align
        )
        self.intra = IntraClassLoss(
            num_classes,
            temperature=temperature,
            max_pixels_per_class=max_pixels_per_class,
            ignore_index=ignore_index,
            reduction=reduction,
            include_anchor_in_denominator=include_anchor_in_denominator,
            align=align,
            generator=generator,
        )
        self.num_classes = self.inter.num_classes

    def extra_repr(self) -> str:
        return f"weight={self.weight}"

    def _check_seg_inputs(self, seg_logits: Any, seg_loss: Any, labels: Tensor) -> None:
        """Exactly one of ``seg_logits`` / ``seg_loss``, of the right kind and shape."""
        if (seg_logits is None) == (seg_loss is None):
            raise ValueError("pass exactly one of seg_logits (logits of the segmentation head) or seg_loss")
        if seg_loss is not None:
            if not isinstance(seg_loss, Tensor) or seg_loss.ndim != 0:
                raise TypeError("seg_loss must be a 0-d torch.Tensor (a precomputed segmentation loss)")
            return
        if not isinstance(seg_logits, Tensor) or not seg_logits.is_floating_point():
            raise TypeError("seg_logits must be a floating torch.Tensor of shape (B, K, H, W) or (N, K)")
        expected = (labels.shape[0], self.num_classes, *labels.shape[1:])
        if tuple(seg_logits.shape) != expected:
            raise ValueError(
                f"seg_logits must have shape (B, K, H, W) / (N, K) = {expected} to match labels "
                f"{tuple(labels.shape)}, got {tuple(seg_logits.shape)}"
            )
        if seg_logits.device != labels.device:
            raise ValueError(
                f"seg_logits and labels must be on the same device, got {seg_logits.device} and {labels.device}"
            )

    def _seg_loss(self, seg_logits: Tensor | None, seg_loss: Tensor | None, labels: Tensor) -> Tensor:
        """``L_Seg``: ``seg_loss`` as given, or the cross-entropy of ``seg_logits`` (mean over labelled pixels)."""
        if seg_loss is not None:
            return seg_loss
        ignore = -100 if self.ignore_index is None else self.ignore_index
        if not bool((labels != ignore).any()):
            # no labelled pixel: the mean over none is 0/0 in F.cross_entropy; an exact 0 with a graph instead
            return seg_logits.sum() * 0.0
        return F.cross_entropy(seg_logits, labels.long(), ignore_index=ignore)

    def forward(
        self,
        features: Tensor,
        labels: Tensor,
        seg_logits: Tensor | None = None,
        *,
        seg_loss: Tensor | None = None,
        return_parts: bool = False,
    ):
        """The total loss of one batch (In2NeCT Eq. 7); see the class docstring.

        Labels and features are validated (by ``L_Inter``) before the
        cross-entropy sees them, so a bad label is a ``ValueError`` naming
        ``labels``.  A batch without a labelled pixel (all ``ignore_index``, or
        empty) gives exact zeros for all three parts, still connected to the graph.
        """
        check_tensor(labels, "labels", kind="integer")
        self._check_seg_inputs(seg_logits, seg_loss, labels)
        inter = self.inter(features, labels)
        intra = self.intra(features, labels)
        seg = self._seg_loss(seg_logits, seg_loss, labels)
        total = seg + self.weight * (inter + intra)
        if return_parts:
            return total, {"seg": seg, "inter": inter, "intra": intra}
        return total
