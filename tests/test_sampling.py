"""Tests of ceco_lite.sampling.sample_per_class, the one per-class sampler
(In2NeCT's pixel sampling, the t-SNE subsample)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ceco_lite.sampling import sample_per_class


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sample_per_class():
    lab = torch.tensor([0] * 50 + [1] * 3 + [2] * 20 + [255] * 10)
    lab = lab[torch.randperm(len(lab), generator=torch.Generator().manual_seed(0))]
    idx = sample_per_class(lab, 10, generator=_gen(1))
    picked = lab[idx]
    assert torch.bincount(picked, minlength=4).tolist() == [10, 3, 10, 0]
    assert len(set(idx.tolist())) == len(idx)  # without replacement
    assert (picked[:-1] <= picked[1:]).all()  # grouped by class
    again = sample_per_class(lab, 10, generator=_gen(1))
    assert torch.equal(idx, again)
    other = sample_per_class(lab, 10, generator=_gen(2))
    assert not torch.equal(idx, other)
    assert sorted(sample_per_class(lab, None).tolist()) == sorted(torch.nonzero(lab != 255).flatten().tolist())
    # every pixel of class 0 can be drawn (uniform, not the first ones)
    seen = set()
    for s in range(60):
        seen |= set(sample_per_class(lab, 10, generator=_gen(s)).tolist())
    assert seen >= set(torch.nonzero(lab == 0).flatten().tolist())


def test_sample_per_class_matches_bruteforce_caps_on_numpy_labels():
    rng = np.random.default_rng(1)
    labels = rng.choice([0, 1, 2, 5, 255], size=500, p=[0.6, 0.2, 0.1, 0.05, 0.05])
    idx = np.sort(sample_per_class(labels, 30, generator=_gen(3)).numpy())
    kept = labels[idx]
    assert np.all(np.diff(idx) > 0)  # unique
    assert 255 not in kept
    for k in (0, 1, 2, 5):  # brute force: min(count, cap) per class
        assert (kept == k).sum() == min((labels == k).sum(), 30)
    # deterministic for a seed, different for another
    assert np.array_equal(idx, np.sort(sample_per_class(labels, 30, generator=_gen(3)).numpy()))
    assert not np.array_equal(idx, np.sort(sample_per_class(labels, 30, generator=_gen(4)).numpy()))


def test_sample_per_class_is_uniform_within_a_class():
    """Each of the 6 pixels of a class is drawn with probability 2/6 (chi-square-free check)."""
    lab = torch.tensor([3] * 6 + [255] * 4)
    hits = torch.zeros(10)
    trials = 3000
    gen = _gen(5)
    for _ in range(trials):
        hits[sample_per_class(lab, 2, generator=gen)] += 1
    assert hits[6:].sum() == 0
    freq = hits[:6] / trials
    assert torch.all((freq - 2 / 6).abs() < 0.04), freq


def test_sample_per_class_image_labels_and_ignore_none():
    lab = torch.tensor([[[0, 1], [255, 1]], [[0, 0], [1, 255]]])
    idx = sample_per_class(lab, None, ignore_index=None)
    assert sorted(idx.tolist()) == list(range(8))
    assert lab.reshape(-1)[idx].tolist() == sorted(lab.reshape(-1).tolist())
    idx = sample_per_class(lab, 1, ignore_index=255, generator=_gen(0))
    assert lab.reshape(-1)[idx].tolist() == [0, 1]


def test_sample_per_class_empty_and_all_ignored():
    assert sample_per_class(torch.zeros(0, dtype=torch.long), 3).numel() == 0
    assert sample_per_class(torch.full((4,), 255), 3, generator=_gen(0)).numel() == 0


def test_sample_per_class_rejects_bad_input():
    with pytest.raises(ValueError, match="max_per_class"):
        sample_per_class(np.zeros(5, dtype=int), 0)
    with pytest.raises(TypeError, match="labels"):
        sample_per_class(torch.zeros(5), 2)
    with pytest.raises(TypeError, match="generator"):
        sample_per_class(torch.zeros(5, dtype=torch.long), 2, generator=3)
    with pytest.raises(ValueError, match="labels"):
        sample_per_class(torch.tensor([0, -2, 1]), 2)
    with pytest.raises(TypeError, match="ignore_index"):
        sample_per_class(torch.tensor([0, 1]), 2, ignore_index=2.5)
