"""Long-tailed CIFAR-10/100 in the LDAM-DRW convention (docs/conventions.md, section cifar-lt).

Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"
(NeurIPS 2019), public code ``imbalance_cifar.py``: class ``i`` keeps
``n_i = int(n_max * IF^(-i/(C-1)))`` training images ('exp'), or ``n_max`` for the first
``C//2`` classes and ``int(n_max / IF)`` for the rest ('step'); within each class the
indices are shuffled with numpy seed 0 (one shuffle per class, classes in order) and
the first ``n_i`` kept. The test split stays balanced.

Built on :class:`torchvision.datasets.CIFAR10` / ``CIFAR100`` (``download=True`` works
as there). A local copy whose files do not match the official checksums (e.g. a
truncated sample of the data set) is accepted with ``verify_checksums=False`` and a
warning; ``n_max`` then defaults to the smallest per-class count available.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import check_integrity

from ceco_lite.fileio import CorruptFileError
from ceco_lite.validation import (
    check_bool,
    check_choice,
    check_imbalance_factor,
    check_int,
    check_num_classes,
    check_optional_int,
    check_seed,
)

from .paths import default_data_dir
from .profiles import PROFILES

__all__ = ["cifar_lt_counts", "CIFAR10LT", "CIFAR100LT"]


def cifar_lt_counts(n_max: int, num_classes: int, imbalance_factor: float, profile: str = "exp") -> list[int]:
    """Per-class training-image counts of a long-tailed CIFAR (LDAM-DRW; docs/conventions.md, section cifar-lt).

    ``n_i = int(n_max * (1/IF)^(i/(C-1)))`` for ``profile="exp"``, the expression of the
    LDAM-DRW code (so the float rounding matches the published counts); ``"step"``:
    ``n_max`` for ``i < C//2``, ``int(n_max / IF)`` otherwise.

    Parameters
    ----------
    n_max : int
        Images of the most frequent class (5000 for CIFAR-10, 500 for CIFAR-100), >= 1.
    num_classes : int
        ``C >= 2``.
    imbalance_factor : float
        ``IF >= 1``.
    profile : {"exp", "step"}

    Returns
    -------
    list of int
        ``C`` counts. CIFAR-10, IF 100: ``[5000, 2997, 1796, 1077, 645, 387, 232, 139,
        83, 50]`` (12,406); CIFAR-100, IF 100: 500 ... 5 (10,847).

    Raises
    ------
    ValueError, TypeError
        On ``n_max < 1``, ``C < 2``, ``IF < 1`` or an unknown profile.

    Examples
    --------
    >>> cifar_lt_counts(5000, 10, 100)
    [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    n_max = check_int(n_max, "n_max", minimum=1)
    C = check_num_classes(num_classes)
    IF = check_imbalance_factor(imbalance_factor)
    check_choice(profile, "profile", PROFILES)
    imb = 1.0 / IF
    if profile == "exp":
        return [int(n_max * (imb ** (i / (C - 1.0)))) for i in range(C)]
    return [int(n_max) if i < C // 2 else int(n_max * imb) for i in range(C)]


#: LDAM-DRW's channel statistics of CIFAR images (used to normalise them).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
#: CIFAR-10 class names, in label order (the official ``batches.meta``).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Where to get the data set (one sentence, appended to "not found" errors).
HOW_TO_GET = ("CIFAR-10/100 (python version): data_utils.CIFAR10LT(root, download=True) downloads it with "
              "torchvision, or unpack the official archives from https://www.cs.toronto.edu/~kriz/cifar.html.")


class _LongTailMixin:
    """Shared logic of :class:`CIFAR10LT` and :class:`CIFAR100LT`."""

    num_classes: int

    def __init__(
        self,
        root,
        train: bool = True,
        imbalance_factor: float = 100.0,
        profile: str = "exp",
        seed: int = 0,
        n_max: Optional[int] = None,
        transform: Optional[Callable] = None,
        target_transform: Optional[Callable] = None,
        download: bool = False,
        verify_checksums: bool = True,
    ) -> None:
        # One constructor for both classes (parameters documented on CIFAR10LT); the
        # torchvision dataset's own __init__ is reached through super() below.
        IF = check_imbalance_factor(imbalance_factor)
        check_choice(profile, "profile", PROFILES)
        self.verify_checksums = check_bool(verify_checksums, "verify_checksums")
        train = check_bool(train, "train")
        download = check_bool(download, "download")
        seed = check_seed(seed)
        n_max = check_optional_int(n_max, "n_max", minimum=1)
        if root is None:
            base = default_data_dir()
            if base is None:
                raise RuntimeError(f"{type(self).__name__}: root=None and no data root is set (CECO_DATA_DIR)")
            root = Path(base) / "cifar"
        folder = Path(root).expanduser() / self.base_folder
        if not download and not folder.is_dir():
            raise RuntimeError(
                f"{type(self).__name__}: no {self.base_folder}/ under {Path(root).expanduser()}. Expected the "
                f"python-pickle layout of the official archive ({self.url}), i.e. "
                f"{self.base_folder}/{{{', '.join(n for n, _ in self.train_list + self.test_list)}, "
                f"{self.meta['filename']}}}; pass download=True to fetch it."
            )
        if not verify_checksums:
            missing = [n for n, _ in self.train_list + self.test_list + [(self.meta["filename"], None)]
                       if not (folder / n).is_file()]
            if missing and not download:
                raise RuntimeError(f"{type(self).__name__}: missing files under {folder}: {missing}")
        self._load_files(root, folder, train, transform, target_transform, download)
        self.imbalance_factor = IF
        self.profile = profile
        self.seed = seed
        targets = np.asarray(self.targets, dtype=np.int64)
        available = np.bincount(targets, minlength=self.num_classes)
        self.available_per_class = available.tolist()
        if not train:
            self.num_per_class = available.tolist()  # the test split stays balanced
            return
        if n_max is None:
            n_max = int(available.min())
        counts = cifar_lt_counts(n_max, self.num_classes, IF, profile)
        short = [c for c in range(self.num_classes) if counts[c] > available[c]]
        if short:
            raise ValueError(
                f"n_max={n_max} needs {[counts[c] for c in short]} images of classes {short}, but only "
                f"{available[short].tolist()} are available; use n_max <= {int(available.min())}"
            )
        # LDAM-DRW: np.random.seed(seed) once, then one shuffle per class in class order.
        rng = np.random.RandomState(self.seed)
        keep = []
        for c, n_c in enumerate(counts):
            idx = np.where(targets == c)[0]
            rng.shuffle(idx)
            keep.append(idx[:n_c])
        keep = np.concatenate(keep)
        self.indices = keep
        self.data = self.data[keep]
        self.targets = targets[keep].tolist()
        self.n_max = n_max
        self.num_per_class = counts

    def _load_files(self, root, folder: Path, train: bool, transform, target_transform, download: bool) -> None:
        """torchvision's loading (checksums, unpickling), with errors that name the failing files."""
        try:
            super().__init__(root, train=train, transform=transform, target_transform=target_transform,
                             download=download)
        except RuntimeError as err:
            hint = ""
            if self.verify_checksums:
                bad = [str(folder / n) for n, md5 in self.train_list + self.test_list
                       if (folder / n).is_file() and not check_integrity(str(folder / n), md5)]
                failing = f" Files that fail the official md5 check: {', '.join(bad)}." if bad else ""
                hint = (f"{failing} If this is a local copy that differs from the official files on purpose "
                        "(e.g. a truncated sample), pass verify_checksums=False.")
            raise RuntimeError(f"{type(self).__name__} under {folder}: {err}.{hint}") from err
        except _UNPICKLING_ERRORS as err:
            # torchvision unpickles the batches without naming the file that fails
            _raise_for_corrupt_file(folder, self.train_list if train else self.test_list)
            raise RuntimeError(f"{type(self).__name__}: cannot read the files under {folder} ({err})") from err
        if len(self.data) != len(self.targets):
            _raise_for_corrupt_file(folder, self.train_list if train else self.test_list)

    # torchvision verifies the official md5 of every file; allow an explicit opt-out.
    def _check_integrity(self) -> bool:
        if getattr(self, "verify_checksums", True):
            return super()._check_integrity()
        ok = super()._check_integrity()
        if not ok:
            folder = os.path.join(self.root, self.base_folder)
            present = all(os.path.isfile(os.path.join(folder, n)) for n, _ in self.train_list + self.test_list)
            if present:
                warnings.warn(
                    f"{type(self).__name__}: files under {folder} do not match the official CIFAR checksums "
                    "(a truncated or modified copy?); using them because verify_checksums=False",
                    UserWarning,
                    stacklevel=4,  # _check_integrity <- CIFAR10.__init__ <- _LongTailMixin.__init__ <- caller
                )
            return present
        return True

    def _load_meta(self) -> None:
        if getattr(self, "verify_checksums", True):
            return super()._load_meta()
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        try:
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")
            self.classes = list(data[self.meta["key"]])
        except _UNPICKLING_ERRORS as err:
            raise CorruptFileError(path, f"not a CIFAR metadata pickle with {self.meta['key']!r}: "
                                         f"{type(err).__name__}: {err}") from None
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def get_cls_num_list(self) -> list[int]:
        """Images per class (LDAM-DRW's name), for class-balanced losses."""
        return list(self.num_per_class)

    def tensors(self, *, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as ``(N, 3, 32, 32)`` float32 in [0, 1] (``raw=True``: the stored
        uint8 pixels 0..255, contiguous) and targets ``(N,)`` int64 (no transforms)."""
        x = torch.from_numpy(np.ascontiguousarray(self.data)).permute(0, 3, 1, 2)
        x = x.contiguous() if raw else x.float().div_(255.0)
        return x, torch.as_tensor(self.targets, dtype=torch.long)


#: What unpickling a damaged file can raise (truncated data, garbage bytes, wrong content).
_UNPICKLING_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
                      AttributeError, ImportError, OverflowError, MemoryError)


def _raise_for_corrupt_file(folder: Path, files) -> None:
    """Raise :class:`ceco_lite.fileio.CorruptFileError` for the first of ``files`` (``(name, md5)``
    pairs under ``folder``) that is not a CIFAR batch pickle; return if all are."""
    for name, _ in files:
        path = folder / name
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except _UNPICKLING_ERRORS as err:
            raise CorruptFileError(path, f"not a complete CIFAR batch pickle: {type(err).__name__}: {err}") from None
        labels = entry.get("labels", entry.get("fine_labels")) if isinstance(entry, dict) else None
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels is None:
            raise CorruptFileError(path, "expected a dict with 'data' of shape (n, 3072) and 'labels' or "
                                         "'fine_labels'")
        if len(labels) != data.shape[0]:
            raise CorruptFileError(path, f"{data.shape[0]} images but {len(labels)} labels")


class CIFAR10LT(_LongTailMixin, torchvision.datasets.CIFAR10):
    """Long-tailed CIFAR-10 (LDAM-DRW convention, docs/conventions.md, section cifar-lt).

    Parameters
    ----------
    root : str or Path or None
        Folder holding (or to receive) ``cifar-10-batches-py/``; ``None``:
        ``<data_utils.default_data_dir()>/cifar``.
    train : bool, default True
        Training split (long-tailed) or test split (balanced, untouched).
    imbalance_factor : float, default 100
        ``IF = n_max / n_min >= 1``.
    profile : {"exp", "step"}, default "exp"
    seed : int, default 0
        Seed of the per-class shuffles (LDAM-DRW uses 0).
    n_max : int, optional
        Images kept for class 0; default: the smallest per-class count available (5000
        on the official data).
    transform, target_transform : callable, optional
        As in torchvision (applied to the PIL image / the int target).
    download : bool, default False
        Download the official archive when missing (torchvision).
    verify_checksums : bool, default True
        ``False`` accepts files that fail the official md5 test (with a ``UserWarning``).

    Attributes
    ----------
    num_per_class : list of int
        Images per class after subsampling (``cifar_lt_counts(n_max, 10, IF, profile)``).
    available_per_class : list of int
        Images per class in the files.
    indices : numpy.ndarray
        Indices of the kept training images in the full split (train only).

    Raises
    ------
    RuntimeError
        Data missing (names the expected layout) or failing the checksum test
        (names the files that fail it).
    ceco_lite.fileio.CorruptFileError
        A file of the split (or the metadata file) that cannot be read back as a
        CIFAR pickle -- truncated, empty, not a pickle -- named in the message (with
        ``verify_checksums=False``; otherwise the checksum test reports it first).
    ValueError
        ``IF < 1``, unknown profile, or ``n_max`` above what is available.
    """

    num_classes = 10


class CIFAR100LT(_LongTailMixin, torchvision.datasets.CIFAR100):
    """Long-tailed CIFAR-100 (LDAM-DRW convention, docs/conventions.md, section cifar-lt);
    see :class:`CIFAR10LT`.

    ``root`` holds ``cifar-100-python/``; ``n_max`` is 500 on the official data.
    """

    num_classes = 100


def load_split(cls, root, request) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of CIFAR-LT as 8-bit tensors for the engine (:class:`data_utils.registry.LoadRequest`).

    ``cls`` is :class:`CIFAR10LT` or :class:`CIFAR100LT`; the training split is
    long-tailed with ``request.imbalance_factor``, the test split balanced. With
    ``request.limit`` a fixed random subset (seed 0) of that many images is kept
    (the files are ordered by class).

    Returns
    -------
    (Tensor, Tensor)
        ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` int64 labels.
    """
    ds = cls(root, train=request.split == "train", imbalance_factor=request.imbalance_factor,
             verify_checksums=request.verify_checksums)
    x, y = ds.tensors(raw=True)
    if request.limit is not None and request.limit < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:request.limit].sort().values
        x, y = x[keep], y[keep]
    return x, y
