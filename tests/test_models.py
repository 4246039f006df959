"""Tests of ceco_lite.models (tiny sizes, CPU)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ceco_lite.models import (
    MODEL_NAMES,
    MODEL_TASKS,
    SMALL_SEG_MAX_PARAMS,
    CifarResNet,
    SmallSegNet,
    build_model,
)

K = 5
SEG_NAMES = [n for n in MODEL_NAMES if MODEL_TASKS[n] == "segmentation" and n != "lraspp_mobilenet_v3_large"]
CLS_NAMES = [n for n in MODEL_NAMES if MODEL_TASKS[n] == "classification"]
NATURAL_DIM = {"small_seg": 32, "lraspp_mobilenet_v3": 168, "deeplabv3_resnet50": 256,
               "resnet32": 64, "resnet20": 64, "resnet8": 64}
FEATURE_STRIDE = {"small_seg": 4, "lraspp_mobilenet_v3": 8, "deeplabv3_resnet50": 8}
_CACHE: dict = {}


def _model(name: str, fixed: bool = False) -> nn.Module:
    """Build once per (name, fixed) with a fixed seed; eval mode for exact comparisons."""
    key = (name, fixed)
    if key not in _CACHE:
        torch.manual_seed(0)
        _CACHE[key] = build_model(name, K, fixed_classifier=fixed, generator=torch.Generator().manual_seed(1)).eval()
    return _CACHE[key]


def _input(name: str, batch: int = 2) -> torch.Tensor:
    size = 64 if MODEL_TASKS[name] == "segmentation" else 32
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))


def _capture_classifier_input(model, x):
    seen = {}
    handle = model.classifier.register_forward_hook(lambda mod, inp, out: seen.update(z=inp[0], out=out))
    try:
        out = model(x)
    finally:
        handle.remove()
    return out, seen


# ---------------------------------------------------------------- shapes and interface
@pytest.mark.parametrize("name", SEG_NAMES + CLS_NAMES)
def test_output_shapes_dtypes_and_attributes(name):
    model = _model(name)
    x = _input(name)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"logits", "features"}
    d = NATURAL_DIM[name]
    assert model.feature_dim == d and model.num_classes == K and model.task == MODEL_TASKS[name]
    if model.task == "segmentation":
        s = FEATURE_STRIDE[name]
        assert out["logits"].shape == (2, K, 64, 64)
        assert out["features"].shape == (2, d, 64 // s, 64 // s)
        assert isinstance(model.classifier, nn.Conv2d) and model.classifier.kernel_size == (1, 1)
    else:
        assert out["logits"].shape == (2, K)
        assert out["features"].shape == (2, d)
        assert isinstance(model.classifier, nn.Linear)
    assert out["logits"].dtype == torch.float32 and out["features"].dtype == torch.float32
    assert torch.isfinite(out["logits"]).all()
    W = model.classifier_weight()
    assert W.shape == (d, K)
    torch.testing.assert_close(W, model.classifier.weight.reshape(K, d).T, rtol=0, atol=0)


def test_odd_input_size_small_seg():
    out = _model("small_seg")(torch.randn(1, 3, 50, 70))
    assert out["logits"].shape == (1, K, 50, 70)
    assert out["features"].shape == (1, 32, 13, 18)  # ceil(H/4), ceil(W/4)


def test_small_seg_parameter_cap():
    n = sum(p.numel() for p in build_model("small_seg", 19).parameters())
    assert n <= SMALL_SEG_MAX_PARAMS <= 300_000, n


def test_feature_dim_option_changes_d():
    torch.manual_seed(0)
    for name, shape in (("small_seg", (1, 48, 16, 16)), ("lraspp_mobilenet_v3", (1, 48, 8, 8)), ("resnet8", (2, 48))):
        m = build_model(name, K, feature_dim=48).eval()
        x = torch.randn(shape[0], 3, 64, 64) if m.task == "segmentation" else torch.randn(2, 3, 32, 32)
        out = m(x)
        assert m.feature_dim == 48 and out["features"].shape == shape
        assert m.classifier_weight().shape == (48, K)


def test_cifar_resnet_structure_matches_ldam_drw():
    # independent parameter count of He et al.'s CIFAR ResNet (option A: parameter-free shortcuts)
    def expected(n, k):
        total = 3 * 16 * 9 + 2 * 16  # stem conv + BN
        cin = 16
        for c in (16, 32, 64):
            for _ in range(n):
                total += cin * c * 9 + c * c * 9 + 4 * c
                cin = c
        return total + 64 * k + k  # linear classifier

    for name, n in (("resnet32", 5), ("resnet20", 3), ("resnet8", 1)):
        m = build_model(name, 10)
        assert m.depth == 6 * n + 2
        assert [len(m.layer1), len(m.layer2), len(m.layer3)] == [n, n, n]
        assert sum(p.numel() for p in m.parameters()) == expected(n, 10)
    assert sum(p.numel() for p in build_model("resnet32", 10).parameters()) == 464_154  # LDAM-DRW: 0.46 M


def test_option_a_shortcut_is_zero_padded_subsampling():
    block = CifarResNet(2, num_blocks=1).layer2[0].eval()
    for mod in (block.conv1, block.conv2):
        nn.init.zeros_(mod.weight)  # residual branch -> BN(0) = BN bias (0) -> out = relu(shortcut)
    x = torch.randn(1, 16, 8, 8)
    y = block(x)
    assert y.shape == (1, 32, 4, 4)
    torch.testing.assert_close(y[:, 8:24], F.relu(x[:, :, ::2, ::2]))
    assert y[:, :8].abs().max() == 0 and y[:, 24:].abs().max() == 0


# ---------------------------------------------------------------- features are the pre-classifier features
@pytest.mark.parametrize("name", SEG_NAMES + CLS_NAMES)
def test_features_are_classifier_input_and_logits_follow(name):
    model = _model(name)
    x = _input(name)
    with torch.no_grad():
        out, seen = _capture_classifier_input(model, x)
    torch.testing.assert_close(out["features"], seen["z"], rtol=0, atol=0)
    z = out["features"].double()
    W = model.classifier_weight().double()
    b = model.classifier.bias.double()
    if model.task == "segmentation":
        # classifier on features then bilinear upsampling == upsampling then classifier (1x1 conv commutes)
        up = F.interpolate(z, size=x.shape[-2:], mode="bilinear", align_corners=False)
        ref = torch.einsum("bdhw,dk->bkhw", up, W) + b[None, :, None, None]
    else:
        ref = z @ W + b
    torch.testing.assert_close(out["logits"].double(), ref, rtol=1e-4, atol=1e-4)


def _tv_reference(name, model):
    """torchvision's own model carrying our model's weights."""
    from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

    if name == "lraspp_mobilenet_v3":
        tv = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=K).eval()
        tv.backbone.load_state_dict(model.backbone.state_dict())
        tv.classifier.cbr.load_state_dict(model.cbr.state_dict())
        tv.classifier.scale.load_state_dict(model.scale.state_dict())
        w = model.classifier.weight
        nlow = tv.classifier.low_classifier.in_channels
        with torch.no_grad():
            tv.classifier.low_classifier.weight.copy_(w[:, :nlow])
            tv.classifier.high_classifier.weight.copy_(w[:, nlow:])
            tv.classifier.low_classifier.bias.copy_(model.classifier.bias)
            tv.classifier.high_classifier.bias.zero_()
    else:
        tv = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=K, aux_loss=False).eval()
        tv.backbone.load_state_dict(model.backbone.state_dict())
        for i, mod in enumerate(model.head):
            tv.classifier[i].load_state_dict(mod.state_dict())
        tv.classifier[-1].load_state_dict(model.classifier.state_dict())
    return tv


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3", "deeplabv3_resnet50"])
def test_torchvision_adapter_computes_torchvision_model(name):
    model = _model(name)
    x = _input(name, batch=1)
    tv = _tv_reference(name, model)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["logits"], tv(x)["out"], rtol=1e-4, atol=1e-4)


def test_lraspp_full_pretrained_weights_are_carried_over(monkeypatch):
    """pretrained='full' loads torchvision's weights (download stubbed) and merges the two classifiers."""
    from torchvision.models import WeightsEnum
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(3)
    source = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).eval()
    with torch.no_grad():  # make both classifiers' weights and biases distinctive
        for conv in (source.classifier.low_classifier, source.classifier.high_classifier):
            conv.weight.normal_(0, 0.5)
            conv.bias.normal_(0, 1.0)
    calls = []
    monkeypatch.setattr(WeightsEnum, "get_state_dict",
                        lambda self, *a, **k: calls.append(self) or source.state_dict())
    model = build_model("lraspp_mobilenet_v3", 21, pretrained="full").eval()
    assert len(calls) == 1
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["logits"], source(x)["out"], rtol=1e-4, atol=1e-4)
    # other class count: backbone kept, classifier fresh
    model5 = build_model("lraspp_mobilenet_v3", K, pretrained="full")
    assert model5.classifier.out_channels == K
    torch.testing.assert_close(model5.backbone.state_dict()["0.0.weight"], source.backbone.state_dict()["0.0.weight"])


