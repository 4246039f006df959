"""Differentiable all-reduce for losses and layers that need statistics of the global batch.

Used by :class:`ceco_lite.CenterCollapseLoss` (``sync="global"``: class centres over
the global batch, CeCo paper Eq. 3) and by the engine's global-batch BatchNorm.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum"]


class _AllReduceSum(torch.autograd.Function):
    """Autograd-aware all-reduce (SUM): forward sums over the group, backward all-reduces the gradient.

    The same as ``torch.distributed.nn.functional.all_reduce`` (whose backward is an
    all-reduce SUM of ``grad_output``), which torch 2.14 deprecates with a FutureWarning in
    favour of the private ``torch.distributed._functional_collectives``; written out here
    so that the library emits no warning and uses public API only.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def all_reduce_sum(tensor: Tensor, group=None) -> Tensor:
    """Sum of ``tensor`` over the processes of ``group`` (default: all), differentiable.

    Parameters
    ----------
    tensor : Tensor
        Any shape and floating dtype; the same shape on every process.
    group : ProcessGroup, optional
        Default ``torch.distributed.group.WORLD``.

    Returns
    -------
    Tensor
        The elementwise sum over processes, same shape and dtype.  The backward pass
        all-reduces (SUM) the incoming gradient, so that ``d(sum over processes of L_p) / d
        tensor`` reaches every process.  ``tensor`` itself when no process group is
        initialised.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    return _AllReduceSum.apply(tensor, group if group is not None else dist.group.WORLD)
