"""Training engine shared by the lessons and the command line.

>>> from ceco_lite.engine import get_preset, train
>>> result = train(get_preset("synthetic-cpu", ceco_lambda=0.4, progress=False))  # doctest: +SKIP
>>> result.score, result.metrics["tail"]                                           # doctest: +SKIP

* :class:`TrainConfig` -- validated, JSON round-trip; :data:`PRESETS` / :func:`get_preset`.
* :func:`train` -> :class:`RunResult` (history, final metrics, run_dir, model).
* :func:`run_or_load` / :func:`run_many` -- train each configuration once, in its own folder.
* :func:`compare` -- λ = 0 versus CeCo over several seeds (paired differences).

See docs/architecture.md for how a configuration becomes ``metrics.json``.
"""
from __future__ import annotations

from .compare import compare, format_compare_table, summarize
from .config import RUN_FIELDS, TrainConfig
from .evaluation import collect_nc_stats, evaluate, predict, sample_features
from .presets import PRESET_DESCRIPTIONS, PRESETS, get_preset, preset_names
from .runs import load_snapshots, run_dir, run_many, run_or_load, snapshot_callback
from .runtime import Runtime, resolve_device
from .step import TrainStep
from .trainer import RunResult, TrainingDiverged, train

__all__ = [
    "TrainConfig", "RUN_FIELDS", "PRESETS", "PRESET_DESCRIPTIONS", "get_preset", "preset_names", "train",
    "RunResult", "TrainingDiverged", "TrainStep", "Runtime", "evaluate", "collect_nc_stats", "sample_features",
    "predict", "resolve_device", "run_dir", "run_or_load", "run_many", "snapshot_callback", "load_snapshots",
    "compare", "summarize", "format_compare_table",
]
