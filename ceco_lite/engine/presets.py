"""Named training configurations: the command line's ``--preset`` and the lessons' runs.

``get_preset(name, **overrides)`` returns a validated copy of a preset with
``overrides`` (any :class:`~ceco_lite.engine.TrainConfig` field) applied;
``ceco-lite presets`` lists them with :data:`PRESET_DESCRIPTIONS`.

Presets ending in ``-quick`` are the lessons' quick mode: small enough that a
whole lesson runs in about a minute on a 2-core CPU. Their full counterparts
have the same name without the suffix.
"""
from __future__ import annotations

from .config import TrainConfig

__all__ = ["PRESETS", "PRESET_DESCRIPTIONS", "get_preset", "preset_names"]

_SYNTHETIC_CPU = dict(
    dataset="synthetic", num_classes=8, image_size=(32, 32), num_images=384, num_val_images=256,
    imbalance_factor=100.0, model="small_seg", ceco_lambda=1.0, epochs=40, batch_size=16,
    lr=0.1, weight_decay=1e-3, schedule="poly", device="cpu", nc_max_images=96,
)
_LDAM = dict(  # LDAM-DRW recipe for CIFAR-LT (Cao et al. 2019): ResNet-32, IF 100, 200 epochs
    imbalance_factor=100.0, model="resnet32", ceco_lambda=0.4, epochs=200, batch_size=128, lr=0.1, momentum=0.9,
    weight_decay=2e-4, schedule="ldam", warmup_epochs=5, lr_milestones=(160, 180), lr_gamma=0.01, device="auto",
    nc_max_images=5000,
)
_CIFAR_CPU = dict(  # a small ResNet on CIFAR-10 on the CPU: poly schedule, no warm-up
    dataset="cifar10-lt", model="resnet8", ceco_lambda=0.0, batch_size=64, lr=0.05, weight_decay=5e-4,
    schedule="poly", warmup_epochs=0, lr_milestones=(), device="cpu", verify_checksums=False,
)

_CAMVID_CPU = dict(  # chosen on seeds 100 and 101 (CE lr 0.05 vs 0.1; CeCo λ 0.1 / 0.4 / 1, α 1 / 5)
    dataset="camvid", image_size=(120, 160), model="small_seg", ceco_lambda=0.4, ceco_scale=1.0, epochs=30,
    batch_size=8, lr=0.1, weight_decay=1e-3, schedule="poly", device="cpu", eval_every=5, nc_every=5,
    nc_max_images=64, num_threads=2,
)

