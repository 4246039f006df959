"""Training curves of several runs, one statistic at a time (lesson 6)."""
from __future__ import annotations

import html
import re
from typing import Mapping, Sequence

import ipywidgets as W

from ..plotting.runs import history_value
from ..plotting.segmentation import curves_figure, update_curves
from ._figure_view import FigureView

__all__ = ["TrainingCurvesExplorer"]


class TrainingCurvesExplorer:
    """Curves of one history metric for several runs, with a metric dropdown.

    Parameters
    ----------
    histories : mapping run name -> list of per-epoch dicts
        The engine's per-epoch history (each entry a dict holding at least
        ``"epoch"`` and the metric keys).
    metrics : sequence of str
        Keys the dropdown offers (first one shown).
    labels : mapping, optional
        Names of the metrics for the y-axis title (HTML sub/superscripts allowed, e.g. from
        :data:`ceco_lite.plotting.style.NOTATION`).
    menu_labels : mapping, optional
        Plain-text names for the dropdown (which cannot show HTML); default: ``labels``
        with their tags removed.
    """

    def __init__(self, histories: Mapping[str, Sequence[Mapping]], metrics: Sequence[str], *,
                 labels: Mapping[str, str] | None = None, menu_labels: Mapping[str, str] | None = None,
                 title: str = "") -> None:
        if not metrics:
            raise ValueError("metrics must name at least one history key")
        self.histories = dict(histories)
        self.labels = dict(labels or {})
        menu = {m: re.sub(r"<[^>]+>", "", html.unescape(self.labels.get(m, m))) for m in metrics}
        menu.update(menu_labels or {})
        self.metric = W.Dropdown(options=[(menu[m], m) for m in metrics], value=metrics[0], description="metric",
                                 layout=W.Layout(width="420px"))
        self.figure = curves_figure(self._curves(metrics[0]), title=title,
                                    yaxis_title=self.labels.get(metrics[0], metrics[0]))
        self.view = FigureView(self.figure)
        self.metric.observe(lambda change: self.update(metric=change["new"]), names="value")
        self.widget = W.VBox([self.metric, self.view.widget])

    def _curves(self, metric: str) -> dict:
        out = {}
        for name, hist in self.histories.items():
            pts = [(h["epoch"], history_value(h, metric)) for h in hist]
            pts = [(e, v) for e, v in pts if v is not None]
            out[name] = ([e for e, _ in pts], [v for _, v in pts])
        return out

    def update(self, *, metric: str | None = None) -> None:
        """Show another metric (the dropdown's callback)."""
        metric = metric or self.metric.value
        update_curves(self.figure, self._curves(metric), yaxis_title=self.labels.get(metric, metric))
        self.view.redraw()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
