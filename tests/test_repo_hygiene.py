"""The repository is in a state a new user and CI can rely on.

- Lessons are committed clean: no outputs, no execution counts, no widget state,
  exactly one ``parameters`` cell (the quick-mode defaults), the ``python3`` kernel.
- The README's two quick-start commands exist, ``.ci/run`` runs the test command
  verbatim, and ``scripts/quickstart.py`` needs nothing but the standard library.
- The README's lesson table, links and command lines match the files and the CLI;
  ``environment.yml`` mirrors ``pyproject.toml`` (and the exact pins of ``constraints.txt``);
  every benchmark is documented.
- No real data set files were copied into the repository.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
LESSONS = sorted((REPO_ROOT / "lessons").glob("*.ipynb"))
LESSONS_CMD = "python3 scripts/quickstart.py lessons"
TEST_CMD = "python3 scripts/quickstart.py test"


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def readme_code_lines() -> list[str]:
    """Lines inside fenced code blocks of the README, stripped."""
    lines, inside = [], False
    for line in readme_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line.strip())
    return lines


def repo_files() -> list[Path]:
    """Files that would be committed: tracked or untracked-but-not-ignored (git), else a walk."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO_ROOT, capture_output=True, check=True, timeout=30).stdout
        return [REPO_ROOT / p for p in out.decode().split("\0") if p and (REPO_ROOT / p).is_file()]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "test-artifacts", "__pycache__", ".pytest_cache", "build", "dist"}
        return [p for p in REPO_ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO_ROOT).parts)]


