#!/usr/bin/env python3
"""Build a static HTML site of the lessons: every lesson executed in quick mode, one page each.

Usage (from the repository root; ``python3 scripts/quickstart.py site`` runs it in ``.venv``)::

    python scripts/build_site.py [--out DIR] [--lessons 01 04 ...] [--timeout S] [--mathjax-url URL]

What it does, lesson by lesson:

1. ``lessons/`` is copied once into a temporary folder (the tracked lessons are only
   read); every lesson is executed there, in order, from a fresh kernel, with its
   committed ``parameters`` cell (quick mode), by :mod:`nbclient` (working folder:
   that copy; the environment, ``CECO_DATA_DIR`` included, is passed to the kernel;
   ``--timeout`` seconds per cell). A cell that fails stops the build with the
   lesson's name and the error.
2. Widgets are drawn in their default state, that is as they are after Run All:
   boxes, sliders, dropdowns, toggle buttons, buttons, progress bars and HTML texts
   come from the widget state nbclient keeps (``store_widget_state``), drawn as
   plain, disabled HTML controls with their values. The lesson figures (the panes of
   ``ceco_lite.widgets._figure_view``) and any plotly ``FigureWidget`` are read from the
   kernel itself after the last cell (each one's current figure): a saved widget view
   needs a running kernel and the widget's JavaScript to show anything, and a
   ``FigureWidget``'s saved state holds only its *initial* data.
   Every figure, and every ``go.Figure`` output, becomes an interactive plotly.js
   graph (zoom, pan, hover); ``plotly.min.js`` is copied once into the site folder
   from the installed plotly package, so figures need no network.
3. :class:`nbconvert.HTMLExporter` (JupyterLab template, light theme) writes
   ``<lesson>.html``; exercises and answers (``<details>`` blocks) stay click-to-open.
   Math is typeset by MathJax from ``--mathjax-url`` (nbconvert's default: a CDN;
   without a network the TeX source is shown as written).

``index.html`` lists every lesson that has a page in the folder, with its title.
Each page is written atomically, so an interrupted build leaves the previous page in
place. The site folder (default ``site/`` at the repository root) is git-ignored.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat
import plotly
import plotly.io as pio
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Dict

from ceco_lite.fileio import atomic_write, atomic_write_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = REPO_ROOT / "lessons"
DEFAULT_OUT = REPO_ROOT / "site"
#: folders of lessons/ that are outputs of running them, never copied
SKIP_DIRS = ("runs", ".ipynb_checkpoints", "__pycache__")
PLOTLY_JS = "plotly.min.js"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
#: what the probe cell displays: ``{model_id: plotly JSON}`` of every live figure pane and FigureWidget
FIGURES_MIME = "application/vnd.ceco-site.figures+json"
DEFAULT_CELL_TIMEOUT_S = 600

#: run in the lesson's kernel after its last cell: the current figure of every pane and FigureWidget
PROBE_SOURCE = f"""\
import ipywidgets as _site_widgets
import plotly.graph_objects as _site_go
import plotly.io as _site_pio
from IPython.display import display as _site_display
from ceco_lite.widgets._figure_view import PlotlyPane as _site_Pane

_site_figures = {{}}
for _site_id in _site_widgets.Widget.get_manager_state()["state"]:
    _site_w = _site_widgets.widget_serialization["from_json"]("IPY_MODEL_" + _site_id, None)
    if isinstance(_site_w, _site_Pane):
        _site_figures[_site_id] = _site_w.data.spec
    elif isinstance(_site_w, _site_go.FigureWidget):
        _site_figures[_site_id] = _site_pio.to_json(_site_w, validate=False)
_site_display({{{FIGURES_MIME!r}: _site_figures}}, raw=True)
"""

#: page template: JupyterLab's, with local plotly.js, no widget manager, a navigation bar
PAGE_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
<script src="{{ resources.site.plotly_js }}"></script>
{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block extra_css %}
<style type="text/css">{{ resources.site.css }}</style>
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
<nav class="ceco-site-nav">{{ resources.site.nav }}</nav>
{%- endblock body_header -%}
"""

