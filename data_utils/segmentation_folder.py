"""Segmentation data sets stored as folders of PNG pairs: one base for Cityscapes and CamVid.

A data set of this kind is an image folder and a label folder per split, one RGB PNG
per image and one single-channel PNG of label values per image.
:class:`SegmentationFolder` turns such a split into a map-style
:class:`torch.utils.data.Dataset`:

* **pairs** -- every image must have its label file (``FileNotFoundError`` naming the
  first one missing); a random subset of ``num_images`` pairs can be kept (``seed``);
* **labels** -- raw label values are mapped to class indices ``0..K-1`` through a
  256-entry lookup table, everything else to the ignore index 255; a value above the
  data set's largest valid one, a label file of another size than its image, or a
  multi-channel label file raise ``ValueError`` naming the file;
* **resizing** -- images bilinearly (PIL, antialiased, in uint8), labels by nearest
  neighbour, to ``size = (H, W)``;
* **cache** -- the resized uint8 pair is written to ``<cache_dir>/<split>/.../
  <stem>_<H>x<W>_<hash>.npz`` atomically (:func:`ceco_lite.fileio.atomic_savez`), the
  hash covering the source files' paths, sizes and modification times. A damaged entry
  (empty, truncated, not an ``.npz``, wrong arrays) is detected on read
  (:func:`ceco_lite.fileio.load_npz`) and rebuilt; temporary files left by a killed
  writer are removed (:func:`ceco_lite.fileio.remove_orphan_temporaries`);
* **items** -- ``(image (3, H, W) float32, mask (H, W) int64)``, optionally augmented
  with ``torchvision.transforms.v2`` (RandomResizedCrop and horizontal flip applied to
  image and mask together) and normalised with the data set's mean and std.

A PNG that cannot be decoded (truncated, empty, not a PNG) raises one
:class:`CorruptImageError` naming the file, and nothing is cached for it.

Subclasses set the class attributes (name, classes, palette, label table, native
size, folder names) and say where a split's two folders are
(:meth:`SegmentationFolder.image_folder`, :meth:`SegmentationFolder.label_folder`).
"""
from __future__ import annotations

import hashlib
import numbers
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import normalize as tv_normalize

from ceco_lite.fileio import (
    CorruptFileError,
    atomic_savez,
    load_npz,
    remove_orphan_temporaries,
)
from ceco_lite.validation import (
    IGNORE_INDEX,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_optional_int,
    check_seed,
    check_size,
)

from .paths import find_dataset_root
from .stacking import stack_dataset

