"""Fixtures shared by the whole test suite.

- ``repo_root``: the repository checkout (a :class:`pathlib.Path`).
- ``data_dir`` / ``cityscapes_dir`` / ``cifar_dir``: the real data root found by
  :func:`data_utils.default_data_dir` (``CECO_DATA_DIR``, else ``<repo>/../shared/data``)
  and its sub-folders; tests that use them are skipped when the data is absent.
- ``run_dir``: an empty per-test directory for checkpoints, logs and caches.
- ``artifacts_dir``: ``<repo>/test-artifacts/`` (git-ignored), kept after the run for
  screenshots, executed notebooks and timings.
- ``notebook_times``: a session dict ``{notebook name: seconds}``; whatever tests put
  there is written to ``test-artifacts/notebook_times.json`` and printed in the summary.

``JUPYTER_PATH`` is prefixed with this environment's ``share/jupyter`` so notebook
kernels run this interpreter. PyTorch is limited to ``CECO_TEST_THREADS`` threads (default 2) for the whole session,
so tests behave the same on a laptop and on the 2-core CI machine.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
_NOTEBOOK_TIMES: dict[str, float] = {}


def pytest_configure(config):
    # Notebooks and JupyterLab started by the tests use this environment's ``python3``
    # kernel, ahead of any kernelspec of that name in the user's own Jupyter folders.
    venv_data = str(Path(sys.prefix) / "share" / "jupyter")
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if venv_data not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([venv_data, *paths])


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    """Cap PyTorch's intra-op threads for the session (``CECO_TEST_THREADS``, default 2)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(os.environ.get("CECO_TEST_THREADS", "2"))))
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Real data root (``CECO_DATA_DIR`` or ``<repo>/../shared/data``); skips when there is none."""
    from data_utils import default_data_dir

    root = default_data_dir()
    if root is None:
        pytest.skip("no real data found: set CECO_DATA_DIR to a folder holding cityscapes/ and/or cifar/")
    return root


@pytest.fixture(scope="session")
def cityscapes_dir(data_dir: Path) -> Path:
    """``<data_dir>/cityscapes`` in the official layout (leftImg8bit/, gtFine/); skips when absent."""
    path = data_dir / "cityscapes"
    if not (path / "leftImg8bit").is_dir() or not (path / "gtFine").is_dir():
        pytest.skip(f"no Cityscapes data under {path}")
    return path


@pytest.fixture(scope="session")
def cifar_dir(data_dir: Path) -> Path:
    """``<data_dir>/cifar`` holding ``cifar-10-batches-py/`` and/or ``cifar-100-python/``; skips when absent."""
    path = data_dir / "cifar"
    if not path.is_dir():
        pytest.skip(f"no CIFAR data under {path}")
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh, empty directory for one test's run outputs (checkpoints, logs, caches)."""
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``<repo>/test-artifacts/`` (git-ignored): files kept after the session for people to look at."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def notebook_times() -> dict[str, float]:
    return _NOTEBOOK_TIMES


def pytest_sessionfinish(session, exitstatus):
    if not _NOTEBOOK_TIMES:
        return
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    path = ARTIFACTS_DIR / "notebook_times.json"
    try:
        times = json.loads(path.read_text())
    except (OSError, ValueError):
        times = {}
    times.update({name: round(sec, 1) for name, sec in _NOTEBOOK_TIMES.items()})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(times.items())), indent=2) + "\n")
    os.replace(tmp, path)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _NOTEBOOK_TIMES:
        return
    terminalreporter.section("lesson notebook wall times (fresh kernel, quick mode)")
    for name, seconds in sorted(_NOTEBOOK_TIMES.items()):
        terminalreporter.write_line(f"{name:45s} {seconds:7.1f} s")
