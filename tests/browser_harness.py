"""JupyterLab in headless Chromium, driven by Playwright: the lessons as a student meets them.

Shared by ``tests/test_browser.py`` (does every lesson run and react without an
error?) and ``benchmarks/bench_browser.py`` (how long does a student wait?).

- :class:`JupyterLab` starts the server exactly as ``python3 scripts/quickstart.py
  lessons`` does (:func:`quickstart.lab_command`: its configuration and pre-save
  hook), on 127.0.0.1, token-less, on working copies made by
  :func:`quickstart.sync_lessons` (:func:`prepare_lessons`) -- the tracked
  ``lessons/`` are only read.
- :func:`chromium_context` opens Debian's Chromium (or ``CECO_CHROMIUM``) with a
  fresh user-data folder.
- :class:`LessonPage` opens one notebook, runs all cells, finds its controls in the
  DOM and moves them, timing each move from the input event to the plot changing.

Controls are found by their DOM, never by Python class names: ipywidgets sliders
(``.widget-slider``, ``.widget-hslider``, ``.widget-vslider``; selection sliders
included), toggle buttons, dropdowns / selects, checkboxes, radio buttons, buttons
and ``Play`` widgets. A control's *widget* is the output area it is displayed in;
its *views* are the plotly graphs (``.js-plotly-plot``), images, canvases and
``Output`` widgets in that area.

What counts as an error (:meth:`LessonPage.problems`): an error output or a
traceback on stderr in a cell; a traceback the kernel published outside any cell
(raised in a widget callback: JupyterLab shows it only in its log console) -- the
page listens to every kernel message, so nothing depends on opening the console;
a browser-console error or uncaught page exception; a traceback or ``[E`` line in
the server log (the kernel's own stderr lands there too); a plotly graph that holds
no trace in the browser (its figure's data never reached the page).

Busy sign convention: while a widget recomputes, an element inside it (usually the
widget's outer box, ``box.add_class("ceco-busy")``) carries the CSS class
:data:`BUSY_CLASS`; the class is removed when the update is done. A move records
when that class first appears and disappears.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.sign import NotebookNotary

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = REPO_ROOT / "lessons"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1440, "height": 1000}
#: CSS class a widget sets on one of its elements while it recomputes (see the module docstring)
BUSY_CLASS = "ceco-busy"
#: a slider track narrower than this (px) cannot be dragged with any precision
MIN_TRACK_PX = 40
#: quiet time (ms) with no kernel message and no change in the widget that ends a move
QUIET_MS = 500


def load_quickstart():
    """``scripts/quickstart.py`` as a module (standard library only; importing it has no side effects)."""
    spec = importlib.util.spec_from_file_location("quickstart", REPO_ROOT / "scripts" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_chromium() -> str | None:
    """The browser ``scripts/quickstart.py`` finds (or installed): ``CECO_CHROMIUM``, /usr/bin/chromium, PATH."""
    return load_quickstart().find_chromium()


def chromium_or_skip() -> str:
    """:func:`find_chromium`, or skip the calling test without a browser (fail it on CI, where ``CI`` is set)."""
    import pytest  # only the tests call this (the benchmarks have no pytest)

    path = find_chromium()
    if path is None:
        message = ("no Chromium: install it (sudo apt-get install chromium; `python3 scripts/quickstart.py test` "
                   "does this as root) or set CECO_CHROMIUM")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_lessons(root: Path, lessons: list[Path], *, one_folder: bool = False) -> dict[str, str]:
    """Working copies of the lessons under ``root``; returns ``{lesson file name: path relative to root}``.

    The copies are made by the lessons command's own :func:`quickstart.sync_lessons`.
    By default every lesson gets a folder of its own (``root/<stem>/``, a copy of the
    whole ``lessons/`` folder) so that no lesson finds runs cached by another: each
    starts as cold as for a student who opens it first. ``one_folder=True`` makes one
    copy (``root/``) that all lessons share, like a student working through them in order.
    """
    sync = load_quickstart().sync_lessons
    paths = {}
    for lesson in lessons:
        folder = root if one_folder else root / lesson.stem
        sync(lesson.parent, folder)
        paths[lesson.name] = (folder / lesson.name).relative_to(root).as_posix()
    return paths


class JupyterLab:
    """JupyterLab serving ``root`` on 127.0.0.1 (token-less), started like the lessons command.

    Jupyter's configuration, runtime and data folders are fresh ones under ``workdir``
    (no user settings, no news or update notifications). The server log, the kernels'
    stderr included, goes to ``workdir/server.log``. Use as a context manager.
    """

    def __init__(self, root: Path, workdir: Path, *, python: str = sys.executable, startup_timeout_s: float = 120):
        self.root, self.workdir = Path(root), Path(workdir)
        self.python, self.startup_timeout_s = python, startup_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        options = [
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",  # token-less API calls of the test on 127.0.0.1
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: kernel state and messages
        ]
        return [str(c) for c in load_quickstart().lab_command(self.python, self.root, options)]

    def __enter__(self) -> JupyterLab:
        config = self.workdir / "config"
        settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"checkForUpdates": False, "fetchNews": "false"}))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
                   JUPYTER_DATA_DIR=str(self.workdir / "data"))
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(self.command(), cwd=self.root, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            try:
                self.api("GET", "/api/status")
                return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError("JupyterLab did not start:\n" + self.log_text()[-3000:])
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def api(self, method: str, path: str, body=None, timeout_s: float = 30):
        """One REST call; returns the decoded JSON answer (``None`` when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read()
        return json.loads(text) if text else None

    def trust(self, path: str) -> None:
        """Sign the notebook ``root/path`` with this server's key, as JupyterLab does when it saves one.

        JupyterLab renders widget views only in trusted notebooks, so a notebook written
        behind the server's back must be signed to be shown as a student's saved file would be.
        """
        notebook = nbformat.read(self.root / path, as_version=4)
        NotebookNotary(data_dir=str(self.workdir / "data")).sign(notebook)

    def shutdown_kernels(self) -> None:
        """End every session and its kernel (a lesson reopened afterwards starts a fresh one)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def log_text(self, since: int = 0) -> str:
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    def log_problems(self, since: int = 0) -> list[str]:
        """Tracebacks and ``[E`` (error) lines written to the server log after offset ``since``."""
        problems, lines = [], self.log_text(since).splitlines()
        for i, line in enumerate(lines):
            if line.startswith("[E ") or "Traceback (most recent call last)" in line:
                problems.append("\n".join(lines[i:i + 30]))
        return problems


@contextlib.contextmanager
def chromium_context(executable: str, *, viewport: dict = VIEWPORT):
    """A headless Chromium browser context with a fresh user-data folder (removed afterwards)."""
    from playwright.sync_api import sync_playwright  # optional (test extra): only the browser needs it

    user_data = tempfile.mkdtemp(prefix="ceco-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                user_data, executable_path=executable, headless=True, args=CHROMIUM_ARGS, viewport=viewport)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


# --- JavaScript run in the page ----------------------------------------------------------

#: ``window.cecoHarness``: kernel-message recorder, control finder and per-move recorder
HARNESS_JS = r"""
() => {
  if (window.cecoHarness) return;
  const CONTROL = '.widget-play, .widget-toggle-buttons, .widget-toggle-button, .widget-dropdown, .widget-select, '
    + '.widget-select-multiple, .widget-checkbox, .widget-radio-box, .widget-button, .widget-slider, '
    + '.widget-hslider, .widget-vslider';
  const VIEW = '.js-plotly-plot, .widget-image, .widget-output, img, canvas';
  const BUSY = '.__BUSY__';
  const TRACE = /Traceback \(most recent call last\)|^\w*(Error|Exception)\b:/m;
  const ansi = s => String(s).replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  const H = window.cecoHarness = {
    panel: null, kernel: null, lastMessage: 0, kernelErrors: [], runAll: null, armed: null, during: 'opening',
    install() {
      H.panel = window.jupyterapp.shell.currentWidget;
      const hook = () => {
        const kernel = H.panel.sessionContext.session?.kernel;
        if (!kernel || kernel === H.kernel) return;
        H.kernel = kernel;
        kernel.anyMessage.connect((_, args) => H.onMessage(args.msg, args.direction));
      };
      hook();
      H.panel.sessionContext.kernelChanged.connect(hook);
      H.lastMessage = performance.now();
    },
    onMessage(msg, direction) {
      const now = performance.now(), type = msg.header.msg_type, parent = msg.parent_header?.msg_type || '';
      H.lastMessage = now;
      const rec = H.armed?.rec;
      if (rec && rec.input !== null) {  // where the time of a move goes
        if (direction === 'send' && rec.sent === null) rec.sent = now;
        if (direction === 'recv' && rec.sent !== null) {
          if (type === 'status' && msg.content.execution_state === 'busy' && rec.kernelBusy === null) rec.kernelBusy = now;
          if (type === 'comm_msg' && rec.kernelReply === null) rec.kernelReply = now;
          if (type === 'status' && msg.content.execution_state === 'idle') rec.kernelIdle = now;
        }
      }
      const run = H.runAll;
      if (run && direction === 'send' && type === 'execute_request') run.requests++;
      if (run && direction === 'recv' && type === 'execute_reply') {
        run.replies++; run.lastReply = now;
        if (msg.content.status !== 'ok' && run.failed === null) run.failed = msg.content.status;
      }
      if (direction !== 'recv' || msg.channel !== 'iopub') return;
      let text = null;
      if (type === 'error') text = ansi((msg.content.traceback || []).join('\n')) || `${msg.content.ename}: ${msg.content.evalue}`;
      else if (type === 'stream' && msg.content.name === 'stderr' && TRACE.test(ansi(msg.content.text))) text = ansi(msg.content.text);
      if (text !== null) H.kernelErrors.push({parent, text, during: H.during});
    },
    kernelReady(path) {
      const w = window.jupyterapp?.shell?.currentWidget, ctx = w?.sessionContext, k = ctx?.session?.kernel;
      return w?.context?.path === path && !!ctx?.isReady && !!k && k.connectionStatus === 'connected' && k.status === 'idle';
    },
    startRunAll() {
      H.runAll = {t0: performance.now(), requests: 0, replies: 0, lastReply: null, failed: null};
      H.during = 'Run All';
      window.jupyterapp.commands.execute('notebook:run-all-cells');
    },
    runAllDone(quietMs) {
      // JupyterLab sends one execute request after another and renders the markdown cells in between: on a
      // busy machine that pause can outlast quietMs, so Run All is done only when every code cell has run
      // (or a reply was not ok, which stops Run All).
      const r = H.runAll, now = performance.now();
      const pending = H.panel.content.widgets.some(c => c.model.type === 'code'
        && c.model.sharedModel.getSource().trim() && c.model.executionCount == null);
      return r.requests > 0 && r.replies >= r.requests && (r.failed !== null || !pending)
        && H.kernel.status === 'idle' && now - H.lastMessage >= quietMs;
    },
    cells() {
      const out = [];
      H.panel.content.widgets.forEach((cell, index) => {
        if (cell.model.type !== 'code') return;
        const errors = [];
        for (const o of cell.model.outputs.toJSON()) {
          if (o.output_type === 'error') errors.push(ansi((o.traceback || []).join('\n')) || `${o.ename}: ${o.evalue}`);
          else if (o.output_type === 'stream' && o.name === 'stderr') {
            const text = ansi(Array.isArray(o.text) ? o.text.join('') : o.text);
            if (TRACE.test(text)) errors.push(text);
          }
        }
        out.push({index, count: cell.model.executionCount, empty: !cell.model.sharedModel.getSource().trim(), errors});
      });
      return out;
    },
    controls() {
      const nb = H.panel.node, cells = [...nb.querySelectorAll('.jp-Cell')];
      const areas = [...nb.querySelectorAll('.jp-OutputArea-output')];
      const found = [];
      for (const el of nb.querySelectorAll(CONTROL)) {
        if (el.parentElement.closest(CONTROL)) continue;  // a part of a control (a Play button, one toggle)
        const c = el.classList;
        const kind = c.contains('widget-play') ? 'play' : c.contains('widget-toggle-buttons') ? 'toggle-buttons'
          : c.contains('widget-toggle-button') ? 'toggle' : c.contains('widget-checkbox') ? 'checkbox'
          : c.contains('widget-radio-box') ? 'radio' : c.contains('widget-button') ? 'button'
          : (c.contains('widget-dropdown') || c.contains('widget-select') || c.contains('widget-select-multiple')) ? 'select'
          : 'slider';
        const id = found.length;
        el.setAttribute('data-ceco-control', String(id));
        const area = el.closest('.jp-OutputArea-output');
        let label = (el.querySelector(':scope > .widget-label')?.textContent || '').trim();
        if (!label) label = (el.textContent || el.getAttribute('title') || '').trim() || kind;
        let trackPx = null;
        if (kind === 'slider') {
          el.scrollIntoView({block: 'center'});
          const track = el.querySelector('.slider-container') || el.querySelector('.noUi-target');
          const box = track ? track.getBoundingClientRect() : null;
          trackPx = box ? Math.round(c.contains('widget-vslider') ? box.height : box.width) : 0;
        }
        found.push({id, kind, label: label.slice(0, 60), cell: cells.indexOf(el.closest('.jp-Cell')),
                    widget: areas.indexOf(area), vertical: c.contains('widget-vslider'), trackPx,
                    views: area ? area.querySelectorAll(VIEW).length : 0});
      }
      return found;
    },
    arm(id, name) {
      H.during = `moving ${name}`;
      const el = document.querySelector(`[data-ceco-control="${id}"]`);
      const root = el.closest('.jp-OutputArea-output') || el.closest('.jp-Cell');
      const rec = {input: null, first: null, last: null, busyOn: null, busyOff: null, changes: 0,
                   sent: null, kernelBusy: null, kernelReply: null, kernelIdle: null};
      const now = () => performance.now();
      const isView = node => {
        const e = node.nodeType === 1 ? node : node.parentElement;
        return !!e && !!e.closest(VIEW) && !e.closest(CONTROL);
      };
      const mark = () => { if (rec.input === null) return; const t = now(); if (rec.first === null) rec.first = t; rec.last = t; rec.changes++; };
      const busy = () => {
        if (rec.input === null) return;
        const on = root.matches(BUSY) || !!root.querySelector(BUSY);
        if (on && rec.busyOn === null) rec.busyOn = now();
        if (!on && rec.busyOn !== null && rec.busyOff === null) rec.busyOff = now();
      };
      const observer = new MutationObserver(list => { if (list.some(m => isView(m.target))) mark(); busy(); });
      observer.observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
      const onInput = () => { if (rec.input === null) { rec.input = now(); busy(); } };
      const inputs = ['keydown', 'pointerdown', 'mousedown', 'input', 'change'];
      for (const type of inputs) el.addEventListener(type, onInput, {capture: true});
      // WebGL plots (3-D scenes) redraw without touching the DOM: plotly's own events say when
      const graphs = [...root.querySelectorAll('.js-plotly-plot')].filter(g => typeof g.on === 'function');
      const events = ['plotly_afterplot', 'plotly_restyle', 'plotly_relayout', 'plotly_update', 'plotly_redraw', 'plotly_animated'];
      for (const g of graphs) for (const ev of events) g.on(ev, mark);
      H.armed = {rec, stop() {
        observer.disconnect();
        for (const type of inputs) el.removeEventListener(type, onInput, {capture: true});
        for (const g of graphs) for (const ev of events) g.removeListener(ev, mark);
      }};
    },
    blankPlots() {  // cells holding a plotly graph without any trace (the figure's data never arrived)
      const cells = [...H.panel.node.querySelectorAll('.jp-Cell')];
      return [...H.panel.node.querySelectorAll('.js-plotly-plot')]
        .filter(g => !Array.isArray(g.data) || g.data.length === 0).map(g => cells.indexOf(g.closest('.jp-Cell')));
    },
    quiet(quietMs) {
      const t = performance.now(), rec = H.armed?.rec;
      const lastChange = Math.max(H.lastMessage, rec?.last ?? 0, rec?.input ?? 0);
      return H.kernel.status === 'idle' && t - lastChange >= quietMs;
    },
    disarm() { const a = H.armed; H.armed = null; if (!a) return null; a.stop(); return a.rec; },
  };
}
""".replace("__BUSY__", BUSY_CLASS)


# --- results -----------------------------------------------------------------------------


@dataclass
class RunAll:
    """Run > Run All Cells: wall time from the command to the last cell's reply, and what ran."""
    seconds: float
    code_cells: int
    executed: int
    failed: str | None  # status of the first reply that was not "ok" ("error", "aborted"), else None

    @property
    def complete(self) -> bool:
        return self.failed is None and self.executed == self.code_cells


@dataclass
class Control:
    """One control found in the notebook's DOM (see :meth:`LessonPage.controls`)."""
    id: int
    kind: str
    label: str
    cell: int
    widget: int
    vertical: bool
    track_px: int | None
    views: int

    @property
    def name(self) -> str:
        return f"cell {self.cell} {self.kind} '{self.label}'"


@dataclass
class Move:
    """One move of a control, times in ms from the input event (``None``: did not happen)."""
    changed: bool  # the control's value changed (sliders, toggles, selects; always True for buttons)
    first_ms: float | None  # the widget's plot first changed
    done_ms: float | None  # its last change before the widget went quiet
    busy_ms: float | None  # the busy class appeared
    busy_off_ms: float | None  # and disappeared
    kernel_ms: float | None  # the kernel went idle again (last time before the move ended)
    settle_s: float  # wall time until kernel and widget were quiet


@dataclass
class ControlStats:
    control: Control
    moves: list[Move] = field(default_factory=list)

    def latencies(self, which: str = "done") -> list[float]:
        return [getattr(m, f"{which}_ms") for m in self.moves if getattr(m, f"{which}_ms") is not None]


def median_p90(values: list[float]) -> tuple[float | None, float | None]:
    """Median and 90th percentile (inclusive method); ``(None, None)`` for no values."""
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=10, method="inclusive")[8]


# --- one lesson in the browser ---------------------------------------------------------------


class LessonPage:
    """One notebook opened in JupyterLab in its own page and workspace.

    Parameters
    ----------
    context : playwright BrowserContext
    lab : JupyterLab
    path : str
        The notebook's path relative to the server root.
    timeout_s : float
        Limit for opening (kernel ready) and for each wait on the kernel.
    """

    def __init__(self, context, lab: JupyterLab, path: str, *, timeout_s: float = 300):
        self.context, self.lab, self.path, self.timeout_s = context, lab, path, timeout_s
        self.page = None
        self.console_errors: list[str] = []
        self.log_start = lab.log_offset()
        self._upward: dict[int, bool] = {}  # sliders: sweeping up (True) or down

    # opening and running ------------------------------------------------------------------

    def open(self) -> float:
        """Open the notebook, wait for its kernel to be idle; returns seconds from navigation to that."""
        page = self.page = self.context.new_page()
        page.set_default_timeout(self.timeout_s * 1000)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught exception: {exc}"))
        workspace = f"ceco-{uuid.uuid4().hex[:8]}"  # no tab of another page is restored
        start = time.perf_counter()
        page.goto(f"{self.lab.url}/lab/workspaces/{workspace}/tree/{self.path}?reset")
        page.evaluate(HARNESS_JS)
        page.wait_for_function("path => window.cecoHarness.kernelReady(path)", arg=self.path, polling=250)
        seconds = time.perf_counter() - start
        page.evaluate("() => { window.cecoHarness.install(); window.jupyterapp.shell.collapseLeft(); }")
        return seconds

    def _on_console(self, message) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            self.console_errors.append(f"console error: {message.text}" + (f" ({where})" if where else ""))

    def run_all(self, *, quiet_ms: int = 1000, timeout_s: float = 900) -> RunAll:
        """Run > Run All Cells and wait (up to ``timeout_s``) for every reply with the kernel idle and quiet."""
        self.page.evaluate("() => window.cecoHarness.startRunAll()")
        self.page.wait_for_function("ms => window.cecoHarness.runAllDone(ms)", arg=quiet_ms, polling=250,
                                    timeout=timeout_s * 1000)
        run = self.page.evaluate("() => window.cecoHarness.runAll")
        cells = [c for c in self.page.evaluate("() => window.cecoHarness.cells()") if not c["empty"]]
        return RunAll(seconds=(run["lastReply"] - run["t0"]) / 1000, code_cells=len(cells),
                      executed=sum(c["count"] is not None for c in cells), failed=run["failed"])

    # controls -----------------------------------------------------------------------------

    def controls(self) -> list[Control]:
        """Every enabled-or-not control of the notebook, in document order (DOM based)."""
        return [Control(id=c["id"], kind=c["kind"], label=c["label"], cell=c["cell"], widget=c["widget"],
                        vertical=c["vertical"], track_px=c["trackPx"], views=c["views"])
                for c in self.page.evaluate("() => window.cecoHarness.controls()")]

    def locator(self, control: Control):
        return self.page.locator(f'[data-ceco-control="{control.id}"]')

    def _state(self, control: Control):
        """The control's current value as the DOM shows it (to tell whether a move took)."""
        return self.locator(control).evaluate("""el => {
          const h = el.querySelector('.noUi-handle');
          const readout = el.querySelector('.widget-readout');
          if (h) return [h.getAttribute('aria-valuenow'), h.getAttribute('aria-valuetext'),
                         readout ? (readout.value ?? readout.textContent) : ''].join('|');
          const s = el.querySelector('select'); if (s) return s.selectedIndex;
          const active = [...el.querySelectorAll('button')].findIndex(b => b.classList.contains('mod-active'));
          if (el.classList.contains('widget-toggle-buttons')) return active;
          if (el.classList.contains('widget-toggle-button')) return el.classList.contains('mod-active');
          const inputs = [...el.querySelectorAll('input')];
          return inputs.map(i => i.checked).join(',');
        }""")

    def _act(self, control: Control) -> None:
        """The input of one move: a key press, a click or a selection."""
        loc = self.locator(control)
        loc.scroll_into_view_if_needed()
        if control.kind == "slider":
            handle = loc.locator(".noUi-handle").first
            now, low, high = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax"))
            # sweep up to the maximum, then down to the minimum, and so on
            up = self._upward.get(control.id, True)
            if (up and now >= high) or (not up and now <= low):
                up = not up
            self._upward[control.id] = up
            key = ("ArrowUp" if up else "ArrowDown") if control.vertical else ("ArrowRight" if up else "ArrowLeft")
            handle.press(key)
        elif control.kind == "toggle-buttons":
            buttons = loc.locator("button")
            active = loc.evaluate("el => [...el.querySelectorAll('button')].findIndex(b => b.classList.contains('mod-active'))")
            buttons.nth((active + 1) % buttons.count()).click()
        elif control.kind == "select":
            select = loc.locator("select")
            count = select.evaluate("s => s.options.length")
            select.select_option(index=(select.evaluate("s => s.selectedIndex") + 1) % max(count, 1))
        elif control.kind == "radio":
            inputs = loc.locator("input")
            checked = loc.evaluate("el => [...el.querySelectorAll('input')].findIndex(i => i.checked)")
            inputs.nth((checked + 1) % inputs.count()).click()
        elif control.kind == "checkbox":
            loc.locator("input").click()
        elif control.kind == "play":
            loc.locator("button").first.click()  # play (pause, stop and repeat follow it)
        else:  # button, toggle
            loc.click()

    def move(self, control: Control, *, quiet_ms: int = QUIET_MS) -> Move:
        """One move of ``control``, timed from its input event until kernel and widget are quiet."""
        before = self._state(control)
        self.page.evaluate("([id, name]) => window.cecoHarness.arm(id, name)", [control.id, control.name])
        start = time.perf_counter()
        try:
            self._act(control)
            self.page.wait_for_function("ms => window.cecoHarness.quiet(ms)", arg=quiet_ms, polling=50)
        finally:
            rec = self.page.evaluate("() => window.cecoHarness.disarm()")
        settle = time.perf_counter() - start
        changed = control.kind in ("button", "play") or self._state(control) != before

        def since(t):
            return None if t is None or rec["input"] is None else round(t - rec["input"], 1)

        return Move(changed=changed, first_ms=since(rec["first"]), done_ms=since(rec["last"]),
                    busy_ms=since(rec["busyOn"]), busy_off_ms=since(rec["busyOff"]),
                    kernel_ms=since(rec["kernelIdle"]), settle_s=settle)

    # checks -----------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Everything that went wrong so far (see the module docstring), one message each."""
        out = []
        for cell in self.page.evaluate("() => window.cecoHarness.cells()"):
            out += [f"cell {cell['index']} has an error output:\n{text.strip()}" for text in cell["errors"]]
        for err in self.page.evaluate("() => window.cecoHarness.kernelErrors"):
            if err["parent"] != "execute_request":  # those are the cell errors above
                out.append(f"traceback outside any cell (JupyterLab's log console), {err['during']} "
                           f"(it came with a {err['parent'] or 'kernel'} message):\n{err['text'].strip()}")
        out += [f"cell {cell}: a plotly figure is blank in the browser (no trace reached it)"
                for cell in self.blank_plots()]
        out += list(self.console_errors)
        out += [f"server log:\n{text}" for text in self.lab.log_problems(self.log_start)]
        return out

    def logged_outside_cells(self) -> int:
        return sum(e["parent"] != "execute_request" for e in self.page.evaluate("() => window.cecoHarness.kernelErrors"))

    def open_log_console(self) -> str:
        """Open JupyterLab's log console (status-bar item) and return its text ('' when nothing was logged)."""
        item = self.page.locator(".jp-LogConsoleStatusItem:not(.lm-mod-hidden)")
        if not item.count():
            return ""
        item.first.click()
        panel = self.page.locator(".jp-LogConsolePanel").first
        panel.wait_for()
        self.page.wait_for_timeout(500)
        return panel.inner_text()

    def output_text(self) -> str:
        """Text of all rendered outputs of the notebook."""
        return self.page.evaluate(
            "() => [...window.cecoHarness.panel.node.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).join('\\n')")

    def screenshot_widgets(self, stem: Path) -> list[Path]:
        """One picture per widget output (its cell scrolled to the top), ``<stem>_w<n>.png``."""
        shots = []
        widget_areas = self.page.evaluate("""() => [...window.cecoHarness.panel.node.querySelectorAll('.jp-OutputArea-output')]
            .map((e, i) => e.querySelector('[data-ceco-control]') ? i : -1).filter(i => i >= 0)""")
        self.page.mouse.move(2, 2)  # no hover label over a plot
        for n, index in enumerate(widget_areas):
            self.page.evaluate("""i => [...window.cecoHarness.panel.node.querySelectorAll('.jp-OutputArea-output')][i]
                .closest('.jp-Cell').scrollIntoView({block: 'start'})""", index)
            self.page.wait_for_timeout(300)
            path = Path(f"{stem}_w{n + 1}.png")
            self.page.screenshot(path=str(path))
            shots.append(path)
        return shots

    def screenshot_cell(self, index: int, path: Path) -> Path:
        """A picture of the notebook with cell ``index`` scrolled to the top."""
        self.page.evaluate("i => window.cecoHarness.panel.node.querySelectorAll('.jp-Cell')[i]?.scrollIntoView({block: 'start'})",
                           index)
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(path))
        return Path(path)

    def blank_plots(self) -> list[int]:
        """Indices of the cells holding a plotly graph with no trace."""
        return self.page.evaluate("() => window.cecoHarness.blankPlots()")

    def save(self) -> None:
        """File > Save, and wait until the document is clean."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function("() => !window.cecoHarness.panel.context.model.dirty", polling=100)

    def close(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None
