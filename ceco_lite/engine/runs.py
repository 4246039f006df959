"""Run orchestration: where a run lives by default, and training each configuration once.

* :func:`run_dir` -- the default folder of a configuration, unique per configuration:
  ``<root>/<preset>/lam<λ>-seed<S>-<tag>`` with ``tag`` a hash of the fields that change
  results (:meth:`TrainConfig.tag`).
* :func:`run_or_load` / :func:`run_many` -- train a configuration in its folder, or load
  the finished run from there (re-running a lesson is instant).
* :func:`snapshot_callback` / :func:`load_snapshots` -- pixel features at chosen epochs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..centers import align_features_and_labels
from ..fileio import atomic_save, load_torch
from ..models import build_model
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .data import load_data
from .trainer import RunResult, train

__all__ = ["run_dir", "run_or_load", "run_many", "snapshot_callback", "load_snapshots"]


# --------------------------------------------------------------- orchestration
def run_dir(config: TrainConfig, root: str | Path = "runs") -> Path:
    """The default folder of ``config``: ``<root>/<preset or dataset>/lam<λ>-seed<S>-<tag>``.

    ``tag`` (:meth:`TrainConfig.tag`) hashes every field that changes results, so two
    configurations share a folder only if they compute the same run.

    Examples
    --------
    >>> from ceco_lite.engine import get_preset
    >>> run_dir(get_preset("synthetic-cpu", seed=3)).parent.as_posix()
    'runs/synthetic-cpu'
    >>> run_dir(get_preset("synthetic-cpu", seed=3)).name.startswith("lam1-seed3-")
    True
    """
    group = config.preset or config.dataset
    return Path(root) / group / f"lam{config.ceco_lambda:g}-seed{config.seed}-{config.tag()}"


def run_or_load(config: TrainConfig, root: str | Path = "runs", *, callback: Callable | None = None,
                progress: bool = False) -> RunResult:
    """Train ``config`` in :func:`run_dir` ``(config, root)``, or load the finished run from there.

    The engine does the caching: with ``resume=True`` it continues from ``checkpoint.pt``
    and, when the run is complete, only re-evaluates it. A changed configuration has
    another folder, so it never meets an old run.

    Parameters
    ----------
    config : TrainConfig
    root : path-like, default "runs"
    callback : callable, optional
        Passed to :func:`ceco_lite.engine.train`.
    progress : bool, default False
        Show the engine's progress bars.

    Returns
    -------
    ceco_lite.engine.RunResult
    """
    cfg = config.replace(out_dir=str(run_dir(config, root)), resume=True, overwrite=False, progress=bool(progress))
    return train(cfg, callback=callback)


def run_many(configs: Mapping, root: str | Path = "runs", *, progress: bool = True,
             callbacks: Mapping | None = None) -> dict:
    """:func:`run_or_load` for every ``key -> config`` (keys of any kind, e.g. λ values),
    with one tqdm bar over the runs; returns ``key -> RunResult``."""
    out = {}
    bar = tqdm(list(configs.items()), desc="runs", disable=not progress)
    for key, cfg in bar:
        bar.set_postfix_str(str(key))
        out[key] = run_or_load(cfg, root, callback=(callbacks or {}).get(key))
    return out


def snapshot_callback(config: TrainConfig, root: str | Path, epochs: Sequence[int], *,
                      max_images: int = 16) -> Callable:
    """An engine callback that keeps evaluation-split pixel features at the given epochs.

    After each epoch the engine writes ``checkpoint.pt`` and then calls the callback;
    at the epochs in ``epochs`` this one loads that checkpoint into a fresh model
    (:func:`ceco_lite.models.build_model`), runs the first ``max_images`` evaluation
    images and stores their feature maps and masks resized to the feature resolution
    (:func:`ceco_lite.align_features_and_labels`) in ``<run dir>/snapshots/epoch_XXX.pt``
    (written atomically). Use it with :func:`run_or_load` (same ``config`` and ``root``);
    read the files with :func:`load_snapshots`.
    """
    want = {int(e) for e in epochs}
    folder = run_dir(config, root)
    cache: dict = {}

    def callback(record, history):
        epoch = int(record["epoch"])
        path = folder / "snapshots" / f"epoch_{epoch:03d}.pt"
        if epoch not in want or path.exists():
            return
        if "data" not in cache:
            data = load_data(config)
            cache["data"] = data.decode(data.val_x[:max_images], data.val_y[:max_images])
        x, y = cache["data"]
        ck = load_checkpoint(folder / "checkpoint.pt", map_location="cpu")
        model = build_model(config.model, config.num_classes, fixed_classifier=config.fixed_pixel_classifier,
                            feature_dim=config.feature_dim, pretrained=False, **config.model_options)
        model.load_state_dict(ck["model"])
        model.eval()
        with torch.no_grad():
            feats = model(x)["features"].float()
        feats, labels = align_features_and_labels(feats, y)
        atomic_save({"features": feats, "labels": labels, "epoch": epoch}, path)

    return callback


def load_snapshots(result: RunResult) -> dict:
    """``{epoch: (features (B, d, h, w), labels (B, h, w))}`` saved by :func:`snapshot_callback`."""
    out = {}
    if result.run_dir is None:
        return out
    for p in sorted((Path(result.run_dir) / "snapshots").glob("epoch_*.pt")):
        d = load_torch(p, required=("features", "labels", "epoch"))
        out[int(d["epoch"])] = (d["features"], d["labels"])
    return out
