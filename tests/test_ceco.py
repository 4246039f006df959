"""CeCo loss, CeCo paper Eq. 3-4 as corrected in docs/conventions.md (section ceco-loss), and the released variant (ceco_lite/ceco.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ceco_lite.ceco import CenterCollapseLoss, ReleasedCenterCollapseLoss
from ceco_lite.etf import check_simplex_etf


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _hand_loss(z: torch.Tensor, y: torch.Tensor, W: torch.Tensor, K: int, reduction: str) -> torch.Tensor:
    """Explicit loop over present classes (Eq. 3, then Eq. 4 with the softmax over k')."""
    terms = []
    for k in range(K):
        mask = y == k
        if not bool(mask.any()):
            continue
        zbar = z[mask].mean(dim=0)  # Eq. 3
        logits = torch.stack([zbar @ W[:, j] for j in range(K)])
        terms.append(-(logits[k] - torch.logsumexp(logits, dim=0)))
    total = torch.stack(terms).sum()
    return total if reduction == "sum" else total / len(terms)


def _data(N=60, d=6, K=5, seed=0, absent=(3,)):
    g = _gen(seed)
    z = torch.randn(N, d, generator=g, dtype=torch.float64)
    present = [k for k in range(K) if k not in absent]
    y = torch.tensor(present)[torch.randint(0, len(present), (N,), generator=g)]
    y[:4] = 255
    return z, y


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_loss_equals_hand_computation(reduction, scale):
    K, d = 5, 6
    z, y = _data(d=d, K=K)
    loss_fn = CenterCollapseLoss(K, d, scale=scale, reduction=reduction, generator=_gen(1)).double()
    assert check_simplex_etf(loss_fn.etf, atol=1e-6, scale=scale)
    got = loss_fn(z, y)
    ref = _hand_loss(z, y, loss_fn.etf, K, reduction)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_sum_is_mean_times_present_classes():
    K, d = 5, 6
    z, y = _data(d=d, K=K, absent=(0, 3))
    s = CenterCollapseLoss(K, d, reduction="sum", generator=_gen(2)).double()(z, y)
    m = CenterCollapseLoss(K, d, reduction="mean", generator=_gen(2)).double()(z, y)
    torch.testing.assert_close(s, 3 * m, rtol=0, atol=1e-12)


def test_image_layout_equals_flat_layout():
    K, d = 4, 5
    g = _gen(3)
    z4 = torch.randn(2, d, 6, 7, generator=g, dtype=torch.float64)
    y3 = torch.randint(0, K, (2, 6, 7), generator=g)
    y3[1, :2] = 255
    loss_fn = CenterCollapseLoss(K, d, generator=_gen(4)).double()
    flat = loss_fn(z4.permute(0, 2, 3, 1).reshape(-1, d), y3.reshape(-1))
    torch.testing.assert_close(loss_fn(z4, y3), flat, rtol=0, atol=1e-13)


def test_gradient_to_features_only_etf_buffer_fixed():
    K, d = 5, 6
    loss_fn = CenterCollapseLoss(K, d, generator=_gen(5))
    assert list(loss_fn.parameters()) == []
    assert "etf" in loss_fn.state_dict() and not loss_fn.etf.requires_grad
    before = loss_fn.etf.clone()
    proj = torch.nn.Linear(3, d)  # a tiny "backbone"
    opt = torch.optim.SGD(list(proj.parameters()) + list(loss_fn.parameters()), lr=1.0)
    x = torch.randn(40, 3, generator=_gen(6))
    y = torch.randint(0, K, (40,), generator=_gen(7))
    w_before = proj.weight.detach().clone()
    loss = loss_fn(proj(x), y)
    loss.backward()
    opt.step()
    assert torch.equal(loss_fn.etf, before)
    assert not torch.equal(proj.weight, w_before)  # the features' producer was trained


def test_state_dict_round_trip():
    a = CenterCollapseLoss(4, 5, generator=_gen(1))
    b = CenterCollapseLoss(4, 5, generator=_gen(2))
    assert not torch.equal(a.etf, b.etf)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.etf, b.etf)


def test_learnable_etf_is_trained():
    K, d = 4, 5
    loss_fn = CenterCollapseLoss(K, d, learnable=True, generator=_gen(8))
    params = list(loss_fn.parameters())
    assert len(params) == 1 and params[0] is loss_fn.etf and "etf" in loss_fn.state_dict()
    before = loss_fn.etf.detach().clone()
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.5)
    z = torch.randn(30, d, generator=_gen(9))
    y = torch.randint(0, K, (30,), generator=_gen(10))
    loss_fn(z, y).backward()
    opt.step()
    assert not torch.allclose(loss_fn.etf, before)


