"""ceco-lite installs as a library: the wheel and sdist build, and the wheel installed into a
clean virtual environment *without extras* -- beside an existing torch/torchvision, which pip
must keep -- runs the losses, the ETF and the statistics, has no notebook stack, and
``ceco_lite.widgets`` says in one line what to install.

torch and torchvision in the clean environment are the test environment's own pair
(``CECO_PACKAGING_TORCH=link``, the default): their installed files, metadata included, are
hard-linked into the new ``site-packages`` -- what a researcher's environment with its own
torch looks like, at no extra disk and in seconds. ``CECO_PACKAGING_TORCH=pip`` (also the
fallback when hard links are impossible) installs them with pip under ``constraints.txt``
instead (about 5.5 GB and a few minutes for the CUDA build). The phases' wall times are
written to ``test-artifacts/packaging_times.json``.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO_ROOT / "constraints.txt"
NOTEBOOK_STACK = ("jupyterlab", "plotly", "ipywidgets", "anywidget", "ipykernel", "notebook")
WIDGETS_MESSAGE = ("ImportError: ceco_lite.widgets needs the lessons extra (missing: plotly, ipywidgets, "
                   "anywidget): pip install 'ceco-lite[lessons]'")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

SMOKE = r"""
import importlib.util, json, sys
import torch
import ceco_lite
from ceco_lite import CenterCollapseLoss, DotRegressionLoss, nc_metrics, simplex_etf

g = torch.Generator().manual_seed(0)
W = simplex_etf(5, 8, generator=g)
loss_fn = CenterCollapseLoss(5, 8, generator=g)
z = torch.randn(2, 8, 4, 4, generator=g, requires_grad=True)
y = torch.randint(0, 5, (2, 16, 16), generator=g)
loss = loss_fn(z, y)
loss.backward()
h = torch.randn(30, 8, generator=g, requires_grad=True)
lab = torch.arange(30) % 5
dr = DotRegressionLoss(5, 8, etf=W)(h, lab)
dr.backward()
stats = nc_metrics(h.detach(), lab, 5, classifier=W)
print(json.dumps({
    "ceco_lite": ceco_lite.__file__,
    "torch": torch.__version__,
    "loss": float(loss.detach()),
    "grad_finite": bool(torch.isfinite(z.grad).all()) and float(z.grad.abs().sum()) > 0,
    "dr": float(dr.detach()),
    "etf_gram_ok": bool(torch.allclose(W.T @ W, (5 * torch.eye(5) - 1) / 4, atol=1e-5)),
    "nc1": stats["nc1"],
    "cdnv": stats["cdnv"],
    "found": {m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]},
}))
"""


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd, *, cwd, timeout=900, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_clean_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _venv_paths(venv: Path) -> tuple[Path, Path]:
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=venv).stdout.strip())
    return python, site


def _torch_closure() -> list[importlib.metadata.Distribution]:
    """The installed distributions of torch and torchvision and of everything they require here."""
    env = default_environment()
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = ["torch", "torchvision"]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _link_torch(site: Path) -> dict:
    """Hard-link torch, torchvision and their requirements' installed files into ``site``."""
    files = linked_bytes = 0
    for dist in _torch_closure():
        root = Path(dist.locate_file(""))
        for rel in dist.files or []:
            if str(rel).startswith(".."):  # console scripts outside site-packages
                continue
            src, dst = root / rel, site / rel
            if not src.is_file() or dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
            files += 1
            linked_bytes += src.stat().st_size
    return {"files": files, "linked_gb": round(linked_bytes / 1e9, 2)}


