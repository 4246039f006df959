"""CE baseline (λ = 0) versus CeCo on one preset and several seeds.

Differences are *paired* by seed (same data, same initialisation, same batches;
only λ differs) and summarised as mean ± unbiased std over seeds.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Iterable

from ..fileio import atomic_write_json
from .config import TrainConfig
from .presets import get_preset
from .runs import run_or_load

__all__ = ["compare", "summarize", "format_compare_table", "COMPARE_KEYS"]

#: (label, path into RunResult.metrics) of the quantities compared.
COMPARE_KEYS = (
    ("mIoU / top-1", ("score",)),
    ("head", ("head",)),
    ("common", ("common",)),
    ("tail", ("tail",)),
    ("equiangularity (centres)", ("nc", "equiangularity_centers")),
    ("max-angle (centres)", ("nc", "max_angle_centers")),
    ("equiangularity (classifier)", ("nc", "equiangularity_classifiers")),
    ("NC1", ("nc", "nc1")),
)


def _get(metrics: dict, path) -> float:
    if path == ("score",):
        v = metrics.get("miou", metrics.get("top1"))
    else:
        v = metrics
        for p in path:
            v = v.get(p, {}) if isinstance(v, dict) else {}
    return float(v) if isinstance(v, (int, float)) and v is not None else float("nan")


def _mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and unbiased std of the finite values (std NaN -- "n/a" -- with fewer than two)."""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def summarize(baseline: list[dict], ceco: list[dict]) -> dict:
    """Mean ± std of every :data:`COMPARE_KEYS` quantity for both arms and of the paired difference."""
    out = {}
    for label, path in COMPARE_KEYS:
        a = [_get(m, path) for m in baseline]
        b = [_get(m, path) for m in ceco]
        d = [y - x for x, y in zip(a, b)]
        out[label] = {"ce": _mean_std(a), "ceco": _mean_std(b), "diff": _mean_std(d),
                      "ce_values": a, "ceco_values": b}
    return out


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:8.3f} ± " + (f"{std:6.3f}" if not math.isnan(std) else f"{'n/a':>6}")


def format_compare_table(summary: dict, *, ceco_lambda: float, seeds) -> str:
    """Text table of :func:`summarize`: mean ± std over seeds of both arms and of the paired difference
    (the spread is "n/a" with a single seed)."""
    seeds = list(seeds)
    note = "" if len(seeds) > 1 else " (one seed: no spread)"
    lines = [f"CE (λ=0) vs CeCo (λ={ceco_lambda:g}), seeds {seeds}: mean ± std over seeds; Δ paired by seed{note}",
             f"{'quantity':<30}{'CE':>18}{'CeCo':>18}{'Δ (CeCo − CE)':>20}"]
    for label, row in summary.items():
        cells = [_cell(m, s) for m, s in (row["ce"], row["ceco"], row["diff"])]
        lines.append(f"{label:<30}{cells[0]:>18}{cells[1]:>18}{cells[2]:>20}")
    return "\n".join(lines)


def compare(preset: str | TrainConfig, seeds: Iterable[int] = (0, 1, 2), *, ceco_lambda: float | None = None,
            out_dir: str | Path = "runs", progress: bool = False, **overrides) -> dict:
    """Train ``preset`` with λ = 0 and with CeCo (λ = ``ceco_lambda``, default the preset's) for each seed.

    Each run goes through :func:`ceco_lite.engine.run_or_load` under ``out_dir``, so a
    repeated comparison reuses the finished runs.

    Parameters
    ----------
    preset : str or TrainConfig
    seeds : iterable of int
        Distinct seeds (a repeated seed would count one run twice).
    ceco_lambda : float, optional
        CeCo weight; must be > 0 (the preset's ``ceco_lambda`` when None).
    out_dir : path, default "runs"
        Root of the run folders; ``compare.json`` is written into
        ``out_dir/compare-<preset>-lam<λ>-seeds<...>.json``.
    **overrides
        TrainConfig fields applied to both arms.

    Returns
    -------
    dict with ``summary`` (see :func:`summarize`), ``table`` (text), ``runs`` (metrics per run,
    without histories), ``ceco_lambda``, ``seeds``, ``path`` (the JSON file written).

    Raises
    ------
    ValueError
        ``ceco_lambda <= 0``, no seeds, repeated seeds.
    """
    base = preset if isinstance(preset, TrainConfig) else get_preset(preset)
    base = base.replace(progress=progress, **overrides)
    ceco_lambda = base.ceco_lambda if ceco_lambda is None else float(ceco_lambda)
    if not ceco_lambda > 0:
        raise ValueError(f"ceco_lambda must be > 0 for a comparison against the λ = 0 baseline, got {ceco_lambda}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (a repeated seed counts one run twice), got {seeds}")
    runs = {"ce": [], "ceco": []}
    for seed in seeds:
        for arm, value in (("ce", 0.0), ("ceco", ceco_lambda)):
            res = run_or_load(base.replace(seed=seed, ceco_lambda=value), out_dir, progress=progress)
            runs[arm].append({k: v for k, v in res.metrics.items() if k not in ("history", "config")})
    summary = summarize(runs["ce"], runs["ceco"])
    name = base.preset or base.dataset
    path = Path(out_dir) / f"compare-{name}-lam{ceco_lambda:g}-seeds{'-'.join(map(str, seeds))}.json"
    result = {"preset": base.preset, "ceco_lambda": ceco_lambda, "seeds": seeds, "summary": summary,
              "table": format_compare_table(summary, ceco_lambda=ceco_lambda, seeds=seeds), "runs": runs,
              "config": base.to_dict(), "path": str(path)}
    atomic_write_json(result, path)
    return result
