"""One training step's loss: the model and every loss term in one module.

Losses (CeCo paper Eq. 5, In2NeCT Eq. 7)::

    L = CE(logits, y) + λ L_CR(features, y) + w (L_Inter + L_Intra)
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..ceco import CenterCollapseLoss, CompiledCenterLoss, ReleasedCenterCollapseLoss
from ..dot_regression import DotRegressionLoss
from ..in2nect import In2NeCTLoss
from .config import TrainConfig
from .evaluation import upsample_logits

__all__ = ["TrainStep", "build_losses"]


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 (autocast) -> float32 for the losses; float32 / float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def build_losses(config: TrainConfig, dim: int, device, process_group=None):
    """The regulariser modules of ``config``: ``(ceco, in2nect)``, each None when unused.

    * ``ceco_lambda > 0``: :class:`ceco_lite.CenterCollapseLoss` (``ceco_variant="paper"``,
      CeCo paper Eq. 3-4; centres over ``process_group`` when given) or
      :class:`ceco_lite.ReleasedCenterCollapseLoss` (``"released"``, per-process centres).
    * ``in2nect_weight > 0``: :class:`ceco_lite.In2NeCTLoss` (In2NeCT Eq. 5-7); its pixel
      sampling draws from torch's global generator, which checkpoints save and restore.

    The ETF is drawn from a generator seeded with ``config.seed + 1``.
    """
    ceco = in2nect = None
    gen = torch.Generator().manual_seed(config.seed + 1)
    if config.ceco_lambda > 0:
        if config.ceco_variant == "paper":
            ceco = CenterCollapseLoss(
                config.num_classes, dim, scale=config.ceco_scale, reduction=config.ceco_reduction,
                learnable=not config.fixed_center_classifier, generator=gen, ignore_index=config.ignore_index,
                process_group=process_group,
            )
        else:
            ceco = ReleasedCenterCollapseLoss(config.num_classes, dim, generator=gen,
                                              ignore_index=config.ignore_index)
        ceco = ceco.to(device)
    if config.in2nect_weight > 0:
        in2nect = In2NeCTLoss(config.num_classes, dim, weight=config.in2nect_weight,
                              ignore_index=config.ignore_index).to(device)
    return ceco, in2nect


class TrainStep(nn.Module):
    """Model plus training losses in one module (so DDP synchronises every parameter,
    including a learned centre classifier).

    ``forward(x, y) -> (total_loss, terms)`` with ``terms`` a dict of detached scalars
    (``"ce"`` or ``"dot_regression"``, ``"ceco"``, ``"in2nect_inter"``, ``"in2nect_intra"``, ``"total"``).
    With ``classifier_loss="dot_regression"`` the classifier's loss is
    :class:`ceco_lite.DotRegressionLoss` onto the model's fixed simplex-ETF classifier.
    The cross-entropy is the mean over labelled pixels (an exact 0 when a batch has none). With
    ``config.compile_loss`` the CeCo term is computed by :class:`ceco_lite.ceco.CompiledCenterLoss`
    (attribute ``compiled_ceco``; ``None`` otherwise) from the same module ``ceco``.

    Under DistributedDataParallel with global centres the cross-entropy is normalised
    by the global number of labelled pixels and multiplied by the world size, so that
    DDP's gradient averaging yields exactly the gradient of the single-process loss on
    the global batch (the CeCo term's all-reduce of per-class sums already makes each
    process's gradient world-size times its share). This holds with BatchNorm too: the
    engine converts every BatchNorm layer to one over the global batch
    (:func:`ceco_lite.engine.batchnorm.convert_batchnorm`; on the CPU as well).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, *, ceco: nn.Module | None = None,
                 in2nect: nn.Module | None = None, process_group=None, world_size: int = 1):
        super().__init__()
        self.model = model
        self.ceco = ceco
        # config.compile_loss: L_CR through the compiled form of the module (not a submodule: no state of its own)
        self.compiled_ceco = (CompiledCenterLoss(ceco) if config.compile_loss and isinstance(ceco, CenterCollapseLoss)
                              else None)
        self.in2nect = in2nect
        self.task = config.task
        self.ignore_index = int(config.ignore_index)
        self.ceco_lambda = float(config.ceco_lambda)
        self.in2nect_weight = float(config.in2nect_weight)
        self.world_size = int(world_size)
        self.global_ce = world_size > 1 and config.ceco_sync == "global"
        self._pg = process_group
        self.dot_regression = None
        if config.classifier_loss == "dot_regression":
            self.dot_regression = DotRegressionLoss(config.num_classes, model.feature_dim,
                                                    etf=model.classifier_weight().detach(),
                                                    ignore_index=config.ignore_index)

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        out = self.model(x)
        logits, feats = out["logits"], out["features"]
        if self.dot_regression is not None:
            total = self.dot_regression(_upcast(feats), y)
            terms = {"dot_regression": total.detach()}
            return self._regularise(total, terms, feats, y)
        logits = upsample_logits(logits, y.shape[-2:]) if self.task == "segmentation" else _upcast(logits)
        if self.global_ce:
            n = (y != self.ignore_index).sum().to(logits.dtype)
            n_global = n.detach().clone()
            dist.all_reduce(n_global, group=self._pg)
            ce_sum = F.cross_entropy(logits, y, ignore_index=self.ignore_index, reduction="sum")
            ce = ce_sum * (self.world_size / n_global.clamp_min(1))
        else:  # the mean over labelled pixels; sum / n is bitwise F.cross_entropy's mean, and 0 when n = 0
            n = (y != self.ignore_index).sum().clamp_min(1).to(logits.dtype)
            ce = F.cross_entropy(logits, y, ignore_index=self.ignore_index, reduction="sum") / n
        return self._regularise(ce, {"ce": ce.detach()}, feats, y)

    def _regularise(self, total: torch.Tensor, terms: dict, feats: torch.Tensor, y: torch.Tensor):
        """Add the CeCo and In2NeCT terms to the classifier's loss ``total``."""
        if self.ceco is not None and self.ceco_lambda > 0:
            l_cr = (self.compiled_ceco or self.ceco)(_upcast(feats), y)
            total = total + self.ceco_lambda * l_cr
            terms["ceco"] = l_cr.detach()
        if self.in2nect is not None and self.in2nect_weight > 0:
            # In2NeCT Eq. 7: L_Seg + w (L_Inter + L_Intra), with L_Seg the cross-entropy above
            z = _upcast(feats)
            inter, intra = self.in2nect.inter(z, y), self.in2nect.intra(z, y)
            total = total + self.in2nect_weight * (inter + intra)
            terms["in2nect_inter"] = inter.detach()
            terms["in2nect_intra"] = intra.detach()
        terms["total"] = total.detach()
        return total, terms