def test_empty_batch_zero_loss_with_grad():
    loss_fn = CenterCollapseLoss(3, 4, generator=_gen())
    z = torch.randn(2, 4, 5, 5, requires_grad=True)
    y = torch.full((2, 5, 5), 255)
    loss = loss_fn(z, y)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert z.grad is not None and torch.all(z.grad == 0)
    # sum reduction as well
    loss_s = CenterCollapseLoss(3, 4, reduction="sum", generator=_gen())(z, y)
    assert loss_s.item() == 0.0 and loss_s.requires_grad


def test_lower_resolution_features():
    K, d = 4, 3
    g = _gen(11)
    z = torch.randn(2, d, 4, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (2, 16, 20), generator=g)
    # nearest_labels: same as subsampling the labels by hand (stride 4)
    loss_fn = CenterCollapseLoss(K, d, generator=_gen(12)).double()
    torch.testing.assert_close(loss_fn(z, y), loss_fn(z, y[:, ::4, ::4]), rtol=0, atol=1e-13)
    # bilinear_features: same as upsampling the features (align_corners=True) by hand
    loss_bi = CenterCollapseLoss(K, d, align="bilinear_features", generator=_gen(12)).double()
    up = F.interpolate(z, size=(16, 20), mode="bilinear", align_corners=True)
    torch.testing.assert_close(loss_bi(z, y), loss_fn(up, y), rtol=0, atol=1e-13)


def test_autocast_bf16_loss_is_float32():
    K, d = 5, 8
    loss_fn = CenterCollapseLoss(K, d, generator=_gen(13))
    z = torch.randn(2, d, 6, 6, generator=_gen(14))
    y = torch.randint(0, K, (2, 6, 6), generator=_gen(15))
    ref = loss_fn(z, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(z.bfloat16(), y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=2e-2)


def test_global_sync_without_process_group_is_local():
    K, d = 4, 5
    z, y = _data(d=d, K=K, absent=())
    a = CenterCollapseLoss(K, d, generator=_gen(1), sync="global").double()
    b = CenterCollapseLoss(K, d, generator=_gen(1)).double()
    torch.testing.assert_close(a(z, y), b(z, y), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(num_classes=1, dim=3), ValueError, "num_classes"),
        (dict(num_classes=5, dim=3), ValueError, "dim"),
        (dict(num_classes=3, dim=3, reduction="none"), ValueError, "reduction"),
        (dict(num_classes=3, dim=3, ignore_index=2), ValueError, "ignore_index"),
        (dict(num_classes=3, dim=3, align="area"), ValueError, "align"),
        (dict(num_classes=3, dim=3, sync="all"), ValueError, "sync"),
        (dict(num_classes=3.0, dim=3), TypeError, "num_classes"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        CenterCollapseLoss(**kwargs)


@pytest.mark.parametrize(
    "z,y,exc,word",
    [
        (torch.randn(6, 4), torch.zeros(6, dtype=torch.long), ValueError, "features"),  # dim 4 != 3
        (torch.randn(6, 3), torch.zeros(5, dtype=torch.long), ValueError, "labels"),
        (torch.randn(6, 3), torch.full((6,), 7), ValueError, "labels"),
        (torch.full((6, 3), float("nan")), torch.zeros(6, dtype=torch.long), ValueError, "features"),
        (torch.randn(6, 3), torch.zeros(6), TypeError, "labels"),
        (torch.randn(6, 3, device="meta"), torch.zeros(6, dtype=torch.long), ValueError, "device"),
    ],
)
def test_bad_forward_input(z, y, exc, word):
    loss_fn = CenterCollapseLoss(3, 3, generator=_gen())
    with pytest.raises(exc, match=word):
        loss_fn(z, y)


# ----------------------------------------------------------------------------- released variant
def _released_reference(m: ReleasedCenterCollapseLoss, feats: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The released head's training branch, step by step (one-hot matrix product, torch.unique)."""
    K = m.num_classes
    h, w = y.shape[-2:]
    pix = m.projection(feats)
    pix = F.interpolate(pix, size=(h, w), mode="bilinear", align_corners=True)
    pix = pix.permute(0, 2, 3, 1).contiguous()
    y_valid = y[y != 255].long()
    out_valid = pix[y != 255, :]
    onehot = F.one_hot(y_valid, K).to(pix.dtype)
    sums = onehot.T @ out_valid
    scene = torch.unique(y_valid)
    centers = sums[scene] / onehot.T.sum(dim=1)[scene].unsqueeze(1)
    f = F.normalize(m.center_mlp(centers), dim=-1)
    f = m.center_dropout(f)
    logits = (f @ m.etf) * m.logit_scale
    t = F.one_hot(scene, K).to(pix.dtype)
    t = m.smooth * t + (1 - m.smooth) / (K - 1) * (1 - t)
    prior = m.prior().to(pix.dtype)
    return -(t * F.log_softmax(logits + torch.log(prior + 1e-12), dim=1)).sum() / t.sum()


@pytest.mark.parametrize("smooth", [1.0, 0.5])
def test_released_equals_released_pipeline(smooth):
    K, C = 6, 16
    prior = torch.tensor([50.0, 10.0, 5.0, 1.0, 0.0, 30.0])
    m = ReleasedCenterCollapseLoss(K, C, 8, smooth=smooth, class_prior=prior, generator=_gen(1)).double().eval()
    g = _gen(2)
    feats = torch.randn(2, C, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, K - 1, (2, 13, 13), generator=g)
    y[0, :3] = 255
    got = m(feats, y)
    ref = _released_reference(m, feats, y)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_released_frozen_parts_and_gradient_to_features():
    K, C = 5, 12
    m = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(3))
    assert all(not p.requires_grad for p in m.parameters())
    assert check_simplex_etf(m.etf, atol=1e-6, scale=1.0)  # unit-norm ETF class vectors
    feats = torch.randn(2, C, 3, 3, requires_grad=True)
    y = torch.randint(0, K, (2, 9, 9))
    loss = m(feats, y)
    loss.backward()
    assert torch.isfinite(loss) and feats.grad is not None and feats.grad.abs().sum() > 0
    # all labels ignored: exact zero, still differentiable
    feats.grad = None
    z = m(feats, torch.full((2, 9, 9), 255))
    z.backward()
    assert z.item() == 0.0 and torch.all(feats.grad == 0)


def test_released_running_prior():
    K, C = 4, 8
    m = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(4))
    torch.testing.assert_close(m.prior(), torch.full((K,), 0.25))  # uniform before any batch
    y = torch.zeros(3, 5, 5, dtype=torch.long)
    y[0, 0, 0] = 1  # class 1 in image 0 only; class 0 in all 3 images; classes 2, 3 nowhere
    y[2] = 255
    y[2, 0, 0] = 0
    m(torch.randn(3, C, 5, 5), y)
    assert m.prior_images.item() == 3 and m.prior_counts.tolist() == [3.0, 1.0, 0.0, 0.0]
    p = torch.tensor([4 / 5, 2 / 5, 1 / 5, 1 / 5])
    torch.testing.assert_close(m.prior(), p / p.sum())
    m.eval()
    m(torch.randn(3, C, 5, 5), y)
    assert m.prior_images.item() == 3  # no update in eval mode
    assert "prior_counts" in m.state_dict()


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(num_classes=1), ValueError, "num_classes"),
        (dict(num_classes=10, in_channels=4), ValueError, "in_channels"),
        (dict(num_classes=3, class_prior=torch.ones(4)), ValueError, "class_prior"),
        (dict(num_classes=3, class_prior=torch.tensor([1.0, -1.0, 1.0])), ValueError, "class_prior"),
        (dict(num_classes=3, class_prior=[1, 1, 1]), TypeError, "class_prior"),
        (dict(num_classes=3, smooth=1.5), ValueError, "smooth"),
        (dict(num_classes=3, dropout=1.0), ValueError, "dropout"),
        (dict(num_classes=3, logit_scale=0), ValueError, "logit_scale"),
    ],
)
def test_released_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        ReleasedCenterCollapseLoss(**kwargs)


