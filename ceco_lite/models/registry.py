"""``build_model``: one factory for every ceco-lite model."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .cifar_resnet import CifarResNet
from .small_seg import SmallSegNet
from .torchvision_seg import DeepLabV3Features, LRASPPFeatures


def _small_seg(num_classes, pretrained, **kw):
    _no_pretrained("small_seg", pretrained)
    return SmallSegNet(num_classes, **kw)


def _resnet(n: int, name: str):
    def build(num_classes, pretrained, **kw):
        _no_pretrained(name, pretrained)
        return CifarResNet(num_classes, num_blocks=n, **kw)

    return build


def _torchvision(cls, name: str):
    def build(num_classes, pretrained, **kw):
        if pretrained is True or pretrained == "backbone":
            kw.setdefault("weights_backbone", "DEFAULT")
        elif pretrained == "full":
            kw.setdefault("weights", "DEFAULT")
        elif pretrained not in (False, None):
            raise ValueError(f"pretrained must be False, True, 'backbone' or 'full' for {name}, got {pretrained!r}")
        return cls(num_classes, **kw)

    return build


def _no_pretrained(name: str, pretrained) -> None:
    if pretrained not in (False, None):
        raise ValueError(f"model {name!r} has no pretrained weights (got pretrained={pretrained!r})")


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "small_seg": _small_seg,
    "lraspp_mobilenet_v3": _torchvision(LRASPPFeatures, "lraspp_mobilenet_v3"),
    "lraspp_mobilenet_v3_large": _torchvision(LRASPPFeatures, "lraspp_mobilenet_v3_large"),
    "deeplabv3_resnet50": _torchvision(DeepLabV3Features, "deeplabv3_resnet50"),
    "resnet32": _resnet(5, "resnet32"),
    "resnet20": _resnet(3, "resnet20"),
    "resnet8": _resnet(1, "resnet8"),
}

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)
#: The model class each name builds (its ``task`` attribute is the task it solves).
MODEL_CLASSES: dict[str, type] = {
    "small_seg": SmallSegNet, "lraspp_mobilenet_v3": LRASPPFeatures, "lraspp_mobilenet_v3_large": LRASPPFeatures,
    "deeplabv3_resnet50": DeepLabV3Features, "resnet32": CifarResNet, "resnet20": CifarResNet, "resnet8": CifarResNet,
}
#: Which task each model name solves (the ``task`` class attribute of the model it builds).
MODEL_TASKS: dict[str, str] = {name: MODEL_CLASSES[name].task for name in MODEL_NAMES}


def build_model(
    name: str,
    num_classes: int,
    *,
    fixed_classifier: bool = False,
    feature_dim: int | None = None,
    pretrained: bool | str = False,
    **kw,
) -> nn.Module:
    """Build a model with the common ceco-lite interface (see :mod:`ceco_lite.models`).

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`: ``"small_seg"`` (CPU segmentation, d = 32),
        ``"lraspp_mobilenet_v3"`` (alias ``"lraspp_mobilenet_v3_large"``, d = 168),
        ``"deeplabv3_resnet50"`` (d = 256), ``"resnet32"``, ``"resnet20"``,
        ``"resnet8"`` (CIFAR ResNets, d = 64).
    num_classes : int
        K >= 2.
    fixed_classifier : bool, default False
        Fixed, frozen, bias-free simplex-ETF classifier (CeCo paper Table 1
        "fixed PC"); needs ``feature_dim >= num_classes - 1``.
    feature_dim : int, optional
        d; default is the model's natural dimension. For the torchvision and
        CIFAR models another value adds a projection layer.
    pretrained : bool or {"backbone", "full"}, default False
        torchvision models only: True / "backbone" = ImageNet backbone weights,
        "full" = COCO-with-VOC-labels segmentation weights. **Downloads** the
        weights (needs internet); False (default) downloads nothing.
    **kw
        Passed to the model class (e.g. ``width``, ``etf_scale``, ``generator``,
        ``weights``, ``weights_backbone``).

    Returns
    -------
    nn.Module
        ``forward(x) -> {"logits", "features"}``; attributes ``feature_dim``,
        ``num_classes``, ``task``, ``fixed_classifier``, ``classifier``;
        method ``classifier_weight() -> (d, K)``.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid names), bad ``pretrained``.
    TypeError
        ``name`` not a string.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {', '.join(MODEL_NAMES)}; got {name!r}")
    key = name.lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return _BUILDERS[key](num_classes, pretrained, fixed_classifier=fixed_classifier, feature_dim=feature_dim, **kw)
