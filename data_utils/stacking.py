"""Whole splits as tensors: stack the items of a map-style data set into two tensors."""
from __future__ import annotations

import torch

__all__ = ["stack_dataset"]


def stack_dataset(ds, *, limit: int | None = None, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the first ``limit`` ``(image, target)`` items of ``ds`` into two tensors.

    Outputs are preallocated with the shape and dtype of the first item and filled
    in place (peak memory = the result).

    Parameters
    ----------
    ds : torch.utils.data.Dataset
        Map-style, items ``(image, target)`` of fixed shapes.
    limit : int, optional
        Keep the first ``limit`` items (default all).
    num_workers : int, default 0
        Decode with a :class:`torch.utils.data.DataLoader` of this many workers.

    Returns
    -------
    (Tensor, Tensor)
        ``(N, *image.shape)`` and ``(N, *target.shape)``.
    """
    n = len(ds) if limit is None else min(limit, len(ds))
    x0, y0 = (torch.as_tensor(v) for v in ds[0])
    xs = torch.empty((n,) + tuple(x0.shape), dtype=x0.dtype)
    ys = torch.empty((n,) + tuple(y0.shape), dtype=y0.dtype)
    if num_workers > 0 and n > 16:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, range(n)), batch_size=8, num_workers=num_workers, shuffle=False
        )
        s = 0
        for x, y in loader:
            xs[s:s + len(x)], ys[s:s + len(x)] = x, y
            s += len(x)
        return xs, ys
    for i in range(n):
        x, y = ds[i] if i else (x0, y0)
        xs[i], ys[i] = torch.as_tensor(x), torch.as_tensor(y)
    return xs, ys
