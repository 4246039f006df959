"""Plotly figure builders and updaters shared by the lessons.

Layers: the maths lives in :mod:`ceco_lite` (etf, ufm, gradients, nc),
figures live here, widget wiring lives in :mod:`ceco_lite.widgets`, and the
notebooks only call widgets.  Every *builder* returns a
complete :class:`plotly.graph_objects.Figure` (traces, layout and style) whose traces have
fixed positions (named in the builder's docstring); a widget fills it with its first
state and shows it (``ceco_lite.widgets._figure_view.FigureView``). The matching *updater*
writes new data into those traces in place, and the widget then sends the figure to the
browser in one message, where plotly.js redraws only what changed (``Plotly.react``); a
figure whose numbers did not change is not sent at all. Builders take no tensors;
updaters take numpy arrays or tensors.

What a figure costs in the browser: every update redraws the whole figure, and text
is the expensive part (each label is measured). So the figures that sliders redraw
keep few labels, fixed margins (:func:`~ceco_lite.plotting.style.fixed_margins`)
and fixed axis ranges where the data allow, and a widget whose controls change
different parts shows them in separate figures.

Sections
--------
* generic helpers
* Lesson 1 -- simplex ETF (CeCo paper Def. 1, Eq. 1-2, Lemma 1)
* Lesson 2 -- neural collapse and minority collapse (layer-peeled model; CIFAR-LT accuracy)
* Lesson 4 -- gradient flow of the centre loss (CeCo paper Eq. 6-8)

Other lessons add their own section at the end, following the same pattern.
"""
from __future__ import annotations

import copy
import functools
import json
import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
from scipy.spatial import ConvexHull

from .style import (BOUND_COLOR, COLORS, FIGURE_WIDTH, FIXED_COLOR, LEARNED_COLOR, NOTATION, class_axis,
                    class_color, decade_range, fixed_margins, log_axis, style_figure)

