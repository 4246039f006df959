"""Where and how a run executes: device, precision, memory layout, processes.

:class:`Runtime` is the small object every step of the engine receives, so that
evaluation and statistics functions need only the model, the data and the
runtime. :func:`start_runtime` builds it from a configuration (choosing the device,
joining a ``torchrun`` process group when there is one, setting the CPU thread
count) and undoes its global changes on exit.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

__all__ = ["Runtime", "start_runtime", "resolve_device"]


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else MPS, else CPU; otherwise ``torch.device(spec)``.

    Raises
    ------
    ValueError
        A CUDA / MPS device was asked for but is not available, or the CUDA index does not exist.
    """
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={spec!r} but CUDA is not available (use device='auto' or 'cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={spec!r} but MPS is not available")
    return dev


@dataclass
class Runtime:
    """Execution settings of one run.

    Attributes
    ----------
    device : torch.device
    amp : bool
        bf16 autocast around forward passes.
    channels_last : bool
        Images (and the model) in channels-last memory format.
    rank, world_size : int
        This process and the number of processes (1 without ``torchrun``).
    distributed : bool
        A process group is active.
    process_group : ProcessGroup or None
        The group over which CeCo's centres are reduced (``ceco_sync="global"``), else None.
    eval_batch_size : int
        Images per forward pass in evaluation and statistics.
    progress : bool
        Show progress bars (rank 0 only).
    """

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    rank: int = 0
    world_size: int = 1
    distributed: bool = False
    process_group: object = None
    eval_batch_size: int = 16
    progress: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that evaluates and writes files)."""
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on this device when ``amp``, else a null context."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the runtime's memory format (channels-last for 4-d images when set)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if self.distributed:
            dist.barrier()


def _join_process_group() -> tuple[bool, int, int, bool]:
    """(distributed, rank, world_size, initialised_here) -- joins a ``torchrun`` group if one is set up."""
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size(), False
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws > 1 and dist.is_available():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        return True, dist.get_rank(), dist.get_world_size(), True
    return False, 0, 1, False


@contextlib.contextmanager
def start_runtime(config) -> Iterator[Runtime]:
    """The :class:`Runtime` of ``config`` (a :class:`~ceco_lite.engine.TrainConfig`), as a context.

    Sets ``torch.set_num_threads(config.num_threads)`` and joins the ``torchrun``
    process group (``WORLD_SIZE > 1``) for the duration; on exit the thread count is
    restored and a group joined here is destroyed.

    Raises
    ------
    ValueError
        Unavailable device; a global batch not divisible by the number of processes.
    """
    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    distributed, rank, world, init_here = _join_process_group()
    try:
        if distributed and torch.cuda.is_available() and config.device in ("auto", "cuda"):
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
        else:
            device = resolve_device(config.device)
        if distributed and config.batch_size % world:
            raise ValueError(f"batch_size={config.batch_size} (the global batch) must be divisible by the "
                             f"world size {world}")
        amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
        channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"
        eval_bs = max(config.batch_size, 16) if config.task == "classification" else max(config.batch_size, 4)
        yield Runtime(device=device, amp=amp, channels_last=channels_last, rank=rank, world_size=world,
                      distributed=distributed,
                      process_group=dist.group.WORLD if (distributed and config.ceco_sync == "global") else None,
                      eval_batch_size=eval_bs, progress=config.progress and rank == 0)
    finally:
        if config.num_threads:
            torch.set_num_threads(old_threads)
        if init_here:
            dist.destroy_process_group()
