"""Controls of the lesson widgets laid out so that every slider can be dragged.

A slider is ``description + track + readout`` inside its width. Long descriptions in
a row of sliders squeeze the tracks to a few pixels, so the sliders here get a short
description (the long explanation goes into the tooltip), a fixed description width
and a fixed total width, and a row of controls wraps onto a new line instead of
shrinking them. With the default widths a track is at least 150 px wide.
"""
from __future__ import annotations

import ipywidgets as W

__all__ = ["SLIDER_WIDTH_PX", "LABEL_WIDTH_PX", "slider", "control_row", "track_width_px"]

#: total width of a slider (description, track and readout)
SLIDER_WIDTH_PX = 330
#: width reserved for a slider's description
LABEL_WIDTH_PX = 110
#: width ipywidgets gives the readout of a horizontal slider (``.widget-readout``)
READOUT_PX = 64


def track_width_px(width: int = SLIDER_WIDTH_PX, label: int = LABEL_WIDTH_PX) -> int:
    """Width left for the track of a slider laid out by :func:`slider` (pixels)."""
    return width - label - READOUT_PX


def slider(cls, *, description: str, tooltip: str = "", width: int = SLIDER_WIDTH_PX,
           label_width: int = LABEL_WIDTH_PX, **kwargs):
    """An ipywidgets slider of class ``cls`` with a short description and room for its track.

    Parameters
    ----------
    cls : type
        ``ipywidgets.IntSlider``, ``FloatSlider``, ``FloatLogSlider``, ...
    description : str
        A few characters (``"K"``, ``"IF"``, ``"λ"``); it must fit in ``label_width`` pixels.
    tooltip : str
        The long explanation, shown on hover.
    width, label_width : int
        Total and description width in pixels.
    **kwargs
        Passed to ``cls`` (``value``, ``min``, ``max``, ``step``, ``continuous_update``, ...).
    """
    return cls(description=description, tooltip=tooltip or description,
               layout=W.Layout(width=f"{width}px", min_width=f"{width}px"),
               style={"description_width": f"{label_width}px"}, **kwargs)


def control_row(*controls) -> W.HBox:
    """A row of controls that wraps onto further lines rather than squeezing them."""
    return W.HBox(list(controls), layout=W.Layout(flex_flow="row wrap", align_items="center",
                                                  grid_gap="4px 18px"))
