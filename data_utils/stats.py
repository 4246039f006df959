"""Imbalance statistics of segmentation masks: pixel versus centre imbalance.

CeCo supplement, Appendix C (Fig. 6) and F.1 (Table 12): the imbalance factor
``IF = n_max / n_min`` is much smaller when counted in class *centres* (one per image,
or per batch, in which a class appears) than in pixels (Cityscapes: 373 vs 20). Fig. 7
(Appendix C) measures the Pearson correlation between per-class accuracy and
normalised class frequency ``f_k = n_k / n_max``. Head/common/tail are thirds of the
classes by pixel frequency (docs/conventions.md, sections imbalance-factor,
pixel-vs-centre and head-common-tail).

``python -m data_utils.stats`` prints the statistics of the real Cityscapes sample
(when present) and of the synthetic generator next to the paper's figures.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from ceco_lite.validation import (
    IGNORE_INDEX,
    check_ignore_index,
    check_num_classes,
    check_optional_int,
    check_real_array,
)

from .cityscapes import CITYSCAPES_CLASSES, CityscapesSubset
from .paths import default_data_dir
from .synthetic import make_synthetic_segmentation

__all__ = [
    "imbalance_stats",
    "imbalance_factor",
    "per_image_class_counts",
    "head_common_tail",
    "pearson",
    "format_stats",
    "main",
]


def _as_long_tensor(masks) -> torch.Tensor:
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(masks)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a tensor or array, got {type(masks).__name__}")
    if masks.is_floating_point() or masks.is_complex() or masks.dtype == torch.bool:
        raise TypeError(f"masks must hold integer class indices, got dtype {masks.dtype}")
    return masks.to(torch.long)


def per_image_class_counts(masks, num_classes: int, *, ignore_index: int | None = IGNORE_INDEX) -> torch.Tensor:
    """Pixel count of every class in every image.

    Parameters
    ----------
    masks : torch.Tensor or numpy.ndarray
        ``(N, H, W)`` (or ``(H, W)`` for one image) integer labels in ``0..K-1``, or
        ``ignore_index``; ``N = 0`` gives an empty ``(0, K)`` result.
    num_classes : int
        ``K >= 2``.
    ignore_index : int or None, default 255
        Label that is not counted; it must lie outside ``[0, K)`` (docs/conventions.md,
        section ignore-index). ``None``: every label is a class.

    Returns
    -------
    torch.Tensor
        ``(N, K)`` int64.

    Raises
    ------
    TypeError
        Masks that are not integer tensors or arrays; a non-integer ``ignore_index``.
    ValueError
        If a label is outside ``0..K-1`` and is not ``ignore_index``, masks of the
        wrong rank, or ``ignore_index`` inside ``[0, K)``.

    Examples
    --------
    >>> per_image_class_counts(torch.tensor([[[0, 0], [2, 255]]]), 3).tolist()
    [[2, 0, 1]]
    """
    K = check_num_classes(num_classes)
    ignore_index = check_ignore_index(ignore_index, K)
    m = _as_long_tensor(masks)
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3:
        raise ValueError(f"masks must have shape (N, H, W) or (H, W), got {tuple(m.shape)}")
    n = m.shape[0]
    m = m.reshape(n, m.shape[1] * m.shape[2])
    valid = torch.ones_like(m, dtype=torch.bool) if ignore_index is None else m != ignore_index
    bad = valid & ((m < 0) | (m >= K))
    if bool(bad.any()):
        vals = torch.unique(m[bad])[:5].tolist()
        raise ValueError(
            f"masks hold labels {vals} outside 0..{K - 1} (num_classes={K}) that are not "
            f"ignore_index={ignore_index}"
        )
    rows = torch.arange(n, device=m.device)[:, None].expand_as(m)
    flat = (rows * K + m)[valid]
    return torch.bincount(flat, minlength=n * K).reshape(n, K).cpu()


def imbalance_factor(counts) -> float:
    """``IF = n_max / n_min`` over the classes with a non-zero count (docs/conventions.md, section imbalance-factor).

    Returns ``nan`` when no class is present.

    Examples
    --------
    >>> imbalance_factor([500, 0, 20, 5])
    100.0
    """
    c = check_real_array(counts, "counts")
    c = c[c > 0]
    return float(c.max() / c.min()) if c.size else float("nan")


def head_common_tail(pixel_counts) -> dict:
    """Split the present classes into thirds by pixel frequency (docs/conventions.md, section head-common-tail).

    Parameters
    ----------
    pixel_counts : array-like, shape (K,)

    Returns
    -------
    dict
        ``"head"``, ``"common"``, ``"tail"``: int64 class-index arrays (each ordered by
        decreasing frequency; ``numpy.array_split`` of the sorted present classes, so
        head gets the extra class when the count is not divisible by 3); ``"absent"``:
        classes with zero pixels.

    Examples
    --------
    >>> groups = head_common_tail([5, 900, 0, 40, 300, 1, 70, 2])
    >>> {k: v.tolist() for k, v in groups.items()}
    {'head': [1, 4, 6], 'common': [3, 0], 'tail': [7, 5], 'absent': [2]}
    """
    c = check_real_array(pixel_counts, "pixel_counts", ndim=1)
    order = np.argsort(-c, kind="stable")
    present = order[c[order] > 0]
    head, common, tail = np.array_split(present, 3)
    return {
        "head": head.astype(np.int64),
        "common": common.astype(np.int64),
        "tail": tail.astype(np.int64),
        "absent": np.sort(order[c[order] == 0]).astype(np.int64),
    }


def pearson(a, f) -> float:
    """Pearson correlation coefficient of two vectors (CeCo supplement, Sec. E, Fig. 7).

    ``rho = Cov(a, f) / (sigma(a) sigma(f))``; entries where either value is NaN are
    dropped. Returns ``nan`` when fewer than two entries remain or a vector is constant.
    """
    a = check_real_array(a, "a").ravel()
    f = check_real_array(f, "f").ravel()
    if a.shape != f.shape:
        raise ValueError(f"pearson needs vectors of equal length, got {a.shape} and {f.shape}")
    keep = ~(np.isnan(a) | np.isnan(f))
    a, f = a[keep], f[keep]
    if a.size < 2:
        return float("nan")
    da, df = a - a.mean(), f - f.mean()
    denom = np.sqrt((da * da).sum() * (df * df).sum())
    return float((da * df).sum() / denom) if denom > 0 else float("nan")


def _iter_mask_chunks(masks) -> Iterable[torch.Tensor]:
    """Yield (n, H, W) mask tensors from a tensor/array, or from an iterable of masks,
    batches of masks, or ``(image, mask)`` pairs (e.g. a Dataset or DataLoader)."""
    if isinstance(masks, (torch.Tensor, np.ndarray)):
        t = _as_long_tensor(masks)
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise ValueError(f"masks must have shape (N, H, W) or (H, W), got {tuple(t.shape)}")
        yield t
        return
    try:
        iterator = iter(masks)
    except TypeError:
        raise TypeError(
            "masks must be a (N, H, W) tensor/array or an iterable of masks or (image, mask) pairs, "
            f"got {type(masks).__name__}"
        ) from None
    for item in iterator:
        if isinstance(item, (tuple, list)):
            if len(item) < 2:
                raise ValueError("items of a masks iterable given as tuples must be (image, mask, ...)")
            item = item[1]
        t = _as_long_tensor(item)
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise ValueError(f"each mask must have shape (H, W) or (B, H, W), got {tuple(t.shape)}")
        yield t


def imbalance_stats(
    masks,
    num_classes: int,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    batch_size: Optional[int] = None,
    accuracy=None,
) -> dict:
    """Pixel and centre imbalance statistics of a set of segmentation masks.

    CeCo supplement Appendix C and F.1: pixel IF (Fig. 6, Table 12 "point"), centre IF (Table 12
    "center": a class contributes one centre per image, or per batch, in which it
    appears -- CeCo paper Eq. 3 computes one centre per present class per batch), and,
    given per-class accuracies, the Pearson correlation of accuracy with normalised
    pixel and centre frequency (Fig. 7).

    Parameters
    ----------
    masks : torch.Tensor, numpy.ndarray or iterable
        ``(N, H, W)`` integer labels, or an iterable (Dataset, DataLoader, list) of
        ``(H, W)`` / ``(B, H, W)`` masks or of ``(image, mask)`` pairs, streamed.
    num_classes : int
        ``K >= 2``.
    ignore_index : int or None, default 255
        Label of ignored pixels; must lie outside ``[0, K)`` (an ignore index that is
        a class would silently drop it). ``None``: nothing is ignored.
    batch_size : int, optional
        ``None`` (default): one centre per image and present class. An integer ``B``:
        consecutive images are grouped in batches of ``B`` (the last may be smaller) and
        a class contributes one centre per batch in which it appears.
    accuracy : array-like of shape (K,), optional
        Per-class accuracy (NaN for classes not evaluated); adds ``pearson_pixel`` and
        ``pearson_center``.

    Returns
    -------
    dict
        ``pixel_counts`` (K,) int64; ``center_counts`` (K,) int64; ``image_counts``
        (K,) int64 (images containing the class); ``pixel_freq`` (K,) float64 (share of
        non-ignored pixels); ``pixel_if``, ``center_if`` (float, over present classes;
        NaN if none); ``num_images``, ``num_pixels`` (non-ignored), ``num_ignored``;
        ``order`` (classes by decreasing pixel count); ``head``, ``common``, ``tail``,
        ``absent`` (see :func:`head_common_tail`); with ``accuracy``:
        ``pearson_pixel``, ``pearson_center``.

    Raises
    ------
    ValueError, TypeError
        On ``num_classes < 2``, a non-positive ``batch_size``, ``ignore_index`` inside
        ``[0, K)``, labels outside ``0..K-1`` other than ``ignore_index``, masks of the
        wrong rank, no image at all (an empty tensor or iterable), or an
        ``accuracy`` of the wrong length.
    """
    K = check_num_classes(num_classes)
    ignore_index = check_ignore_index(ignore_index, K)
    batch_size = check_optional_int(batch_size, "batch_size", minimum=1)
    presence = []
    pixel_counts = torch.zeros(K, dtype=torch.long)
    num_ignored = 0
    for chunk in _iter_mask_chunks(masks):
        counts = per_image_class_counts(chunk, K, ignore_index=ignore_index)
        pixel_counts += counts.sum(0)
        presence.append(counts > 0)
        if ignore_index is not None:
            num_ignored += int((chunk == ignore_index).sum())
    present = torch.cat(presence) if presence else torch.zeros(0, K, dtype=torch.bool)  # (N, K)
    n = present.shape[0]
    if n == 0:
        raise ValueError("masks is empty: no image to measure")
    image_counts = present.sum(0)
    if batch_size is None or batch_size == 1:
        center_counts = image_counts
    else:
        nb = -(-n // batch_size)
        padded = torch.zeros(nb * batch_size, K, dtype=torch.bool)
        padded[:n] = present
        center_counts = padded.reshape(nb, batch_size, K).any(1).sum(0)
    pc = pixel_counts.numpy().astype(np.int64)
    cc = center_counts.numpy().astype(np.int64)
    total = int(pc.sum())
    out = {
        "pixel_counts": pc,
        "center_counts": cc,
        "image_counts": image_counts.numpy().astype(np.int64),
        "pixel_freq": pc / total if total else np.zeros(K),
        "pixel_if": imbalance_factor(pc),
        "center_if": imbalance_factor(cc),
        "num_images": n,
        "num_pixels": total,
        "num_ignored": num_ignored,
        "order": np.argsort(-pc, kind="stable").astype(np.int64),
    }
    out.update(head_common_tail(pc))
    if accuracy is not None:
        acc = check_real_array(accuracy, "accuracy").ravel()
        if acc.shape != (K,):
            raise ValueError(f"accuracy must have shape ({K},), got {acc.shape}")
        keep = pc > 0
        acc = np.where(keep, acc, np.nan)
        out["pearson_pixel"] = pearson(acc, pc / max(pc.max(), 1))
        out["pearson_center"] = pearson(acc, cc / max(cc.max(), 1))
    return out


def format_stats(stats: dict, class_names=None, title: str = "") -> str:
    """Human-readable table of :func:`imbalance_stats` output."""
    K = len(stats["pixel_counts"])
    names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
    lines = []
    if title:
        lines.append(title)
    lines.append(
        f"  images {stats['num_images']}, pixels {stats['num_pixels']:,} (+{stats['num_ignored']:,} ignored); "
        f"pixel IF {stats['pixel_if']:.1f}, centre IF {stats['center_if']:.1f}"
    )
    part = {}
    for g in ("head", "common", "tail", "absent"):
        for k in stats[g]:
            part[int(k)] = g
    lines.append(f"  {'class':<16}{'pixels':>12}{'share %':>9}{'centres':>9}  group")
    for k in stats["order"]:
        k = int(k)
        lines.append(
            f"  {names[k]:<16}{stats['pixel_counts'][k]:>12,}{100 * stats['pixel_freq'][k]:>9.3f}"
            f"{stats['center_counts'][k]:>9}  {part.get(k, '')}"
        )
    return "\n".join(lines)


PAPER_CITYSCAPES = {"pixel_if": 373.0, "center_if": 20.0}


def main(argv=None) -> int:
    """Print pixel/centre imbalance of the Cityscapes sample and of the synthetic generator."""
    parser = argparse.ArgumentParser(prog="python -m data_utils.stats", description=main.__doc__)
    parser.add_argument("--data-dir", default=None, help="data root (default: data_utils.default_data_dir())")
    parser.add_argument("--size", type=int, nargs=2, default=(0, 0), metavar=("H", "W"),
                        help="resize Cityscapes labels to H W (nearest) before counting; 0 0 = full size")
    parser.add_argument("--cache-dir", default=None, help="Cityscapes cache dir (default: a per-user cache)")
    parser.add_argument("--synthetic-images", type=int, default=500)
    parser.add_argument("--synthetic-classes", type=int, default=19)
    parser.add_argument("--synthetic-if", type=float, nargs="+", default=(1, 10, 100, 373, 1000))
    parser.add_argument("--verbose", action="store_true", help="print per-class tables")
    args = parser.parse_args(argv)

    root = args.data_dir or default_data_dir()
    city_root = None if root is None else Path(root) / "cityscapes"
    print("Pixel vs centre imbalance factor (CeCo supplement Table 12: Cityscapes 373 vs 20)")
    if city_root is not None and city_root.is_dir():
        size = None if tuple(args.size) == (0, 0) else tuple(args.size)
        masks = {}
        for split in ("train", "val"):
            ds = CityscapesSubset(city_root, split=split, size=size, cache_dir=args.cache_dir)
            masks[split] = [ds.load_mask(i) for i in range(len(ds))]
        masks["train+val"] = masks["train"] + masks["val"]
        for split, ms in masks.items():
            st = imbalance_stats(ms, 19)
            print(
                f"Cityscapes sample {split:<9} ({len(ms):>2} images, labels at {size or 'full size'}): "
                f"pixel IF {st['pixel_if']:.1f}, centre IF {st['center_if']:.1f} "
                f"(at most {len(ms)} with {len(ms)} images), classes present {19 - len(st['absent'])}/19; "
                f"paper, 2975 train images: 373 vs 20"
            )
            if args.verbose:
                print(format_stats(st, CITYSCAPES_CLASSES))
    else:
        print("Cityscapes sample: not found (set CECO_DATA_DIR or --data-dir)")
    for IF in args.synthetic_if:
        images, masks = make_synthetic_segmentation(
            args.synthetic_images, args.synthetic_classes, 32, IF, seed=0
        )
        st = imbalance_stats(masks, args.synthetic_classes)
        print(
            f"synthetic K={args.synthetic_classes} IF={IF:g} ({args.synthetic_images} images 32x32): "
            f"pixel IF {st['pixel_if']:.1f} (error {100 * (st['pixel_if'] / IF - 1):+.1f} %), "
            f"centre IF per image {st['center_if']:.1f}, "
            f"per batch of 8 {imbalance_stats(masks, args.synthetic_classes, batch_size=8)['center_if']:.1f}"
        )
        if args.verbose:
            print(format_stats(st))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
