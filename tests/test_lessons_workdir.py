"""``python3 scripts/quickstart.py lessons`` never changes the tracked lessons.

The command opens working copies in the git-ignored ``.lessons-work/``
(:func:`quickstart.sync_lessons`) with a JupyterLab whose pre-save hook
(``scripts/jupyter_lessons_config.py``) drops widget views and widget state, so a
saved lesson reopens without "widget model not found". Here: the copy and update
rules, and a save through a running server started the way the command starts it.
"""
from __future__ import annotations

import json
import subprocess
import sys

import browser_harness as bh
import nbformat
import pytest

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def quickstart():
    return bh.load_quickstart()


def tracked_digests() -> dict[str, str]:
    return {p.name: bh.file_digest(p) for p in sorted(bh.LESSONS_DIR.glob("*.ipynb"))}


def write_lesson(path, sources, outputs=()):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    nb.cells[0].outputs = list(outputs)
    nbformat.write(nb, path)


def test_the_working_folder_is_ignored_by_git(quickstart, repo_root):
    probe = quickstart.LESSONS_WORK_DIR.relative_to(repo_root) / "01_simplex_etf.ipynb"
    result = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=repo_root, check=False)
    assert result.returncode == 0, f"{probe} is not git-ignored: a student's run would show up in git status"


def test_lessons_command_serves_the_working_copy_with_the_hook(quickstart):
    cmd = [str(c) for c in quickstart.lab_command("python", quickstart.LESSONS_WORK_DIR, ["--port", "8899"])]
    assert cmd[:4] == ["python", "-m", "jupyter", "lab"]
    assert f"--config={quickstart.LESSONS_JUPYTER_CONFIG}" in cmd and quickstart.LESSONS_JUPYTER_CONFIG.is_file()
    assert str(quickstart.LESSONS_WORK_DIR) in cmd and str(bh.LESSONS_DIR) not in cmd
    assert cmd[-2:] == ["--port", "8899"]  # the student's options come last and win


def test_sync_copies_once_and_only_reads_the_source(quickstart, tmp_path):
    source, work = tmp_path / "lessons", tmp_path / "work"
    source.mkdir()
    write_lesson(source / "01_a.ipynb", ["x = 1"])
    write_lesson(source / "02_b.ipynb", ["y = 2"])
    (source / "runs").mkdir()
    (source / "runs" / "cache.json").write_text("{}")  # outputs of running a lesson are not copied
    before = {p.name: bh.file_digest(p) for p in source.glob("*.ipynb")}
    assert quickstart.sync_lessons(source, work) == ["copied 01_a.ipynb", "copied 02_b.ipynb"]
    assert quickstart.sync_lessons(source, work) == []
    assert not (work / "runs").exists()
    assert {p.name: bh.file_digest(p) for p in source.glob("*.ipynb")} == before
    assert bh.file_digest(work / "01_a.ipynb") == before["01_a.ipynb"]


def test_sync_updates_a_copy_that_was_only_run_and_keeps_an_edited_one(quickstart, tmp_path):
    source, work = tmp_path / "lessons", tmp_path / "work"
    source.mkdir()
    write_lesson(source / "01_a.ipynb", ["x = 1"])
    write_lesson(source / "02_b.ipynb", ["y = 2"])
    quickstart.sync_lessons(source, work)
    # the student runs lesson 1 and saves it (outputs only), and edits lesson 2's code
    write_lesson(work / "01_a.ipynb", ["x = 1"], [nbformat.v4.new_output("stream", text="1\n")])
    write_lesson(work / "02_b.ipynb", ["y = 20  # my change"])
    assert quickstart.sync_lessons(source, work) == []  # nothing new upstream: nothing touched
    # a new version of both lessons arrives (git pull)
    write_lesson(source / "01_a.ipynb", ["x = 1", "print(x)"])
    write_lesson(source / "02_b.ipynb", ["y = 2", "print(y)"])
    assert quickstart.sync_lessons(source, work) == [
        "updated 01_a.ipynb", "kept your edited copy; the new version is 02_b.new.ipynb"]
    assert bh.file_digest(work / "01_a.ipynb") == bh.file_digest(source / "01_a.ipynb")
    assert "my change" in (work / "02_b.ipynb").read_text()
    assert bh.file_digest(work / "02_b.new.ipynb") == bh.file_digest(source / "02_b.ipynb")
    assert quickstart.sync_lessons(source, work) == []  # each update is reported once


def test_sync_never_overwrites_a_copy_of_unknown_origin(quickstart, tmp_path):
    source, work = tmp_path / "lessons", tmp_path / "work"
    source.mkdir()
    work.mkdir()
    write_lesson(source / "01_a.ipynb", ["x = 1"])
    write_lesson(work / "01_a.ipynb", ["x = 'mine'"])  # there before any record was kept
    assert quickstart.sync_lessons(source, work) == ["kept your edited copy; the new version is 01_a.new.ipynb"]
    assert "mine" in (work / "01_a.ipynb").read_text()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_saving_through_the_server_strips_widgets_and_leaves_lessons_untouched(tmp_path):
    tracked = tracked_digests()
    lesson = min(bh.LESSONS_DIR.glob("*.ipynb"))
    paths = bh.prepare_lessons(tmp_path / "root", [lesson], one_folder=True)
    with bh.JupyterLab(tmp_path / "root", tmp_path / "jupyter", python=sys.executable) as server:
        model = server.api("GET", f"/api/contents/{paths[lesson.name]}?content=1")
        nb = model["content"]
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        cell["execution_count"] = 1
        cell["outputs"] = [
            {"output_type": "stream", "name": "stdout", "text": "kept\n"},
            {"output_type": "display_data", "metadata": {},
             "data": {"text/plain": "VBox()", WIDGET_VIEW_MIME: {"model_id": "ab" * 16, "version_major": 2,
                                                                 "version_minor": 0}}},
        ]
        nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        server.api("PUT", f"/api/contents/{paths[lesson.name]}", {"type": "notebook", "format": "json", "content": nb})
    saved = json.loads((tmp_path / "root" / paths[lesson.name]).read_text(encoding="utf-8"))
    first = next(c for c in saved["cells"] if c["cell_type"] == "code")
    assert first["execution_count"] == 1 and [o["output_type"] for o in first["outputs"]] == ["stream"]
    assert "widgets" not in saved["metadata"]
    assert tracked_digests() == tracked
