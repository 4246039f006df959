"""The folder of one run: locked while in use, never overwritten silently, written atomically."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..fileio import FolderLock, atomic_save, atomic_write_json, read_json, remove_orphan_temporaries
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig

__all__ = ["RunFolder", "RUN_FILES"]

#: The files a run writes into its folder (plus ``snapshots/`` when a snapshot callback is used).
RUN_FILES = ("config.json", "checkpoint.pt", "history.json", "metrics.json", "features.pt")


def _differences(recorded: TrainConfig, now: TrainConfig) -> list[str]:
    a, b = recorded.result_dict(), now.result_dict()
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class RunFolder:
    """The folder ``config.out_dir`` of one run (nothing is written when it is None).

    Used as a context manager by :func:`ceco_lite.engine.train`. On entry (rank 0 only
    writes; every rank checks):

    1. the folder is locked (:class:`ceco_lite.fileio.FolderLock`): a second process
       using it fails at once with :class:`~ceco_lite.fileio.FolderLockedError`;
    2. temporary files left by a killed writer are removed;
    3. when it already holds a run (any of :data:`RUN_FILES`): with ``resume`` its
       recorded configuration must equal ``config`` in every field that changes results
       (else ``ValueError`` listing the differences) and training continues from
       ``checkpoint.pt``; with ``overwrite`` the old run's files are deleted; with neither,
       ``FileExistsError`` -- a run is never replaced silently.

    Every file is written atomically (:mod:`ceco_lite.fileio`).
    """

    def __init__(self, config: TrainConfig, *, main: bool = True):
        self.config = config
        self.path = Path(config.out_dir) if config.out_dir else None
        self.main = main
        self.resuming = False
        self._lock: FolderLock | None = None

    # ---------------------------------------------------------------- policy
    def __enter__(self) -> "RunFolder":
        if self.path is None:
            return self
        if self.main:
            self._lock = FolderLock(self.path, purpose="training run").acquire()
            remove_orphan_temporaries(self.path)
        try:
            self._check_existing()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _existing(self) -> list[str]:
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def _check_existing(self) -> None:
        existing = self._existing()
        if not existing:
            return
        cfg = self.config
        if cfg.overwrite:
            if self.main:
                for name in existing:
                    (self.path / name).unlink()
                shutil.rmtree(self.path / "snapshots", ignore_errors=True)
            return
        recorded = self._recorded_config()
        if not cfg.resume:
            what = f"a run of {recorded.preset or recorded.dataset}" if recorded is not None else "a run"
            raise FileExistsError(
                f"run folder {self.path} already holds {what} ({', '.join(existing)}); continue it with "
                "resume=True (--resume) or replace it with overwrite=True (--overwrite), or choose another folder"
            )
        if recorded is not None:
            diff = _differences(recorded, cfg)
            if diff:
                raise ValueError(f"cannot resume the run in {self.path}: the configuration differs from the "
                                 f"recorded one ({'; '.join(diff)})")
        self.resuming = (self.path / "checkpoint.pt").exists()

    def _recorded_config(self) -> TrainConfig | None:
        path = self.path / "config.json"
        if path.exists():
            return TrainConfig.from_dict(read_json(path))
        if (self.path / "checkpoint.pt").exists():
            return TrainConfig.from_dict(load_checkpoint(self.path / "checkpoint.pt")["config"])
        return None

    # ----------------------------------------------------------------- files
    def start(self) -> None:
        """Record the configuration (``config.json``) before training starts."""
        if self.path is not None and self.main:
            atomic_write_json(self.config.to_dict(), self.path / "config.json")

    def checkpoint(self, map_location="cpu") -> dict | None:
        """The folder's checkpoint (validated; its configuration checked against this run's), or None."""
        if self.path is None or not (self.path / "checkpoint.pt").exists():
            return None
        ck = load_checkpoint(self.path / "checkpoint.pt", map_location=map_location)
        diff = _differences(TrainConfig.from_dict(ck["config"]), self.config)
        if diff:
            raise ValueError(f"cannot resume: the configuration differs from the checkpoint's ({'; '.join(diff)})")
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
