"""Long-tailed class profiles shared by the synthetic generator and CIFAR-LT.

The exponential profile is the one of LDAM-DRW (Cao et al., NeurIPS 2019;
docs/conventions.md, section cifar-lt): ``n_k = n_max * IF^(-k/(K-1))``; the step
profile keeps the first ``K//2`` classes at ``n_max`` and the rest at ``n_max / IF``.
"""
from __future__ import annotations

import numpy as np

from ceco_lite.validation import check_choice, check_imbalance_factor, check_num_classes

__all__ = ["PROFILES", "long_tail_profile"]

PROFILES = ("exp", "step")


def long_tail_profile(num_classes: int, imbalance_factor: float, profile: str = "exp") -> np.ndarray:
    """Relative class sizes ``n_k / n_max`` of a long-tailed distribution.

    docs/conventions.md, section cifar-lt.

    Parameters
    ----------
    num_classes : int
        ``K >= 2``.
    imbalance_factor : float
        ``IF = n_max / n_min >= 1``.
    profile : {"exp", "step"}
        ``"exp"``: ``IF^(-k/(K-1))`` for ``k = 0..K-1`` (LDAM-DRW); ``"step"``: 1 for the
        first ``K // 2`` classes, ``1/IF`` for the rest.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` float64, first entry 1, non-increasing, last entry ``1/IF``.

    Raises
    ------
    ValueError, TypeError
        On ``K < 2``, ``IF < 1`` or an unknown profile.

    Examples
    --------
    >>> long_tail_profile(3, 100.0).tolist()
    [1.0, 0.1, 0.01]
    >>> long_tail_profile(4, 10.0, "step").tolist()
    [1.0, 1.0, 0.1, 0.1]
    """
    num_classes = check_num_classes(num_classes)
    imbalance_factor = check_imbalance_factor(imbalance_factor)
    check_choice(profile, "profile", PROFILES)
    if profile == "exp":
        k = np.arange(num_classes, dtype=np.float64)
        return (1.0 / imbalance_factor) ** (k / (num_classes - 1.0))
    out = np.ones(num_classes, dtype=np.float64)
    out[num_classes // 2:] = 1.0 / imbalance_factor
    return out
