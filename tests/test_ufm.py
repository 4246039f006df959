"""Tests of the unconstrained-features / layer-peeled model (ceco_lite/ufm.py)."""
from __future__ import annotations

import math

import pytest
import torch

from ceco_lite import check_simplex_etf, nc_metrics
from ceco_lite.ufm import minority_class_sizes, minority_collapse_sweep, train_ufm, ufm_objective


def test_minority_class_sizes_two_levels():
    sizes = minority_class_sizes(5, 2, 10.0, n_majority=100.0)
    assert sizes.tolist() == [100.0, 100.0, 100.0, 10.0, 10.0]
    batch = minority_class_sizes(4, 1, [1.0, 4.0])
    assert batch.shape == (2, 4)
    assert batch[1].tolist() == [1000.0, 1000.0, 1000.0, 250.0]


@pytest.mark.parametrize("kwargs, exc", [
    (dict(num_classes=4, num_minority=4, imbalance_ratio=2.0), ValueError),
    (dict(num_classes=4, num_minority=0, imbalance_ratio=2.0), ValueError),
    (dict(num_classes=4, num_minority=1, imbalance_ratio=0.5), ValueError),
    (dict(num_classes=4.0, num_minority=1, imbalance_ratio=2.0), TypeError),
])
def test_minority_class_sizes_rejects_bad_input(kwargs, exc):
    with pytest.raises(exc):
        minority_class_sizes(**kwargs)


def test_one_step_matches_autograd_preconditioned_gradient():
    """One heavy-ball step (momentum 0) equals W - lr dL/dW and H - lr (dL/dH) / c, dL from autograd."""
    sizes = torch.tensor([50.0, 20.0, 5.0, 1.0], dtype=torch.float64)
    kw = dict(samples_per_class=3, seed=3, weight_decay=0.03, feature_decay=0.07, momentum=0.0, lr=0.2)
    start = train_ufm(sizes, 5, steps=0, **kw)
    one = train_ufm(sizes, 5, steps=1, **kw)
    H = start.features.clone().requires_grad_(True)
    Wt = start.classifier.clone().requires_grad_(True)
    loss = ufm_objective(H, Wt, sizes, weight_decay=0.03, feature_decay=0.07)
    gH, gW = torch.autograd.grad(loss, [H, Wt])
    c = (sizes / sizes.sum() / 3)[:, None, None]
    torch.testing.assert_close(one.classifier, start.classifier - 0.2 * gW, rtol=0, atol=1e-13)
    torch.testing.assert_close(one.features, start.features - 0.2 * gH / c, rtol=0, atol=1e-13)
    # the recorded objective is ufm_objective
    assert math.isclose(float(start.loss_history[0]), float(loss.detach()), rel_tol=1e-12)


def test_balanced_model_reaches_neural_collapse():
    K, d = 5, 8
    res = train_ufm(torch.ones(K), d, seed=0)
    assert check_simplex_etf(res.classifier, atol=1e-6)
    means = res.class_means()
    assert check_simplex_etf(means - means.mean(dim=1, keepdim=True), atol=1e-6)
    stats = nc_metrics(res.flat_features(), res.labels, K, classifier=res.classifier)
    assert stats["nc1"] < 1e-10
    assert stats["self_duality"] < 1e-10  # NC3: W aligned with the centred means
    assert stats["ncc_mismatch"] == 0.0
    # the objective decreased and has settled
    assert float(res.loss_history[-1]) < float(res.loss_history[0])
    assert abs(float(res.loss_history[-1] - res.loss_history[-2])) < 1e-10


def test_minority_collapse_grows_with_imbalance_and_fixed_etf_prevents_it():
    ratios = [1.0, 10.0, 100.0, 1000.0]
    K, KB = 6, 3
    learned = minority_collapse_sweep(ratios, K, KB, 8, seed=1, weight_decay=5e-2, feature_decay=5e-2)
    cos = learned["classifier_cosine"]
    assert abs(float(cos[0]) + 1 / (K - 1)) < 1e-6  # balanced: ETF value
    assert bool((cos[1:] > cos[:-1]).all()), cos  # monotone increase with R
    assert float(cos[-1]) > 0.99  # minority collapse
    fixed = minority_collapse_sweep(ratios, K, KB, 8, classifier="fixed_etf", seed=1,
                                    weight_decay=5e-2, feature_decay=5e-2)
    torch.testing.assert_close(fixed["classifier_cosine"], torch.full((4,), -1 / (K - 1), dtype=torch.float64))
    # with a fixed ETF the minority class means stay a simplex ETF at every R
    torch.testing.assert_close(fixed["feature_cosine"], torch.full((4,), -1 / (K - 1), dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_batched_training_equals_one_by_one():
    sizes = minority_class_sizes(4, 2, [1.0, 30.0])
    both = train_ufm(sizes, 4, steps=50, seed=2)
    assert both.batched and both.features.shape == (2, 4, 4, 4)
    for i in range(2):
        single = train_ufm(sizes[i], 4, steps=50, seed=2)
        torch.testing.assert_close(both[i].classifier, single.classifier, rtol=0, atol=1e-12)
        torch.testing.assert_close(both[i].features, single.features, rtol=0, atol=1e-12)
    assert both.loss_steps.tolist() == [0, 10, 20, 30, 40, 50]


def test_float32_and_shapes():
    res = train_ufm([3.0, 2.0, 1.0], 2, steps=20, dtype=torch.float32, samples_per_class=2, seed=0)
    assert res.features.dtype == torch.float32 and res.features.shape == (3, 2, 2)
    assert res.flat_features().shape == (6, 2) and res.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert res.class_means().shape == (2, 3)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(classifier="random"), ValueError),
    (dict(class_sizes=[1.0, 0.0, 2.0]), ValueError),
    (dict(class_sizes=[1.0]), ValueError),
    (dict(dim=0), ValueError),
    (dict(dim=1, classifier="fixed_etf"), ValueError),
    (dict(momentum=1.0), ValueError),
    (dict(seed=1, generator=torch.Generator()), ValueError),
    (dict(steps=2.5), TypeError),
])
def test_train_ufm_rejects_bad_input(kwargs, exc):
    args = dict(class_sizes=[1.0, 1.0, 1.0], dim=4)
    args.update(kwargs)
    with pytest.raises(exc):
        train_ufm(args.pop("class_sizes"), args.pop("dim"), **args)


def test_cpu_threads_restored_and_validated():
    before = torch.get_num_threads()
    train_ufm([1.0, 2.0], 2, steps=3, cpu_threads=1)
    train_ufm([1.0, 2.0], 2, steps=3, cpu_threads=None)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        train_ufm([1.0, 2.0], 2, steps=3, cpu_threads=0)


def test_non_numeric_and_bad_device_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="class_sizes"):
        train_ufm("abc", 3)
    with pytest.raises(TypeError, match="imbalance_ratio"):
        minority_class_sizes(4, 1, "x")
    with pytest.raises(TypeError, match="imbalance_ratios"):
        minority_collapse_sweep("x", 4, 2, 3, steps=2)
    with pytest.raises(ValueError, match="device"):
        train_ufm([1.0, 2.0], 2, steps=2, device="nope")
    with pytest.raises(TypeError, match="features"):
        ufm_objective([[1.0]], torch.randn(5, 3), [1, 2, 3], weight_decay=0.1, feature_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        ufm_objective(torch.randn(3, 2, 4), torch.randn(4, 3), [1, 2, 3], weight_decay=-1.0, feature_decay=0.1)
