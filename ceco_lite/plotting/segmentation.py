"""Plotly figure builders for the segmentation lessons (3, 5 and 6).

Every builder returns a complete :class:`plotly.graph_objects.Figure`. A lesson widget keeps one, changes
its traces in place (inside ``fig.batch_update()``) through the matching ``update_*``
function and redraws it (``ceco_lite.widgets._figure_view.FigureView``), so a slider never
rebuilds a figure. The builders only draw:
numbers come from the library (:mod:`data_utils`, :mod:`ceco_lite.nc`, the engine).
"""
from __future__ import annotations

import base64
import io
from typing import Iterable, Mapping, Sequence

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..iddc import weibull_density
from .style import COLORS, TEMPLATE

__all__ = [
    "COLORS",
    "colorize_mask",
    "png_data_uri",
    "mask_grid_figure",
    "update_mask_grid",
    "class_histogram_figure",
    "update_class_histogram",
    "imbalance_factor_figure",
    "curves_figure",
    "update_curves",
    "grouped_bars_figure",
    "update_grouped_bars",
    "lambda_sweep_figure",
    "embedding_figure",
    "update_embedding",
    "cluster_sizes_figure",
    "update_cluster_sizes",
    "prior_penalty_figure",
    "weibull_penalty_figure",
]

_LAYOUT = dict(template=TEMPLATE)


def _figure(traces: Sequence, layout: Mapping) -> go.Figure:
    """A static figure built complete, traces and layout together."""
    return go.Figure(data=list(traces), layout=layout)


def _hline(y: float, **line) -> dict:
    """A horizontal line across the plot at ``y`` (a layout shape, as ``fig.add_hline`` draws it)."""
    return dict(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=y, y1=y, line=line)


def _class_palette(num_classes: int) -> np.ndarray:
    """``(K, 3)`` uint8 colours, fixed per class id (plotly's qualitative sets)."""
    names = pc.qualitative.Dark24 + pc.qualitative.Light24
    rgb = [pc.hex_to_rgb(names[k % len(names)]) for k in range(num_classes)]
    return np.asarray(rgb, dtype=np.uint8)


def colorize_mask(mask, palette=None, *, num_classes: int | None = None,
                  ignore_index: int = 255, ignore_color=(0, 0, 0)) -> np.ndarray:
    """Render an integer mask ``(H, W)`` as an RGB image ``(H, W, 3)`` uint8.

    Parameters
    ----------
    mask : array-like or torch.Tensor
        ``(H, W)`` class ids; ``ignore_index`` pixels get ``ignore_color``.
    palette : array-like, optional
        ``(K, 3)`` uint8 colours (e.g. the Cityscapes palette); default: a fixed
        qualitative palette with ``num_classes`` (or ``max(mask)+1``) entries.
    """
    m = np.asarray(mask.cpu() if hasattr(mask, "cpu") else mask).astype(np.int64)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}")
    valid = m != ignore_index
    if palette is None:
        k = num_classes if num_classes is not None else (int(m[valid].max()) + 1 if valid.any() else 1)
        palette = _class_palette(k)
    pal = np.asarray(palette, dtype=np.uint8)
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3), got shape {pal.shape}")
    out = np.empty(m.shape + (3,), dtype=np.uint8)
    out[:] = np.asarray(ignore_color, dtype=np.uint8)
    if valid.any():
        if int(m[valid].max()) >= len(pal):
            raise ValueError(f"mask holds class {int(m[valid].max())} but the palette has {len(pal)} colours")
        out[valid] = pal[m[valid]]
    return out


