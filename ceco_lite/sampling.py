"""Class-balanced subsampling: at most ``max_per_class`` random samples of every class.

Used wherever a few pixels per class must stand for millions: In2NeCT's
contrastive loss (its "max views" per class), the features a run keeps for
t-SNE, and the t-SNE lessons.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .validation import IGNORE_INDEX, check_generator, check_ignore_index, check_int, check_tensor

__all__ = ["sample_per_class"]


def sample_per_class(
    labels,
    max_per_class: int | None,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Indices of at most ``max_per_class`` random samples of each class.

    Uniform sampling without replacement within each class (a class with fewer
    samples keeps all of them); ``ignore_index`` samples are never drawn. One
    random key per sample, a sort by key, a stable sort by class and a
    rank-within-class cut: no Python loop over classes.

    Parameters
    ----------
    labels : torch.Tensor or numpy.ndarray
        ``(N,)`` or ``(B, H, W)`` integer labels (any non-negative class ids, or
        ``ignore_index``).
    max_per_class : int or None
        Cap per class (``>= 1``); ``None`` keeps every labelled sample.
    ignore_index : int or None, default 255
        Label that is never drawn; ``None`` draws from every label.
    generator : torch.Generator, optional
        Source of the random keys (on its own device; the result is moved to
        ``labels``' device). ``None`` uses torch's global generator.

    Returns
    -------
    torch.Tensor
        ``(P,)`` int64 indices into ``labels.reshape(-1)``, grouped by class in
        ascending class order, random order within a class.

    Raises
    ------
    TypeError
        ``labels`` not an integer tensor or array, bad ``generator``.
    ValueError
        ``max_per_class < 1``, negative labels other than ``ignore_index``.

    Examples
    --------
    >>> y = torch.tensor([0, 0, 0, 1, 255, 1, 0])
    >>> idx = sample_per_class(y, 2, generator=torch.Generator().manual_seed(0))
    >>> y[idx].tolist()
    [0, 0, 1, 1]
    """
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    check_tensor(labels, "labels", kind="integer")
    if max_per_class is not None:
        max_per_class = check_int(max_per_class, "max_per_class", minimum=1)
    check_generator(generator)
    ignore_index = check_ignore_index(ignore_index)
    y = labels.reshape(-1).long()
    kept = torch.arange(y.numel(), device=y.device) if ignore_index is None else torch.nonzero(y != ignore_index).flatten()
    y = y[kept]
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0 or equal ignore_index={ignore_index}, found {int(y.min())}")
    if max_per_class is None:
        return kept[torch.argsort(y, stable=True)]
    if generator is not None:
        keys = torch.rand(kept.numel(), generator=generator, device=generator.device).to(y.device)
    else:
        keys = torch.rand(kept.numel(), device=y.device)
    order = torch.argsort(keys)
    order = order[torch.argsort(y[order], stable=True)]
    y_sorted = y[order]
    counts = torch.bincount(y_sorted)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(y_sorted.numel(), device=y.device) - starts[y_sorted]
    return kept[order[rank < max_per_class]]
