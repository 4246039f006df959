"""Training engine shared by the lessons and the command line.

>>> from ceco_lite.engine import get_preset, train
>>> result = train(get_preset("synthetic-cpu", ceco_lambda=0.4, progress=False))  # doctest: +SKIP
>>> result.metrics["miou"], result.metrics["tail"]                                 # doctest: +SKIP

* :class:`TrainConfig` -- validated, JSON round-trip; :data:`PRESETS` / :func:`get_preset`.
* :func:`train` -> :class:`RunResult` (history, final metrics, run_dir, model).
* :func:`compare` -- λ = 0 versus CeCo over several seeds (paired differences).
"""
from __future__ import annotations

from .compare import compare, format_compare_table, summarize
from .config import PRESETS, TrainConfig, get_preset, preset_names
from .trainer import RunResult, TrainStep, collect_nc_stats, evaluate, resolve_device, train

__all__ = [
    "TrainConfig", "PRESETS", "get_preset", "preset_names", "train", "RunResult", "TrainStep",
    "evaluate", "collect_nc_stats", "resolve_device", "compare", "summarize", "format_compare_table",
]
