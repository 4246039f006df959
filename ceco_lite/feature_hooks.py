"""Attach CeCo to a model you did not write: capture its pre-classifier features with a hook.

A segmentation model from torchvision, ``segmentation_models_pytorch``, Hugging
Face (SegFormer) or MMSegmentation returns logits, not the pixel features that
the Center Collapse Regularizer (CeCo paper Eq. 3-5) needs. :class:`FeatureTap`
registers a forward hook on one named sub-module -- no change to the model's
code -- and hands back that module's output (or input) beside the model's own
output, on every forward::

    tap = attach_features(model, "classifier.4", capture="input")   # 1
    ceco = CenterCollapseLoss(num_classes, tap.feature_dim(x))        # 2
    ...
    out, z = tap(x)                                                   # 3: instead of out = model(x)
    loss = F.cross_entropy(main_output(out), y, ignore_index=255) + lam * ceco(z, y)

Features at an output stride are fine: :class:`ceco_lite.CenterCollapseLoss`
aligns ``(B, d, h, w)`` features with ``(B, H, W)`` labels. The layer whose
*input* is the pre-classifier feature map, for common models:

* torchvision ``deeplabv3_*`` and ``fcn_*``: ``"classifier.4"`` (the final 1x1 conv);
* torchvision ``lraspp_mobilenet_v3_large``: ``"classifier.high_classifier"``
  (LR-ASPP sums two 1x1 classifiers; the high branch's 128-d input is the one
  feature map at stride 8 -- :class:`ceco_lite.models.LRASPPFeatures` exposes
  both branches as one);
* ``segmentation_models_pytorch`` (Unet, DeepLabV3+, FPN, ...): ``"segmentation_head.0"``;
* Hugging Face ``SegformerForSemanticSegmentation``: ``"decode_head.classifier"``;
* MMSegmentation decode heads: ``"decode_head.conv_seg"``.

Wrappers are seen through: a ``DistributedDataParallel`` / ``DataParallel``
model (names with or without the ``module.`` prefix) and a ``torch.compile``
module (``_orig_mod.``). ``DataParallel`` over several GPUs is refused (its
replicas would each overwrite the capture); use DDP. With DDP, use ``CenterCollapseLoss(...,
process_group=...)`` (``sync="global"``) for centres over the global batch.
Attach *before* ``torch.compile`` runs the model for the first time: a model
already compiled does not see hooks added later, and :meth:`FeatureTap.__call__`
then says so.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from .validation import check_bool, check_choice

__all__ = ["FeatureTap", "attach_features", "main_output", "unwrap_model"]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's model inside ``DistributedDataParallel``/``DataParallel`` and ``torch.compile`` wrappers.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    nn.Module
        ``model.module`` for (D)DP, ``model._orig_mod`` for a compiled module,
        repeatedly; ``model`` itself when it is not wrapped.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> unwrap_model(nn.DataParallel(net)) is net
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    while True:
        if isinstance(model, (DistributedDataParallel, DataParallel)):
            model = model.module
            continue
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if isinstance(inner, nn.Module):
            model = inner
            continue
        return model


def _resolve_layer(model: nn.Module, inner: nn.Module, layer: str) -> tuple[str, nn.Module]:
    """``(name inside the unwrapped model, sub-module)`` for ``layer``; ``ValueError`` listing names."""
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a str (a name from model.named_modules()), got {type(layer).__name__}")
    names = dict(inner.named_modules())
    candidates = [layer]
    stripped = layer
    while stripped.startswith(_WRAPPER_PREFIXES):
        stripped = stripped.split(".", 1)[1]
        candidates.append(stripped)
    for name in candidates:
        if name in names and name != "":
            return name, names[name]
    outer = dict(model.named_modules())
    if layer in outer and layer != "" and outer[layer] is not model:
        module = outer[layer]
        for name, mod in names.items():
            if mod is module:
                return name, module
    valid = [n for n in names if n]
    close = difflib.get_close_matches(stripped, valid, n=5, cutoff=0.5)
    top = [n for n in valid if "." not in n]
    raise ValueError(
        f"layer {layer!r} is not a sub-module of {type(inner).__name__}"
        + (f"; closest names: {close}" if close else "")
        + f"; top-level names: {top}; all {len(valid)} names: [n for n, _ in model.named_modules()]"
    )


def _select(value: Any, index: int | str | None, where: str) -> Tensor:
    """The tensor ``value[index]`` of a hooked output/input (tensor, tuple/list, mapping or ModelOutput)."""
    if index is None:
        if isinstance(value, Tensor):
            return value
        if isinstance(value, Mapping) and len(value) == 1:
            value = next(iter(value.values()))
        elif isinstance(value, (tuple, list)) and len(value) == 1:
            value = value[0]
        else:
            keys = list(value.keys()) if isinstance(value, Mapping) else (
                f"{len(value)} items" if isinstance(value, (tuple, list)) else type(value).__name__)
            raise TypeError(f"the {where} is not a tensor ({keys}); choose one with index=...")
    else:
        try:
            value = value[index]
        except (KeyError, IndexError, TypeError) as exc:
            keys = list(value.keys()) if isinstance(value, Mapping) else type(value).__name__
            raise TypeError(f"index={index!r} does not select from the {where} ({keys})") from exc
    if not isinstance(value, Tensor):
        raise TypeError(f"the {where} selected by index={index!r} is a {type(value).__name__}, not a tensor")
    return value


def main_output(output: Any, key: str | None = None) -> Tensor:
    """The logits tensor of a model's output, whatever its container.

    A tensor is returned as is; a mapping gives ``output[key]``, else its
    ``"out"`` (torchvision segmentation models) or ``"logits"`` entry, else its
    only value; an object with a ``logits`` attribute (Hugging Face
    ``ModelOutput``) gives ``output.logits``; a tuple or list its first item.

    Parameters
    ----------
    output : Tensor, Mapping, tuple, list or ModelOutput
    key : str, optional
        Entry of a mapping output to take.

    Returns
    -------
    Tensor

    Raises
    ------
    TypeError
        No tensor can be chosen (the message lists the keys).

    Examples
    --------
    >>> main_output({"out": torch.zeros(1, 3), "aux": torch.ones(1, 3)}).sum().item()
    0.0
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        if key is not None:
            if key not in output:
                raise TypeError(f"the model output has no key {key!r}; keys: {list(output.keys())}")
            value = output[key]
        elif "out" in output:
            value = output["out"]
        elif "logits" in output:
            value = output["logits"]
        elif len(output) == 1:
            value = next(iter(output.values()))
        else:
            raise TypeError(f"cannot choose the logits among the keys {list(output.keys())}; pass key=...")
    elif isinstance(getattr(output, "logits", None), Tensor):
        value = output.logits
    elif isinstance(output, (tuple, list)) and output:
        value = output[0]
    else:
        raise TypeError(f"cannot find the logits in a model output of type {type(output).__name__}")
    if not isinstance(value, Tensor):
        raise TypeError(f"the chosen model output is a {type(value).__name__}, not a tensor")
    return value


