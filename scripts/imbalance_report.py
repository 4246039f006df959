"""Print pixel vs centre imbalance factors of the real data sets and of the synthetic generator.

    python scripts/imbalance_report.py [--size 0 0] [--camvid-size 0 0] [--verbose]

First the report of ``python -m data_utils.stats`` (the Cityscapes sample next to the
CeCo supplement's Cityscapes figures, 373 vs 20, and the synthetic generator), then
CamVid: for each split found (train, val, test) and for train+val, the pixel
imbalance factor and the centre imbalance factor (one centre per image, and per batch
of 8 images, in which a class appears), from :func:`data_utils.imbalance_stats`.
The options of ``python -m data_utils.stats`` (``--data-dir``, ``--cache-dir``,
``--verbose``, ...) apply; ``--camvid-size H W`` resizes the CamVid masks (nearest)
before counting, ``0 0`` (default) counts them at 360x480.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from data_utils.camvid import CAMVID_CLASSES, CamVid
from data_utils.registry import get_dataset
from data_utils.stats import format_stats, imbalance_stats
from data_utils.stats import main as stats_main


def _options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's ``--camvid-size`` and the shared options; the rest goes to data_utils.stats."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--camvid-size", type=int, nargs=2, default=(0, 0), metavar=("H", "W"))
    args, rest = own.parse_known_args(argv)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--data-dir", default=None)
    shared.add_argument("--cache-dir", default=None)
    shared.add_argument("--verbose", action="store_true")
    common, _ = shared.parse_known_args(rest)
    args.__dict__.update(vars(common))
    return args, rest


def camvid_report(data_dir=None, size=None, cache_dir=None, verbose: bool = False) -> list[str]:
    """Lines of the CamVid report (pixel vs centre imbalance per split).

    Masks are decoded from the annotation PNGs (or read from ``<cache_dir>/camvid`` when
    given and filled); nothing is written.
    """
    spec = get_dataset("camvid")
    try:
        root = spec.resolve_root(data_dir)
    except FileNotFoundError as exc:
        return [f"CamVid: not found ({exc})"]
    lines = []
    masks = {}
    for split in ("train", "val", "test"):
        try:
            ds = CamVid(root, split, size=size, cache_dir=False if cache_dir is None else Path(cache_dir) / "camvid")
        except FileNotFoundError:
            continue
        masks[split] = [ds.load_mask(i).to(torch.uint8) for i in range(len(ds))]  # 8-bit: 170 kB a mask
    if "train" in masks and "val" in masks:
        masks["train+val"] = masks["train"] + masks["val"]
    for split, ms in masks.items():
        st = imbalance_stats(ms, spec.num_classes)
        batch = imbalance_stats(ms, spec.num_classes, batch_size=8)
        n = st["num_images"]
        rarest = min(st["image_counts"][k] for k in range(spec.num_classes) if st["pixel_counts"][k] > 0)
        lines.append(
            f"CamVid {split:<9} ({n:>3} images, labels at {size or 'full size'}): "
            f"pixel IF {st['pixel_if']:.1f}, centre IF per image {st['center_if']:.2f}, "
            f"per batch of 8 {batch['center_if']:.2f}; every present class in >= {rarest} images, "
            f"classes present {spec.num_classes - len(st['absent'])}/{spec.num_classes}"
        )
        if verbose:
            lines.append(format_stats(st, CAMVID_CLASSES))
    if not masks:
        lines.append(f"CamVid: no split found under {root}")
    return lines


def main(argv=None) -> int:
    """Run the data_utils.stats report, then the CamVid one."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, rest = _options(argv)
    if "-h" in rest or "--help" in rest:
        print(__doc__)
    code = stats_main(rest)
    size = None if tuple(args.camvid_size) == (0, 0) else tuple(args.camvid_size)
    for line in camvid_report(args.data_dir, size, args.cache_dir, args.verbose):
        print(line)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
