"""Plotly figure builders and updaters shared by the lessons.

Layers: the maths lives in :mod:`ceco_lite` (etf, ufm, gradients, nc),
figures live here, widget wiring lives in :mod:`ceco_lite.widgets`, and the
notebooks only call widgets.  Every *builder* returns a
:class:`plotly.graph_objects.FigureWidget` whose traces have fixed positions (named
in the builder's docstring); the matching *updater* writes new data into those
traces inside one ``fig.batch_update()``, so a slider move costs one message to
the browser.  Builders take no tensors; updaters take numpy arrays or tensors.

Sections
--------
* generic helpers
* Lesson 1 -- simplex ETF (CeCo paper Def. 1, Eq. 1-2, Lemma 1)
* Lesson 2 -- neural collapse and minority collapse (layer-peeled model; CIFAR-LT accuracy)
* Lesson 4 -- gradient flow of the centre loss (CeCo paper Eq. 6-8)

Other lessons add their own section at the end, following the same pattern.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.spatial import ConvexHull

from .style import (BOUND_COLOR, COLORS, FIGURE_WIDTH, FIXED_COLOR, LEARNED_COLOR, NOTATION, class_axis, class_color,
                    log_axis, style_figure)

__all__ = [
    "to_numpy",
    # lesson 1
    "etf_explorer_figure",
    "update_etf_explorer",
    "lemma1_histogram_figure",
    "update_lemma1_histogram",
    "spread_figure",
    "update_spread_figure",
    # lesson 2
    "minority_collapse_figure",
    "update_minority_geometry",
    "update_minority_curves",
    "update_nc_bars",
    "class_accuracy_figure",
    # lesson 4
    "gradient_flow_figure",
    "update_gradient_flow",
]



# =========================================================================== generic helpers
def to_numpy(x) -> np.ndarray:
    """A tensor / array-like as a float64 numpy array (detached, on CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().to("cpu")
        if hasattr(x, "double"):
            x = x.double()
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def _unit_ball_scenes(fig: go.FigureWidget) -> None:
    """3-D scenes framing the unit ball: equal aspect, each axis over [-1.1, 1.1]."""
    fig.update_scenes(aspectmode="cube", xaxis=dict(range=[-1.1, 1.1]), yaxis=dict(range=[-1.1, 1.1]),
                      zaxis=dict(range=[-1.1, 1.1]))


def _segments_from_origin(points: np.ndarray):
    """x, y, z lists drawing one segment from the origin to each column of ``points`` (3, K)."""
    xs, ys, zs = [], [], []
    for k in range(points.shape[1]):
        xs += [0.0, points[0, k], None]
        ys += [0.0, points[1, k], None]
        zs += [0.0, points[2, k], None]
    return xs, ys, zs


def _pad_to_3d(points: np.ndarray) -> np.ndarray:
    """Rows 0..2 of ``points`` (d, K), zero-padded when ``d < 3``."""
    d, K = points.shape
    out = np.zeros((3, K))
    out[: min(d, 3)] = points[:3]
    return out


# =========================================================================== lesson 1: simplex ETF
def etf_explorer_figure() -> go.FigureWidget:
    """Simplex ETF in 3-D (left) and its Gram matrix (right).

    Traces: 0 ``vertices`` (scatter3d markers + labels), 1 ``rays`` (segments from the
    origin), 2 ``faces`` (mesh3d of the convex hull), 3 ``gram`` (heatmap).
    Filled by :func:`update_etf_explorer`.
    """
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.55, 0.45],
        specs=[[{"type": "scene"}, {"type": "xy"}]],
        subplot_titles=("ETF vectors (drag to rotate)", f"Gram matrix {NOTATION['gram']}"),
    )
    fig.add_trace(go.Scatter3d(name="vertices", mode="markers+text", x=[], y=[], z=[],
                               marker=dict(size=6), textposition="top center", showlegend=False), 1, 1)
    fig.add_trace(go.Scatter3d(name="rays", mode="lines", x=[], y=[], z=[],
                               line=dict(color="#555", width=4), showlegend=False), 1, 1)
    fig.add_trace(go.Mesh3d(name="faces", x=[], y=[], z=[], opacity=0.25, color="#9467bd",
                            flatshading=True, showscale=False), 1, 1)
    fig.add_trace(go.Heatmap(name="gram", z=[[0.0]], zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                             texttemplate="%{z:.2f}", colorbar=dict(len=0.8, x=1.0)), 1, 2)
    fig = go.FigureWidget(fig)
    style_figure(fig, height=460, width=FIGURE_WIDTH, legend=False)
    _unit_ball_scenes(fig)
    class_axis(fig, row=1, col=2)
    class_axis(fig, axis="y", row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    return fig


def _hull_faces(points: np.ndarray):
    """Triangles (i, j, k) of the convex hull of the columns of ``points`` (3, K); () if degenerate."""
    K = points.shape[1]
    if K < 3:
        return [], [], []
    if K == 3:
        return [0], [1], [2]
    try:
        hull = ConvexHull(points.T)
        tri = hull.simplices
        return tri[:, 0].tolist(), tri[:, 1].tolist(), tri[:, 2].tolist()
    except Exception:  # coplanar points (e.g. a projection): draw no faces
        return [], [], []


def update_etf_explorer(fig: go.FigureWidget, vectors, gram, *, title: str) -> None:
    """Draw an ETF: ``vectors`` (d, K) shown by their first 3 coordinates; ``gram`` (K, K).

    Parameters
    ----------
    fig : FigureWidget
        From :func:`etf_explorer_figure`.
    vectors : array-like, shape (d, K)
        Columns = vectors; only rows 0..2 are drawn (zero-padded if ``d < 3``).
    gram : array-like, shape (K, K)
    title : str
        Figure title (e.g. the cosine ``-1/(K-1)``).
    """
    P = _pad_to_3d(to_numpy(vectors))
    G = to_numpy(gram)
    K = P.shape[1]
    labels = [f"m{k + 1}" for k in range(K)]
    xs, ys, zs = _segments_from_origin(P)
    i, j, k = _hull_faces(P)
    with fig.batch_update():
        fig.data[0].update(x=P[0], y=P[1], z=P[2], text=labels,
                           marker=dict(size=6, color=[class_color(c) for c in range(K)]))
        fig.data[1].update(x=xs, y=ys, z=zs)
        fig.data[2].update(x=P[0], y=P[1], z=P[2], i=i, j=j, k=k, visible=bool(len(i)))
        fig.data[3].update(z=G, x=labels, y=labels)
        fig.layout.title.text = title


def lemma1_histogram_figure() -> go.FigureWidget:
    """Histogram of the largest pairwise cosine of random unit vectors against Lemma 1's bound.

    Traces: 0 ``random`` (histogram), 1 ``bound`` (vertical line at ``-1/(K-1)``),
    2 ``optimiser`` (vertical line at the spreading optimiser's result).
    Filled by :func:`update_lemma1_histogram`.
    """
    fig = go.FigureWidget()
    fig.add_trace(go.Histogram(name="random unit vectors", x=[], nbinsx=60, marker_color="#7f7f7f", opacity=0.8))
    fig.add_trace(go.Scatter(name="Lemma 1 bound −1/(K−1)", x=[], y=[], mode="lines",
                             line=dict(color=BOUND_COLOR, width=3, dash="dash")))
    fig.add_trace(go.Scatter(name="spreading optimiser", x=[], y=[], mode="lines",
                             line=dict(color=LEARNED_COLOR, width=2)))
    style_figure(fig, height=400)
    fig.update_xaxes(title_text=NOTATION["max_cos"])
    fig.update_yaxes(title_text="number of random sets")
    return fig


def update_lemma1_histogram(fig: go.FigureWidget, max_cosines, bound: float, optimiser_value: float,
                            *, title: str) -> None:
    """Fill :func:`lemma1_histogram_figure` (``max_cosines``: one value per random set)."""
    values = to_numpy(max_cosines)
    counts, _ = np.histogram(values, bins=60)
    top = float(max(counts.max(), 1)) * 1.05
    with fig.batch_update():
        fig.data[0].x = values
        fig.data[1].update(x=[bound, bound], y=[0, top])
        fig.data[2].update(x=[optimiser_value, optimiser_value], y=[0, top])
        fig.layout.title.text = title
        fig.layout.xaxis.range = [min(bound, float(values.min())) - 0.05, 1.0]


def spread_figure() -> go.FigureWidget:
    """The spreading optimiser at work: vectors in 3-D (left), largest cosine per step (right).

    Traces: 0 ``vectors`` (scatter3d markers), 1 ``rays``, 2 ``max cosine`` (curve),
    3 ``bound`` (horizontal line), 4 ``now`` (marker at the current step).
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                        specs=[[{"type": "scene"}, {"type": "xy"}]],
                        subplot_titles=("unit vectors at this step", "largest pairwise cosine"))
    fig.add_trace(go.Scatter3d(name="vectors", mode="markers", x=[], y=[], z=[], marker=dict(size=6),
                               showlegend=False), 1, 1)
    fig.add_trace(go.Scatter3d(name="rays", mode="lines", x=[], y=[], z=[], line=dict(color="#555", width=4),
                               showlegend=False), 1, 1)
    fig.add_trace(go.Scatter(name="max cosine", x=[], y=[], mode="lines", line=dict(color=LEARNED_COLOR)), 1, 2)
    fig.add_trace(go.Scatter(name="Lemma 1 bound", x=[], y=[], mode="lines",
                             line=dict(color=BOUND_COLOR, dash="dash")), 1, 2)
    fig.add_trace(go.Scatter(name="this step", x=[], y=[], mode="markers",
                             marker=dict(size=12, color="black", symbol="circle-open")), 1, 2)
    fig = go.FigureWidget(fig)
    style_figure(fig, height=440, width=FIGURE_WIDTH)
    _unit_ball_scenes(fig)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_yaxes(title_text=NOTATION["max_cos"], row=1, col=2)
    return fig


def update_spread_figure(fig: go.FigureWidget, *, vectors=None, steps=None, max_cosine=None, bound=None,
                         step: int, step_value: float, title: str | None = None) -> None:
    """Update :func:`spread_figure`; curve arguments (``steps``, ``max_cosine``, ``bound``) are optional.

    ``vectors`` (d, K) is drawn by its first 3 coordinates; ``step``/``step_value`` place the marker.
    """
    with fig.batch_update():
        if vectors is not None:
            P = _pad_to_3d(to_numpy(vectors))
            xs, ys, zs = _segments_from_origin(P)
            fig.data[0].update(x=P[0], y=P[1], z=P[2],
                               marker=dict(size=6, color=[class_color(c) for c in range(P.shape[1])]))
            fig.data[1].update(x=xs, y=ys, z=zs)
        if max_cosine is not None:
            s = to_numpy(steps)
            fig.data[2].update(x=s, y=to_numpy(max_cosine))
            fig.data[3].update(x=[s[0], s[-1]], y=[bound, bound])
        fig.data[4].update(x=[step], y=[step_value])
        if title is not None:
            fig.layout.title.text = title


# =========================================================================== lesson 2: minority collapse
#: (key of :func:`ceco_lite.nc_metrics`, bar label): NC1; NC2 as equiangularity (std of the
#: cosines) and maximal angle (mean |cos + 1/(K-1)|) of the centred means and of W; NC3
NC_BAR_KEYS = (
    ("nc1", "NC1"),
    ("equiangularity_centers", "std cos<br>means"),
    ("max_angle_centers", "max-angle<br>means"),
    ("equiangularity_classifiers", "std cos<br>W"),
    ("max_angle_classifiers", "max-angle<br>W"),
    ("self_duality", "NC3"),
)


def minority_collapse_figure() -> go.FigureWidget:
    """Layer-peeled model geometry (top) and minority collapse against R (bottom).

    Traces: 0 ``classifier cosines`` (heatmap cos(w_k, w_k')), 1 ``class-mean cosines``
    (heatmap of the centred class means), 2 ``learned W`` (minority mean cosine vs R),
    3 ``fixed ETF`` (same), 4 ``this R (learned)`` / 5 ``this R (fixed)`` (markers),
    6 ``NC statistics`` (bars).
    """
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.16, horizontal_spacing=0.12,
        subplot_titles=("cos(w<sub>k</sub>, w<sub>k′</sub>) of the classifiers", "cos of the centred class means",
                        "minority classifiers: mean cosine against R", "NC statistics (0 = collapse, log scale)"),
    )
    heat = dict(zmin=-1, zmax=1, colorscale="RdBu", reversescale=True)
    fig.add_trace(go.Heatmap(name="classifier cosines", z=[[0.0]], colorbar=dict(len=0.4, y=0.8), **heat), 1, 1)
    fig.add_trace(go.Heatmap(name="class-mean cosines", z=[[0.0]], showscale=False, **heat), 1, 2)
    fig.add_trace(go.Scatter(name="learned classifier", x=[], y=[], mode="lines+markers",
                             line=dict(color=LEARNED_COLOR)), 2, 1)
    fig.add_trace(go.Scatter(name="fixed ETF classifier", x=[], y=[], mode="lines+markers",
                             line=dict(color=FIXED_COLOR)), 2, 1)
    fig.add_trace(go.Scatter(name="this R (learned)", x=[], y=[], mode="markers", showlegend=False,
                             marker=dict(size=14, color=LEARNED_COLOR, symbol="star")), 2, 1)
    fig.add_trace(go.Scatter(name="this R (fixed ETF)", x=[], y=[], mode="markers", showlegend=False,
                             marker=dict(size=14, color=FIXED_COLOR, symbol="star")), 2, 1)
    fig.add_trace(go.Bar(name="NC statistics", x=[label for _, label in NC_BAR_KEYS], y=[0.0] * len(NC_BAR_KEYS),
                         marker_color="#9467bd", showlegend=False), 2, 2)
    fig = go.FigureWidget(fig)
    style_figure(fig, height=780, width=FIGURE_WIDTH)
    for col in (1, 2):
        class_axis(fig, row=1, col=col)
        class_axis(fig, axis="y", row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    log_axis(fig, axis="x", row=2, col=1, title="imbalance ratio R = n<sub>majority</sub> / n<sub>minority</sub>")
    fig.update_yaxes(range=[-1.05, 1.05], title_text="mean cosine", row=2, col=1)
    class_axis(fig, [label for _, label in NC_BAR_KEYS], row=2, col=2)
    log_axis(fig, row=2, col=2, title="value")
    return fig


def _cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    U = vectors / np.maximum(np.linalg.norm(vectors, axis=0, keepdims=True), 1e-300)
    return U.T @ U


def update_minority_geometry(fig: go.FigureWidget, classifier, centred_means, *, minority, title: str) -> None:
    """Cosine heatmaps of the classifier columns and centred class means, both (d, K).

    ``minority`` (list of int) marks the minority classes in the tick labels ("k*").
    """
    W = to_numpy(classifier)
    M = to_numpy(centred_means)
    K = W.shape[1]
    labels = [f"{k}*" if k in set(minority) else f"{k}" for k in range(K)]
    with fig.batch_update():
        fig.data[0].update(z=_cosine_matrix(W), x=labels, y=labels)
        fig.data[1].update(z=_cosine_matrix(M), x=labels, y=labels)
        fig.layout.title.text = title


def update_minority_curves(fig: go.FigureWidget, *, ratios=None, learned=None, fixed=None,
                           current_ratio=None, current_learned=None, current_fixed=None) -> None:
    """Curves of the minority mean cosine against R (``learned``, ``fixed``) and the current-R markers."""
    with fig.batch_update():
        if ratios is not None:
            r = to_numpy(ratios)
            if learned is not None:
                fig.data[2].update(x=r, y=to_numpy(learned))
            if fixed is not None:
                fig.data[3].update(x=r, y=to_numpy(fixed))
        if current_ratio is not None:
            fig.data[4].update(x=[current_ratio] if current_learned is not None else [],
                               y=[current_learned] if current_learned is not None else [])
            fig.data[5].update(x=[current_ratio] if current_fixed is not None else [],
                               y=[current_fixed] if current_fixed is not None else [])


#: Bars below this value are drawn at it (a log axis cannot show 0); their labels give the true value.
NC_BAR_FLOOR = 1e-12


def update_nc_bars(fig: go.FigureWidget, stats: dict) -> None:
    """Bars of the NC statistics (keys of :func:`ceco_lite.nc_metrics`), labelled with their true values.

    On the log axis a value below :data:`NC_BAR_FLOOR` (an exact collapse, up to round-off) is
    drawn at the floor and labelled "≈ 0 (<value>)"; the axis spans the values shown.
    """
    values = [float(stats.get(key, float("nan"))) for key, _ in NC_BAR_KEYS]
    drawn = [max(v, NC_BAR_FLOOR) if v == v else NC_BAR_FLOOR for v in values]
    text = [("n/a" if v != v else f"≈ 0 ({v:.0e})" if v < NC_BAR_FLOOR else f"{v:.2g}") for v in values]
    lo = min(drawn) / 3.0
    hi = max(drawn) * 3.0
    with fig.batch_update():
        fig.data[6].update(x=[label for _, label in NC_BAR_KEYS], y=drawn, text=text, textposition="outside",
                           cliponaxis=False)
        fig.layout.yaxis4.range = [math.log10(lo), math.log10(hi)]


def class_accuracy_figure(frequency, accuracy, *, pearson: float, title: str,
                          class_names=None, ylabel: str = "class accuracy") -> go.FigureWidget:
    """Per-class accuracy against normalised class frequency (CeCo supplement Fig. 7a).

    Parameters
    ----------
    frequency : array-like (K,)
        ``f_k = n_k / n_max`` (supplement Sec. C).
    accuracy : array-like (K,)
        Per-class accuracy in [0, 1].
    pearson : float
        Pearson correlation of accuracy and frequency (shown in the title).
    title : str
    class_names : list of str, optional
    ylabel : str, default "class accuracy"
    """
    f = to_numpy(frequency)
    a = to_numpy(accuracy)
    names = list(class_names) if class_names is not None else [str(k) for k in range(len(f))]
    fig = go.FigureWidget()
    fig.add_trace(go.Scatter(name="classes", x=f, y=a, mode="markers+text", text=names,
                             textposition="top center", marker=dict(size=11, color=FIXED_COLOR)))
    if len(f) >= 2 and np.ptp(f) > 0:
        slope, intercept = np.polyfit(f, a, 1)
        xs = np.linspace(f.min(), f.max(), 20)
        fig.add_trace(go.Scatter(name="least-squares line", x=xs, y=slope * xs + intercept, mode="lines",
                                 line=dict(color=LEARNED_COLOR, dash="dash")))
    style_figure(fig, height=440, title=f"{title} — Pearson ρ = {pearson:.2f}")
    fig.update_xaxes(title_text="class frequency f<sub>k</sub> = n<sub>k</sub> / n<sub>max</sub>", range=[-0.05, 1.05])
    fig.update_yaxes(title_text=ylabel, range=[-0.05, 1.05])
    return fig


# =========================================================================== lesson 4: gradient flow
def gradient_flow_figure(num_classes: int) -> go.FigureWidget:
    """Per-class gradients of the centre loss (CeCo paper Eq. 6, 8) for a learned and a fixed classifier.

    Traces: 0/1 ``within-class`` / ``between-class`` norm of ``dL/dw_k`` (learned classifier),
    2 ``||dL/dz_i||`` per class (learned), 3 ``||dL/dz_i||`` per class (fixed ETF),
    4 ``||w_k - w_k'||`` heatmap (learned), 5 same (fixed ETF), 6 class sizes (bars, secondary).
    """
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.17, horizontal_spacing=0.18,
        specs=[[{"secondary_y": True}, {}], [{}, {}]],
        subplot_titles=(f"{NOTATION['grad_w']}: within- vs between-class part (Eq. 6)",
                        f"{NOTATION['grad_z']} of one pixel, per class (Eq. 8)",
                        f"{NOTATION['dist_w']}, learned centre classifier", f"{NOTATION['dist_w']}, fixed ETF"),
    )
    classes = [str(k) for k in range(num_classes)]
    zeros = [0.0] * num_classes
    fig.add_trace(go.Bar(name="within-class part", x=classes, y=zeros, marker_color=COLORS[2]), 1, 1)
    fig.add_trace(go.Bar(name="between-class part", x=classes, y=zeros, marker_color=COLORS[3]), 1, 1)
    fig.add_trace(go.Bar(name=f"{NOTATION['grad_z']}, learned", x=classes, y=zeros, marker_color=LEARNED_COLOR), 1, 2)
    fig.add_trace(go.Bar(name=f"{NOTATION['grad_z']}, fixed ETF", x=classes, y=zeros, marker_color=FIXED_COLOR), 1, 2)
    heat = dict(colorscale="Viridis", zmin=0.0)
    fig.add_trace(go.Heatmap(name="learned distances", z=[[0.0]], colorbar=dict(len=0.4, y=0.2), **heat), 2, 1)
    fig.add_trace(go.Heatmap(name="ETF distances", z=[[0.0]], showscale=False, **heat), 2, 2)
    fig.add_trace(go.Scatter(name=f"class size {NOTATION['n_k']} (right axis)", x=classes, y=zeros,
                             mode="lines+markers", line=dict(color="black", dash="dot")), 1, 1, secondary_y=True)
    fig = go.FigureWidget(fig)
    style_figure(fig, height=800, width=FIGURE_WIDTH)
    fig.update_layout(barmode="group")
    for row in (1, 2):
        for col in (1, 2):
            class_axis(fig, row=row, col=col, title="class k")
    for col in (1, 2):
        class_axis(fig, axis="y", row=2, col=col)
        fig.update_yaxes(autorange="reversed", row=2, col=col)
    fig.update_yaxes(title_text="norm", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text=f"{NOTATION['n_k']} (log)", type="log", dtick=1, exponentformat="power", row=1,
                     col=1, secondary_y=True, showgrid=False)
    log_axis(fig, row=1, col=2, title=f"{NOTATION['grad_z']} (log)")
    return fig


def update_gradient_flow(fig: go.FigureWidget, *, class_sizes, within, between, feature_grad_learned,
                         feature_grad_fixed, dist_learned, dist_fixed, title: str) -> None:
    """Fill :func:`gradient_flow_figure`; per-class arrays are (K,), distance matrices (K, K)."""
    K = len(to_numpy(class_sizes))
    classes = [str(k) for k in range(K)]
    dl, df = to_numpy(dist_learned), to_numpy(dist_fixed)
    zmax = float(max(dl.max(), df.max(), 1e-12))
    with fig.batch_update():
        fig.data[0].update(x=classes, y=to_numpy(within))
        fig.data[1].update(x=classes, y=to_numpy(between))
        fig.data[2].update(x=classes, y=to_numpy(feature_grad_learned))
        fig.data[3].update(x=classes, y=to_numpy(feature_grad_fixed))
        fig.data[4].update(z=dl, x=classes, y=classes, zmax=zmax, texttemplate="%{z:.2f}")
        fig.data[5].update(z=df, x=classes, y=classes, zmax=zmax, texttemplate="%{z:.2f}")
        fig.data[6].update(x=classes, y=to_numpy(class_sizes))
        fig.layout.title.text = title