_TABLE: dict[str, tuple[str, dict]] = {
    "synthetic-cpu": (
        "synthetic segmentation, 8 classes, pixel IF 100, 384 images of 32x32, small_seg, 40 epochs on a CPU "
        "(about 20 s); λ = 1.0 chosen by a sweep of {0.1, 0.2, 0.4, 0.6, 1.0} on seeds 0-2",
        _SYNTHETIC_CPU),
    "synthetic-quick": (
        "the lessons' quick version of synthetic-cpu: 128 training / 64 evaluation images, 8 epochs",
        dict(_SYNTHETIC_CPU, epochs=8, num_images=128, num_val_images=64, nc_max_images=64)),
    "synthetic-tiny": (
        "a few seconds of synthetic segmentation (96 images, 4 epochs): per-class IoU vs pixel frequency",
        dict(_SYNTHETIC_CPU, num_images=96, num_val_images=48, ceco_lambda=0.0, epochs=4, lr=0.05, eval_every=4,
             nc_every=4, nc_max_images=48)),
    "synthetic-terminal": (
        "64 synthetic images trained for 60 epochs without augmentation, close to fitting them "
        "(the terminal phase in which neural collapse is measured)",
        dict(_SYNTHETIC_CPU, ceco_lambda=0.0, epochs=60, num_images=64, augment=False, nc_every=5, eval_every=10)),
    "cityscapes-sample": (
        "the real Cityscapes pairs found (e.g. a 16 train / 10 val sample) at 128x256, small_seg, CPU",
        dict(dataset="cityscapes", image_size=(128, 256), model="small_seg", ceco_lambda=0.4, epochs=30,
             batch_size=4, lr=0.05, weight_decay=1e-3, schedule="poly", device="cpu")),
    "cityscapes": (
        "full Cityscapes at 512x1024 on a GPU: DeepLabV3-ResNet50, SGD lr 0.01, poly 0.9, wd 1e-3 "
        "(CeCo supplement Appendix D; batch 8)",
        dict(dataset="cityscapes", image_size=(512, 1024), model="deeplabv3_resnet50", pretrained=False,
             ceco_lambda=0.4, epochs=100, batch_size=8, lr=0.01, weight_decay=1e-3, schedule="poly", device="auto",
             nc_max_images=200, num_workers=8)),
    "camvid-cpu": (
        "CamVid (SegNet split, 11 classes), 120x160, small_seg, λ = 0.4, α = 1, 30 epochs, lr 0.1, batch 8, "
        "on a 2-core CPU (about 4 minutes a run)", _CAMVID_CPU),
    "camvid-quick": (
        "camvid-cpu for 10 epochs instead of 30, in the caller's torch threads (the lessons' quick mode: "
        "40-100 s a run in one thread of a 2-core CPU, depending on the CPU; the epochs chosen on seeds 100 "
        "and 101 among 6-24 epochs of 96-367 images at 96x128 or 120x160)",
        dict(_CAMVID_CPU, epochs=10, eval_every=10, nc_every=5, num_threads=None)),
    "camvid": (
        "CamVid at 360x480, DeepLabV3-ResNet-50, λ = 0.4, 200 epochs, poly schedule (a GPU job; add "
        "--set pretrained=true for ImageNet weights when they can be downloaded)",
        dict(dataset="camvid", image_size=(360, 480), model="deeplabv3_resnet50", pretrained=False,
             ceco_lambda=0.4, epochs=200, batch_size=8, lr=0.01, weight_decay=1e-3, schedule="poly",
             device="auto", eval_every=10, nc_every=10, nc_max_images=100, num_workers=4)),
    "cifar10-lt": (
        "CIFAR-10-LT, IF 100, ResNet-32, 200 epochs, LDAM-DRW schedule (a GPU job)",
        dict(_LDAM, dataset="cifar10-lt")),
    "cifar100-lt": (
        "CIFAR-100-LT, IF 100, ResNet-32 with a 128-d projection (d = 64 cannot hold a 100-class simplex ETF), "
        "200 epochs, LDAM-DRW schedule (a GPU job)",
        dict(_LDAM, dataset="cifar100-lt", feature_dim=128)),
    "cifar10-lt-cpu": (
        "ResNet-8 on the CIFAR-10-LT found, IF 100, 30 epochs on a CPU: the fixed-ETF comparison "
        "(classifier_loss, fixed_pixel_classifier) of Yang et al. 2022 in miniature",
        dict(_CIFAR_CPU, imbalance_factor=100.0, epochs=30, eval_every=10, nc_every=10, nc_max_images=512)),
    "cifar10-lt-quick": (
        "ResNet-8 on the CIFAR-10-LT found, IF 100, 4 epochs on a CPU (about 30 s)",
        dict(_CIFAR_CPU, imbalance_factor=100.0, epochs=4, eval_every=4, nc_every=4, nc_max_images=256)),
    "cifar10-balanced": (
        "ResNet-8 on 500 balanced CIFAR-10 images for 100 epochs without augmentation, close to fitting them",
        dict(_CIFAR_CPU, imbalance_factor=1.0, augment=False, limit_images=500, nc_max_images=500, epochs=100,
             nc_every=5, eval_every=10)),
    "cifar10-balanced-quick": (
        "the lessons' quick version of cifar10-balanced: 256 images, 12 epochs",
        dict(_CIFAR_CPU, imbalance_factor=1.0, augment=False, limit_images=256, nc_max_images=256, epochs=12,
             nc_every=2, eval_every=4)),
}

#: Named configurations (validated :class:`TrainConfig` objects, ``preset`` set to their name).
PRESETS: dict[str, TrainConfig] = {name: TrainConfig(**fields, preset=name) for name, (_, fields) in _TABLE.items()}
#: One line per preset: what it trains, how big, where.
PRESET_DESCRIPTIONS: dict[str, str] = {name: text for name, (text, _) in _TABLE.items()}


def preset_names() -> list[str]:
    """The preset names, sorted."""
    return sorted(PRESETS)


def get_preset(name: str, **overrides) -> TrainConfig:
    """A validated copy of preset ``name`` with ``overrides`` (TrainConfig fields) applied.

    Raises
    ------
    ValueError
        Unknown preset name (the message lists the presets) or unknown / invalid override.

    Examples
    --------
    >>> get_preset("synthetic-quick", seed=3).epochs
    8
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {preset_names()}")
    return PRESETS[name].replace(**overrides)
