"""Thread setting for the widgets' small-tensor callbacks."""
from __future__ import annotations

import contextlib

import torch

__all__ = ["single_thread"]


@contextlib.contextmanager
def single_thread():
    """Run the enclosed (small-tensor) work on one PyTorch CPU thread, then restore the setting.

    A widget callback works on tensors of a few thousand numbers; splitting such ops
    over threads costs more than it saves, and on a busy 2-core machine thread
    synchronisation can make a 2 ms gradient evaluation take 50-100 ms.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
