"""A real user session: JupyterLab in headless Chromium, driven by Playwright.

For lessons 1 and 2 the test opens the notebook in JupyterLab, runs every cell
with Run > Run All Cells, waits until the kernel is idle, checks that no cell
raised, then moves the lesson's first slider with the keyboard (click the handle,
press ArrowRight) and checks that the value read out and the plot both changed.
Screenshots go to ``test-artifacts/``. With ``CECO_UPDATE_SCREENSHOT=1`` the
picture of lesson 1 is also copied to ``docs/lesson1.png`` (the README's picture).

The browser is Debian's Chromium (``/usr/bin/chromium``; ``CECO_CHROMIUM`` names
another). ``python3 scripts/quickstart.py test`` installs it with apt-get when run
as root. Without a browser the test is skipped, except on CI (``CI`` set), where it fails.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = Path(os.environ.get("CECO_BROWSER_LESSONS_DIR", REPO_ROOT / "lessons"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 120_000  # a cold JupyterLab on a busy 2-core machine is slow
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

playwright_sync = pytest.importorskip("playwright.sync_api")


def find_chromium() -> str | None:
    """The browser scripts/quickstart.py finds (or installed): CECO_CHROMIUM, /usr/bin/chromium, PATH."""
    spec = importlib.util.spec_from_file_location("quickstart", REPO_ROOT / "scripts" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)  # stdlib only, no side effects on import
    return quickstart.find_chromium()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        message = ("no Chromium: install it (sudo apt-get install chromium; `python3 scripts/quickstart.py test` "
                   "does this as root) or set CECO_CHROMIUM")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 serving a copy of the lessons; yields ``(base_url, token)``."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "lessons"
    shutil.copytree(LESSONS_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs"))
    # no news / update checks: the first-run notification would cover the notebook
    settings = base / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"checkForUpdates": false, "fetchNews": "false"}')
    port, token = free_port(), uuid.uuid4().hex
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True"]  # window.jupyterapp: to see when the kernel is ready
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (base / "server.log").open("w")
    server = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail("JupyterLab did not start:\n" + (base / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield url, token
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    log.close()


@pytest.fixture(scope="module")
def browser(chromium):
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# JavaScript run in the page -------------------------------------------------------------

#: counts of code cells by prompt state: done "[n]:", running/queued "[*]:", never run "[ ]:" (non-empty only)
JS_PROMPTS = """() => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')];
  const out = {done: 0, busy: 0, todo: 0};
  for (const cell of cells) {
    const prompt = (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim();
    const source = (cell.querySelector('.cm-content')?.textContent || '').trim();
    if (/\\[\\d+\\]/.test(prompt)) out.done++;
    else if (prompt.includes('*')) out.busy++;
    else if (source) out.todo++;
  }
  return out;
}"""

#: what the plots look like now: plotly's SVG layers, images and canvases of the visible notebook
JS_PLOT_STATE = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const parts = [];
  nb.querySelectorAll('.js-plotly-plot .main-svg').forEach(e => parts.push(e.innerHTML));
  nb.querySelectorAll('.jp-OutputArea-output img').forEach(e => parts.push(e.src));
  nb.querySelectorAll('.jp-OutputArea-output canvas').forEach(e => parts.push(e.toDataURL()));
  return parts.join('\\n');
}"""

