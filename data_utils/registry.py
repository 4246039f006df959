"""The data-set registry: every data set the engine, the command line and the lessons know.

Each entry (:class:`DatasetSpec`) says what a data set is -- its task, number of
classes, class names, display palette, normalisation statistics, where its files
live under a data root and how to get them -- and how to load one split of it as
whole tensors (:meth:`DatasetSpec.load_split`). A new data set registers here, in
one place, with :func:`register_dataset`.

>>> get_dataset("cityscapes").num_classes
19
>>> get_dataset("cityscapes").class_names()[:3]
('road', 'sidewalk', 'building')
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import camvid, cifar_lt, cityscapes, synthetic
from .paths import find_dataset_root

__all__ = ["DatasetSpec", "LoadRequest", "register_dataset", "get_dataset", "dataset_names", "DATASETS"]


@dataclass(frozen=True)
class LoadRequest:
    """What the engine asks of a data set's loader for one split.

    Attributes
    ----------
    split : str
        ``"train"`` or the evaluation split of the data set (``DatasetSpec.eval_split``).
    size : (int, int) or None
        ``(H, W)`` of the images (``None``: the data set's default).
    limit : int or None
        Keep the first ``limit`` images (real data; tests and quick looks).
    num_classes : int
        ``K`` (synthetic data: chosen freely; real data: the data set's).
    ignore_index : int
        Label of ignored pixels in the returned masks.
    imbalance_factor : float
        Synthetic data and CIFAR-LT: ``n_max / n_min`` of the training split.
    num_images : int
        Synthetic data: images generated for this split.
    verify_checksums : bool
        CIFAR: check the official md5 sums.
    num_workers : int
        Worker processes for decoding files.
    options : dict
        Synthetic data: keyword arguments of :func:`data_utils.make_synthetic_segmentation`
        (``seed`` and ``val_seed`` choose the two splits' seeds).
    """

    split: str
    size: tuple | None = None
    limit: int | None = None
    num_classes: int = 2
    ignore_index: int = 255
    imbalance_factor: float = 100.0
    num_images: int = 64
    verify_checksums: bool = True
    num_workers: int = 0
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """One registered data set.

    Attributes
    ----------
    name : str
        Registry key (``TrainConfig.dataset``).
    task : {"segmentation", "classification"}
    num_classes : int or None
        ``K``; ``None`` when the user chooses it (synthetic data).
    loader : callable
        ``loader(root, request) -> (images, targets)``: images ``(N, 3, H, W)`` uint8
        (real data) or float32 in [0, 1] (synthetic); targets ``(N, H, W)`` masks or
        ``(N,)`` labels, integer.
    classes : tuple of str or callable, optional
        Class names, or ``classes(num_classes) -> names``.
    palette : numpy.ndarray or callable, optional
        ``(K, 3)`` uint8 display colours, or ``palette(num_classes)``.
    mean, std : tuple of 3 floats, optional
        Per-channel statistics of the [0, 1] images used to normalise uint8 images.
    folder, marker : str, optional
        Sub-folder of a data root and a path inside it that proves the data are there;
        ``None`` for generated data.
    how_to_get : str
        One sentence on where to get the files.
    eval_split : str
        The split evaluated after training (``"val"`` or ``"test"``).
    default_size : (int, int) or None
        Image size when the configuration gives none.
    """

    name: str
    task: str
    num_classes: int | None
    loader: Callable
    classes: tuple | Callable | None = None
    palette: np.ndarray | Callable | None = None
    mean: tuple | None = None
    std: tuple | None = None
    folder: str | None = None
    marker: str | None = None
    how_to_get: str = ""
    eval_split: str = "val"
    default_size: tuple | None = None

    @property
    def needs_files(self) -> bool:
        """True for data read from disk (a data root is needed)."""
        return self.folder is not None

    def resolve_root(self, data_root=None) -> Path | None:
        """The data set's folder (:func:`data_utils.paths.find_dataset_root`); ``None`` for generated data.

        Raises
        ------
        FileNotFoundError
            Real data that cannot be found; the message says how to get them.
        """
        if not self.needs_files:
            return None
        return find_dataset_root(self.name, self.folder, self.marker, data_root, how_to_get=self.how_to_get)

    def load_split(self, root, request: LoadRequest) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and targets of one split (see :attr:`loader`)."""
        return self.loader(root, request)

    def class_names(self, num_classes: int | None = None) -> tuple:
        """Names of the ``K`` classes (``"class k"`` when the data set has none)."""
        k = self.num_classes if self.num_classes is not None else num_classes
        if callable(self.classes):
            return tuple(self.classes(k))
        if self.classes is not None:
            return tuple(self.classes)
        return tuple(f"class {i}" for i in range(k))

    def colours(self, num_classes: int | None = None) -> np.ndarray | None:
        """Display palette ``(K, 3)`` uint8, or ``None``."""
        k = self.num_classes if self.num_classes is not None else num_classes
        return self.palette(k) if callable(self.palette) else self.palette


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (replacing an entry of the same name) and return it."""
    if spec.task not in ("segmentation", "classification"):
        raise ValueError(f"task must be 'segmentation' or 'classification', got {spec.task!r}")
    DATASETS[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    """Registered data-set names, sorted."""
    return sorted(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` registered as ``name``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones).
    """
    spec = DATASETS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"dataset must be one of {dataset_names()}, got {name!r}")
    return spec


register_dataset(DatasetSpec(
    name="synthetic", task="segmentation", num_classes=None, loader=synthetic.load_split,
    classes=synthetic.class_names, palette=synthetic.palette, default_size=(32, 32),
))
register_dataset(DatasetSpec(
    name="cityscapes", task="segmentation", num_classes=19, loader=cityscapes.load_split,
    classes=cityscapes.CITYSCAPES_CLASSES, palette=cityscapes.CITYSCAPES_PALETTE,
    mean=cityscapes.IMAGENET_MEAN, std=cityscapes.IMAGENET_STD, folder="cityscapes", marker="leftImg8bit",
    how_to_get=cityscapes.HOW_TO_GET, default_size=(256, 512),
))
register_dataset(DatasetSpec(
    name="camvid", task="segmentation", num_classes=11, loader=camvid.load_split,
    classes=camvid.CAMVID_CLASSES, palette=camvid.CAMVID_PALETTE, mean=camvid.IMAGENET_MEAN,
    std=camvid.IMAGENET_STD, folder=camvid.FOLDER, marker=camvid.MARKER, how_to_get=camvid.HOW_TO_GET,
    eval_split="val", default_size=camvid.DEFAULT_SIZE,
))
register_dataset(DatasetSpec(
    name="cifar10-lt", task="classification", num_classes=10, loader=functools.partial(cifar_lt.load_split, cifar_lt.CIFAR10LT),
    classes=cifar_lt.CIFAR10_CLASSES, mean=cifar_lt.CIFAR_MEAN, std=cifar_lt.CIFAR_STD, folder="cifar",
    marker="cifar-10-batches-py", how_to_get=cifar_lt.HOW_TO_GET, eval_split="test", default_size=(32, 32),
))
register_dataset(DatasetSpec(
    name="cifar100-lt", task="classification", num_classes=100,
    loader=functools.partial(cifar_lt.load_split, cifar_lt.CIFAR100LT),
    mean=cifar_lt.CIFAR_MEAN, std=cifar_lt.CIFAR_STD, folder="cifar", marker="cifar-100-python",
    how_to_get=cifar_lt.HOW_TO_GET, eval_split="test", default_size=(32, 32),
))
