"""The one way the lesson widgets show a plotly figure: plotly.js drawing a figure kept in the kernel.

A lesson widget keeps its figure as a plain :class:`plotly.graph_objects.Figure`, changes
it in place (the ``update_*`` functions of :mod:`ceco_lite.plotting`) and calls
:meth:`FigureView.redraw`. The figure's JSON travels to the browser in one state change of
a :class:`FigureData` widget; the :class:`PlotlyPane` showing it hands it to
``Plotly.react``, so plotly.js changes the existing plot (no new plot is built on every
move), and the browser sends nothing back.

plotly.js itself (the copy shipped with the installed plotly package, about 5 MB) reaches
the browser once per kernel, in the state of one :class:`PlotlyLibrary` widget shared by
every pane; a pane's own script is a few kilobytes. No network is needed.

Why three widgets: an anywidget model that is not initialised within 2 s of its creation
(a browser busy drawing, on a loaded machine) ignores every later message, which would
freeze its figure. So the figure lives in a plain ipywidgets model (``@jupyter-widgets/base``),
which applies every message it gets; the pane and the library are anywidgets that never
need a message after they opened.
"""
from __future__ import annotations

import json

import anywidget
import plotly
import plotly.graph_objects as go
import plotly.io as pio
from ipywidgets import Widget, widget_serialization
from traitlets import Dict, Instance, Unicode

__all__ = ["FigureView", "FigureData", "PlotlyPane", "PlotlyLibrary", "plotly_library", "figure_json"]

#: one promise per plotly version, shared by the library's and the panes' scripts (``globalThis``)
_SLOT_JS = r"""
const slots = (globalThis.__cecoPlotly ??= new Map());
function plotlySlot(version) {
  if (!slots.has(version)) {
    const slot = {loaded: false};
    slot.promise = new Promise((resolve, reject) => { slot.resolve = resolve; slot.reject = reject; });
    slots.set(version, slot);
  }
  return slots.get(version);
}
// anywidget gives a model 2 s to initialise; on a page that is busy for longer (evaluating plotly.js, a
// first 3-D draw on a slow machine) it rejects, and that model then ignores kernel messages. The panes do
// not depend on theirs (their figure travels in a plain ipywidgets model), so the rejection is reported
// as a warning instead of an uncaught error.
if (!globalThis.__cecoLateModels) {
  globalThis.__cecoLateModels = true;
  globalThis.addEventListener("unhandledrejection", event => {
    if (String(event.reason?.message ?? event.reason) !== "[anywidget] Failed to initialize model.") return;
    event.preventDefault();
    console.warn("ceco-lite: an anywidget model initialised after anywidget's 2 s limit (a busy page) and "
                 + "ignores later kernel messages; the lesson figures do not rely on theirs.");
  });
}
"""

#: the library's script: evaluate plotly.js when the model initialises (once per page and version)
_LIBRARY_JS = _SLOT_JS + r"""
export default {
  initialize({ model }) {
    const slot = plotlySlot(model.get("version"));
    if (slot.loaded) return;
    slot.loaded = true;
    try {
      const module = {exports: {}};
      new Function("module", "exports", model.get("source"))(module, module.exports);
      slot.resolve(module.exports);
    } catch (error) {
      console.error("ceco-lite: plotly.js could not be loaded", error);
      slot.reject(error);
    }
  },
};
"""

#: the pane's script: draw the figure data with Plotly.react, now and on every change
_PANE_JS = _SLOT_JS + r"""
const modelOf = (model, name) => model.widget_manager.get_model((model.get(name) || "").replace(/^IPY_MODEL_/, ""));

const parse = text => { try { return JSON.parse(text || "{}"); } catch (error) { return {}; } };
// a draw that has not finished after this long no longer holds back the next one
const STUCK_MS = 3000;
const FIRST_DRAW_DELAY_MS = 100;

export default {
  async render({ model, el }) {
    el.classList.add("ceco-plotly-pane");
    const div = document.createElement("div");
    const size = spec => {
      div.style.minHeight = (spec.layout?.height || 450) + "px";
      el.style.width = spec.layout?.width ? spec.layout.width + "px" : "100%";
    };
    const data = await modelOf(model, "data");
    size(parse(data.get("spec")));
    el.appendChild(div);
    let Plotly;
    try {
      Plotly = await plotlySlot((await modelOf(model, "library")).get("version")).promise;
    } catch (error) {
      div.textContent = "plotly.js could not be loaded: " + error;
      console.error("ceco-lite: plotly.js could not be loaded", error);
      return;
    }
    // one draw at a time; changes that arrive meanwhile are drawn next (only the latest one)
    let drawing = null, pending = false, alive = true;
    const drawOnce = async () => {
      const spec = parse(data.get("spec"));
      if (!Array.isArray(spec.data)) return;  // nothing to draw yet
      size(spec);
      const done = Plotly.react(div, {data: spec.data, layout: spec.layout || {}, frames: spec.frames || [],
                                      config: data.get("config")});
      await Promise.race([done, new Promise(resolve => setTimeout(resolve, STUCK_MS))]);
    };
    const draw = () => {
      if (drawing) { pending = true; return; }
      drawing = (async () => {
        do {
          pending = false;
          try { await drawOnce(); } catch (error) { console.error("ceco-lite: plotly.js could not draw", error); }
        } while (pending && alive);
        drawing = null;
      })();
    };
    // the first draw waits until the pane has a width (plotly.js sizes a plot from its container)
    let drawn = false;
    const resize = new ResizeObserver(() => {
      if (!alive || !el.isConnected || el.clientWidth === 0) return;
      // the first draw waits a moment: the models of the other figures of a cell, whose messages are
      // already queued, then initialise before a long first draw (a 3-D scene) blocks the page
      if (!drawn) { drawn = true; setTimeout(draw, FIRST_DRAW_DELAY_MS); }
      else if (!drawing && div.classList.contains("js-plotly-plot")) Plotly.Plots.resize(div);
    });
    resize.observe(el);
    const onChange = () => { if (drawn) draw(); };
    data.on("change:spec change:config", onChange);
    return () => {
      alive = false;
      resize.disconnect();
      data.off("change:spec change:config", onChange);
      Plotly.purge(div);
    };
  },
};
"""