# --- lessons ----------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_is_committed_clean(lesson: Path):
    nb = nbformat.read(lesson, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{lesson.name}: cells {dirty} carry outputs or execution counts; clear them before committing"
    assert "widgets" not in nb.metadata, f"{lesson.name}: notebook metadata holds saved widget state"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{lesson.name}: kernel must be python3"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_has_one_parameters_cell(lesson: Path):
    nb = nbformat.read(lesson, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{lesson.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1"
    assert tagged[0].cell_type == "code" and tagged[0].source.strip(), "the parameters cell must be non-empty code"
    # committed defaults are quick mode: the cell assigns QUICK = True
    assigned = {t.id: node.value for node in ast.parse(tagged[0].source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert "QUICK" in assigned, f"{lesson.name}: the parameters cell does not set QUICK"
    assert isinstance(assigned["QUICK"], ast.Constant) and assigned["QUICK"].value is True, (
        f"{lesson.name}: the committed parameters cell must set QUICK = True (quick mode)")


# --- quick start and CI -----------------------------------------------------------------


def test_readme_has_the_two_quickstart_commands():
    code = readme_code_lines()
    assert LESSONS_CMD in code, f"README lacks the quick-start line `{LESSONS_CMD}` in a code block"
    assert TEST_CMD in code, f"README lacks the quick-start line `{TEST_CMD}` in a code block"
    assert any(line.startswith("git clone ") for line in code), "README quick start must show the git clone step"


def test_ci_runs_the_readme_test_command_verbatim():
    ci = REPO_ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    lines = [line.strip() for line in ci.read_text().splitlines()]
    assert lines[0].startswith("#!") and "bash" in lines[0]
    assert "set -euo pipefail" in lines
    commands = [line for line in lines if line and not line.startswith("#") and not line.startswith("set ")
                and not line.startswith("cd ")]
    assert commands == [TEST_CMD], f".ci/run must run exactly `{TEST_CMD}`, found {commands}"


def test_quickstart_uses_only_the_standard_library():
    path = REPO_ROOT / "scripts" / "quickstart.py"
    tree = ast.parse(path.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert modules, "found no imports: the parser is broken"
    outside = sorted(m for m in modules if m not in sys.stdlib_module_names and m != "__future__")
    assert not outside, f"scripts/quickstart.py imports non-standard modules {outside}"
    spec = importlib.util.spec_from_file_location("quickstart", path)
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)  # importing it has no side effects
    assert set(quickstart.COMMANDS) == {"lessons", "site", "test"}
    assert quickstart.REPO_ROOT == REPO_ROOT


# --- README matches the repository --------------------------------------------------------


def test_readme_lesson_table_matches_lessons():
    listed = set(re.findall(r"lessons/(\d\d_[\w-]+\.ipynb)", readme_text()))
    present = {p.name for p in LESSONS}
    assert listed == present, f"README lists {sorted(listed - present)} that do not exist and misses {sorted(present - listed)}"


def test_readme_local_links_exist():
    targets = re.findall(r"\]\(([^)\s]+)\)", readme_text())
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert local, "README links to no local file (the lesson screenshot at least)"
    missing = [t for t in local if not (REPO_ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_cli_lines_match_the_cli():
    """Every `python -m ceco_lite <command> --option` line of the README is accepted by the CLI."""
    wanted: dict[str, set[str]] = {}
    for line in readme_code_lines():
        match = re.search(r"-m ceco_lite (\w[\w-]*)(.*)", line)
        if match:
            wanted.setdefault(match.group(1), set()).update(re.findall(r"(--[\w-]+)", match.group(2)))
    assert wanted, "README shows no `python -m ceco_lite ...` command line"
    for command, options in sorted(wanted.items()):
        result = subprocess.run([sys.executable, "-m", "ceco_lite", command, "--help"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"`python -m ceco_lite {command} --help` failed:\n{result.stderr[-2000:]}"
        unknown = sorted(o for o in options if o not in result.stdout)
        assert not unknown, f"README uses {unknown} with `ceco_lite {command}`, which its --help does not list"


def test_benchmarks_are_documented():
    scripts = sorted(p.name for p in (REPO_ROOT / "benchmarks").glob("bench_*.py"))
    text = (REPO_ROOT / "benchmarks" / "README.md").read_text()
    missing = [s for s in scripts if s not in text]
    assert not missing, f"benchmarks/README.md does not describe {missing}"


def _requirement_name(requirement: str) -> str:
    return re.split(r"[=<>!\[ ;]", requirement, maxsplit=1)[0].lower()


def _expanded(project: dict, extra: str) -> list[str]:
    """Requirements of an extra with ``ceco-lite[other]`` self-references replaced by that extra's."""
    out = []
    for requirement in project["optional-dependencies"][extra]:
        match = re.fullmatch(r"ceco-lite\[([\w,-]+)\]", requirement.replace(" ", ""))
        if match:
            for other in match.group(1).split(","):
                out += _expanded(project, other)
        else:
            out.append(requirement)
    return out


def test_environment_yml_mirrors_pyproject():
    tomllib = pytest.importorskip("tomllib")
    yaml = pytest.importorskip("yaml")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = {}
    pip_lines: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_lines += dep.get("pip", [])
        else:
            name = re.split(r"[=<>! ]", dep, maxsplit=1)[0]
            conda[name] = dep
    rename = {"torch": "pytorch", "build": "python-build"}
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    for requirement in project["dependencies"] + _expanded(project, "test"):
        name = _requirement_name(requirement)
        conda_name = rename.get(name, name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (pyproject: {requirement})"
        assert name in pins, f"constraints.txt lacks an exact pin of {name} (pyproject: {requirement})"
        if "==" in conda[conda_name]:  # exact conda pins (torch/torchvision) are those of constraints.txt
            assert conda[conda_name].split("==")[1] == pins[name], f"{conda[conda_name]} vs constraints {pins[name]}"
    assert "==" not in " ".join(project["dependencies"]), "the library declares ranges; exact pins go to constraints.txt"
    assert "python>=3.10" in conda.get("python", "").replace(" ", "")
    assert "-e .[test]" in pip_lines, "environment.yml must install the project with pip: -e .[test]"


# --- no data in the repository --------------------------------------------------------------

DATA_PATTERNS = re.compile(r"(_leftImg8bit\.png|_gtFine_\w+\.png|data_batch_\d|test_batch|cifar-10[0]?-(batches-)?py)")


def test_no_dataset_files_or_large_files_in_repo():
    files = repo_files()
    assert any(p.name == "pyproject.toml" for p in files), "file listing is broken"
    data = [str(p.relative_to(REPO_ROOT)) for p in files if DATA_PATTERNS.search(str(p))]
    assert not data, f"real data set files must not be in the repository: {data[:10]}"
    large = [f"{p.relative_to(REPO_ROOT)} ({p.stat().st_size / 1e6:.1f} MB)" for p in files
             if p.stat().st_size > 2_000_000]
    assert not large, f"files over 2 MB in the repository: {large}"