def _to_rgb(image) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] (or uint8) -> ``(H, W, 3)`` uint8."""
    x = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if x.ndim == 3 and x.shape[0] == 3:
        x = np.moveaxis(x, 0, -1)
    if x.dtype != np.uint8:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:  # normalised image: stretch to [0, 1] for display
            x = (x - lo) / max(hi - lo, 1e-8)
        x = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    return x


def png_data_uri(rgb) -> str:
    """An ``(H, W, 3)`` uint8 picture as a ``data:image/png;base64,...`` URI (PIL, lossless).

    Figures show pictures through ``go.Image(source=...)``: one short string per picture
    instead of ``H x W x 3`` numbers, so a widget that swaps pictures sends kilobytes to
    the browser, not megabytes of JSON lists.

    Raises
    ------
    ValueError
        If ``rgb`` is not ``(H, W, 3)`` uint8.
    """
    x = np.asarray(rgb)
    if x.ndim != 3 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got shape {x.shape} and dtype {x.dtype}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(x), mode="RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grid_sources(images: Sequence, rows: Mapping[str, Sequence], palette, num_classes, ignore_index):
    """Per column: the image's URI, then one URI per row of masks."""
    return [[png_data_uri(_to_rgb(img))] +
            [png_data_uri(colorize_mask(rows[name][j], palette, num_classes=num_classes, ignore_index=ignore_index))
             for name in rows]
            for j, img in enumerate(images)]


def mask_grid_figure(images: Sequence, rows: Mapping[str, Sequence], *, palette=None,
                     num_classes: int | None = None, title: str = "", height_per_row: int = 150,
                     ignore_index: int = 255) -> go.Figure:
    """A grid: first row the images, then one row per entry of ``rows`` (masks), as PNG pictures
    (:func:`png_data_uri`).

    Parameters
    ----------
    images : sequence of ``(3, H, W)`` arrays/tensors
        The columns (at most ~6 for legibility).
    rows : mapping name -> sequence of ``(H, W)`` masks
        E.g. ``{"ground truth": masks, "baseline": preds, "CeCo": preds}``.
    palette, num_classes, ignore_index
        See :func:`colorize_mask`.
    """
    n = len(images)
    names = list(rows)
    nrows = 1 + len(names)
    fig = make_subplots(rows=nrows, cols=max(n, 1), horizontal_spacing=0.01, vertical_spacing=0.04,
                        row_titles=["image"] + names)
    for j, column in enumerate(_grid_sources(images, rows, palette, num_classes, ignore_index)):
        for i, uri in enumerate(column):
            fig.add_trace(go.Image(source=uri, name="image" if i == 0 else names[i - 1], hoverinfo="skip"),
                          row=i + 1, col=j + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(**_LAYOUT, title=title, height=60 + height_per_row * nrows, showlegend=False)
    fig.update_layout(margin=dict(l=10, r=60, t=50, b=10))
    return fig


def update_mask_grid(fig: go.Figure, images: Sequence, rows: Mapping[str, Sequence], *,
                     palette=None, num_classes: int | None = None, ignore_index: int = 255) -> None:
    """Replace the pictures of a :func:`mask_grid_figure` (same grid shape)."""
    per_col = 1 + len(rows)
    expected = per_col * len(images)
    if len(fig.data) != expected:
        raise ValueError(f"figure has {len(fig.data)} panels, the new content needs {expected}")
    sources = _grid_sources(images, rows, palette, num_classes, ignore_index)
    with fig.batch_update():
        for j, column in enumerate(sources):
            for i, uri in enumerate(column):
                trace = fig.data[j * per_col + i]
                if trace.source != uri:  # unchanged pictures are not sent again
                    trace.source = uri


def _sorted_counts(pixel_counts, center_counts, class_names):
    p = np.asarray(pixel_counts, dtype=np.float64)
    c = np.asarray(center_counts, dtype=np.float64)
    names = list(class_names) if class_names is not None else [str(k) for k in range(len(p))]
    order = np.argsort(-p, kind="stable")
    return p[order], c[order], [names[k] for k in order]


def class_histogram_figure(pixel_counts, center_counts, class_names=None, *,
                           title: str = "Pixel versus centre frequency (supplement Fig. 6)",
                           log_y: bool = True) -> go.Figure:
    """Pixel and centre frequency per class, sorted by pixel count (supplement Fig. 6).

    Both series are normalised by their maximum (``n_k / n_max``), so the ratio of
    the tallest to the shortest bar of a series is its imbalance factor.
    """
    p, c, names = _sorted_counts(pixel_counts, center_counts, class_names)
    layout = dict(**_LAYOUT, title=title, barmode="group",
                  yaxis=dict(title="n<sub>k</sub> / n<sub>max</sub>", type="log" if log_y else "linear",
                             dtick=1 if log_y else None),
                  xaxis=dict(title="classes sorted by pixel frequency"))
    return _figure([go.Bar(x=names, y=_norm(p), name="pixels", marker_color=COLORS[0]),
                    go.Bar(x=names, y=_norm(c), name="centres", marker_color=COLORS[1])], layout)


def _norm(v: np.ndarray) -> np.ndarray:
    m = v.max() if v.size and v.max() > 0 else 1.0
    out = v / m
    return np.where(out > 0, out, np.nan)  # zero counts are not drawn on a log axis


def update_class_histogram(fig: go.Figure, pixel_counts, center_counts, class_names=None) -> None:
    """Update a :func:`class_histogram_figure` in place."""
    p, c, names = _sorted_counts(pixel_counts, center_counts, class_names)
    with fig.batch_update():
        for trace, counts in zip(fig.data[:2], (p, c)):
            if list(trace.x) != list(names):  # the class order is sent only when it changed
                trace.x = list(names)
            trace.y = _norm(counts).tolist()


def imbalance_factor_figure(rows: Sequence[tuple[str, float, float]], *,
                            title: str = "Pixel versus centre imbalance factor") -> go.Figure:
    """Grouped bars of (dataset, pixel IF, centre IF) on a log axis (paper Sec. 4.3, Table 12)."""
    labels = [r[0] for r in rows]
    layout = dict(**_LAYOUT, title=title, barmode="group",
                  yaxis=dict(title="imbalance factor n<sub>max</sub> / n<sub>min</sub>", type="log", dtick=1))
    return _figure([
        go.Bar(x=labels, y=[r[1] for r in rows], name="pixel / point IF", marker_color=COLORS[0],
               text=[f"{r[1]:.0f}" for r in rows], textposition="outside"),
        go.Bar(x=labels, y=[r[2] for r in rows], name="centre IF", marker_color=COLORS[1],
               text=[f"{r[2]:.1f}" if r[2] < 10 else f"{r[2]:.0f}" for r in rows], textposition="outside"),
    ], layout)


def curves_figure(curves: Mapping[str, tuple[Sequence, Sequence]], *, title: str = "",
                  xaxis_title: str = "epoch", yaxis_title: str = "", dashes: Mapping[str, str] | None = None,
                  colors: Mapping[str, str] | None = None, log_y: bool = False,
                  reference: float | None = None) -> go.Figure:
    """One line per entry ``name -> (x, y)`` (e.g. NC statistics over training, Fig. 2/4/5).

    ``reference`` draws a dotted horizontal line (e.g. 0 = perfect equiangularity).
    """
    layout = dict(**_LAYOUT, title=title, xaxis=dict(title=xaxis_title),
                  yaxis=dict(title=yaxis_title, type="log" if log_y else "linear"))
    if reference is not None:
        layout["shapes"] = [_hline(reference, color="gray", dash="dot")]
    traces = [go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers",
                         line=dict(color=(colors or {}).get(name, COLORS[i % len(COLORS)]),
                                   dash=(dashes or {}).get(name, "solid")))
              for i, (name, (x, y)) in enumerate(curves.items())]
    return _figure(traces, layout)


