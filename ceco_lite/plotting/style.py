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

import math
from typing import Sequence

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["TEMPLATE", "COLORS", "LEARNED_COLOR", "FIXED_COLOR", "BOUND_COLOR", "FIGURE_WIDTH", "NOTATION",
           "style_figure", "class_axis", "log_axis", "class_color", "fixed_margins", "decade_range"]

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

#: ``ticklabeloverflow="allow"``: plotly.js would otherwise measure every tick label on every redraw to
#: hide those past the figure's edge (margins are sized to fit them: automatic or :func:`fixed_margins`)
_AXIS = dict(exponentformat="power", showexponent="all", automargin=True, zeroline=False, ticklabeloverflow="allow")
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


def fixed_margins(fig: go.Figure, *, l: int = 60, r: int = 30, t: int = 80, b: int = 60) -> go.Figure:
    """Fixed margins and no automatic margin on any axis (in place; returns ``fig``).

    With ``automargin`` plotly.js measures every tick label after each update and redraws
    when a margin has to grow: for a figure that a slider redraws, fixed margins halve the
    work in the browser. Choose margins that fit the longest tick labels (the template draws
    tick labels without plotly.js's check for labels past the figure's edge).
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
