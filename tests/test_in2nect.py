"""Tests for ceco_lite.in2nect (In2NeCT Eq. 5-7; docs/conventions.md, section in2nect)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ceco_lite.ceco import CenterCollapseLoss
from ceco_lite.in2nect import In2NeCTLoss, InterClassLoss, IntraClassLoss
from ceco_lite.sampling import sample_per_class


def hand_intra(z, y, tau, include_anchor=False, reduction="sum"):
    """Eq. 6 with explicit loops (float64)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    classes = sorted(set(y.tolist()))
    members = {k: [i for i in range(len(y)) if y[i] == k] for k in classes}
    total, used = 0.0, 0
    for k in classes:
        n_k = len(members[k])
        if n_k < 2:
            continue
        used += 1
        class_term = 0.0
        for i in members[k]:
            den = 0.0
            for k2 in classes:
                js = [j for j in members[k2] if include_anchor or j != i]
                if not js:
                    continue
                den += sum(math.exp(u[i] @ u[j] / tau) for j in js) / len(js)
            anchor = 0.0
            for i2 in members[k]:
                if i2 != i:
                    anchor += math.log(math.exp(u[i] @ u[i2] / tau) / den)
            class_term += -anchor / (n_k - 1)
        total += class_term / n_k
    return total if reduction == "sum" else total / used


def hand_inter(z, y, W, reduction="sum"):
    """Eq. 5 (softmax over classes for the same centre) with loops."""
    z = np.asarray(z, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    K = W.shape[1]
    terms = []
    for k in range(K):
        rows = [z[i] for i in range(len(y)) if y[i] == k]
        if not rows:
            continue
        c = np.mean(rows, axis=0)
        logits = [c @ W[:, j] for j in range(K)]
        terms.append(-(logits[k] - math.log(sum(math.exp(v) for v in logits))))
    return sum(terms) if reduction == "sum" else sum(terms) / len(terms)


def data(seed, n=40, d=6, K=4):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (n,), generator=g)
    y[:3] = 255
    y[y == K - 1] = 0
    y[5] = K - 1  # a singleton class: negative only
    return z, y


# --------------------------------------------------------------------------- #
# L_Intra
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("include_anchor", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_intra_matches_loop(include_anchor, reduction, tau):
    z, y = data(0)
    loss_fn = IntraClassLoss(
        4, temperature=tau, max_pixels_per_class=None, reduction=reduction,
        include_anchor_in_denominator=include_anchor,
    )
    got = loss_fn(z, y)
    keep = (y != 255).numpy()
    want = hand_intra(z.numpy()[keep], y.numpy()[keep], tau, include_anchor, reduction)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_intra_gradient_flows_and_matches_autograd_of_loop():
    z, y = data(1, n=16)
    z.requires_grad_(True)
    IntraClassLoss(4, max_pixels_per_class=None)(z, y).backward()
    assert torch.isfinite(z.grad).all()
    assert z.grad[(y != 255)].abs().sum() > 0
    assert (z.grad[y == 255] == 0).all()
    # central finite differences of the loop reference on a few coordinates
    keep = (y != 255).numpy()
    base = z.detach().numpy().copy()
    for i, c in [(4, 0), (7, 3), (12, 5)]:
        h = 1e-6
        plus, minus = base.copy(), base.copy()
        plus[i, c] += h
        minus[i, c] -= h
        fd = (hand_intra(plus[keep], y.numpy()[keep], 0.1) - hand_intra(minus[keep], y.numpy()[keep], 0.1)) / (2 * h)
        assert z.grad[i, c].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_intra_collapsed_classes_give_lower_loss():
    """Tight, separated classes must score below random features (the loss can fail)."""
    K, d, n = 4, 8, 10
    y = torch.arange(K).repeat_interleave(n)
    centres = torch.eye(d, dtype=torch.float64)[:K] * 5
    tight = centres[y] + 0.01 * torch.randn(K * n, d, dtype=torch.float64)
    loose = torch.randn(K * n, d, dtype=torch.float64)
    loss_fn = IntraClassLoss(K, max_pixels_per_class=None)
    assert loss_fn(tight, y) < loss_fn(loose, y) - 1.0


def test_intra_segmentation_layout_and_sampling():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64)
    lab = torch.randint(0, 3, (2, 6, 7), generator=g)
    lab[0, 0] = 255
    loss_fn = IntraClassLoss(3, max_pixels_per_class=6, generator=torch.Generator().manual_seed(7))
    got = loss_fn(f, lab)
    idx = sample_per_class(lab, 6, generator=torch.Generator().manual_seed(7))
    flat_z = f.permute(0, 2, 3, 1).reshape(-1, 5)[idx]
    flat_y = lab.reshape(-1)[idx]
    assert torch.bincount(flat_y, minlength=3).tolist() == [6, 6, 6]
    assert got.item() == pytest.approx(hand_intra(flat_z.numpy(), flat_y.numpy(), 0.1), rel=1e-12)


