"""Imbalance statistics (data_utils.stats): pixel vs centre IF, thirds, Pearson."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_data import needs_real_cityscapes, real_data_dir
from data_utils import SyntheticSegmentation, imbalance_stats, make_synthetic_segmentation
from data_utils.stats import head_common_tail, main, pearson, per_image_class_counts


def _brute_force(masks, K, batch_size=None, ignore=255):
    """Loop over images and classes: counts, centres per image / per batch."""
    masks = np.asarray(masks)
    pixel = np.zeros(K, dtype=np.int64)
    present = np.zeros((len(masks), K), dtype=bool)
    for i, m in enumerate(masks):
        for k in range(K):
            n = int(np.sum(m == k))
            pixel[k] += n
            present[i, k] = n > 0
    if batch_size is None:
        centres = present.sum(0)
    else:
        centres = np.zeros(K, dtype=np.int64)
        for start in range(0, len(masks), batch_size):
            centres += present[start:start + batch_size].any(0)
    return pixel, centres


def test_counts_and_factors_against_loops():
    rng = np.random.RandomState(0)
    K = 6
    masks = rng.choice([0, 0, 0, 1, 1, 2, 3, 255], size=(7, 9, 11))
    masks[3, :2, :2] = 5  # class 5 only in image 3; class 4 absent everywhere
    stats = imbalance_stats(torch.from_numpy(masks), K)
    pixel, centres = _brute_force(masks, K)
    assert np.array_equal(stats["pixel_counts"], pixel)
    assert np.array_equal(stats["center_counts"], centres)
    present = pixel > 0
    assert stats["pixel_if"] == pytest.approx(pixel[present].max() / pixel[present].min())
    assert stats["center_if"] == pytest.approx(centres[present].max() / centres[present].min())
    assert stats["num_ignored"] == int((masks == 255).sum())
    assert stats["num_pixels"] == int(pixel.sum())
    assert np.allclose(stats["pixel_freq"], pixel / pixel.sum())
    assert stats["absent"].tolist() == [4]
    for b in (2, 3, 7, 10):
        by_batch = imbalance_stats(masks, K, batch_size=b)
        _, centres_b = _brute_force(masks, K, batch_size=b)
        assert np.array_equal(by_batch["center_counts"], centres_b)
    per_image = per_image_class_counts(masks, K)
    assert per_image.shape == (7, K)
    assert per_image[3, 5] == 4 and per_image[:, 4].sum() == 0


def test_streaming_inputs_match_tensor():
    images, masks = make_synthetic_segmentation(12, 5, 16, 20, seed=0, ignore_region=True)
    ref = imbalance_stats(masks, 5)
    as_list = imbalance_stats([m for m in masks], 5)
    as_batches = imbalance_stats([masks[:5], masks[5:]], 5)
    as_pairs = imbalance_stats(zip(images, masks), 5)
    ds = SyntheticSegmentation(12, 5, 16, 20, seed=0, block_size=12, ignore_region=True)
    for other in (as_list, as_batches, as_pairs):
        assert np.array_equal(other["pixel_counts"], ref["pixel_counts"])
        assert np.array_equal(other["center_counts"], ref["center_counts"])
        assert other["num_images"] == 12
    as_dataset = imbalance_stats(ds, 5)  # iterates the map-style Dataset
    ref_ds = imbalance_stats(ds.tensors()[1], 5)
    assert np.array_equal(as_dataset["pixel_counts"], ref_ds["pixel_counts"])
    assert np.array_equal(as_dataset["center_counts"], ref_ds["center_counts"])


def test_head_common_tail_thirds():
    counts = np.array([5, 100, 0, 30, 7, 60, 1, 2])
    split = head_common_tail(counts)
    # 7 present classes by decreasing frequency: 1, 5, 3, 4, 0, 7, 6
    assert split["head"].tolist() == [1, 5, 3]
    assert split["common"].tolist() == [4, 0]
    assert split["tail"].tolist() == [7, 6]
    assert split["absent"].tolist() == [2]


def test_pearson_against_numpy_and_accuracy_path():
    rng = np.random.RandomState(1)
    a, f = rng.rand(12), rng.rand(12)
    assert pearson(a, f) == pytest.approx(np.corrcoef(a, f)[0, 1], abs=1e-12)
    assert pearson(a, 3 * a + 1) == pytest.approx(1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    masks = np.zeros((4, 4, 4), dtype=np.int64)
    masks[0, 0, :3] = 1
    masks[1, 0, :1] = 2
    masks[2, 1, :] = 2
    masks[3, 2, 0] = 3
    acc = np.array([0.9, 0.5, 0.4, 0.1])
    stats = imbalance_stats(masks, 4, accuracy=acc)
    pc, cc = stats["pixel_counts"], stats["center_counts"]
    assert stats["pearson_pixel"] == pytest.approx(np.corrcoef(acc, pc / pc.max())[0, 1])
    assert stats["pearson_center"] == pytest.approx(np.corrcoef(acc, cc / cc.max())[0, 1])


def test_bad_input():
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="num_classes"):
        imbalance_stats(masks, 1)
    bad = masks.clone()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match="outside 0..4"):
        imbalance_stats(bad, 5)
    with pytest.raises(TypeError, match="integer"):
        imbalance_stats(masks.float(), 5)
    with pytest.raises(ValueError, match="batch_size"):
        imbalance_stats(masks, 5, batch_size=0)
    with pytest.raises(ValueError, match="accuracy"):
        imbalance_stats(masks, 5, accuracy=[0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        imbalance_stats([], 5)
    with pytest.raises(ValueError, match="shape"):
        imbalance_stats(torch.zeros(2, 2, 2, 2, dtype=torch.long), 5)


def test_synthetic_pixel_if_exceeds_centre_if():
    _, masks = make_synthetic_segmentation(200, 10, 32, 300, seed=0)
    stats = imbalance_stats(masks, 10)
    assert stats["pixel_if"] > 5 * stats["center_if"] > 5
    assert stats["head"].tolist() == [0, 1, 2, 3] and stats["tail"].tolist() == [7, 8, 9]
    # centres per batch of 8 relieve the imbalance further (CeCo computes centres per batch)
    assert imbalance_stats(masks, 10, batch_size=8)["center_if"] < stats["center_if"]


@needs_real_cityscapes
def test_real_cityscapes_pixel_vs_centre(tmp_path):
    from PIL import Image

    from data_utils import CityscapesSubset
    from data_utils.cityscapes import LABEL_ID_TO_TRAIN_ID

    ds = CityscapesSubset(real_data_dir("cityscapes"), "val", size=(64, 128), cache_dir=tmp_path, num_images=4)
    stats = imbalance_stats((ds.load_mask(i) for i in range(len(ds))), 19)
    # independent count straight from the PNGs, resized by nearest neighbour
    ref = np.zeros(19, dtype=np.int64)
    for path in ds.targets:
        lab = np.array(Image.open(path).resize((128, 64), Image.NEAREST))
        t = LABEL_ID_TO_TRAIN_ID[lab]
        ref += np.bincount(t[t != 255], minlength=19)[:19]
    assert np.array_equal(stats["pixel_counts"], ref)
    assert stats["num_images"] == 4
    assert stats["pixel_if"] > 10 * stats["center_if"]


def test_report_prints_both_factors(capsys, tmp_path):
    main(["--synthetic-images", "60", "--synthetic-classes", "6", "--synthetic-if", "50",
          "--size", "32", "64", "--cache-dir", str(tmp_path), "--data-dir", str(tmp_path / "none")])
    out = capsys.readouterr().out
    _, masks = make_synthetic_segmentation(60, 6, 32, 50, seed=0)
    stats = imbalance_stats(masks, 6)
    assert f"pixel IF {stats['pixel_if']:.1f}" in out and f"centre IF per image {stats['center_if']:.1f}" in out
    assert "not found" in out  # no Cityscapes under the given data dir


def test_ignore_index_is_checked_against_the_classes():
    masks = torch.randint(0, 4, (3, 5, 5), generator=torch.Generator().manual_seed(0))
    # an ignore index that is a class would silently drop it: rejected, as everywhere else
    for fn in (lambda: imbalance_stats(masks, 4, ignore_index=2), lambda: per_image_class_counts(masks, 4, ignore_index=2)):
        with pytest.raises(ValueError, match="ignore_index"):
            fn()
    with pytest.raises(TypeError, match="ignore_index"):
        imbalance_stats(masks, 4, ignore_index=2.5)
    # None: every label is a class; a negative ignore index works like 255
    none = imbalance_stats(masks, 4, ignore_index=None)
    assert none["num_pixels"] == 75 and none["num_ignored"] == 0
    shifted = torch.where(masks == 3, -1, masks)
    st = imbalance_stats(shifted, 4, ignore_index=-1)
    pixel, _ = _brute_force(shifted.numpy(), 4, ignore=-1)
    assert st["pixel_counts"].tolist() == pixel.tolist() and st["pixel_counts"][3] == 0
    assert st["num_ignored"] == int((masks == 3).sum())


def test_empty_batches_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        imbalance_stats(torch.zeros(0, 5, 5, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="empty"):
        imbalance_stats([torch.zeros(0, 5, 5, dtype=torch.long)], 4)
    assert per_image_class_counts(torch.zeros(0, 5, 5, dtype=torch.long), 4).shape == (0, 4)
    # images without pixels are images: no class present, IF undefined
    st = imbalance_stats(torch.zeros(2, 0, 0, dtype=torch.long), 4)
    assert st["num_images"] == 2 and st["num_pixels"] == 0 and np.isnan(st["pixel_if"])


def test_non_numeric_inputs_are_clear_errors():
    masks = torch.zeros(2, 2, 2, dtype=torch.long)
    with pytest.raises(TypeError, match="accuracy"):
        imbalance_stats(masks, 3, accuracy="abc")
    with pytest.raises(ValueError, match="pixel_counts"):
        head_common_tail([[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="a must"):
        pearson("ab", "cd")
    with pytest.raises(ValueError, match="masks must have shape"):
        per_image_class_counts(torch.zeros(2, 2, 2, 2, dtype=torch.long), 3)