def update_curves(fig: go.Figure, curves: Mapping[str, tuple[Sequence, Sequence]], *,
                  yaxis_title: str | None = None) -> None:
    """Replace the data of the named lines of a :func:`curves_figure` (matched by name)."""
    by_name = {tr.name: tr for tr in fig.data}
    missing = [name for name in curves if name not in by_name]
    if missing:
        raise KeyError(f"no curve named {missing[0]!r} in the figure ({sorted(by_name)})")
    with fig.batch_update():
        for name, (x, y) in curves.items():
            by_name[name].x, by_name[name].y = list(x), list(y)
        if yaxis_title is not None:
            fig.layout.yaxis.title.text = yaxis_title


def grouped_bars_figure(categories: Sequence[str], series: Mapping[str, Sequence[float]], *,
                        title: str = "", yaxis_title: str = "", text_format: str = "{:.1f}",
                        colors: Mapping[str, str] | None = None) -> go.Figure:
    """Grouped bar chart ``series name -> values per category`` (e.g. per-class IoU)."""
    traces = []
    for i, (name, values) in enumerate(series.items()):
        vals = [float("nan") if v is None else float(v) for v in values]
        traces.append(go.Bar(x=list(categories), y=vals, name=name,
                             marker_color=(colors or {}).get(name, COLORS[i % len(COLORS)]),
                             text=[("" if np.isnan(v) else text_format.format(v)) for v in vals],
                             textposition="outside"))
    return _figure(traces, dict(**_LAYOUT, title=title, barmode="group", yaxis=dict(title=yaxis_title)))


