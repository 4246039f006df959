"""Widgets of lesson 6 ("Beyond CeCo"): In2NeCT, released CeCo, IDDC clustering.

Like every widget of :mod:`ceco_lite.widgets`, each class exposes ``.widget`` (the
ipywidgets container), ``.figure`` (its plotly FigureWidget) and ``.update(**values)``
(the slider callback; tests call it or set a control's ``.value``).
The numbers come from the library: :mod:`ceco_lite.clustering` and
:mod:`ceco_lite.iddc` for the IDDC demo, the engine's run histories for the
In2NeCT and released-CeCo comparisons.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "IN2NECT_TABLE2",
    "compare_to_baseline",
    "ClusteringExplorer",
    "weibull_penalty_figure",
    "run_comparison_table",
    "RunComparison",
    "history_value",
]

#: In2NeCT Table 2 (LoveDA, UNetFormer): Δ_Inter, Δ_Intra and mIoU (%), in the row format of
#: :func:`run_comparison_table` / :func:`ceco_lite.widgets.training.results_table`.
IN2NECT_TABLE2 = {
    "UNetFormer (In2NeCT Table 2)": {"delta_inter": 0.047, "delta_intra": 0.135, "mIoU": 52.40},
    "+ In2NeCT (In2NeCT Table 2)": {"delta_inter": 0.018, "delta_intra": 0.113, "mIoU": 54.30},
}

_PRIOR_LABELS = {"weibull": "Weibull (IDDC)", "uniform": "uniform prior", "none": "no prior"}


class ClusteringExplorer:
    """Cluster sizes found with IDDC's Weibull regulariser vs a uniform prior.

    An imbalance slider regenerates the blobs (:func:`ceco_lite.clustering.imbalanced_blobs`)
    and retrains one clustering head per prior
    (:func:`ceco_lite.clustering.train_clustering_head`) on slider release; the
    figure shows the sorted cluster sizes beside the true sizes, the HTML line the
    matched accuracy, NMI, size distance and the number of empty clusters.

    Parameters
    ----------
    num_clusters : int, default 8
    imbalance_factor : float, default 30
        Initial slider value (the slider spans 1 ... 100 on a log scale).
    priors : sequence of str, default ("weibull", "uniform", "none")
    prior_weights : mapping, optional
        Weight per prior; defaults ``{"weibull": 0.5, "uniform": 1.0}``.
    n_max, steps, seed
        Passed to the library functions.
    """

    def __init__(self, *, num_clusters: int = 8, imbalance_factor: float = 30.0,
                 priors: Sequence[str] = ("weibull", "uniform", "none"),
                 prior_weights: Mapping[str, float] | None = None, n_max: int = 300,
                 steps: int = 200, seed: int = 0) -> None:
        import ipywidgets as W

        from ..clustering import PRIORS
        from ..plotting_segmentation import cluster_sizes_figure

        for p in priors:
            if p not in PRIORS:
                raise ValueError(f"priors must be taken from {PRIORS}, got {p!r}")
        self.num_clusters = int(num_clusters)
        self.priors = tuple(priors)
        self.prior_weights = {"weibull": 0.5, "uniform": 1.0, "none": 0.0, **(prior_weights or {})}
        self.n_max, self.steps, self.seed = int(n_max), int(steps), int(seed)
        self.results: dict = {}
        self.imbalance = W.FloatLogSlider(value=float(imbalance_factor), base=10, min=0, max=2, step=0.05,
                                          description="imbalance", continuous_update=False,
                                          readout_format=".0f", style={"description_width": "initial"})
        self.status = W.HTML()
        names = [_PRIOR_LABELS[p] for p in self.priors]
        self.figure = cluster_sizes_figure(np.zeros(self.num_clusters),
                                           {n: np.zeros(self.num_clusters) for n in names})
        self.imbalance.observe(lambda change: self.update(imbalance_factor=change["new"]), names="value")
        self.widget = W.VBox([self.imbalance, self.figure, self.status])
        self.update(imbalance_factor=self.imbalance.value)

    def compute(self, imbalance_factor: float) -> dict:
        """Train one head per prior at this imbalance factor; returns ``{prior: ClusteringResult}``."""
        from ..clustering import imbalanced_blobs, train_clustering_head

        X, y, sizes = imbalanced_blobs(self.num_clusters, imbalance_factor, n_max=self.n_max, seed=self.seed)
        self.true_sizes = sizes
        return {p: train_clustering_head(X, self.num_clusters, prior=p, prior_weight=self.prior_weights[p],
                                         labels=y, steps=self.steps, seed=self.seed)
                for p in self.priors}

    def update(self, *, imbalance_factor: float | None = None) -> None:
        """Recompute for a new imbalance factor and redraw (the slider's callback)."""
        from ..plotting_segmentation import update_cluster_sizes

        if imbalance_factor is None:
            imbalance_factor = self.imbalance.value
        self.results = self.compute(float(imbalance_factor))
        update_cluster_sizes(self.figure, self.true_sizes,
                             {_PRIOR_LABELS[p]: r.cluster_sizes for p, r in self.results.items()},
                             title=f"Cluster sizes, sorted (true imbalance factor {float(imbalance_factor):.0f})")
        rows = "".join(
            f"<tr><td>{_PRIOR_LABELS[p]}</td><td>{r.matched_accuracy:.3f}</td><td>{r.nmi:.3f}</td>"
            f"<td>{r.size_distance:.3f}</td><td>{r.num_empty}</td></tr>"
            for p, r in self.results.items())
        self.status.value = ("<table><tr><th>prior</th><th>matched acc.</th><th>NMI</th>"
                             "<th>size distance</th><th>empty clusters</th></tr>" + rows + "</table>")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def weibull_penalty_figure(shapes: Sequence[float] = (0.3, 1.0, 2.0), *, lam: float = 5.0, num_points: int = 200):
    """The Weibull density ``f(x)`` (:func:`ceco_lite.iddc.weibull_density`) on ``x ∈ [1e-4, 1]``.

    One line per shape ``k``; IDDC uses ``k = 0.3`` (falls monotonically, so near-empty
    clusters cost most), ``k >= 1`` does not have that property.
    """
    from ..iddc import weibull_density
    from ..plotting_segmentation import prior_penalty_figure

    x = np.logspace(-4, 0, num_points)
    curves = {f"k = {k:g}" + (" (IDDC)" if k == 0.3 else ""): weibull_density(x, lam=lam, k=k) for k in shapes}
    return prior_penalty_figure(x, curves, title=f"Weibull density f(x), λ = {lam:g}",
                                yaxis_title="f(x)")


def run_comparison_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str], *,
                         reference: Mapping[str, Mapping[str, float]] | None = None,
                         formats: Mapping[str, str] | None = None, caption: str = "",
                         headers: Mapping[str, str] | None = None) -> str:
    """An HTML table: one row per run (``rows[name][column]``), optional paper rows in grey.

    Missing values print as "–"; ``headers`` renames columns for display. Used by
    lessons 5 and 6 to show our numbers beside the papers' (SPEC §5).
    """
    import html

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
    import html

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


