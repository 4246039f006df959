"""CE baseline (λ = 0) versus CeCo on one preset and several seeds.

Differences are *paired* by seed (same data, same initialisation, same batches;
only λ differs) and summarised as mean ± unbiased std over seeds.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Iterable

from .checkpoint import atomic_write_json
from .config import TrainConfig, get_preset
from .trainer import train

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
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


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


def format_compare_table(summary: dict, *, lam: float, seeds) -> str:
    lines = [f"CE (λ=0) vs CeCo (λ={lam:g}), seeds {list(seeds)}: mean ± std over seeds; Δ paired by seed",
             f"{'quantity':<30}{'CE':>18}{'CeCo':>18}{'Δ (CeCo − CE)':>20}"]
    for label, row in summary.items():
        cells = [f"{m:8.3f} ± {s:6.3f}" if not math.isnan(m) else "n/a" for m, s in (row["ce"], row["ceco"], row["diff"])]
        lines.append(f"{label:<30}{cells[0]:>18}{cells[1]:>18}{cells[2]:>20}")
    return "\n".join(lines)


def compare(preset: str | TrainConfig, seeds: Iterable[int] = (0, 1, 2), *, lam: float | None = None,
            out_dir: str | Path | None = None, progress: bool = False, **overrides) -> dict:
    """Train ``preset`` with λ = 0 and with CeCo (λ = ``lam``, default the preset's) for each seed.

    Parameters
    ----------
    preset : str or TrainConfig
    seeds : iterable of int
    lam : float, optional
        CeCo weight; must be > 0 (the preset's ``ceco_lambda`` when None).
    out_dir : path, optional
        Run directories ``out_dir/ce-seed{S}`` and ``out_dir/ceco-seed{S}`` and ``compare.json``.
    **overrides
        TrainConfig fields applied to both arms.

    Returns
    -------
    dict with ``summary`` (see :func:`summarize`), ``table`` (text), ``runs`` (metrics per run,
    without histories), ``lam``, ``seeds``.
    """
    base = preset if isinstance(preset, TrainConfig) else get_preset(preset)
    base = base.replace(progress=progress, **overrides)
    lam = base.ceco_lambda if lam is None else float(lam)
    if not lam > 0:
        raise ValueError(f"lam must be > 0 for a comparison against the λ = 0 baseline, got {lam}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    runs = {"ce": [], "ceco": []}
    for seed in seeds:
        for arm, value in (("ce", 0.0), ("ceco", lam)):
            run_out = str(Path(out_dir) / f"{arm}-seed{seed}") if out_dir else None
            res = train(base.replace(seed=seed, ceco_lambda=value, out_dir=run_out))
            runs[arm].append({k: v for k, v in res.metrics.items() if k not in ("history", "config")})
    summary = summarize(runs["ce"], runs["ceco"])
    result = {"preset": base.preset, "lam": lam, "seeds": seeds, "summary": summary,
              "table": format_compare_table(summary, lam=lam, seeds=seeds), "runs": runs,
              "config": base.to_dict()}
    if out_dir:
        atomic_write_json(result, Path(out_dir) / "compare.json")
    return result