def update_grouped_bars(fig: go.Figure, categories: Sequence[str],
                        series: Mapping[str, Sequence[float]], text_format: str = "{:.1f}") -> None:
    """Update the bars of a :func:`grouped_bars_figure` (series matched by name)."""
    by_name = {tr.name: tr for tr in fig.data}
    with fig.batch_update():
        for name, values in series.items():
            vals = [float("nan") if v is None else float(v) for v in values]
            tr = by_name[name]
            tr.x, tr.y = list(categories), vals
            tr.text = [("" if np.isnan(v) else text_format.format(v)) for v in vals]


def lambda_sweep_figure(lambdas: Sequence[float], ours: Sequence[float],
                        paper: Mapping[str, Sequence[float]] | None = None, *,
                        paper_lambdas: Sequence[float] | None = None,
                        ours_name: str = "measured") -> go.Figure:
    """mIoU gain over λ = 0 against λ: measured runs beside the paper's Table 2, on one axis.

    Each curve is drawn as its change from its own λ = 0 value (points of mIoU), so runs on
    different data sets share one scale; the hover shows the absolute mIoU.
    """
    layout = dict(**_LAYOUT, title="mIoU gain over λ = 0 against λ (CeCo paper Table 2)",
                  xaxis=dict(title="λ (Eq. 5)"), yaxis=dict(title="mIoU − mIoU(λ = 0)  (points)"),
                  shapes=[_hline(0.0, color="#999", width=1)])
    series = {ours_name: (list(lambdas), list(ours))}
    for name, vals in (paper or {}).items():
        series[f"paper: {name}"] = (list(paper_lambdas if paper_lambdas is not None else lambdas), list(vals))
    traces = []
    for i, (name, (xs, ys)) in enumerate(series.items()):
        base = ys[xs.index(0.0)] if 0.0 in xs else ys[0]
        traces.append(go.Scatter(x=xs, y=[y - base for y in ys], customdata=ys, name=name, mode="lines+markers",
                                 hovertemplate="λ = %{x}: mIoU %{customdata:.1f} (%{y:+.1f})<extra></extra>",
                                 line=dict(color=COLORS[i % len(COLORS)], width=3 if i == 0 else 2,
                                           dash="solid" if i == 0 else "dash")))
    return _figure(traces, layout)


def embedding_figure(embedding, labels, class_names=None, *, title: str = "t-SNE of pixel features",
                     palette=None, num_classes: int | None = None, visible_classes: Iterable[int] | None = None,
                     marker_size: int = 5) -> go.Figure:
    """A 2-D scatter with one trace per class (so classes can be hidden instantly)."""
    emb = np.asarray(embedding)
    y = np.asarray(labels)
    K = num_classes if num_classes is not None else int(y.max()) + 1
    pal = np.asarray(palette if palette is not None else _class_palette(K))
    names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
    visible = set(range(K)) if visible_classes is None else set(int(k) for k in visible_classes)
    traces = [go.Scattergl(x=emb[y == k, 0], y=emb[y == k, 1], mode="markers", name=names[k],
                           marker=dict(size=marker_size, color="rgb({},{},{})".format(*pal[k]), opacity=0.8),
                           visible=(k in visible))
              for k in range(K)]
    return _figure(traces, dict(**_LAYOUT, title=title, xaxis=dict(visible=False),
                                yaxis=dict(visible=False, scaleanchor="x"), height=480))


