"""Data for the engine: whole data sets as in-memory tensors (airbench style).

Every data set the engine trains on is loaded once into tensors (images float32
``(N, 3, H, W)``, masks int64 ``(N, H, W)`` with 255 = ignore, or labels ``(N,)``)
and moved to the training device; batches are index selections and the
augmentations (random horizontal flip; random crop with 4-pixel zero padding for
CIFAR, as in LDAM-DRW) are vectorised over the batch. Shuffling and augmentation
draw from a generator seeded by ``(seed, epoch)``, so a resumed run sees exactly
the batches an uninterrupted run sees.

Loading uses the data helper's classes (:mod:`data_utils`); the real data root
is ``config.data_root`` or :func:`data_utils.default_data_dir`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["DataBundle", "load_data", "resolve_data_root", "check_data_available", "iterate_batches", "class_groups"]


@dataclass
class DataBundle:
    """Train / evaluation tensors and class statistics.

    Attributes
    ----------
    train_x, val_x : Tensor
        ``(N, 3, H, W)`` float32.
    train_y, val_y : Tensor
        ``(N, H, W)`` int64 (255 = ignore) or ``(N,)`` int64.
    num_classes : int
    class_counts : Tensor
        ``(K,)`` training pixels (or images) per class.
    groups : dict
        ``{"head": [...], "common": [...], "tail": [...]}`` class ids (thirds by
        training frequency, SPEC §4).
    info : dict
        Imbalance statistics for the record (pixel IF, etc.).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    class_counts: torch.Tensor
    groups: dict
    info: dict = field(default_factory=dict)

    def to(self, device) -> "DataBundle":
        for name in ("train_x", "train_y", "val_x", "val_y"):
            setattr(self, name, getattr(self, name).to(device))
        return self


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
    """Stack a map-style data set of (image, target) pairs into two tensors."""
    n = len(ds) if limit is None else min(limit, len(ds))
    if num_workers > 0 and n > 16:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, range(n)), batch_size=8, num_workers=num_workers, shuffle=False
        )
        xs, ys = zip(*[(x, y) for x, y in loader])
        return torch.cat(xs), torch.cat(ys)
    xs, ys = zip(*[ds[i] for i in range(n)])
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.stack([torch.as_tensor(y) for y in ys])


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
    from data_utils import CityscapesSubset

    size = config.image_size or (256, 512)
    out = []
    for split in ("train", "val"):
        ds = CityscapesSubset(root, split=split, size=size, normalize=True)  # ImageNet mean / std
        x, y = _stack_dataset(ds, config.num_workers, config.limit_images)
        out += [x.float(), y.long()]
    return tuple(out)


# LDAM-DRW normalisation of CIFAR images
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _cifar(config, root: Path):
    import data_utils

    cls = data_utils.CIFAR10LT if config.dataset == "cifar10-lt" else data_utils.CIFAR100LT
    mean = torch.tensor(_CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_CIFAR_STD).view(1, 3, 1, 1)
    out = []
    for train in (True, False):
        ds = cls(root, train=train, imbalance_factor=config.imbalance_factor,
                 verify_checksums=config.verify_checksums)
        x, y = ds.tensors()  # (N, 3, 32, 32) in [0, 1], (N,)
        if config.limit_images is not None and config.limit_images < len(y):
            # a fixed random subset (the files may be ordered by class)
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:config.limit_images]
            x, y = x[keep.sort().values], y[keep.sort().values]
        out += [(x - mean) / std, y]
    return tuple(out)


def load_data(config) -> DataBundle:
    """Load ``config.dataset`` into a :class:`DataBundle` (on the CPU)."""
    root = resolve_data_root(config)
    if config.dataset == "synthetic":
        tx, ty, vx, vy = _synthetic(config)
    elif config.dataset == "cityscapes":
        tx, ty, vx, vy = _cityscapes(config, root)
    else:
        tx, ty, vx, vy = _cifar(config, root)
    k = config.num_classes
    valid = ty[ty != 255]
    counts = torch.bincount(valid.flatten(), minlength=k)[:k]
    groups, info = class_groups(counts, ty if ty.dim() == 3 else None, k)
    return DataBundle(tx, ty, vx, vy, k, counts, groups, info)


# -------------------------------------------------------------------- batches
def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """CPU generator for epoch ``epoch`` (0-based) of a run with ``seed`` (same on every rank)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 7919 + 17)


def iterate_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int, epoch: int,
                    augment: bool, task: str, rank: int = 0, world_size: int = 1, drop_last: bool = True):
    """Yield ``(x_batch, y_batch)`` for one epoch.

    A global permutation (same on every rank) is cut into global batches of
    ``batch_size``; rank ``r`` of ``world_size`` takes the r-th contiguous slice of each,
    so a distributed run sees exactly the global batches of a single-process run.
    Augmentation: random horizontal flip (and for classification a random 32x32 crop
    of the 4-pixel zero-padded image, LDAM-DRW), drawn per global batch.
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
        xb, yb = x.index_select(0, dev_idx), y.index_select(0, dev_idx)
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
