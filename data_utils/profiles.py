"""Long-tailed class profiles shared by the synthetic generator and CIFAR-LT.

The exponential profile is the one of LDAM-DRW (Cao et al., NeurIPS 2019), used by
SPEC §4: ``n_k = n_max * IF^(-k/(K-1))``; the step profile keeps the first ``K//2``
classes at ``n_max`` and the rest at ``n_max / IF``.
"""
from __future__ import annotations

import numbers

import numpy as np

PROFILES = ("exp", "step")


def check_int(value, *, minimum: int, name: str) -> int:
    """Validate an integer ``>= minimum`` (``TypeError``/``ValueError`` naming ``name``); return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_num_classes(num_classes, *, minimum: int = 2, name: str = "num_classes") -> int:
    """Validate a class count (an integer ``>= minimum``) and return it as ``int``."""
    return check_int(num_classes, minimum=minimum, name=name)


def check_imbalance_factor(imbalance_factor) -> float:
    """Validate an imbalance factor (a finite real number ``>= 1``) and return it as ``float``."""
    if isinstance(imbalance_factor, bool) or not isinstance(imbalance_factor, numbers.Real):
        raise TypeError(
            f"imbalance_factor must be a real number >= 1, got {type(imbalance_factor).__name__}"
        )
    value = float(imbalance_factor)
    if not np.isfinite(value) or value < 1.0:
        raise ValueError(
            f"imbalance_factor must be a finite number >= 1 (n_max / n_min), got {imbalance_factor}"
        )
    return value


def long_tail_profile(num_classes: int, imbalance_factor: float, profile: str = "exp") -> np.ndarray:
    """Relative class sizes ``n_k / n_max`` of a long-tailed distribution (SPEC §4).

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
    """
    num_classes = check_num_classes(num_classes)
    imbalance_factor = check_imbalance_factor(imbalance_factor)
    if profile == "exp":
        k = np.arange(num_classes, dtype=np.float64)
        return (1.0 / imbalance_factor) ** (k / (num_classes - 1.0))
    if profile == "step":
        out = np.ones(num_classes, dtype=np.float64)
        out[num_classes // 2:] = 1.0 / imbalance_factor
        return out
    raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
