"""CIFAR ResNets of the long-tailed literature (LDAM-DRW's ``resnet_cifar.py``).

He et al. (2016) CIFAR ResNet-6n+2 as used by Cao et al. (2019, LDAM-DRW) for
CIFAR-10/100-LT: a 3x3 stem (16 channels), three stages of ``n`` BasicBlocks
with 16/32/64 channels (stride 1/2/2), option-A shortcuts (strided identity,
zero-padded channels), global average pooling -> 64-d penultimate features ->
linear classifier; Kaiming-normal initialisation of convs and linear layers.
ResNet-32: n = 5; ResNet-20: n = 3; ResNet-8: n = 1 (for CPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validation import check_bool, check_int, check_num_classes
from .base import FeatureModel, make_classifier, set_etf_classifier


class _BasicBlockA(nn.Module):
    """BasicBlock with LDAM-DRW's option-A shortcut (``x[:, :, ::2, ::2]`` zero-padded in channels)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.pad = planes // 4

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample:
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + x)


class CifarResNet(FeatureModel):
    """CIFAR ResNet-(6n+2) with penultimate features and classifier exposed.

    Parameters
    ----------
    num_classes : int
        K >= 2.
    num_blocks : int, default 5
        BasicBlocks per stage ``n`` (depth 6n + 2: 5 -> ResNet-32, 3 -> ResNet-20, 1 -> ResNet-8).
    feature_dim : int, optional
        Default 64 (the pooled features). Another value adds a projection
        ``Linear(64, d, bias=False) -> BatchNorm1d -> ReLU`` (e.g. for a fixed
        ETF with K - 1 > 64 classes, CIFAR-100).
    fixed_classifier : bool, default False
        Fixed simplex-ETF classifier (no bias), needs d >= K - 1.
    etf_scale : float, default 1.0
    generator : torch.Generator, optional
        Random source of the ETF.

    Notes
    -----
    ``forward(x)`` with ``x`` ``(B, 3, H, W)`` returns ``{"logits": (B, K),
    "features": (B, d)}`` and ``logits == classifier(features)``.
    """

    task = "classification"

    def __init__(
        self,
        num_classes: int,
        *,
        num_blocks: int = 5,
        feature_dim: int | None = None,
        fixed_classifier: bool = False,
        etf_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        num_blocks = check_int(num_blocks, "num_blocks", minimum=1)
        self.depth = 6 * num_blocks + 2
        self.fixed_classifier = check_bool(fixed_classifier, "fixed_classifier")
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(num_blocks):
                blocks.append(_BasicBlockA(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        if feature_dim is None or feature_dim == 64:
            self.feature_dim = 64
            self.projection: nn.Module = nn.Identity()
        else:
            self.feature_dim = check_int(feature_dim, "feature_dim", minimum=1)
            self.projection = nn.Sequential(
                nn.Linear(64, self.feature_dim, bias=False), nn.BatchNorm1d(self.feature_dim), nn.ReLU(inplace=True)
            )
        self.classifier = make_classifier("linear", self.feature_dim, self.num_classes, fixed=False)
        for m in self.modules():  # LDAM-DRW's _weights_init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
        if self.fixed_classifier:
            set_etf_classifier(self.classifier, scale=etf_scale, generator=generator)

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, d)`` (after global average pooling [and projection])."""
        self.check_input(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.projection(out)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        z = self.forward_features(x)
        return {"logits": self.classifier(z), "features": z}
