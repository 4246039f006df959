"""Engine data storage: uint8 images (and Cityscapes masks) for real data, decoded per
mini-batch to exactly the float32 / int64 tensors of the data sets' own float path;
synthetic data stay float32 / int64 and pass through unchanged."""
from __future__ import annotations

import warnings

import pytest
import torch

import data_utils
from ceco_lite.engine import get_preset
from ceco_lite.engine.data import decode_batch, epoch_generator, iterate_batches, load_data
from data_utils import CityscapesSubset, default_data_dir, make_synthetic_segmentation
from data_utils.cifar_lt import CIFAR_MEAN, CIFAR_STD

pytestmark = pytest.mark.timeout(120)


needs_data = pytest.mark.skipif(default_data_dir() is None, reason="no real data root (CECO_DATA_DIR)")


def test_decode_batch_matches_float64_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 5, 6), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 4, (4, 5, 6), generator=g, dtype=torch.uint8)
    y[0, 0, 0] = 255
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    xb, yb = decode_batch(x, y, mean=mean, std=std)
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    ref = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(xb.double(), ref, rtol=0, atol=1e-6)
    assert torch.equal(yb, y.long()) and int(yb[0, 0, 0]) == 255
    # no statistics: plain scaling to [0, 1]
    torch.testing.assert_close(decode_batch(x).double(), x.double() / 255, rtol=0, atol=1e-7)
    # floating images are model-ready: returned unchanged (synthetic data)
    xf = torch.rand(2, 3, 4, 4, generator=g)
    out, lab = decode_batch(xf, torch.zeros(2, 4, 4, dtype=torch.long), mean=mean, std=std)
    assert out is xf and lab.dtype == torch.int64
    with pytest.raises(TypeError, match="uint8 or floating"):
        decode_batch(x.long())


def test_synthetic_bundle_stays_float32_and_batches_pass_through():
    cfg = get_preset("synthetic-cpu", num_images=8, num_val_images=4, image_size=(8, 8), progress=False)
    data = load_data(cfg)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert data.mean is None and data.std is None
    opts = dict(cfg.synthetic_options)
    seed = int(opts.pop("seed", 0))
    opts.pop("val_seed", None)
    ref = make_synthetic_segmentation(8, cfg.num_classes, (8, 8), cfg.imbalance_factor, seed=seed, **opts)
    ref_x = torch.as_tensor(ref[0] if isinstance(ref, (tuple, list)) else ref.images).float()
    assert torch.equal(data.train_x, ref_x)
    kw = dict(seed=1, epoch=0, augment=False, task="segmentation")
    perm = torch.randperm(8, generator=epoch_generator(1, 0))  # the iterator's shuffle
    for b, (xb, yb) in enumerate(iterate_batches(data.train_x, data.train_y, 4, decode=data.decode, **kw)):
        idx = perm[4 * b:4 * b + 4]
        assert torch.equal(xb, data.train_x[idx]) and torch.equal(yb, data.train_y[idx])


@needs_data
def test_cityscapes_stored_uint8_and_batches_equal_float_path():
    cfg = get_preset("cityscapes-sample", limit_images=3, image_size=(32, 64), num_workers=0, progress=False)
    data = load_data(cfg)
    for t in (data.train_x, data.val_x, data.train_y, data.val_y):
        assert t.dtype == torch.uint8
    assert data.train_x.shape == (3, 3, 32, 64) and data.train_y.shape == (3, 32, 64)
    assert data.train_x.element_size() * data.train_x[0].numel() == 3 * 32 * 64  # 1 byte per value
    # independent reference: the data helper's own float path (ImageNet-normalised float32, int64 masks)
    ds = CityscapesSubset(cfg.dataset_spec.resolve_root(), split="train", size=(32, 64), normalize=True)
    ref_x = torch.stack([ds[i][0] for i in range(3)])
    ref_y = torch.stack([ds[i][1] for i in range(3)])
    x, y = data.decode(data.train_x, data.train_y)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
    # batches (with flips) equal those drawn from the former float32 / int64 store
    kw = dict(seed=5, epoch=1, augment=True, task="segmentation")
    new = list(iterate_batches(data.train_x, data.train_y, 2, decode=data.decode, **kw))
    old = list(iterate_batches(ref_x, ref_y, 2, **kw))
    assert len(new) == len(old) == 1
    for (xa, ya), (xb, yb) in zip(new, old):
        assert xa.dtype == torch.float32 and ya.dtype == torch.int64
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@needs_data
def test_cifar_stored_uint8_and_batches_equal_float_path():
    cfg = get_preset("cifar10-lt", verify_checksums=False, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # truncated CIFAR copy: md5 differs
        data = load_data(cfg)
        ds = data_utils.CIFAR10LT(cfg.dataset_spec.resolve_root(), train=True, imbalance_factor=cfg.imbalance_factor,
                                  verify_checksums=False)
    assert data.train_x.dtype == data.val_x.dtype == torch.uint8 and data.train_y.dtype == torch.int64
    fx, fy = ds.tensors()  # the data helper's float32 [0, 1] images
    ref_x = (fx - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    assert torch.equal(data.decode(data.train_x), ref_x) and torch.equal(data.train_y, fy)
    # random crop pads with zeros in the normalised space, as before: decode comes first
    kw = dict(seed=2, epoch=3, augment=True, task="classification")
    new = list(iterate_batches(data.train_x, data.train_y, 128, decode=data.decode, **kw))
    old = list(iterate_batches(ref_x, fy, 128, **kw))
    assert len(new) == len(old) >= 2
    for (xa, ya), (xb, yb) in zip(new, old):
        assert xa.dtype == torch.float32 and torch.equal(xa, xb) and torch.equal(ya, yb)
