"""Fault injection, in the way databases test their storage: writers are killed (SIGKILL) at
chosen points inside their writes, then the next run must resume exactly or rebuild, never read a
half-written file, and leave no orphan temporary file.

Every kind of file the project writes is covered: a run's ``config.json``, ``checkpoint.pt``,
``history.json``, ``metrics.json`` and ``features.pt`` (:func:`ceco_lite.engine.train`), the
t-SNE cache (:func:`ceco_lite.tsne.cached_tsne`) and the resized-pair caches of CamVid and
Cityscapes (:class:`data_utils.CamVid`, :class:`data_utils.CityscapesSubset`); all of them are
written by :func:`ceco_lite.fileio.atomic_write`.

A writer is a child process forked from a server that has imported ceco-lite once
(``multiprocessing`` "forkserver"). In the child, a hook around ``atomic_write`` kills the
process at the ``occurrence``-th write of the target file, at one of these points:

* ``bytes``: after a seeded random share of the file's bytes went to the temporary file;
* ``fsync``: all bytes written, before they are flushed to disk;
* ``replace``: flushed, before the temporary file replaces the target;
* ``replaced``: just after the replacement (before the folder is synced);
* ``returned``: just after the write returned (between two writes).

Then, in this process: every file that carries a final name must read back whole; the next
run (the engine with ``resume=True``, a new cache object) must give bitwise what an
uninterrupted run gives (CPU, one thread); and no temporary file may remain. A control case
(a non-atomic writer killed the same way) shows that the checks catch a half-written file.
"""
from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import ceco_lite.fileio as fileio
from ceco_lite.engine import get_preset, train
from ceco_lite.engine.checkpoint import load_checkpoint
from ceco_lite.engine.folder import RUN_FILES
from ceco_lite.fileio import load_npz, load_torch, read_json
from data_utils import default_data_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DATA = default_data_dir()
EPOCHS = 3
CONFIG = dict(num_images=8, num_val_images=4, image_size=(16, 16), batch_size=4, nc_max_images=4, epochs=EPOCHS,
              save_features=2, num_threads=1, progress=False)


def _share(rng: random.Random) -> float:
    """A random share of a file's bytes, in (0, 1)."""
    return rng.uniform(0.001, 0.999)
POINTS = ("fsync", "replace", "replaced", "returned")


def _config(folder: Path):
    return get_preset("synthetic-cpu", out_dir=str(folder), resume=True, **CONFIG)


# ---------------------------------------------------------------- the child
class _KillingFile:
    """A file object that kills the process once ``limit`` bytes have gone through it."""

    def __init__(self, fh, limit: int):
        self._fh, self._limit, self._done = fh, limit, 0

    def write(self, data) -> int:
        data = bytes(data)
        if self._done + len(data) >= self._limit:
            self._fh.write(data[:self._limit - self._done])
            self._fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        self._done += len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)


def _install_kill(target: str, occurrence: int, point: str, fraction: float, atomic: bool = True) -> None:
    """Kill this process at the ``occurrence``-th write of a file named ``target`` (or ending with it);
    ``bytes``: once ``fraction`` of the file's bytes are written (0 < fraction < 1)."""
    original = fileio.atomic_write
    seen = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def hooked(path, write):
        path = Path(path)
        if not path.name.endswith(target):
            return original(path, write)
        seen["n"] += 1
        if seen["n"] != occurrence:
            return original(path, write)
        rendered = io.BytesIO()
        write(rendered)  # the file's size, to cut it at ``fraction``
        offset = max(1, min(int(fraction * len(rendered.getvalue())), len(rendered.getvalue()) - 1))
        if not atomic:  # the control: write the target in place, as a naive writer would
            with open(path, "wb") as fh:
                write(_KillingFile(fh, offset))
            die()
        real_fsync, real_replace = os.fsync, os.replace
        if point == "bytes":
            return original(path, lambda fh: write(_KillingFile(fh, offset)))
        if point == "fsync":
            os.fsync = lambda fd: die()
        elif point == "replace":
            os.replace = lambda a, b: die()
        elif point == "replaced":
            os.replace = lambda a, b: (real_replace(a, b), die())
        try:
            original(path, write)
        finally:
            os.fsync, os.replace = real_fsync, real_replace
        die()  # "returned"

    fileio.atomic_write = hooked


