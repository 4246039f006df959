"""Tests for ceco_lite.feature_hooks: CeCo on models whose code we do not change.

torchvision DeepLabV3 / FCN / LR-ASPP (random weights, tiny inputs, CPU),
containers of outputs, stale features and memory, in-place overwrites, wrong
names, autocast, torch.compile (``aot_eager``: Dynamo + AOTAutograd without a
C++ compile) and segmentation_models_pytorch
(optional: ``pip install 'ceco-lite[smp]'``).
"""
from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation import deeplabv3_resnet50, fcn_resnet50, lraspp_mobilenet_v3_large

from ceco_lite import CenterCollapseLoss
from ceco_lite.feature_hooks import FeatureTap, attach_features, main_output, unwrap_model

K = 4


def gen(seed):
    return torch.Generator().manual_seed(seed)


def images(b=2, size=32, seed=0):
    g = gen(seed)
    return torch.randn(b, 3, size, size, generator=g), torch.randint(0, K, (b, size, size), generator=g)


class Tiny(nn.Module):
    """Conv -> BN -> ReLU -> conv classifier; returns a chosen container."""

    def __init__(self, returns="tensor", d=6):
        super().__init__()
        self.returns = returns
        self.body = nn.Sequential(nn.Conv2d(3, d, 3, padding=1), nn.BatchNorm2d(d), nn.ReLU())
        self.head = nn.Conv2d(d, K, 1)

    def forward(self, x):
        logits = self.head(self.body(x))
        if self.returns == "dict":
            return {"out": logits, "aux": logits.detach()}
        if self.returns == "tuple":
            return logits, logits.mean()
        return logits


# --------------------------------------------------------------------------- torchvision models
@pytest.fixture(scope="module")
def deeplab():
    torch.manual_seed(0)
    return deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=K, aux_loss=False)


@pytest.mark.slow
def test_deeplabv3_features_are_the_head_input_and_ceco_trains(deeplab):
    model = deeplab
    tap = attach_features(model, "classifier.4", capture="input")
    x, y = images()
    # independent computation of the same features (eval mode: no dropout, running BN statistics)
    model.eval()
    with torch.no_grad():
        out, z = tap(x)
        ref = nn.Sequential(*list(model.classifier)[:4])(model.backbone(x)["out"])
    torch.testing.assert_close(z, ref)
    assert z.shape == (2, 256, 4, 4)  # output stride 8
    torch.testing.assert_close(main_output(out), F.interpolate(model.classifier[4](ref), size=(32, 32),
                                                               mode="bilinear", align_corners=False))
    # the three-line change: loss = ce + lambda * ceco(features, labels), features at 1/8 resolution
    model.train()
    ceco = CenterCollapseLoss(K, tap.feature_dim(x), generator=gen(1))
    assert model.training and all(m.training for m in model.modules())  # feature_dim restored the modes
    out, z = tap(x)
    loss = F.cross_entropy(main_output(out), y) + 0.4 * ceco(z, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.conv1.weight.grad is not None
    assert float(model.backbone.conv1.weight.grad.abs().sum()) > 0
    tap.remove()
    model.zero_grad(set_to_none=True)


@pytest.mark.slow
@pytest.mark.parametrize("builder,layer,dim", [
    (fcn_resnet50, "classifier.4", 512),
    (lraspp_mobilenet_v3_large, "classifier.high_classifier", 128),
])
def test_fcn_and_lraspp(builder, layer, dim):
    torch.manual_seed(0)
    model = builder(weights=None, weights_backbone=None, num_classes=K)
    tap = attach_features(model, layer, capture="input")
    x, y = images()
    out, z = tap(x)
    assert z.shape == (2, dim, 4, 4)
    assert main_output(out).shape == (2, K, 32, 32)
    loss = CenterCollapseLoss(K, dim, generator=gen(2))(z, y)
    loss.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.backbone.parameters())


def test_feature_dim_does_not_update_batchnorm_statistics():
    model = Tiny()
    tap = attach_features(model, "head", capture="input")
    before = model.body[1].running_mean.clone()
    assert tap.feature_dim(images()[0]) == 6
    torch.testing.assert_close(model.body[1].running_mean, before)
    assert model.training


