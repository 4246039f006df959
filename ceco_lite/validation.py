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

import numpy as np
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
    "check_tensor_like",
    "check_classifier",
    "check_bias",
    "check_labels",
    "check_matrix",
    "check_dtype",
    "check_imbalance_factor",
    "check_device",
    "check_real_array",
    "IGNORE_INDEX",
    "MIN_IGNORE_INDEX",
]

#: The label of ignored pixels used throughout (Cityscapes, CamVid, synthetic data).
IGNORE_INDEX = 255
#: Smallest accepted ``ignore_index`` (labels are shifted by it in int64 arithmetic).
MIN_IGNORE_INDEX = -(2**62)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              hint: str = "") -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (bounds optional).

    Parameters
    ----------
    value : integer
    name : str
        Argument name used in the error message.
    minimum, maximum : int, optional
        Inclusive bounds.
    hint : str, optional
        Added to a bound violation's message in parentheses.

    Raises
    ------
    TypeError
        ``value`` is not an integer (``bool`` is not accepted).
    ValueError
        ``value`` lies outside the bounds.

    Examples
    --------
    >>> import numpy as np
    >>> check_int(np.int64(4), "num_blocks", minimum=1)
    4
    >>> check_int(2, "dim", minimum=3, hint="a simplex ETF of 4 vectors spans 3 dimensions")
    Traceback (most recent call last):
    ...
    ValueError: dim must be >= 3, got 2 (a simplex ETF of 4 vectors spans 3 dimensions)
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    extra = f" ({hint})" if hint else ""
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}{extra}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}{extra}")
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
    """The number of classes ``K``: an int ``>= 2`` (numpy integers pass, ``bool`` does not)."""
    return check_int(num_classes, name, minimum=2)


def check_imbalance_factor(imbalance_factor: Any, name: str = "imbalance_factor") -> float:
    """An imbalance factor ``IF = n_max / n_min``: a finite real number ``>= 1``
    (docs/conventions.md, section imbalance-factor)."""
    return check_float(imbalance_factor, name, minimum=1.0, hint="n_max / n_min")


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


def check_labels(labels: Tensor, num_classes: int, ignore_index: int | None, name: str = "labels") -> None:
    """Every value of the integer tensor ``labels`` is a class in ``[0, num_classes)`` or ``ignore_index``.

    One ``aminmax`` pass over the labels (a host synchronisation on CUDA); an
    empty tensor passes.

    Raises
    ------
    ValueError
        A label outside ``[0, num_classes)`` other than ``ignore_index``; the
        message shows one of them.

    Examples
    --------
    >>> check_labels(torch.tensor([0, 2, 255]), 3, 255)
    >>> check_labels(torch.tensor([0, 3]), 3, 255)
    Traceback (most recent call last):
    ...
    ValueError: labels must lie in [0, num_classes) = [0, 3) or equal ignore_index=255, found e.g. 3
    """
    if not labels.numel():
        return
    labels = labels.long()
    if ignore_index is None:
        lo, hi = torch.aminmax(labels)
        if int(lo) < 0 or int(hi) >= num_classes:
            bad = labels[(labels < 0) | (labels >= num_classes)]
            raise ValueError(
                f"{name} must lie in [0, num_classes) = [0, {num_classes}), found e.g. {int(bad[0])}"
            )
        return
    ignored = labels == ignore_index
    lo, hi = torch.aminmax(labels.masked_fill(ignored, 0))
    if int(lo) < 0 or int(hi) >= num_classes:
        bad = labels[((labels < 0) | (labels >= num_classes)) & ~ignored]
        raise ValueError(
            f"{name} must lie in [0, num_classes) = [0, {num_classes}) or equal "
            f"ignore_index={ignore_index}, found e.g. {int(bad[0])}"
        )


def check_matrix(value: Any, name: str, *, min_columns: int = 1) -> Tensor:
    """A finite floating matrix ``(d, K)`` of column vectors -- a classifier or a frame,
    one column per class (docs/conventions.md, section layout).

    Raises
    ------
    TypeError
        Not a floating tensor.
    ValueError
        Not 2-D, fewer than ``min_columns`` columns, or non-finite entries.
    """
    check_tensor(value, name, kind="floating", ndim=2, shape="(d, K)")
    if value.shape[1] < min_columns:
        raise ValueError(
            f"{name} must have at least {min_columns} columns (classes), got shape {tuple(value.shape)}"
        )
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains non-finite values")
    return value


def check_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """A floating :class:`torch.dtype` (``TypeError`` otherwise)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.dtype, got {dtype!r}")
    return dtype


def check_device(device: Any, name: str = "device") -> torch.device:
    """``device`` as a :class:`torch.device` (a device, a string such as ``"cuda:0"``, or ``None`` for the CPU).

    Raises
    ------
    TypeError
        Not a device, a string or ``None``.
    ValueError
        A string torch does not recognise as a device.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"{name} must be a torch.device, a string such as 'cpu' or 'cuda:0', or None, "
                        f"got {type(device).__name__} ({device!r})")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"{name} must name a device such as 'cpu' or 'cuda:0', got {device!r}") from None


def check_real_array(value: Any, name: str, *, ndim: int | None = None) -> np.ndarray:
    """``value`` (a sequence, array or tensor of real numbers) as a float64 numpy array.

    NaN and infinities pass (callers that need finite values check them).

    Raises
    ------
    TypeError
        Not convertible to an array of real numbers (strings, objects, complex).
    ValueError
        ``ndim`` given and the array has another number of dimensions.
    """
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        value = value.double().numpy()
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence or array of real numbers, got {type(value).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


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


def check_tensor_like(value: Any, name: str, *, kind: str | None = None) -> Tensor:
    """``value`` as a tensor: a :class:`torch.Tensor` as is, a :class:`numpy.ndarray` shared
    without copying (:func:`torch.from_numpy`).

    Parameters
    ----------
    value : torch.Tensor or numpy.ndarray
    name : str
        Argument name used in the message.
    kind : {"floating", "integer"}, optional
        Required dtype family, as in :func:`check_tensor`.

    Raises
    ------
    TypeError
        Neither a tensor nor an array (a list is not accepted: its dtype would
        be guessed), or the wrong dtype family.
    """
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    return check_tensor(value, name, kind=kind)


def check_classifier(classifier: Any, dim: int, num_classes: int, name: str = "classifier") -> Tensor:
    """A linear classifier ``W`` of shape ``(dim, num_classes)`` -- one column per class --,
    floating and finite; returned detached (numpy input is converted).

    Raises
    ------
    TypeError
        Not a tensor/array, or not floating.
    ValueError
        Another shape (the message recalls ``nn.Linear.weight.T`` for the
        ``(K, d)`` layout), or NaN/inf entries.
    """
    w = check_tensor_like(classifier, name, kind="floating")
    if tuple(w.shape) != (dim, num_classes):
        raise ValueError(
            f"{name} must have shape (d, num_classes) = ({dim}, {num_classes}) -- one column per class "
            f"(pass nn.Linear.weight.T); got {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return w.detach()


def check_bias(bias: Any, num_classes: int, name: str = "bias") -> Tensor:
    """A classifier bias ``b`` of shape ``(num_classes,)``, floating and finite; returned detached.

    Raises
    ------
    TypeError
        Not a tensor/array, or not floating.
    ValueError
        Another shape, or NaN/inf entries.
    """
    b = check_tensor_like(bias, name, kind="floating")
    if tuple(b.shape) != (num_classes,):
        raise ValueError(f"{name} must have shape (num_classes,) = ({num_classes},), got {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return b.detach()
