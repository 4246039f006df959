"""The papers' published numbers, in one place, for lessons and reports to quote beside their own.

Sources: the CeCo paper (Zhong et al., "Understanding Imbalanced Semantic Segmentation
Through Neural Collapse", CVPR 2023) and its supplement; In2NeCT (Shen et al.).
Every value is copied from the table or section named in its comment.
"""
from __future__ import annotations

__all__ = [
    "CECO_TABLE1", "CECO_TABLE2", "CECO_TABLE4", "CECO_TABLE5", "CECO_TABLE9", "TRAINING_OVERHEAD",
    "IMBALANCE_FACTORS", "PEARSON_ACCURACY_FREQUENCY", "IN2NECT_TABLE2", "group_rows",
]

#: CeCo Table 1 (mIoU, ScanNet200 / ADE20K): (pixel classifier, centre classifier) -> values;
#: ``("learned", None)`` is the baseline without the centre branch.
CECO_TABLE1 = {
    ("learned", None): (27.8, 44.5),
    ("fixed", "fixed"): (28.3, 44.8),
    ("fixed", "learned"): (27.2, 44.0),
    ("learned", "fixed"): (30.3, 45.7),
    ("learned", "learned"): (26.9, 43.7),
}

#: CeCo Table 2 (mIoU against λ): λ -> (ScanNet200, ADE20K).
CECO_TABLE2 = {0.0: (27.8, 44.5), 0.1: (28.6, 44.8), 0.2: (29.4, 45.0), 0.3: (30.1, 45.2),
               0.4: (30.3, 45.3), 0.5: (29.7, 45.7), 0.6: (28.7, 44.9)}

#: CeCo Table 4 (ADE20K mIoU, DeepLabV3+ ResNet-50): (head, common, tail, all).
CECO_TABLE4 = {"DLV3P (R50)": (67.7, 48.3, 36.4, 44.9), "+ CeCo": (67.7, 48.7, 39.0, 46.4)}

#: CeCo Table 5 (ScanNet200 val mIoU): (head, common, tail, all).
CECO_TABLE5 = {"MinkowskiNet": (48.3, 19.1, 7.9, 25.1), "+ CeCo": (51.2, 22.9, 17.1, 30.3)}

#: CeCo supplement Table 9 (Cityscapes val mIoU, single scale): (baseline, + CeCo).
CECO_TABLE9 = {"DLV3P R18": (76.3, 77.5), "DLV3P R50": (79.8, 80.3)}

#: Training-time overhead in % (CeCo supplement Table 11; In2NeCT Table 4); inference overhead is 0.
TRAINING_OVERHEAD = {"DLV3P R101 + CeCo": 9.37, "MinkowskiNet-34 + CeCo": 10.2, "UNetFormer + In2NeCT": 10.5}

#: Pixel/point versus centre imbalance factor (CeCo Sec. 4.3, supplement Table 12): (pixel IF, centre IF).
IMBALANCE_FACTORS = {
    "ScanNet v2": (116.0, 11.0),
    "ScanNet200": (37256.0, 597.0),
    "ADE20K": (827.0, 282.0),
    "COCO-Stuff": (2612.0, 528.0),
    "Cityscapes": (373.0, 20.0),
}

#: Pearson correlation of per-class accuracy with normalised class frequency
#: (CeCo Sec. 4.3, supplement Fig. 7).
PEARSON_ACCURACY_FREQUENCY = {
    "CIFAR-100-LT (images)": 0.76,
    "ScanNet200 (points)": 0.32,
    "ScanNet200 (centres)": 0.51,
    "ADE20K (pixels)": 0.31,
    "ADE20K (centres)": 0.49,
}

#: In2NeCT Table 2 (LoveDA, UNetFormer): Δ_Inter, Δ_Intra and mIoU (%).
IN2NECT_TABLE2 = {
    "UNetFormer (In2NeCT Table 2)": {"delta_inter": 0.047, "delta_intra": 0.135, "mIoU": 52.40},
    "+ In2NeCT (In2NeCT Table 2)": {"delta_inter": 0.018, "delta_intra": 0.113, "mIoU": 54.30},
}


def group_rows() -> dict:
    """CeCo Tables 4 and 5 as rows ``{name: {"head", "common", "tail", "mIoU"}}``.

    Examples
    --------
    >>> group_rows()["+ CeCo (ADE20K, CeCo Table 4)"]["tail"]
    39.0
    """
    keys = ("head", "common", "tail", "mIoU")
    rows = {f"{k} (ADE20K, CeCo Table 4)": dict(zip(keys, v)) for k, v in CECO_TABLE4.items()}
    rows.update({f"{k} (ScanNet200, CeCo Table 5)": dict(zip(keys, v)) for k, v in CECO_TABLE5.items()})
    return rows
