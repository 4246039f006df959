"""BatchNorm over the global batch of a distributed run, on every device.

Under DistributedDataParallel each process sees ``1 / world_size`` of the global
batch. Plain BatchNorm then normalises with per-process statistics, so the
distributed run computes another function than the single-process run on the
same global batch. :class:`torch.nn.SyncBatchNorm` fixes this on GPUs only (its
forward raises on CPU tensors, and DistributedDataParallel refuses it in a CPU
module). :class:`GlobalBatchNorm2d` (and ``1d``, ``3d``) is a BatchNorm layer that, in a
distributed run, computes the statistics of the global batch itself -- on the CPU,
with the gloo backend:

* per channel, the sum of the inputs and their number are all-reduced (SUM) and give
  the global mean; the sum of squared deviations from it is all-reduced and gives the
  global (biased) variance -- two passes, accumulated in float64 on the CPU, as
  PyTorch's own CPU BatchNorm accumulates;
* both all-reduces are autograd-aware (the backward all-reduces the gradient), so each
  process's gradient is exactly its share of the gradient of the global-batch loss;
* the running statistics are updated with the global mean and the unbiased global
  variance (``n / (n - 1)``, ``n`` the global count), identically on every process and
  identically to the single-process run.

Outside training mode, without an initialised process group or with a single
process it is the plain BatchNorm layer it subclasses. Its ``state_dict`` has the
keys of that layer, so checkpoints load into the unconverted model.
:func:`convert_batchnorm` converts a model (layers on CUDA become
:class:`torch.nn.SyncBatchNorm`).

>>> from torch import nn
>>> m = convert_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)))
>>> type(m[1]).__name__, isinstance(m[1], nn.BatchNorm2d), sorted(m[1].state_dict())
('GlobalBatchNorm2d', True, ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight'])
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..distributed import all_reduce_sum

__all__ = ["GlobalBatchNorm1d", "GlobalBatchNorm2d", "GlobalBatchNorm3d", "convert_batchnorm", "all_reduce_sum"]


class _GlobalStatistics:
    """Mixin for BatchNorm1d / 2d / 3d: statistics over the global batch in training mode."""

    process_group = None

    def _needs_sync(self) -> bool:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return False
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        return dist.get_world_size(group) > 1

    def forward(self, input: Tensor) -> Tensor:
        if not self._needs_sync():
            return super().forward(input)
        self._check_input_dim(input)
        return self._global_forward(input)

    def _global_forward(self, x: Tensor) -> Tensor:
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = (1, c) + (1,) * (x.dim() - 2)
        acc = torch.float64 if x.device.type == "cpu" else torch.float32
        xa = x.to(acc)
        local_n = torch.full((1,), x.numel() // c, dtype=acc, device=x.device)
        first = all_reduce_sum(torch.cat([xa.sum(dims), local_n]), group)
        n = first[c].detach()
        if float(n) < 2:
            raise ValueError(f"BatchNorm needs more than one value per channel over the global batch, got "
                             f"input of shape {tuple(x.shape)} on each process")
        mean = first[:c] / n
        dev = xa - mean.view(shape)
        var = all_reduce_sum((dev * dev).sum(dims), group) / n  # biased: used to normalise
        y = dev * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.to(acc).view(shape) + self.bias.to(acc).view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * (n / (n - 1)))
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        self.num_batches_tracked.add_(1)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else float(self.momentum)
        for buf, value in ((self.running_mean, mean), (self.running_var, unbiased_var)):
            buf.copy_((m * value + (1.0 - m) * buf.to(value.dtype)).to(buf.dtype))


class GlobalBatchNorm1d(_GlobalStatistics, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` over the global batch (module docstring)."""


class GlobalBatchNorm2d(_GlobalStatistics, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` over the global batch (module docstring)."""


class GlobalBatchNorm3d(_GlobalStatistics, nn.BatchNorm3d):
    """:class:`torch.nn.BatchNorm3d` over the global batch (module docstring)."""


_GLOBAL = {nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d, nn.BatchNorm3d: GlobalBatchNorm3d}


def convert_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """``module`` with every BatchNorm1d / 2d / 3d layer normalising over the global batch.

    Layers on CUDA become :class:`torch.nn.SyncBatchNorm`
    (:meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`), the others
    :class:`GlobalBatchNorm1d` / ``2d`` / ``3d``, over ``process_group`` (default: all
    processes). The new layers share the old ones' parameters and buffers and keep their
    training flag; returns the converted module (a new object when ``module`` itself is a
    BatchNorm layer, else ``module`` changed in place).
    """
    out = module
    kind = type(module)
    if kind in _GLOBAL:
        on_cuda = module.running_mean is not None and module.running_mean.is_cuda or \
            (module.weight is not None and module.weight.is_cuda)
        if on_cuda:
            return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
        out = _GLOBAL[kind](module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, device=None)
        out.process_group = process_group
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, convert_batchnorm(child, process_group))
    return out