def test_released_bad_forward_input():
    m = ReleasedCenterCollapseLoss(3, 8, 4, generator=_gen())
    with pytest.raises(ValueError, match="features"):
        m(torch.randn(2, 7, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        m(torch.randn(2, 8, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        m(torch.randn(2, 8, 4, 4), torch.full((2, 4, 4), 5))


def test_released_logit_scale_matters():
    K, C = 4, 8
    feats = torch.randn(2, C, 4, 4, generator=_gen(5), dtype=torch.float64)
    y = torch.randint(0, K, (2, 4, 4), generator=_gen(6))
    a = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(7), logit_adjust=False).double().eval()
    b = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(7), logit_adjust=False, logit_scale=1.0).double().eval()
    # with unit-norm centres and ETF, logits lie in [-scale, scale]: the loss is bounded accordingly
    for m, s in [(a, 5.0), (b, 1.0)]:
        assert m(feats, y).item() <= 2 * s + math.log(K) + 1e-9
    assert not torch.isclose(a(feats, y), b(feats, y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_loss_equals_cpu():
    """CUDA path (one-hot product, strided label view, async checks) against the CPU path."""
    K, d = 5, 8
    loss_fn = CenterCollapseLoss(K, d, generator=_gen(20))
    z = torch.randn(2, d, 4, 6, generator=_gen(21))
    y = torch.randint(0, K, (2, 16, 24), generator=_gen(22))
    y[0, :3] = 255
    ref = loss_fn(z, y)
    zc = z.cuda().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    got = loss_fn.cuda()(zc, y.cuda())
    torch.testing.assert_close(got.cpu(), ref, rtol=1e-5, atol=1e-6)
    got.backward()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got_bf16 = loss_fn(zc.bfloat16(), y.cuda())
    assert got_bf16.dtype == torch.float32
    torch.testing.assert_close(got_bf16.cpu(), ref, rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------------------- released: validation before state
def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("bad", ["nan_features", "inf_features", "bad_label", "float_labels", "int_features"])
def test_released_rejected_batch_changes_no_state(bad):
    K, C = 4, 8
    m = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(5))
    m(torch.randn(2, C, 4, 4, generator=_gen(6)), torch.randint(0, K, (2, 4, 4), generator=_gen(7)))  # one good batch
    before = _state(m)
    feats = torch.randn(2, C, 4, 4, generator=_gen(8))
    y = torch.randint(0, K, (2, 8, 8), generator=_gen(9))
    if bad == "nan_features":
        feats[1, 3, 2, 2] = float("nan")
    elif bad == "inf_features":
        feats[0, 0, 0, 0] = float("inf")
    elif bad == "bad_label":
        y[1, 5, 5] = K
    elif bad == "float_labels":
        y = y.float()
    else:
        feats = feats.long()
    exc = TypeError if bad in ("float_labels", "int_features") else ValueError
    with pytest.raises(exc, match="labels" if "label" in bad else "features"):
        m(feats, y)
    after = _state(m)
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k  # BatchNorm statistics and prior untouched
    assert all(torch.isfinite(v.double()).all() for v in after.values())


def test_released_empty_batch_is_exact_zero_and_changes_no_state():
    K, C = 4, 8
    m = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(5))
    before = _state(m)
    feats = torch.randn(0, C, 4, 4, requires_grad=True)
    loss = m(feats, torch.zeros(0, 8, 8, dtype=torch.long))
    assert loss.item() == 0.0 and loss.dtype == torch.float32
    loss.backward()
    assert feats.grad is not None and feats.grad.shape == feats.shape
    for k, v in _state(m).items():
        assert torch.equal(v, before[k]), k
    # CenterCollapseLoss agrees: an empty batch is an exact 0
    assert CenterCollapseLoss(K, C, generator=_gen())(torch.randn(0, C, 4, 4), torch.zeros(0, 8, 8, dtype=torch.long)).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_released_half_features_outside_autocast_are_computed_in_float32(dtype):
    K, C = 4, 8
    feats = torch.randn(2, C, 4, 4, generator=_gen(10)).to(dtype)
    y = torch.randint(0, K, (2, 4, 4), generator=_gen(11))
    a = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(12), dropout=0.0)
    b = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(12), dropout=0.0)
    got = a(feats, y)
    want = b(feats.float(), y)  # the same values in float32
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
    assert torch.equal(a.projection[1].running_mean, b.projection[1].running_mean)


def test_released_float64_features_match_a_float64_module():
    K, C = 5, 8
    feats = torch.randn(3, C, 4, 6, generator=_gen(13), dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, K, (3, 8, 12), generator=_gen(14))
    y[0, :2] = 255
    a = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(15), dropout=0.0)  # float32 module
    b = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(15), dropout=0.0).double()  # reference in float64
    for _ in range(2):  # training mode: batch statistics and running-statistics updates
        got, want = a(feats, y), b(feats, y)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.projection[1].running_mean.double(), b.projection[1].running_mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.projection[1].running_var.double(), b.projection[1].running_var, rtol=1e-6, atol=1e-7)
    assert a.projection[1].running_mean.dtype == torch.float32
    assert a.projection[1].num_batches_tracked.item() == b.projection[1].num_batches_tracked.item() == 2
    a.eval(), b.eval()
    torch.testing.assert_close(a(feats, y), b(feats, y), rtol=1e-6, atol=1e-6)  # running statistics (float32 vs 64)
    got = a(feats, y)
    got.backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


def test_released_single_pixel_batch_and_empty_label_map_are_clear_errors():
    K, C = 3, 8
    m = ReleasedCenterCollapseLoss(K, C, 4, generator=_gen(16))
    with pytest.raises(ValueError, match="more than one pixel"):
        m(torch.randn(1, C, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long))
    m.eval()  # running statistics: one pixel is fine
    assert torch.isfinite(m(torch.randn(1, C, 1, 1), torch.zeros(1, 1, 1, dtype=torch.long)))
    with pytest.raises(ValueError, match="labels must have a non-empty spatial size"):
        m(torch.randn(2, C, 3, 3), torch.zeros(2, 0, 0, dtype=torch.long))
