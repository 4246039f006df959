"""A small, fast CPU segmentation network with exposed pixel features.

``SmallSegNet``: a compact encoder-decoder (output stride 4) for lessons and
tests on CPU. About 0.15 M parameters at the defaults (``width=16``,
``feature_dim=32``), below :data:`SMALL_SEG_MAX_PARAMS`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validation import check_bool, check_int, check_num_classes
from .base import FeatureModel, make_classifier

#: Upper bound on the parameter count of ``small_seg`` at its defaults (asserted in the tests).
SMALL_SEG_MAX_PARAMS = 300_000


def _cbr(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _ResBlock(nn.Module):
    """Basic residual block (two 3x3 convs, identity shortcut), optional dilation."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + x, inplace=True)


class SmallSegNet(FeatureModel):
    """Small encoder-decoder for semantic segmentation with pixel features ``z`` exposed.

    Architecture (``w = width``): stem 3x3/2 (3 -> w) -> 3x3/2 (w -> 2w) + residual
    block [skip, 1/4] -> 3x3/2 (2w -> 4w) + dilated residual blocks (dilation 2, 4)
    [context, 1/8] -> upsample context to 1/4, concat skip, 3x3 conv-BN-ReLU
    (6w -> d) = pixel features ``z`` at output stride 4 -> 1x1 pixel classifier ->
    bilinear upsampling of the logits to the input size (``align_corners=False``).

    Parameters
    ----------
    num_classes : int
        K >= 2.
    feature_dim : int, default 32
        d, channels of the pixel features ``z``.
    width : int, default 16
        Base width ``w`` of the encoder.
    in_channels : int, default 3
    fixed_classifier : bool, default False
        Fixed simplex-ETF pixel classifier (CeCo paper Table 1 "fixed PC"),
        see :func:`ceco_lite.models.base.make_classifier`. Needs d >= K - 1.
    etf_scale : float, default 1.0
    generator : torch.Generator, optional
        Random source of the ETF (the rest of the initialisation uses torch's global RNG).

    Notes
    -----
    ``forward(x)`` with ``x`` ``(B, C, H, W)`` returns ``{"logits": (B, K, H, W),
    "features": (B, d, ceil(H/4), ceil(W/4))}``. ``z`` is post-ReLU (non-negative), as the
    penultimate features of DeepLab heads and ResNets.
    ``logits == interpolate(classifier(z))`` exactly, which equals
    ``classifier(interpolate(z))`` (a 1x1 conv commutes with bilinear interpolation).
    """

    task = "segmentation"

    def __init__(
        self,
        num_classes: int,
        *,
        feature_dim: int | None = None,
        width: int = 16,
        in_channels: int = 3,
        fixed_classifier: bool = False,
        etf_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.feature_dim = check_int(32 if feature_dim is None else feature_dim, "feature_dim", minimum=1)
        width = check_int(width, "width", minimum=1)
        self.in_channels = in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.fixed_classifier = check_bool(fixed_classifier, "fixed_classifier")
        w = width
        self.stem = _cbr(in_channels, w, stride=2)  # 1/2
        self.stage2 = nn.Sequential(_cbr(w, 2 * w, stride=2), _ResBlock(2 * w))  # 1/4
        self.stage3 = nn.Sequential(  # 1/8
            _cbr(2 * w, 4 * w, stride=2), _ResBlock(4 * w, dilation=2), _ResBlock(4 * w, dilation=4)
        )
        self.fuse = _cbr(6 * w, self.feature_dim)
        self.classifier = make_classifier(
            "pixel", self.feature_dim, self.num_classes,
            fixed=self.fixed_classifier, etf_scale=etf_scale, generator=generator,
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.classifier:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: Tensor) -> Tensor:
        """Pixel features ``z`` ``(B, d, h, w)`` at output stride 4 (before the classifier)."""
        self.check_input(x)
        skip = self.stage2(self.stem(x))
        ctx = self.stage3(skip)
        ctx = F.interpolate(ctx, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([ctx, skip], dim=1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.forward_features(x)
        logits = F.interpolate(self.classifier(z), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"logits": logits, "features": z}
