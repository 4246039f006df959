"""Lessons 3, 5 and 6 in quick mode, with and without real data: every verdict they print
agrees with its numbers, and no output describes a data set that was not loaded.

Each lesson is executed from a fresh kernel in a copy of ``lessons/`` (as in
tests/test_notebooks.py), once with ``CECO_DATA_DIR`` at the real data root (skipped when
it is absent) and once with ``CECO_DATA_DIR`` at an empty folder. Checked:

* every output carrying a verdict (``metadata[ceco_lite.verdicts.METADATA_KEY]``) holds
  (:func:`ceco_lite.verdicts.holds`), and each lesson prints at least one;
* without data, every output line that names CamVid, Cityscapes or CIFAR says that it was
  not found -- no table, sentence or caption describes data that were not loaded;
* with data, the lessons say which real data they used (CamVid's training split in
  lesson 3, the CamVid runs in lesson 5).

Wall times go to ``test-artifacts/notebook_times.json`` under ``<lesson> [<data>]``.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from ceco_lite.verdicts import METADATA_KEY, holds
from test_notebooks import CELL_TIMEOUT_S, execute_notebook

REPO_ROOT = Path(__file__).resolve().parent.parent
LESSONS = {"03": "03_imbalance_in_segmentation.ipynb", "05": "05_training_with_ceco.ipynb",
           "06": "06_beyond_ceco.ipynb"}
#: Names of the real data sets as the lessons write them.
DATASET_WORDS = re.compile(r"camvid|cityscapes|cifar", re.IGNORECASE)
#: What a line says when a data set is missing.
MISSING_WORDS = re.compile(r"not found|missing|no cityscapes|without", re.IGNORECASE)
#: With real data, what each lesson must say it used.
REAL_DATA_MARKERS = {"03": ("CamVid train", "Cityscapes sample"), "05": ("CamVid (preset 'camvid-quick')",), "06": ()}

#: Outputs that are figures or widgets, not text.
FIGURE_MIMES = {"application/vnd.jupyter.widget-view+json", "application/vnd.plotly.v1+json"}

pytestmark = pytest.mark.notebooks


def output_texts(output) -> list[str]:
    """The human-readable text of one output: stream text and text/* representations."""
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    data = output.get("data", {})
    return [data[m] if isinstance(data[m], str) else "".join(data[m])
            for m in ("text/plain", "text/markdown", "text/html") if m in data]


def verdicts_of(nb) -> list[dict]:
    return [o["metadata"][METADATA_KEY] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if METADATA_KEY in o.get("metadata", {})]


def unannounced_mentions(nb) -> list[str]:
    """Output lines naming a real data set without saying it is missing."""
    bad = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.get("outputs", []):
            if FIGURE_MIMES & set(o.get("data", {})):
                continue  # a figure or widget: its text is its data (the paper's rows included), not a sentence
            for text in output_texts(o):
                for line in text.splitlines():
                    if DATASET_WORDS.search(line) and not MISSING_WORDS.search(line):
                        bad.append(line.strip()[:200])
    return bad


def test_helpers_detect_bad_outputs():
    """The checks fail on an output that names an unloaded data set and on a false verdict."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("")]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="camvid data not found: get it\nCamVid train: IF 108\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": "x"},
                               metadata={METADATA_KEY: {"quantity": "q", "values": {"a": 1.0, "b": 2.0},
                                                        "relation": "greater", "subject": "a",
                                                        "tolerance": 0.0, "text": "a is above b"}}),
    ]
    assert unannounced_mentions(nb) == ["CamVid train: IF 108"]
    assert [holds(v) for v in verdicts_of(nb)] == [False]


@pytest.mark.slow
@pytest.mark.timeout(CELL_TIMEOUT_S + 300)
@pytest.mark.parametrize("data", ["real", "none"])
@pytest.mark.parametrize("lesson", sorted(LESSONS), ids=[f"lesson{k}" for k in sorted(LESSONS)])
def test_lesson_verdicts_and_data_text(lesson, data, tmp_path, monkeypatch, data_dir, artifacts_dir, notebook_times):
    if data == "real":
        if not (Path(data_dir) / "camvid").is_dir():
            pytest.skip("real data (CamVid) not found under the data root")
        monkeypatch.setenv("CECO_DATA_DIR", str(data_dir))
    else:
        empty = tmp_path / "no-data"
        empty.mkdir()
        monkeypatch.setenv("CECO_DATA_DIR", str(empty))
    name = LESSONS[lesson]
    workdir = tmp_path / "lessons"
    shutil.copytree(REPO_ROOT / "lessons", workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs"))
    nb = nbformat.read(workdir / name, as_version=4)
    executed = artifacts_dir / "executed"
    executed.mkdir(exist_ok=True)
    try:
        elapsed = execute_notebook(nb, workdir)  # the kernel inherits CECO_DATA_DIR
    finally:
        nbformat.write(nb, executed / f"{Path(name).stem}-{data}.ipynb")
    notebook_times[f"{name} [{data} data]"] = elapsed
    verdicts = verdicts_of(nb)
    assert verdicts, f"{name} printed no verdict"
    wrong = [v["text"] for v in verdicts if not holds(v)]
    assert not wrong, f"{name} ({data} data) printed verdicts that contradict their numbers: {wrong}"
    if data == "none":
        bad = unannounced_mentions(nb)
        assert not bad, f"{name} without data describes data that were not loaded: {bad}"
    else:
        text = "\n".join(t for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                         for t in output_texts(o))
        for marker in REAL_DATA_MARKERS[lesson]:
            assert marker in text, f"{name} with real data never says {marker!r}"
    print(f"{name} [{data} data]: {elapsed:.1f} s, {len(verdicts)} verdicts")