SITE_CSS = """
.ceco-site-nav { font: 14px/1.6 system-ui, sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd;
  display: flex; gap: 24px; }
.ceco-site-nav a { text-decoration: none; }
.ceco-widget { border: 1px solid #e0e0e0; border-radius: 4px; padding: 6px; }
.ceco-widget-note { font-size: 12px; color: #666; margin-bottom: 4px; }
.ceco-hbox { display: flex; flex-flow: row wrap; gap: 4px 16px; align-items: center; }
.ceco-vbox { display: flex; flex-direction: column; gap: 4px; }
.ceco-control { display: flex; align-items: center; gap: 6px; font-size: 13px; }
.ceco-control input[type=range] { width: 160px; }
.ceco-control .ceco-readout { min-width: 3em; font-variant-numeric: tabular-nums; }
.ceco-toggle button.ceco-active { background: #d0d0d0; font-weight: bold; }
.ceco-figure { min-width: 300px; flex: 1 1 auto; }
details > summary { cursor: pointer; color: #1a5fb4; }
"""

INDEX_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>ceco-lite lessons</title>
<style type="text/css">
body {{ font: 16px/1.6 system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; color: #222; }}
li {{ margin: 0.4em 0; }}
.ceco-subtitle {{ color: #555; font-size: 14px; }}
</style>
</head>
<body>
<h1>ceco-lite lessons</h1>
<p>Every lesson as it runs in quick mode, outputs included. Widgets are shown in their default
state and figures stay interactive (zoom, pan, hover); to move the controls, run the lessons in
JupyterLab: <code>python3 scripts/quickstart.py lessons</code>.</p>
<ol class="ceco-lessons">
{items}
</ol>
</body>
</html>
"""


@dataclass
class Page:
    """One built page: the lesson it came from, where it was written, and the executed notebook.

    ``figures`` is the number of plotly figures drawn on the page; ``seconds`` the
    execution time of the lesson (kernel start included).
    """

    lesson: Path
    path: Path
    notebook: nbformat.NotebookNode
    figures: int
    seconds: float


# --- lessons ---------------------------------------------------------------------------------


def lesson_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """Text of the first level-1 heading (``# ...``) of the notebook's markdown, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return fallback


def select_lessons(names: list[str] | None, lessons_dir: Path = LESSONS_DIR) -> list[Path]:
    """The lessons to build, in order: all of them, or those named by number (``4``, ``04``) or file name.

    Raises
    ------
    ValueError
        When a name matches no lesson (the message lists the lessons there are).
    """
    every = sorted(lessons_dir.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        matches = [p for p in every if name in (p.name, p.stem)
                   or (name.isdigit() and int(name) == int(p.name[:2]))]
        if not matches:
            raise ValueError(f"--lessons: no lesson {name!r}; the lessons are {[p.name for p in every]}")
        chosen += [p for p in matches if p not in chosen]
    return sorted(chosen)


def execute_lesson(nb: nbformat.NotebookNode, workdir: Path, *,
                   timeout: int = DEFAULT_CELL_TIMEOUT_S) -> dict[str, dict]:
    """Execute ``nb`` in place from a fresh kernel in ``workdir``; return the live figures of its widgets.

    The kernel is the notebook's (``python3`` by default), started with this
    process's environment. Widget state is kept in ``nb.metadata.widgets``
    (nbclient's ``store_widget_state``). After the last cell, a probe run in the same
    kernel (not added to ``nb``) reads the current figure of every figure pane and ``FigureWidget``.

    Returns
    -------
    dict
        ``{widget model id: {"data": [...], "layout": {...}}}``.

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        At the first cell that fails (``nb`` then holds the outputs up to it).
    """
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
        allow_errors=False, store_widget_state=True, resources={"metadata": {"path": str(workdir)}},
    )
    probe = nbformat.v4.new_code_cell(PROBE_SOURCE)
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        nb.cells.append(probe)
        try:
            client.execute_cell(probe, len(nb.cells) - 1)
        finally:
            nb.cells.pop()
        client.set_widgets_metadata()
    for output in probe.outputs:
        if FIGURES_MIME in output.get("data", {}):
            return {key: json.loads(text) for key, text in output["data"][FIGURES_MIME].items()}
    raise RuntimeError("the figure probe displayed nothing: " + json.dumps(probe.outputs)[:500])


# --- widgets drawn in their default state ----------------------------------------------------


def _format_value(value, fmt: str | None) -> str:
    """``value`` formatted with a widget's ``readout_format`` (d3-format, which Python's covers here)."""
    try:
        return format(value, fmt or "")
    except (TypeError, ValueError):
        return str(value)


def _ref(value) -> str | None:
    """Model id of an ``IPY_MODEL_<id>`` reference, else None."""
    if isinstance(value, str) and value.startswith("IPY_MODEL_"):
        return value[len("IPY_MODEL_"):]
    return None


def figure_html(figure: dict, div_id: str) -> str:
    """An interactive plotly.js graph of ``figure`` (``{"data", "layout"}``), plotly.js loaded by the page."""
    return ('<div class="ceco-figure">'
            + pio.to_html(figure, include_plotlyjs=False, full_html=False, validate=False, div_id=div_id,
                          config={"displaylogo": False})
            + "</div>")


def _label(state: dict) -> str:
    text = state.get("description") or ""
    return text if state.get("description_allow_html") else html.escape(text)


def render_widget(model_id: str, state: dict[str, dict], figures: dict[str, dict]) -> str:
    """HTML of widget ``model_id`` and its children in the state they were saved in.

    Parameters
    ----------
    model_id : str
        Id of the widget model to draw.
    state : dict
        Widget state as nbclient saves it: ``{model id: {"model_name": ..., "state": {...}}}``.
    figures : dict
        ``{model id: {"data", "layout"}}`` of the figure widgets (their current figures, from the
        kernel).

    Returns
    -------
    str
        Boxes become flex rows/columns; controls are disabled HTML inputs showing their
        value; HTML widgets their HTML; figure widgets interactive plotly.js graphs; a
        model that has no view (links, layouts, styles) nothing.
    """
    model = state.get(model_id)
    if model is None:
        return ""
    name, s = model.get("model_name", ""), model.get("state", {})
    label = f'<label>{_label(s)}</label>' if s.get("description") else ""
    if model_id in figures:
        return figure_html(figures[model_id], f"figure-{model_id}")
    if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel"):
        kind = "ceco-hbox" if name == "HBoxModel" else "ceco-vbox"
        titles = s.get("titles") or []
        parts = []
        for i, child in enumerate(s.get("children", [])):
            title = titles[i] if i < len(titles) and titles[i] else ""
            inner = render_widget(_ref(child) or "", state, figures)
            parts.append(f"<div><b>{html.escape(title)}</b>{inner}</div>" if title else inner)
        return f'<div class="{kind}">' + "".join(parts) + "</div>"
    if name in ("HTMLModel", "HTMLMathModel"):
        return f'<div class="ceco-control">{label}<div>{s.get("value", "")}</div></div>'
    if name == "LabelModel":
        return f'<div class="ceco-control">{label}<span>{html.escape(str(s.get("value", "")))}</span></div>'
    if name in ("IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "IntRangeSliderModel",
                "FloatRangeSliderModel", "SelectionSliderModel", "SelectionRangeSliderModel"):
        value = s.get("value")
        if name == "FloatLogSliderModel":
            position = math.log(value, s.get("base", 10.0)) if value and value > 0 else s.get("min", 0)
            readout = _format_value(value, s.get("readout_format"))
            low, high, step = s.get("min", 0), s.get("max", 1), s.get("step", 0.1)
        elif name.startswith("Selection"):
            labels = s.get("_options_labels", [])
            index = s.get("index", 0)
            position = index[0] if isinstance(index, (list, tuple)) else index
            readout = " – ".join(labels[i] for i in index) if isinstance(index, (list, tuple)) else (
                labels[index] if 0 <= index < len(labels) else "")
            low, high, step = 0, max(len(labels) - 1, 0), 1
        else:
            position = value[0] if isinstance(value, (list, tuple)) else value
            fmt = s.get("readout_format")
            readout = (" – ".join(_format_value(v, fmt) for v in value) if isinstance(value, (list, tuple))
                       else _format_value(value, fmt))
            low, high, step = s.get("min", 0), s.get("max", 100), s.get("step", 1)
        return (f'<div class="ceco-control ceco-slider">{label}<input type="range" min="{low}" max="{high}" '
                f'step="{step}" value="{position}" disabled><span class="ceco-readout">'
                f'{html.escape(readout)}</span></div>')
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel"):
        index = s.get("index")
        options = "".join(f'<option{" selected" if i == index else ""}>{html.escape(text)}</option>'
                          for i, text in enumerate(s.get("_options_labels", [])))
        return f'<div class="ceco-control">{label}<select disabled>{options}</select></div>'
    if name == "ToggleButtonsModel":
        index = s.get("index")
        buttons = "".join(f'<button disabled{" class=ceco-active" if i == index else ""}>{html.escape(text)}</button>'
                          for i, text in enumerate(s.get("_options_labels", [])))
        return f'<div class="ceco-control ceco-toggle">{label}{buttons}</div>'
    if name in ("CheckboxModel", "ToggleButtonModel"):
        checked = " checked" if s.get("value") else ""
        return f'<div class="ceco-control"><input type="checkbox" disabled{checked}>{label}</div>'
    if name == "ButtonModel":
        return f'<div class="ceco-control"><button disabled>{_label(s)}</button></div>'
    if name == "PlayModel":
        return (f'<div class="ceco-control">{label}<button disabled>&#9654;</button>'
                f'<span class="ceco-readout">{html.escape(str(s.get("value", "")))}</span></div>')
    if name in ("FloatProgressModel", "IntProgressModel"):
        low, high, value = s.get("min", 0), s.get("max", 100), s.get("value", 0)
        return (f'<div class="ceco-control">{label}<progress max="{high - low}" value="{value - low}"></progress>'
                "</div>")
    if name in ("IntTextModel", "FloatTextModel", "BoundedIntTextModel", "BoundedFloatTextModel", "TextModel"):
        return (f'<div class="ceco-control">{label}<input type="text" disabled '
                f'value="{html.escape(str(s.get("value", "")))}"></div>')
    if name == "OutputModel":
        return '<div class="ceco-vbox">' + "".join(output_html(o, f"{model_id}-{i}")
                                                    for i, o in enumerate(s.get("outputs", []))) + "</div>"
    return ""


def output_html(output: dict, key: str) -> str:
    """HTML of one saved output inside an Output widget: a plotly figure, HTML, an image or text."""
    data = output.get("data", {})
    if PLOTLY_MIME in data:
        return figure_html(data[PLOTLY_MIME], f"figure-{key}")
    if "text/html" in data:
        return "".join(data["text/html"])
    if "image/png" in data:
        return f'<img src="data:image/png;base64,{data["image/png"]}">'
    text = output.get("text") if output.get("output_type") == "stream" else data.get("text/plain")
    return f"<pre>{html.escape(''.join(text))}</pre>" if text else ""


def count_figures(nb: nbformat.NotebookNode, figures: dict[str, dict]) -> int:
    """Plotly figures a page of ``nb`` shows: FigureWidgets and figures in Output widgets inside displayed
    widgets, and figure outputs."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    seen: set[str] = set()
    in_outputs = 0

    def walk(model_id: str) -> None:
        nonlocal in_outputs
        if model_id in seen or model_id not in state:
            return
        seen.add(model_id)
        model = state[model_id]
        if model.get("model_name") == "OutputModel":
            in_outputs += sum(PLOTLY_MIME in o.get("data", {}) for o in model.get("state", {}).get("outputs", []))
        for child in model.get("state", {}).get("children", []):
            walk(_ref(child) or "")

    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW_MIME in data:
                walk(data[WIDGET_VIEW_MIME]["model_id"])
            elif PLOTLY_MIME in data:
                count += 1
    return count + in_outputs + sum(model_id in figures for model_id in seen)


class StaticWidgets(Preprocessor):
    """nbconvert preprocessor: widget views and plotly outputs become static HTML with interactive figures.

    A widget view output gets a ``text/html`` drawing of its widget
    (:func:`render_widget`) in place of the view, with a note when it has controls; a ``go.Figure`` output
    (``application/vnd.plotly.v1+json``) a plotly.js graph. The widget state is then
    removed from the notebook's metadata (nothing on the page needs it).
    """

    figures = Dict(help="{model id: figure} of the figure widgets, from :func:`execute_lesson`")

    def preprocess(self, nb, resources):
        self._state = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
        self._count = 0
        nb, resources = super().preprocess(nb, resources)
        nb.metadata.pop("widgets", None)
        return nb, resources

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            self._count += 1
            if WIDGET_VIEW_MIME in data:
                body = render_widget(data[WIDGET_VIEW_MIME]["model_id"], self._state, self.figures)
                has_controls = any(tag in body for tag in ('<input type="range"', "<select", "<button"))
                note = ('<div class="ceco-widget-note">Controls in their default state; run the lesson in '
                        "JupyterLab to move them.</div>") if has_controls else ""
                output["data"] = {"text/html": f'<div class="ceco-widget">{note}{body}</div>'}
            elif PLOTLY_MIME in data:
                output["data"] = {"text/html": figure_html(data[PLOTLY_MIME], f"figure-out-{index}-{self._count}")}
        return cell, resources


# --- pages ---------------------------------------------------------------------------------


def nav_html(lessons: list[Path], position: int) -> str:
    """Links to the index and to the lessons before and after ``lessons[position]``."""
    parts = ['<a href="index.html">All lessons</a>']
    if position > 0:
        parts.append(f'<a href="{lessons[position - 1].stem}.html">&larr; {html.escape(lessons[position - 1].stem)}</a>')
    if position + 1 < len(lessons):
        parts.append(f'<a href="{lessons[position + 1].stem}.html">{html.escape(lessons[position + 1].stem)} &rarr;</a>')
    return " ".join(parts)


def page_html(nb: nbformat.NotebookNode, figures: dict[str, dict], *, title: str, nav: str,
              mathjax_url: str | None = None) -> str:
    """The HTML page of an executed lesson (``nb`` itself is not changed)."""
    exporter = HTMLExporter(template_name="lab", theme="light",
                            extra_loaders=[jinja2.DictLoader({"ceco_site.html.j2": PAGE_TEMPLATE})],
                            template_file="ceco_site.html.j2")
    if mathjax_url:
        exporter.mathjax_url = mathjax_url
    exporter.register_preprocessor(StaticWidgets(figures=figures), enabled=True)
    resources = {"metadata": {"name": title},
                 "site": {"plotly_js": PLOTLY_JS, "css": SITE_CSS, "nav": nav}}
    body, _ = exporter.from_notebook_node(copy.deepcopy(nb), resources=resources)
    return body


def index_html(out: Path, lessons_dir: Path = LESSONS_DIR) -> str:
    """``index.html``: every lesson of ``lessons_dir`` that has a page in ``out``, with its title."""
    items = []
    for lesson in sorted(lessons_dir.glob("[0-9][0-9]_*.ipynb")):
        if (out / f"{lesson.stem}.html").exists():
            title = lesson_title(nbformat.read(lesson, as_version=4), lesson.stem)
            items.append(f'<li><a href="{lesson.stem}.html">{html.escape(title)}</a> '
                         f'<span class="ceco-subtitle">({html.escape(lesson.name)})</span></li>')
    return INDEX_TEMPLATE.format(items="\n".join(items))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def copy_plotly_js(out: Path) -> Path:
    """``plotly.min.js`` of the installed plotly package, copied into ``out`` (only when it differs)."""
    source = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    target = out / PLOTLY_JS
    data = source.read_bytes()
    if not target.exists() or target.read_bytes() != data:
        atomic_write_bytes(target, data)
    return target


def build_site(out: Path = DEFAULT_OUT, lessons: list[Path] | None = None, *, lessons_dir: Path = LESSONS_DIR,
               timeout: int = DEFAULT_CELL_TIMEOUT_S, mathjax_url: str | None = None,
               log=print) -> list[Page]:
    """Execute ``lessons`` (default: all) in quick mode and write their pages and ``index.html`` into ``out``.

    Parameters
    ----------
    out : path-like
        Site folder (created if needed); pages of lessons not built this time stay.
    lessons : list of Path, optional
        Lesson notebooks inside ``lessons_dir`` (see :func:`select_lessons`); default: all.
    lessons_dir : path-like
        Folder of the lessons (default ``lessons/``); it is copied, never written to.
    timeout : int
        Seconds one cell may run (default 600).
    mathjax_url : str, optional
        MathJax script for the math (default: nbconvert's CDN address).
    log : callable
        Receives one progress line per lesson.

    Returns
    -------
    list of Page
        One per lesson, in order.

    Raises
    ------
    ValueError
        When ``lessons`` names a notebook that is not a lesson of ``lessons_dir``.
    RuntimeError
        When a lesson's cell fails (the lesson and the error are named); pages of the
        lessons before it are written, and they and the index link only to lessons that
        have a page.
    """
    out, lessons_dir = Path(out), Path(lessons_dir)
    every = select_lessons(None, lessons_dir)
    lessons = every if lessons is None else list(lessons)
    building = {p.name for p in lessons}
    unknown = sorted(building - {p.name for p in every})
    if unknown:
        raise ValueError(f"lessons: {unknown} are not lessons of {lessons_dir} (expected some of "
                         f"{[p.name for p in every]})")
    out.mkdir(parents=True, exist_ok=True)
    copy_plotly_js(out)
    pages, written = [], []

    def write_page(lesson, nb, figures, title, linked):
        path = out / f"{lesson.stem}.html"
        position = [p.name for p in linked].index(lesson.name)
        write_text(path, page_html(nb, figures, title=title, nav=nav_html(linked, position), mathjax_url=mathjax_url))
        return path

    with tempfile.TemporaryDirectory(prefix="ceco-site-") as tmp:
        workdir = Path(tmp) / "lessons"
        shutil.copytree(lessons_dir, workdir, ignore=shutil.ignore_patterns(*SKIP_DIRS))
        for lesson in lessons:
            nb = nbformat.read(workdir / lesson.name, as_version=4)
            start = time.perf_counter()
            try:
                figures = execute_lesson(nb, workdir, timeout=timeout)
            except CellExecutionError as exc:
                # the pages written so far must not link to this lesson or the ones after it
                # (they have no page from this build): their links are written again
                linked = [p for p in every if (out / f"{p.stem}.html").exists() and p.name != lesson.name]
                for args in written:
                    write_page(*args, linked)
                write_text(out / "index.html", index_html(out, lessons_dir))
                raise RuntimeError(f"{lesson.name} failed while building the site:\n{exc}") from exc
            seconds = time.perf_counter() - start
            title = lesson_title(nb, lesson.stem)
            # neighbours: the lessons that have a page once this build is done
            linked = [p for p in every if p.name in building or (out / f"{p.stem}.html").exists()]
            path = write_page(lesson, nb, figures, title, linked)
            written.append((lesson, nb, figures, title))
            page = Page(lesson=lesson, path=path, notebook=nb, figures=count_figures(nb, figures), seconds=seconds)
            pages.append(page)
            log(f"{lesson.name}: {seconds:.1f} s, {page.figures} figures -> {path} "
                f"({path.stat().st_size / 1e6:.1f} MB)")
    write_text(out / "index.html", index_html(out, lessons_dir))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a static HTML site of the lessons (quick mode).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="site folder (default: site/)")
    parser.add_argument("--lessons", nargs="+", metavar="LESSON",
                        help="lessons to build, by number (4 or 04) or file name (default: all)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT_S,
                        help=f"seconds one cell may run (default {DEFAULT_CELL_TIMEOUT_S})")
    parser.add_argument("--mathjax-url", default=None, help="MathJax script URL (default: nbconvert's CDN)")
    args = parser.parse_args(argv)
    try:
        lessons = select_lessons(args.lessons)
    except ValueError as exc:
        parser.error(str(exc))
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    start = time.perf_counter()
    try:
        build_site(args.out, lessons, timeout=args.timeout, mathjax_url=args.mathjax_url,
                   log=lambda line: print(line, flush=True))
    except RuntimeError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    index = Path(args.out).resolve() / "index.html"
    print(f"site built in {time.perf_counter() - start:.0f} s: open {index.as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
