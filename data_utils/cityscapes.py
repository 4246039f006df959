"""A resized, cached subset of Cityscapes with the 19 trainIds (SPEC §4).

Reads a user-provided Cityscapes root in the official layout (file listing through
:class:`torchvision.datasets.Cityscapes` with ``target_type="semantic"``)::

    <root>/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Only the ``*_gtFine_labelIds.png`` label files are needed (no instance or polygon
files). labelIds are mapped to the 19 trainIds of the official ``cityscapesscripts``
table (all other labels -> 255), images resized bilinearly and labels by nearest
neighbour, and the resized pair cached as ``.npz`` (written atomically), so later
epochs do not decode the 2048x1024 PNGs again. The data set itself is distributed after
registration at https://www.cityscapes-dataset.com (``leftImg8bit_trainvaltest.zip``
and ``gtFine_trainvaltest.zip``).
"""
from __future__ import annotations

import hashlib
import numbers
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .stacking import stack_dataset

__all__ = [
    "CityscapesSubset",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "LABEL_ID_TO_TRAIN_ID",
    "labelids_to_trainids",
    "default_cache_dir",
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

#: labelId -> trainId lookup table, ``(256,)`` uint8; 255 = ignore (SPEC §4).
LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _label_id, _train_id in {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}.items():
    LABEL_ID_TO_TRAIN_ID[_label_id] = _train_id
del _label_id, _train_id

#: ImageNet channel statistics, used to normalise Cityscapes (and CamVid) images.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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
    """Map Cityscapes labelIds to the 19 trainIds (255 = ignore), SPEC §4.

    Parameters
    ----------
    label : array-like of int
        labelIds, any shape (values 0..255; -1, "license plate", maps to 255 too).

    Returns
    -------
    numpy.ndarray
        uint8 trainIds of the same shape.
    """
    arr = np.asarray(label)
    return LABEL_ID_TO_TRAIN_ID[np.clip(arr, 0, 255).astype(np.intp) if arr.dtype != np.uint8 else arr]


def default_cache_dir() -> Path:
    """``$CECO_CACHE_DIR/cityscapes``, else ``$XDG_CACHE_HOME/ceco_lite/cityscapes``, else
    ``~/.cache/ceco_lite/cityscapes``."""
    env = os.environ.get("CECO_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "cityscapes"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ceco_lite" / "cityscapes"


def _parse_size(size):
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, 2 * size)
    try:
        h, w = size
    except (TypeError, ValueError):
        raise TypeError(f"size must be None, an int H (gives H x 2H) or a pair (H, W), got {size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"size must hold integers, got {size!r}")
        if v < 1:
            raise ValueError(f"size must be positive, got {size!r}")
    return int(h), int(w)


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class CityscapesSubset(Dataset):
    """Cityscapes images with 19-class trainId masks, resized, sub-sampled and cached.

    Parameters
    ----------
    root : str or Path or None
        Cityscapes root in the official layout (``leftImg8bit/``, ``gtFine/``);
        ``None``: ``<data_utils.default_data_dir()>/cityscapes``.
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
        the hash covering the source files' paths, sizes and mtimes); default
        :func:`default_cache_dir`; ``False`` disables caching.
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
    255 = ignore.

    Raises
    ------
    FileNotFoundError
        Missing root, split folders, or label files (the message names the layout and
        where to get the data).
    ValueError
        Unknown split or city, bad size or ``num_images``, no image found, or a label
        file whose size differs from its image.
    """

    num_classes = 19
    ignore_index = IGNORE_INDEX
    classes = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

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
        import torchvision

        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.size = _parse_size(size)
        if root is None:
            from .paths import default_data_dir

            base = default_data_dir()
            if base is None:
                raise FileNotFoundError(f"root=None and no data root is set (CECO_DATA_DIR). {_LAYOUT_HELP}")
            root = Path(base) / "cityscapes"
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"Cityscapes root {root} does not exist. {_LAYOUT_HELP}")
        img_dir, lbl_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        if not img_dir.is_dir():
            raise FileNotFoundError(f"Cityscapes root {root} has no leftImg8bit/{split}/ folder. {_LAYOUT_HELP}")
        if not lbl_dir.is_dir():
            raise FileNotFoundError(
                f"Cityscapes root {root} has images but no gtFine/{split}/ label folder. {_LAYOUT_HELP}"
            )
        base = torchvision.datasets.Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
        pairs = [
            (Path(img), Path(tgt[0]))
            for img, tgt in zip(base.images, base.targets)
            if img.endswith("_leftImg8bit.png")
        ]
        pairs.sort()
        if cities is not None:
            if isinstance(cities, str):
                cities = [cities]
            cities = list(cities)
            known = sorted({p[0].parent.name for p in pairs})
            unknown = [c for c in cities if c not in known]
            if unknown:
                raise ValueError(f"cities {unknown} not found in {img_dir}; available: {known}")
            pairs = [p for p in pairs if p[0].parent.name in cities]
        if not pairs:
            raise ValueError(f"no *_leftImg8bit.png images found under {img_dir}. {_LAYOUT_HELP}")
        missing = [str(lbl) for _, lbl in pairs if not lbl.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(pairs)} images under {img_dir} have no label file, e.g. {missing[0]}. "
                f"{_LAYOUT_HELP}"
            )
        if num_images is not None:
            if isinstance(num_images, bool) or not isinstance(num_images, numbers.Integral) or num_images < 1:
                raise ValueError(f"num_images must be a positive integer or None, got {num_images!r}")
            if num_images > len(pairs):
                raise ValueError(f"num_images={num_images} but only {len(pairs)} pairs in {split}")
            pick = np.sort(np.random.RandomState(seed).permutation(len(pairs))[:num_images])
            pairs = [pairs[i] for i in pick]
        self.root = root
        self.split = split
        self.pairs = pairs
        self.images = [str(p[0]) for p in pairs]
        self.targets = [str(p[1]) for p in pairs]
        self.seed = int(seed)
        if cache_dir is False:
            self.cache_dir = None
        else:
            self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.normalize = bool(normalize)
        self.transforms = transforms
        if not isinstance(augment, bool):
            raise TypeError("augment must be a bool")
        lo, hi = (float(v) for v in crop_scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale!r}")
        self.augment = augment
        self.crop_scale = (lo, hi)
        self._augmenters: dict = {}

    def __len__(self) -> int:
        return len(self.pairs)

    # ------------------------------------------------------------------ loading
    def _cache_path(self, index: int) -> Optional[Path]:
        if self.cache_dir is None:
            return None
        img, lbl = self.pairs[index]
        h = hashlib.sha1()
        for p in (img, lbl):
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns};".encode())
        tag = "full" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        stem = img.name[: -len("_leftImg8bit.png")]
        return self.cache_dir / self.split / img.parent.name / f"{stem}_{tag}_{h.hexdigest()[:12]}.npz"

    def _decode_label(self, index: int, expected_size=None) -> np.ndarray:
        img_path, lbl_path = self.pairs[index]
        with Image.open(lbl_path) as lab:
            if expected_size is None:
                with Image.open(img_path) as im:
                    expected_size = im.size
            if lab.size != expected_size:
                raise ValueError(
                    f"label file {lbl_path} is {lab.size[0]}x{lab.size[1]} but its image {img_path.name} is "
                    f"{expected_size[0]}x{expected_size[1]} (W x H)"
                )
            if lab.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"label file {lbl_path} has mode {lab.mode!r}; expected a single-channel labelIds PNG")
            train = labelids_to_trainids(np.asarray(lab))
        if self.size is not None and train.shape != self.size:
            train = np.array(Image.fromarray(train).resize((self.size[1], self.size[0]), Image.NEAREST))
        return train

    def _decode_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, _ = self.pairs[index]
        with Image.open(img_path) as im:
            im = im.convert("RGB")
            mask = self._decode_label(index, expected_size=im.size)
            if self.size is not None and (im.size[1], im.size[0]) != self.size:
                im = im.resize((self.size[1], self.size[0]), Image.BILINEAR)
            image = np.array(im, dtype=np.uint8)
        return image, mask

    def load_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized pair as ``(H, W, 3)`` uint8 RGB and ``(H, W)`` uint8 trainIds (cached)."""
        path = self._cache_path(index)
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    return z["image"], z["mask"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache entry is rebuilt below
        image, mask = self._decode_pair(index)
        if path is not None:
            _atomic_savez(path, image=image, mask=mask)
        return image, mask

    def load_mask(self, index: int) -> torch.Tensor:
        """The resized trainId mask ``(H, W)`` int64, from the cache when present (else
        decodes the label file only, without writing the cache)."""
        path = self._cache_path(index)
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    return torch.from_numpy(z["mask"].astype(np.int64))
            except (OSError, ValueError, KeyError):
                pass
        return torch.from_numpy(self._decode_label(index).astype(np.int64))

    def load_tensors(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The resized pair as tensors, 8-bit as cached: image ``(3, H, W)`` uint8 and
        trainId mask ``(H, W)`` uint8 (255 = ignore); no augmentation, no normalisation."""
        image, mask = self.load_arrays(index)
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                torch.from_numpy(np.ascontiguousarray(mask)))

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        image, mask = self.load_tensors(index)
        image, mask = image.float().div_(255.0), mask.long()
        if self.augment:
            image, mask = self._augment(image, mask)
        if self.normalize:
            from torchvision.transforms.v2.functional import normalize

            image = normalize(image, list(self.mean), list(self.std))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def _augment(self, image: torch.Tensor, mask: torch.Tensor):
        """RandomResizedCrop (back to the item's size) + horizontal flip, applied jointly
        through torchvision.transforms.v2 (tv_tensors.Mask is resized by nearest)."""
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        out = tuple(mask.shape[-2:])
        aug = self._augmenters.get(out)
        if aug is None:
            aspect = out[1] / out[0]
            aug = v2.Compose([
                v2.RandomResizedCrop(out, scale=self.crop_scale, ratio=(0.75 * aspect, 1.333 * aspect), antialias=True),
                v2.RandomHorizontalFlip(),
            ])
            self._augmenters[out] = aug
        image, mask = aug(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)

    def colorize(self, mask) -> np.ndarray:
        """RGB rendering ``(H, W, 3)`` uint8 of a trainId mask with the official colours (255 -> black)."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[:19] = CITYSCAPES_PALETTE
        return lut[np.asarray(mask, dtype=np.int64).clip(0, 255)]

    def extra_repr(self) -> str:  # pragma: no cover - cosmetic
        return f"split={self.split}, size={self.size}, n={len(self)}"

    def __repr__(self) -> str:
        return f"CityscapesSubset(root={str(self.root)!r}, {self.extra_repr()})"


class _RawPairs(Dataset):
    """The 8-bit ``(image (3, H, W), mask (H, W))`` items of a data set with ``load_tensors``."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        return self.ds.load_tensors(index)


def load_split(root, request) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as 8-bit tensors for the engine (:class:`data_utils.registry.LoadRequest`).

    Returns
    -------
    (Tensor, Tensor)
        ``(N, 3, H, W)`` uint8 images (resized bilinearly by PIL in uint8) and
        ``(N, H, W)`` uint8 trainId masks (255 = ignore), the first ``request.limit`` pairs.
    """
    ds = CityscapesSubset(root, split=request.split, size=request.size or (256, 512))
    return stack_dataset(_RawPairs(ds), limit=request.limit, num_workers=request.num_workers)
