"""data_utils: imbalanced data for ceco-lite.

Synthetic imbalanced segmentation, CIFAR-LT (LDAM-DRW convention), a Cityscapes
subset (19 trainIds, ignore index 255) and imbalance statistics (pixel versus
centre imbalance factor). Imports are lazy, as in :mod:`ceco_lite`.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "make_synthetic_segmentation": "synthetic",
    "SyntheticSegmentation": "synthetic",
    "cifar_lt_counts": "cifar_lt",
    "CIFAR10LT": "cifar_lt",
    "CIFAR100LT": "cifar_lt",
    "CityscapesSubset": "cityscapes",
    "imbalance_stats": "stats",
    "default_data_dir": "paths",
    "palette": "synthetic",
    "synthetic_class_structure": "synthetic",
    "target_pixel_frequencies": "synthetic",
    "CITYSCAPES_CLASSES": "cityscapes",
    "CITYSCAPES_PALETTE": "cityscapes",
    "labelids_to_trainids": "cityscapes",
    "imbalance_factor": "stats",
    "head_common_tail": "stats",
    "pearson": "stats",
    "long_tail_profile": "profiles",
    "CamVid": "camvid",
    "CAMVID_CLASSES": "camvid",
    "CAMVID_PALETTE": "camvid",
    "SegmentationFolder": "segmentation_folder",
    "CorruptImageError": "segmentation_folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'data_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
