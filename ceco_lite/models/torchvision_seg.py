"""Adapters for torchvision segmentation models that expose the pixel features ``z``.

Both adapters build the torchvision model (``torchvision.models.segmentation``),
optionally with pretrained weights, and re-wire its head so that the last layer
is one 1x1 pixel classifier on well-defined pixel features:

* :class:`DeepLabV3Features` (DeepLabV3 ResNet-50): ``z`` = the 256-d output of
  ``DeepLabHead`` before its final 1x1 conv (ASPP -> 3x3 conv -> BN -> ReLU), at
  output stride 8. The classifier is that final 1x1 conv.
* :class:`LRASPPFeatures` (LR-ASPP MobileNetV3-Large): LR-ASPP sums two 1x1
  classifiers, ``low_classifier(low) + high_classifier(up(cbr(high) * scale(high)))``.
  Since a sum of two 1x1 convs is one 1x1 conv on the concatenated inputs, we
  expose ``z = concat(low, up(cbr * scale))`` -- 40 + 128 = 168 channels at
  output stride 8 -- and a single 1x1 classifier ``Conv2d(168, K)`` whose weight
  is ``[low_classifier.weight, high_classifier.weight]`` and whose bias is the sum
  of both biases. This is *exactly* torchvision's LR-ASPP (pretrained weights
  are carried over), with one classifier W (d, K) over all the pixel features.

With ``feature_dim`` set, a projection (1x1 conv without bias -> BN -> ReLU) maps
the natural features to ``feature_dim`` channels, and ``z`` is its output.

Nothing is downloaded unless pretrained weights are asked for
(``weights``/``weights_backbone`` or ``build_model(..., pretrained=...)``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

from ..validation import check_bool, check_int, check_num_classes
from .base import FeatureModel, make_classifier, set_etf_classifier


def _projection(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _TorchvisionSegBase(FeatureModel):
    """Shared constructor and forward of the adapters (parameters documented on each subclass).

    A subclass implements ``_build(weights, weights_backbone)`` (builds the torchvision
    model, keeps its feature layers, returns ``(natural_dim, pretrained_classifier)``)
    and ``_features(x)`` (the natural pixel features, before the projection).
    """

    task = "segmentation"

    def __init__(
        self,
        num_classes: int,
        *,
        feature_dim: int | None = None,
        fixed_classifier: bool = False,
        weights=None,
        weights_backbone=None,
        etf_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        natural_dim, pretrained_classifier = self._build(weights, weights_backbone)
        self._finish(natural_dim, pretrained_classifier, feature_dim, fixed_classifier, etf_scale, generator)

    def _build(self, weights, weights_backbone) -> tuple[int, nn.Conv2d]:
        raise NotImplementedError

    def _features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _finish(
        self,
        natural_dim: int,
        pretrained_classifier: nn.Conv2d | None,
        feature_dim: int | None,
        fixed_classifier: bool,
        etf_scale: float,
        generator: torch.Generator | None,
    ) -> None:
        self.fixed_classifier = check_bool(fixed_classifier, "fixed_classifier")
        if feature_dim is None or feature_dim == natural_dim:
            self.feature_dim = natural_dim
            self.projection: nn.Module = nn.Identity()
        else:
            self.feature_dim = check_int(feature_dim, "feature_dim", minimum=1)
            self.projection = _projection(natural_dim, self.feature_dim)
        if (
            pretrained_classifier is not None
            and pretrained_classifier.out_channels == self.num_classes
            and pretrained_classifier.in_channels == self.feature_dim
        ):
            self.classifier = pretrained_classifier
            if self.fixed_classifier:
                set_etf_classifier(self.classifier, scale=etf_scale, generator=generator)
        else:
            self.classifier = make_classifier(
                "pixel", self.feature_dim, self.num_classes,
                fixed=self.fixed_classifier, etf_scale=etf_scale, generator=generator,
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """Pixel features ``z`` ``(B, d, h, w)`` (output stride 8) before the classifier."""
        self.check_input(x)
        return self.projection(self._features(x))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.forward_features(x)
        logits = F.interpolate(self.classifier(z), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"logits": logits, "features": z}


class DeepLabV3Features(_TorchvisionSegBase):
    """DeepLabV3 ResNet-50 (torchvision) with the 256-d head features exposed.

    Parameters
    ----------
    num_classes : int
        K >= 2.
    feature_dim : int, optional
        Default 256 (DeepLabHead's features). Another value adds a projection.
    fixed_classifier : bool, default False
        Fixed simplex-ETF pixel classifier (CeCo paper Table 1 "fixed PC").
    weights, weights_backbone : optional
        Passed to ``torchvision.models.segmentation.deeplabv3_resnet50``
        (default None: random initialisation, nothing is downloaded). With full
        ``weights`` (21 VOC classes) the pretrained classifier is kept only when
        ``num_classes == 21`` and no projection is used; otherwise it is re-initialised.
    etf_scale : float, default 1.0
    generator : torch.Generator, optional
        Random source of the ETF.

    Notes
    -----
    ``forward(x)`` with ``x`` ``(B, 3, H, W)`` returns ``{"logits": (B, K, H, W),
    "features": (B, d, ceil(H/8), ceil(W/8))}``. The auxiliary FCN head is not used.
    """

    def _build(self, weights, weights_backbone) -> tuple[int, nn.Conv2d]:
        if weights is not None:
            tv = deeplabv3_resnet50(weights=weights, aux_loss=True)  # full weights: 21 classes
        else:
            tv = deeplabv3_resnet50(
                weights=None, weights_backbone=weights_backbone, num_classes=self.num_classes, aux_loss=False
            )
        self.backbone = tv.backbone  # IntermediateLayerGetter -> {"out": layer4, ...}
        head = tv.classifier  # DeepLabHead: ASPP, conv3x3, BN, ReLU, conv1x1
        self.head = nn.Sequential(*list(head.children())[:-1])
        return 256, head[-1]

    def _features(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x)["out"])


class LRASPPFeatures(_TorchvisionSegBase):
    """LR-ASPP MobileNetV3-Large (torchvision) with one pixel classifier over ``concat(low, high)``.

    ``z = concat(low, up(cbr(high) * scale(high)))`` (40 + 128 = 168 channels,
    output stride 8); the classifier merges torchvision's ``low_classifier`` and
    ``high_classifier`` (see the module docstring), so the network computes the
    same function as ``torchvision.models.segmentation.lraspp_mobilenet_v3_large``.

    Parameters
    ----------
    num_classes : int
        K >= 2.
    feature_dim : int, optional
        Default 168. Another value adds a projection.
    fixed_classifier : bool, default False
        Fixed simplex-ETF pixel classifier (CeCo paper Table 1 "fixed PC").
    weights, weights_backbone : optional
        Passed to ``torchvision.models.segmentation.lraspp_mobilenet_v3_large``
        (default None: random initialisation, nothing is downloaded). With full
        ``weights`` (21 VOC classes) the merged pretrained classifier is kept only
        when ``num_classes == 21`` and no projection is used.
    etf_scale : float, default 1.0
    generator : torch.Generator, optional

    Notes
    -----
    ``forward(x)`` returns ``{"logits": (B, K, H, W), "features": (B, d, ceil(H/8), ceil(W/8))}``.
    """

    def _build(self, weights, weights_backbone) -> tuple[int, nn.Conv2d]:
        if weights is not None:
            tv = lraspp_mobilenet_v3_large(weights=weights)
        else:
            tv = lraspp_mobilenet_v3_large(
                weights=None, weights_backbone=weights_backbone, num_classes=self.num_classes
            )
        self.backbone = tv.backbone  # IntermediateLayerGetter -> {"low": C2 (40 ch), "high": C5 (960 ch)}
        head = tv.classifier
        self.cbr = head.cbr
        self.scale = head.scale
        low_c, high_c = head.low_classifier, head.high_classifier
        merged = nn.Conv2d(low_c.in_channels + high_c.in_channels, low_c.out_channels, 1)
        with torch.no_grad():
            merged.weight.copy_(torch.cat([low_c.weight, high_c.weight], dim=1))
            merged.bias.copy_(low_c.bias + high_c.bias)
        return merged.in_channels, merged

    def _features(self, x: Tensor) -> Tensor:
        feats = self.backbone(x)
        low, high = feats["low"], feats["high"]
        hi = self.cbr(high) * self.scale(high)
        hi = F.interpolate(hi, size=low.shape[-2:], mode="bilinear", align_corners=False)
        # under autocast interpolate returns float32 while low is bfloat16: keep z in low's dtype
        return torch.cat([low, hi.to(low.dtype)], dim=1)
