"""Data for the engine: whole data sets as in-memory tensors (airbench style).

Every data set the engine trains on is loaded once into tensors and moved to the
training device; batches are index selections and the augmentations (random
horizontal flip; random crop with 4-pixel zero padding for CIFAR, as in LDAM-DRW)
are vectorised over the batch. Shuffling and augmentation draw from a generator
seeded by ``(seed, epoch)``, so a resumed run sees exactly the batches an
uninterrupted run sees.

Storage (what :class:`DataBundle` holds):

- Real data (Cityscapes, CamVid, CIFAR-LT), whose source pixels are 8-bit: images ``uint8``
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

A 512x1024 Cityscapes pair takes 2.0 MiB (uint8 image 1.5 MiB + uint8 mask 0.5 MiB),
so the 2975-image training split fits in 6.2 GB of device memory.

Each data set is loaded by its entry in the data-set registry
(:func:`data_utils.registry.get_dataset`); real data are found under
``config.data_root`` or :func:`data_utils.default_data_dir`.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import torch
from torchvision.transforms.v2.functional import normalize

from data_utils import imbalance_stats
from data_utils.paths import ENV_VAR
from data_utils.registry import LoadRequest
from data_utils.stats import head_common_tail, imbalance_factor

from ..validation import IGNORE_INDEX

__all__ = ["DataBundle", "load_data", "iterate_batches", "class_groups", "decode_batch", "epoch_generator",
           "random_crop", "resolve_data_root", "label_counts"]

#: Seed of the fixed random subset of training images on which NC statistics are measured.
NC_SUBSET_SEED = 12345


@dataclass
class DataBundle:
    """Train / evaluation tensors of one data set and what the engine needs to know of them.

    Attributes
    ----------
    train_x, val_x : Tensor
        ``(N, 3, H, W)``: uint8 raw pixels 0..255 for real data (decode batches with
        :meth:`decode`), float32 model-ready images for synthetic data.
    train_y, val_y : Tensor
        ``(N, H, W)`` masks (``ignore_index`` = ignored): uint8 for real segmentation data,
        int64 for synthetic data; or ``(N,)`` int64 class labels. :meth:`decode` returns int64.
    num_classes : int
    task : {"segmentation", "classification"}
    ignore_index : int
        The label of ignored pixels in decoded targets (the configuration's ``ignore_index``).
    stored_ignore_index : int or None
        The label of ignored pixels in the stored masks (255, the data sets' convention);
        :meth:`decode` maps it to ``ignore_index``. None: the stored masks ignore nothing.
    class_counts : Tensor
        ``(K,)`` training pixels (or images) per class.
    groups : dict
        ``{"head": [...], "common": [...], "tail": [...]}`` class ids (thirds by
        training frequency, docs/conventions.md, section head-common-tail).
    info : dict
        Imbalance statistics for the record (pixel IF, etc.).
    mean, std : tuple of 3 floats or None
        Per-channel normalisation applied by :meth:`decode` to uint8 images after
        scaling to [0, 1] (None: no normalisation).
    nc_index : Tensor or None
        Indices of the training images on which NC statistics are measured (None: all).
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
    task: str = "segmentation"
    ignore_index: int = 255
    nc_index: torch.Tensor | None = None
    stored_ignore_index: int | None = None

    def to(self, device) -> "DataBundle":
        """Move the four tensors (and the NC subset) to ``device``, in place; returns ``self``."""
        for name in ("train_x", "train_y", "val_x", "val_y"):
            setattr(self, name, getattr(self, name).to(device))
        if self.nc_index is not None:
            self.nc_index = self.nc_index.to(device)
        return self

    def decode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """Model-ready float32 images (and int64 targets, ignored pixels labelled ``ignore_index``)
        of stored ``x`` (and ``y``): :func:`decode_batch` with this bundle's ``mean`` / ``std``."""
        relabel = None
        if self.stored_ignore_index is not None and self.stored_ignore_index != self.ignore_index:
            relabel = (self.stored_ignore_index, self.ignore_index)
        return decode_batch(x, y, mean=self.mean, std=self.std, relabel=relabel)

    def use_nc_subset(self, max_images: int | None) -> "DataBundle":
        """Measure NC statistics on a fixed random subset of ``max_images`` training images
        (seed :data:`NC_SUBSET_SEED`; all images when None or not fewer); returns ``self``."""
        n = self.train_x.shape[0]
        if max_images is None or max_images >= n:
            self.nc_index = None
        else:
            keep = torch.randperm(n, generator=torch.Generator().manual_seed(NC_SUBSET_SEED))[:max_images]
            self.nc_index = keep.sort().values.to(self.train_x.device)
        return self

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored ``(x, y)`` of ``"train"``, ``"val"`` (the evaluation split) or ``"nc"``
        (the NC-statistics subset of the training split)."""
        if name == "train":
            return self.train_x, self.train_y
        if name == "val":
            return self.val_x, self.val_y
        if name == "nc":
            if self.nc_index is None:
                return self.train_x, self.train_y
            return self.train_x.index_select(0, self.nc_index), self.train_y.index_select(0, self.nc_index)
        raise ValueError(f"split must be 'train', 'val' or 'nc', got {name!r}")


def decode_batch(x: torch.Tensor, y: torch.Tensor | None = None, *, mean=None, std=None, relabel=None):
    """Turn a stored mini-batch into model input, on ``x``'s device.

    Parameters
    ----------
    x : Tensor
        ``(B, 3, H, W)`` images: uint8 (raw 0..255) are converted to float32, divided by
        255 and, when ``mean`` / ``std`` are given, normalised as ``(x - mean) / std``
        per channel (:func:`torchvision.transforms.v2.functional.normalize`); floating
        images are returned unchanged (already model-ready).
    y : Tensor, optional
        Masks ``(B, H, W)`` or labels ``(B,)`` of any integer dtype; returned as int64.
    mean, std : sequence of 3 floats, optional
        Channel statistics of the [0, 1] images (e.g. ImageNet's for Cityscapes).
    relabel : (int, int), optional
        ``(stored, new)``: target values ``stored`` (the stored ignore label) become ``new``.

    Returns
    -------
    Tensor or (Tensor, Tensor)
        ``x`` float32 (or unchanged), and ``y`` int64 when ``y`` was given.

    Raises
    ------
    TypeError
        ``x`` neither uint8 nor floating.

    Examples
    --------
    >>> decode_batch(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten().tolist()
    [1.0, 1.0, 1.0]
    """
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
        if mean is not None:
            x = normalize(x, list(mean), list(std))  # (x - mean) / std per channel
    elif not x.is_floating_point():
        raise TypeError(f"x must be uint8 or floating-point images, got dtype {x.dtype}")
    if y is None:
        return x
    y = y.long()
    if relabel is not None:
        y = torch.where(y == relabel[0], torch.full_like(y, relabel[1]), y)
    return x, y


# ---------------------------------------------------------------- split helper
def class_groups(counts: torch.Tensor, masks=None, num_classes: int | None = None, *,
                 ignore_index: int = 255) -> tuple[dict, dict]:
    """Head / common / tail class ids and imbalance statistics.

    Segmentation: :func:`data_utils.imbalance_stats` of the training masks (pixel and
    centre imbalance factors, thirds by pixel frequency). Classification:
    :func:`data_utils.stats.head_common_tail` of the per-class image counts. The split is
    thirds of the classes present, by decreasing training frequency (docs/conventions.md,
    section head-common-tail; CeCo paper Tables 4-6).
    """
    if masks is not None:
        stats = imbalance_stats(masks, num_classes or len(counts), ignore_index=ignore_index)
        keep = ("pixel_if", "center_if", "num_images", "num_pixels", "num_ignored", "pixel_counts",
                "center_counts", "image_counts")
    else:
        stats = dict(head_common_tail(counts.cpu().numpy()))
        stats["imbalance_factor"] = imbalance_factor(counts.cpu().numpy())
        keep = ("imbalance_factor",)
    groups = {g: [int(c) for c in stats[g]] for g in ("head", "common", "tail")}
    info = {k: _plain(stats[k]) for k in keep if k in stats}
    return groups, info


def _plain(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# --------------------------------------------------------------------- loading
def _request(config, split: str, num_images: int) -> LoadRequest:
    return LoadRequest(
        split=split, size=config.image_size or config.dataset_spec.default_size, limit=config.limit_images,
        num_classes=config.num_classes, ignore_index=config.ignore_index,
        imbalance_factor=config.imbalance_factor, num_images=num_images,
        verify_checksums=config.verify_checksums, num_workers=config.num_workers,
        options=dict(config.synthetic_options),
    )


def resolve_data_root(config):
    """The folder of ``config``'s data set (None for generated data), as the registry finds it.

    Raises
    ------
    FileNotFoundError
        Real data that cannot be found; when ``data_root`` is not given and ``CECO_DATA_DIR``
        names no folder, the message says so.
    """
    spec = config.dataset_spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an unusable CECO_DATA_DIR: said in the error below
        try:
            return spec.resolve_root(config.data_root)
        except FileNotFoundError as exc:
            env = os.environ.get(ENV_VAR)
            if config.data_root is None and env and not os.path.isdir(os.path.expanduser(env)):
                raise FileNotFoundError(f"{ENV_VAR}={env} is not a folder (it is ignored); {exc}") from None
            raise


def label_counts(y: torch.Tensor, num_classes: int, ignore: int | None, what: str) -> torch.Tensor:
    """The ``(K,)`` class counts of the targets ``y`` after checking that each value is a class
    ``0..K-1`` or ``ignore`` (None: no value is ignored).

    Raises
    ------
    ValueError
        ``y`` holds other values; the message names ``what`` (e.g. the data set and split)
        and the first offending values.

    Examples
    --------
    >>> label_counts(torch.tensor([0, 2, 255, 2]), 3, 255, "masks").tolist()
    [1, 0, 2]
    """
    flat = y.reshape(-1)
    if flat.dtype == torch.uint8:  # real masks: one pass over 256 bins
        counts = torch.bincount(flat, minlength=256)
        outside = (counts[num_classes:].nonzero().flatten() + num_classes).tolist()
    else:
        inside = (flat >= 0) & (flat < num_classes)
        counts = torch.bincount(flat[inside].long(), minlength=num_classes)
        outside = torch.unique(flat[~inside]).tolist() if not bool(inside.all()) else []
    bad = [v for v in outside if v != ignore]
    if bad:
        allowed = f"the classes 0..{num_classes - 1}" + (f" and the ignore label {ignore}" if ignore is not None else "")
        raise ValueError(f"{what} hold labels {bad[:8]} outside {allowed}")
    return counts[:num_classes].cpu().long()


def _load_split(spec, root, request: LoadRequest):
    """``spec.load_split``; a failure of another kind than the loaders' documented ones (OSError,
    ValueError, TypeError) -- e.g. an unpicklable CIFAR batch -- becomes a ValueError naming the data."""
    try:
        return spec.load_split(root, request)
    except (OSError, ValueError, TypeError):
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the data set and folder named
        where = f" under {root}" if root is not None else ""
        raise ValueError(f"cannot read the {request.split!r} split of dataset {spec.name!r}{where}: "
                         f"{type(exc).__name__}: {exc}") from exc


def load_data(config) -> DataBundle:
    """Load ``config.dataset`` into a :class:`DataBundle` (on the CPU), through its registry entry.

    Real data are stored as uint8 (decode batches with :meth:`DataBundle.decode`),
    synthetic data as float32 / int64. Ignored pixels end up labelled ``config.ignore_index``:
    8-bit masks keep the data sets' 255 and :meth:`DataBundle.decode` relabels them, int64
    masks are relabelled here (with ``num_classes <= 255``, where 255 is no class). The
    NC-statistics subset follows ``config.nc_max_images``.

    Raises
    ------
    FileNotFoundError
        Real data that cannot be found (the message says how to get them).
    ValueError
        Targets that are neither a class ``0..K-1`` nor the ignore label (e.g. 255 as a class
        label with ``num_classes > 255``).
    """
    spec = config.dataset_spec
    root = resolve_data_root(config)
    tx, ty = _load_split(spec, root, _request(config, "train", config.num_images))
    vx, vy = _load_split(spec, root, _request(config, spec.eval_split, config.num_val_images))
    k, ignore = config.num_classes, config.ignore_index
    if ty.dtype == torch.uint8:  # 8-bit masks mark ignored pixels with 255; decoding relabels them
        stored = IGNORE_INDEX
    else:
        stored = ignore
        if ty.dim() == 3 and k <= IGNORE_INDEX and ignore != IGNORE_INDEX:  # loaders' 255 -> ignore_index
            for t in (ty, vy):
                t.masked_fill_(t == IGNORE_INDEX, ignore)
    if spec.task != "segmentation":
        stored = None
    counts = label_counts(ty, k, stored, f"the training targets of dataset {config.dataset!r}")
    label_counts(vy, k, stored, f"the {spec.eval_split!r} targets of dataset {config.dataset!r}")
    groups, info = class_groups(counts, ty if ty.dim() == 3 else None, k,
                                ignore_index=stored if stored is not None else -1)
    data = DataBundle(tx, ty, vx, vy, k, counts, groups, info, mean=spec.mean, std=spec.std, task=spec.task,
                      ignore_index=ignore, stored_ignore_index=stored)
    return data.use_nc_subset(config.nc_max_images)


# -------------------------------------------------------------------- batches
def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """CPU generator for epoch ``epoch`` (0-based) of a run with ``seed`` (same on every rank)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 7919 + 17)


def iterate_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int, epoch: int,
                    augment: bool, task: str, rank: int = 0, world_size: int = 1, drop_last: bool = True,
                    decode=decode_batch):
    """Yield ``(x_batch, y_batch)`` for one epoch.

    A global permutation (same on every rank) is cut into global batches of
    ``batch_size``; rank ``r`` of ``world_size`` takes the r-th contiguous slice of each,
    so a distributed run sees exactly the global batches of a single-process run.
    Each selected batch is decoded on ``x``'s device by ``decode(x, y)`` (e.g.
    :meth:`DataBundle.decode`: uint8 -> float32 / 255, normalised; targets -> int64) before augmentation:
    random horizontal flip (and for classification a random 32x32 crop of the 4-pixel
    zero-padded normalised image, LDAM-DRW), drawn per global batch.

    All of an epoch's random draws are made on the CPU generator at the start, in the
    per-batch order, and copied to the device in one transfer, so the loop itself never
    waits for the device (a copy from pageable host memory to a GPU synchronises the stream).

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
    crop = augment and task == "classification"
    idxs, flips, offsets = [], [], []
    for b in range(nb):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        if augment:
            flip = torch.rand(idx.numel(), generator=g) < 0.5
            if crop:
                offs = torch.randint(0, 9, (idx.numel(), 2), generator=g)
        if world_size > 1:
            sl = slice(rank * local, (rank + 1) * local)
            idx = idx[sl]
            if augment:
                flip = flip[sl]
                if crop:
                    offs = offs[sl]
        idxs.append(idx)
        if augment:
            flips.append(flip)
            if crop:
                offsets.append(offs)
    bounds = [0]
    for idx in idxs:
        bounds.append(bounds[-1] + idx.numel())
    dev_idx_all = torch.cat(idxs).to(x.device)
    flip_all = torch.cat(flips).to(x.device) if augment else None
    offs_all = torch.cat(offsets).to(x.device) if crop else None
    for b in range(nb):
        sl = slice(bounds[b], bounds[b + 1])
        dev_idx = dev_idx_all[sl]
        xb, yb = decode(x.index_select(0, dev_idx), y.index_select(0, dev_idx))
        if augment:
            f = flip_all[sl]
            xb = torch.where(f.view(-1, 1, 1, 1), xb.flip(-1), xb)
            if task == "segmentation":
                yb = torch.where(f.view(-1, 1, 1), yb.flip(-1), yb)
            else:
                xb = random_crop(xb, offs_all[sl])
        yield xb, yb


def random_crop(x: torch.Tensor, offs: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Vectorised random crop of size ``(H, W)`` from the zero-padded batch ``(B, C, H, W)``
    (``offs`` ``(B, 2)`` row/column offsets in ``[0, 2 pad]``; LDAM-DRW's CIFAR augmentation)."""
    b, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (offs[:, 0].view(b, 1) + torch.arange(h, device=x.device).view(1, h))  # (B, H)
    cols = (offs[:, 1].view(b, 1) + torch.arange(w, device=x.device).view(1, w))  # (B, W)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    out = xp.permute(0, 2, 3, 1)[bi, rows.view(b, h, 1), cols.view(b, 1, w)]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
