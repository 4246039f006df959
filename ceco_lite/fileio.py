"""Files that are never half-written: atomic writes, validated reads, folder locks.

Every file ceco-lite writes (checkpoints, ``metrics.json``, caches) goes through
:func:`atomic_write`: the bytes go to a temporary file in the same folder
(``.<name>.<pid>.<random>.tmp``), are flushed and ``fsync``-ed, and the file is
moved into place with :func:`os.replace` (atomic on POSIX and Windows); the
folder is ``fsync``-ed too, so the rename survives a power cut. A reader
therefore sees the old file or the new one, never a mixture. A writer killed
between the two steps leaves only its temporary file, which
:func:`remove_orphan_temporaries` deletes once its process is gone.

Readers that find a damaged file raise :class:`CorruptFileError`, which names
the file; caches catch it and rebuild the entry.
"""
from __future__ import annotations

import errno
import glob
import json
import os
import pickle
import re
import secrets
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

if os.name == "nt":  # pragma: no cover - Windows
    import msvcrt
else:
    import fcntl

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_save",
    "atomic_savez",
    "read_json",
    "load_torch",
    "load_npz",
    "remove_orphan_temporaries",
    "CorruptFileError",
    "FolderLock",
    "FolderLockedError",
]

_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class CorruptFileError(OSError):
    """A file exists but cannot be read back (truncated, empty, not the expected format).

    Attributes
    ----------
    path : pathlib.Path
        The damaged file.
    """

    def __init__(self, path, reason: str):
        self.path = Path(path)
        super().__init__(f"{self.path} is damaged or not in the expected format ({reason})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], Any]) -> None:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file, then it replaces ``path``.

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if needed.
    write : callable
        ``write(fh)`` with ``fh`` a binary file object open for writing.

    Notes
    -----
    The file gets the usual permissions (``0o666`` minus the umask), not the
    ``0o600`` of :func:`tempfile.mkstemp`. On any exception, including
    ``KeyboardInterrupt``, the temporary file is removed and ``path`` is unchanged.
    Temporary files of ``path`` left by writers that died (e.g. killed by SIGKILL)
    are removed first, so rewriting a file also cleans up after a killed writer.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temporaries(path.parent, name=path.name)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(data))


def _json_default(o):
    if isinstance(o, (torch.Tensor, np.ndarray)):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON atomically (tensors and arrays become lists; NaN is kept)."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, allow_nan=True, default=_json_default).encode())


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_savez(path: str | os.PathLike, **arrays) -> None:
    """``numpy.savez(path, **arrays)``, atomically."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; :class:`CorruptFileError` naming it if it cannot be parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"not valid JSON: {exc}") from None


def load_torch(path: str | os.PathLike, *, map_location="cpu", required: tuple[str, ...] = ()) -> Any:
    """``torch.load`` of a file this program wrote, or :class:`CorruptFileError` naming it.

    Parameters
    ----------
    path : path-like
    map_location : optional
        Passed to :func:`torch.load`.
    required : tuple of str
        Keys the loaded dict must hold.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise CorruptFileError(path, "empty file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError,
            AttributeError, ImportError, IndexError, TypeError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if required:
        if not isinstance(obj, dict):
            raise CorruptFileError(path, f"expected a dict, found {type(obj).__name__}")
        missing = [k for k in required if k not in obj]
        if missing:
            raise CorruptFileError(path, f"missing entries {missing}")
    return obj


def load_npz(path: str | os.PathLike, keys: tuple[str, ...]) -> dict:
    """The arrays ``keys`` of an ``.npz`` file, read fully, or :class:`CorruptFileError` naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}") from None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:  # e.g. Windows: no signal 0
        return exc.errno != errno.ESRCH
    return True


def remove_orphan_temporaries(folder: str | os.PathLike, *, name: str | None = None) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` in ``folder`` whose writer has died.

    Parameters
    ----------
    folder : path-like
    name : str, optional
        Only the temporaries of the file ``folder/name``.

    Returns
    -------
    list of pathlib.Path
        The files removed (a missing folder gives ``[]``). Temporaries of live
        processes are left alone.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    entries = folder.glob(f".{glob.escape(name)}.*.tmp") if name is not None else folder.iterdir()
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if m and (name is None or m.group("name") == name) and not _pid_alive(int(m.group("pid"))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


class FolderLockedError(RuntimeError):
    """Another process holds the lock of a folder."""


class FolderLock:
    """An exclusive, advisory lock on a folder (``<folder>/.lock``), for one process at a time.

    Uses ``fcntl.flock`` on POSIX (the operating system releases it when the process
    dies, so a killed run never leaves a stale lock) and ``msvcrt.locking`` on
    Windows. Use as a context manager::

        with FolderLock(run_dir, purpose="training run"):
            ...

    Raises
    ------
    FolderLockedError
        On entry, when another process holds the lock; the message names the folder
        and the holder's process id.
    """

    def __init__(self, folder: str | os.PathLike, *, purpose: str = "run"):
        self.folder = Path(folder)
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            _lock_fd(fd)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() if hasattr(os, "pread") else "?"
            except OSError:
                holder = "?"
            os.close(fd)
            raise FolderLockedError(
                f"{self.folder} is in use by another {self.purpose} (process {holder or '?'}); "
                "wait for it to finish, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                _unlock_fd(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_fd(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_fd(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
