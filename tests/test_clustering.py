"""Tests of ceco_lite.clustering (IDDC clustering demo of lesson 6)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ceco_lite.clustering import affinity_clustering_loss, imbalanced_blobs, train_clustering_head


def test_imbalanced_blobs_sizes_follow_the_long_tail_profile():
    X, y, sizes = imbalanced_blobs(5, 16.0, n_max=160, dim=4, seed=1)
    expected = [int(160 * 16.0 ** (-i / 4)) for i in range(5)]  # n_i = n_max IF^(-i/(C-1))
    assert sizes.tolist() == expected == [160, 80, 40, 20, 10]
    assert X.shape == (sum(expected), 4) and X.dtype == torch.float32
    assert np.bincount(y.numpy()).tolist() == expected
    with pytest.raises(ValueError, match="num_clusters"):
        imbalanced_blobs(1, 2.0)
    with pytest.raises(ValueError, match="imbalance_factor"):
        imbalanced_blobs(3, 0.5)


def test_affinity_loss_matches_a_loop():
    torch.manual_seed(0)
    feats = torch.randn(7, 3, dtype=torch.float64)
    probs = torch.randn(7, 4, dtype=torch.float64).softmax(1)
    l_pos, l_neg = affinity_clustering_loss(feats, probs, shift=0.3, shift_neg=-0.1)
    pos, neg = [], []
    for i in range(7):
        for j in range(7):
            f = float(F.cosine_similarity(feats[i], feats[j], dim=0))
            c = float(probs[i] @ probs[j])
            if f > 0.3:
                pos.append(np.exp(1 - c) * max(f, 1e-8))
            if f < -0.1:
                neg.append(np.exp(c) * (1 - max(f, 0.0)))
    assert float(l_pos) == pytest.approx(np.mean(pos), rel=1e-10)
    assert float(l_neg) == pytest.approx(np.mean(neg), rel=1e-10)
    with pytest.raises(ValueError, match="same B"):
        affinity_clustering_loss(feats, probs[:3])


def test_affinity_loss_prefers_codes_that_follow_the_features():
    X, y, _ = imbalanced_blobs(3, 1.0, n_max=20, dim=5, seed=0)
    good = F.one_hot(y, 3).double() * 0.98 + 0.01
    bad = good[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert sum(affinity_clustering_loss(X, good)) < sum(affinity_clustering_loss(X, bad))


def test_weibull_keeps_clusters_non_empty_and_imbalanced():
    """The lesson's claim at one setting: no prior leaves clusters empty, the uniform
    prior equalises sizes, the Weibull prior keeps all clusters and the imbalance."""
    X, y, true = imbalanced_blobs(6, 30.0, n_max=150, dim=12, seed=0)
    res = {p: train_clustering_head(X, 6, prior=p, prior_weight=w, labels=y, steps=100, batch_size=128, seed=0)
           for p, w in (("none", 0.0), ("uniform", 1.0), ("weibull", 0.5))}
    for r in res.values():
        assert r.cluster_sizes.sum() == len(y) and len(r.loss_history) == 100
        assert 0 <= r.size_distance <= 1 and 0 <= r.matched_accuracy <= 1
    assert res["weibull"].num_empty == 0 and res["uniform"].num_empty == 0
    assert res["none"].num_empty >= 1
    assert res["weibull"].size_distance < res["uniform"].size_distance
    assert res["weibull"].matched_accuracy > res["uniform"].matched_accuracy
    # uniform prior: the sorted sizes are flatter than the truth
    u = res["uniform"].sorted_sizes()
    assert u[0] / max(u[-1], 1) < true[0] / true[-1]


def test_train_clustering_head_is_deterministic_and_validates():
    X, y, _ = imbalanced_blobs(3, 5.0, n_max=40, dim=4, seed=2)
    a = train_clustering_head(X, 3, steps=20, seed=5)
    b = train_clustering_head(X, 3, steps=20, seed=5)
    assert np.array_equal(a.assignments, b.assignments) and a.loss_history == b.loss_history
    assert a.matched_accuracy is None and a.true_sizes is None
    state = torch.random.get_rng_state()
    train_clustering_head(X, 3, steps=2, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    with pytest.raises(ValueError, match="prior"):
        train_clustering_head(X, 3, prior="entropy")
    with pytest.raises(ValueError, match="prior_weight"):
        train_clustering_head(X, 3, prior_weight=-1.0)
    with pytest.raises(ValueError, match="labels"):
        train_clustering_head(X, 3, labels=y[:-1])
    with pytest.raises(ValueError, match="num_clusters"):
        train_clustering_head(X, 1)


def test_bad_inputs_are_clear_errors():
    X, y, _ = imbalanced_blobs(3, 2.0, n_max=20, dim=4, seed=0)
    with pytest.raises(ValueError, match="labels must be non-negative"):
        train_clustering_head(X, 3, labels=y - 1, steps=2)
    with pytest.raises(ValueError, match="features contain non-finite"):
        train_clustering_head(X * float("nan"), 3, steps=2)
    with pytest.raises(TypeError, match="features"):
        train_clustering_head(X.long(), 3, steps=2)
    with pytest.raises(TypeError, match="features"):
        affinity_clustering_loss([[1.0]], torch.rand(1, 2))
    with pytest.raises(ValueError, match="dim"):
        imbalanced_blobs(3, 2.0, dim=0)
    with pytest.raises(TypeError, match="seed"):
        imbalanced_blobs(3, 2.0, seed=0.5)