def _child(job: str, args: dict, kill: tuple) -> None:
    torch.set_num_threads(1)
    _install_kill(*kill)
    JOBS[job](**args)


def _run_killed(job: str, args: dict, kill: tuple) -> int:
    proc = _CTX.Process(target=_child, args=(job, args, kill))
    proc.start()
    proc.join(300)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return proc.exitcode


# ------------------------------------------------------------------ the jobs
def _job_train(folder: str) -> dict:
    res = train(_config(Path(folder)))
    return {"state": res.model.state_dict(), "history": res.history, "metrics": res.metrics}


def _tsne_inputs():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(12)
    feats = torch.randn(48, 5, generator=g) + 3 * torch.nn.functional.one_hot(labels, 5).float()
    return feats, labels


def _job_tsne(folder: str) -> dict:
    from ceco_lite.tsne import cached_tsne

    feats, labels = _tsne_inputs()
    out = cached_tsne(feats, labels, cache_dir=folder, max_per_class=12, perplexity=5.0, max_iter=250)
    return {k: out[k] for k in ("embedding", "labels", "indices")}


def _job_pairs(folder: str, dataset: str) -> dict:
    import data_utils

    if dataset == "camvid":
        ds = data_utils.CamVid(DATA / "camvid", split="train", size=(36, 48), num_images=3, cache_dir=folder)
    else:
        ds = data_utils.CityscapesSubset(DATA / "cityscapes", split="train", size=(32, 64), num_images=2,
                                         cache_dir=folder)
    arrays = [ds.load_arrays(i) for i in range(len(ds))]
    return {"image": np.stack([a[0] for a in arrays]), "mask": np.stack([a[1] for a in arrays])}


JOBS = {"train": _job_train, "tsne": _job_tsne, "pairs": _job_pairs}
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["ceco_lite.engine", "ceco_lite.tsne", "data_utils", "numpy", "torch"])


# ------------------------------------------------------------------ checks
def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _final_files_whole(folder: Path) -> None:
    """Every file with a final name reads back completely (a half-written one raises)."""
    for name in RUN_FILES:
        path = folder / name
        if not path.exists():
            continue
        if name.endswith(".json"):
            read_json(path)
        elif name == "checkpoint.pt":
            load_checkpoint(path)
        else:
            load_torch(path, required=("features", "labels"))
    for path in folder.rglob("*.npz"):
        with np.load(path) as z:
            for key in z.files:
                z[key]  # noqa: B018 - reads the array fully


def _same(a, b, what: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), what
        for k in a:
            _same(a[k], b[k], f"{what}[{k}]")
    elif isinstance(a, (torch.Tensor, np.ndarray)):
        assert type(a) is type(b) and tuple(a.shape) == tuple(b.shape), what
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b)), what
    else:
        assert a == b, what


def _comparable_metrics(m: dict) -> str:
    """Metrics without wall-clock times, as JSON (NaN, for absent classes, compares equal as text)."""
    out = {k: v for k, v in m.items() if k not in ("wall_time", "time_per_step", "history", "config")}
    out["losses"] = [r["loss"] for r in m["history"]]
    out["scores"] = [{k: v for k, v in r.items() if k not in ("time_per_step", "epoch_time")} for r in m["history"]]
    return json.dumps(out, sort_keys=True, default=str)