@pytest.fixture(scope="module")
def times(artifacts_dir):
    record: dict[str, float | str] = {}
    yield record
    path = artifacts_dir / "packaging_times.json"
    path.write_text(json.dumps(record, indent=2) + "\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory, times):
    """``python -m build`` (sdist, then the wheel from the sdist) of a copy of the sources."""
    pytest.importorskip("build", reason="the test extra installs 'build'")
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    for package in ("ceco_lite", "data_utils"):
        shutil.copytree(REPO_ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    start = time.perf_counter()
    _run([sys.executable, "-m", "build", "--outdir", tmp / "dist", src], cwd=tmp)
    times["build_s"] = round(time.perf_counter() - start, 1)
    wheels = sorted((tmp / "dist").glob("ceco_lite-*.whl"))
    sdists = sorted((tmp / "dist").glob("ceco_lite-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in (tmp / "dist").iterdir())
    return wheels[0], sdists[0]


def test_wheel_holds_the_packages_and_declares_ranges(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for module in ("ceco_lite/__init__.py", "ceco_lite/feature_hooks.py", "ceco_lite/dot_regression.py",
                   "ceco_lite/widgets/__init__.py", "data_utils/__init__.py"):
        assert module in names, module
    assert not any(n.startswith(("tests/", "lessons/", "benchmarks/")) for n in names)
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert any(r.replace(" ", "").startswith("torch<3,>=") or r.replace(" ", "").startswith("torch>=")
               for r in runtime), runtime
    assert not any("==" in r.split(";")[0] for r in runtime), f"runtime pins: {runtime}"
    heavy = [r for r in runtime if Requirement(r).name.lower() in NOTEBOOK_STACK]
    assert not heavy, f"the notebook stack must be an extra, not a runtime dependency: {heavy}"
    assert any(Requirement(r).name == "jupyterlab" and "lessons" in str(Requirement(r).marker) for r in requires)


@pytest.fixture(scope="module")
def clean_venv(built, tmp_path_factory, times):
    wheel, _ = built
    venv = tmp_path_factory.mktemp("venv") / "env"
    start = time.perf_counter()
    _run([sys.executable, "-m", "venv", venv], cwd=venv.parent)
    python, site = _venv_paths(venv)
    times["venv_s"] = round(time.perf_counter() - start, 1)
    import torch
    import torchvision

    pair = {"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0]}
    method = os.environ.get("CECO_PACKAGING_TORCH", "link")
    start = time.perf_counter()
    if method == "link":
        try:
            times.update(_link_torch(site))
        except OSError as exc:  # another file system: no hard links
            times["link_error"] = str(exc)
            method = "pip"
    if method == "pip":
        _run([python, "-m", "pip", "install", "--progress-bar", "off", f"torch=={pair['torch']}",
              f"torchvision=={pair['torchvision']}", "-c", CONSTRAINTS], cwd=venv.parent, timeout=1200)
    times["torch_method"] = method
    times["torch_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    result = _run([python, "-m", "pip", "install", "--progress-bar", "off", wheel, "-c", CONSTRAINTS],
                  cwd=venv.parent)
    times["install_wheel_s"] = round(time.perf_counter() - start, 1)
    yield python, pair, result.stdout
    shutil.rmtree(venv, ignore_errors=True)


def test_library_runs_without_the_extras_and_keeps_the_users_torch(clean_venv, tmp_path, times):
    python, pair, pip_log = clean_venv
    start = time.perf_counter()
    out = _run([python, "-c", SMOKE, *NOTEBOOK_STACK], cwd=tmp_path).stdout
    times["smoke_s"] = round(time.perf_counter() - start, 1)
    info = json.loads(out.strip().splitlines()[-1])
    assert "site-packages" in info["ceco_lite"] and str(REPO_ROOT) not in info["ceco_lite"]
    assert info["torch"].split("+")[0] == pair["torch"], "pip replaced the environment's torch"
    assert "Installing collected packages" in pip_log
    installed_line = next(line for line in pip_log.splitlines() if line.startswith("Successfully installed"))
    assert " torch-" not in installed_line and " torchvision-" not in installed_line, installed_line
    assert info["grad_finite"] and info["etf_gram_ok"]
    assert info["loss"] > 0 and info["dr"] > 0 and info["nc1"] > 0 and info["cdnv"] > 0
    assert not any(info["found"].values()), f"notebook stack installed without the extra: {info['found']}"


@pytest.mark.parametrize("statement", ["import ceco_lite.widgets", "from ceco_lite.widgets import ETFExplorer"])
def test_widgets_without_the_extra_say_what_to_install(clean_venv, tmp_path, statement):
    python, _, _ = clean_venv
    result = _run([python, "-c", statement], cwd=tmp_path, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == WIDGETS_MESSAGE
    assert "plotly" not in "".join(line for line in lines if line.lstrip().startswith("File ")), result.stderr
