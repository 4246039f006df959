"""Tiny, format-faithful data fixtures for the data_utils tests.

Imported by tests/test_cifar_lt.py, test_cityscapes.py, test_camvid.py and test_stats.py (not a
conftest.py: that file belongs to the infra helper). Everything is written under
pytest's tmp_path, so the suite passes on a fresh machine without real data.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_utils import default_data_dir

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_class_train, per_class_test: int = 3, seed: int = 0) -> Path:
    """Write ``cifar-10-batches-py/`` (5 training batches, test_batch, batches.meta) with
    the official keys, uint8 ``(n, 3072)`` data and list labels; returns ``root``."""
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class_train)])
    rng.shuffle(labels)
    data = rng.randint(0, 256, size=(len(labels), 3072)).astype(np.uint8)
    for b, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        _dump(folder / f"data_batch_{b}", {
            "batch_label": f"training batch {b} of 5",
            "labels": labels[part].tolist(),
            "data": data[part],
            "filenames": [f"img_{i}.png" for i in part],
        })
    test_labels = np.repeat(np.arange(10), per_class_test)
    _dump(folder / "test_batch", {
        "batch_label": "testing batch 1 of 1",
        "labels": test_labels.tolist(),
        "data": rng.randint(0, 256, size=(len(test_labels), 3072)).astype(np.uint8),
        "filenames": [f"test_{i}.png" for i in range(len(test_labels))],
    })
    _dump(folder / "batches.meta", {"num_cases_per_batch": 10000, "label_names": CIFAR10_NAMES, "num_vis": 3072})
    return Path(root)


def write_cifar100(root: Path, per_class_train: int = 4, per_class_test: int = 1, seed: int = 0) -> Path:
    """Write ``cifar-100-python/{train,test,meta}`` with the official keys; returns ``root``."""
    rng = np.random.RandomState(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, per in (("train", per_class_train), ("test", per_class_test)):
        fine = np.repeat(np.arange(100), per)
        rng.shuffle(fine)
        _dump(folder / name, {
            "filenames": [f"{name}_{i}.png" for i in range(len(fine))],
            "batch_label": f"{name} batch",
            "fine_labels": fine.tolist(),
            "coarse_labels": (fine // 5).tolist(),
            "data": rng.randint(0, 256, size=(len(fine), 3072)).astype(np.uint8),
        })
    _dump(folder / "meta", {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    })
    return Path(root)


def write_cityscapes(root: Path, layout=None, size=(32, 64), seed: int = 0, labels: bool = True) -> Path:
    """Write a Cityscapes tree in the official layout with small PNGs.

    ``layout`` maps split -> {city: number of frames}. Labels are blocky labelId maps
    (values 0..33, so both evaluated and ignored labelIds occur); images are RGB noise
    with a colour per labelId, so image and mask stay in register. Returns ``root``.
    """
    layout = layout or {"train": {"aachen": 3, "bochum": 2}, "val": {"frankfurt": 2}}
    rng = np.random.RandomState(seed)
    h, w = size
    for split, cities in layout.items():
        for city, n in cities.items():
            (Path(root) / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            if labels:
                (Path(root) / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                stem = f"{city}_{i:06d}_{19 + i:06d}"
                blocks = rng.randint(0, 34, size=(h // 8, w // 8)).astype(np.uint8)
                lab = np.kron(blocks, np.ones((8, 8), dtype=np.uint8))
                colours = (np.arange(34)[:, None] * np.array([7, 53, 101])[None, :]) % 256
                img = colours[lab].astype(np.uint8)
                Image.fromarray(img).save(Path(root) / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
                if labels:
                    Image.fromarray(lab).save(
                        Path(root) / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
                    )
    return Path(root)


@pytest.fixture
def cityscapes_root(tmp_path):
    return write_cityscapes(tmp_path / "cityscapes")


#: Colour of every CamVid annotation value 0..11 in the fixture images (11 = unlabelled).
CAMVID_FIXTURE_COLOURS = ((np.arange(12)[:, None] * np.array([23, 71, 113])[None, :]) % 256).astype(np.uint8)


def write_camvid(root: Path, layout=None, size=(24, 32), seed: int = 0, block: int = 8) -> Path:
    """Write a CamVid tree in the SegNet layout with small PNGs.

    ``<root>/<split>/<seq>_<frame>.png`` (RGB) and ``<root>/<split>annot/<same name>``
    (mode L), ``layout`` mapping split -> number of frames (default train 4, val 2,
    test 2). Annotations are blocky maps of random values 0..11 (the first frame of a
    split holds all of them, so 11 = unlabelled occurs);
    every value has its own image colour (:data:`CAMVID_FIXTURE_COLOURS`), so image and
    mask stay in register. Returns ``root``.
    """
    layout = layout or {"train": 4, "val": 2, "test": 2}
    rng = np.random.RandomState(seed)
    h, w = size
    for split, n in layout.items():
        (Path(root) / split).mkdir(parents=True, exist_ok=True)
        (Path(root) / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{'0001TP' if i % 2 == 0 else 'Seq05VD'}_{30 * (i + 1):06d}.png"
            values = rng.randint(0, 12, size=(h // block, w // block)).astype(np.uint8)
            if i == 0:
                values.flat[:12] = np.arange(12, dtype=np.uint8)  # every value occurs in every split
            lab = np.kron(values, np.ones((block, block), dtype=np.uint8))
            Image.fromarray(CAMVID_FIXTURE_COLOURS[lab]).save(Path(root) / split / name)
            Image.fromarray(lab).save(Path(root) / f"{split}annot" / name)
    return Path(root)


@pytest.fixture
def camvid_root(tmp_path):
    return write_camvid(tmp_path / "camvid")


def interior(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose ``(2 radius + 1)``-square neighbourhood (sampled at its corners and
    edge midpoints) holds one label, away from the border: a bool ``(H, W)`` array."""
    inside = np.ones(mask.shape, dtype=bool)
    for dy in (-radius, 0, radius):
        for dx in (-radius, 0, radius):
            inside &= np.roll(np.roll(mask, dy, 0), dx, 1) == mask
    inside[:radius] = inside[-radius:] = False
    inside[:, :radius] = inside[:, -radius:] = False
    return inside


def real_data_dir(sub: str):
    """``<default_data_dir()>/<sub>`` when it exists, else ``None``."""
    root = default_data_dir()
    if root is None:
        return None
    path = Path(root) / sub
    return path if path.is_dir() else None


needs_real_cityscapes = pytest.mark.skipif(
    real_data_dir("cityscapes") is None, reason="real Cityscapes sample not found (set CECO_DATA_DIR)"
)
needs_real_camvid = pytest.mark.skipif(
    real_data_dir("camvid") is None, reason="real CamVid not found (set CECO_DATA_DIR)"
)
needs_real_cifar = pytest.mark.skipif(
    real_data_dir("cifar") is None, reason="real CIFAR sample not found (set CECO_DATA_DIR)"
)
