"""Data for the engine: whole data sets as in-memory tensors (airbench style).

Every data set the engine trains on is loaded once into tensors and moved to the
training device; batches are index selections and the augmentations (random
horizontal flip; random crop with 4-pixel zero padding for CIFAR, as in LDAM-DRW)
are vectorised over the batch. Shuffling and augmentation draw from a generator
seeded by ``(seed, epoch)``, so a resumed run sees exactly the batches an
uninterrupted run sees.

Storage (what :class:`DataBundle` holds):

- Real data (Cityscapes, CIFAR-LT), whose source pixels are 8-bit: images ``uint8``
  ``(N, 3, H, W)`` with the raw 0..255 values (Cityscapes is resized bilinearly by
  PIL *in uint8* by :class:`data_utils.CityscapesSubset`, so no quantisation happens
  here); Cityscapes masks ``uint8`` ``(N, H, W)`` (trainIds 0..18, 255 = ignore),
  CIFAR labels int64 ``(N,)``. Each mini-batch is decoded on the device by
  :func:`decode_batch` — ``float32 / 255`` then ``(x - mean) / std`` (ImageNet
  statistics for Cityscapes, LDAM-DRW's for CIFAR), masks to int64 — *before*
  augmentation, with the same float operations the data sets' own float path uses,
  so the model sees bit-identical inputs to a float32 store.
- Synthetic data: images float32 ``(N, 3, H, W)`` in [0, 1] (not 8-bit values, so
  kept as they are) and masks int64 ``(N, H, W)``; decoding leaves them unchanged.

Memory per Cityscapes image at 512x1024: float32 image + int64 mask was
6,291,456 + 4,194,304 B = 10.0 MiB; uint8 image + uint8 mask is 1,572,864 + 524,288 B
= 2.0 MiB (the full 2975-image training split: 31.2 GB -> 6.2 GB). A CIFAR image:
12,288 -> 3,072 B.

Loading uses the data helper's classes (:mod:`data_utils`); the real data root
is ``config.data_root`` or :func:`data_utils.default_data_dir`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["DataBundle", "load_data", "resolve_data_root", "check_data_available", "iterate_batches", "class_groups",
           "decode_batch"]


@dataclass
class DataBundle:
    """Train / evaluation tensors and class statistics.

    Attributes
    ----------
    train_x, val_x : Tensor
        ``(N, 3, H, W)``: uint8 raw pixels 0..255 for real data (decode batches with
        :meth:`decode`), float32 model-ready images for synthetic data.
    train_y, val_y : Tensor
        ``(N, H, W)`` masks (255 = ignore): uint8 for Cityscapes, int64 for synthetic
        data; or ``(N,)`` int64 class labels. :meth:`decode` returns int64.
    num_classes : int
    class_counts : Tensor
        ``(K,)`` training pixels (or images) per class.
    groups : dict
        ``{"head": [...], "common": [...], "tail": [...]}`` class ids (thirds by
        training frequency, SPEC §4).
    info : dict
        Imbalance statistics for the record (pixel IF, etc.).
    mean, std : tuple of 3 floats or None
        Per-channel normalisation applied by :meth:`decode` to uint8 images after
        scaling to [0, 1] (None: no normalisation).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    class_counts: torch.Tensor
    groups: dict
    info: dict = field(default_factory=dict)
    mean: tuple | None = None
    std: tuple | None = None

    def to(self, device) -> "DataBundle":
        for name in ("train_x", "train_y", "val_x", "val_y"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def decode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """Model-ready float32 images (and int64 targets) of stored ``x`` (and ``y``):
        :func:`decode_batch` with this bundle's ``mean`` / ``std``."""
        return decode_batch(x, y, mean=self.mean, std=self.std)


def decode_batch(x: torch.Tensor, y: torch.Tensor | None = None, *, mean=None, std=None):
    """Turn a stored mini-batch into model input, on ``x``'s device.

    Parameters
    ----------
    x : Tensor
        ``(B, 3, H, W)`` images: uint8 (raw 0..255) are converted to float32, divided by
        255 and, when ``mean`` / ``std`` are given, normalised as ``(x - mean) / std``
        per channel; floating images are returned unchanged (already model-ready).
    y : Tensor, optional
        Masks ``(B, H, W)`` or labels ``(B,)`` of any integer dtype; returned as int64.
    mean, std : sequence of 3 floats, optional
        Channel statistics of the [0, 1] images (e.g. ImageNet's for Cityscapes).

    Returns
    -------
    Tensor or (Tensor, Tensor)
        ``x`` float32 (or unchanged), and ``y`` int64 when ``y`` was given.

    Notes
    -----
    The operations (``float()``, ``/ 255``, ``- mean``, ``/ std`` in float32) are those of
    :class:`data_utils.CityscapesSubset` / :meth:`data_utils.CIFAR10LT.tensors` followed by
    normalisation, so the result equals the former float32 store exactly.
    """
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
        if mean is not None:
            from torchvision.transforms.v2.functional import normalize

            x = normalize(x, list(mean), list(std))  # (x - mean) / std per channel
    elif not x.is_floating_point():
        raise TypeError(f"x must be uint8 or floating-point images, got dtype {x.dtype}")
    if y is None:
        return x
    return x, y.long()


# ------------------------------------------------------------------ data roots
_SUBDIR = {"cityscapes": "cityscapes", "cifar10-lt": "cifar", "cifar100-lt": "cifar"}
_MARKER = {"cityscapes": "leftImg8bit", "cifar10-lt": "cifar-10-batches-py", "cifar100-lt": "cifar-100-python"}


def resolve_data_root(config) -> Path | None:
    """The folder holding ``config.dataset``'s files, or ``None`` for synthetic data.

    ``config.data_root`` may be the data set's own folder (e.g. the Cityscapes root
    with ``leftImg8bit/``) or a parent holding ``cityscapes/`` / ``cifar/``; when it is
    None, :func:`data_utils.default_data_dir` is used.

    Raises
    ------
    FileNotFoundError
        No data root given and none found, or the files are not where expected.
    """
    if config.dataset == "synthetic":
        return None
    from data_utils import default_data_dir

    base = Path(config.data_root).expanduser() if config.data_root else default_data_dir()
    if base is None:
        raise FileNotFoundError(
            f"dataset {config.dataset!r} needs real data: pass data_root (--data-root) or set CECO_DATA_DIR "
            f"to a folder holding {_SUBDIR[config.dataset]}/{_MARKER[config.dataset]}"
        )
    for cand in (base, base / _SUBDIR[config.dataset]):
        if (cand / _MARKER[config.dataset]).is_dir():
            return cand
    raise FileNotFoundError(
        f"data root {str(base)!r} for dataset {config.dataset!r} holds neither {_MARKER[config.dataset]}/ "
        f"nor {_SUBDIR[config.dataset]}/{_MARKER[config.dataset]}/"
    )


def check_data_available(config) -> None:
    """Raise ``FileNotFoundError`` before training when real data are missing."""
    resolve_data_root(config)


# ---------------------------------------------------------------- split helper
def class_groups(counts: torch.Tensor, masks=None, num_classes: int | None = None) -> tuple[dict, dict]:
    """Head / common / tail class ids and imbalance statistics.

    Segmentation: :func:`data_utils.imbalance_stats` of the training masks (pixel and
    centre imbalance factors, thirds by pixel frequency). Classification:
    :func:`data_utils.stats.head_common_tail` of the per-class image counts. The split is
    thirds of the classes present, by decreasing training frequency (SPEC §4, CeCo paper
    Tables 4-6).
    """
    if masks is not None:
        from data_utils import imbalance_stats

        stats = imbalance_stats(masks, num_classes or len(counts))
        keep = ("pixel_if", "center_if", "num_images", "num_pixels", "num_ignored", "pixel_counts",
                "center_counts", "image_counts")
    else:
        from data_utils.stats import head_common_tail, imbalance_factor

        stats = dict(head_common_tail(counts.cpu().numpy()))
        stats["imbalance_factor"] = imbalance_factor(counts.cpu().numpy())
        keep = ("imbalance_factor",)
    groups = {g: [int(c) for c in stats[g]] for g in ("head", "common", "tail")}
    info = {k: _plain(stats[k]) for k in keep if k in stats}
    return groups, info


def _plain(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# --------------------------------------------------------------------- loading
def _stack_dataset(ds, num_workers: int = 0, limit: int | None = None):
    """Stack a map-style data set of (image, target) pairs into two tensors (dtype of
    the items), filling preallocated outputs (peak memory = the result, no copy)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    x0, y0 = (torch.as_tensor(v) for v in ds[0])
    xs = torch.empty((n,) + tuple(x0.shape), dtype=x0.dtype)
    ys = torch.empty((n,) + tuple(y0.shape), dtype=y0.dtype)
    if num_workers > 0 and n > 16:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, range(n)), batch_size=8, num_workers=num_workers, shuffle=False
        )
        s = 0
        for x, y in loader:
            xs[s:s + len(x)], ys[s:s + len(x)] = x, y
            s += len(x)
        return xs, ys
    for i in range(n):
        x, y = ds[i] if i else (x0, y0)
        xs[i], ys[i] = torch.as_tensor(x), torch.as_tensor(y)
    return xs, ys


class _RawCityscapes(torch.utils.data.Dataset):
    """``(image (3, H, W) uint8, mask (H, W) uint8)`` items of a
    :class:`data_utils.CityscapesSubset` (:meth:`~data_utils.CityscapesSubset.load_tensors`:
    its resized, cached 8-bit arrays, no float)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        return self.ds.load_tensors(index)


def _synthetic(config):
    from data_utils import make_synthetic_segmentation

    opts = dict(config.synthetic_options)
    data_seed = int(opts.pop("seed", 0))
    val_seed = int(opts.pop("val_seed", data_seed + 10_000))
    size = config.image_size or (32, 32)
    tr = make_synthetic_segmentation(config.num_images, config.num_classes, size, config.imbalance_factor,
                                     seed=data_seed, **opts)
    va = make_synthetic_segmentation(config.num_val_images, config.num_classes, size, config.imbalance_factor,
                                     seed=val_seed, **opts)
    return _as_pair(tr) + _as_pair(va)


def _as_pair(obj):
    if isinstance(obj, (tuple, list)) and len(obj) >= 2:
        x, y = obj[0], obj[1]
    elif hasattr(obj, "images") and hasattr(obj, "masks"):
        x, y = obj.images, obj.masks
    else:  # a map-style data set
        x, y = _stack_dataset(obj)
    return torch.as_tensor(x).float(), torch.as_tensor(y).long()


def _cityscapes(config, root: Path):
    """uint8 images ``(N, 3, H, W)`` (PIL bilinear resize in uint8) and uint8 trainId
    masks ``(N, H, W)`` (int64 if ``num_classes >= 255``) of the train and val splits."""
    from data_utils import CityscapesSubset

    size = config.image_size or (256, 512)
    out = []
    for split in ("train", "val"):
        ds = CityscapesSubset(root, split=split, size=size)
        x, y = _stack_dataset(_RawCityscapes(ds), config.num_workers, config.limit_images)
        out += [x, y if config.num_classes < 255 else y.long()]
    return tuple(out)


# LDAM-DRW normalisation of CIFAR images
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _cifar(config, root: Path):
    """uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)`` of the train and test splits."""
    import data_utils

    cls = data_utils.CIFAR10LT if config.dataset == "cifar10-lt" else data_utils.CIFAR100LT
    out = []
    for train in (True, False):
        ds = cls(root, train=train, imbalance_factor=config.imbalance_factor,
                 verify_checksums=config.verify_checksums)
        x, y = ds.tensors(raw=True)  # (N, 3, 32, 32) uint8, (N,) int64
        if config.limit_images is not None and config.limit_images < len(y):
            # a fixed random subset (the files may be ordered by class)
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:config.limit_images]
            x, y = x[keep.sort().values], y[keep.sort().values]
        out += [x, y]
    return tuple(out)


def load_data(config) -> DataBundle:
    """Load ``config.dataset`` into a :class:`DataBundle` (on the CPU).

    Real data are stored as uint8 (decode batches with :meth:`DataBundle.decode`),
    synthetic data as float32 / int64; see the module docstring for the memory figures.
    """
    root = resolve_data_root(config)
    mean = std = None
    if config.dataset == "synthetic":
        tx, ty, vx, vy = _synthetic(config)
    elif config.dataset == "cityscapes":
        from data_utils import CityscapesSubset

        tx, ty, vx, vy = _cityscapes(config, root)
        mean, std = tuple(CityscapesSubset.mean), tuple(CityscapesSubset.std)  # ImageNet statistics
    else:
        tx, ty, vx, vy = _cifar(config, root)
        mean, std = _CIFAR_MEAN, _CIFAR_STD
    k = config.num_classes
    valid = ty[ty != 255]
    counts = torch.bincount(valid.flatten(), minlength=k)[:k]
    groups, info = class_groups(counts, ty if ty.dim() == 3 else None, k)
    return DataBundle(tx, ty, vx, vy, k, counts, groups, info, mean=mean, std=std)


# -------------------------------------------------------------------- batches
def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """CPU generator for epoch ``epoch`` (0-based) of a run with ``seed`` (same on every rank)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 7919 + 17)


def iterate_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int, epoch: int,
                    augment: bool, task: str, rank: int = 0, world_size: int = 1, drop_last: bool = True,
                    mean=None, std=None):
    """Yield ``(x_batch, y_batch)`` for one epoch.

    A global permutation (same on every rank) is cut into global batches of
    ``batch_size``; rank ``r`` of ``world_size`` takes the r-th contiguous slice of each,
    so a distributed run sees exactly the global batches of a single-process run.
    Each selected batch is decoded on ``x``'s device (:func:`decode_batch` with ``mean``
    / ``std``: uint8 -> float32 / 255, normalised; targets -> int64) before augmentation:
    random horizontal flip (and for classification a random 32x32 crop of the 4-pixel
    zero-padded normalised image, LDAM-DRW), drawn per global batch.

    Yields
    ------
    x_batch : Tensor
        ``(b, 3, H, W)`` float32 (``b = batch_size // world_size``).
    y_batch : Tensor
        ``(b, H, W)`` or ``(b,)`` int64.
    """
    g = epoch_generator(seed, epoch)
    n = x.shape[0]
    perm = torch.randperm(n, generator=g)
    nb = n // batch_size if drop_last else -(-n // batch_size)
    nb = max(nb, 1)
    local = batch_size // world_size
    for b in range(nb):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        if augment:
            flip = torch.rand(idx.numel(), generator=g) < 0.5
            if task == "classification":
                offs = torch.randint(0, 9, (idx.numel(), 2), generator=g)
        if world_size > 1:
            sl = slice(rank * local, (rank + 1) * local)
            idx = idx[sl]
            if augment:
                flip = flip[sl]
                if task == "classification":
                    offs = offs[sl]
        dev_idx = idx.to(x.device)
        xb, yb = decode_batch(x.index_select(0, dev_idx), y.index_select(0, dev_idx), mean=mean, std=std)
        if augment:
            f = flip.to(x.device)
            xb = torch.where(f.view(-1, 1, 1, 1), xb.flip(-1), xb)
            if task == "segmentation":
                yb = torch.where(f.view(-1, 1, 1), yb.flip(-1), yb)
            else:
                xb = _random_crop(xb, offs.to(x.device))
        yield xb, yb


def _random_crop(x: torch.Tensor, offs: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Vectorised random crop of size (H, W) from the zero-padded batch (offsets in [0, 2·pad])."""
    b, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (offs[:, 0].view(b, 1) + torch.arange(h, device=x.device).view(1, h))  # (B, H)
    cols = (offs[:, 1].view(b, 1) + torch.arange(w, device=x.device).view(1, w))  # (B, W)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    out = xp.permute(0, 2, 3, 1)[bi, rows.view(b, h, 1), cols.view(b, 1, w)]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