def test_intra_no_positive_pairs_is_zero_with_graph():
    z = torch.randn(3, 4, requires_grad=True)
    out = IntraClassLoss(3)(z, torch.tensor([0, 1, 2]))
    assert out.item() == 0.0
    out.backward()
    assert (z.grad == 0).all()


def test_intra_bfloat16_autocast():
    z, y = data(3)
    ref = IntraClassLoss(4, max_pixels_per_class=None)(z.bfloat16().double(), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = IntraClassLoss(4, max_pixels_per_class=None)(z.bfloat16(), y)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)


# --------------------------------------------------------------------------- #
# L_Inter
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_inter_is_ceco_with_unit_fixed_etf(reduction):
    z, y = data(4)
    z.requires_grad_(True)
    loss_fn = InterClassLoss(4, 6, reduction=reduction, generator=torch.Generator().manual_seed(0))
    assert isinstance(loss_fn, CenterCollapseLoss)
    assert loss_fn.scale == 1.0 and not loss_fn.learnable
    assert not any(p.requires_grad for p in loss_fn.parameters())
    W = loss_fn.etf.double()
    np.testing.assert_allclose(W.norm(dim=0).numpy(), 1.0, rtol=1e-6)
    got = loss_fn(z, y)
    keep = (y != 255).numpy()
    assert got.item() == pytest.approx(hand_inter(z.detach().numpy()[keep], y.numpy()[keep], W.numpy(), reduction), rel=1e-6)
    got.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="scale"):
        InterClassLoss(4, 6, scale=2.0)