__all__ = [
    "SegmentationFolder",
    "CorruptImageError",
    "read_png",
    "apply_label_table",
    "dataset_cache_dir",
    "stack_pairs",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

#: ImageNet channel statistics of [0, 1] RGB images, used to normalise Cityscapes and CamVid.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: PIL modes of single-channel label files.
LABEL_MODES = ("L", "P", "I", "I;16")


class CorruptImageError(CorruptFileError):
    """A PNG of a data set cannot be decoded (truncated, empty, or not a PNG).

    A :class:`ceco_lite.fileio.CorruptFileError` (an ``OSError``) whose message names
    the file and says what to do.

    Attributes
    ----------
    path : pathlib.Path
        The damaged file.
    """

    def __init__(self, path, reason: str):
        super().__init__(path, reason)
        message = (f"{self.path} cannot be decoded ({reason}); the file is truncated or damaged: "
                   "replace it with the data set's original file")
        self.args = (message,)


def _open_image(path, what: str) -> Image.Image:
    """``PIL.Image.open`` (header only), or :class:`CorruptImageError` naming the file."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise
    except UnidentifiedImageError:
        raise CorruptImageError(path, f"{what}: not an image file (empty, cut short, or another format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(path, f"{what}: {type(exc).__name__}: {exc}") from None


def read_png(path, what: str = "image") -> Image.Image:
    """Open and fully decode an image file with PIL.

    Parameters
    ----------
    path : path-like
    what : str, default "image"
        What the file is (``"image"``, ``"label file"``), for the message.

    Returns
    -------
    PIL.Image.Image
        The decoded image (its file is closed).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    CorruptImageError
        The file cannot be decoded (truncated, empty, not an image); the message names it.
    """
    im = _open_image(path, what)
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        im.close()
        raise CorruptImageError(path, f"{what}: {type(exc).__name__}: {exc}") from None
    return im


def apply_label_table(table: np.ndarray, label) -> np.ndarray:
    """Map raw label values through a ``(256,)`` uint8 lookup table.

    Parameters
    ----------
    table : numpy.ndarray
        ``(256,)`` uint8; ``table[v]`` is the class index of raw value ``v`` (255 = ignore).
    label : array-like of int
        Raw label values, any shape; values outside ``0..255`` are clipped first (so
        ``-1`` maps like 0 and 26001 like 255).

    Returns
    -------
    numpy.ndarray
        uint8 class indices, the shape of ``label``.
    """
    arr = np.asarray(label)
    return table[arr if arr.dtype == np.uint8 else np.clip(arr, 0, 255).astype(np.intp)]


def dataset_cache_dir(name: str) -> Path:
    """Default cache folder of a data set.

    ``$CECO_CACHE_DIR/<name>``, else ``$XDG_CACHE_HOME/ceco_lite/<name>``, else
    ``~/.cache/ceco_lite/<name>``.
    """
    env = os.environ.get("CECO_CACHE_DIR")
    if env:
        return Path(env).expanduser() / name
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ceco_lite" / name


class _Uint8Pairs(Dataset):
    """The 8-bit ``(image (3, H, W), mask (H, W))`` items (:meth:`SegmentationFolder.load_tensors`)."""

    def __init__(self, ds: "SegmentationFolder"):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        return self.ds.load_tensors(index)


def stack_pairs(ds: "SegmentationFolder", *, limit: Optional[int] = None,
                num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` resized pairs of ``ds`` as two uint8 tensors.

    Returns
    -------
    (Tensor, Tensor)
        ``(N, 3, H, W)`` uint8 images and ``(N, H, W)`` uint8 masks (255 = ignore),
        through the data set's cache.
    """
    return stack_dataset(_Uint8Pairs(ds), limit=limit, num_workers=num_workers)


class SegmentationFolder(Dataset):
    """Base of segmentation data sets stored as an image folder and a label folder per split.

    Subclasses set the class attributes below and implement :meth:`image_folder` and
    :meth:`label_folder` (and, if the files are not paired by name, :meth:`find_pairs`).

    Parameters
    ----------
    root : str or Path or None
        The data set's folder; ``None``: found under the data root
        (:func:`data_utils.paths.find_dataset_root` with :attr:`folder` and :attr:`marker`).
    split : str
        One of :attr:`splits`.
    size : (int, int) or int or None
        Output ``(H, W)``; an int ``H`` gives the native aspect ratio,
        ``(H, round(H * W0 / H0))`` with ``(H0, W0) =`` :attr:`native_size`; ``None``
        keeps the files' size. Images are resized bilinearly (PIL, antialiased), labels
        by nearest neighbour.
    num_images : int, optional
        Keep a random subset of this many pairs (chosen with ``seed``, kept in file
        order); default all.
    seed : int, default 0
        Seed of the subset choice.
    cache_dir : str or Path or False, optional
        Cache of the resized uint8 pairs; default :func:`dataset_cache_dir` of
        :attr:`folder`; ``False`` disables caching.
    augment : bool, default False
        Training augmentation with ``torchvision.transforms.v2`` on image and mask
        together (``tv_tensors.Mask``): RandomResizedCrop back to the item's size (scale
        ``crop_scale``, aspect ratio within [3/4, 4/3] of the item's, nearest for the
        mask) and a horizontal flip.
    crop_scale : (float, float), default (0.5, 1.0)
        Range of the crop's area fraction, ``0 < min <= max <= 1``.
    normalize : bool, default False
        Subtract :attr:`mean` and divide by :attr:`std` (otherwise values in [0, 1]).
    transforms : callable, optional
        ``transforms(image, mask) -> (image, mask)`` applied last.

    Attributes
    ----------
    root : pathlib.Path
    split : str
    size : (int, int) or None
    pairs : list of (Path, Path)
        ``(image, label file)`` of every item, in file order.
    images, targets : list of str
        The same paths as strings.
    cache_dir : pathlib.Path or None

    Raises
    ------
    FileNotFoundError
        Missing root, split folder, label folder, or label file of an image (the
        message names the layout and where to get the data).
    ValueError
        Unknown split, bad size or ``num_images``, or no image in the split.
    TypeError
        An argument of the wrong kind.
    """

    #: Name used in messages.
    name = "segmentation data set"
    #: Sub-folder of a data root, registry name, and name of the default cache folder.
    folder = ""
    #: A path inside the data set's folder that proves it is there.
    marker = ""
    #: One sentence on where to get the files.
    how_to_get = ""
    #: The expected layout and where to get the data, appended to layout errors.
    layout_help = ""
    #: The splits.
    splits = ("train", "val", "test")
    #: ``K``.
    num_classes = 0
    #: Class names, indexed by class.
    classes: tuple = ()
    #: ``(K, 3)`` uint8 RGB display colours.
    palette = np.zeros((0, 3), dtype=np.uint8)
    #: ``(256,)`` uint8 lookup table raw label value -> class index (255 = ignore).
    label_table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    #: Largest valid raw label value (larger ones raise ``ValueError``); ``None``: no check.
    max_label_value: Optional[int] = None
    #: What the raw label values mean, for the message on a bad value.
    label_values_help = ""
    #: ``(H0, W0)`` of the published images (aspect ratio of an int ``size``).
    native_size = (1, 1)
    #: Glob pattern of the image files of a split (searched recursively).
    image_pattern = "*.png"
    #: End of an image file name that the cache entry's name drops.
    image_suffix = ".png"
    ignore_index = IGNORE_INDEX
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, root=None, split: str = "train", size=None, *, num_images: Optional[int] = None,
                 seed: int = 0, cache_dir=None, augment: bool = False, crop_scale=(0.5, 1.0),
                 normalize: bool = False, transforms: Optional[Callable] = None) -> None:
        split = check_choice(split, "split", self.splits)
        self.size = self._parse_size(size)
        num_images = check_optional_int(num_images, "num_images", minimum=1)
        self.seed = check_seed(seed)
        self.augment = check_bool(augment, "augment")
        self.normalize = check_bool(normalize, "normalize")
        self.crop_scale = self._parse_crop_scale(crop_scale)
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable(image, mask) or None, got {type(transforms).__name__}")
        self.transforms = transforms
        if not (cache_dir is None or cache_dir is False or isinstance(cache_dir, (str, os.PathLike))):
            raise TypeError(f"cache_dir must be a folder, None (default cache) or False (no cache), got {cache_dir!r}")

        root = self._resolve_root(root)
        img_dir, lbl_dir = self.image_folder(root, split), self.label_folder(root, split)
        if not img_dir.is_dir():
            raise FileNotFoundError(
                f"{self.name} root {root} has no {img_dir.relative_to(root)}/ image folder. {self.layout_help}"
            )
        if not lbl_dir.is_dir():
            raise FileNotFoundError(
                f"{self.name} root {root} has images but no {lbl_dir.relative_to(root)}/ label folder. "
                f"{self.layout_help}"
            )
        pairs = sorted(self.find_pairs(root, split))
        if not pairs:
            raise ValueError(f"no {self.image_pattern} images found under {img_dir}. {self.layout_help}")
        missing = [str(lbl) for _, lbl in pairs if not lbl.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(pairs)} images under {img_dir} have no label file, e.g. {missing[0]}. "
                f"{self.layout_help}"
            )
        if num_images is not None:
            if num_images > len(pairs):
                raise ValueError(f"num_images={num_images} but only {len(pairs)} pairs in {split}")
            pick = np.sort(np.random.RandomState(self.seed).permutation(len(pairs))[:num_images])
            pairs = [pairs[i] for i in pick]
        self.root = root
        self.split = split
        self.pairs = pairs
        self.images = [str(p[0]) for p in pairs]
        self.targets = [str(p[1]) for p in pairs]
        self._image_dir = img_dir
        if cache_dir is False:
            self.cache_dir = None
        else:
            self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else dataset_cache_dir(self.folder)
            for folder in sorted({self._cache_folder(img) for img, _ in pairs}):
                remove_orphan_temporaries(folder)
        self._augmenters: dict = {}

    # ------------------------------------------------------------ subclass hooks
    def image_folder(self, root: Path, split: str) -> Path:
        """The folder of ``split``'s images."""
        raise NotImplementedError

    def label_folder(self, root: Path, split: str) -> Path:
        """The folder of ``split``'s label files."""
        raise NotImplementedError

    def find_pairs(self, root: Path, split: str) -> list[tuple[Path, Path]]:
        """``(image, label file)`` paths of ``split``: every :attr:`image_pattern` file under
        :meth:`image_folder`, with the file of the same relative path under
        :meth:`label_folder` (which may be missing; the caller checks)."""
        img_dir, lbl_dir = self.image_folder(root, split), self.label_folder(root, split)
        return [(img, lbl_dir / img.relative_to(img_dir)) for img in img_dir.rglob(self.image_pattern)]

    # ------------------------------------------------------------------ checks
    def _parse_size(self, size):
        if size is None:
            return None
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            h = check_int(size, "size", minimum=1)
            h0, w0 = self.native_size
            return h, max(1, round(h * w0 / h0))
        return check_size(size, "size", square=False)

    @staticmethod
    def _parse_crop_scale(crop_scale) -> tuple[float, float]:
        try:
            lo, hi = crop_scale
        except (TypeError, ValueError):
            raise TypeError(f"crop_scale must be a pair (min, max), got {crop_scale!r}") from None
        lo = check_float(lo, "crop_scale[0]", minimum=0.0, strict_minimum=True, maximum=1.0)
        hi = check_float(hi, "crop_scale[1]", minimum=0.0, strict_minimum=True, maximum=1.0)
        if lo > hi:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale!r}")
        return lo, hi

    def _resolve_root(self, root) -> Path:
        if root is None:
            return find_dataset_root(self.folder, self.folder, self.marker, None, how_to_get=self.how_to_get)
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name} root {root} does not exist. {self.layout_help}")
        return root

    def __len__(self) -> int:
        return len(self.pairs)

    # ----------------------------------------------------------------- caching
    def _cache_folder(self, image: Path) -> Path:
        return self.cache_dir / self.split / image.parent.relative_to(self._image_dir)

    def _cache_path(self, index: int) -> Optional[Path]:
        if self.cache_dir is None:
            return None
        img, lbl = self.pairs[index]
        h = hashlib.sha1()
        for p in (img, lbl):
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns};".encode())
        tag = "full" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        stem = img.name[: -len(self.image_suffix)] if img.name.endswith(self.image_suffix) else img.stem
        return self._cache_folder(img) / f"{stem}_{tag}_{h.hexdigest()[:12]}.npz"

    def _read_cache(self, path: Optional[Path], keys: tuple[str, ...]) -> Optional[dict]:
        """The cached arrays, or ``None`` when the entry is absent or damaged (it is then rebuilt)."""
        if path is None:
            return None
        try:
            arrays = load_npz(path, keys)
        except (FileNotFoundError, CorruptFileError):
            return None
        mask = arrays.get("mask")
        image = arrays.get("image")
        if mask is not None and (mask.dtype != np.uint8 or mask.ndim != 2):
            return None
        if image is not None and (image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
                                  or (mask is not None and image.shape[:2] != mask.shape)):
            return None
        shape = (mask if mask is not None else image).shape[:2]
        if self.size is not None and tuple(shape) != self.size:
            return None
        return arrays

    # ---------------------------------------------------------------- decoding
    def decode_labels(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Class indices ``(H, W)`` uint8 (255 = ignore) of the raw label values of ``path``.

        Raises
        ------
        ValueError
            A value above :attr:`max_label_value`; the message names the file.
        """
        if self.max_label_value is not None and raw.size and int(raw.max()) > self.max_label_value:
            bad = np.unique(raw[raw > self.max_label_value])
            raise ValueError(
                f"label file {path} holds values {bad[:5].tolist()} above {self.max_label_value}; "
                f"expected {self.label_values_help or f'values 0..{self.max_label_value}'}"
            )
        return apply_label_table(self.label_table, raw)

    def _decode_label(self, index: int, expected_size=None) -> np.ndarray:
        img_path, lbl_path = self.pairs[index]
        lab = read_png(lbl_path, "label file")
        if expected_size is None:
            with _open_image(img_path, "image") as im:
                expected_size = im.size
        if lab.size != expected_size:
            raise ValueError(
                f"label file {lbl_path} is {lab.size[0]}x{lab.size[1]} but its image {img_path.name} is "
                f"{expected_size[0]}x{expected_size[1]} (W x H)"
            )
        if lab.mode not in LABEL_MODES:
            raise ValueError(
                f"label file {lbl_path} has mode {lab.mode!r}; expected a single-channel PNG of label values "
                f"(mode L, P, I or I;16)"
            )
        mask = self.decode_labels(np.asarray(lab), lbl_path)
        if self.size is not None and mask.shape != self.size:
            mask = np.array(Image.fromarray(mask).resize((self.size[1], self.size[0]), Image.NEAREST))
        return mask

    def _decode_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_path, _ = self.pairs[index]
        im = read_png(img_path, "image")
        mask = self._decode_label(index, expected_size=im.size)
        im = im.convert("RGB")
        if self.size is not None and (im.size[1], im.size[0]) != self.size:
            im = im.resize((self.size[1], self.size[0]), Image.BILINEAR)
        return np.array(im, dtype=np.uint8), mask

    # ---------------------------------------------------------------- accessors
    def load_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The resized pair as ``(H, W, 3)`` uint8 RGB and ``(H, W)`` uint8 class indices
        (255 = ignore), from the cache, else decoded and cached.

        Raises
        ------
        CorruptImageError
            The image or label PNG cannot be decoded (nothing is cached).
        ValueError
            A label file of another size than its image, not single-channel, or holding
            an invalid value.
        """
        path = self._cache_path(index)
        cached = self._read_cache(path, ("image", "mask"))
        if cached is not None:
            return cached["image"], cached["mask"]
        image, mask = self._decode_pair(index)
        if path is not None:
            atomic_savez(path, image=image, mask=mask)
        return image, mask

    def load_mask(self, index: int) -> torch.Tensor:
        """The resized mask ``(H, W)`` int64, from the cache when present (else decodes the
        label file only, without writing the cache)."""
        cached = self._read_cache(self._cache_path(index), ("mask",))
        mask = cached["mask"] if cached is not None else self._decode_label(index)
        return torch.from_numpy(mask.astype(np.int64))

    def load_tensors(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The resized pair as tensors, 8-bit as cached: image ``(3, H, W)`` uint8 and mask
        ``(H, W)`` uint8 (255 = ignore); no augmentation, no normalisation."""
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
            image = tv_normalize(image, list(self.mean), list(self.std))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def _augment(self, image: torch.Tensor, mask: torch.Tensor):
        """RandomResizedCrop (back to the item's size) + horizontal flip, applied jointly
        through torchvision.transforms.v2 (tv_tensors.Mask is resized by nearest)."""
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

    @classmethod
    def colorize(cls, mask) -> np.ndarray:
        """RGB rendering ``(H, W, 3)`` uint8 of a class-index mask ``(H, W)`` with
        :attr:`palette` (the ignore index and other values outside ``0..K-1`` -> black)."""
        m = np.asarray(mask, dtype=np.int64)
        colours = np.zeros((cls.num_classes + 1, 3), dtype=np.uint8)
        colours[: cls.num_classes] = cls.palette
        return colours[np.where((m >= 0) & (m < cls.num_classes), m, cls.num_classes)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split}, size={self.size}, n={len(self)})"
