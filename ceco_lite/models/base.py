"""Common interface of every ceco-lite model (see :mod:`ceco_lite.models`).

Every model is an :class:`torch.nn.Module` whose ``forward(x)`` returns a dict

``"logits"``
    segmentation: ``(B, K, H, W)`` at input resolution; classification: ``(B, K)``.
``"features"``
    the pre-classifier features ``z`` -- segmentation: ``(B, d, h, w)`` at the
    resolution the pixel classifier sees (before upsampling); classification: ``(B, d)``.

and which has the attributes ``feature_dim`` (d), ``num_classes`` (K), ``task``
(``"segmentation"`` or ``"classification"``), ``fixed_classifier`` (bool) and
``classifier`` (the 1x1 :class:`~torch.nn.Conv2d` pixel classifier or the
:class:`~torch.nn.Linear` classifier), plus :meth:`FeatureModel.classifier_weight`
returning ``W`` of shape ``(d, K)`` (paper layout, CeCo paper Eq. 1-2: one column
per class).

A *fixed* classifier (CeCo paper Table 1, "fixed PC") holds a simplex ETF
(:func:`ceco_lite.simplex_etf`, CeCo paper Def. 1 / Eq. 1) and no bias. Its
weight is stored as a **buffer**, not a parameter: it is absent from
``model.parameters()`` (so no optimiser, weight decay or DDP can touch it), it
is saved in the ``state_dict`` under the same key ``classifier.weight`` as a
learned classifier, and ``model.requires_grad_(True)`` cannot unfreeze it.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..etf import simplex_etf
from ..validation import check_bool, check_choice, check_int, check_num_classes, check_tensor


def make_classifier(
    kind: str,
    feature_dim: int,
    num_classes: int,
    *,
    fixed: bool = False,
    etf_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Build a pixel (``kind="pixel"``: 1x1 ``nn.Conv2d``) or linear (``kind="linear"``) classifier.

    Parameters
    ----------
    kind : {"pixel", "linear"}
    feature_dim : int
        d, input channels / features.
    num_classes : int
        K, output classes.
    fixed : bool, default False
        If True the weight is a simplex ETF ``W`` (d, K) (CeCo paper Def. 1,
        Eq. 1; Table 1 "fixed PC") times ``etf_scale``, stored as a frozen
        buffer, and there is no bias. Needs ``feature_dim >= num_classes - 1``
        (docs/conventions.md, section simplex-etf).
    etf_scale : float, default 1.0
        Norm of each ETF column (alpha in the paper's Sec. 4.2).
    generator : torch.Generator, optional
        Random source for the ETF's orthonormal ``U`` (reproducible ETFs).

    Returns
    -------
    nn.Module
        ``nn.Conv2d(d, K, 1)`` or ``nn.Linear(d, K)``.

    Raises
    ------
    TypeError, ValueError
        Unknown ``kind``, ``feature_dim < 1``, ``num_classes < 2``, or ``fixed``
        with ``feature_dim < num_classes - 1``.
    """
    check_choice(kind, "kind", ("pixel", "linear"))
    feature_dim = check_int(feature_dim, "feature_dim", minimum=1)
    num_classes = check_num_classes(num_classes)
    fixed = check_bool(fixed, "fixed")
    if kind == "pixel":
        layer: nn.Module = nn.Conv2d(feature_dim, num_classes, kernel_size=1, bias=not fixed)
    else:
        layer = nn.Linear(feature_dim, num_classes, bias=not fixed)
    if fixed:
        set_etf_classifier(layer, scale=etf_scale, generator=generator)
    return layer


def set_etf_classifier(
    layer: nn.Module, *, scale: float = 1.0, generator: torch.Generator | None = None
) -> nn.Module:
    """Turn a 1x1 ``nn.Conv2d`` / ``nn.Linear`` classifier into a fixed simplex-ETF classifier, in place.

    The weight becomes ``scale * simplex_etf(K, d).T`` (CeCo paper Def. 1, Eq. 1),
    registered as a buffer (frozen, ``requires_grad`` False, kept in the
    ``state_dict``); the bias is removed (``layer.bias is None``).

    Raises
    ------
    TypeError
        ``layer`` is not an ``nn.Linear`` or a 1x1 ``nn.Conv2d``.
    ValueError
        ``d < K - 1`` (no simplex ETF exists, docs/conventions.md, section simplex-etf).
    """
    if isinstance(layer, nn.Linear):
        num_classes, dim = layer.out_features, layer.in_features
    elif isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (1, 1) and layer.groups == 1:
        num_classes, dim = layer.out_channels, layer.in_channels
    else:
        raise TypeError(f"layer must be nn.Linear or a 1x1 nn.Conv2d, got {type(layer).__name__}")
    if dim < num_classes - 1:
        raise ValueError(
            f"a fixed simplex-ETF classifier needs feature_dim >= num_classes - 1, "
            f"got feature_dim={dim}, num_classes={num_classes}; pass a larger feature_dim"
        )
    old = layer.weight
    etf = simplex_etf(num_classes, dim, scale=scale, generator=generator, dtype=torch.float32)
    weight = etf.T.contiguous().to(device=old.device, dtype=old.dtype).reshape(old.shape)
    del layer.weight
    layer.register_buffer("weight", weight)
    if getattr(layer, "bias", None) is not None:
        del layer.bias
        layer.register_parameter("bias", None)
    return layer


class FeatureModel(nn.Module):
    """Base class: holds ``num_classes``, ``feature_dim``, ``classifier`` and ``classifier_weight()``.

    Subclasses set ``self.classifier`` and implement ``forward`` returning
    ``{"logits": ..., "features": ...}`` (see module docstring).
    """

    task: str = ""
    num_classes: int
    feature_dim: int
    fixed_classifier: bool
    classifier: nn.Module
    #: Channels of the input images.
    in_channels: int = 3

    def check_input(self, x) -> Tensor:
        """``x`` if it is a floating ``(B, in_channels, H, W)`` image batch; ``TypeError`` /
        ``ValueError`` naming ``x`` otherwise."""
        check_tensor(x, "x", kind="floating", ndim=4, shape="(B, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels (B, C, H, W), got shape {tuple(x.shape)}")
        return x

    def classifier_weight(self) -> Tensor:
        """Classifier ``W`` of shape ``(d, K)`` (paper layout, columns = classes).

        Returns a view of the classifier's weight (``weight.T``): gradients flow
        through it for a learned classifier; for a fixed ETF it is the frozen buffer.
        """
        w = self.classifier.weight
        return w.reshape(w.shape[0], w.shape[1]).T

    def extra_repr(self) -> str:
        return (
            f"task={self.task!r}, num_classes={self.num_classes}, feature_dim={self.feature_dim}, "
            f"fixed_classifier={self.fixed_classifier}"
        )
