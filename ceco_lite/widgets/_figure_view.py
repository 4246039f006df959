"""A plotly figure shown through JupyterLab's plotly renderer inside an ``ipywidgets.Output``.

A lesson widget keeps its figure as a plain :class:`plotly.graph_objects.Figure`, changes
its traces in place (the ``update_*`` functions of :mod:`ceco_lite.plotting.segmentation`)
and calls :meth:`FigureView.redraw`: the Output's content is replaced by the figure's JSON
in one message. No plotly widget model is involved, so nothing waits for plotly's widget
module to load in the browser, and the browser sends nothing back after a redraw.
"""
from __future__ import annotations

import json

import ipywidgets as W
import plotly.graph_objects as go
from ipywidgets.widgets.trait_types import TypedTuple
from traitlets import Dict

__all__ = ["FigureView", "PLOTLY_MIME"]

#: The MIME type JupyterLab's plotly extension renders.
PLOTLY_MIME = "application/vnd.plotly.v1+json"


class _PlotOutput(W.Output):
    """An Output whose content the kernel alone sets: the copy JupyterLab sends back after
    rendering it is not echoed to the browser again (which would render the plot twice)."""

    outputs = TypedTuple(trait=Dict(), help="The output messages.").tag(sync=True, echo_update=False)


class FigureView:
    """Show ``figure`` in :attr:`output` and redraw it on demand.

    Parameters
    ----------
    figure : plotly.graph_objects.Figure
        Kept as :attr:`figure`; change it in place, then call :meth:`redraw`.
    config : dict, optional
        plotly.js configuration (default ``{"displaylogo": False}``).

    Raises
    ------
    TypeError
        If ``figure`` is not a plotly ``Figure``.
    """

    def __init__(self, figure: go.Figure, *, config: dict | None = None) -> None:
        if not isinstance(figure, go.Figure):
            raise TypeError(f"figure must be a plotly.graph_objects.Figure, got {type(figure).__name__}")
        self.figure = figure
        self.config = dict(config or {"displaylogo": False})
        self.output = _PlotOutput()
        self._shown: str | None = None
        self.redraw()

    def bundle(self) -> dict:
        """The figure as the MIME bundle the Output shows (JSON-safe: numpy arrays become lists)."""
        spec = json.loads(self.figure.to_json(validate=False))
        spec["config"] = self.config
        return {PLOTLY_MIME: spec}

    def redraw(self) -> bool:
        """Send the figure to the browser if it changed since the last redraw; returns whether it was sent."""
        bundle = self.bundle()
        key = json.dumps(bundle, sort_keys=True)
        if key == self._shown:
            return False
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        self._shown = key
        return True
