"""Training configuration (:class:`TrainConfig`) and the named presets (:data:`PRESETS`).

A :class:`TrainConfig` is a validated dataclass: every field is checked in
``__post_init__`` so a bad configuration fails *before* any data is loaded or any
step is taken, with a :class:`ValueError` / :class:`TypeError` naming the field.
It round-trips through JSON (:meth:`TrainConfig.to_json`, :meth:`TrainConfig.from_json`),
which is how a run directory records what was run.

Recipes
-------
* Segmentation (CeCo paper, supplement Appendix D.2): SGD, momentum 0.9, poly
  learning-rate decay ``lr_t = lr_0 (1 - t/T)^0.9`` per step, weight decay 1e-3
  (2D) with lr 0.01 (2D, batch 16) or lr ~0.1 (3D, batch 32).
* CIFAR-LT (LDAM-DRW recipe, Cao et al. 2019, public code ``cifar_train.py``):
  ResNet-32, SGD momentum 0.9, weight decay 2e-4, lr 0.1, batch 128, 200 epochs,
  linear warm-up over the first 5 epochs (``lr * (e+1)/5``), then ``lr * 0.01`` after
  epoch 160 and ``lr * 1e-4`` after epoch 180 (i.e. ×0.01 at each milestone).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from data_utils import make_synthetic_segmentation
from data_utils.registry import DatasetSpec, get_dataset

from ..validation import (check_bool, check_choice, check_float, check_ignore_index, check_int, check_num_classes,
                          check_optional_int, check_optional_path, check_positive, check_seed, check_size)

__all__ = ["TrainConfig", "RUN_FIELDS"]

_SCHEDULES = ("poly", "ldam", "constant")
_VARIANTS = ("paper", "released")
_SYNC = ("global", "local")
_AMP = ("auto", "bf16", "off")
_DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")
_DEVICE_RE = re.compile(r"^(cpu|cuda|mps)(:\d+)?$|^auto$")
#: Largest seed: NumPy's limit (``2**32 - 1``).
MAX_SEED = 2**32 - 1
#: Upper bounds on the CPU threads and loader workers one run may ask for.
MAX_THREADS = 1024
#: ``synthetic_options`` that :func:`data_utils.make_synthetic_segmentation` accepts (plus ``val_seed``).
SYNTHETIC_OPTIONS = tuple(sorted(
    {n for n in inspect.signature(make_synthetic_segmentation).parameters
     if n not in ("num_images", "num_classes", "size", "imbalance_factor", "generator", "ignore_index")}
    | {"val_seed"}))

#: The fields that do not change what a run computes: where it is written, how it is shown,
#: how many CPU threads or loader workers it uses, and whether it resumes or overwrites.
#: Everything else decides the result: it enters :meth:`TrainConfig.tag` (and so the default run
#: folder name), and a run can only be resumed with the same values.
RUN_FIELDS = ("out_dir", "resume", "overwrite", "progress", "num_threads", "num_workers", "checkpoint", "preset",
              "data_root", "compile_loss")


@dataclass
class TrainConfig:
    """Everything one training run needs; validated on construction.

    Parameters
    ----------
    dataset : {"synthetic", "cityscapes", "cifar10-lt", "cifar100-lt"}
        Data source. ``task`` follows from it.
    model : str
        Name for :func:`ceco_lite.models.build_model` ("small_seg",
        "lraspp_mobilenet_v3", "deeplabv3_resnet50", "resnet32", ...).
    num_classes : int or None
        K. Required for "synthetic"; fixed by the data set otherwise (19 Cityscapes
        trainIds, 10 / 100 CIFAR classes) and filled in automatically.
    ceco_lambda : float, default 0.0
        λ of CeCo paper Eq. 5 (``L = L_PR + λ L_CR``); 0 gives the plain
        cross-entropy baseline. Must be ≥ 0.
    ceco_variant : {"paper", "released"}
        :class:`ceco_lite.CenterCollapseLoss` (paper Eq. 3–5) or
        :class:`ceco_lite.ReleasedCenterCollapseLoss` (released code, docs/conventions.md, section ceco-released).
    fixed_pixel_classifier, fixed_center_classifier : bool
        The four rows of CeCo paper Table 1 (PC / CC fixed ETF or learned).
        Paper's best: learned PC (False) + fixed CC (True).
    ceco_sync : {"global", "local"}
        Under DistributedDataParallel: centres over the global batch (all-reduce of
        per-class sums and counts) or per process (released code).
    in2nect_weight : float, default 0.0
        w of In2NeCT Eq. 7 (``L = L_Seg + w (L_Inter + L_Intra)``); 0 disables it.
    classifier_loss : {"cross_entropy", "dot_regression"}, default "cross_entropy"
        The loss of the (pixel or image) classifier: cross-entropy, or the dot-regression
        loss of Yang et al. (NeurIPS 2022) onto the fixed simplex-ETF classifier
        (:class:`ceco_lite.DotRegressionLoss`; needs ``fixed_pixel_classifier=True``).
    schedule : {"poly", "ldam", "constant"}
        Learning-rate schedule, see the module docstring.
    num_images, num_val_images : int
        Synthetic data only: training / evaluation images generated.
    limit_images : int or None
        Real data only: keep the first ``limit_images`` training and evaluation
        images (tests, quick looks); None keeps all.
    verify_checksums : bool, default True
        CIFAR: check the official md5 sums (False accepts e.g. a truncated copy, with a warning).
    max_steps : int or None
        Stop after this many optimiser steps (the epoch in progress is finished,
        evaluated and checkpointed). The schedule's horizon is shortened to match.
    save_features : int, default 0
        At the end, keep up to this many final pixel (or image) features per class
        from the evaluation set (for t-SNE) and save them as ``features.pt``.
    device : str, default "auto"
        "auto" picks CUDA, then MPS, then CPU.
    amp : {"auto", "bf16", "off"}
        bf16 autocast ("auto": on CUDA only).
    compile : bool, default False
        ``torch.compile`` the model.
    compile_loss : bool, default False
        Train the CeCo term through :class:`ceco_lite.ceco.CompiledCenterLoss` (``torch.compile``
        of the centre loss, forward and backward; replayed as a CUDA graph on CUDA). The same
        loss to round-off, like ``num_threads`` it does not enter :meth:`tag`. Needs
        ``ceco_variant="paper"``.
    """

    # data
    dataset: str = "synthetic"
    data_root: str | None = None
    num_classes: int | None = None
    ignore_index: int = 255
    image_size: tuple[int, int] | None = None
    num_images: int = 64
    num_val_images: int = 32
    imbalance_factor: float = 100.0
    synthetic_options: dict = field(default_factory=dict)
    limit_images: int | None = None
    verify_checksums: bool = True
    augment: bool = True
    # model
    model: str = "small_seg"
    feature_dim: int | None = None
    pretrained: bool = False
    model_options: dict = field(default_factory=dict)
    fixed_pixel_classifier: bool = False
    # CeCo / In2NeCT
    ceco_lambda: float = 0.0
    ceco_variant: str = "paper"
    ceco_scale: float = 1.0
    ceco_reduction: str = "mean"
    fixed_center_classifier: bool = True
    ceco_sync: str = "global"
    in2nect_weight: float = 0.0
    classifier_loss: str = "cross_entropy"
    # optimisation
    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-3
    nesterov: bool = False
    schedule: str = "poly"
    poly_power: float = 0.9
    warmup_epochs: int = 0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.01
    max_steps: int | None = None
    seed: int = 0
    # evaluation / records
    eval_every: int = 1
    nc_every: int = 1
    nc_max_images: int | None = None
    save_features: int = 0
    # system
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    compile_loss: bool = False
    num_threads: int | None = None
    num_workers: int = 0
    progress: bool = True
    out_dir: str | None = None
    resume: bool = False
    overwrite: bool = False
    checkpoint: bool = True
    preset: str | None = None

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        spec = get_dataset(self.dataset)  # ValueError listing the registered data sets
        if self.image_size is not None:
            self.image_size = check_size(self.image_size, "image_size")
        self.lr_milestones = tuple(check_int(m, "lr_milestones", minimum=1) for m in self.lr_milestones)
        if list(self.lr_milestones) != sorted(self.lr_milestones):
            raise ValueError(f"lr_milestones must be increasing positive epochs, got {self.lr_milestones}")
        if spec.num_classes is None:
            if self.num_classes is None:
                raise ValueError(f"num_classes is required for dataset={self.dataset!r}")
        elif self.num_classes is None:
            self.num_classes = spec.num_classes
        elif self.num_classes != spec.num_classes:
            raise ValueError(f"num_classes must be {spec.num_classes} for dataset={self.dataset!r}, "
                             f"got {self.num_classes}")
        self.num_classes = check_num_classes(self.num_classes)
        self.ignore_index = check_ignore_index(self.ignore_index, self.num_classes)
        if self.ignore_index is None:
            raise TypeError("ignore_index must be an int (the label of ignored pixels), got None")
        for name in ("num_images", "num_val_images", "epochs", "batch_size", "eval_every", "nc_every"):
            setattr(self, name, check_int(getattr(self, name), name, minimum=1))
        for name in ("save_features", "num_workers", "warmup_epochs"):
            setattr(self, name, check_int(getattr(self, name), name, minimum=0))
        self.seed = check_int(check_seed(self.seed), "seed", maximum=MAX_SEED)
        for name in ("max_steps", "nc_max_images", "num_threads", "feature_dim", "limit_images"):
            setattr(self, name, check_optional_int(getattr(self, name), name, minimum=1))
        for name in ("num_threads", "num_workers"):
            check_optional_int(getattr(self, name), name, maximum=MAX_THREADS)
        self.imbalance_factor = check_float(self.imbalance_factor, "imbalance_factor", minimum=1.0)
        self.ceco_lambda = check_float(self.ceco_lambda, "ceco_lambda", minimum=0.0,
                                       hint="λ = 0 is the cross-entropy baseline")
        self.in2nect_weight = check_float(self.in2nect_weight, "in2nect_weight", minimum=0.0)
        for name in ("ceco_scale", "lr", "lr_gamma"):
            setattr(self, name, check_positive(getattr(self, name), name))
        for name in ("weight_decay", "poly_power"):
            setattr(self, name, check_float(getattr(self, name), name, minimum=0.0))
        self.momentum = check_float(self.momentum, "momentum", minimum=0.0, maximum=1.0, strict_maximum=True)
        for name, allowed in (("ceco_variant", _VARIANTS), ("ceco_sync", _SYNC), ("amp", _AMP),
                              ("schedule", _SCHEDULES), ("ceco_reduction", ("mean", "sum"))):
            check_choice(getattr(self, name), name, allowed)
        for name in ("verify_checksums", "augment", "fixed_pixel_classifier", "fixed_center_classifier",
                     "nesterov", "compile", "compile_loss", "progress", "resume", "overwrite", "checkpoint"):
            setattr(self, name, check_bool(getattr(self, name), name))
        if self.channels_last is not None:
            self.channels_last = check_bool(self.channels_last, "channels_last")
        if not isinstance(self.pretrained, (bool, str)):
            raise TypeError(f"pretrained must be a bool, 'backbone' or 'full', got {self.pretrained!r}")
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {self.device!r}")
        for name in ("out_dir", "data_root"):
            setattr(self, name, check_optional_path(getattr(self, name), name))
        if not isinstance(self.model, str) or not self.model:
            raise TypeError(f"model must be a model name (str), got {self.model!r}")
        if self.ceco_variant == "released" and self.task != "segmentation":
            raise ValueError("ceco_variant='released' (a 1x1-conv head on pixel features) needs a segmentation dataset")
        if self.compile_loss and self.ceco_variant != "paper":
            raise ValueError("compile_loss=True compiles CenterCollapseLoss: it needs ceco_variant='paper', "
                             f"got {self.ceco_variant!r}")
        if self.in2nect_weight > 0 and self.task != "segmentation":
            raise ValueError("in2nect_weight > 0 needs a segmentation dataset (In2NeCT is a pixel loss)")
        check_choice(self.classifier_loss, "classifier_loss", ("cross_entropy", "dot_regression"))
        if self.classifier_loss == "dot_regression" and not self.fixed_pixel_classifier:
            raise ValueError("classifier_loss='dot_regression' regresses features onto a fixed simplex-ETF classifier "
                             "(Yang et al. 2022): set fixed_pixel_classifier=True")
        for name in ("synthetic_options", "model_options"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        if self.dataset == "synthetic":
            unknown = sorted(set(map(str, self.synthetic_options)) - set(SYNTHETIC_OPTIONS))
            if unknown:
                raise ValueError(f"synthetic_options has unknown key(s) {unknown}; known: {list(SYNTHETIC_OPTIONS)}")
            if self.synthetic_options.get("ignore_region") and self.num_classes > 255:
                raise ValueError("synthetic_options ignore_region=True marks ignored pixels with 255, which is a class "
                                 f"when num_classes > 255 (got num_classes={self.num_classes})")
        elif self.synthetic_options:
            raise ValueError(f"synthetic_options are given but dataset={self.dataset!r} is not generated")
        if self.resume and self.overwrite:
            raise ValueError("resume=True and overwrite=True contradict each other: choose one")
        if self.data_root is not None and not spec.needs_files:
            raise ValueError(f"data_root is given but dataset={self.dataset!r} is generated (it reads no files)")

    # ------------------------------------------------------------- properties
    @property
    def dataset_spec(self) -> DatasetSpec:
        """The data set's registry entry (:func:`data_utils.registry.get_dataset`)."""
        return get_dataset(self.dataset)

    @property
    def task(self) -> str:
        """"segmentation" or "classification" (the data set's task)."""
        return self.dataset_spec.task

    @property
    def uses_ceco(self) -> bool:
        """True when the CeCo term is trained (``ceco_lambda > 0``)."""
        return self.ceco_lambda > 0

    def result_dict(self) -> dict[str, Any]:
        """The fields that change what a run computes (all but :data:`RUN_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in RUN_FIELDS}

    def tag(self) -> str:
        """Short hash (10 hex digits) of :meth:`result_dict`: equal tags, equal results."""
        text = json.dumps(self.result_dict(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size is not None else None
        d["lr_milestones"] = list(self.lr_milestones)
        return d

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), indent=kw.pop("indent", 2), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise TypeError(f"a TrainConfig is made from a dict of its fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {unknown}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **overrides) -> "TrainConfig":
        """A validated copy with ``overrides`` applied (unknown names raise ValueError)."""
        d = self.to_dict()
        unknown = sorted(set(overrides) - set(d))
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {unknown}")
        d.update(overrides)
        return TrainConfig.from_dict(d)