# --------------------------------------------------------------------------- containers
@pytest.mark.parametrize("returns", ["tensor", "dict", "tuple"])
def test_model_output_containers(returns):
    model = Tiny(returns)
    tap = attach_features(model, "body")
    x, _ = images()
    out, z = tap(x)
    assert z.shape == (2, 6, 32, 32)
    assert main_output(out).shape == (2, K, 32, 32)


def test_main_output_rules():
    t = torch.zeros(1)

    class ModelOutput:  # the Hugging Face style
        logits = t

    assert main_output({"logits": t, "hidden": torch.ones(1)}) is t
    assert main_output({"seg": t}) is t
    assert main_output({"a": t, "b": torch.ones(1)}, key="a") is t
    assert main_output(ModelOutput()) is t
    assert main_output([t, torch.ones(1)]) is t
    with pytest.raises(TypeError, match="key"):
        main_output({"a": t, "b": t})
    with pytest.raises(TypeError, match="no key"):
        main_output({"a": t}, key="b")
    with pytest.raises(TypeError, match="logits"):
        main_output(3.0)


class DictBody(nn.Module):
    """A sub-module returning a dict, as torchvision's IntermediateLayerGetter backbones do."""

    def __init__(self, aux):
        super().__init__()
        self.aux = aux
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        z = self.conv(x)
        return {"out": z, "aux": z.flip(1)} if self.aux else {"out": z}


def test_captured_layer_returning_a_dict():
    x, _ = images()
    model = nn.Sequential(DictBody(aux=True))
    with attach_features(model, "0", index="aux") as tap:
        _, z = tap(x)
    torch.testing.assert_close(z, model[0].conv(x).flip(1))
    with attach_features(model, "0") as tap, pytest.raises(TypeError, match="index"):
        tap(x)
    single = nn.Sequential(DictBody(aux=False))
    _, z = attach_features(single, "0")(x)  # a one-entry dict needs no index
    torch.testing.assert_close(z, single[0].conv(x))
    with attach_features(single, "0", index=3) as tap, pytest.raises(TypeError, match="index=3"):
        tap(x)


@pytest.mark.slow
def test_torchvision_backbone_dict_output(deeplab):
    x, _ = images()
    with attach_features(deeplab, "backbone") as tap:  # OrderedDict(out=...) without aux_loss
        _, z = tap(x)
    assert z.shape == (2, 2048, 4, 4)


# --------------------------------------------------------------------------- lifetime
def test_features_are_per_forward_and_not_kept():
    model = Tiny()
    tap = attach_features(model, "body")
    seen = []
    for step in range(4):
        x, y = images(seed=step)
        out, z = tap(x)
        assert tap._features is None  # the tap keeps no reference
        F.cross_entropy(out, y).backward()
        seen.append(weakref.ref(z))
        torch.testing.assert_close(z, model.body(x))
        del z, out
        gc.collect()
        assert all(ref() is None for ref in seen)  # earlier batches' features are freed
    # reading after a plain model(x): the latest batch; a forward that skips the layer: an error
    x, _ = images(seed=9)
    model(x)
    torch.testing.assert_close(tap.features, model.body(x))

    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)

        def forward(self, x, use_b=True):
            return self.b(x) if use_b else self.a(x)

    skips = Skips()
    tap = attach_features(skips, "b")
    tap(x)
    with pytest.raises(RuntimeError, match="did not run"):
        tap(x, use_b=False)
    skips(x)
    assert tap.features.shape == x.shape
    skips(x, use_b=False)
    with pytest.raises(RuntimeError, match="did not run"):
        tap.features


def test_remove_and_context_manager():
    model = Tiny()
    with attach_features(model, "body") as tap:
        tap(images()[0])
    assert not model.body._forward_hooks and not model._forward_pre_hooks
    tap.remove()  # idempotent
    model(images()[0])
    with pytest.raises(RuntimeError):
        tap.features


def test_in_place_overwrite_is_detected_and_clone_avoids_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Conv2d(4, K, 1))
    x, _ = images()
    with pytest.raises(RuntimeError, match="in place"):
        attach_features(model, "1")(x)
    _, z = attach_features(model, "1", clone=True)(x)
    assert (z < 0).any()  # the BN output before the in-place ReLU
    model.eval()
    torch.testing.assert_close(attach_features(model, "1", clone=True)(x)[1], model[1](model[0](x)))


