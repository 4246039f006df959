"""Models with exposed pre-classifier features for neural-collapse experiments.

Common interface (every model; see :mod:`ceco_lite.models.base`):

* ``forward(x) -> {"logits", "features"}`` -- segmentation: logits ``(B, K, H, W)``
  at input resolution, features ``(B, d, h, w)`` before the 1x1 pixel classifier
  (at the classifier's resolution); classification: logits ``(B, K)``, features ``(B, d)``.
* attributes ``feature_dim``, ``num_classes``, ``task``, ``fixed_classifier``,
  ``classifier`` (1x1 ``nn.Conv2d`` or ``nn.Linear``);
  ``classifier_weight() -> W`` of shape ``(d, K)``.
* ``fixed_classifier=True``: frozen, bias-free simplex-ETF classifier (CeCo
  paper Table 1, "fixed PC"), stored as a buffer.

Build models with :func:`build_model` (names in :data:`MODEL_NAMES`).
"""
from __future__ import annotations

from .base import FeatureModel, make_classifier, set_etf_classifier
from .cifar_resnet import CifarResNet
from .registry import MODEL_NAMES, MODEL_TASKS, build_model
from .small_seg import SMALL_SEG_MAX_PARAMS, SmallSegNet
from .torchvision_seg import DeepLabV3Features, LRASPPFeatures

__all__ = [
    "build_model",
    "MODEL_NAMES",
    "MODEL_TASKS",
    "FeatureModel",
    "SmallSegNet",
    "SMALL_SEG_MAX_PARAMS",
    "LRASPPFeatures",
    "DeepLabV3Features",
    "CifarResNet",
    "make_classifier",
    "set_etf_classifier",
]
