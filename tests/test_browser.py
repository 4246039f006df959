"""Every lesson as a student meets it: JupyterLab in headless Chromium, driven by Playwright.

For each lesson (``-k lesson4`` runs one) the test

1. serves a working copy of the lessons with JupyterLab, started the way
   ``python3 scripts/quickstart.py lessons`` starts it (its copy of ``lessons/``,
   its configuration and pre-save hook; 127.0.0.1, token-less);
2. opens the lesson, runs Run > Run All Cells from a fresh kernel and waits for the
   last cell to finish;
3. finds every control by its DOM (sliders, toggle buttons, dropdowns, checkboxes,
   radio buttons, buttons, Play widgets; see ``tests/browser_harness.py``), checks
   that no slider track is narrower than 40 px, and moves each control once --
   sliders by keyboard, the others by a click or a selection -- waiting each time
   until the kernel is idle and the widget quiet;
4. saves the notebook, ends its kernel and opens it again, as a student coming
   back the next day.

It fails, listing every problem found, on: an error output in a cell; a traceback
published outside any cell (raised in a widget callback; JupyterLab shows it only
in its log console); a browser-console error; a traceback in the server log; a
blank plotly figure; a control that does not move or whose widget's plot does not
change; a slider track under 40 px; a saved notebook that still holds widget views;
"widget model not found" (or any other error) on reopening. The tracked
``lessons/`` must be byte-for-byte unchanged after each lesson.

Screenshots of every widget go to ``test-artifacts/browser_<lesson>_w<n>.png``
(``..._log.png``: the log console, when something was logged there;
``..._blank_cell<n>.png``: a blank figure). With
``CECO_UPDATE_SCREENSHOT=1`` lesson 1's first widget is also copied to
``docs/lesson1.png`` (the README's picture). The Run All wall times land in
``test-artifacts/notebook_times.json`` as ``<lesson> (browser)``.

The browser is Debian's Chromium (``/usr/bin/chromium``; ``CECO_CHROMIUM`` names
another). ``python3 scripts/quickstart.py test`` installs it with apt-get when run
as root. Without a browser the test is skipped, except on CI (``CI`` set), where it fails.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("playwright.sync_api")

import browser_harness as bh  # after the playwright check

LESSONS = sorted(bh.LESSONS_DIR.glob("*.ipynb"))
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def lesson_id(path: Path) -> str:
    """``lesson4-gradient_flow`` for ``04_gradient_flow.ipynb`` (``-k lesson4`` selects it)."""
    number, _, rest = path.stem.partition("_")
    return f"lesson{int(number)}-{rest}"


@pytest.fixture(scope="module")
def chromium() -> str:
    return bh.chromium_or_skip()


@pytest.fixture(scope="module")
def tracked_lessons() -> dict[str, str]:
    """Digest of every tracked file under lessons/ before any lesson is opened."""
    return {p.relative_to(bh.LESSONS_DIR).as_posix(): bh.file_digest(p)
            for p in sorted(bh.LESSONS_DIR.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tracked_lessons):
    """JupyterLab started like the lessons command, on per-lesson working copies; yields ``(lab, paths)``."""
    base = tmp_path_factory.mktemp("browser")
    paths = bh.prepare_lessons(base / "root", LESSONS)
    with bh.JupyterLab(base / "root", base / "jupyter") as server:
        yield server, paths


@pytest.fixture(scope="module")
def context(chromium):
    with bh.chromium_context(chromium) as ctx:
        yield ctx


def widget_views(notebook: dict) -> list[int]:
    """Indices of cells whose saved outputs still display a widget."""
    return [i for i, cell in enumerate(notebook.get("cells", []))
            if any(WIDGET_VIEW_MIME in out.get("data", {}) for out in cell.get("outputs", []))]


def reopen_problems(context, server, path: str) -> list[str]:
    """Open a saved notebook again with a fresh kernel (no cell run) and report what went wrong."""
    server.shutdown_kernels()
    page = bh.LessonPage(context, server, path)
    try:
        page.open()
        page.page.wait_for_timeout(2000)  # outputs and widget managers settle
        problems = page.problems()
        if "model not found" in page.output_text().lower():
            problems.append("an output says the widget model was not found")
        return problems
    finally:
        page.close()


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson_id(p) for p in LESSONS])
def test_lesson_in_the_browser(lesson, lab, context, tracked_lessons, artifacts_dir, repo_root, notebook_times):
    server, paths = lab
    path = paths[lesson.name]
    shot = artifacts_dir / f"browser_{lesson.stem}"
    for old in artifacts_dir.glob(f"{shot.name}_*.png"):
        old.unlink()
    problems: list[str] = []
    page = bh.LessonPage(context, server, path)
    try:
        page.open()
        run = page.run_all()
        notebook_times[f"{lesson.name} (browser)"] = run.seconds
        print(f"{lesson.name}: Run All {run.seconds:.1f} s in the browser")
        if not run.complete:
            problems.append(f"Run All stopped: {run.executed} of {run.code_cells} code cells ran "
                            f"(first reply not ok: {run.failed})")
        controls = page.controls()
        if not controls:
            problems.append("no control (slider, toggle, dropdown, button) found after Run All")
        for control in controls:
            if control.kind == "slider" and control.track_px < bh.MIN_TRACK_PX:
                problems.append(f"{control.name}: the slider track is {control.track_px} px wide "
                                f"(at least {bh.MIN_TRACK_PX} px needed to drag it)")
        for control in controls:
            move = page.move(control)
            if not move.changed:
                problems.append(f"{control.name}: did not move")
            elif control.views and move.first_ms is None:
                problems.append(f"{control.name}: moved, but its widget's plot did not change "
                                f"(kernel idle again after {move.kernel_ms} ms; settled after {move.settle_s:.2f} s)")
        shots = page.screenshot_widgets(shot)
        for cell in page.blank_plots():
            page.screenshot_cell(cell, Path(f"{shot}_blank_cell{cell}.png"))
        if page.logged_outside_cells():
            page.open_log_console()
            page.page.screenshot(path=f"{shot}_log.png")
        problems += page.problems()
        page.save()
    except BaseException:  # pytest.fail and timeouts raise BaseException
        if page.page is not None:
            page.page.screenshot(path=f"{shot}_failed.png")
        raise
    finally:
        page.close()

    changed = {name for name, digest in tracked_lessons.items()
               if not (bh.LESSONS_DIR / name).is_file() or bh.file_digest(bh.LESSONS_DIR / name) != digest}
    assert not changed, f"the tracked lessons changed while {lesson.name} ran: {sorted(changed)}"
    saved = json.loads((server.root / path).read_text(encoding="utf-8"))
    if not any(cell.get("execution_count") for cell in saved["cells"]):
        problems.append("saving did not reach the working copy (no executed cell in the saved file)")
    if widget_views(saved) or "widgets" in saved.get("metadata", {}):
        problems.append(f"the saved working copy still holds widget views (cells {widget_views(saved)}) "
                        "or widget state: the pre-save hook did not run")
    problems += [f"on reopening: {p}" for p in reopen_problems(context, server, path)]

    if lesson.stem.startswith("01") and shots and os.environ.get("CECO_UPDATE_SCREENSHOT") == "1":
        (repo_root / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shots[0], repo_root / "docs" / "lesson1.png")
    counts = {p: problems.count(p) for p in problems}  # first seen first; repeats counted, not repeated
    report = [p if n == 1 else f"({n} times) {p}" for p, n in counts.items()]
    assert not problems, f"{lesson.name}: {len(report)} problem(s) in the browser:\n\n" + "\n\n".join(report)


# --- the harness itself: it sees what it must see ----------------------------------------------

CANARY = [
    "import ipywidgets as W\nimport plotly.graph_objects as go",
    # a working widget: a slider redrawing a plotly FigureWidget
    ("fig = go.FigureWidget(data=[go.Scatter(y=[0, 1, 2])])\n"
     "good = W.IntSlider(value=1, min=0, max=5, description='slope')\n"
     "good.observe(lambda c: fig.data[0].update(y=[0, c['new'], 2 * c['new']]), names='value')\n"
     "W.VBox([good, fig])"),
    # a slider squeezed by its description, and a button whose callback raises
    ("squeezed = W.IntSlider(description='a very long description that takes the room',\n"
     "                       style={'description_width': '290px'}, layout=W.Layout(width='300px'))\n"
     "broken = W.Button(description='raise')\n"
     "def fail(_):\n    raise ValueError('callback failure for the harness')\n"
     "broken.on_click(fail)\n"
     "W.HBox([squeezed, broken])"),
]


@pytest.mark.timeout(300)
def test_harness_sees_callback_errors_narrow_sliders_and_plot_changes(lab, context):
    """A made-up notebook with known faults: the harness must report each one, and time the good slider."""
    server, _ = lab
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CANARY])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, server.root / "canary.ipynb")
    page = bh.LessonPage(context, server, "canary.ipynb")
    try:
        page.open()
        run = page.run_all()
        assert run.complete, run
        controls = {c.label: c for c in page.controls()}
        assert {"slope", "raise"} <= set(controls), sorted(controls)
        squeezed = next(c for label, c in controls.items() if label.startswith("a very long"))
        assert squeezed.kind == "slider" and squeezed.track_px < bh.MIN_TRACK_PX, squeezed
        assert controls["slope"].track_px >= bh.MIN_TRACK_PX, controls["slope"]
        good = page.move(controls["slope"])
        assert good.changed and good.first_ms is not None and 0 < good.first_ms <= good.done_ms, good
        assert good.busy_ms is None  # this widget shows no busy sign
        assert page.problems() == []
        page.move(controls["raise"])
        problems = page.problems()
        assert any("traceback outside any cell" in p and "callback failure for the harness" in p
                   for p in problems), problems
        assert "callback failure for the harness" in page.open_log_console()  # JupyterLab's own log console agrees
    finally:
        page.close()


@pytest.mark.timeout(300)
def test_reopening_a_notebook_saved_with_widget_views_is_caught(lab, context):
    """Without the pre-save hook a saved widget view logs 'model not found' on reopening: the check sees it."""
    server, _ = lab
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("W.IntSlider()", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "IntSlider(value=0)",
        WIDGET_VIEW_MIME: {"model_id": "0123456789abcdef0123456789abcdef", "version_major": 2, "version_minor": 0}})]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, server.root / "stale_widget.ipynb")  # written behind the server's back: no hook
    server.trust("stale_widget.ipynb")
    problems = reopen_problems(context, server, "stale_widget.ipynb")
    assert any("model not found" in p.lower() for p in problems), problems
