"""Long-tailed CIFAR (data_utils.cifar_lt), LDAM-DRW convention of docs/conventions.md, section cifar-lt."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest_data import needs_real_cifar, real_data_dir, write_cifar10, write_cifar100
from data_utils import CIFAR10LT, CIFAR100LT, cifar_lt_counts


def test_published_counts():
    c10 = cifar_lt_counts(5000, 10, 100)
    assert c10 == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(c10) == 12406
    c100 = cifar_lt_counts(500, 100, 100)
    assert c100[0] == 500 and c100[-1] == 5 and sum(c100) == 10847
    assert all(a >= b for a, b in zip(c100, c100[1:]))
    # IF 1 keeps everything; IF 10 / 50 as in the LDAM-DRW tables
    assert cifar_lt_counts(5000, 10, 1) == [5000] * 10
    assert cifar_lt_counts(5000, 10, 10)[-1] == 500
    assert cifar_lt_counts(500, 100, 50)[-1] == 10


def test_step_profile():
    assert cifar_lt_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert cifar_lt_counts(500, 100, 10, "step") == [500] * 50 + [50] * 50


def test_counts_bad_input():
    with pytest.raises(ValueError, match="imbalance_factor"):
        cifar_lt_counts(5000, 10, 0.5)
    with pytest.raises(ValueError, match="num_classes"):
        cifar_lt_counts(5000, 1, 10)
    with pytest.raises(ValueError, match="n_max"):
        cifar_lt_counts(0, 10, 10)
    with pytest.raises(ValueError, match="profile"):
        cifar_lt_counts(5000, 10, 10, "linear")


def _ldam_reference(folder: Path, n_max: int, imb: float):
    """LDAM-DRW's IMBALANCECIFAR10.gen_imbalanced_data, written out independently
    (global numpy seed 0, one shuffle per class in class order)."""
    data, targets = [], []
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data.append(entry["data"])
        targets.extend(entry["labels"])
    data = np.vstack(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    targets = np.array(targets, dtype=np.int64)
    counts = [int(n_max * ((1.0 / imb) ** (i / (10 - 1.0)))) for i in range(10)]
    state = np.random.get_state()
    try:
        np.random.seed(0)
        new_data, new_targets = [], []
        for c, n in zip(np.unique(targets), counts):
            idx = np.where(targets == c)[0]
            np.random.shuffle(idx)
            new_data.append(data[idx[:n]])
            new_targets.extend([c] * n)
    finally:
        np.random.set_state(state)
    return np.vstack(new_data), new_targets, counts


def test_cifar10_lt_matches_ldam_reference(tmp_path):
    per_class = [40, 43, 37, 45, 50, 41, 39, 44, 48, 42]
    root = write_cifar10(tmp_path, per_class)
    with pytest.warns(UserWarning, match="checksums"):
        ds = CIFAR10LT(root, imbalance_factor=10, verify_checksums=False)
    assert ds.available_per_class == per_class
    n_max = min(per_class)  # n_max taken from what is there
    ref_data, ref_targets, ref_counts = _ldam_reference(root / "cifar-10-batches-py", n_max, 10)
    assert ds.num_per_class == ref_counts == cifar_lt_counts(37, 10, 10)
    assert ds.get_cls_num_list() == ref_counts
    assert np.array_equal(ds.data, ref_data)
    assert ds.targets == ref_targets
    assert np.bincount(ds.targets, minlength=10).tolist() == ref_counts
    image, target = ds[0]
    assert image.size == (32, 32) and target == 0
    x, y = ds.tensors()
    assert x.shape == (len(ds), 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.max()) <= 1.0
    raw, y_raw = ds.tensors(raw=True)  # the stored pixels, channel-first
    assert raw.dtype == torch.uint8 and raw.is_contiguous() and torch.equal(y_raw, y)
    assert torch.equal(raw, torch.from_numpy(ds.data).permute(0, 3, 1, 2))
    assert torch.equal(raw.float().div_(255.0), x)
    # a different seed picks different images, same counts
    with pytest.warns(UserWarning):
        other = CIFAR10LT(root, imbalance_factor=10, verify_checksums=False, seed=1)
    assert other.num_per_class == ds.num_per_class and not np.array_equal(other.data, ds.data)


def test_cifar10_test_split_stays_balanced_and_step(tmp_path):
    root = write_cifar10(tmp_path, [30] * 10, per_class_test=4)
    with pytest.warns(UserWarning):
        test = CIFAR10LT(root, train=False, imbalance_factor=100, verify_checksums=False)
    assert len(test) == 40 and test.num_per_class == [4] * 10
    with pytest.warns(UserWarning):
        step = CIFAR10LT(root, imbalance_factor=10, profile="step", verify_checksums=False)
    assert step.num_per_class == [30] * 5 + [3] * 5
    with pytest.warns(UserWarning):
        explicit = CIFAR10LT(root, imbalance_factor=10, n_max=20, verify_checksums=False)
    assert explicit.num_per_class == cifar_lt_counts(20, 10, 10)


def test_cifar100_lt(tmp_path):
    root = write_cifar100(tmp_path, per_class_train=6)
    with pytest.warns(UserWarning, match="checksums"):
        ds = CIFAR100LT(root, imbalance_factor=6, verify_checksums=False)
    assert ds.num_per_class == cifar_lt_counts(6, 100, 6)
    assert np.bincount(ds.targets, minlength=100).tolist() == ds.num_per_class
    assert len(ds.classes) == 100


def test_checksums_verified_by_default_and_missing_data(tmp_path):
    root = write_cifar10(tmp_path / "a", [10] * 10)
    with pytest.raises(RuntimeError, match="verify_checksums=False"):
        CIFAR10LT(root)
    with pytest.raises(RuntimeError, match="cifar-10-batches-py"):
        CIFAR10LT(tmp_path / "empty")
    with pytest.raises(RuntimeError, match="cifar-100-python"):
        CIFAR100LT(tmp_path / "empty", verify_checksums=False)


def test_bad_arguments(tmp_path):
    root = write_cifar10(tmp_path, [10] * 10)
    with pytest.raises(ValueError, match="imbalance_factor"):
        CIFAR10LT(root, imbalance_factor=0.9, verify_checksums=False)
    with pytest.raises(ValueError, match="profile"):
        CIFAR10LT(root, profile="cosine", verify_checksums=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="n_max"):
            CIFAR10LT(root, n_max=11, verify_checksums=False)


@needs_real_cifar
def test_real_truncated_cifar10():
    root = real_data_dir("cifar")
    with pytest.raises(RuntimeError):
        CIFAR10LT(root)  # the truncated files fail the official checksums
    with pytest.warns(UserWarning, match="checksums"):
        ds = CIFAR10LT(root, imbalance_factor=100, verify_checksums=False)
    n_max = min(ds.available_per_class)
    assert 400 < n_max < 600  # README: about 540 per class
    assert ds.num_per_class == cifar_lt_counts(n_max, 10, 100)
    assert np.bincount(ds.targets, minlength=10).tolist() == ds.num_per_class
    assert ds.classes[0] == "airplane"
    ref_data, ref_targets, _ = _ldam_reference(Path(root) / "cifar-10-batches-py", n_max, 100)
    assert np.array_equal(ds.data, ref_data) and ds.targets == ref_targets
    with pytest.warns(UserWarning):
        test = CIFAR10LT(None, train=False, verify_checksums=False)  # root=None: default_data_dir()/cifar
    assert len(test) == 1017


@needs_real_cifar
def test_real_truncated_cifar100_loads():
    with pytest.warns(UserWarning):
        ds = CIFAR100LT(real_data_dir("cifar"), imbalance_factor=2, verify_checksums=False)
    assert sum(ds.available_per_class) == 1117
    assert ds.num_per_class == cifar_lt_counts(min(ds.available_per_class), 100, 2)


@pytest.mark.parametrize("damage", ["half", "empty", "not_a_pickle", "labels_short"])
def test_corrupt_source_file_is_named(tmp_path, damage):
    from ceco_lite.fileio import CorruptFileError

    root = write_cifar10(tmp_path, [20] * 10)
    path = root / "cifar-10-batches-py" / "data_batch_3"
    raw = path.read_bytes()
    if damage == "half":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not_a_pickle":
        path.write_bytes(b"these are not the images you are looking for" * 10)
    else:
        entry = pickle.loads(raw, encoding="latin1")
        entry["labels"] = entry["labels"][:-1]
        path.write_bytes(pickle.dumps(entry))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorruptFileError, match="data_batch_3") as info:
            CIFAR10LT(root, verify_checksums=False)
    assert info.value.path == path
    # with checksums verified the md5 test fails first, and its message names the file too
    with pytest.raises(RuntimeError, match="data_batch_3.*verify_checksums=False"):
        CIFAR10LT(root)


def test_corrupt_metadata_file_is_named(tmp_path):
    from ceco_lite.fileio import CorruptFileError

    root = write_cifar100(tmp_path)
    meta = root / "cifar-100-python" / "meta"
    meta.write_bytes(meta.read_bytes()[:7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorruptFileError, match="meta"):
            CIFAR100LT(root, verify_checksums=False)
