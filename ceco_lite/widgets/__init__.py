"""Interactive widgets of the lessons (ipywidgets + plotly FigureWidgets).

Every widget is a small class with

``.widget``
    the ipywidgets container to display (``display(explorer.widget)``);
``.figure``
    its :class:`plotly.graph_objects.FigureWidget`;
``.update(**values)``
    the callback the sliders call -- tests and ``benchmarks/bench_widgets.py``
    call it directly (or set a slider's ``.value``) and check the figure changed.

The maths is done by :mod:`ceco_lite` (etf, ufm, gradients, nc), the figures by
:mod:`ceco_lite.plotting`; this package only wires them together.  Imports are
lazy so ``import ceco_lite.widgets`` does not import plotly until a widget is used.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util

_MISSING = [name for name in ("plotly", "ipywidgets", "anywidget") if importlib.util.find_spec(name) is None]
if _MISSING:
    raise ImportError(
        f"ceco_lite.widgets needs the lessons extra (missing: {', '.join(_MISSING)}): pip install 'ceco-lite[lessons]'"
    )

_EXPORTS = {
    # lesson 1
    "ETFExplorer": "etf",
    "Lemma1Explorer": "etf",
    "SpreadAnimation": "etf",
    # lesson 2
    "MinorityCollapseExplorer": "minority",
    # lesson 3
    "SyntheticDataExplorer": "segmentation_data",
    # lesson 4
    "GradientFlowExplorer": "gradients",
    # lesson 5
    "TSNEExplorer": "training",
    # lesson 6
    "ClusteringExplorer": "beyond",
    "RunComparison": "beyond",
}

__all__ = sorted(_EXPORTS)


@contextlib.contextmanager
def single_thread():
    """Run the enclosed (small-tensor) work on one PyTorch CPU thread, then restore the setting.

    A widget callback works on tensors of a few thousand numbers; splitting such ops
    over threads costs more than it saves, and on a busy 2-core machine thread
    synchronisation made a 2 ms gradient evaluation take 50-100 ms (measured).
    """
    import torch

    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ceco_lite.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
