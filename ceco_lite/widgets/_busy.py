"""A busy sign inside a widget while it recomputes.

Convention (checked by ``benchmarks/bench_browser.py``): while a widget's callback
works, its container carries the CSS class ``ceco-busy`` and a line under the controls
says what is being computed; both disappear when the update is done. The widget
state change is sent to the browser before the work starts, so the sign shows while
the kernel is busy.
"""
from __future__ import annotations

import contextlib

import ipywidgets as W

__all__ = ["BusySign", "BUSY_CLASS"]

#: CSS class on a widget's container while it recomputes.
BUSY_CLASS = "ceco-busy"

_STYLE = ("<style>.ceco-busy-line{color:#b35900;font-style:italic;min-height:1.4em}"
          ".ceco-busy{opacity:0.75;transition:opacity 0.1s}</style>")


class BusySign:
    """The busy line of a widget and a context manager that shows it.

    Put :attr:`line` into the widget's container (under the controls); wrap slow
    work in ``with sign.busy(container, "retraining ..."):``.
    """

    def __init__(self) -> None:
        self.line = W.HTML(value=_STYLE, layout=W.Layout(min_height="1.4em"))

    @contextlib.contextmanager
    def busy(self, box: W.Box, what: str = "computing"):
        """Show the sign on ``box`` for the duration of the ``with`` block."""
        box.add_class(BUSY_CLASS)
        self.line.value = _STYLE + f"<div class='ceco-busy-line'>⏳ {what}…</div>"
        try:
            yield
        finally:
            box.remove_class(BUSY_CLASS)
            self.line.value = _STYLE
