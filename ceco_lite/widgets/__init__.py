"""Interactive widgets of the lessons (ipywidgets + plotly.js through anywidget), each named after what it shows.

Every widget is a small class with

``.widget``
    the ipywidgets container to display (``display(explorer.widget)``);
``.figure``
    its :class:`plotly.graph_objects.Figure`, shown by a
    :class:`~ceco_lite.widgets._figure_view.FigureView` (``.view`` or ``.views``);
``.update(**values)``
    the callback the controls call -- tests and ``benchmarks/bench_widgets.py``
    call it directly (or set a control's ``.value``) and check the figure changed.

The maths is done by :mod:`ceco_lite` (etf, ufm, gradients, nc, the engine), the
figures by :mod:`ceco_lite.plotting`; this package only wires them together.
Imports are lazy, so ``import ceco_lite.widgets`` does not import plotly until a
widget is used.

========================== ============================================== ======
widget                     shows                                          lesson
========================== ============================================== ======
ETFExplorer                a simplex ETF for K classes in d dimensions    1
Lemma1Explorer             max pairwise cosine of random unit vectors     1
SpreadAnimation            unit vectors spreading into an ETF             1
MinorityCollapseExplorer   minority collapse in the layer-peeled model    2
SyntheticDataExplorer      synthetic imbalanced segmentation data         3
GradientFlowExplorer       per-class gradients of the centre loss         4
TSNEExplorer               t-SNE of pixel features over training          5
TrainingCurvesExplorer     one statistic of several runs over training    6
ClusteringExplorer         cluster sizes under IDDC's Weibull prior       6
========================== ============================================== ======
"""
from __future__ import annotations

import importlib
import importlib.util

_MISSING = [name for name in ("plotly", "ipywidgets", "anywidget") if importlib.util.find_spec(name) is None]
if _MISSING:
    raise ImportError(
        f"ceco_lite.widgets needs the lessons extra (missing: {', '.join(_MISSING)}): pip install 'ceco-lite[lessons]'"
    )

_EXPORTS = {
    "ETFExplorer": "etf",
    "Lemma1Explorer": "etf",
    "SpreadAnimation": "etf",
    "MinorityCollapseExplorer": "minority",
    "SyntheticDataExplorer": "synthetic_data",
    "GradientFlowExplorer": "gradients",
    "TSNEExplorer": "tsne",
    "TrainingCurvesExplorer": "curves",
    "ClusteringExplorer": "clustering",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ceco_lite.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
