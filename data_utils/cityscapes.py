"""A resized, cached subset of Cityscapes with the 19 trainIds.

Reads a user-provided Cityscapes root in the official layout (file listing through
:class:`torchvision.datasets.Cityscapes` with ``target_type="semantic"``)::

    <root>/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Only the ``*_gtFine_labelIds.png`` label files are needed (no instance or polygon
files). labelIds are mapped to the 19 trainIds of the official ``cityscapesscripts``
table (all other labels -> 255), images resized bilinearly and labels by nearest
neighbour, and the resized pair cached as ``.npz`` (written atomically, a damaged entry
rebuilt), so later epochs do not decode the 2048x1024 PNGs again
(:class:`data_utils.segmentation_folder.SegmentationFolder`). The data set itself is
distributed after registration at https://www.cityscapes-dataset.com
(``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torchvision

from .segmentation_folder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegmentationFolder,
    apply_label_table,
    dataset_cache_dir,
    stack_pairs,
)

__all__ = [
    "CityscapesSubset",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "LABEL_ID_TO_TRAIN_ID",
    "labelids_to_trainids",
    "default_cache_dir",
    "load_split",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "HOW_TO_GET",
]

IGNORE_INDEX = 255

#: The 19 evaluated classes, indexed by trainId (official cityscapesscripts order).
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
)

#: Official colours of the 19 trainIds, ``(19, 3)`` uint8 RGB (cityscapesscripts labels.py).
CITYSCAPES_PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)

#: labelId -> trainId lookup table, ``(256,)`` uint8; 255 = ignore (cityscapesscripts labels.py).
LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _label_id, _train_id in {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}.items():
    LABEL_ID_TO_TRAIN_ID[_label_id] = _train_id
del _label_id, _train_id

#: Where to get the data set (one sentence, appended to "not found" errors).
HOW_TO_GET = ("Cityscapes needs a free registration at https://www.cityscapes-dataset.com: download "
              "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip and unzip both into one folder.")

_LAYOUT_HELP = (
    "Expected the official Cityscapes layout: <root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
    "<root>/gtFine/<split>/<city>/*_gtFine_labelIds.png (only labelIds files are needed). The data set "
    "is available after registration at https://www.cityscapes-dataset.com "
    "(leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip)."
)


def labelids_to_trainids(label) -> np.ndarray:
    """Map Cityscapes labelIds to the 19 trainIds (255 = ignore), cityscapesscripts table.

    Parameters
    ----------
    label : array-like of int
        labelIds, any shape (values 0..255; -1, "license plate", maps to 255 too).

    Returns
    -------
    numpy.ndarray
        uint8 trainIds of the same shape.
    """
    return apply_label_table(LABEL_ID_TO_TRAIN_ID, label)


def default_cache_dir() -> Path:
    """``$CECO_CACHE_DIR/cityscapes``, else ``$XDG_CACHE_HOME/ceco_lite/cityscapes``, else
    ``~/.cache/ceco_lite/cityscapes``."""
    return dataset_cache_dir("cityscapes")


class CityscapesSubset(SegmentationFolder):
    """Cityscapes images with 19-class trainId masks, resized, sub-sampled and cached.

    Parameters
    ----------
    root : str or Path or None
        Cityscapes root in the official layout (``leftImg8bit/``, ``gtFine/``);
        ``None``: found under the data root (``<data root>/cityscapes``,
        :func:`data_utils.paths.find_dataset_root`).
    split : {"train", "val", "test"}, default "train"
    size : (int, int) or int or None, default (256, 512)
        Output ``(H, W)``; an int ``H`` means ``(H, 2H)``; ``None`` keeps 1024x2048.
        Images are resized bilinearly (PIL, antialiased), labels by nearest neighbour.
    num_images : int, optional
        Keep a random subset of this many pairs (chosen with ``seed``); default all.
    cities : sequence of str, optional
        Keep only these cities.
    seed : int, default 0
        Seed of the subset choice.
    cache_dir : str or Path or False, optional
        Where resized pairs are cached (``<cache_dir>/<split>/<city>/<stem>_<H>x<W>_<hash>.npz``,
        the hash covering the source files' paths, sizes and mtimes; written atomically,
        a damaged entry is rebuilt); default :func:`default_cache_dir`; ``False``
        disables caching.
    augment : bool, default False
        Training augmentation with ``torchvision.transforms.v2`` on image and mask
        together (``tv_tensors.Mask``): RandomResizedCrop back to ``size`` (scale
        ``crop_scale``, nearest for the mask) and a horizontal flip.
    crop_scale : (float, float), default (0.5, 1.0)
    normalize : bool, default False
        Subtract the ImageNet mean and divide by its std (otherwise values in [0, 1]).
    transforms : callable, optional
        ``transforms(image, mask) -> (image, mask)`` applied last.

    Items are ``(image (3, H, W) float32, mask (H, W) int64)`` with trainIds 0..18 and
    255 = ignore. The shared machinery (cache, resizing, accessors ``load_arrays``,
    ``load_tensors``, ``load_mask``, ``colorize``) is
    :class:`data_utils.segmentation_folder.SegmentationFolder`'s.

    Raises
    ------
    FileNotFoundError
        Missing root, split folders, or label files (the message names the layout and
        where to get the data).
    ValueError
        Unknown split or city, bad size or ``num_images``, no image found, or a label
        file whose size differs from its image.
    data_utils.segmentation_folder.CorruptImageError
        When an item is read: a PNG that cannot be decoded (the message names it).
    """

    name = "Cityscapes"
    folder = "cityscapes"
    marker = "leftImg8bit"
    how_to_get = HOW_TO_GET
    layout_help = _LAYOUT_HELP
    num_classes = 19
    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    label_table = LABEL_ID_TO_TRAIN_ID
    native_size = (1024, 2048)
    image_pattern = "*_leftImg8bit.png"
    image_suffix = "_leftImg8bit.png"

    def __init__(
        self,
        root,
        split: str = "train",
        size=(256, 512),
        *,
        num_images: Optional[int] = None,
        cities: Optional[Sequence[str]] = None,
        seed: int = 0,
        cache_dir=None,
        augment: bool = False,
        crop_scale=(0.5, 1.0),
        normalize: bool = False,
        transforms: Optional[Callable] = None,
    ) -> None:
        self._cities = [cities] if isinstance(cities, str) else (None if cities is None else list(cities))
        super().__init__(root, split, size, num_images=num_images, seed=seed, cache_dir=cache_dir,
                         augment=augment, crop_scale=crop_scale, normalize=normalize, transforms=transforms)

    def image_folder(self, root: Path, split: str) -> Path:
        """``<root>/leftImg8bit/<split>``."""
        return root / "leftImg8bit" / split

    def label_folder(self, root: Path, split: str) -> Path:
        """``<root>/gtFine/<split>``."""
        return root / "gtFine" / split

    def find_pairs(self, root: Path, split: str) -> list[tuple[Path, Path]]:
        """The ``*_leftImg8bit.png`` images and their ``*_gtFine_labelIds.png`` files, listed by
        :class:`torchvision.datasets.Cityscapes`, restricted to ``cities`` when given."""
        base = torchvision.datasets.Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
        pairs = [
            (Path(img), Path(tgt[0]))
            for img, tgt in zip(base.images, base.targets)
            if img.endswith(self.image_suffix)
        ]
        if self._cities is not None:
            known = sorted({p[0].parent.name for p in pairs})
            unknown = [c for c in self._cities if c not in known]
            if unknown:
                raise ValueError(f"cities {unknown} not found in {self.image_folder(root, split)}; available: {known}")
            pairs = [p for p in pairs if p[0].parent.name in self._cities]
        return pairs


def load_split(root, request) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as 8-bit tensors for the engine (:class:`data_utils.registry.LoadRequest`).

    Returns
    -------
    (Tensor, Tensor)
        ``(N, 3, H, W)`` uint8 images (resized bilinearly by PIL in uint8) and
        ``(N, H, W)`` uint8 trainId masks (255 = ignore), the first ``request.limit`` pairs.
    """
    ds = CityscapesSubset(root, split=request.split, size=request.size or (256, 512))
    return stack_pairs(ds, limit=request.limit, num_workers=request.num_workers)
