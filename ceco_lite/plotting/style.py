"""One look for every lesson figure: template, colours, axes, legends, margins, notation.

Every figure builder calls :func:`style_figure` once; class axes go through
:func:`class_axis`, logarithmic axes through :func:`log_axis`. The template
``"plotly_white+ceco_lite"`` puts the title at the top left of the figure and the legend
at its bottom edge (both in container coordinates, so neither can sit on an axis
title), and writes large and small numbers as powers of ten (``10⁻⁶``), never with SI
prefixes (``1µ``). Notation in titles is Unicode and HTML sub/superscripts
(:data:`NOTATION`), not LaTeX source.
"""
from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from traitlets import Dict

__all__ = ["TEMPLATE", "COLORS", "LEARNED_COLOR", "FIXED_COLOR", "BOUND_COLOR", "FIGURE_WIDTH", "NOTATION",
           "style_figure", "class_axis", "log_axis", "class_color", "LessonFigureWidget", "figure_widget",
           "fixed_margins", "decade_range", "display_data"]

#: Colours of compared runs / curves (Okabe-Ito, colour-blind friendly).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: A learned classifier, a fixed simplex-ETF classifier, a bound (Lemma 1).
LEARNED_COLOR, FIXED_COLOR, BOUND_COLOR = "#D55E00", "#0072B2", "#009E73"
#: Width (px) of two-column figures: side-by-side subplots fit a JupyterLab notebook column.
FIGURE_WIDTH = 980

#: Symbols used in titles and axis labels.
NOTATION = {
    "gram": "M<sup>T</sup>M",
    "max_cos": "max<sub>k≠k′</sub> cos(w<sub>k</sub>, w<sub>k′</sub>)",
    "std_cos": "Std<sub>k≠k′</sub> cos(ẑ<sub>k</sub>, ẑ<sub>k′</sub>)",
    "max_angle": "Avg<sub>k≠k′</sub> |cos(ẑ<sub>k</sub>, ẑ<sub>k′</sub>) + 1/(K−1)|",
    "grad_w": "‖∂L/∂w<sub>k</sub>‖",
    "grad_z": "‖∂L/∂z<sub>i</sub>‖",
    "dist_w": "‖w<sub>k</sub> − w<sub>k′</sub>‖",
    "n_k": "n<sub>k</sub>",
    "space": "ℝ<sup>{d}</sup>",
    "nc1": "Tr(Σ<sub>W</sub>Σ<sub>B</sub><sup>†</sup>)/K",
    "nc1_quotient": "Tr Σ<sub>W</sub> / Tr Σ<sub>B</sub>",
    "self_duality": "‖W/‖W‖ − M̃/‖M̃‖‖²",
    "mean_cos_minority": "mean cos(w<sub>k</sub>, w<sub>k′</sub>), k, k′ minority",
    "grad_z_mean": "‖∂L/∂z̄<sub>k</sub>‖",
    "dist_etf": "α√(2K/(K−1))",
    "bound": "−1/(K−1)",
}

_AXIS = dict(exponentformat="power", showexponent="all", automargin=True, zeroline=False)
pio.templates["ceco_lite"] = go.layout.Template(layout=dict(
    font=dict(size=12),
    title=dict(x=0.01, xanchor="left", xref="container", y=0.985, yanchor="top", yref="container",
               font=dict(size=14)),
    legend=dict(orientation="h", x=0.0, xanchor="left", y=0.0, yanchor="bottom", yref="container"),
    margin=dict(l=60, r=30, t=80, b=100),
    xaxis=_AXIS, yaxis=_AXIS,
    hoverlabel=dict(namelength=-1),
))
#: The template of every lesson figure.
TEMPLATE = "plotly_white+ceco_lite"


def class_color(k: int) -> str:
    """Display colour of class / curve ``k`` (cycled through :data:`COLORS`)."""
    return COLORS[k % len(COLORS)]


def style_figure(fig: go.Figure, *, height: int, width: int | None = None, title: str | None = None,
                 legend: bool = True) -> go.Figure:
    """Apply the lessons' template and size to ``fig`` (in place); returns ``fig``.

    Without a legend the bottom margin shrinks to what the axes need.
    """
    fig.update_layout(template=TEMPLATE, height=height, width=width, title_text=title or "", showlegend=legend)
    if not legend:
        fig.update_layout(margin=dict(b=50))
    return fig


def class_axis(fig: go.Figure, names: Sequence[str] | None = None, *, axis: str = "x", row=None, col=None,
               title: str | None = None) -> None:
    """Make an axis categorical, one tick per class, in the given order (no skipped labels)."""
    kw = dict(type="category", tickmode="linear", dtick=1, tick0=0)
    if names is not None:
        kw.update(categoryorder="array", categoryarray=list(names))
    if title is not None:
        kw["title_text"] = title
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(row=row, col=col, **kw)


def log_axis(fig: go.Figure, *, axis: str = "y", row=None, col=None, title: str | None = None) -> None:
    """A logarithmic axis labelled by whole decades (``10⁻³``, ``10⁻²``, ...)."""
    kw = dict(type="log", dtick=1, exponentformat="power", showexponent="all")
    if title is not None:
        kw["title_text"] = title
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(row=row, col=col, **kw)


