"""Tests of ceco_lite.tsne: class-balanced subsampling, sklearn t-SNE, atomic cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ceco_lite.tsne import cached_tsne, tsne_embedding, tsne_many


def _blobs(n_per_class=(40, 25, 8), d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.eye(d)[: len(n_per_class)]
    feats = np.concatenate([c + 0.3 * rng.standard_normal((n, d)) for c, n in zip(centres, n_per_class)])
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    return feats.astype(np.float32), labels.astype(np.int64)


def test_tsne_separates_well_separated_classes():
    feats, labels = _blobs()
    emb = tsne_embedding(feats, perplexity=10, max_iter=250, seed=0)
    assert emb.shape == (len(labels), 2) and emb.dtype == np.float32
    # nearest neighbour in the embedding has the same label (1-NN accuracy, brute force)
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() > 0.95


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
