"""Lessons 1, 2 and 4 in quick mode, with and without real data: every printed verdict holds, and no text
describes data that were not loaded.

Each lesson runs from a fresh kernel in a copy of ``lessons/`` (as in ``tests/test_notebooks.py``), once
with ``CECO_DATA_DIR`` pointing to the real data (skipped where it is absent) and once pointing to an empty
folder. Every output that carries a verdict (:data:`ceco_lite.verdicts.METADATA_KEY`) must satisfy
:func:`ceco_lite.verdicts.holds`; lesson 2's real-data part must say which data set it ran on, and only that.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from test_notebooks import CELL_TIMEOUT_S, execute_notebook

from ceco_lite.verdicts import METADATA_KEY, holds

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS = {n: REPO_ROOT / "lessons" / f for n, f in (
    ("01", "01_simplex_etf.ipynb"), ("02", "02_neural_and_minority_collapse.ipynb"), ("04", "04_gradient_flow.ipynb"))}

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def _run(lesson: Path, workdir: Path, data_dir: Path, monkeypatch) -> nbformat.NotebookNode:
    shutil.copytree(lesson.parent, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs"))
    monkeypatch.setenv("CECO_DATA_DIR", str(data_dir))  # the kernel inherits the environment
    nb = nbformat.read(workdir / lesson.name, as_version=4)
    elapsed = execute_notebook(nb, workdir)
    print(f"{lesson.name} (CECO_DATA_DIR={data_dir}): {elapsed:.1f} s")
    return nb


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _text(nb) -> str:
    parts = []
    for o in _outputs(nb):
        parts.append(o.get("text", ""))
        for mime in ("text/plain", "text/markdown", "text/html"):
            parts.append(str(o.get("data", {}).get(mime, "")))
    return "\n".join(parts)


def _verdicts(nb) -> list[dict]:
    return [o["metadata"][METADATA_KEY] for o in _outputs(nb) if METADATA_KEY in o.get("metadata", {})]


@pytest.mark.timeout(3 * CELL_TIMEOUT_S)
@pytest.mark.parametrize("data", ["real", "empty"])
@pytest.mark.parametrize("number", sorted(LESSONS))
def test_lesson_verdicts_hold(number, data, tmp_path, monkeypatch, request):
    empty = tmp_path / "no-data"
    empty.mkdir()
    if data == "real":
        root = request.getfixturevalue("data_dir")  # CECO_DATA_DIR or <repo>/../shared/data; skips when absent
        if not (root / "cifar").is_dir():
            pytest.skip(f"no cifar/ under the real data root {root}")
    nb = _run(LESSONS[number], tmp_path / "lessons", root if data == "real" else empty, monkeypatch)
    errors = [o for o in _outputs(nb) if o.output_type == "error"]
    assert not errors, [e.ename for e in errors]
    verdicts = _verdicts(nb)
    for v in verdicts:
        assert holds(v), v["text"]
        assert v["text"] in _text(nb)  # the sentence shown is the one checked
    text = _text(nb)
    assert "SPEC" not in text and "Traceback" not in text
    if number == "02":
        assert len(verdicts) >= 4  # R = 1000 cosines, correlation, head vs tail, best and worst class
        if data == "real":
            assert "CIFAR-10-LT (IF" in text and "synthetic segmentation" not in text
            assert any("class accuracy" in v["quantity"] for v in verdicts)
        else:
            assert "synthetic segmentation" in text and "CIFAR-10-LT (IF" not in text
            assert not any("accuracy" in v["quantity"] for v in verdicts)
            assert any("IoU" in v["quantity"] for v in verdicts)
    if number == "04":
        closed = [v for v in verdicts if v["quantity"] == "relative difference"]
        assert len(closed) == 2 and all(v["relation"] == "less" for v in closed)
