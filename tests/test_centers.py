"""Class centres, CeCo paper Eq. 3 (ceco_lite/centers.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ceco_lite.centers import align_features_and_labels, class_centers, class_sums


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _brute_force(z: torch.Tensor, y: torch.Tensor, K: int, ignore: int = 255):
    """Python loop over pixels, float64 (independent of the vectorised code)."""
    d = z.shape[1]
    sums = [[0.0] * d for _ in range(K)]
    counts = [0] * K
    for i in range(z.shape[0]):
        lab = int(y[i])
        if lab == ignore:
            continue
        counts[lab] += 1
        for c in range(d):
            sums[lab][c] += float(z[i, c])
    centers = torch.tensor(
        [[s / counts[k] if counts[k] else 0.0 for s in sums[k]] for k in range(K)], dtype=torch.float64
    )
    return centers, torch.tensor(counts)


def _batch(B=2, d=3, H=5, W=6, K=5, seed=0, absent=(4,)):
    g = _gen(seed)
    z = torch.randn(B, d, H, W, generator=g, dtype=torch.float64)
    present = [k for k in range(K) if k not in absent]
    y = torch.tensor(present)[torch.randint(0, len(present), (B, H, W), generator=g)]
    y[0, 0, :3] = 255
    y[-1, -1, -2:] = 255
    return z, y


def test_flat_layout_equals_brute_force():
    z4, y3 = _batch()
    z = z4.permute(0, 2, 3, 1).reshape(-1, 3)
    y = y3.reshape(-1)
    centers, counts = class_centers(z, y, 5)
    ref_c, ref_n = _brute_force(z, y, 5)
    torch.testing.assert_close(centers, ref_c, rtol=0, atol=1e-13)
    assert torch.equal(counts, ref_n) and counts.dtype == torch.int64
    assert counts[4] == 0 and torch.all(centers[4] == 0)
    assert int(counts.sum()) == int((y != 255).sum())


def test_image_layout_equals_brute_force():
    z4, y3 = _batch(B=3, d=4, H=4, W=7, K=6, seed=1, absent=(0, 5))
    centers, counts = class_centers(z4, y3, 6)
    ref_c, ref_n = _brute_force(z4.permute(0, 2, 3, 1).reshape(-1, 4), y3.reshape(-1), 6)
    torch.testing.assert_close(centers, ref_c, rtol=0, atol=1e-13)
    assert torch.equal(counts, ref_n)
    assert not torch.isnan(centers).any()


def test_channels_last_and_class_sums():
    z4, y3 = _batch(seed=2)
    ref_c, ref_n = class_centers(z4, y3, 5)
    c_last, _ = class_centers(z4.contiguous(memory_format=torch.channels_last), y3, 5)
    torch.testing.assert_close(c_last, ref_c, rtol=0, atol=1e-13)
    sums, counts = class_sums(z4, y3, 5)
    torch.testing.assert_close(sums, ref_c * ref_n[:, None].double(), rtol=0, atol=1e-12)
    assert torch.equal(counts, ref_n)


def test_all_ignored_gives_zero_counts_no_nan():
    z = torch.randn(2, 3, 4, 4)
    y = torch.full((2, 4, 4), 255)
    c, n = class_centers(z, y, 3)
    assert torch.all(n == 0) and torch.all(c == 0)


def test_ignore_index_none_and_custom():
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    c, n = class_centers(z, torch.tensor([0, 1, -1]), 2, ignore_index=-1)
    assert n.tolist() == [1, 1] and c.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="labels"):
        class_centers(z, torch.tensor([0, 1, 255]), 2, ignore_index=None)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_accumulates_in_float32(dtype):
    g = _gen(3)
    z = (torch.randn(4000, 4, generator=g) + 100.0).to(dtype)  # sums ~4e5: beyond bf16/fp16 resolution
    y = torch.randint(0, 3, (4000,), generator=g)
    c, n = class_centers(z, y, 3)
    assert c.dtype == torch.float32
    ref, _ = _brute_force(z.double(), y, 3)
    torch.testing.assert_close(c.double(), ref, rtol=0, atol=1e-4)


def test_autocast_bf16_gives_float32():
    z = torch.randn(2, 8, 4, 4)
    y = torch.randint(0, 3, (2, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        c, _ = class_centers(z.bfloat16(), y, 3)
    assert c.dtype == torch.float32


def test_gradient_is_one_over_nk():
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 255, 2, 2, 2])
    c, n = class_centers(z, y, 4)
    c.sum().backward()
    expected = torch.tensor([1 / 3] * 3 + [1 / 2] * 2 + [1 / 4, 0.0, 1 / 4, 1 / 4, 1 / 4], dtype=torch.float64)
    torch.testing.assert_close(z.grad, expected[:, None].expand(10, 3), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "make,exc,word",
    [
        (lambda: (torch.randn(4, 2), torch.zeros(4, dtype=torch.long), 1, {}), ValueError, "num_classes"),
        (lambda: (torch.randn(4, 2), torch.zeros(4, dtype=torch.long), 2.0, {}), TypeError, "num_classes"),
        (lambda: (torch.randn(4, 2), torch.zeros(5, dtype=torch.long), 3, {}), ValueError, "labels"),
        (lambda: (torch.randn(2, 2, 3, 3), torch.zeros(2, 4, 3, dtype=torch.long), 3, {}), ValueError, "labels"),
        (lambda: (torch.randn(2, 2, 3), torch.zeros(2, 3, dtype=torch.long), 3, {}), ValueError, "features"),
        (lambda: (torch.randn(4, 2), torch.tensor([0, 1, 3, 255]), 3, {}), ValueError, "labels"),
        (lambda: (torch.randn(4, 2), torch.tensor([0, 1, -1, 2]), 3, {}), ValueError, "labels"),
        (lambda: (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.tensor([0, 1]), 3, {}), ValueError,
         "features"),
        (lambda: (torch.tensor([[0.0, float("inf")], [1.0, 1.0]]), torch.tensor([255, 1]), 3, {}), ValueError,
         "features"),
        (lambda: (torch.ones(4, 2, dtype=torch.long), torch.zeros(4, dtype=torch.long), 3, {}), TypeError,
         "features"),
        (lambda: (torch.randn(4, 2), torch.zeros(4), 3, {}), TypeError, "labels"),
        (lambda: (torch.randn(4, 2), torch.zeros(4, dtype=torch.bool), 3, {}), TypeError, "labels"),
        (lambda: (torch.randn(4, 2), torch.zeros(4, dtype=torch.long), 3, {"ignore_index": 1}), ValueError,
         "ignore_index"),
        (lambda: ([[1.0]], torch.zeros(1, dtype=torch.long), 3, {}), TypeError, "features"),
        (lambda: (torch.randn(4, 2, device="meta"), torch.zeros(4, dtype=torch.long), 3, {}), ValueError,
         "device"),
    ],
)
def test_bad_input(make, exc, word):
    z, y, K, kw = make()
    with pytest.raises(exc, match=word):
        class_centers(z, y, K, **kw)


# ----------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("hw,HW", [((4, 4), (16, 16)), ((5, 7), (26, 39)), ((22, 9), (26, 20)), ((8, 8), (8, 8))])
def test_nearest_labels_equals_interpolate(hw, HW):
    z = torch.randn(2, 3, *hw)
    y = torch.randint(0, 200, (2, *HW))
    z2, y2 = align_features_and_labels(z, y)
    assert z2 is z
    ref = F.interpolate(y[:, None].float(), size=hw, mode="nearest")[:, 0].long()
    assert torch.equal(y2, ref) and y2.dtype == y.dtype


def test_bilinear_features_mode():
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 12, 15))
    z2, y2 = align_features_and_labels(z, y, mode="bilinear_features")
    assert y2 is y and z2.shape == (2, 3, 12, 15)
    torch.testing.assert_close(z2, F.interpolate(z, size=(12, 15), mode="bilinear", align_corners=True))
    # align_corners=True keeps the corner values exactly
    torch.testing.assert_close(z2[..., 0, 0], z[..., 0, 0])
    torch.testing.assert_close(z2[..., -1, -1], z[..., -1, -1])
    z3, _ = align_features_and_labels(z, y, mode="bilinear_features", align_corners=False)
    assert not torch.allclose(z3, z2)


def test_same_size_is_identity():
    z, y = torch.randn(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long)
    z2, y2 = align_features_and_labels(z, y, mode="bilinear_features")
    assert z2 is z and y2 is y


@pytest.mark.parametrize(
    "z,y,kw,exc,word",
    [
        (torch.randn(2, 3, 4), torch.zeros(2, 4, 4, dtype=torch.long), {}, ValueError, "features"),
        (torch.randn(2, 3, 4, 4), torch.zeros(2, 4, dtype=torch.long), {}, ValueError, "labels"),
        (torch.randn(2, 3, 4, 4), torch.zeros(3, 8, 8, dtype=torch.long), {}, ValueError, "batch"),
        (torch.randn(2, 3, 4, 4), torch.zeros(2, 8, 8, dtype=torch.long), {"mode": "area"}, ValueError, "mode"),
        (torch.randn(2, 3, 4, 4), torch.zeros(2, 8, 8), {}, TypeError, "labels"),
    ],
)
def test_align_bad_input(z, y, kw, exc, word):
    with pytest.raises(exc, match=word):
        align_features_and_labels(z, y, **kw)


# ----------------------------------------------------------------------------- CUDA kernel (one-hot), CPU-testable
def _onehot_sums(z, y, K, ignore=255, validate=True):
    from ceco_lite.centers import _class_sums_onehot

    return _class_sums_onehot(z, y, K, ignore, validate)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "flat", "strided_labels"])
@pytest.mark.parametrize("ignore", [255, None, -1])
def test_onehot_kernel_equals_brute_force(layout, ignore):
    """The CUDA reduction (one-hot matrix product) run on CPU against the pixel loop."""
    K = 5
    z4, y3 = _batch(B=2, d=3, H=4, W=6, K=K, seed=4)
    if ignore is None:
        y3 = y3.clamp(max=K - 1)
    elif ignore == -1:
        y3 = torch.where(y3 == 255, -1, y3)
    ref_c, ref_n = _brute_force(z4.permute(0, 2, 3, 1).reshape(-1, 3), y3.reshape(-1), K,
                                ignore=ignore if ignore is not None else -999)
    z, y = z4, y3
    if layout == "channels_last":
        z = z4.contiguous(memory_format=torch.channels_last)
    elif layout == "flat":
        z, y = z4.permute(0, 2, 3, 1).reshape(-1, 3), y3.reshape(-1)
    elif layout == "strided_labels":  # labels as a strided view, as align_features_and_labels returns
        big = torch.full((2, 8, 12), 3, dtype=y3.dtype)
        big[:, ::2, ::2] = y3
        y = big[:, ::2, ::2]
        assert not y.is_contiguous()
    sums, counts = _onehot_sums(z, y, K, ignore)
    assert sums.dtype == torch.float64 and counts.dtype == torch.int64
    assert torch.equal(counts, ref_n)
    torch.testing.assert_close(sums, ref_c * ref_n[:, None].double(), rtol=0, atol=1e-12)
    # gradient 1 per pixel of a present class, 0 for ignored pixels
    leaf = z.detach().clone().requires_grad_(True)
    _onehot_sums(leaf, y, K, ignore)[0].sum().backward()
    valid = (y.reshape(-1) != (ignore if ignore is not None else -999)).double()
    g = leaf.grad.permute(0, 2, 3, 1).reshape(-1, 3) if leaf.ndim == 4 else leaf.grad
    torch.testing.assert_close(g, valid[:, None].expand(-1, 3), rtol=0, atol=0)


def test_onehot_kernel_half_and_autocast_accumulate_in_float32():
    g = _gen(5)
    z = (torch.randn(2, 4, 8, 8, generator=g) + 100.0)
    y = torch.randint(0, 3, (2, 8, 8), generator=g)
    ref, n = class_sums(z.bfloat16().double(), y, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sums, counts = _onehot_sums(z.bfloat16(), y, 3)
    assert sums.dtype == torch.float32 and torch.equal(counts, n)
    torch.testing.assert_close(sums.double(), ref, rtol=0, atol=1e-3)  # sums ~1.3e4, exact in float32


@pytest.mark.parametrize(
    "z,y,ignore,word",
    [
        (torch.randn(4, 2), torch.tensor([0, 1, 3, 255]), 255, "labels"),
        (torch.randn(4, 2), torch.tensor([0, 1, -1, 2]), 255, "labels"),
        (torch.randn(3, 2), torch.tensor([0, 1, 255]), None, "labels"),
        (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.tensor([0, 1]), 255, "non-finite"),
        (torch.tensor([[0.0, float("inf")], [1.0, 1.0]]), torch.tensor([255, 1]), 255, "non-finite"),
    ],
)
def test_onehot_kernel_asserts(z, y, ignore, word):
    """The asynchronous checks used on CUDA (torch._assert_async raises at once on CPU)."""
    with pytest.raises(RuntimeError, match=word):
        _onehot_sums(z, y, 3, ignore)
    _onehot_sums(z, y, 3, ignore, validate=False)  # no check when asked


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_class_sums_equal_cpu():
    z4, y3 = _batch(B=2, d=8, H=16, W=16, K=5, seed=6)
    for z in (z4, z4.float(), z4.float().contiguous(memory_format=torch.channels_last)):
        ref_s, ref_n = class_sums(z, y3, 5)
        s, n = class_sums(z.cuda(), y3.cuda(), 5)
        assert torch.equal(n.cpu(), ref_n) and s.dtype == ref_s.dtype
        torch.testing.assert_close(s.cpu(), ref_s, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "hw,HW", [((4, 4), (32, 32)), ((5, 7), (20, 14)), ((3, 9), (12, 9)), ((6, 1), (6, 5)), ((7, 3), (49, 24))]
)
def test_integer_factor_labels_are_a_strided_view(hw, HW):
    z = torch.randn(2, 3, *hw)
    y = torch.randint(0, 200, (2, *HW), dtype=torch.uint8)
    _, y2 = align_features_and_labels(z, y)
    ref = F.interpolate(y[:, None].float(), size=hw, mode="nearest")[:, 0].to(y.dtype)
    assert torch.equal(y2, ref) and y2.dtype == y.dtype
    assert y2.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()  # a view, no copy


@pytest.mark.parametrize("z_hw,y_hw,word", [((4, 4), (0, 0), "labels"), ((0, 0), (4, 4), "features"),
                                            ((4, 4), (8, 0), "labels"), ((0, 3), (6, 6), "features")])
def test_align_rejects_empty_spatial_size_on_one_side(z_hw, y_hw, word):
    z = torch.randn(2, 3, *z_hw)
    y = torch.zeros(2, *y_hw, dtype=torch.long)
    for mode in ("nearest_labels", "bilinear_features"):
        with pytest.raises(ValueError, match=f"{word} must have a non-empty spatial size"):
            align_features_and_labels(z, y, mode=mode)
    # equal (empty) sizes need no resampling and pass through
    same_z, same_y = align_features_and_labels(torch.randn(2, 3, 0, 0), torch.zeros(2, 0, 0, dtype=torch.long))
    assert same_z.shape == (2, 3, 0, 0) and same_y.shape == (2, 0, 0)
