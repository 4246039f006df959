"""Checkpoints of a run: everything needed to continue it bit for bit, written atomically.

A checkpoint holds the model, optimiser, scheduler and loss-module states, the
random-number-generator states, the epoch and step reached, the history and the
configuration. It is written with :func:`ceco_lite.fileio.atomic_save` and read
with :func:`load_checkpoint`, which names the file when it is damaged.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..fileio import CorruptFileError, atomic_save, load_torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CHECKPOINT_KEYS"]

#: Entries every checkpoint written by the engine holds.
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "epoch", "step", "history", "config")


def rng_state() -> dict:
    """Python, NumPy, torch CPU (and CUDA, if initialised) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states of :func:`rng_state` (CPU tensors also when the checkpoint was mapped to CUDA)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
        except (RuntimeError, IndexError):  # fewer GPUs than when saved
            pass


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` (a dict with :data:`CHECKPOINT_KEYS`) to ``path`` atomically."""
    atomic_save(state, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    ceco_lite.fileio.CorruptFileError
        The file is empty, truncated, not a checkpoint, or lacks an entry; the message names it.
    """
    ck = load_torch(path, map_location=map_location, required=CHECKPOINT_KEYS)
    if not isinstance(ck.get("epoch"), int) or not isinstance(ck.get("history"), list):
        raise CorruptFileError(path, "its epoch or history entry is not what the engine writes")
    return ck
