"""Synthetic imbalanced segmentation generator (data_utils.synthetic)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data_utils import SyntheticSegmentation, make_synthetic_segmentation
from data_utils.synthetic import palette, synthetic_class_structure, target_pixel_frequencies


def _pixel_counts(masks, K):
    m = masks[masks != 255]
    return torch.bincount(m.reshape(-1), minlength=K).double()


def test_shapes_dtypes_range_and_determinism():
    images, masks = make_synthetic_segmentation(6, 5, (24, 40), 10, seed=3)
    assert images.shape == (6, 3, 24, 40) and images.dtype == torch.float32
    assert masks.shape == (6, 24, 40) and masks.dtype == torch.int64
    assert images.min() >= 0 and images.max() <= 1
    assert set(masks.unique().tolist()) <= set(range(5))
    images2, masks2 = make_synthetic_segmentation(6, 5, (24, 40), 10, seed=3)
    assert torch.equal(images, images2) and torch.equal(masks, masks2)
    images3, masks3 = make_synthetic_segmentation(6, 5, (24, 40), 10, seed=4)
    assert not torch.equal(masks, masks3)
    g = torch.Generator().manual_seed(3)
    _, masks4 = make_synthetic_segmentation(6, 5, (24, 40), 10, generator=g)
    assert torch.equal(masks, masks4)


@pytest.mark.parametrize("num_classes", [5, 19])
@pytest.mark.parametrize("imbalance_factor", [1, 2, 10, 100, 373, 1000])
def test_pixel_imbalance_factor_follows_request(num_classes, imbalance_factor):
    # issue: measured pixel IF within ±25 % of the request over 500 images, IF 1..1000
    _, masks = make_synthetic_segmentation(500, num_classes, 32, imbalance_factor, seed=11)
    counts = _pixel_counts(masks, num_classes)
    assert (counts > 0).all()
    measured = float(counts.max() / counts.min())
    assert abs(measured / imbalance_factor - 1) <= 0.25, measured
    # the whole profile, not only its ends: n_k ∝ IF^(-k/(K-1))
    target = torch.as_tensor(target_pixel_frequencies(num_classes, imbalance_factor))
    rel = counts / counts.sum() / target
    assert (rel - 1).abs().max() < 0.25, rel


def test_step_profile_and_ignore_region():
    _, masks = make_synthetic_segmentation(500, 6, 32, 50, seed=2, profile="step", ignore_region=True)
    ignored = (masks == 255).double().mean().item()
    assert 0.05 < ignored < 0.15  # default ignore_fraction 0.1
    counts = _pixel_counts(masks, 6)
    # step: first K//2 classes share n_max, the rest n_max / IF
    assert abs(float(counts[:3].mean() / counts[3:].mean()) / 50 - 1) < 0.25
    assert (counts[:3].max() / counts[:3].min()) < 1.1
    _, masks = make_synthetic_segmentation(20, 6, 32, 50, seed=2)
    assert not (masks == 255).any()


def test_centre_imbalance_follows_presence_exponent():
    K, IF = 10, 400.0
    _, masks = make_synthetic_segmentation(400, K, 16, IF, seed=0)
    present = torch.stack([(masks == k).flatten(1).any(1) for k in range(K)], 1).sum(0).double()
    centre_if = float(present.max() / present.min())
    assert abs(centre_if / IF ** 0.5 - 1) < 0.2  # default exponent 0.5: centre IF ≈ sqrt(pixel IF)
    _, masks = make_synthetic_segmentation(50, K, 32, 10, seed=0, presence_exponent=0.0)
    assert all(bool((masks == k).flatten(1).any(1).all()) for k in range(K))


def test_regions_are_spatially_coherent():
    _, masks = make_synthetic_segmentation(100, 10, 32, 10, seed=1)
    same = 0.5 * ((masks[:, :, 1:] == masks[:, :, :-1]).double().mean() + (masks[:, 1:] == masks[:, :-1]).double().mean())
    freq = _pixel_counts(masks, 10) / masks.numel()
    chance = float((freq ** 2).sum())  # what i.i.d. pixels with these frequencies would give
    assert same > 0.8 and chance < 0.3


def _parent_share_of_boundary(masks, K):
    parent = torch.as_tensor(synthetic_class_structure(K)["parent"])
    shares = []
    for k in torch.nonzero(parent >= 0).squeeze(1).tolist():
        neighbours = []
        for a, b in ((masks[:, :, :-1], masks[:, :, 1:]), (masks[:, :-1], masks[:, 1:])):
            neighbours += [b[(a == k) & (b != k)], a[(b == k) & (a != k)]]
        nb = torch.cat(neighbours)
        shares.append((nb == parent[k]).double().mean().item())
    return float(np.mean(shares))


def test_context_strength_controls_contextual_correlation():
    K = 10
    share = {c: _parent_share_of_boundary(make_synthetic_segmentation(300, K, 32, 100, seed=0, context_strength=c)[1], K)
             for c in (0.0, 1.0)}
    # with context, minor classes sit inside/next to their parent head class
    assert share[1.0] > 0.5
    assert share[0.0] < 0.3
    structure = synthetic_class_structure(K)
    # consecutive tail classes have different parents, so context can tell them apart
    tail_parents = structure["parent"][structure["tail"]]
    assert len(set(tail_parents.tolist())) == len(tail_parents)


def test_appearance_overlap_makes_minor_classes_look_alike():
    K = 10
    s = synthetic_class_structure(K)

    def spread(overlap):
        images, masks = make_synthetic_segmentation(100, K, 32, 100, seed=0, appearance_overlap=overlap)
        x = images.permute(0, 2, 3, 1).reshape(-1, 3)
        y = masks.reshape(-1)
        mu = torch.stack([x[y == k].mean(0) for k in range(K)])
        d = torch.cdist(mu, mu)
        pairs = lambda idx: d[np.ix_(idx, idx)][np.triu_indices(len(idx), 1)].mean().item()  # noqa: E731
        return pairs(s["head"]), pairs(s["tail"])

    head0, tail0 = spread(0.0)
    head1, tail1 = spread(1.0)
    assert tail0 > 0.5 * head0  # no overlap: tail classes as distinct as head classes
    assert tail1 < 0.15 * head1  # full overlap: tail classes share colour and texture


def test_weak_pixel_model_confuses_minor_classes():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    K = 10
    s = synthetic_class_structure(K)
    images, masks = make_synthetic_segmentation(80, K, 32, 100, seed=5)
    x = images.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    y = masks.reshape(-1).numpy()
    pred = LinearDiscriminantAnalysis().fit(x, y).predict(x)
    recall = np.array([(pred[y == k] == k).mean() for k in range(K)])
    assert recall[s["head"]].mean() > 0.7
    assert recall[s["tail"]].mean() < 0.2


def test_bad_input_raises():
    with pytest.raises(ValueError, match="imbalance_factor"):
        make_synthetic_segmentation(2, 5, 16, 0.5)
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic_segmentation(2, 1, 16, 10)
    with pytest.raises(TypeError, match="num_classes"):
        make_synthetic_segmentation(2, 4.0, 16, 10)
    with pytest.raises(ValueError, match="size"):
        make_synthetic_segmentation(2, 5, 0, 10)
    with pytest.raises(ValueError, match="size"):
        make_synthetic_segmentation(2, 5, (16, -3), 10)
    with pytest.raises(TypeError, match="size"):
        make_synthetic_segmentation(2, 5, "16", 10)
    with pytest.raises(ValueError, match="num_images"):
        make_synthetic_segmentation(0, 5, 16, 10)
    with pytest.raises(ValueError, match="context_strength"):
        make_synthetic_segmentation(2, 5, 16, 10, context_strength=1.5)
    with pytest.raises(ValueError, match="profile"):
        make_synthetic_segmentation(2, 5, 16, 10, profile="linear")
    with pytest.raises(ValueError, match="imbalance_factor"):
        SyntheticSegmentation(4, 5, 16, float("inf"))


def test_dataset_is_deterministic_and_blockwise():
    ds = SyntheticSegmentation(10, 4, 16, 20, seed=7, block_size=4, ignore_region=True)
    assert len(ds) == 10
    last = ds[9]
    first = ds[0]
    assert first[0].shape == (3, 16, 16) and first[1].shape == (16, 16) and first[1].dtype == torch.int64
    assert torch.equal(ds[9][1], last[1]) and torch.equal(ds[-1][0], last[0])
    images, masks = ds.tensors()
    assert images.shape == (10, 3, 16, 16)
    assert torch.equal(masks[0], first[1]) and torch.equal(masks[9], last[1])
    other = SyntheticSegmentation(10, 4, 16, 20, seed=8, block_size=4, ignore_region=True)
    assert not torch.equal(other.tensors()[1], masks)
    with pytest.raises(IndexError):
        ds[10]
    flipped = SyntheticSegmentation(10, 4, 16, 20, seed=7, block_size=4, ignore_region=True,
                                    transform=lambda im, m: (im.flip(-1), m.flip(-1)))
    assert torch.equal(flipped[3][1], masks[3].flip(-1))


def test_palette():
    for K in (2, 19, 20, 45):
        pal = palette(K)
        assert pal.shape == (K, 3) and pal.dtype == np.uint8
        assert len({tuple(c) for c in pal.tolist()}) == K  # all distinct


def test_output_does_not_depend_on_chunk_size():
    """chunk_size bounds memory only: the same seed gives the same data for every chunk size,
    also across layout blocks (more than LAYOUT_BLOCK images) and with the ignore region."""
    from data_utils.synthetic import LAYOUT_BLOCK

    ref = make_synthetic_segmentation(23, 6, (12, 20), 50.0, seed=5, ignore_region=True)
    for cs in (1, 2, 7, 8, 9, 22, 23, 100):
        got = make_synthetic_segmentation(23, 6, (12, 20), 50.0, seed=5, ignore_region=True, chunk_size=cs)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]), cs
    n = LAYOUT_BLOCK + 5
    big = make_synthetic_segmentation(n, 3, 4, 10.0, seed=1)
    for cs in (LAYOUT_BLOCK - 1, 1000, 3 * LAYOUT_BLOCK):
        got = make_synthetic_segmentation(n, 3, 4, 10.0, seed=1, chunk_size=cs)
        assert torch.equal(got[0], big[0]) and torch.equal(got[1], big[1]), cs
    noiseless = make_synthetic_segmentation(9, 4, 16, 10.0, seed=2, noise_level=0.0)
    assert torch.equal(make_synthetic_segmentation(9, 4, 16, 10.0, seed=2, noise_level=0.0, chunk_size=4)[0],
                       noiseless[0])


def test_bad_noise_seed_and_generator_are_rejected():
    with pytest.raises(ValueError, match="noise_level"):
        make_synthetic_segmentation(2, 5, 16, 10, noise_level=float("inf"))
    with pytest.raises(ValueError, match="noise_level"):
        make_synthetic_segmentation(2, 5, 16, 10, noise_level=float("nan"))
    with pytest.raises(ValueError, match="noise_level"):
        make_synthetic_segmentation(2, 5, 16, 10, noise_level=-0.1)
    with pytest.raises(TypeError, match="seed"):
        make_synthetic_segmentation(2, 5, 16, 10, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        make_synthetic_segmentation(2, 5, 16, 10, seed=-1)
    with pytest.raises(TypeError, match="generator"):
        make_synthetic_segmentation(2, 5, 16, 10, generator=3)
    with pytest.raises(TypeError, match="chunk_size"):
        make_synthetic_segmentation(2, 5, 16, 10, chunk_size=2.0)
    with pytest.raises(TypeError, match="seed"):
        SyntheticSegmentation(4, 5, 16, 10, seed=0.5)
    with pytest.raises(TypeError, match="index"):
        SyntheticSegmentation(4, 5, 16, 10)[1.0]
    with pytest.raises(TypeError, match="transform"):
        SyntheticSegmentation(4, 5, 16, 10, transform="flip")


def test_ignore_index_is_a_parameter_checked_against_the_classes():
    # 256 or more classes: the default 255 is a real class, so it is refused with a hint
    with pytest.raises(ValueError, match=r"ignore_index.*another ignore_index"):
        make_synthetic_segmentation(2, 300, 16, 10)
    with pytest.raises(ValueError, match="ignore_index"):
        SyntheticSegmentation(2, 300, 16, 10)
    with pytest.raises(ValueError, match="ignore_index"):
        make_synthetic_segmentation(2, 5, 16, 10, ignore_index=3)
    with pytest.raises(ValueError, match="ignore_region"):
        make_synthetic_segmentation(2, 5, 16, 10, ignore_region=True, ignore_index=None)
    images, masks = make_synthetic_segmentation(6, 300, 32, 10, ignore_region=True, ignore_index=-1, seed=1)
    assert (masks == -1).any() and masks.max() < 300  # 255 is a class like any other here
    assert set(masks[masks != -1].unique().tolist()) <= set(range(300))
    assert torch.all(images[:, 0][masks == -1] == 0.08)  # the hood
    # another ignore index changes nothing but the label of the ignored pixels
    ref_x, ref_y = make_synthetic_segmentation(5, 6, 16, 10, ignore_region=True, seed=2)
    x, y = make_synthetic_segmentation(5, 6, 16, 10, ignore_region=True, seed=2, ignore_index=1000)
    assert torch.equal(x, ref_x) and torch.equal(torch.where(y == 1000, 255, y), ref_y)
    ds = SyntheticSegmentation(5, 6, 16, 10, ignore_region=True, seed=2, ignore_index=-7, block_size=2)
    assert ds.ignore_index == -7 and (ds.tensors()[1] == -7).any()


def test_load_split_uses_the_requests_ignore_index():
    from data_utils.registry import LoadRequest
    from data_utils.synthetic import load_split

    req = LoadRequest("train", size=(16, 16), num_classes=260, num_images=3, ignore_index=-1,
                      options={"ignore_region": True, "seed": 4})
    x, y = load_split(None, req)
    assert x.shape == (3, 3, 16, 16) and (y == -1).any() and y.max() < 260
    with pytest.raises(ValueError, match="ignore_index"):
        load_split(None, LoadRequest("train", size=(16, 16), num_classes=260, num_images=3))
    with pytest.raises(ValueError, match="ignore_index"):
        load_split(None, LoadRequest("train", size=(16, 16), num_classes=6, num_images=3,
                                     options={"ignore_index": 300}))
