"""The static site of the lessons (``scripts/build_site.py``, ``python3 scripts/quickstart.py site``).

Fast tests check the builder's pieces without a browser: lesson selection, widgets
drawn in their default state from a widget state, the live FigureWidget figure
taken from the kernel (not the stale initial data of the widget state), the index,
a failing lesson, and the quickstart command.

The browser test builds the site for two of the fastest lessons (04 and 01) into a
temporary folder, serves it on 127.0.0.1 and opens every page in headless Chromium
(``tests/browser_harness.py``). It fails on a browser-console error or an uncaught
page exception; on a page with fewer rendered plotly graphs (``.js-plotly-plot``)
than the figures its executed notebook displays, or with a graph that holds no
trace; on a widget output not drawn; on a missing index or navigation link; on an
exercise answer (``<details>``) whose text is missing or that does not open; and on
any request outside the site other than MathJax's script (answered with an empty
script, since the test runs offline). Screenshots of each page's first widget go to
``test-artifacts/site_<lesson>.png``. Skipped without Chromium, except on CI.
"""
from __future__ import annotations

import functools
import html
import importlib.util
import json
import re
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import build_site as bs  # scripts/ is not a package

#: the two fastest lessons in quick mode (about 25 s each on a 2-core CPU)
BROWSER_LESSONS = ["04", "01"]


def ref(model_id: str) -> str:
    return "IPY_MODEL_" + model_id


def model(name: str, **state) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


# --- the builder's pieces, no browser ----------------------------------------------------------


def test_select_lessons_by_number_or_name():
    every = bs.select_lessons(None)
    assert [p.name[:2] for p in every] == ["01", "02", "03", "04", "05", "06"]
    chosen = bs.select_lessons(["4", "01_simplex_etf.ipynb", "04"])
    assert [p.name for p in chosen] == ["01_simplex_etf.ipynb", "04_gradient_flow.ipynb"]
    assert bs.select_lessons(["06_beyond_ceco"]) == [every[5]]
    with pytest.raises(ValueError, match=r"--lessons: no lesson '9'.*01_simplex_etf\.ipynb"):
        bs.select_lessons(["9"])


def test_build_rejects_a_notebook_that_is_not_a_lesson(tmp_path):
    with pytest.raises(ValueError, match=r"lessons: \['99_extra\.ipynb'\] are not lessons of .*01_simplex_etf"):
        bs.build_site(tmp_path / "site", [Path("99_extra.ipynb")], log=lambda line: None)
    assert not (tmp_path / "site").exists()  # nothing written


def test_widgets_are_drawn_in_their_saved_state():
    state = {
        "box": model("VBoxModel", children=[ref("row"), ref("fig"), ref("note"), ref("link")]),
        "row": model("HBoxModel", children=[ref("log"), ref("int"), ref("drop"), ref("toggle"), ref("check")]),
        "log": model("FloatLogSliderModel", description="imbalance factor", value=100.0, base=10.0,
                     min=0.0, max=3.0, step=0.05, readout_format=".0f"),
        "int": model("IntSliderModel", description="<K>", value=5, min=2, max=12, step=1, readout_format="d"),
        "drop": model("DropdownModel", description="model", _options_labels=["baseline", "CeCo"], index=1),
        "toggle": model("ToggleButtonsModel", _options_labels=["learned", "ETF"], index=0),
        "check": model("CheckboxModel", description="fixed", value=True),
        "note": model("HTMLModel", value="<b>NC1 = 0.25</b>"),
        "fig": {"model_name": "AnyModel", "state": {"_widget_data": [{"type": "bar", "y": [0, 0]}]}},
        "link": model("LinkModel", source=[ref("log"), "value"], target=[ref("int"), "value"]),
    }
    figures = {"fig": {"data": [{"type": "bar", "y": [3, 4]}], "layout": {"title": {"text": "live"}}}}
    out = bs.render_widget("box", state, figures)
    # the log slider sits at log10(100) = 2 on its exponent track and reads 100
    assert re.search(r'min="0\.0" max="3\.0" step="0\.05" value="2\.0" disabled><span class="ceco-readout">100<',
                     out)
    assert 'min="2" max="12" step="1" value="5" disabled><span class="ceco-readout">5<' in out
    assert "<label>&lt;K&gt;</label>" in out  # descriptions are text, not HTML
    assert "<option>baseline</option><option selected>CeCo</option>" in out
    assert "<button disabled class=ceco-active>learned</button><button disabled>ETF</button>" in out
    assert '<input type="checkbox" disabled checked><label>fixed</label>' in out
    assert "<b>NC1 = 0.25</b>" in out  # HTML widgets keep their HTML
    # the live figure replaces the widget state's initial data, as a plotly.js graph
    assert 'id="figure-fig"' in out and "Plotly.newPlot" in out
    assert '"y":[3,4]' in out and '"y":[0,0]' not in out
    # children in order: the control row, then the figure, then the note; a link draws nothing
    assert out.index("imbalance factor") < out.index("figure-fig") < out.index("NC1 = 0.25")
    assert out.startswith('<div class="ceco-vbox"><div class="ceco-hbox">')
    assert bs.render_widget("missing", state, figures) == ""


