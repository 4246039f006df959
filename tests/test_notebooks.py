"""Every lesson runs top to bottom from a fresh kernel, in quick mode, without an error.

Quick mode is what a lesson does with its default ``parameters`` cell, so the
notebooks are executed exactly as committed. Each runs in a copy of ``lessons/``
(files a lesson writes never land in the repository) with real data found through
``CECO_DATA_DIR`` / :func:`data_utils.default_data_dir`. Wall times are recorded in
``test-artifacts/notebook_times.json``; executed copies (with outputs, for reading
after a failure) go to ``test-artifacts/executed/``.

Budget: ``CECO_NOTEBOOK_BUDGET_S`` seconds per lesson (default 120, the
requirement on a 2-core CPU), except lesson 5 with real CamVid: it trains two CamVid models
for 10 epochs each (``camvid-quick``, 40-100 s per model in one thread, depending on the CPU),
which is given :data:`CAMVID_BUDGET_S` (300 s: the slower of two CPUs measured needed 225 s;
the README quotes 1.5-3.5 min);
``CECO_NOTEBOOK_TIMEOUT_S`` per cell (default 300).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ceco_lite.engine.studies import dataset_status

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((REPO_ROOT / "lessons").glob("*.ipynb"))
CELL_TIMEOUT_S = int(os.environ.get("CECO_NOTEBOOK_TIMEOUT_S", "300"))
BUDGET_S = float(os.environ.get("CECO_NOTEBOOK_BUDGET_S", "120"))
#: lesson 5 when it finds CamVid: two 10-epoch CamVid runs on top of the synthetic ones
CAMVID_BUDGET_S = max(BUDGET_S, 300.0)

pytestmark = pytest.mark.notebooks


def execute_notebook(nb: nbformat.NotebookNode, workdir: Path, timeout: int = CELL_TIMEOUT_S) -> float:
    """Execute ``nb`` in place in a fresh kernel whose working directory is ``workdir``.

    Returns the wall time in seconds, kernel start included; raises
    :class:`nbclient.exceptions.CellExecutionError` at the first cell that fails
    (``nb`` then holds the outputs up to that cell).
    """
    kernel_name = nb.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def test_kernel_runs_this_environment():
    """The ``python3`` kernel the notebooks ask for starts this interpreter (the project's venv)."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    # jupyter_client replaces a bare "python"/"python3" by the running interpreter
    if exe not in {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}:
        assert Path(exe).resolve() == Path(sys.executable).resolve(), (
            f"kernelspec python3 at {spec.resource_dir} runs {exe}, not {sys.executable}; "
            "run `python -m ipykernel install --sys-prefix` in the project's environment"
        )


def test_runner_reports_outputs_and_errors(tmp_path):
    """The runner executes a parameters cell and later cells, and fails on a cell error."""
    ok = nbformat.v4.new_notebook()
    ok.cells = [
        nbformat.v4.new_code_cell("n = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os\nprint(sum(range(n)), os.getcwd())"),
    ]
    elapsed = execute_notebook(ok, tmp_path, timeout=60)
    text = ok.cells[1].outputs[0]["text"].split()
    assert text[0] == "3"
    assert Path(text[1]).resolve() == tmp_path.resolve()
    assert elapsed > 0

    bad = nbformat.v4.new_notebook()
    bad.cells = [nbformat.v4.new_code_cell("1 / 0"), nbformat.v4.new_code_cell("print('not reached')")]
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        execute_notebook(bad, tmp_path, timeout=60)
    assert bad.cells[0].outputs[0].output_type == "error"
    assert not bad.cells[1].get("outputs")


@pytest.mark.slow
@pytest.mark.timeout(CELL_TIMEOUT_S + 120)
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_quick_mode(lesson: Path, tmp_path, artifacts_dir, notebook_times):
    workdir = tmp_path / "lessons"
    shutil.copytree(lesson.parent, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs"))
    executed_dir = artifacts_dir / "executed"
    executed_dir.mkdir(exist_ok=True)
    nb = nbformat.read(workdir / lesson.name, as_version=4)
    try:
        elapsed = execute_notebook(nb, workdir)
    finally:  # keep what ran, outputs and traceback included, for reading after a failure
        nbformat.write(nb, executed_dir / lesson.name)
    notebook_times[lesson.name] = elapsed
    print(f"{lesson.name}: {elapsed:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{lesson.name} has error outputs: {[e.ename for e in errors]}"
    trains_camvid = lesson.name.startswith("05_") and dataset_status("camvid")[0]  # as camvid_comparison decides
    budget = CAMVID_BUDGET_S if trains_camvid else BUDGET_S
    assert elapsed <= budget, (
        f"{lesson.name} took {elapsed:.0f} s in quick mode; the budget is {budget:.0f} s on a 2-core CPU"
    )
