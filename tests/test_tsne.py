"""Tests of ceco_lite.tsne: class-balanced subsampling, sklearn t-SNE, atomic cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ceco_lite.fileio import load_npz
from ceco_lite.tsne import cached_tsne, tsne_embedding, tsne_many


def _blobs(n_per_class=(40, 25, 8), d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.eye(d)[: len(n_per_class)]
    feats = np.concatenate([c + 0.3 * rng.standard_normal((n, d)) for c, n in zip(centres, n_per_class)])
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    return feats.astype(np.float32), labels.astype(np.int64)


def test_tsne_separates_well_separated_classes():
    """Blobs 8 apart with spread 0.3 stay apart in 2-D, with a margin no thread count can erase.

    Perplexity 5 is below the smallest class (8 points), so every point's neighbourhood
    lies in its own class, and 500 iterations run past sklearn's 250 early-exaggeration
    iterations, after which the clusters have separated: over seeds 0-9 the nearest point
    of another class is at least 5x farther than the nearest point of the same class, and
    the class centroids are at least twice the largest class radius apart.
    """
    feats, labels = _blobs()
    emb = tsne_embedding(feats, perplexity=5, max_iter=500, seed=0)
    assert emb.shape == (len(labels), 2) and emb.dtype == np.float32
    # nearest neighbour in the embedding has the same label (1-NN accuracy, brute force)
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() > 0.95
    # ... with a margin: nearest other-class point >= 2x farther than the nearest same-class point
    same = np.where(labels[:, None] == labels[None], d, np.inf).min(1)
    other = np.where(labels[:, None] != labels[None], d, np.inf).min(1)
    assert np.sqrt(other / same).min() > 2.0
    # and the clusters are disjoint discs: centroids farther apart than the largest class radius
    K = labels.max() + 1
    cent = np.stack([emb[labels == k].mean(0) for k in range(K)])
    radius = max(np.linalg.norm(emb[labels == k] - cent[k], axis=1).max() for k in range(K))
    gap = min(np.linalg.norm(cent[i] - cent[j]) for i in range(K) for j in range(i + 1, K))
    assert gap > radius


def test_tsne_embedding_validates():
    with pytest.raises(ValueError, match="at least 5"):
        tsne_embedding(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        tsne_embedding(np.zeros(10))


def test_cached_tsne_is_computed_once_and_written_atomically(tmp_path):
    feats, labels = _blobs()
    first = cached_tsne(torch.from_numpy(feats), torch.from_numpy(labels), cache_dir=tmp_path,
                        max_per_class=20, perplexity=8, max_iter=250)
    assert first["cached"] is False
    assert np.bincount(first["labels"]).tolist() == [20, 20, 8]
    assert np.array_equal(first["labels"], labels[first["indices"]])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("tsne-") and files[0].endswith(".npz")  # no temp file left
    second = cached_tsne(feats, labels, cache_dir=tmp_path, max_per_class=20, perplexity=8, max_iter=250)
    assert second["cached"] is True
    np.testing.assert_array_equal(second["embedding"], first["embedding"])
    # another parameter -> another cache entry
    third = cached_tsne(feats, labels, cache_dir=tmp_path, max_per_class=10, perplexity=8, max_iter=250)
    assert third["cached"] is False and len(list(tmp_path.iterdir())) == 2


def test_cached_tsne_recovers_from_a_corrupt_cache_file(tmp_path):
    feats, labels = _blobs()
    out = cached_tsne(feats, labels, cache_dir=tmp_path, max_per_class=10, perplexity=5, max_iter=250)
    with open(out["path"], "wb") as fh:
        fh.write(b"not an npz")
    again = cached_tsne(feats, labels, cache_dir=tmp_path, max_per_class=10, perplexity=5, max_iter=250)
    assert again["cached"] is False
    np.testing.assert_allclose(again["embedding"], out["embedding"], atol=1e-5)


def test_cached_tsne_accepts_feature_maps():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, size=(2, 4, 5))
    maps = np.zeros((2, 3, 4, 5), dtype=np.float32)
    for k in range(3):  # one-hot features: the pixel (b, :, i, j) must carry its own label
        maps[:, k][masks == k] = 5.0
    masks[0, 0, 0] = 255
    out = cached_tsne(maps, masks, max_per_class=100, perplexity=3, max_iter=250)
    flat_feats = np.moveaxis(maps, 1, -1).reshape(-1, 3)
    flat_labels = masks.reshape(-1)
    assert 0 not in out["indices"]  # the ignored pixel
    assert np.array_equal(flat_feats[out["indices"]].argmax(1), flat_labels[out["indices"]])
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        cached_tsne(maps, masks.reshape(2, -1))


def test_tsne_many_keys_and_cache(tmp_path):
    feats, labels = _blobs()
    sets = {("base", 1): (feats, labels), ("ceco", 1): (feats * 2, labels)}
    out = tsne_many(sets, cache_dir=tmp_path, max_per_class=10, perplexity=5, max_iter=250)
    assert set(out) == set(sets)
    again = tsne_many(sets, cache_dir=tmp_path, max_per_class=10, perplexity=5, max_iter=250)
    assert all(v["cached"] for v in again.values())


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage_tail"])
def test_cached_tsne_rebuilds_a_damaged_cache_file(tmp_path, damage):
    feats, labels = _blobs()
    kw = dict(cache_dir=tmp_path, max_per_class=10, perplexity=5, max_iter=250)
    out = cached_tsne(feats, labels, **kw)
    path = tmp_path / out["path"].split("/")[-1]
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a bit flipped inside the stored embedding: the zip CRC check fails
        mid = len(good) // 3
        path.write_bytes(good[:mid] + bytes([good[mid] ^ 0xFF]) + good[mid + 1:])
    again = cached_tsne(feats, labels, **kw)
    assert again["cached"] is False and again["path"] == out["path"]
    np.testing.assert_allclose(again["embedding"], out["embedding"], atol=1e-5)
    stored = load_npz(path, ("embedding", "labels", "indices"))  # overwritten with a complete file
    np.testing.assert_array_equal(stored["embedding"], again["embedding"])
    np.testing.assert_array_equal(stored["indices"], again["indices"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left
    assert cached_tsne(feats, labels, **kw)["cached"] is True


def test_tsne_rejects_non_finite_and_non_numeric_features():
    feats, labels = _blobs()
    bad = feats.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="features"):
        tsne_embedding(bad)
    with pytest.raises(TypeError, match="features"):
        tsne_embedding(np.array([["a", "b"]] * 6))
    with pytest.raises(TypeError, match="labels"):
        cached_tsne(feats, labels.astype(np.float64))
    with pytest.raises(ValueError, match="max_per_class"):
        cached_tsne(feats, labels, max_per_class=0)
    with pytest.raises(ValueError, match="perplexity"):
        tsne_embedding(feats, perplexity=0)