_PANE_CSS = ".ceco-plotly-pane { min-width: 320px; }\n"


class PlotlyLibrary(anywidget.AnyWidget):
    """plotly.js for the panes of this kernel (see :func:`plotly_library`); not meant to be displayed.

    The browser evaluates plotly.js when this model initialises, once per page (about 2 s on
    a slow machine), synchronously inside the model's initialisation: anywidget's 2 s limit
    for initialising a model cannot expire before it is done.

    Attributes
    ----------
    source : str
        plotly.js, minified, as shipped with the installed plotly package.
    version : str
        The plotly package's version (the browser keeps one plotly.js per version).
    """

    _esm = _LIBRARY_JS
    source = Unicode().tag(sync=True)
    version = Unicode().tag(sync=True)


_LIBRARY: PlotlyLibrary | None = None


def plotly_library() -> PlotlyLibrary:
    """The kernel's :class:`PlotlyLibrary` (created at the first call, again after it was closed)."""
    global _LIBRARY
    if _LIBRARY is None or _LIBRARY.comm is None:
        from plotly.offline import get_plotlyjs
        _LIBRARY = PlotlyLibrary(source=get_plotlyjs(), version=plotly.__version__)
    return _LIBRARY


def figure_json(figure: go.Figure | dict) -> str:
    """``figure`` as plotly JSON text (``data``, ``layout`` and ``frames`` if any; numpy arrays as
    plotly's typed arrays, NaN / inf as ``null``, which plotly.js reads as gaps)."""
    return pio.to_json(figure, validate=False, remove_uids=True)


class FigureData(Widget):
    """A figure as the browser receives it: a model without a view, drawn by :class:`PlotlyPane`\\ s.

    Attributes
    ----------
    spec : str
        The figure as plotly JSON text (``{"data": [...], "layout": {...}, "frames": [...]}``;
        ``"{}"``: nothing to draw).
    config : dict
        plotly.js configuration.
    """

    spec = Unicode("{}").tag(sync=True)
    config = Dict().tag(sync=True)


class PlotlyPane(anywidget.AnyWidget):
    """Draws a :class:`FigureData` with plotly.js (``Plotly.react`` on every change of it).

    Display it like any widget, or put it into a box; change the figure through its
    :attr:`data`, never through the pane.

    Attributes
    ----------
    data : FigureData
        The figure shown.
    library : PlotlyLibrary
        Where the browser finds plotly.js (:func:`plotly_library`).
    """

    _esm = _PANE_JS
    _css = _PANE_CSS
    data = Instance(FigureData).tag(sync=True, **widget_serialization)
    library = Instance(PlotlyLibrary).tag(sync=True, **widget_serialization)

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("library", plotly_library())
        kwargs.setdefault("data", FigureData())
        super().__init__(**kwargs)


class FigureView:
    """Show ``figure`` in :attr:`widget` (a :class:`PlotlyPane`) and redraw it on demand.

    Parameters
    ----------
    figure : plotly.graph_objects.Figure or dict
        Kept as :attr:`figure`; change it in place, then call :meth:`redraw`. A dict is a
        figure as plotly JSON (``data``, ``layout``, ``frames``).
    config : dict, optional
        plotly.js configuration (default ``{"displaylogo": False}``).

    Attributes
    ----------
    figure : plotly.graph_objects.Figure or dict
    data : FigureData
        The figure as the browser last received it.
    widget : PlotlyPane
        What to put into the lesson widget's layout.

    Raises
    ------
    TypeError
        If ``figure`` is neither a plotly ``Figure`` nor a dict.
    """

    def __init__(self, figure: go.Figure | dict, *, config: dict | None = None) -> None:
        self.figure = _checked(figure)
        # the figure goes into the first message: the browser never sees an empty pane
        self.data = FigureData(spec=figure_json(self.figure), config=dict(config or {"displaylogo": False}))
        self.widget = PlotlyPane(data=self.data)

    def redraw(self) -> bool:
        """Send the figure to the browser if it changed since the last redraw; returns whether it was sent."""
        spec = figure_json(self.figure)
        if spec == self.data.spec:
            return False
        self.data.spec = spec
        return True

    def shown(self) -> dict:
        """The figure as the browser last received it (plotly JSON: ``data``, ``layout``, ``frames``)."""
        return json.loads(self.data.spec)

    def show(self, figure: go.Figure | dict) -> bool:
        """Replace :attr:`figure` by ``figure`` and redraw (for a figure rebuilt as a whole)."""
        self.figure = _checked(figure)
        return self.redraw()


def _checked(figure):
    if not isinstance(figure, (go.Figure, dict)):
        raise TypeError(f"figure must be a plotly.graph_objects.Figure or a dict of plotly JSON, "
                        f"got {type(figure).__name__}")
    return figure