class RunComparison:
    """Curves of one history metric for several runs, with a metric dropdown.

    Parameters
    ----------
    histories : mapping run name -> list of per-epoch dicts
        The engine's per-epoch history (each entry a dict holding at least
        ``"epoch"`` and the metric keys).
    metrics : sequence of str
        Keys the dropdown offers (first one shown).
    labels : mapping, optional
        Human-readable names of the metrics.
    """

    def __init__(self, histories: Mapping[str, Sequence[Mapping]], metrics: Sequence[str], *,
                 labels: Mapping[str, str] | None = None, title: str = "") -> None:
        import ipywidgets as W

        from ..plotting_segmentation import curves_figure

        if not metrics:
            raise ValueError("metrics must name at least one history key")
        self.histories = dict(histories)
        self.labels = dict(labels or {})
        self.metric = W.Dropdown(options=[(self.labels.get(m, m), m) for m in metrics], value=metrics[0],
                                 description="metric")
        self.figure = curves_figure(self._curves(metrics[0]), title=title,
                                    yaxis_title=self.labels.get(metrics[0], metrics[0]))
        self.metric.observe(lambda change: self.update(metric=change["new"]), names="value")
        self.widget = W.VBox([self.metric, self.figure])

    def _curves(self, metric: str) -> dict:
        out = {}
        for name, hist in self.histories.items():
            pts = [(h["epoch"], history_value(h, metric)) for h in hist]
            pts = [(e, v) for e, v in pts if v is not None]
            out[name] = ([e for e, _ in pts], [v for _, v in pts])
        return out

    def update(self, *, metric: str | None = None) -> None:
        """Show another metric (the dropdown's callback)."""
        from ..plotting_segmentation import update_curves

        metric = metric or self.metric.value
        update_curves(self.figure, self._curves(metric), yaxis_title=self.labels.get(metric, metric))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def history_value(entry: Mapping, key: str):
    """``entry[key]`` as a float, where ``key`` may be dotted (``"nc.equiangularity_centers"``).

    Returns ``None`` when a part of the key is missing or the value is not a number
    (engine history records omit statistics on epochs where they were not computed).
    """
    cur = entry
    for part in key.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    try:
        return float(cur)
    except (TypeError, ValueError):
        return None
