"""The gradients of the centre losses and their compiled form.

The gradient of ``class_sums`` (CeCo paper Eq. 3) is a gather of the upstream gradient,
``CenterCollapseLoss``'s gradients are the closed forms of Eq. 6 and 8, and
``CompiledCenterLoss`` compiles the whole loss: each is checked against an independent
float64 autograd computation (one-hot matrices, written here), on every layout.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ceco_lite.ceco import CenterCollapseLoss, CompiledCenterLoss
from ceco_lite.centers import class_sums
from ceco_lite.engine import get_preset
from ceco_lite.engine.step import TrainStep, build_losses
from ceco_lite.gradients import ceco_gradients
from ceco_lite.in2nect import InterClassLoss
from ceco_lite.models import build_model


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _batch(B=3, d=6, h=4, w=5, K=5, dtype=torch.float64, seed=0, ignore=255, absent=(3,)):
    g = _gen(seed)
    z = torch.randn(B, d, h, w, generator=g, dtype=dtype)
    present = torch.tensor([k for k in range(K) if k not in absent])
    y = present[torch.randint(0, len(present), (B, h, w), generator=g)]
    if ignore is not None:
        y[0, 0, :3] = ignore
        y[-1, -1, -1] = ignore
    return z, y


def _layouts(z):
    """NCHW, channels-last, a strided view and the flat ``(N, d)`` rows of one batch."""
    wide = torch.zeros(*z.shape[:3], 2 * z.shape[3], dtype=z.dtype)
    wide[..., ::2] = z
    return {"nchw": z, "channels_last": z.contiguous(memory_format=torch.channels_last),
            "strided": wide[..., ::2], "rows": z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])}


def _labels_for(name, y):
    return y.reshape(-1) if name == "rows" else y


def _reference_sums(z, y, K, ignore=255):
    """float64 one-hot matrix product ``onehot(y)^T Z`` (autograd derives its backward)."""
    d = z.shape[1]
    rows = z.permute(0, 2, 3, 1).reshape(-1, d) if z.ndim == 4 else z
    lab = y.reshape(-1).long()
    keep = lab != ignore if ignore is not None else torch.ones_like(lab, dtype=torch.bool)
    onehot = F.one_hot(torch.where(keep, lab, 0), K).to(torch.float64) * keep.unsqueeze(1)
    return onehot.T @ rows.to(torch.float64), onehot.sum(0).long()


def _reference_loss(z, y, etf, K, reduction="mean", ignore=255):
    """L_CR (CeCo Eq. 3-4, softmax over classes k' of centre k) from the one-hot sums, float64."""
    sums, counts = _reference_sums(z, y, K, ignore)
    centers = sums / counts.clamp_min(1).unsqueeze(1)
    logp = torch.log_softmax(centers @ etf.to(torch.float64), dim=1)
    ce = -logp[torch.arange(K), torch.arange(K)]
    present = counts > 0
    total = ce[present].sum()
    return total if reduction == "sum" else total / present.sum().clamp_min(1)


# --------------------------------------------------------------------------- class_sums backward
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided", "rows"])
@pytest.mark.parametrize("ignore", [255, None])
def test_class_sums_gradient_is_the_exact_gather_of_the_upstream_gradient(layout, ignore):
    K = 5
    z4, y = _batch(ignore=ignore, seed=1)
    z = _layouts(z4)[layout].clone().requires_grad_(True)
    lab = _labels_for(layout, y)
    sums, counts = class_sums(z, lab, K, ignore_index=ignore)
    upstream = torch.randn(K, z.shape[1], generator=_gen(2), dtype=torch.float64)
    (sums * upstream).sum().backward()
    zr = z.detach().clone().requires_grad_(True)
    ref_sums, ref_counts = _reference_sums(zr, lab, K, ignore)
    (ref_sums * upstream).sum().backward()
    torch.testing.assert_close(sums, ref_sums, rtol=0, atol=1e-12)
    assert torch.equal(counts, ref_counts)
    # each pixel's gradient is one row of `upstream` (or 0): exactly equal, no rounding
    assert torch.equal(z.grad, zr.grad)
    assert z.grad.shape == z.shape and z.grad.dtype == z.dtype


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_class_sums_gradient_in_the_feature_dtype(dtype):
    z4, y = _batch(dtype=torch.float64, seed=3)
    z = z4.to(dtype).requires_grad_(True)
    sums, _ = class_sums(z, y, 5)
    assert sums.dtype == torch.float32
    upstream = torch.randn(sums.shape, generator=_gen(4))
    (sums * upstream).sum().backward()
    assert z.grad.dtype == dtype
    zr = z.detach().double().requires_grad_(True)
    ref, _ = _reference_sums(zr, y, 5)
    (ref * upstream.double()).sum().backward()
    assert torch.equal(z.grad, zr.grad.to(dtype))


def test_class_sums_double_backward_and_gradcheck():
    z4, y = _batch(B=2, d=3, h=3, w=3, seed=5)
    z = z4.clone().requires_grad_(True)

    def fn(t):
        return class_sums(t, y, 5)[0]

    assert torch.autograd.gradcheck(fn, (z,))
    assert torch.autograd.gradgradcheck(fn, (z,))


# --------------------------------------------------------------------------- CenterCollapseLoss backward
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "rows"])
def test_loss_and_gradients_equal_float64_autograd(dtype, tol, reduction, layout):
    K, d = 5, 6
    loss_fn = CenterCollapseLoss(K, d, reduction=reduction, learnable=True, generator=_gen(6)).to(dtype)
    z4, y = _batch(d=d, K=K, dtype=dtype, seed=7)
    z = _layouts(z4)[layout].clone().requires_grad_(True)
    lab = _labels_for(layout, y)
    loss = loss_fn(z, lab)
    loss.backward()
    zr = z.detach().double().requires_grad_(True)
    etf = loss_fn.etf.detach().double().requires_grad_(True)
    ref = _reference_loss(zr, lab, etf, K, reduction)
    ref.backward()
    assert loss.dtype == dtype
    torch.testing.assert_close(loss.double(), ref, rtol=tol, atol=tol)
    scale = zr.grad.abs().max()
    torch.testing.assert_close(z.grad.double() / scale, zr.grad / scale, rtol=0, atol=tol)
    torch.testing.assert_close(loss_fn.etf.grad.double(), etf.grad, rtol=tol, atol=tol)