def test_nothing_downloads_by_default(monkeypatch):
    import torch.hub
    from torchvision.models import WeightsEnum

    def boom(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(WeightsEnum, "get_state_dict", boom)
    build_model("lraspp_mobilenet_v3", K)
    with pytest.raises(AssertionError, match="download"):
        build_model("lraspp_mobilenet_v3", K, pretrained=True)  # backbone weights are requested


# ---------------------------------------------------------------- fixed ETF classifier
def _assert_simplex_etf(W):
    Kc = W.shape[1]
    G = W.double().T @ W.double()
    expected = (Kc * torch.eye(Kc, dtype=torch.float64) - 1) / (Kc - 1)  # CeCo Eq. 2, unit columns
    torch.testing.assert_close(G, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["small_seg", "lraspp_mobilenet_v3", "resnet8"])
def test_fixed_classifier_is_frozen_etf_and_survives_an_optimiser_step(name):
    torch.manual_seed(0)
    model = build_model(name, K, fixed_classifier=True, generator=torch.Generator().manual_seed(4)).train()
    model.requires_grad_(True)  # must not unfreeze the ETF
    W0 = model.classifier_weight().detach().clone()
    _assert_simplex_etf(W0)
    assert model.fixed_classifier and model.classifier.bias is None
    assert not model.classifier.weight.requires_grad
    assert all(p is not model.classifier.weight for p in model.parameters())
    assert "classifier.weight" in model.state_dict()
    others = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x = _input(name)
    out = model(x)
    target = (torch.zeros(out["logits"].shape[0], *out["logits"].shape[2:], dtype=torch.long)
              if model.task == "segmentation" else torch.zeros(out["logits"].shape[0], dtype=torch.long))
    F.cross_entropy(out["logits"], target).backward()
    opt.step()
    torch.testing.assert_close(model.classifier_weight(), W0, rtol=0, atol=0)
    assert any(not torch.equal(p, others[n]) for n, p in model.named_parameters())  # the rest did train


def test_fixed_classifier_deeplab_and_resnet32_are_etf():
    for name in ("deeplabv3_resnet50", "resnet32"):
        m = _model(name, fixed=True)
        _assert_simplex_etf(m.classifier_weight())
        assert m.classifier.bias is None


def test_fixed_classifier_generator_reproducible_and_state_dict_roundtrip():
    a = build_model("small_seg", K, fixed_classifier=True, generator=torch.Generator().manual_seed(7))
    b = build_model("small_seg", K, fixed_classifier=True, generator=torch.Generator().manual_seed(7))
    c = build_model("small_seg", K, fixed_classifier=True, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.classifier_weight(), b.classifier_weight(), rtol=0, atol=0)
    assert not torch.allclose(a.classifier_weight(), c.classifier_weight())
    c.load_state_dict(a.state_dict())
    torch.testing.assert_close(c.classifier_weight(), a.classifier_weight(), rtol=0, atol=0)


def test_etf_scale_sets_column_norm():
    m = build_model("resnet8", K, fixed_classifier=True, etf_scale=3.0)
    torch.testing.assert_close(m.classifier_weight().norm(dim=0), torch.full((K,), 3.0))


def test_fixed_classifier_needs_enough_dimensions():
    with pytest.raises(ValueError, match="feature_dim"):
        build_model("small_seg", 40, fixed_classifier=True)  # d = 32 < K - 1
    m = build_model("small_seg", 33, fixed_classifier=True)  # d = K - 1 is allowed
    _assert_simplex_etf(m.classifier_weight())
    m = build_model("resnet8", 100, fixed_classifier=True, feature_dim=128)
    _assert_simplex_etf(m.classifier_weight())


def test_learned_classifier_weight_gets_gradients():
    m = build_model("resnet8", K)
    assert m.classifier.weight.requires_grad and m.classifier.bias is not None
    m.classifier_weight().sum().backward()
    torch.testing.assert_close(m.classifier.weight.grad, torch.ones(K, 64))


# ---------------------------------------------------------------- memory format and autocast
@pytest.mark.parametrize("name", ["small_seg", "resnet8"])
def test_channels_last_matches_contiguous(name):
    model = _model(name)
    x = _input(name)
    with torch.no_grad():
        ref = model(x)
        model_cl = build_model(name, K)
        model_cl.load_state_dict(model.state_dict())
        model_cl = model_cl.eval().to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    for key in ("logits", "features"):
        torch.testing.assert_close(out[key], ref[key], rtol=1e-4, atol=1e-4)


def test_bf16_autocast_cpu():
    model = _model("small_seg")
    x = _input("small_seg")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out["features"].dtype == torch.bfloat16
    assert out["logits"].shape == (2, K, 64, 64) and torch.isfinite(out["logits"].float()).all()
    with torch.no_grad():
        ref = model(x)["logits"]
    assert (out["logits"].float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.1


# ---------------------------------------------------------------- errors
def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        build_model("resnet1000", K)
    for name in MODEL_NAMES:
        assert name in str(info.value)
    with pytest.raises(TypeError, match="name"):
        build_model(3, K)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("small_seg", 1)
    with pytest.raises(TypeError, match="num_classes"):
        build_model("small_seg", 5.0)
    with pytest.raises(ValueError, match="pretrained"):
        build_model("small_seg", K, pretrained=True)
    with pytest.raises(ValueError, match="pretrained"):
        build_model("lraspp_mobilenet_v3", K, pretrained="imagenet")
    with pytest.raises(ValueError, match="x must have shape"):
        _model("small_seg")(torch.randn(3, 64, 64))


def test_top_level_export():
    import ceco_lite

    assert ceco_lite.build_model is build_model


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3", "deeplabv3_resnet50"])
def test_torchvision_features_keep_autocast_dtype(name, monkeypatch):
    """Under bf16 autocast z stays bf16 (CUDA autocast runs interpolate in float32: simulated here)."""
    import types

    import ceco_lite.models.torchvision_seg as tvs

    fake_f = types.SimpleNamespace(interpolate=lambda *a, **k: F.interpolate(*a, **k).float())
    monkeypatch.setattr(tvs, "F", fake_f)
    model = _model(name)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 64, 64))
    assert out["features"].dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["small_seg", "resnet8", "lraspp_mobilenet_v3"])
def test_bad_input_images_are_clear_errors(name):
    model = _model(name)
    with pytest.raises(ValueError, match="x must have 3 channels"):
        model(torch.randn(2, 4, 32, 32))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        model(torch.ones(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([[0.0]])


def test_constructor_checks_name_their_arguments():
    with pytest.raises(ValueError, match="num_blocks"):
        CifarResNet(K, num_blocks=0)
    with pytest.raises(TypeError, match="width"):
        SmallSegNet(K, width=8.0)
    with pytest.raises(ValueError, match="in_channels"):
        SmallSegNet(K, in_channels=0)
    with pytest.raises(TypeError, match="fixed_classifier"):
        SmallSegNet(K, fixed_classifier="yes")
    m = SmallSegNet(K, in_channels=1)
    assert m(torch.randn(1, 1, 16, 16))["logits"].shape == (1, K, 16, 16)