__all__ = [
    "to_numpy",
    "subscript",
    # lesson 1
    "etf_vectors_figure",
    "update_etf_vectors",
    "gram_figure",
    "update_gram",
    "lemma1_histogram_figure",
    "update_lemma1_histogram",
    "spread_figure",
    "spread_animation_figure",
    # lesson 2
    "NC_BAR_KEYS",
    "minority_collapse_figure",
    "update_minority_geometry",
    "update_minority_curves",
    "update_nc_bars",
    "nc_bar_values",
    "class_accuracy_figure",
    # lesson 4
    "gradient_bars_figure",
    "update_gradient_bars",
    "distance_heatmaps_figure",
    "update_distance_heatmaps",
    "size_labels",
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


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def subscript(name: str, index: int) -> str:
    """``name`` with a Unicode subscript index (``subscript("m", 12) == "m₁₂"``), for text where HTML is not rendered."""
    return f"{name}{str(int(index)).translate(_SUBSCRIPTS)}"


def _unit_ball_scene(**extra) -> dict:
    """A 3-D scene framing the unit ball: equal aspect, each axis over [-1.25, 1.25], no axis titles."""
    axis = dict(range=[-1.25, 1.25], title_text="", showspikes=False, nticks=5)
    return dict(aspectmode="cube", xaxis=axis, yaxis=axis, zaxis=axis, camera=dict(eye=dict(x=1.45, y=1.2, z=0.9)),
                **extra)


def _segments_from_origin(points: np.ndarray):
    """x, y, z arrays drawing one segment from the origin to each column of ``points`` (3, K), NaN-separated."""
    K = points.shape[1]
    out = np.full((3, 3 * K), np.nan)
    out[:, 0::3] = 0.0
    out[:, 1::3] = points
    return out[0], out[1], out[2]


def _pad_to_3d(points: np.ndarray) -> np.ndarray:
    """Rows 0..2 of ``points`` (d, K), zero-padded when ``d < 3``."""
    d, K = points.shape
    out = np.zeros((3, K))
    out[: min(d, 3)] = points[:3]
    return out


# =========================================================================== lesson 1: simplex ETF
#: radial position of the vertex labels (times the vertex): outside the solid, one label per ray
LABEL_RADIUS = 1.22


def etf_vectors_figure() -> go.Figure:
    """A simplex ETF in 3-D: vertices, their labels, rays from the origin, the faces of their hull.

    Traces: 0 ``vertices`` (scatter3d markers), 1 ``labels`` (scatter3d text, placed on each
    ray beyond its vertex so that two labels never sit on one point), 2 ``rays`` (segments from
    the origin), 3 ``faces`` (mesh3d of the convex hull). Filled by :func:`update_etf_vectors`.
    """
    empty = dict(x=[0.0], y=[0.0], z=[0.0])
    data = [
        go.Scatter3d(name="vertices", mode="markers", marker=dict(size=6, color=COLORS[0]), hoverinfo="text",
                     text=[""], **empty),
        go.Scatter3d(name="labels", mode="text", text=[""], textfont=dict(size=13), hoverinfo="skip", **empty),
        go.Scatter3d(name="rays", mode="lines", line=dict(color="#555", width=4), hoverinfo="skip", **empty),
        go.Mesh3d(name="faces", opacity=0.25, color="#9467bd", flatshading=True, showscale=False, hoverinfo="skip",
                  i=[], j=[], k=[], **empty),
    ]
    fig = go.Figure(data=data, layout=dict(scene=_unit_ball_scene()))
    style_figure(fig, height=430, width=500, legend=False, title="ETF vectors (drag to rotate)")
    fig.update_layout(margin=dict(l=0, r=0, t=40, b=0))
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


def update_etf_vectors(fig: go.Figure, vectors) -> None:
    """Draw the vectors ``(d, K)`` (columns) by their first 3 coordinates (zero-padded if ``d < 3``)."""
    P = _pad_to_3d(to_numpy(vectors))
    K = P.shape[1]
    names = [subscript("m", k + 1) for k in range(K)]
    xs, ys, zs = _segments_from_origin(P)
    i, j, k = _hull_faces(P)
    L = LABEL_RADIUS * P
    with fig.batch_update():
        fig.data[0].update(x=P[0], y=P[1], z=P[2], text=names,
                           marker=dict(size=6, color=[class_color(c) for c in range(K)]))
        fig.data[1].update(x=L[0], y=L[1], z=L[2], text=names)
        fig.data[2].update(x=xs, y=ys, z=zs)
        fig.data[3].update(x=P[0], y=P[1], z=P[2], i=i, j=j, k=k, visible=bool(len(i)))


#: the Gram matrix shows its numbers up to this many classes (beyond, colours and hover only)
GRAM_TEXT_MAX_CLASSES = 8


def gram_figure() -> go.Figure:
    """The Gram matrix ``MᵀM`` of an ETF as a heatmap (trace 0), filled by :func:`update_gram`."""
    data = [go.Heatmap(name="gram", z=[[1.0]], x=["m₁"], y=["m₁"], zmin=-1, zmax=1, colorscale="RdBu",
                       reversescale=True, texttemplate="%{z:.2f}", colorbar=dict(len=0.85, thickness=14),
                       hovertemplate="%{y}·%{x} = %{z:.4f}<extra></extra>")]
    fig = go.Figure(data=data)
    style_figure(fig, height=430, width=440, legend=False, title=f"Gram matrix {NOTATION['gram']}")
    fixed_margins(fig, l=45, r=10, t=40, b=40)
    class_axis(fig)
    class_axis(fig, axis="y")
    fig.update_yaxes(autorange="reversed")
    return fig


def update_gram(fig: go.Figure, gram) -> None:
    """Show ``gram`` ``(K, K)``; its numbers are printed up to :data:`GRAM_TEXT_MAX_CLASSES` classes."""
    G = to_numpy(gram)
    K = G.shape[0]
    names = [subscript("m", k + 1) for k in range(K)]
    with fig.batch_update():
        fig.data[0].update(z=G, x=names, y=names, texttemplate="%{z:.2f}" if K <= GRAM_TEXT_MAX_CLASSES else "")


#: bins of the Lemma-1 histogram
LEMMA1_BINS = 60


def lemma1_histogram_figure() -> go.Figure:
    """Histogram of the largest pairwise cosine of random unit vectors against Lemma 1's bound.

    Traces: 0 ``random`` (bars of the bin counts, binned in Python: the browser gets 60
    numbers, not one per set), 1 ``bound`` (vertical line at ``-1/(K-1)``),
    2 ``optimiser`` (vertical line at the spreading optimiser's result).
    Filled by :func:`update_lemma1_histogram`.
    """
    data = [
        go.Bar(name="random unit-vector sets", x=[0.0], y=[0], marker_color="#7f7f7f", opacity=0.8,
               hovertemplate="max cos ≈ %{x:.3f}: %{y} sets<extra></extra>"),
        go.Scatter(name=f"Lemma 1 bound {NOTATION['bound']}", x=[0.0, 0.0], y=[0, 1], mode="lines",
                   line=dict(color=BOUND_COLOR, width=3, dash="dash")),
        go.Scatter(name="spreading optimiser", x=[0.0, 0.0], y=[0, 1], mode="lines",
                   line=dict(color=LEARNED_COLOR, width=2)),
    ]
    fig = go.Figure(data=data, layout=dict(bargap=0.0))
    style_figure(fig, height=400, width=FIGURE_WIDTH, title="Largest pairwise cosine of random unit vectors")
    fixed_margins(fig, l=70, r=30, t=50, b=110)
    fig.update_xaxes(title_text=NOTATION["max_cos"])
    fig.update_yaxes(title_text="number of random sets")
    return fig


def update_lemma1_histogram(fig: go.Figure, max_cosines, bound: float, optimiser_value: float) -> None:
    """Fill :func:`lemma1_histogram_figure` (``max_cosines``: one value per random set)."""
    values = to_numpy(max_cosines)
    lo = min(bound, float(values.min())) - 0.05
    counts, edges = np.histogram(values, bins=LEMMA1_BINS, range=(lo, 1.0))
    top = float(max(counts.max(), 1)) * 1.08
    with fig.batch_update():
        fig.data[0].update(x=0.5 * (edges[1:] + edges[:-1]), y=counts, width=float(edges[1] - edges[0]))
        fig.data[1].update(x=[bound, bound], y=[0, top])
        fig.data[2].update(x=[optimiser_value, optimiser_value], y=[0, top])
        fig.layout.xaxis.range = [lo, 1.0]
        fig.layout.yaxis.range = [0, top]


def spread_figure() -> go.Figure:
    """The spreading optimiser at work: vectors in 3-D (left), largest cosine per step (right).

    Traces: 0 ``vectors`` (scatter3d markers), 1 ``rays``, 2 ``max cosine`` (curve),
    3 ``bound`` (horizontal line), 4 ``now`` (marker at the current step).
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                        specs=[[{"type": "scene"}, {"type": "xy"}]],
                        subplot_titles=("unit vectors at this step", "largest pairwise cosine"))
    origin = dict(x=[0.0], y=[0.0], z=[0.0])
    fig.add_trace(go.Scatter3d(name="vectors", mode="markers", marker=dict(size=6), showlegend=False,
                               hoverinfo="skip", **origin), 1, 1)
    fig.add_trace(go.Scatter3d(name="rays", mode="lines", line=dict(color="#555", width=4), showlegend=False,
                               hoverinfo="skip", **origin), 1, 1)
    fig.add_trace(go.Scatter(name="max cosine", x=[0.0], y=[0.0], mode="lines", line=dict(color=LEARNED_COLOR)),
                  1, 2)
    fig.add_trace(go.Scatter(name="Lemma 1 bound", x=[0.0], y=[0.0], mode="lines",
                             line=dict(color=BOUND_COLOR, dash="dash")), 1, 2)
    fig.add_trace(go.Scatter(name="this step", x=[0.0], y=[0.0], mode="markers",
                             marker=dict(size=12, color="black", symbol="circle-open")), 1, 2)
    fig.update_layout(scene=_unit_ball_scene())
    style_figure(fig, height=440, width=FIGURE_WIDTH)
    fixed_margins(fig, l=20, r=30, t=80, b=100)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_yaxes(title_text=NOTATION["max_cos"], row=1, col=2, range=[-1.05, 1.05])
    return fig


def spread_animation_figure(*, steps, max_cosine, bound: float, snapshot_steps, vectors, title: str,
                            frame_ms: int = 150) -> dict:
    """The spreading optimiser as a plotly animation: one frame per snapshot, played in the browser.

    The figure of :func:`spread_figure` (traces 0 ``vectors``, 1 ``rays``, 2 ``max cosine``,
    3 ``bound``, 4 ``this step``) with one frame per snapshot (traces 0, 1 and 4 change), a
    play / pause button and a step slider of its own: stepping and playing need no kernel.
    The frames are plain JSON (plotly does not validate them one by one: building stays a
    few milliseconds however many snapshots there are).

    Parameters
    ----------
    steps, max_cosine : array-like ``(T,)``
        The curve (step index, largest pairwise cosine).
    bound : float
        Lemma 1's bound ``-1/(K-1)``.
    snapshot_steps : array-like ``(S,)`` of int
        Step of each snapshot.
    vectors : array-like ``(S, d, K)``
        The unit vectors of each snapshot (drawn by their first three coordinates).
    title : str
    frame_ms : int, default 150
        Duration of one frame when playing.

    Returns
    -------
    dict
        A plotly figure as JSON (``data``, ``layout``, ``frames``).
    """
    snaps = to_numpy(snapshot_steps).astype(int)
    V = to_numpy(vectors)
    curve = to_numpy(max_cosine)
    s = to_numpy(steps)
    out = copy.deepcopy(_spread_animation_base(int(frame_ms)))
    data, layout = out["data"], out["layout"]

    def vector_traces(points):
        P = _pad_to_3d(points)
        xs, ys, zs = _segments_from_origin(P)
        return ({"x": P[0].tolist(), "y": P[1].tolist(), "z": P[2].tolist()},
                {"x": _nan_to_none(xs), "y": _nan_to_none(ys), "z": _nan_to_none(zs)})

    first_vectors, first_rays = vector_traces(V[0])
    data[0].update(first_vectors, marker=dict(size=6, color=[class_color(c) for c in range(V.shape[2])]))
    data[1].update(first_rays)
    data[2].update(x=s.tolist(), y=curve.tolist())
    data[3].update(x=[float(s[0]), float(s[-1])], y=[float(bound), float(bound)])
    data[4].update(x=[float(snaps[0])], y=[float(curve[snaps[0]])])
    layout["xaxis"]["range"] = [float(s[0]), float(s[-1])]
    layout["title"]["text"] = title
    frames = []
    for i, t in enumerate(snaps):
        vec, rays = vector_traces(V[i])
        frames.append({"name": str(int(t)), "traces": [0, 1, 4], "data": [
            {"type": "scatter3d", **vec}, {"type": "scatter3d", **rays},
            {"type": "scatter", "x": [float(t)], "y": [float(curve[t])]}]})
    out["frames"] = frames
    layout["sliders"] = [dict(
        active=0, x=0.47, len=0.53, y=-0.02, yanchor="top", pad=dict(t=40), ticklen=2,
        font=dict(color="rgba(0,0,0,0)"),  # no label under each of the many ticks
        currentvalue=dict(prefix="step ", font=dict(size=12, color="#2a3f5f")),
        steps=[dict(label=str(int(t)), method="animate",
                    args=[[str(int(t))], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                              transition=dict(duration=0))]) for t in snaps])]
    return out


def _nan_to_none(values) -> list:
    """``values`` as a list of floats, NaN / inf as ``None`` (JSON null: a gap for plotly.js)."""
    return [float(v) if np.isfinite(v) else None for v in values]


@functools.lru_cache(maxsize=4)
def _spread_animation_base(frame_ms: int) -> dict:
    """:func:`spread_figure` with its play / pause buttons, as plotly JSON (built once: building the
    plotly objects takes far longer than filling in the numbers)."""
    fig = spread_figure()
    play = dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True, transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, xanchor="left", y=-0.02, yanchor="top",
                          pad=dict(t=40, l=0), showactive=False,
                          buttons=[dict(label="▶ play", method="animate", args=[None, play]),
                                   dict(label="❚❚ pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
        margin=dict(t=110, b=150), title=dict(text=" ", y=0.93, yanchor="top"))
    return json.loads(pio.to_json(fig, validate=False))


# =========================================================================== lesson 2: minority collapse
#: (key of :func:`ceco_lite.nc_metrics`, bar label): NC1 (Papyan et al.'s and the quotient form),
#: NC2 as equiangularity (std of the cosines) and maximal angle (mean |cos + 1/(K-1)|) of the
#: centred means and of W, NC3 (docs/conventions.md, section nc-statistics)
NC_BAR_KEYS = (
    ("nc1", "NC1<br>Tr(Σ<sub>W</sub>Σ<sub>B</sub><sup>†</sup>)/K"),
    ("nc1_quotient", "NC1 quotient<br>Tr Σ<sub>W</sub> / Tr Σ<sub>B</sub>"),
    ("equiangularity_centers", "NC2 means<br>std cos"),
    ("max_angle_centers", "NC2 means<br>max-angle"),
    ("equiangularity_classifiers", "NC2 W<br>std cos"),
    ("max_angle_classifiers", "NC2 W<br>max-angle"),
    ("self_duality", "NC3<br>self-duality"),
)


def minority_collapse_figure() -> go.Figure:
    """Layer-peeled model geometry (top) and minority collapse against R (bottom).

    Traces: 0 ``classifier cosines`` (heatmap cos(w_k, w_k')), 1 ``class-mean cosines``
    (heatmap of the centred class means), 2 ``learned W`` (minority mean cosine vs R),
    3 ``fixed ETF`` (same), 4 ``this R (learned)`` / 5 ``this R (fixed)`` (markers),
    6 ``NC statistics`` (bars, log axis, labelled with their values).
    """
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.2, horizontal_spacing=0.12,
        subplot_titles=("cos(w<sub>k</sub>, w<sub>k′</sub>) of the classifiers", "cos of the centred class means",
                        "minority classifiers: mean cosine against R", "NC statistics (log scale; 0 = collapse)"),
    )
    heat = dict(zmin=-1, zmax=1, colorscale="RdBu", reversescale=True, z=[[0.0]], x=["0"], y=["0"],
                hovertemplate="cos(%{y}, %{x}) = %{z:.3f}<extra></extra>")
    fig.add_trace(go.Heatmap(name="classifier cosines", colorbar=dict(len=0.38, y=0.81, thickness=14), **heat), 1, 1)
    fig.add_trace(go.Heatmap(name="class-mean cosines", showscale=False, **heat), 1, 2)
    fig.add_trace(go.Scatter(name="learned classifier", x=[1.0], y=[0.0], mode="lines+markers",
                             line=dict(color=LEARNED_COLOR)), 2, 1)
    fig.add_trace(go.Scatter(name="fixed ETF classifier", x=[1.0], y=[0.0], mode="lines+markers",
                             line=dict(color=FIXED_COLOR)), 2, 1)
    fig.add_trace(go.Scatter(name="this R (learned)", x=[1.0], y=[0.0], mode="markers", showlegend=False,
                             marker=dict(size=14, color=LEARNED_COLOR, symbol="star")), 2, 1)
    fig.add_trace(go.Scatter(name="this R (fixed ETF)", x=[1.0], y=[0.0], mode="markers", showlegend=False,
                             marker=dict(size=14, color=FIXED_COLOR, symbol="star")), 2, 1)
    labels = [label for _, label in NC_BAR_KEYS]
    fig.add_trace(go.Bar(name="NC statistics", x=labels, y=[1.0] * len(labels), text=[""] * len(labels),
                         textposition="outside", cliponaxis=False, marker_color="#9467bd", showlegend=False,
                         hovertemplate="%{x}: %{text}<extra></extra>"), 2, 2)
    style_figure(fig, height=820, width=FIGURE_WIDTH)
    fixed_margins(fig, l=60, r=30, t=80, b=120)
    for col in (1, 2):
        class_axis(fig, row=1, col=col)
        class_axis(fig, axis="y", row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    log_axis(fig, axis="x", row=2, col=1, title="imbalance ratio R = n<sub>majority</sub> / n<sub>minority</sub>")
    fig.update_xaxes(range=[-0.1, 3.1], row=2, col=1)
    fig.update_yaxes(range=[-1.05, 1.05], title_text="mean cosine", row=2, col=1)
    class_axis(fig, labels, row=2, col=2)
    fig.update_xaxes(tickfont=dict(size=10), row=2, col=2)
    log_axis(fig, row=2, col=2)
    return fig


def _cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    U = vectors / np.maximum(np.linalg.norm(vectors, axis=0, keepdims=True), 1e-300)
    return U.T @ U


def update_minority_geometry(fig: go.Figure, classifier, centred_means, *, minority,
                             title: str | None = None) -> None:
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
        if title is not None:
            fig.layout.title.text = title


def update_minority_curves(fig: go.Figure, *, ratios=None, learned=None, fixed=None,
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


def nc_bar_values(stats: dict) -> tuple[list[float], list[str], list[float], int]:
    """Heights, labels, log-axis range and tick step of the NC bars for the statistics ``stats``.

    Each bar stands at its true value on a log axis that spans all positive values (however many
    decades); a value of exactly 0 (or below, or undefined) cannot stand on a log axis: it is drawn
    at the axis floor and labelled ``0`` (or ``n/a``).

    Returns
    -------
    heights : list of float
    labels : list of str
        The values as printed on the bars (``"8.1e-20"``, ``"0"``, ``"n/a"``).
    log_range : [float, float]
        The y-axis range in log10 units.
    dtick : int
        Decades between tick labels.
    """
    values = [float(stats.get(key, float("nan"))) for key, _ in NC_BAR_KEYS]
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    (lo, hi), dtick = decade_range(positive, pad=0.6)
    hi += 0.6  # room for the label above the tallest bar
    floor = 10.0 ** (lo + 0.15)
    heights = [v if v > 0 and math.isfinite(v) else floor for v in values]
    labels = ["n/a" if not math.isfinite(v) else f"{v:.1e}" if v > 0 else "0" for v in values]
    return heights, labels, [lo, hi], dtick


def update_nc_bars(fig: go.Figure, stats: dict) -> None:
    """Bars of the NC statistics (keys of :func:`ceco_lite.nc_metrics`) at their true values (:func:`nc_bar_values`)."""
    heights, labels, log_range, dtick = nc_bar_values(stats)
    with fig.batch_update():
        fig.data[6].update(y=heights, text=labels)
        fig.layout.yaxis4.update(range=log_range, dtick=dtick)


def class_accuracy_figure(frequency, accuracy, *, pearson: float, title: str, class_names=None,
                          ylabel: str = "class accuracy",
                          xlabel: str = "class frequency f<sub>k</sub> = n<sub>k</sub> / n<sub>max</sub>"):
    """Per-class score against normalised class frequency (CeCo supplement Fig. 7a).

    One marker per class, named in the legend (no text next to the markers, which pile up
    where several classes share a frequency), and the least-squares line of the score on
    ``f_k`` whose slope the Pearson correlation summarises. A static figure (no widget).

    Parameters
    ----------
    frequency : array-like (K,)
        ``f_k = n_k / n_max`` (supplement Sec. C).
    accuracy : array-like (K,)
        Per-class score in [0, 1] (accuracy, or IoU for segmentation); NaN: not drawn.
    pearson : float
        Pearson correlation of score and frequency (shown in the title).
    title : str
    class_names : list of str, optional
        Legend entries (default ``"class k"``).
    ylabel : str, default "class accuracy"
        Name of the score (e.g. ``"class IoU"``).
    xlabel : str
        Name of the frequency (e.g. pixel frequency for segmentation).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    f = to_numpy(frequency)
    a = to_numpy(accuracy)
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(len(f))]
    traces = [go.Scatter(name=name, x=[f[k]], y=[a[k]], mode="markers",
                         marker=dict(size=12, color=class_color(k), line=dict(width=1, color="white")),
                         hovertemplate=f"{name}: f = %{{x:.3f}}, {ylabel} %{{y:.2f}}<extra></extra>")
              for k, name in enumerate(names)]
    keep = np.isfinite(f) & np.isfinite(a)
    if keep.sum() >= 2 and np.ptp(f[keep]) > 0:
        slope, intercept = np.polyfit(f[keep], a[keep], 1)
        xs = np.linspace(f[keep].min(), f[keep].max(), 20)
        traces.append(go.Scatter(name="least-squares line", x=xs, y=slope * xs + intercept, mode="lines",
                                 line=dict(color="#555", dash="dash")))
    rho = "n/a" if not math.isfinite(pearson) else f"{pearson:.2f}"
    fig = go.Figure(data=traces)
    style_figure(fig, height=480, width=FIGURE_WIDTH, title=f"{title} — Pearson ρ = {rho}")
    fig.update_layout(margin=dict(b=140))
    fig.update_xaxes(title_text=xlabel, range=[-0.05, 1.05])
    fig.update_yaxes(title_text=ylabel, range=[-0.05, 1.05])
    return fig


# =========================================================================== lesson 4: gradient flow
def size_labels(class_sizes) -> list[str]:
    """Class-axis labels naming each class and its size: ``"0<br>n=2000"``."""
    return [f"{k}<br>n={int(round(n))}" for k, n in enumerate(to_numpy(class_sizes))]


def gradient_bars_figure(num_classes: int) -> go.Figure:
    """Per-class gradients of the centre loss (CeCo paper Eq. 6 and 8), one bar group per class.

    Left: the within- and between-class parts of ``‖∂L/∂w_k‖`` for the learned centre classifier
    (Eq. 6, linear axis). Right: ``‖∂L/∂z_i‖`` of one pixel of each class for the learned and the
    fixed-ETF classifier (Eq. 8, log axis). The class axis names each class with its size ``n_k``.

    Traces: 0 ``within-class``, 1 ``between-class`` (left), 2 per-pixel learned, 3 per-pixel
    fixed ETF (right). Filled by :func:`update_gradient_bars`.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=(f"{NOTATION['grad_w']}: within- vs between-class part (Eq. 6)",
                                        f"{NOTATION['grad_z']} of one pixel of class k (Eq. 8)"))
    classes = size_labels(np.ones(num_classes))
    ones = [1.0] * num_classes
    fig.add_trace(go.Bar(name="within-class part", x=classes, y=ones, marker_color=COLORS[2]), 1, 1)
    fig.add_trace(go.Bar(name="between-class part", x=classes, y=ones, marker_color=COLORS[3]), 1, 1)
    fig.add_trace(go.Bar(name=f"{NOTATION['grad_z']}, learned classifier", x=classes, y=ones,
                         marker_color=LEARNED_COLOR), 1, 2)
    fig.add_trace(go.Bar(name=f"{NOTATION['grad_z']}, fixed ETF", x=classes, y=ones, marker_color=FIXED_COLOR),
                  1, 2)
    fig.update_layout(barmode="group", bargap=0.25)
    style_figure(fig, height=430, width=FIGURE_WIDTH)
    fixed_margins(fig, l=70, r=30, t=70, b=150)
    for col in (1, 2):
        class_axis(fig, row=1, col=col, title=f"class k (size {NOTATION['n_k']})")
    fig.update_yaxes(title_text="norm (× λ)", row=1, col=1)
    log_axis(fig, row=1, col=2, title=f"{NOTATION['grad_z']} (× λ, log)")
    return fig


def update_gradient_bars(fig: go.Figure, *, class_sizes, within, between, pixel_learned,
                         pixel_fixed) -> None:
    """Fill :func:`gradient_bars_figure`; every argument is per class, ``(K,)``."""
    classes = size_labels(class_sizes)
    pix = np.concatenate([to_numpy(pixel_learned), to_numpy(pixel_fixed)])
    (lo, hi), dtick = decade_range(pix[pix > 0], pad=0.3)
    with fig.batch_update():
        fig.data[0].update(x=classes, y=to_numpy(within))
        fig.data[1].update(x=classes, y=to_numpy(between))
        fig.data[2].update(x=classes, y=to_numpy(pixel_learned))
        fig.data[3].update(x=classes, y=to_numpy(pixel_fixed))
        fig.layout.yaxis2.update(range=[lo, hi], dtick=dtick)


#: the distance heatmaps print their numbers up to this many classes
DISTANCE_TEXT_MAX_CLASSES = 8


def distance_heatmaps_figure(num_classes: int) -> go.Figure:
    """``‖w_k − w_k′‖`` of the learned centre classifier (left) and of the fixed ETF (right), one colour scale.

    Traces: 0 learned, 1 fixed ETF (heatmaps). Filled by :func:`update_distance_heatmaps`.
    The learned heatmap prints its numbers (up to :data:`DISTANCE_TEXT_MAX_CLASSES` classes);
    the fixed ETF, whose pairs are all equally far apart, gives its one distance in its title
    (drawing fewer numbers keeps a slider's redraw short).
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=(f"{NOTATION['dist_w']}, learned centre classifier",
                                        _fixed_distance_title(None)))
    classes = [str(k) for k in range(num_classes)]
    zero = np.zeros((num_classes, num_classes))
    text = "%{z:.2f}" if num_classes <= DISTANCE_TEXT_MAX_CLASSES else ""
    heat = dict(colorscale="Viridis", zmin=0.0, zmax=1.0, x=classes, y=classes, z=zero,
                hovertemplate="‖w<sub>%{y}</sub> − w<sub>%{x}</sub>‖ = %{z:.4f}<extra></extra>")
    fig.add_trace(go.Heatmap(name="learned distances", colorbar=dict(len=0.9, thickness=14, exponentformat="power"),
                             texttemplate=text, **heat), 1, 1)
    fig.add_trace(go.Heatmap(name="ETF distances", showscale=False, texttemplate="", **heat), 1, 2)
    style_figure(fig, height=400, width=FIGURE_WIDTH, legend=False)
    fixed_margins(fig, l=60, r=30, t=60, b=60)
    for col in (1, 2):
        class_axis(fig, row=1, col=col, title="class k")
        class_axis(fig, axis="y", row=1, col=col, title="class k′" if col == 1 else None)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    return fig


def _fixed_distance_title(distances) -> str:
    """Title of the fixed-ETF heatmap: its pairs' distance (one number when they are all equal to 2 decimals)."""
    name = f"{NOTATION['dist_w']}, fixed ETF"
    if distances is None or distances.shape[0] < 2:
        return name
    pairs = distances[~np.eye(distances.shape[0], dtype=bool)]
    lo, hi = float(pairs.min()), float(pairs.max())
    return f"{name}: every pair {lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{name}: pairs {lo:.2f} … {hi:.2f}"


def update_distance_heatmaps(fig: go.Figure, *, dist_learned=None, dist_fixed=None) -> None:
    """Fill :func:`distance_heatmaps_figure` with ``(K, K)`` distance matrices (either may be omitted).

    Both heatmaps share the colour scale ``[0, max]`` over the two matrices shown; the fixed
    ETF's title gives its pairs' distance.
    """
    learned = to_numpy(dist_learned) if dist_learned is not None else np.asarray(fig.data[0].z, dtype=np.float64)
    fixed = to_numpy(dist_fixed) if dist_fixed is not None else np.asarray(fig.data[1].z, dtype=np.float64)
    zmax = float(max(learned.max(), fixed.max(), 1e-12))  # read before batch_update: inside it, z is still the old
    with fig.batch_update():
        if dist_learned is not None:
            fig.data[0].z = learned
        if dist_fixed is not None:
            fig.data[1].z = fixed
            fig.layout.annotations[1].text = _fixed_distance_title(fixed)
        fig.data[0].zmax = zmax
        fig.data[1].zmax = zmax