def test_loss_at_another_resolution_and_under_autocast():
    K, d = 5, 6
    loss_fn = CenterCollapseLoss(K, d, generator=_gen(8))
    z4, _ = _batch(d=d, h=4, w=5, dtype=torch.float32, seed=9)
    y = torch.randint(0, K, (3, 16, 20), generator=_gen(10))
    z = z4.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(z, y)
    loss.backward()
    zr = z.detach().double().requires_grad_(True)
    ref = _reference_loss(zr, y[:, ::4, ::4], loss_fn.etf, K)
    ref.backward()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z.grad.double(), zr.grad, rtol=1e-4, atol=1e-7)


def test_closed_form_backward_passes_gradcheck_and_double_backward_is_exact():
    K, d = 4, 3
    loss_fn = CenterCollapseLoss(K, d, learnable=True, generator=_gen(11)).double()
    z4, y = _batch(B=2, d=d, h=3, w=3, K=K, seed=12, absent=(2,))
    z = z4.clone().requires_grad_(True)
    etf = loss_fn.etf
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, y), (z,))
    # second derivatives: the backward switches to the reference graph under create_graph=True
    (g,) = torch.autograd.grad(loss_fn(z, y), z, create_graph=True)
    (hv,) = torch.autograd.grad((g * z.detach()).sum(), z)
    zr = z.detach().clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(_reference_loss(zr, y, etf.detach(), K), zr, create_graph=True)
    (hr,) = torch.autograd.grad((gr * z.detach()).sum(), zr)
    torch.testing.assert_close(g, gr, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(hv, hr, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_backward_equals_the_paper_closed_forms_of_ceco_gradients(reduction):
    """The autograd node's backward against :func:`ceco_lite.ceco_gradients` (Eq. 6 and 8, written separately)."""
    K, d = 5, 6
    loss_fn = CenterCollapseLoss(K, d, reduction=reduction, learnable=True, generator=_gen(19)).double()
    z4, y = _batch(d=d, K=K, seed=20)
    rows = z4.permute(0, 2, 3, 1).reshape(-1, d).clone().requires_grad_(True)
    loss = loss_fn(rows, y.reshape(-1))
    loss.backward()
    cf = ceco_gradients(rows.detach(), y.reshape(-1), loss_fn.etf.detach(), K, reduction=reduction)
    torch.testing.assert_close(loss, cf.loss, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(rows.grad, cf.grad_features, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(loss_fn.etf.grad, cf.grad_weight, rtol=1e-10, atol=1e-14)


def test_no_valid_label_gives_an_exact_zero_with_zero_gradients():
    loss_fn = CenterCollapseLoss(4, 3, learnable=True, generator=_gen(13))
    z = torch.randn(2, 3, 2, 2, requires_grad=True)
    loss = loss_fn(z, torch.full((2, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))
    assert torch.equal(loss_fn.etf.grad, torch.zeros_like(loss_fn.etf))


def test_inter_class_loss_inherits_the_closed_form():
    K, d = 5, 6
    loss_fn = InterClassLoss(K, d, generator=_gen(14)).double()
    z4, y = _batch(d=d, K=K, seed=15)
    z = z4.clone().requires_grad_(True)
    loss_fn(z, y).backward()
    zr = z4.clone().requires_grad_(True)
    _reference_loss(zr, y, loss_fn.etf, K, "sum").backward()
    torch.testing.assert_close(z.grad, zr.grad, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- compiled loss
def _compare_compiled(backend, dtype, tol, layout="nchw"):
    K, d = 5, 6
    loss_fn = CenterCollapseLoss(K, d, learnable=True, generator=_gen(16)).to(dtype)
    compiled = CompiledCenterLoss(loss_fn, backend=backend)
    z4, y = _batch(d=d, K=K, dtype=dtype, seed=17)
    z = _layouts(z4)[layout]
    lab = _labels_for(layout, y)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    eager = loss_fn(z1, lab)
    eager.backward()
    g_eager = loss_fn.etf.grad.clone()
    loss_fn.etf.grad = None
    got = compiled(z2, lab)
    got.backward()
    assert got.dtype == eager.dtype
    torch.testing.assert_close(got, eager, rtol=tol, atol=tol)
    torch.testing.assert_close(z2.grad, z1.grad, rtol=tol, atol=tol * float(z1.grad.abs().max()))
    torch.testing.assert_close(loss_fn.etf.grad, g_eager, rtol=tol, atol=tol)
    return compiled


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "rows"])
def test_compiled_graph_traces_to_the_eager_loss(dtype, tol, layout):
    """Dynamo + AOTAutograd (``aot_eager``: the traced graph and its derived backward, no code generation)."""
    compiled = _compare_compiled("aot_eager", dtype, tol, layout)
    assert compiled.mode == "default"


@pytest.mark.slow
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_inductor_compiled_loss_equals_eager(dtype, tol):
    """The generated kernels (inductor's C++ backend on the CPU) give the eager values and gradients."""
    _compare_compiled("inductor", dtype, tol)


def test_compiled_loss_rejects_bad_batches_like_the_module():
    loss_fn = CenterCollapseLoss(4, 3, generator=_gen(18))
    compiled = CompiledCenterLoss(loss_fn, backend="aot_eager")
    z = torch.randn(2, 3, 2, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes\) = \[0, 4\) .* found e.g. 7"):
        compiled(z, torch.tensor([[[0, 1], [2, 7]], [[0, 1], [2, 3]]]))
    bad = z.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        compiled(bad, torch.zeros(2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="3 channels"):
        compiled(torch.randn(2, 5, 2, 2), torch.zeros(2, 2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="CenterCollapseLoss"):
        CompiledCenterLoss(torch.nn.Linear(2, 2))


def test_train_step_uses_the_compiled_loss_with_compile_loss():
    config = get_preset("synthetic-tiny", ceco_lambda=0.5, compile_loss=True, image_size=(16, 16))
    model = build_model(config.model, config.num_classes)
    ceco, _ = build_losses(config, model.feature_dim, "cpu")
    step = TrainStep(model, config, ceco=ceco)
    assert isinstance(step.compiled_ceco, CompiledCenterLoss) and step.compiled_ceco.loss_fn is ceco
    assert "compiled_ceco" not in dict(step.named_modules())  # no second copy of the ETF in the state
    assert step.compiled_ceco.mode == "default"  # CPU: no CUDA graphs
    step.compiled_ceco = CompiledCenterLoss(ceco, backend="aot_eager")  # the same graph, traced without codegen
    x = torch.randn(2, 3, 16, 16)
    y = torch.randint(0, config.num_classes, (2, 16, 16))
    total, terms = step(x, y)
    eager = TrainStep(model, config.replace(compile_loss=False), ceco=ceco)
    assert eager.compiled_ceco is None
    total_e, terms_e = eager(x, y)
    torch.testing.assert_close(terms["ceco"], terms_e["ceco"], rtol=1e-6, atol=1e-7)
    assert config.tag() == config.replace(compile_loss=False).tag()  # round-off only: not a result field
    with pytest.raises(ValueError, match="compile_loss=True .* ceco_variant='paper'"):
        config.replace(ceco_variant="released")
