"""Timing helpers shared by the benchmark scripts (a helper module, not a benchmark).

CUDA work is asynchronous, so every timed call is bracketed by a device
synchronisation; on other devices the synchronisation is a no-op.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

__all__ = ["sync", "time_once", "best_time"]


def sync(device: torch.device) -> None:
    """Wait for the queued work of ``device`` (CUDA only; no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time in seconds of one synchronised call ``fn()``."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def best_time(fn: Callable[[], object], device: torch.device, repeats: int, *, warmup: bool = False) -> float:
    """Best (smallest) of ``repeats`` synchronised wall times of ``fn()``, in seconds.

    With ``warmup=True`` one untimed call comes first.
    """
    if warmup:
        fn()
    return min(time_once(fn, device) for _ in range(repeats))
