"""Argument checks shared by every layer of ceco-lite (maths, data, models, engine, widgets).

One rule per kind of argument, so the same argument is judged the same way
everywhere, and every error names the argument and what was expected:

>>> check_int(3, "epochs", minimum=1)
3
>>> check_int(0, "epochs", minimum=1)
Traceback (most recent call last):
...
ValueError: epochs must be >= 1, got 0

Integers are any :class:`numbers.Integral` except ``bool`` (so ``numpy.int64``
passes and is returned as a Python ``int``); real numbers are any
:class:`numbers.Real` except ``bool``, and must be finite unless stated.
``TypeError`` means the kind of value is wrong, ``ValueError`` its value.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import torch
from torch import Tensor

__all__ = [
    "check_int",
    "check_optional_int",
    "check_optional_path",
    "check_float",
    "check_positive",
    "check_bool",
    "check_choice",
    "check_num_classes",
    "check_ignore_index",
    "check_seed",
    "check_generator",
    "check_size",
    "check_tensor",
    "check_features_labels",
    "IGNORE_INDEX",
    "MIN_IGNORE_INDEX",
]

#: The label of ignored pixels used throughout (Cityscapes, CamVid, synthetic data).
IGNORE_INDEX = 255
#: Smallest accepted ``ignore_index`` (labels are shifted by it in int64 arithmetic).
MIN_IGNORE_INDEX = -(2**62)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (bounds optional).

    Raises
    ------
    TypeError
        ``value`` is not an integer (``bool`` is not accepted).
    ValueError
        ``value`` lies outside the bounds.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_optional_int(value: Any, name: str, *, minimum: int | None = None,
                       maximum: int | None = None) -> int | None:
    """``None``, or :func:`check_int` of ``value``."""
    return None if value is None else check_int(value, name, minimum=minimum, maximum=maximum)


def check_float(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False, strict_maximum: bool = False, allow_inf: bool = False,
                hint: str = "") -> float:
    """``value`` as a finite ``float`` within the bounds.

    Parameters
    ----------
    value : real number
    name : str
        Argument name used in the error message.
    minimum, maximum : float, optional
        Bounds (inclusive unless ``strict_minimum`` / ``strict_maximum``).
    allow_inf : bool, default False
        Accept ``+inf`` / ``-inf`` (never NaN).
    hint : str, optional
        Added to the message in parentheses.

    Raises
    ------
    TypeError
        Not a real number.
    ValueError
        NaN, infinite (unless allowed) or out of bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    bounds = "".join(
        f" and {op} {bound:g}" for op, bound in (
            (">" if strict_minimum else ">=", minimum), ("<" if strict_maximum else "<=", maximum))
        if bound is not None
    )
    finite = "not NaN" if allow_inf else "finite"
    bad = math.isnan(value) or (math.isinf(value) and not allow_inf)
    bad = bad or (minimum is not None and (value < minimum or (strict_minimum and value == minimum)))
    bad = bad or (maximum is not None and (value > maximum or (strict_maximum and value == maximum)))
    if bad:
        raise ValueError(f"{name} must be {finite}{bounds}, got {value}" + (f" ({hint})" if hint else ""))
    return value


def check_positive(value: Any, name: str) -> float:
    """A finite real number ``> 0`` (:func:`check_float` with a strict minimum of 0)."""
    return check_float(value, name, minimum=0.0, strict_minimum=True)


def check_optional_path(value: Any, name: str) -> str | None:
    """``None``, or a non-empty file or folder path (``str`` or :class:`os.PathLike`) returned as a ``str``.

    Raises
    ------
    TypeError
        Neither None, a str nor a path-like object.
    ValueError
        An empty (or blank) path, or one holding a NUL character.

    Examples
    --------
    >>> from pathlib import Path
    >>> check_optional_path(Path("runs"), "out_dir")
    'runs'
    """
    if value is None:
        return None
    if not isinstance(value, str) and not hasattr(value, "__fspath__"):  # os.PathLike
        raise TypeError(f"{name} must be a path (str), got {type(value).__name__} ({value!r})")
    value = value if isinstance(value, str) else value.__fspath__()
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a ``bool`` (``numpy.bool_`` too); ``TypeError`` otherwise."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_ without importing numpy
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")


def check_choice(value: Any, name: str, choices: Iterable) -> Any:
    """``value`` if it is one of ``choices``; ``ValueError`` listing them otherwise."""
    choices = tuple(choices)
    try:
        ok = value in choices
    except TypeError:  # unhashable / incomparable
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_num_classes(num_classes: Any, name: str = "num_classes") -> int:
    """The number of classes ``K``: an int ``>= 2``."""
    return check_int(num_classes, name, minimum=2)


