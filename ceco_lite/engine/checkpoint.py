"""Atomic writes for checkpoints and JSON records (temp file in the same folder + ``os.replace``)."""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_save", "atomic_write_json", "rng_state", "set_rng_state", "load_checkpoint"]


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave a half-written file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` written atomically (an interrupted write leaves the old file intact)."""
    _atomic(Path(path), lambda fh: torch.save(obj, fh))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    data = json.dumps(obj, indent=2, allow_nan=True, default=_json_default).encode()
    _atomic(Path(path), lambda fh: fh.write(data))


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def rng_state() -> dict:
    """Python, NumPy, torch CPU (and CUDA, if initialised) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    # checkpoints may be loaded with map_location="cuda": RNG states must be CPU ByteTensors
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
        except (RuntimeError, IndexError):  # fewer GPUs than when saved
            pass


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`ceco_lite.engine.train` (trusted, own files)."""
    return torch.load(path, map_location=map_location, weights_only=False)