def test_wrong_layer_name_lists_valid_names(deeplab):
    model = deeplab
    with pytest.raises(ValueError, match=r"backbone\.layer4") as err:
        attach_features(model, "backbone.layer5")
    assert "top-level names: ['backbone', 'classifier']" in str(err.value)
    with pytest.raises(TypeError, match="layer"):
        attach_features(model, 4)
    with pytest.raises(ValueError, match="capture"):
        attach_features(model, "backbone", capture="grad")
    with pytest.raises(TypeError, match="Module"):
        FeatureTap(lambda x: x, "a")


def test_wrapper_prefixes_resolve_to_the_inner_module():
    model = Tiny()
    wrapped = nn.DataParallel(model)  # on CPU: calls the module directly
    assert unwrap_model(wrapped) is model
    for name in ("body", "module.body"):
        tap = attach_features(wrapped, name)
        assert tap.module is model.body and tap.layer == "body"
        x, _ = images()
        _, z = tap(x)
        torch.testing.assert_close(z, model.body(x))
        tap.remove()


# --------------------------------------------------------------------------- AMP, compile
def test_autocast_bfloat16_features():
    torch.manual_seed(0)
    model = Tiny().eval()
    tap = attach_features(model, "head", capture="input")
    ceco = CenterCollapseLoss(K, 6, generator=gen(3))
    x, y = images()
    _, z32 = tap(x)
    ref = ceco(z32, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, z = tap(x)
        loss = F.cross_entropy(out.float(), y) + ceco(z, y)
    assert z.dtype == torch.bfloat16
    assert ceco(z, y).dtype == torch.float32
    assert float(ceco(z, y).detach()) == pytest.approx(float(ref.detach()), rel=5e-2)
    loss.backward()
    assert model.body[0].weight.grad is not None


@pytest.mark.slow
def test_torch_compile_gives_the_eager_features_loss_and_gradients():
    torch.manual_seed(0)
    eager = Tiny()
    compiled_model = Tiny()
    compiled_model.load_state_dict(eager.state_dict())
    ceco = CenterCollapseLoss(K, 6, generator=gen(4))
    x, y = images()

    tap_e = attach_features(eager, "head", capture="input")
    tap_c = attach_features(compiled_model, "head", capture="input")  # attach, then compile
    compiled = torch.compile(compiled_model, backend="aot_eager")
    tap_c.model = compiled
    results = []
    for tap, params in ((tap_e, eager), (tap_c, compiled_model)):
        out, z = tap(x)
        loss = F.cross_entropy(out, y) + 0.5 * ceco(z, y)
        loss.backward()
        results.append((z.detach(), loss.detach(), params.body[0].weight.grad.clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a second batch is captured fresh (no stale graph output)
    x2, _ = images(seed=5)
    _, z2 = tap_c(x2)
    torch.testing.assert_close(z2, eager.body(x2), rtol=1e-5, atol=1e-6)
    # attaching to a model whose compiled code already ran: the hook is never traced -> a clear error
    late = Tiny()
    late_c = torch.compile(late, backend="aot_eager")
    late_c(x)
    tap = attach_features(late_c, "_orig_mod.head", capture="input")
    assert tap.module is late.head
    with pytest.raises(RuntimeError, match="compile"):
        tap(x)


# --------------------------------------------------------------------------- segmentation_models_pytorch
@pytest.mark.slow
@pytest.mark.parametrize("arch,dim,stride", [("Unet", 16, 1), ("DeepLabV3Plus", 256, 4)])
def test_segmentation_models_pytorch(arch, dim, stride):
    smp = pytest.importorskip("segmentation_models_pytorch", reason="optional: pip install 'ceco-lite[smp]'")
    torch.manual_seed(0)
    model = getattr(smp, arch)("resnet18", encoder_weights=None, classes=K)
    tap = attach_features(model, "segmentation_head.0", capture="input")
    x, y = images(size=64)
    out, z = tap(x)
    assert z.shape == (2, dim, 64 // stride, 64 // stride)
    loss = F.cross_entropy(main_output(out), y) + 0.5 * CenterCollapseLoss(K, dim, generator=gen(6))(z, y)
    loss.backward()
    assert float(model.encoder.conv1.weight.grad.abs().sum()) > 0