class LessonFigureWidget(go.FigureWidget):
    """A :class:`plotly.graph_objects.FigureWidget` that leaves plotly.js's computed defaults in the browser.

    After every update from Python, plotly.js sends the default values of *every* trace
    back to the kernel (the ``_js2py_traceDeltas`` message of plotly's widget protocol).
    :class:`~plotly.graph_objects.FigureWidget` merges them into its Python copy and asks
    the browser to delete each value that was set from Python and also appears among the
    defaults. For the lessons that round trip only does harm: it keeps the kernel busy
    after every slider move, it deletes set values from the browser's copy of the figure
    (category labels of a bar chart disappear from the next render), and with numpy arrays
    it raises ``ValueError: The truth value of an array ... is ambiguous`` in the kernel
    (plotly 6-7: the browser sends an array back as an object), a traceback shown only in
    JupyterLab's log console. The lesson figures never read defaults in Python, so the
    message is not synchronised: the trait is redeclared without ``sync=True``, and the
    kernel ignores it (no handler, no echo). Updates from Python and events from the
    browser (zoom, clicks) work as before.
    """

    _js2py_traceDeltas = Dict(allow_none=True)

    def __init__(self, *args, **kwargs):
        # plotly sets the synchronised figure state only at the end of its constructor, i.e. after
        # ipywidgets has opened the widget's comm with an empty state, and sends the real state as a
        # second message; a browser that is still loading plotly's front end can miss it and draw a
        # blank figure. The comm is opened here, once the state is complete, so the first message
        # the browser gets holds the whole figure.
        self._open_deferred = True
        try:
            super().__init__(*args, **kwargs)
        finally:
            self._open_deferred = False
        # plain JSON (lists, numbers, null for NaN): the first message carries no binary buffers, which
        # plotly's front end decodes only in its update messages, and no NaN, which JSON does not have
        self._widget_data = _plain(self._widget_data)
        self._widget_layout = _plain(self._widget_layout)
        self.open()

    def open(self):
        """Open the widget's comm (not before the figure's state is complete, see the constructor)."""
        if getattr(self, "_open_deferred", False):
            return
        super().open()


def figure_widget(data=(), layout=None) -> LessonFigureWidget:
    """A :class:`LessonFigureWidget` built with its traces and layout in one go.

    A widget created empty (``go.FigureWidget()``) and filled afterwards sometimes reaches
    the browser without its traces (a blank figure): build the figure completely (traces,
    layout, style and the widget's first state) as a :class:`plotly.graph_objects.Figure`,
    then call this function just before the widget is shown, so that the browser receives
    everything in the widget's first message.

    Parameters
    ----------
    data : sequence of plotly traces, or a :class:`plotly.graph_objects.Figure`
        The traces (or a whole figure, e.g. from :func:`plotly.subplots.make_subplots`).
    layout : dict or plotly layout, optional
    """
    fig = data if isinstance(data, go.Figure) else go.Figure(data=list(data), layout=layout)
    if isinstance(data, go.Figure) and layout is not None:
        fig.update_layout(layout)
    return LessonFigureWidget(fig)


def _plain(value):
    """``value`` (a figure's traces or layout) with every numpy array as nested lists, NaN / inf as ``None``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN / inf are not JSON; plotly.js reads null as a gap (the NaN separators of line traces)
    return value


def fixed_margins(fig: go.Figure, *, l: int = 60, r: int = 30, t: int = 80, b: int = 60) -> go.Figure:
    """Fixed margins and no automatic margin on any axis (in place; returns ``fig``).

    With ``automargin`` plotly.js measures every tick label after each update and redraws
    when a margin has to grow: for a figure that a slider redraws, fixed margins halve the
    work in the browser. Choose margins that fit the longest tick labels.
    """
    fig.update_layout(margin=dict(l=l, r=r, t=t, b=b))
    fig.update_xaxes(automargin=False)
    fig.update_yaxes(automargin=False)
    return fig


def decade_range(values, *, pad: float = 0.5) -> tuple[list[float], int]:
    """Range (in log10 units) of a log axis showing the positive ``values``, and a tick step in decades.

    The range spans the smallest to the largest positive value, ``pad`` decades beyond each;
    the tick step (``dtick``) keeps about eight labels however many decades are shown.
    Non-positive and non-finite values are ignored; with none left the range is ``[-1, 1]``.

    Examples
    --------
    >>> decade_range([1e-20, 1e-3, 2.0])
    ([-20.5, 0.8010299956639813], 3)
    """
    logs = [math.log10(v) for v in values if v > 0 and math.isfinite(v)]
    if not logs:
        return [-1.0, 1.0], 1
    lo, hi = min(logs) - pad, max(logs) + pad
    return [lo, hi], max(1, math.ceil((hi - lo) / 8))


def display_data(fig: go.Figure, text: str = "plotly figure") -> dict:
    """``fig`` as one ``display_data`` output (plotly's mime bundle), for ``ipywidgets.Output.outputs``.

    Assigning ``output.outputs = (display_data(fig),)`` replaces what an Output widget shows in one state
    change. JupyterLab's plotly extension draws it (loaded once per page), so unlike a
    :class:`LessonFigureWidget` no widget model has to be initialised in the browser: the choice for a
    figure that is redrawn as a whole, or animated in the browser with frames.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure or dict
        A figure, or one already as plotly JSON (``data``, ``layout``, ``frames``).
    text : str
        The ``text/plain`` alternative.
    """
    spec = fig if isinstance(fig, dict) else json.loads(pio.to_json(fig, validate=False))
    return {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.plotly.v1+json": spec, "text/plain": text}}