def update_embedding(fig: go.Figure, embedding, labels, *, visible_classes: Iterable[int] | None = None,
                     title: str | None = None) -> None:
    """Swap the points of an :func:`embedding_figure` and set which classes show."""
    emb = np.asarray(embedding)
    y = np.asarray(labels)
    visible = None if visible_classes is None else set(int(k) for k in visible_classes)
    with fig.batch_update():
        for k, tr in enumerate(fig.data):
            sel = y == k
            tr.x, tr.y = emb[sel, 0], emb[sel, 1]
            tr.visible = True if visible is None else (k in visible)
        if title is not None:
            fig.layout.title.text = title


def _sorted_desc(sizes) -> list:
    """Sizes sorted largest first, as a plain list (the browser gets JSON numbers, not a binary array)."""
    return np.sort(np.asarray(sizes))[::-1].tolist()


def cluster_sizes_figure(true_sizes, predicted: Mapping[str, Sequence[int]], *,
                         title: str = "Cluster sizes, sorted (IDDC demo)") -> go.Figure:
    """True cluster sizes (sorted) against the sorted sizes found with each prior."""
    t = _sorted_desc(true_sizes)
    traces = [go.Bar(x=list(range(1, len(t) + 1)), y=t, name="true sizes", marker_color="lightgray")]
    traces += [go.Bar(x=list(range(1, len(y) + 1)), y=y, name=name, marker_color=COLORS[i % len(COLORS)])
               for i, (name, y) in enumerate((n, _sorted_desc(s)) for n, s in predicted.items())]
    return _figure(traces, dict(**_LAYOUT, title=title, barmode="group",
                                xaxis=dict(title="cluster rank (largest first)", dtick=1),
                                yaxis=dict(title="points per cluster")))


def update_cluster_sizes(fig: go.Figure, true_sizes, predicted: Mapping[str, Sequence[int]],
                         title: str | None = None) -> None:
    """Update a :func:`cluster_sizes_figure` (series matched by name)."""
    by_name = {tr.name: tr for tr in fig.data}
    missing = [name for name in predicted if name not in by_name]
    if missing:
        raise KeyError(f"no bars named {missing[0]!r} in the figure ({sorted(by_name)})")
    series = {"true sizes": true_sizes, **predicted}
    with fig.batch_update():
        for name, sizes in series.items():
            y = _sorted_desc(sizes)
            if list(by_name[name].y) != y:  # unchanged bars are not sent again
                by_name[name].x, by_name[name].y = list(range(1, len(y) + 1)), y
        if title is not None and fig.layout.title.text != title:
            fig.layout.title.text = title


def prior_penalty_figure(x, curves: Mapping[str, Sequence[float]], *,
                         title: str = "Penalty on one cluster of relative size x",
                         yaxis_title: str = "penalty f(x)", log_y: bool = True) -> go.Figure:
    """Per-cluster penalty as a function of the relative cluster size (log x axis)."""
    traces = [go.Scatter(x=list(x), y=list(y), name=name, mode="lines", line=dict(color=COLORS[i], width=3))
              for i, (name, y) in enumerate(curves.items())]
    return _figure(traces, dict(**_LAYOUT, title=title,
                                xaxis=dict(title="relative cluster size x = x<sub>c</sub> / max<sub>c′</sub> x<sub>c′</sub>",
                                           type="log", dtick=1),
                                yaxis=dict(title=yaxis_title, type="log" if log_y else "linear",
                                           dtick=1 if log_y else None)))


def weibull_penalty_figure(shapes: Sequence[float] = (0.3, 1.0, 2.0), *, scale: float = 5.0, num_points: int = 200):
    """The Weibull density ``f(x)`` (:func:`ceco_lite.iddc.weibull_density`) on ``x ∈ [1e-4, 1]``.

    One line per shape ``k``; IDDC uses ``k = 0.3`` (falls monotonically, so near-empty
    clusters cost most), ``k >= 1`` does not have that property.
    """
    x = np.logspace(-4, 0, num_points)
    curves = {f"k = {k:g}" + (" (IDDC)" if k == 0.3 else ""): weibull_density(x, scale=scale, k=k) for k in shapes}
    return prior_penalty_figure(x, curves, title=f"Weibull density f(x), scale s = {scale:g}",
                                yaxis_title="f(x)")
