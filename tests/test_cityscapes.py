"""Cityscapes subset (data_utils.cityscapes): trainIds, resizing, cache, errors."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import data_utils.cityscapes as cs
from ceco_lite.fileio import CorruptFileError, load_npz
from conftest_data import cityscapes_root, needs_real_cityscapes, real_data_dir, write_cityscapes  # noqa: F401
from data_utils import CityscapesSubset, CorruptImageError

# The official cityscapesscripts label table (labels.py), written out independently:
# (name, labelId, trainId). trainId 255 = ignored in evaluation.
OFFICIAL_LABELS = [
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255),
    ("out of roi", 3, 255), ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255),
    ("road", 7, 0), ("sidewalk", 8, 1), ("parking", 9, 255), ("rail track", 10, 255),
    ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4), ("guard rail", 14, 255),
    ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9),
    ("sky", 23, 10), ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14),
    ("bus", 28, 15), ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16),
    ("motorcycle", 32, 17), ("bicycle", 33, 18),
]
OFFICIAL_COLOURS = {
    "road": (128, 64, 128), "sidewalk": (244, 35, 232), "building": (70, 70, 70), "wall": (102, 102, 156),
    "fence": (190, 153, 153), "pole": (153, 153, 153), "traffic light": (250, 170, 30),
    "traffic sign": (220, 220, 0), "vegetation": (107, 142, 35), "terrain": (152, 251, 152),
    "sky": (70, 130, 180), "person": (220, 20, 60), "rider": (255, 0, 0), "car": (0, 0, 142),
    "truck": (0, 0, 70), "bus": (0, 60, 100), "train": (0, 80, 100), "motorcycle": (0, 0, 230),
    "bicycle": (119, 11, 32),
}


def _independent_trainids(label_ids: np.ndarray) -> np.ndarray:
    out = np.full(label_ids.shape, 255, dtype=np.int64)
    for _name, label_id, train_id in OFFICIAL_LABELS:
        out[label_ids == label_id] = train_id
    return out


def test_class_table_and_palette_match_official():
    evaluated = [(n, t) for n, _, t in OFFICIAL_LABELS if t != 255]
    assert tuple(n for n, _ in sorted(evaluated, key=lambda x: x[1])) == cs.CITYSCAPES_CLASSES
    assert [tuple(c) for c in cs.CITYSCAPES_PALETTE.tolist()] == [OFFICIAL_COLOURS[n] for n in cs.CITYSCAPES_CLASSES]
    ids = np.arange(256)
    assert np.array_equal(cs.labelids_to_trainids(ids), _independent_trainids(ids))
    assert cs.labelids_to_trainids(np.array([-1]))[0] == 255  # license plate


def test_items_sizes_and_trainids(cityscapes_root, tmp_path):
    ds = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=tmp_path / "cache")
    assert len(ds) == 5 and ds.num_classes == 19 and ds.ignore_index == 255
    image, mask = ds[0]
    assert image.shape == (3, 16, 32) and image.dtype == torch.float32
    assert mask.shape == (16, 32) and mask.dtype == torch.int64
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    # labels: nearest-neighbour resize of the independent mapping of the label PNG
    lab = np.array(Image.open(ds.targets[0]))
    expected = _independent_trainids(np.array(Image.fromarray(lab).resize((32, 16), Image.NEAREST)))
    assert np.array_equal(mask.numpy(), expected)
    # images: PIL bilinear resize
    rgb = np.array(Image.open(ds.images[0]).convert("RGB").resize((32, 16), Image.BILINEAR))
    assert torch.allclose(image, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    # the 8-bit tensors behind the item
    raw_image, raw_mask = ds.load_tensors(0)
    assert raw_image.dtype == torch.uint8 and raw_mask.dtype == torch.uint8
    assert np.array_equal(raw_image.permute(1, 2, 0).numpy(), rgb)
    assert np.array_equal(raw_mask.numpy(), expected)
    normed, _ = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=tmp_path / "cache",
                                 normalize=True)[0]
    mean, std = torch.tensor(ds.mean).view(3, 1, 1), torch.tensor(ds.std).view(3, 1, 1)
    assert torch.equal(normed, (image - mean) / std)
    full = CityscapesSubset(cityscapes_root, "val", size=None, cache_dir=False)
    _, m = full[1]
    assert m.shape == (32, 64)
    assert np.array_equal(m.numpy(), _independent_trainids(np.array(Image.open(full.targets[1]))))


def test_cache_avoids_decoding_and_is_atomic(cityscapes_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ds = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=cache)
    first = [ds[i] for i in range(len(ds))]
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == len(ds) and all("16x32" in f.name for f in files)
    assert not list(cache.rglob("*.tmp"))

    def no_decode(*args, **kwargs):
        raise AssertionError("PNG decoded although cached")

    monkeypatch.setattr(Image, "open", no_decode)
    second = [ds[i] for i in range(len(ds))]
    for (a, b), (c, d) in zip(first, second):
        assert torch.equal(a, c) and torch.equal(b, d)
    assert torch.equal(ds.load_mask(2), first[2][1])
    monkeypatch.undo()
    # another size gets its own entries
    CityscapesSubset(cityscapes_root, "train", size=(8, 16), cache_dir=cache)[0]
    assert len(list(cache.rglob("*8x16*.npz"))) == 1
    # a damaged entry is rebuilt
    files[0].write_bytes(b"garbage")
    again = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=cache)
    idx = [Path(again._cache_path(i)) for i in range(len(again))].index(files[0])
    assert torch.equal(again[idx][1], first[idx][1])


def test_subset_selection(cityscapes_root):
    all_train = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=False)
    sub = CityscapesSubset(cityscapes_root, "train", size=(16, 32), num_images=3, seed=1, cache_dir=False)
    sub2 = CityscapesSubset(cityscapes_root, "train", size=(16, 32), num_images=3, seed=1, cache_dir=False)
    assert len(sub) == 3 and sub.images == sub2.images and set(sub.images) <= set(all_train.images)
    others = {tuple(CityscapesSubset(cityscapes_root, "train", num_images=3, seed=s, cache_dir=False).images)
              for s in range(6)}
    assert len(others) > 1
    city = CityscapesSubset(cityscapes_root, "train", cities=["bochum"], cache_dir=False)
    assert len(city) == 2 and all("/bochum/" in p for p in city.images)
    with pytest.raises(ValueError, match="cities"):
        CityscapesSubset(cityscapes_root, "train", cities=["paris"], cache_dir=False)
    with pytest.raises(ValueError, match="num_images"):
        CityscapesSubset(cityscapes_root, "train", num_images=6, cache_dir=False)


def test_joint_augmentation_keeps_image_and_mask_in_register(cityscapes_root):
    # every labelId has its own colour in the fixture images; after a random resized crop
    # and flip, pixels well inside a region must still show that region's colour
    colours = (np.arange(34)[:, None] * np.array([7, 53, 101])[None, :]) % 256
    train_to_colour = {t: colours[lid] / 255.0 for _, lid, t in OFFICIAL_LABELS if t != 255}
    ds = CityscapesSubset(cityscapes_root, "train", size=None, cache_dir=False, augment=True, crop_scale=(0.3, 0.6))
    torch.manual_seed(0)
    for i in range(6):
        image, mask = ds[i % len(ds)]
        assert image.shape == (3, 32, 64) and mask.shape == (32, 64) and mask.dtype == torch.int64
        m = mask.numpy()
        interior = np.ones_like(m, dtype=bool)
        for dy in (-2, 0, 2):
            for dx in (-2, 0, 2):
                interior &= np.roll(np.roll(m, dy, 0), dx, 1) == m
        interior[:2] = interior[-2:] = False
        interior[:, :2] = interior[:, -2:] = False
        checked = 0
        for t, col in train_to_colour.items():
            sel = interior & (m == t)
            if sel.any():
                got = image.numpy()[:, sel].T
                assert np.abs(got - col).max() < 0.05
                checked += 1
        assert checked > 0
    # whole-image crops: only the flip acts, on image and mask together
    whole = CityscapesSubset(cityscapes_root, "train", size=(32, 64), cache_dir=False, augment=True,
                             crop_scale=(1.0, 1.0))
    plain_image, plain_mask = CityscapesSubset(cityscapes_root, "train", size=(32, 64), cache_dir=False)[0]
    seen = set()
    torch.manual_seed(1)
    for _ in range(12):
        image, mask = whole[0]
        agree_plain = (mask == plain_mask).double().mean()
        agree_flip = (mask == plain_mask.flip(-1)).double().mean()
        flipped = bool(agree_flip > agree_plain)
        assert max(agree_plain, agree_flip) > 0.9  # whole-image crop (up to one-pixel rounding)
        same = plain_image.flip(-1) if flipped else plain_image
        other = plain_image if flipped else plain_image.flip(-1)
        # the image got the same flip as the mask
        assert (image - same).abs().mean() < 0.3 * (image - other).abs().mean()
        seen.add(flipped)
    assert seen == {True, False}
    plain = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=False)
    with pytest.raises(IndexError):
        plain[len(plain)]


def test_errors_name_layout_and_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="cityscapes-dataset.com"):
        CityscapesSubset(tmp_path / "nowhere")
    images_only = write_cityscapes(tmp_path / "images_only", labels=False)
    with pytest.raises(FileNotFoundError, match="gtFine"):
        CityscapesSubset(images_only)
    partial = write_cityscapes(tmp_path / "partial")
    victim = next((partial / "gtFine" / "train" / "aachen").glob("*_labelIds.png"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="no label file"):
        CityscapesSubset(partial)
    wrong = write_cityscapes(tmp_path / "wrong")
    label = sorted((wrong / "gtFine" / "train" / "aachen").glob("*_labelIds.png"))[0]
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(label)
    ds = CityscapesSubset(wrong, "train", size=(16, 32), cache_dir=False)
    with pytest.raises(ValueError, match="label file .* is 16x16"):
        ds[0]
    with pytest.raises(ValueError, match="size"):
        CityscapesSubset(tmp_path / "partial", size=(0, 32))
    with pytest.raises(ValueError, match="split"):
        CityscapesSubset(tmp_path / "partial", split="training")
    empty = tmp_path / "empty"
    (empty / "leftImg8bit" / "train").mkdir(parents=True)
    (empty / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no \\*_leftImg8bit.png"):
        CityscapesSubset(empty)


def test_no_instance_or_polygon_files_needed(cityscapes_root):
    assert not list(Path(cityscapes_root).rglob("*instanceIds*")) and not list(Path(cityscapes_root).rglob("*.json"))
    assert len(CityscapesSubset(cityscapes_root, "val", cache_dir=False)) == 2


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cityscapes_cache")


@needs_real_cityscapes
def test_real_sample_counts_and_histogram():
    root = real_data_dir("cityscapes")
    train = CityscapesSubset(root, "train", size=(64, 128), cache_dir=False)
    val = CityscapesSubset(root, "val", size=(64, 128), cache_dir=False)
    assert len(train) == 16 and len(val) == 10
    assert CityscapesSubset(None, "val", size=(8, 16), cache_dir=False).images == val.images  # default root
    # trainId histogram of one real label file (full resolution) vs an independent mapping
    full = CityscapesSubset(root, "val", size=None, cache_dir=False, cities=["munster"])
    mask = full.load_mask(0).numpy()
    raw = np.array(Image.open(full.targets[0]))
    assert raw.shape == (1024, 2048) and mask.shape == (1024, 2048)
    expected = _independent_trainids(raw)
    hist = np.bincount(mask.ravel(), minlength=256)
    assert np.array_equal(hist, np.bincount(expected.ravel(), minlength=256))
    assert np.array_equal(mask, expected)
    assert hist[:19].sum() > 0.8 * mask.size  # most pixels are evaluated classes


@needs_real_cityscapes
def test_real_sample_items_through_cache(real_cache):
    root = real_data_dir("cityscapes")
    ds = CityscapesSubset(root, "train", size=(32, 64), cache_dir=real_cache, cities=["zurich", "ulm"])
    assert len(ds) == 2
    image, mask = ds[0]
    assert image.shape == (3, 32, 64) and mask.shape == (32, 64)
    assert set(mask.unique().tolist()) <= set(range(19)) | {255}
    assert len(list(Path(real_cache).rglob("*.npz"))) == 1
    again = CityscapesSubset(root, "train", size=(32, 64), cache_dir=real_cache, cities=["zurich", "ulm"])
    assert torch.equal(again[0][1], mask) and torch.equal(again[0][0], image)


@pytest.mark.parametrize("which", ["leftImg8bit", "gtFine"])
@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_unreadable_png_raises_one_error_naming_it(cityscapes_root, tmp_path, which, damage):
    victim = sorted((cityscapes_root / which / "train" / "aachen").glob("*.png"))[0]
    data = victim.read_bytes()
    victim.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"not a png" * 30}[damage])
    ds = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=tmp_path / "cache")
    index = ds.images.index(str(victim)) if which == "leftImg8bit" else ds.targets.index(str(victim))
    with pytest.raises(CorruptImageError, match=re.escape(str(victim))) as info:
        ds[index]
    assert isinstance(info.value, CorruptFileError) and info.value.path == victim
    assert info.value.__cause__ is None and info.value.__suppress_context__  # one error, not a chain
    if which == "gtFine":
        with pytest.raises(CorruptImageError, match=re.escape(str(victim))):
            ds.load_mask(index)
    assert not list((tmp_path / "cache").rglob("*.npz"))  # nothing cached for the damaged pair
    assert ds[(index + 1) % len(ds)][1].shape == (16, 32)


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_cache_entry_raises_on_read_and_is_rebuilt(cityscapes_root, tmp_path, damage):
    cache = tmp_path / "cache"
    ds = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=cache)
    want = ds.load_arrays(1)
    entry = Path(ds._cache_path(1))
    entry.write_bytes(b"" if damage == "empty" else entry.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=re.escape(str(entry))):
        load_npz(entry, ("image", "mask"))
    again = CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=cache)
    image, mask = again.load_arrays(1)
    assert np.array_equal(image, want[0]) and np.array_equal(mask, want[1])
    rebuilt = load_npz(entry, ("image", "mask"))
    assert np.array_equal(rebuilt["mask"], want[1])


def test_orphan_cache_temporaries_are_removed(cityscapes_root, tmp_path):
    folder = tmp_path / "cache" / "train" / "aachen"
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = folder / f".aachen_000000_000019_16x32_0123456789ab.npz.{dead.pid}.0badc0de.tmp"
    orphan.write_bytes(b"half")
    CityscapesSubset(cityscapes_root, "train", size=(16, 32), cache_dir=tmp_path / "cache")
    assert not orphan.exists()