# --------------------------------------------------------------------------- #
# total loss (Eq. 7)
# --------------------------------------------------------------------------- #
def test_total_loss_combines_parts():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(2, 6, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    lab = torch.randint(0, 4, (2, 4, 5), generator=g)
    lab[1, 0, 0] = 255
    logits = torch.randn(2, 4, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    loss_fn = In2NeCTLoss(4, 6, generator=torch.Generator().manual_seed(0), max_pixels_per_class=None)
    assert loss_fn.weight == 0.2
    total, parts = loss_fn(f, lab, logits, return_parts=True)
    seg = F.cross_entropy(logits, lab, ignore_index=255)
    assert parts["seg"].item() == pytest.approx(seg.item(), rel=1e-12)
    assert parts["inter"].item() == pytest.approx(loss_fn.inter(f, lab).item(), rel=1e-12)
    assert parts["intra"].item() == pytest.approx(loss_fn.intra(f, lab).item(), rel=1e-12)
    assert total.item() == pytest.approx(seg.item() + 0.2 * (parts["inter"].item() + parts["intra"].item()), rel=1e-12)
    total.backward()
    assert f.grad.abs().sum() > 0 and logits.grad.abs().sum() > 0
    # precomputed segmentation loss
    total2 = loss_fn(f, lab, seg_loss=seg.detach())
    assert total2.item() == pytest.approx(total.item(), rel=1e-12)


def test_bad_input():
    z, y = data(6)
    with pytest.raises(ValueError, match="labels"):
        IntraClassLoss(4)(z, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        IntraClassLoss(4)(z, torch.where(y == 1, 7, y))
    with pytest.raises(TypeError, match="labels"):
        IntraClassLoss(4)(z, y.float())
    bad = z.clone()
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="features"):
        IntraClassLoss(4, max_pixels_per_class=None)(bad, torch.where(y == 255, 0, y))
    with pytest.raises(ValueError, match="temperature"):
        IntraClassLoss(4, temperature=0.0)
    with pytest.raises(ValueError, match="max_pixels_per_class"):
        IntraClassLoss(4, max_pixels_per_class=1)
    with pytest.raises(ValueError, match="reduction"):
        IntraClassLoss(4, reduction="none")
    with pytest.raises(ValueError, match="ignore_index"):
        IntraClassLoss(4, ignore_index=2)
    with pytest.raises(TypeError, match="generator"):
        IntraClassLoss(4, generator=0)
    loss_fn = In2NeCTLoss(4, 6)
    with pytest.raises(ValueError, match="seg_logits"):
        loss_fn(z, y)
    with pytest.raises(ValueError, match="seg_logits"):
        loss_fn(z, y, torch.randn(len(y), 3))
    with pytest.raises(TypeError, match="seg_loss"):
        loss_fn(z, y, seg_loss=1.0)
    with pytest.raises(ValueError, match="weight"):
        In2NeCTLoss(4, 6, weight=-1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    z, y = data(7)
    cpu = In2NeCTLoss(4, 6, generator=torch.Generator().manual_seed(0), max_pixels_per_class=None)
    gpu = In2NeCTLoss(4, 6, generator=torch.Generator().manual_seed(0), max_pixels_per_class=None).cuda()
    logits = torch.randn(len(y), 4, dtype=torch.float64)
    want = cpu(z, y, logits)
    zc = z.cuda().requires_grad_(True)
    got = gpu(zc, y.cuda(), logits.cuda())
    assert got.item() == pytest.approx(want.item(), rel=1e-9)
    got.backward()
    assert torch.isfinite(zc.grad).all()
    # sampling with a CPU generator on CUDA labels
    sampled = IntraClassLoss(4, max_pixels_per_class=5, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(sampled(zc.float(), y.cuda()))


# --------------------------------------------------------------------------- #
# batches without a labelled pixel, bad labels with logits
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("layout", ["all_ignored", "empty"])
def test_total_loss_is_exact_zero_with_graph_without_labelled_pixels(layout):
    loss_fn = In2NeCTLoss(4, 6, generator=torch.Generator().manual_seed(0))
    if layout == "all_ignored":
        f = torch.randn(2, 6, 4, 5, dtype=torch.float64, requires_grad=True)
        lab = torch.full((2, 8, 10), 255)
        logits = torch.randn(2, 4, 8, 10, dtype=torch.float64, requires_grad=True)
    else:
        f = torch.randn(0, 6, dtype=torch.float64, requires_grad=True)
        lab = torch.zeros(0, dtype=torch.long)
        logits = torch.randn(0, 4, dtype=torch.float64, requires_grad=True)
    total, parts = loss_fn(f, lab, logits, return_parts=True)
    assert total.item() == 0.0 and all(v.item() == 0.0 for v in parts.values())  # not NaN
    total.backward()
    assert f.grad is not None and logits.grad is not None
    assert (f.grad == 0).all() and (logits.grad == 0).all()
    # precomputed segmentation loss: the regularisers add exactly 0
    seg = torch.tensor(0.75, dtype=torch.float64, requires_grad=True)
    total2 = loss_fn(f, lab, seg_loss=seg)
    assert total2.item() == 0.75
    total2.backward()
    assert seg.grad.item() == 1.0


def test_bad_labels_with_logits_are_a_clear_error():
    z, y = data(6)
    loss_fn = In2NeCTLoss(4, 6)
    bad = torch.where(y == 1, 9, y)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(z, bad, torch.randn(len(y), 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="labels"):
        loss_fn(z, y.float(), torch.randn(len(y), 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="device"):
        loss_fn(z, y, torch.randn(len(y), 4, device="meta"))
