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

__all__ = ["Runtime", "start_runtime", "resolve_device", "torchrun_world"]


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

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def agree(self, failure: BaseException | None = None) -> None:
        """Wait for every process and raise on all of them when any of them failed.

        Work done by one process only (rank 0 evaluates and writes files) or that may
        fail on one process only ends with ``runtime.agree(failure)``: ``failure`` (the
        exception caught there, or None) is re-raised where it happened, and the other
        processes raise a :class:`RuntimeError` saying that another process failed --
        instead of waiting for it at the next collective operation. In a single process
        it just raises ``failure`` when given.
        """
        if self.distributed:
            flag = torch.tensor([0 if failure is None else 1], dtype=torch.int64, device=self._collective_device())
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if failure is None and int(flag):
                raise RuntimeError(f"process {self.rank} of {self.world_size} stops because another process of "
                                   "this run failed (its message says why)")
        if failure is not None:
            raise failure

    def min_over_processes(self, value: int) -> int:
        """The smallest of the processes' ``value`` (``value`` itself in a single process)."""
        if not self.distributed:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.int64, device=self._collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t)


def _env_int(name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer environment variable set by ``torchrun`` (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"the environment variable {name} must be an integer, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"the environment variable {name} must be >= {minimum}{upper}, got {value}")
    return value


def torchrun_world() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from the environment ``torchrun`` sets (``(1, 0, 0)`` without it).

    Raises
    ------
    ValueError
        A variable that is not an integer, ``WORLD_SIZE < 1``, or a ``RANK`` outside ``[0, WORLD_SIZE)``.
    """
    world = _env_int("WORLD_SIZE", 1, 1)
    rank = _env_int("RANK", 0, 0, world - 1)
    local = _env_int("LOCAL_RANK", 0, 0)
    return world, rank, local


def _join_process_group() -> tuple[bool, int, int, bool]:
    """(distributed, rank, world_size, initialised_here) -- joins a ``torchrun`` group if one is set up."""
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size(), False
    ws = torchrun_world()[0]
    if ws > 1 and dist.is_available():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(torchrun_world()[2])
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
        Unavailable device; a global batch not divisible by the number of processes; malformed
        ``torchrun`` variables (:func:`torchrun_world`).
    """
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else torchrun_world()[0]
    if world > 1 and config.batch_size % world:  # checked before waiting for the other processes
        raise ValueError(f"batch_size={config.batch_size} (the global batch) must be divisible by the "
                         f"world size {world}")
    old_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    distributed, rank, world, init_here = _join_process_group()
    try:
        if distributed and torch.cuda.is_available() and config.device in ("auto", "cuda"):
            local = torchrun_world()[2] if os.environ.get("LOCAL_RANK") else torch.cuda.current_device()
            device = torch.device("cuda", local)
        else:
            device = resolve_device(config.device)
        amp = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
        channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"
        eval_bs = max(config.batch_size, 16) if config.task == "classification" else max(config.batch_size, 4)
        yield Runtime(device=device, amp=amp, channels_last=channels_last, rank=rank, world_size=world,
                      distributed=distributed,
                      process_group=dist.group.WORLD if (distributed and config.ceco_sync == "global") else None,
                      eval_batch_size=eval_bs, progress=config.progress and rank == 0)
        if init_here:
            dist.barrier()  # every rank is done before the group is torn down (gloo aborts a rank otherwise)
    finally:
        if config.num_threads:
            torch.set_num_threads(old_threads)
        if init_here:
            dist.destroy_process_group()
