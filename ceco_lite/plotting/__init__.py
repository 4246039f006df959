"""Plotly figures of the lessons: builders return a :class:`plotly.graph_objects.Figure`
whose traces the matching ``update_*`` function rewrites in place, so a slider never rebuilds a
figure. The numbers come from the library; these modules only draw.

* :mod:`ceco_lite.plotting.geometry` -- simplex ETFs, Lemma 1, minority collapse, NC bars,
  gradient flow (lessons 1, 2, 4);
* :mod:`ceco_lite.plotting.segmentation` -- masks, class histograms, curves, grouped bars,
  embeddings, cluster sizes (lessons 3, 5, 6);
* :mod:`ceco_lite.plotting.runs` -- figures of training runs beside the papers' numbers;
* :mod:`ceco_lite.plotting.tables` -- HTML tables of training runs.

plotly is needed (the ``lessons`` extra).
"""
from __future__ import annotations

import importlib.util

if importlib.util.find_spec("plotly") is None:
    raise ImportError("ceco_lite.plotting needs the lessons extra (missing: plotly): pip install 'ceco-lite[lessons]'")