# ------------------------------------------------------------- the kill points
def _train_points() -> list[tuple]:
    """(file, occurrence, point, share of the bytes) for the run files: 25 points. A run of 3 epochs writes
    config.json once, checkpoint.pt and history.json after every epoch, then features.pt,
    history.json (4th) and metrics.json."""
    rng = random.Random("training files")  # seeded: the same points on every run
    in_bytes = [("config.json", 1), ("config.json", 1), ("checkpoint.pt", 1), ("checkpoint.pt", 2),
                ("checkpoint.pt", 2), ("checkpoint.pt", 3), ("history.json", 1), ("history.json", 3),
                ("history.json", 4), ("metrics.json", 1), ("metrics.json", 1), ("features.pt", 1)]
    points = [(name, occ, "bytes", _share(rng)) for name, occ in in_bytes]
    for name, occ in (("config.json", 1), ("checkpoint.pt", 2), ("metrics.json", 1)):
        points += [(name, occ, point, 0) for point in ("fsync", "replace", "replaced")]
    points += [("history.json", 2, "replace", 0), ("features.pt", 1, "replace", 0),
               ("checkpoint.pt", 3, "returned", 0), ("metrics.json", 1, "returned", 0)]
    return points


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run (in this process)."""
    return _job_train(str(tmp_path_factory.mktemp("reference") / "run"))


def test_training_files_survive_sigkill(reference, tmp_path):
    ref = reference
    points = _train_points()
    assert len(points) >= 20 and len(set(points)) == len(points)
    resumed_from = []
    for i, (name, occ, point, offset) in enumerate(points):
        folder = tmp_path / f"kill{i}"
        code = _run_killed("train", {"folder": str(folder)}, (name, occ, point, offset))
        where = f"{name} #{occ} at {point}" + (f" {offset:.3f}" if point == "bytes" else "")
        assert code == -signal.SIGKILL, f"{where}: the writer was not killed (exit code {code})"
        _final_files_whole(folder)  # never a half-written file under a final name
        ck = folder / "checkpoint.pt"
        resumed_from.append(load_checkpoint(ck)["epoch"] if ck.exists() else 0)
        got = _job_train(str(folder))  # the next run: resume (or start again) to the end
        _same(got["state"], ref["state"], f"{where}: final weights")
        _same([r["loss"] for r in got["history"]], [r["loss"] for r in ref["history"]], f"{where}: loss history")
        _same(_comparable_metrics(got["metrics"]), _comparable_metrics(ref["metrics"]), f"{where}: metrics")
        _final_files_whole(folder)
        assert json.loads((folder / "history.json").read_text()) == json.loads(json.dumps(got["history"]))
        assert not _temporaries(folder), f"{where}: orphan temporary files {_temporaries(folder)}"
    assert set(resumed_from) == set(range(EPOCHS + 1))  # resumed from every epoch, and rebuilt from scratch


def test_control_a_naive_writer_is_caught(reference, tmp_path):
    """The checks above can fail: a checkpoint written in place and killed half-way is found damaged."""
    folder = tmp_path / "naive"
    code = _run_killed("train", {"folder": str(folder)}, ("checkpoint.pt", 2, "bytes", 0.5, False))
    assert code == -signal.SIGKILL
    with pytest.raises(fileio.CorruptFileError, match="checkpoint.pt"):
        _final_files_whole(folder)


def _cache_case(job: str, args: dict, folder: Path, points: list[tuple], reference: dict) -> None:
    for kill in points:
        code = _run_killed(job, args, kill)
        assert code == -signal.SIGKILL, f"{kill}: the writer was not killed (exit code {code})"
        _final_files_whole(folder)
        for path in folder.rglob("*.npz"):  # whatever is there is whole ...
            load_npz(path, tuple(np.load(path).files))
        got = JOBS[job](**args)  # ... and the next run rebuilds what is missing
        _same(got, reference, f"{kill}: arrays")
        assert not _temporaries(folder), f"{kill}: orphan temporary files {_temporaries(folder)}"
        for path in folder.rglob("*.npz"):  # the next case starts from an empty cache
            path.unlink()


def test_tsne_cache_survives_sigkill(tmp_path):
    folder = tmp_path / "tsne"
    ref = _job_tsne(str(tmp_path / "tsne-reference"))
    rng = random.Random("t-SNE cache")
    points = [(".npz", 1, "bytes", _share(rng)), (".npz", 1, "bytes", _share(rng)),
              (".npz", 1, "replace", 0), (".npz", 1, "fsync", 0)]
    _cache_case("tsne", {"folder": str(folder)}, folder, points, ref)


needs_data = pytest.mark.skipif(DATA is None, reason="no real data root (CECO_DATA_DIR)")


@needs_data
@pytest.mark.parametrize("dataset", ["camvid", "cityscapes"])
def test_resized_pair_cache_survives_sigkill(dataset, tmp_path):
    folder = tmp_path / dataset
    ref = _job_pairs(str(tmp_path / "reference"), dataset)
    rng = random.Random(dataset)
    points = [(".npz", 1, "bytes", _share(rng)), (".npz", 2, "bytes", _share(rng)),
              (".npz", 2, "replace", 0), (".npz", 1, "replaced", 0)]
    _cache_case("pairs", {"folder": str(folder), "dataset": dataset}, folder, points, ref)