def check_ignore_index(ignore_index: Any, num_classes: int | None = None) -> int | None:
    """The label of ignored pixels: ``None`` (nothing ignored) or an int outside ``[0, num_classes)``.

    Parameters
    ----------
    ignore_index : int or None
    num_classes : int, optional
        When given, ``ignore_index`` must not be a class (``0 <= ignore_index < K``
        would silently drop a real class).

    Raises
    ------
    TypeError
        Not an int or None.
    ValueError
        Inside ``[0, num_classes)``, or below :data:`MIN_IGNORE_INDEX`.
    """
    if ignore_index is None:
        return None
    if not _is_int(ignore_index):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    ignore_index = int(ignore_index)
    if num_classes is not None and 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index must lie outside [0, num_classes) = [0, {num_classes}), got {ignore_index}"
            + (" (with 256 or more classes choose another ignore_index, e.g. -1)" if ignore_index == 255 else "")
        )
    if ignore_index < MIN_IGNORE_INDEX:
        raise ValueError(f"ignore_index must be >= {MIN_IGNORE_INDEX}, got {ignore_index}")
    return ignore_index


def check_seed(seed: Any, name: str = "seed") -> int:
    """A random seed: an int ``>= 0``."""
    return check_int(seed, name, minimum=0)


def check_generator(generator: Any, name: str = "generator") -> torch.Generator | None:
    """``None`` or a :class:`torch.Generator` (a seed is not accepted: pass
    ``torch.Generator().manual_seed(seed)``)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} ({generator!r}); "
            "pass torch.Generator().manual_seed(seed) for a seed"
        )
    return generator


def check_size(size: Any, name: str = "size", *, square: bool = True) -> tuple[int, int]:
    """An image size ``(H, W)`` of positive ints; an int ``s`` means ``(s, s)``
    (``square=True``) or is rejected."""
    if _is_int(size) and square:
        size = (int(size), int(size))
    try:
        h, w = size
    except (TypeError, ValueError):
        what = "an int or a pair (H, W) of ints" if square else "a pair (H, W) of ints"
        raise TypeError(f"{name} must be {what}, got {size!r}") from None
    for v in (h, w):
        if not _is_int(v):
            raise TypeError(f"{name} must hold ints, got {size!r}")
        if v < 1:
            raise ValueError(f"{name} must be positive, got {size!r}")
    return int(h), int(w)


def check_tensor(value: Any, name: str, *, kind: str | None = None, ndim: int | Iterable[int] | None = None,
                 shape: str | None = None) -> Tensor:
    """``value`` if it is a tensor of the right kind and number of dimensions.

    Parameters
    ----------
    kind : {"floating", "integer"}, optional
        Required dtype family (``bool`` and complex are not integer).
    ndim : int or iterable of int, optional
        Allowed numbers of dimensions.
    shape : str, optional
        The expected shape in words (e.g. ``"(d, K)"``), used in the message.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if kind == "floating" and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating dtype, got {value.dtype}")
    if kind == "integer" and (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool):
        raise TypeError(f"{name} must have an integer dtype, got {value.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            raise ValueError(f"{name} must have shape {shape or f'of {allowed} dims'}, got {tuple(value.shape)}")
    return value


def check_features_labels(features: Any, labels: Any) -> None:
    """Features ``(N, d)`` with labels ``(N,)``, or ``(B, d, H, W)`` with ``(B, H, W)``,
    on one device; floating features, integer labels, ``d >= 1``."""
    check_tensor(features, "features", kind="floating")
    check_tensor(labels, "labels", kind="integer")
    if features.device != labels.device:
        raise ValueError(
            f"features and labels must be on the same device, got features on {features.device} "
            f"and labels on {labels.device}"
        )
    if features.ndim == 2:
        if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"labels must have shape (N,) = ({features.shape[0]},) for features of shape (N, d) = "
                f"{tuple(features.shape)}, got {tuple(labels.shape)}"
            )
    elif features.ndim == 4:
        B, _, H, W = features.shape
        if labels.shape != (B, H, W):
            raise ValueError(
                f"labels must have shape (B, H, W) = {(B, H, W)} for features of shape (B, d, H, W) = "
                f"{tuple(features.shape)}, got {tuple(labels.shape)} "
                "(use align_features_and_labels for different resolutions)"
            )
    else:
        raise ValueError(f"features must have shape (N, d) or (B, d, H, W), got {tuple(features.shape)}")
    if features.shape[1] < 1:
        raise ValueError(f"features must have a feature dimension d >= 1, got shape {tuple(features.shape)}")
