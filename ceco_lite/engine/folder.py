"""The folder of one run: locked while in use, never overwritten silently, written atomically."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..fileio import (CorruptFileError, FolderLock, atomic_save, atomic_write_json, read_json,
                      remove_orphan_temporaries)
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig

__all__ = ["RunFolder", "RUN_FILES", "RESULT_FILES"]

#: The files that hold a run's results: a folder holding any of them holds a run.
RESULT_FILES = ("checkpoint.pt", "history.json", "metrics.json", "features.pt")
#: The files a run writes into its folder (plus ``snapshots/`` when a snapshot callback is used).
RUN_FILES = ("config.json", *RESULT_FILES)
#: Order in which ``overwrite`` deletes an old run: its configuration last, so that a deletion
#: cut short leaves files that still say which run they belong to.
_DELETE_ORDER = ("features.pt", "metrics.json", "history.json", "checkpoint.pt", "snapshots", "config.json")


def _differences(recorded: TrainConfig, now: TrainConfig) -> list[str]:
    a, b = recorded.result_dict(), now.result_dict()
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _config_of(d, path: Path) -> TrainConfig:
    """The :class:`TrainConfig` recorded in ``path`` (``d`` its content), or CorruptFileError naming it."""
    if not isinstance(d, dict):
        raise CorruptFileError(path, f"expected a run configuration (a JSON object), found {type(d).__name__}")
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(path, f"it does not hold a valid run configuration: {exc}") from None


class RunFolder:
    """The folder ``config.out_dir`` of one run (nothing is written when it is None).

    Used by :func:`ceco_lite.engine.train`: :meth:`open` before the run is built (every
    process checks; only the main one, rank 0, locks and writes), :meth:`start` once it
    is built, :meth:`close` at the end. On :meth:`open`:

    1. the folder is locked (:class:`ceco_lite.fileio.FolderLock`): a second process
       using it fails at once with :class:`~ceco_lite.fileio.FolderLockedError`;
    2. temporary files left by a killed writer are removed;
    3. when it already holds a run (any of :data:`RESULT_FILES`): with ``resume`` its
       recorded configuration (``config.json``, else the checkpoint's, else
       ``metrics.json``'s) must equal ``config`` in every field that changes results
       (else ``ValueError`` listing the differences) and training continues from
       ``checkpoint.pt``; with ``overwrite`` the old run's files are deleted by
       :meth:`start`, i.e. only once the new run has been built; with neither,
       ``FileExistsError`` -- a run is never replaced silently. A folder holding only
       the ``config.json`` of a run that never finished an epoch holds no run.

    Every file is written atomically (:mod:`ceco_lite.fileio`). A run that fails
    before writing anything removes the folder it created.
    """

    def __init__(self, config: TrainConfig, *, main: bool = True):
        self.config = config
        self.path = Path(config.out_dir) if config.out_dir else None
        self.main = main
        self.resuming = False
        self._lock: FolderLock | None = None
        self._created = False
        self._delete: list[str] = []

    # ---------------------------------------------------------------- policy
    def open(self) -> "RunFolder":
        """Lock the folder, remove orphan temporary files, check what it holds (see the class)."""
        if self.path is None:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"out_dir {str(self.path)!r} is a file, not a folder: choose a folder")
        if self.main:
            self._created = not self.path.exists()
            self._lock = FolderLock(self.path, purpose="training run").acquire()
            remove_orphan_temporaries(self.path)
        try:
            self._check_existing()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def close(self, *, failed: bool = False) -> None:
        """Release the lock; after a failed run, remove the folder when this run created it and
        it holds nothing else."""
        if self._lock is None:
            return
        try:
            if failed and self._created and [p.name for p in self.path.iterdir()] == [".lock"]:
                (self.path / ".lock").unlink()
                self.path.rmdir()
        except OSError:
            pass
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "RunFolder":
        return self.open()

    def __exit__(self, exc_type, *exc) -> None:
        self.close(failed=exc_type is not None)

    def _check_existing(self) -> None:
        results = [name for name in RESULT_FILES if (self.path / name).exists()]
        if not results:  # empty, or the config.json of a run that stopped before its first epoch
            self._delete = [n for n in _DELETE_ORDER if (self.path / n).exists()]
            return
        cfg = self.config
        if cfg.overwrite:
            self._delete = [n for n in _DELETE_ORDER if (self.path / n).exists()]
            return
        if not cfg.resume:
            try:
                recorded = self._recorded_config()[0]
            except CorruptFileError:  # the folder is occupied either way
                recorded = None
            what = f"a run of {recorded.preset or recorded.dataset}" if recorded is not None else "a run"
            raise FileExistsError(
                f"run folder {self.path} already holds {what} ({', '.join(results)}); continue it with "
                "resume=True (--resume) or replace it with overwrite=True (--overwrite), or choose another folder"
            )
        recorded, source = self._recorded_config()
        if recorded is None:
            raise ValueError(f"cannot resume the run in {self.path}: it holds {', '.join(results)} but no "
                             "configuration to check them against (config.json, checkpoint.pt); replace it with "
                             "overwrite=True (--overwrite)")
        diff = _differences(recorded, cfg)
        if diff:
            raise ValueError(f"cannot resume the run in {self.path}: the configuration differs from the "
                             f"one recorded in {source} ({'; '.join(diff)})")
        self.resuming = (self.path / "checkpoint.pt").exists()

    def _recorded_config(self) -> tuple[TrainConfig | None, str]:
        path = self.path / "config.json"
        if path.exists():
            return _config_of(read_json(path), path), path.name
        path = self.path / "checkpoint.pt"
        if path.exists():
            return _config_of(load_checkpoint(path).get("config"), path), path.name
        path = self.path / "metrics.json"
        if path.exists():
            metrics = read_json(path)
            if isinstance(metrics, dict) and "config" in metrics:
                return _config_of(metrics["config"], path), path.name
        return None, ""

    # ----------------------------------------------------------------- files
    def start(self) -> None:
        """Delete the run being replaced (``overwrite``) and record the configuration (``config.json``)."""
        if self.path is None or not self.main:
            return
        for name in self._delete:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
        self._delete = []
        atomic_write_json(self.config.to_dict(), self.path / "config.json")

    def checkpoint(self, map_location="cpu") -> dict | None:
        """The folder's checkpoint (validated; its configuration checked against this run's), or None."""
        if self.path is None or not (self.path / "checkpoint.pt").exists():
            return None
        path = self.path / "checkpoint.pt"
        ck = load_checkpoint(path, map_location=map_location)
        diff = _differences(_config_of(ck["config"], path), self.config)
        if diff:
            raise ValueError(f"cannot resume: the configuration differs from the one recorded in {path} "
                             f"({'; '.join(diff)})")
        return ck

    def _write(self, write, obj, name: str) -> None:
        if self.path is not None and self.main:
            write(obj, self.path / name)

    def save_checkpoint(self, state: dict) -> None:
        """Write ``checkpoint.pt``."""
        self._write(save_checkpoint, state, "checkpoint.pt")

    def write_history(self, history: list) -> None:
        """Write ``history.json``."""
        self._write(atomic_write_json, history, "history.json")

    def write_metrics(self, metrics: dict) -> None:
        """Write ``metrics.json``."""
        self._write(atomic_write_json, metrics, "metrics.json")

    def write_features(self, features: dict) -> None:
        """Write ``features.pt``."""
        self._write(atomic_save, features, "features.pt")
