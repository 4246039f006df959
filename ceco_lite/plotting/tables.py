"""HTML tables of training runs, their numbers beside the papers' (grey rows)."""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np

from ..published import CECO_TABLE1
from .runs import NC_LABELS, summary_rows

__all__ = ["run_comparison_table", "compare_to_baseline", "results_table", "ablation_table"]


def run_comparison_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str], *,
                         reference: Mapping[str, Mapping[str, float]] | None = None,
                         formats: Mapping[str, str] | None = None, caption: str = "",
                         headers: Mapping[str, str] | None = None) -> str:
    """An HTML table: one row per run (``rows[name][column]``), optional paper rows in grey.

    Missing values print as "–"; ``headers`` renames columns for display. Used by
    lessons 5 and 6 to show measured numbers beside the papers' (:mod:`ceco_lite.published`).
    """
    fmt = formats or {}

    def cell(v, c):
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "–"
        return fmt.get(c, "{:.3f}").format(v) if isinstance(v, (int, float, np.floating)) else html.escape(str(v))

    head = "".join(f"<th>{html.escape((headers or {}).get(c, c))}</th>" for c in columns)
    body = []
    for name, vals in rows.items():
        body.append(f"<tr><td><b>{html.escape(name)}</b></td>"
                    + "".join(f"<td>{cell(vals.get(c), c)}</td>" for c in columns) + "</tr>")
    for name, vals in (reference or {}).items():
        body.append(f"<tr style='color:#777'><td><i>{html.escape(name)}</i></td>"
                    + "".join(f"<td>{cell(vals.get(c), c)}</td>" for c in columns) + "</tr>")
    cap = f"<caption style='caption-side:bottom'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tr><th>run</th>{head}</tr>{''.join(body)}</table>"


def compare_to_baseline(rows: Mapping[str, Mapping[str, float]], baseline: str, keys: Sequence[str], *,
                        labels: Mapping[str, str] | None = None, relative: Sequence[str] = ()) -> str:
    """One HTML line per run: each metric as ``baseline → run (change)``.

    Parameters
    ----------
    rows : mapping run -> {metric: value}
        E.g. :func:`ceco_lite.widgets.training.summary_rows`.
    baseline : str
        The reference run (a key of ``rows``).
    keys : sequence of str
        Metrics to report.
    labels : mapping, optional
        Display names of the metrics.
    relative : sequence of str
        Metrics whose change is given in percent of the baseline (others: absolute).

    Raises
    ------
    KeyError
        If ``baseline`` is not in ``rows``.
    """
    if baseline not in rows:
        raise KeyError(f"baseline {baseline!r} not among the runs {list(rows)}")
    base = rows[baseline]
    lines = []
    for name, vals in rows.items():
        if name == baseline:
            continue
        parts = []
        for k in keys:
            a, b = base.get(k), vals.get(k)
            if a is None or b is None:
                continue
            label = html.escape((labels or {}).get(k, k))
            if k in relative and a:
                change = f"{100 * (b - a) / abs(a):+.0f} %"
            else:
                change = f"{b - a:+.3g}"
            parts.append(f"{label} {a:.3g} → {b:.3g} ({change})")
        lines.append(f"<li><b>{html.escape(name)}</b> vs {html.escape(baseline)}: " + "; ".join(parts) + "</li>")
    return "<ul>" + "".join(lines) + "</ul>"


def results_table(results: Mapping[str, object], *, reference: Mapping[str, Mapping] | None = None,
                  nc_keys: Sequence[str] = ("equiangularity_centers", "max_angle_centers", "nc1"),
                  caption: str = "") -> str:
    """HTML table of :func:`summary_rows` (IoU in %, NC statistics, time per step) plus paper rows."""
    cols = ["mIoU", "head", "common", "tail", *nc_keys, "s/step"]
    fmts = {"mIoU": "{:.1f}", "head": "{:.1f}", "common": "{:.1f}", "tail": "{:.1f}", "s/step": "{:.3f}"}
    return run_comparison_table(summary_rows(results, nc_keys=nc_keys), cols, reference=reference,
                                formats=fmts, caption=caption, headers=NC_LABELS)


def ablation_table(results: Mapping[tuple, object]) -> str:
    """CeCo Table 1 as HTML: the runs' mIoU (and tail IoU) per (pixel, centre classifier) beside the paper's."""
    rows = {}
    for (pc, cc), r in results.items():
        p = CECO_TABLE1.get((pc, cc), (None, None))
        rows[f"PC {pc} / CC {cc or '–'}"] = {"this run: mIoU": r.metrics.get("miou"), "this run: tail": r.metrics.get("tail"),
                                            "paper ScanNet200": p[0], "paper ADE20K": p[1]}
    cols = ["this run: mIoU", "this run: tail", "paper ScanNet200", "paper ADE20K"]
    return run_comparison_table(rows, cols, formats={c: "{:.1f}" for c in cols},
                                caption="PC: pixel classifier, CC: centre classifier (CeCo Table 1).")