#: text of every error/traceback output in the visible notebook
JS_ERRORS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  return [...nb.querySelectorAll('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent).filter(t => /Traceback|Error:/.test(t));
}"""


#: errors logged outside any cell (e.g. raised in a widget callback): JupyterLab's log console
JS_LOG_ERRORS = """() => [...document.querySelectorAll('.jp-LogConsolePanel .jp-OutputArea-output')]
  .map(e => e.textContent).filter(t => /Traceback|Error/.test(t))"""


def text_changes(locator, before: str, timeout_s: float = 5.0) -> bool:
    """Whether the locator's text differs from ``before`` within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while locator.inner_text() == before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def lesson_path(prefix: str) -> Path:
    found = sorted(LESSONS_DIR.glob(f"{prefix}_*.ipynb"))
    assert found, f"no lesson {prefix}_*.ipynb in {LESSONS_DIR}"
    return found[0]


#: the open notebook's kernel is started, connected and idle (Run All before that is silently dropped)
JS_KERNEL_READY = """name => {
  const widget = window.jupyterapp?.shell?.currentWidget;
  const ctx = widget?.sessionContext;
  if (widget?.context?.path !== name) return false;
  const kernel = ctx?.session?.kernel;
  return !!(ctx && ctx.isReady && kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle');
}"""


def run_all_cells(page) -> None:
    """Run > Run All Cells, then wait until every non-empty code cell has run and the kernel is idle."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(
        f"() => {{ const s = ({JS_PROMPTS})(); return s.busy === 0 && s.done > 0; }}",
        timeout=300_000, polling=1000)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']") \
        .wait_for(state="attached", timeout=TIMEOUT_MS)


@pytest.mark.parametrize("prefix", ["01", "02"])
def test_lesson_runs_and_slider_updates_plot(prefix, jupyter_lab, browser, artifacts_dir, repo_root):
    lesson = lesson_path(prefix)
    url, token = jupyter_lab
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console_errors: list[str] = []
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    shot = artifacts_dir / f"browser_{lesson.stem}"
    try:
        # a workspace of its own per lesson, so no tab of an earlier test is restored
        page.goto(f"{url}/lab/workspaces/{lesson.stem}/tree/{lesson.name}?token={token}&reset")
        page.wait_for_function(JS_KERNEL_READY, arg=lesson.name, polling=500)
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # more room for the notebook
        run_all_cells(page)
        page.screenshot(path=f"{shot}_1_ran.png")

        errors = page.evaluate(JS_ERRORS)
        assert not errors, f"{lesson.name}: cell raised:\n" + "\n---\n".join(errors)
        prompts = page.evaluate(JS_PROMPTS)
        assert prompts["todo"] == 0, f"{lesson.name}: Run All stopped early ({prompts}); a cell failed?"

        slider = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider").first
        slider.scroll_into_view_if_needed()
        readout = slider.locator(".widget-readout")
        handle = slider.locator(".noUi-handle").first
        plot_before, value_before = page.evaluate(JS_PLOT_STATE), readout.inner_text()
        assert plot_before, f"{lesson.name}: no plot rendered (plotly / image / canvas) after Run All"
        handle.click()
        handle.press("ArrowRight")
        if not text_changes(readout, value_before):  # already at its maximum: go the other way
            handle.press("ArrowLeft")
            handle.press("ArrowLeft")
        assert text_changes(readout, value_before), f"{lesson.name}: the slider did not move ({value_before})"
        value_after = readout.inner_text()
        try:
            page.wait_for_function(f"before => ({JS_PLOT_STATE})() !== before", arg=plot_before,
                                   timeout=60_000, polling=250)
        except playwright_sync.TimeoutError:
            pytest.fail(f"{lesson.name}: the plot did not change within 60 s of moving the slider "
                        f"from {value_before} to {value_after}")
        slider.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")  # code + widget in view
        page.mouse.move(5, 5)  # no hover label over the plot in the picture
        page.wait_for_timeout(1000)
        page.screenshot(path=f"{shot}_2_slider.png")
        errors = page.evaluate(JS_ERRORS)
        log_item = page.locator(".jp-LogConsoleStatusItem:not(.lm-mod-hidden)")
        if log_item.count():  # something was logged (a callback's traceback lands here): open the log and read it
            log_item.first.click()
            page.locator(".jp-LogConsolePanel").first.wait_for()
            page.wait_for_timeout(1000)
            errors += page.evaluate(JS_LOG_ERRORS)
            page.screenshot(path=f"{shot}_3_log.png")
        assert not errors, f"{lesson.name}: moving the slider raised:\n" + "\n---\n".join(errors)
        assert not console_errors, f"{lesson.name}: JavaScript errors in the page: {console_errors}"
        if prefix == "01" and os.environ.get("CECO_UPDATE_SCREENSHOT") == "1":
            (repo_root / "docs").mkdir(exist_ok=True)
            shutil.copyfile(f"{shot}_2_slider.png", repo_root / "docs" / "lesson1.png")
    except BaseException:  # pytest.fail raises a BaseException
        page.screenshot(path=f"{shot}_failed.png")
        raise
    finally:
        context.close()