def _tiny_notebook() -> nbformat.NotebookNode:
    """A FigureWidget created with zeros and updated by a later cell, beside a slider; a lesson figure pane
    updated the same way; and a go.Figure."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny lesson\n\n<details><summary>Answer</summary>\n\n"
                                      "The *answer* is forty-two.\n</details>"),
        nbformat.v4.new_code_cell(
            "import ipywidgets as w\nimport plotly.graph_objects as go\nfrom IPython.display import display\n"
            "fig = go.FigureWidget(go.Bar(y=[0, 0, 0]))\n"
            "display(w.VBox([w.IntSlider(value=3, min=1, max=9, description='n'), fig]))"),
        nbformat.v4.new_code_cell("fig.data[0].y = [7, 8, 9]"),
        nbformat.v4.new_code_cell(
            "from ceco_lite.widgets._figure_view import FigureView\n"
            "view = FigureView(go.Figure(go.Bar(y=[1, 1])))\ndisplay(view.widget)\n"
            "view.figure.data[0].y = [4, 2]\nview.redraw()"),
        nbformat.v4.new_code_cell("go.Figure(go.Scatter(y=[5, 6]))"),
    ]
    return nb


@pytest.mark.timeout(180)
def test_page_shows_the_live_figure_and_no_widget_state(tmp_path):
    nb = _tiny_notebook()
    figures = bs.execute_lesson(nb, tmp_path, timeout=120)
    state = nb.metadata.widgets[bs.WIDGET_STATE_MIME]["state"]
    (model_id,) = [m for m in figures if "_widget_data" in state[m]["state"]]  # the FigureWidget
    (pane_id,) = [m for m in figures if m != model_id]
    assert figures[model_id]["data"][0]["y"] == [7, 8, 9]
    assert figures[pane_id]["data"][0]["y"] == [4, 2]
    # why the figure is read from the kernel: the saved widget state still holds the initial zeros
    assert state[model_id]["state"]["_widget_data"][0]["y"] == [0, 0, 0]
    assert len(nb.cells) == 5  # the probe cell is not left in the notebook
    assert bs.count_figures(nb, figures) == 3  # the FigureWidget, the pane and the go.Figure output

    page = bs.page_html(nb, figures, title="Tiny lesson", nav=bs.nav_html([Path("t.ipynb")], 0))
    assert "<title>Tiny lesson</title>" in page
    assert f'<script src="{bs.PLOTLY_JS}"></script>' in page and "require.min.js" not in page
    assert bs.WIDGET_VIEW_MIME not in page and bs.WIDGET_STATE_MIME not in page
    assert page.count("Plotly.newPlot") == 3
    assert f'id="figure-{model_id}"' in page and '"y":[7,8,9]' in page and '"y":[0,0,0]' not in page
    assert f'id="figure-{pane_id}"' in page and '"y":[4,2]' in page
    assert "plotly.js v" not in page  # plotly.js is loaded from the site folder, not embedded from a widget
    # the slider in its default state (nbconvert re-serialises output HTML: attributes sorted)
    assert '<input disabled="" max="9" min="1" step="1" type="range" value="3"/>' in page
    assert re.search(r"<details><summary>Answer</summary>\s*<p>The <em>answer</em> is forty-two\.</p>\s*</details>",
                     page)
    assert '<a href="index.html">All lessons</a>' in page
    assert page.count("Controls in their default state") == 1  # the widget with a slider, not the go.Figure
    assert nb.metadata.get("widgets"), "page_html must not change the executed notebook"


@pytest.mark.timeout(180)
def test_build_stops_at_a_failing_lesson_and_names_it(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Good one"),
                                           nbformat.v4.new_code_cell("print(open('data.txt').read())")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")])
    nbformat.write(good, lessons / "01_good.ipynb")
    nbformat.write(bad, lessons / "02_bad.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Never reached")]),
                   lessons / "03_later.ipynb")
    (lessons / "data.txt").write_text("read from the lessons' copy")
    (lessons / "runs").mkdir()  # outputs of earlier runs are not copied
    (lessons / "runs" / "old.json").write_text("{}")
    out = tmp_path / "site"
    with pytest.raises(RuntimeError, match=r"(?s)02_bad\.ipynb failed while building the site.*ZeroDivisionError"):
        bs.build_site(out, lessons_dir=lessons, timeout=60, log=lambda line: None)
    page = (out / "01_good.html").read_text()
    assert "read from the lessons&#39; copy" in page or "read from the lessons' copy" in page
    assert not (out / "02_bad.html").exists() and not (out / "03_later.html").exists()
    # the page written before the failure and the index link only to pages that exist
    assert re.findall(r'href="(\w+\.html)"', page) == ["index.html"]
    index = (out / "index.html").read_text()
    assert "01_good.html" in index and "02_bad.html" not in index and "03_later.html" not in index
    assert (out / bs.PLOTLY_JS).read_bytes()[:100] == (Path(bs.plotly.__file__).parent / "package_data"
                                                       / bs.PLOTLY_JS).read_bytes()[:100]
    assert sorted(p.name for p in lessons.rglob("*")) == ["01_good.ipynb", "02_bad.ipynb", "03_later.ipynb",
                                                         "data.txt", "old.json", "runs"]  # the lessons folder is only read


def test_index_lists_the_lessons_that_have_pages(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    for stem, title in (("01_a", "Lesson 1 — A & B"), ("02_b", "Lesson 2"), ("03_c", "Lesson 3")):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"intro\n# {title}\n")]),
                       lessons / f"{stem}.ipynb")
    out = tmp_path / "site"
    out.mkdir()
    (out / "01_a.html").write_text("page")
    (out / "03_c.html").write_text("page")
    index = bs.index_html(out, lessons)
    assert re.findall(r'<li><a href="([\w.]+)">([^<]+)</a>', index) == [
        ("01_a.html", "Lesson 1 — A &amp; B"), ("03_c.html", "Lesson 3")]
    nav = bs.nav_html(sorted(lessons.glob("*.ipynb")), 1)
    assert re.findall(r'href="([\w.]+)"', nav) == ["index.html", "01_a.html", "03_c.html"]


def test_quickstart_site_command_runs_the_builder(monkeypatch):
    spec = importlib.util.spec_from_file_location("quickstart_for_site", REPO_ROOT / "scripts" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    calls = []
    monkeypatch.setattr(quickstart, "hand_over", lambda cmd, env: calls.append((cmd, env)) or 0)
    assert quickstart.COMMANDS["site"](["--lessons", "4", "--out", "/tmp/x"]) == 0
    (cmd, env), = calls
    assert [str(c) for c in cmd] == [str(quickstart.venv_python()), str(REPO_ROOT / "scripts" / "build_site.py"),
                                     "--lessons", "4", "--out", "/tmp/x"]
    assert env["VIRTUAL_ENV"] == str(quickstart.VENV_DIR)
    assert "quickstart.py site" in quickstart.__doc__.split("\n\n")[2]  # the usage text printed on bad usage


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        bs.main(["--lessons", "nope"])
    assert "--lessons: no lesson 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bs.main(["--timeout", "0"])
    assert "--timeout must be a positive number of seconds, got 0" in capsys.readouterr().err


# --- the pages in a real browser ----------------------------------------------------------------


def answer_phrases(nb: nbformat.NotebookNode) -> list[str]:
    """From each ``<details>`` block of the markdown: a run of plain words of its answer text."""
    phrases = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for block in re.findall(r"</summary>(.*?)</details>", cell.source, flags=re.DOTALL):
            runs = re.findall(r"(?:[A-Za-z]{2,}[ ,]+){3,}[A-Za-z]{2,}", block)
            if runs:
                phrases.append(max(runs, key=len).strip())
    return phrases


@pytest.fixture(scope="module")
def chromium() -> str:
    pytest.importorskip("playwright.sync_api")
    import browser_harness as bh  # needs playwright (checked above)

    return bh.chromium_or_skip()


@pytest.fixture(scope="module")
def built_site(chromium, tmp_path_factory):
    """The site of :data:`BROWSER_LESSONS`, served on 127.0.0.1; yields ``(base url, pages)``."""
    out = tmp_path_factory.mktemp("site") / "site"
    pages = bs.build_site(out, bs.select_lessons(BROWSER_LESSONS), timeout=300, log=print)
    handler = functools.partial(type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                                directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_site_pages_in_the_browser(built_site, chromium, artifacts_dir):
    import browser_harness as bh

    base, pages = built_site
    mathjax = HTMLExporter().mathjax_url
    outside, problems = [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(base + "/"):
            request_route.continue_()
        else:  # offline: nothing outside the site is reachable
            outside.append(url)
            request_route.fulfill(status=200, content_type="application/javascript", body="")

    with bh.chromium_context(chromium) as context:
        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"{page.url}: console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"{page.url}: uncaught {e}"))

        page.goto(base + "/index.html", wait_until="load")
        for built in pages:
            title = bs.lesson_title(built.notebook, "")
            link = page.locator(f'a[href="{built.path.name}"]')
            assert link.count() == 1, f"index.html has no link to {built.path.name}"
            assert link.inner_text() == title

        for built in pages:
            name, nb = built.path.name, built.notebook
            page.goto(f"{base}/{name}", wait_until="load")
            assert built.figures > 0, f"{name}: the executed notebook displays no figure"
            page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot').length >= n",
                                   arg=built.figures, timeout=30_000)
            traces = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                                   ".map(el => (el.data || []).length)")
            assert len(traces) >= built.figures and all(traces), f"{name}: graphs and their traces {traces}"
            views = sum(bs.WIDGET_VIEW_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
            drawn = page.locator(".ceco-widget")
            assert drawn.count() == views, f"{name}: {drawn.count()} widgets drawn, the notebook displays {views}"
            controls = page.locator(".ceco-widget input[type=range], .ceco-widget select, .ceco-widget button")
            assert controls.count() > 0, f"{name}: no control of any widget is drawn"
            nav = page.evaluate("() => [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))")
            assert nav[0] == "index.html" and set(nav[1:]) == {p.path.name for p in pages} - {name}, nav

            details = page.locator("details")
            phrases = answer_phrases(nb)
            assert details.count() >= len(phrases) > 0, f"{name}: {details.count()} <details>, {len(phrases)} answers"
            text = page.inner_text("body")
            for phrase in phrases:
                assert html.unescape(phrase) in " ".join(
                    page.evaluate("() => [...document.querySelectorAll('details')].map(d => d.textContent)")
                ).replace("\n", " "), f"{name}: the answer text {phrase!r} is not in a <details> block"
            first = details.first
            first.locator("summary").click()
            assert first.evaluate("d => d.open") and first.locator(":scope > :not(summary)").first.is_visible()
            assert "Traceback" not in text

            first_widget = drawn.first
            first_widget.evaluate("el => el.scrollIntoView({block: 'start'})")
            page.mouse.move(2, 2)
            page.wait_for_timeout(300)
            page.screenshot(path=str(artifacts_dir / f"site_{built.path.stem}.png"))
        page.close()

    assert not problems, "\n".join(problems)
    assert all(url == mathjax for url in outside), f"requests outside the site: {sorted(set(outside))}"
    print(json.dumps({p.path.name: {"seconds": round(p.seconds, 1), "figures": p.figures,
                                    "MB": round(p.path.stat().st_size / 1e6, 2)} for p in pages}))