class FeatureTap:
    """Capture one sub-module's output (or input) on every forward pass of a model.

    The hook is a forward hook (``capture="output"``) or forward pre-hook
    (``capture="input"``) on the named module; a forward pre-hook on the model
    clears the capture, so the features always come from the latest forward
    (never a stale batch) and at most one batch of features is referenced at a
    time -- none after :meth:`__call__` has returned them.

    Parameters
    ----------
    model : nn.Module
        Any model, possibly wrapped in ``DistributedDataParallel``,
        ``DataParallel`` or ``torch.compile`` (see :func:`unwrap_model`).
    layer : str
        Name of the sub-module in ``model.named_modules()`` (with or without
        a ``module.`` / ``_orig_mod.`` wrapper prefix).
    capture : {"output", "input"}, default "output"
        Take the module's output, or its (first positional) input -- e.g. the
        input of the final 1x1 classifier conv, the pre-classifier features.
    index : int or str, optional
        Element of a tuple/list/dict output (input: of the positional
        arguments, default 0). A one-element container needs none.
    detach : bool, default False
        Store the features without gradient (for statistics such as
        :class:`ceco_lite.NCAccumulator`); keep ``False`` for a loss.
    clone : bool, default False
        Store a copy, for a layer whose output a later in-place operation
        (e.g. ``nn.ReLU(inplace=True)``) overwrites; without it such a change
        is detected and reported when the features are read.

    Raises
    ------
    TypeError, ValueError
        ``model`` not a module, an unknown ``layer`` (the message names the
        closest valid names), a bad ``capture``.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    >>> tap = attach_features(net, "2", capture="input")
    >>> out, z = tap(torch.randn(2, 3, 16, 16))
    >>> out.shape, z.shape
    (torch.Size([2, 4, 16, 16]), torch.Size([2, 8, 16, 16]))
    >>> tap.remove()
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        *,
        capture: str = "output",
        index: int | str | None = None,
        detach: bool = False,
        clone: bool = False,
    ) -> None:
        self._inner = unwrap_model(model)
        if isinstance(model, DataParallel) and len(model.device_ids) > 1:
            raise ValueError(
                "DataParallel over several devices runs one replica per device and each would overwrite the "
                "captured features; use DistributedDataParallel"
            )
        self.model = model
        self.capture = check_choice(capture, "capture", ("output", "input"))
        if index is not None and (isinstance(index, bool) or not isinstance(index, (int, str))):
            raise TypeError(f"index must be an int, a str or None, got {type(index).__name__}")
        self.index = index
        self.detach = check_bool(detach, "detach")
        self.clone = check_bool(clone, "clone")
        self.layer, self.module = _resolve_layer(model, self._inner, layer)
        self._features: Tensor | None = None
        self._version: int | None = None
        if self.capture == "output":
            hook = self.module.register_forward_hook(self._on_output)
        else:
            hook = self.module.register_forward_pre_hook(self._on_input)
        self._handles = [hook, self._inner.register_forward_pre_hook(self._on_model_start)]

    # -- hooks -------------------------------------------------------------- #
    def _on_model_start(self, module, args) -> None:
        self._features = None
        self._version = None

    def _store(self, value: Any, where: str) -> None:
        feats = _select(value, self.index, where)
        if self.detach:
            feats = feats.detach()
        if self.clone:
            feats = feats.clone()
        self._features = feats
        if not torch.compiler.is_compiling():  # in-place check in eager mode only
            self._version = feats._version

    def _on_output(self, module, args, output) -> None:
        self._store(output, f"output of {self.layer!r}")

    def _on_input(self, module, args) -> None:
        if not args:
            raise TypeError(
                f"{self.layer!r} was called with keyword arguments only, which a forward pre-hook does not see; "
                "capture the output of the layer before it instead"
            )
        self._store(args if self.index is not None else args[0], f"input of {self.layer!r}")

    # -- reading ------------------------------------------------------------ #
    @property
    def features(self) -> Tensor:
        """Features captured in the latest forward pass of the model.

        Raises
        ------
        RuntimeError
            No forward pass has run since the tap was attached (or since
            :meth:`__call__` handed the features out), the layer did not run
            in it (or the model was compiled before the tap was attached), or
            a later in-place operation overwrote the captured tensor.
        """
        feats = self._features
        if feats is None:
            raise RuntimeError(
                f"no features captured from {self.layer!r} in the latest forward pass: the layer did not run, "
                "or the model was compiled (torch.compile) and run before attach_features -- attach before the "
                "first compiled call (or call torch.compiler.reset())"
            )
        if self._version is not None and feats._version != self._version:
            raise RuntimeError(
                f"the features captured from {self.layer!r} were modified in place after the hook ran (e.g. by "
                "nn.ReLU(inplace=True)); capture another layer or pass clone=True"
            )
        return feats

    def __call__(self, *args, **kwargs) -> tuple[Any, Tensor]:
        """Run ``model(*args, **kwargs)``; return ``(model output, features)``.

        The model output is returned unchanged (tensor, dict, tuple or
        ``ModelOutput``; :func:`main_output` picks the logits). The tap keeps
        no reference to the features afterwards.
        """
        self._features = None
        output = self.model(*args, **kwargs)
        feats = self.features
        self._features = None
        self._version = None
        return output, feats

    def feature_dim(self, *args, **kwargs) -> int:
        """Channels ``d`` of the features for an example input (one forward pass).

        Runs the model in eval mode without gradient and restores every
        module's train/eval mode afterwards, so BatchNorm statistics are not
        updated.
        """
        modes = [(m, m.training) for m in self._inner.modules()]
        self._inner.eval()
        try:
            with torch.no_grad():
                _, feats = self(*args, **kwargs)
        finally:
            for m, mode in modes:
                m.training = mode
        if feats.ndim < 2:
            raise ValueError(f"features of {self.layer!r} have shape {tuple(feats.shape)}: no channel dimension")
        return int(feats.shape[1])

    # -- lifetime ----------------------------------------------------------- #
    def remove(self) -> None:
        """Remove the hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._features = None

    def __enter__(self) -> "FeatureTap":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (
            f"FeatureTap({type(self._inner).__name__}, layer={self.layer!r}, capture={self.capture!r}, "
            f"detach={self.detach}, attached={bool(self._handles)})"
        )


def attach_features(
    model: nn.Module,
    layer: str,
    *,
    capture: str = "output",
    index: int | str | None = None,
    detach: bool = False,
    clone: bool = False,
) -> FeatureTap:
    """Attach a :class:`FeatureTap` to ``model`` at ``layer`` (see the class for the arguments).

    Returns
    -------
    FeatureTap
        Call it like the model: ``out, features = tap(x)``.

    Examples
    --------
    >>> from torchvision.models.segmentation import fcn_resnet50
    >>> net = fcn_resnet50(weights=None, weights_backbone=None, num_classes=3, aux_loss=False)
    >>> tap = attach_features(net, "classifier.4", capture="input")
    >>> out, z = tap(torch.randn(1, 3, 32, 32))
    >>> main_output(out).shape, z.shape
    (torch.Size([1, 3, 32, 32]), torch.Size([1, 512, 4, 4]))
    """
    return FeatureTap(model, layer, capture=capture, index=index, detach=detach, clone=clone)
