"""The GPU check of ceco-lite: everything that needs a CUDA GPU, in one run of about eight minutes.

Phases, in this order (each a subprocess with its own time limit inside an overall budget)::

    env         torch, CUDA and the GPU
    cuda_tests  every test the CPU suite skips for want of CUDA ("needs CUDA"; ``pytest -k cuda``)
    resume      exact resumption on the device: a run interrupted after its first epoch and resumed
                against uninterrupted runs, with deterministic algorithms and without
    overhead    CeCo step overhead on bare models, eager and compiled loss, interleaved
                (benchmarks/bench_train_step.py: small_seg, LR-ASPP, DeepLabV3-ResNet50)
    presets     time to result of cifar100-lt, camvid, cityscapes (benchmarks/bench_gpu_presets.py)
    lesson5     lesson 5's full-scale cell as written there (full_scale_plan + run_or_load, with
                its progress bars and the line it prints; the epochs done are reported if it
                runs out of time)

Results: ``$OUT/gpu_check.json`` (one entry per phase: status ``ok`` / ``failed`` / ``timeout`` /
``skipped``, seconds, results) and ``$OUT/gpu_check.log`` (everything printed); a short table
is printed last. ``OUT`` defaults to ``./gpu_check_out``.

Environment: ``DEVICE`` (``cuda``, default; ``cpu`` for the fallback), ``TINY=1`` (every phase
at a few-second size: the CPU fallback, about two minutes, same JSON keys), ``PHASES``
(comma-separated subset, e.g. to rerun two of them), ``BUDGET_S`` (overall seconds, default
500; a phase starts only with enough of it left and is stopped at its end), ``DATA_ROOT`` (real data for lesson 5 and the segmentation timings; default
``.gpu_data`` when it exists).

Usage::

    python scripts/gpu_check.py prepare [--data-root DIR]   # copy a small real-data subset to .gpu_data/
    python3 scripts/gpu_check.py                            # on the GPU machine
    PHASES=presets,resume BUDGET_S=270 python3 scripts/gpu_check.py
    DEVICE=cpu TINY=1 python scripts/gpu_check.py           # the CPU fallback

``prepare`` copies 8 training and 2 validation Cityscapes pairs and 32 + 8 CamVid pairs (about
35 MB) from the data root into ``.gpu_data/`` and makes git ignore that folder, so a copy of
the checkout that takes ignored folders along carries them to the GPU machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PHASES = ("env", "cuda_tests", "resume", "overhead", "presets", "lesson5")
#: (time limit in seconds on the GPU, the least worth starting with)
LIMITS = {"env": (60, 10), "cuda_tests": (120, 30), "resume": (120, 30), "overhead": (150, 40),
          "presets": (240, 60), "lesson5": (240, 40)}
#: Where lesson 5's run folder lives (read back when the phase runs out of time).
LESSON5_RUNS = Path(tempfile.gettempdir()) / "ceco_gpu_check_lesson5"
DATA_SUBSET = {"cityscapes": {"train": 8, "val": 2}, "camvid": {"train": 32, "val": 8}}
SUBSET_LIMIT_BYTES = 56 * 2**20


# ------------------------------------------------------------------------------------------ helpers
def _device() -> str:
    return os.environ.get("DEVICE", "cuda")


def _tiny() -> bool:
    return os.environ.get("TINY", "0") not in ("", "0", "false", "False")


def _data_root() -> str | None:
    root = os.environ.get("DATA_ROOT")
    if root:
        return root
    local = REPO / ".gpu_data"
    return str(local) if local.is_dir() else None


def _run(cmd: list[str], log, timeout: float, env=None) -> tuple[int, str]:
    """Run ``cmd`` in the repository root, streaming its output into ``log``; (return code, output).

    Return code 124 when the time limit ends it.
    """
    chunks: list[str] = []
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {}),
                                 "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                                               if p)},
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    rc = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = 124
            break
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            data = os.read(fd, 65536)
            if data:
                text = data.decode("utf-8", errors="replace")
                chunks.append(text)
                log.write(text)
                log.flush()
                continue
            rc = proc.wait()
            break
        if proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            rc = proc.returncode
            break
    proc.stdout.close()
    return rc, "".join(chunks)


# --------------------------------------------------------------------------------------- the phases
def phase_env(device: str, tiny: bool) -> dict:
    import torch

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
           "device": device}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                   multiprocessors=p.multi_processor_count, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    try:
        out["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        out["nvidia_smi"] = None
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                       timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["commit"] = None
    return out


def cuda_test_files() -> list[str]:
    """Test files that hold a test skipped without CUDA (their skip reason says "needs CUDA")."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                  if "needs CUDA" in p.read_text(encoding="utf-8"))


def phase_cuda_tests(device: str, tiny: bool, log, timeout: float) -> dict:
    files = cuda_test_files()
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        rc, text = _run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-k", "cuda",
                         f"--junitxml={xml}", *files], log, timeout)
        tests = _junit(xml) if xml.exists() else {}
    counts = {k: sum(v == k for v in tests.values()) for k in ("passed", "failed", "error", "skipped")}
    return {"returncode": rc, "files": files, "counts": counts, "tests": tests, "tail": text[-3000:]}


def _junit(path: Path) -> dict:
    import xml.etree.ElementTree as ET

    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        out[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                     else "skipped" if "skipped" in kinds else "passed")
    return out


_OVERHEAD = re.compile(r"^(\S+)\s+batch\s+(\d+) x (\d+)x\d+.*base\s+([\d.]+) ms/step\s+ceco\s+([\d.]+) ms/step\s+"
                       r"overhead\s+([+-][\d.]+) %\s+\(median of pair ratios\s+([+-][\d.]+) %")
_COMPILED = re.compile(r"ceco_compiled \(CompiledCenterLoss\):\s+([\d.]+) ms/step\s+overhead\s+([+-][\d.]+) %\s+"
                       r"\(pairs\s+([+-][\d.]+) %")


def phase_overhead(device: str, tiny: bool, log, timeout: float) -> dict:
    cmd = [sys.executable, "benchmarks/bench_train_step.py", "--device", device]
    if tiny:
        cmd += ["--models", "small_seg", "--batch", "2", "--size", "32", "--steps", "10", "--warmup", "2"]
        if device == "cpu":
            cmd += ["--threads", "1", "--clock", "cpu"]
    else:
        cmd += ["--models", "small_seg,lraspp_mobilenet_v3,deeplabv3_resnet50", "--steps", "40", "--warmup", "6"]
    if device != "cpu":
        cmd += ["--compile-loss"]
    rc, text = _run(cmd, log, timeout)
    models, last = {}, None
    for line in text.splitlines():
        m = _OVERHEAD.search(line)
        if m:
            last = m.group(1)
            models[last] = {"batch": int(m.group(2)), "size": int(m.group(3)), "base_ms": float(m.group(4)),
                            "ceco_ms": float(m.group(5)), "overhead_pct": float(m.group(6)),
                            "overhead_pairs_pct": float(m.group(7)), "ceco_compiled_ms": None,
                            "compiled_overhead_pct": None, "compiled_overhead_pairs_pct": None}
        m = _COMPILED.search(line)
        if m and last:
            models[last].update(ceco_compiled_ms=float(m.group(1)), compiled_overhead_pct=float(m.group(2)),
                                compiled_overhead_pairs_pct=float(m.group(3)))
    return {"returncode": rc, "command": " ".join(cmd[1:]), "models": models,
            "lines": [ln for ln in text.splitlines() if "ms/step" in ln or ln.startswith(("device", "K ="))]}


def phase_presets(device: str, tiny: bool, log, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "presets.json"
        cmd = [sys.executable, "benchmarks/bench_gpu_presets.py", "--device", device, "--json", str(path)]
        cmd += ["--tiny"] if tiny else ["--compile"]
        if _data_root():
            cmd += ["--data-root", _data_root()]
        rc, text = _run(cmd, log, timeout)
        result = json.loads(path.read_text()) if path.exists() else None
    return {"returncode": rc, "command": " ".join(cmd[1:]), "results": result,
            "lines": [ln for ln in text.splitlines() if "ms/step" in ln or "epochs in" in ln or "synchronis" in ln]}


def lesson5_cell(data_root, tiny: bool) -> dict:
    """Lesson 5's full-scale cell (section 7) with FULL_SCALE = not tiny and QUICK = tiny."""
    import warnings

    import torch

    from ceco_lite.engine import run_or_load
    from ceco_lite.engine.studies import full_scale_plan
    from ceco_lite.published import CECO_TABLE9

    QUICK, FULL_SCALE, DATA_ROOT = tiny, not tiny, data_root
    shutil.rmtree(LESSON5_RUNS, ignore_errors=True)
    RUN_DIR = str(LESSON5_RUNS)
    t0 = time.perf_counter()
    config, message, is_full = full_scale_plan(data_root=DATA_ROOT,
                                               smoke=(QUICK or not FULL_SCALE or not torch.cuda.is_available()))
    print(message)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*checksums.*")   # the shared CIFAR sample is a truncated copy
        full = run_or_load(config, RUN_DIR, progress=is_full)
    score = full.score
    print(f"{'full-scale' if is_full else 'smoke'} run of preset '{config.preset}' ({config.dataset}, {config.model}) "
          f"finished: {full.metrics['steps']} steps on {full.metrics['device']}, score {score:.1f}")
    if is_full and config.dataset == "cityscapes":
        print("paper, supplement Table 9 (DLV3P, mIoU s.s.):", CECO_TABLE9)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    m = full.metrics
    return {"message": message, "is_full": is_full, "preset": config.preset, "dataset": config.dataset,
            "model": config.model, "epochs": config.epochs, "image_size": config.image_size, "steps": m["steps"],
            "device": m["device"], "score": score, "time_per_step_s": m["time_per_step"],
            "wall_s": time.perf_counter() - t0, "data_info": {k: m["data_info"].get(k) for k in
                                                               ("num_images", "pixel_if", "imbalance_factor")
                                                               if k in (m.get("data_info") or {})}}


def _lesson5_progress() -> list[dict]:
    """Epochs done and seconds per epoch of the lesson-5 run(s) left in :data:`LESSON5_RUNS`."""
    out = []
    for path in sorted(LESSON5_RUNS.glob("*/*/history.json")):
        history = json.loads(path.read_text())
        out.append({"run": str(path.parent.relative_to(LESSON5_RUNS)), "epochs_done": len(history),
                    "mean_epoch_train_s": (sum(r["epoch_time"] for r in history) / len(history)) if history else None,
                    "last_score": history[-1].get("miou", history[-1].get("top1")) if history else None})
    return out


def resume_check(device: str, tiny: bool) -> dict:
    """Interrupt a run after its first epoch, resume it, and compare it with uninterrupted runs."""
    import warnings

    import torch

    from ceco_lite.engine import get_preset, train

    over = dict(device=device, progress=False, epochs=3, num_images=64, num_val_images=16, nc_max_images=16,
                eval_every=1, nc_every=1)
    if tiny:
        over.update(epochs=2, num_images=32, image_size=(16, 16), num_threads=1 if device == "cpu" else None)
    config = get_preset("synthetic-cpu", **over)

    def interrupt(record, history):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    def final(result):
        return {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}

    def compare(a, b):
        diff = max(((x.double() - y.double()).abs().max().item() if x.is_floating_point() else
                    float((x != y).any())) for x, y in zip(a.values(), b.values()))
        return {"bitwise_equal": all(torch.equal(a[k], b[k]) for k in a), "max_abs_diff": diff}

    out = {"config": {"preset": config.preset, "model": config.model, "ceco_lambda": config.ceco_lambda,
                      "epochs": config.epochs, "image_size": config.image_size, "num_images": config.num_images}}
    for mode in ("deterministic", "default"):
        torch.use_deterministic_algorithms(mode == "deterministic", warn_only=True)
        torch.backends.cudnn.benchmark = mode == "default"
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs = {}
            for name in ("uninterrupted_1", "uninterrupted_2"):
                res = train(config.replace(out_dir=f"{tmp}/{name}"))
                runs[name] = (final(res), [r["loss"]["total"] for r in res.history])
            try:
                train(config.replace(out_dir=f"{tmp}/resumed"), callback=interrupt)
                raise AssertionError("the interrupting callback did not stop the run")
            except KeyboardInterrupt:
                pass
            res = train(config.replace(out_dir=f"{tmp}/resumed", resume=True))
            runs["resumed"] = (final(res), [r["loss"]["total"] for r in res.history])
        base_w, base_l = runs["uninterrupted_1"]
        out[mode] = {
            "rerun_vs_first": compare(runs["uninterrupted_2"][0], base_w),
            "resumed_vs_first": compare(runs["resumed"][0], base_w),
            "losses_equal_resumed": runs["resumed"][1] == base_l, "losses": base_l,
            "nondeterministic_ops": sorted({str(w.message).split(".")[0][:160] for w in caught
                                            if "deterministic" in str(w.message)})[:12],
        }
    torch.use_deterministic_algorithms(False)
    return out


# ------------------------------------------------------------------------------------------ driver
def _inner(args) -> None:
    """``--phase NAME --json FILE``: run one phase in this process and write its result."""
    device, tiny = _device(), _tiny()
    if args.phase == "env":
        result = phase_env(device, tiny)
    elif args.phase == "lesson5":
        result = lesson5_cell(_data_root(), tiny)
    elif args.phase == "resume":
        result = resume_check(device, tiny)
    else:
        raise SystemExit(f"unknown phase {args.phase!r}")
    Path(args.json).write_text(json.dumps(result, indent=2, default=str))


def _phase_in_subprocess(name: str, log, timeout: float) -> tuple[int, dict | None, str]:
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"} if name == "resume" else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phase.json"
        rc, text = _run([sys.executable, str(Path(__file__).resolve()), "--phase", name, "--json", str(path)], log,
                        timeout, env=env)
        return rc, (json.loads(path.read_text()) if path.exists() else None), text


def check(out_dir: Path) -> dict:
    device, tiny = _device(), _tiny()
    wanted = [p.strip() for p in os.environ.get("PHASES", ",".join(PHASES)).split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PHASES))
    if unknown:
        raise SystemExit(f"PHASES has unknown names {unknown}; choose from {list(PHASES)}")
    budget = float(os.environ.get("BUDGET_S", "500"))
    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"device": device, "tiny": tiny, "budget_s": budget, "data_root": _data_root(), "phases": {}}
    with open(out_dir / "gpu_check.log", "w") as log:
        for name in PHASES:
            entry = report["phases"][name] = {"status": "skipped", "seconds": 0.0, "result": None}
            if name not in wanted:
                entry["reason"] = "not in PHASES"
                continue
            limit, least = LIMITS[name]
            left = budget - (time.monotonic() - start) - 5
            if left < least:
                entry["reason"] = f"budget: {left:.0f} s left, needs {least} s"
                continue
            timeout = min(limit * (0.5 if tiny else 1.0), left)
            banner = f"\n===== {name} (limit {timeout:.0f} s) =====\n"
            log.write(banner)
            print(banner, end="", flush=True)
            t0 = time.monotonic()
            try:
                if name in ("cuda_tests", "overhead", "presets"):
                    result = globals()[f"phase_{name}"](device, tiny, _Tee(log), timeout)
                    rc = result.get("returncode", 0)
                else:
                    rc, result, text = _phase_in_subprocess(name, _Tee(log), timeout)
                    if result is None:
                        result = {"tail": text[-3000:]}
                        if name == "lesson5":
                            result["progress"] = _lesson5_progress()
                entry["status"] = "timeout" if rc == 124 else "ok" if rc == 0 else "failed"
                entry["returncode"] = rc
                entry["result"] = result
            except Exception as exc:  # a broken phase must not lose the others' results
                entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            entry["seconds"] = round(time.monotonic() - t0, 1)
            (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    report["wall_s"] = round(time.monotonic() - start, 1)
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    _summary(report)
    return report


class _Tee:
    """Write to the log file and to stdout."""

    def __init__(self, log):
        self.log = log

    def write(self, text):
        self.log.write(text)
        sys.stdout.write(text)

    def flush(self):
        self.log.flush()
        sys.stdout.flush()


def _summary(report: dict) -> None:
    print(f"\n===== summary ({report['device']}{', tiny' if report['tiny'] else ''}, {report.get('wall_s')} s "
          f"of {report['budget_s']:.0f}) =====")
    for name, e in report["phases"].items():
        r = e.get("result") or {}
        line = ""
        if name == "env" and r:
            line = f"{r.get('gpu', 'no GPU')} torch {r.get('torch')}"
        elif name == "cuda_tests" and r:
            line = f"{r.get('counts')}"
        elif name == "overhead" and r:
            line = "; ".join(f"{m} {v['overhead_pct']:+.1f} % (compiled "
                             f"{'-' if v['compiled_overhead_pct'] is None else format(v['compiled_overhead_pct'], '+.1f')} %)"
                             for m, v in r.get("models", {}).items())
        elif name == "presets" and r and r.get("results"):
            c = r["results"].get("cifar100-lt", {}).get("arms", {})
            line = "cifar100-lt: " + ", ".join(f"{a} {v['time_to_result_s']:.0f} s" for a, v in c.items())
        elif name == "lesson5" and r and "steps" in r:
            line = f"{r['preset']} {r['steps']} steps on {r['device']}, score {r['score']:.1f}, {r['wall_s']:.0f} s"
        elif name == "resume" and r and "deterministic" in r:
            d, n = r["deterministic"], r["default"]
            line = (f"deterministic: resumed bitwise {d['resumed_vs_first']['bitwise_equal']} (max diff "
                    f"{d['resumed_vs_first']['max_abs_diff']:.2e}); default: resumed {n['resumed_vs_first']['max_abs_diff']:.2e}"
                    f", rerun {n['rerun_vs_first']['max_abs_diff']:.2e}")
        print(f"{name:11s} {e['status']:8s} {e['seconds']:6.1f} s  {line or e.get('reason', e.get('error', ''))}")


# ---------------------------------------------------------------------------------------- prepare
def prepare(data_root: str | None) -> Path:
    """Copy a small real-data subset (:data:`DATA_SUBSET`) into ``.gpu_data/`` and make git ignore it."""
    from data_utils import default_data_dir

    src_root = Path(data_root) if data_root else Path(default_data_dir())
    dest = REPO / ".gpu_data"
    if dest.exists():
        shutil.rmtree(dest)
    copied = 0
    for name, splits in DATA_SUBSET.items():
        root = src_root / name
        for split, n in splits.items():
            pairs = sorted(_pairs(name, root, split))[:n]
            if len(pairs) < n:
                print(f"{name}/{split}: {len(pairs)} pairs under {root} (wanted {n})")
            for img, lbl in pairs:
                for f in (img, lbl):
                    target = dest / name / f.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, target)
                    copied += f.stat().st_size
    if copied > SUBSET_LIMIT_BYTES:
        shutil.rmtree(dest)
        raise SystemExit(f"the subset is {copied / 2**20:.1f} MiB, over {SUBSET_LIMIT_BYTES / 2**20:.0f} MiB")
    exclude = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=REPO, capture_output=True,
                             text=True).stdout.strip()
    if exclude:
        path = Path(exclude) if os.path.isabs(exclude) else REPO / exclude
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        if "/.gpu_data/" not in lines:
            path.write_text("\n".join(lines + ["/.gpu_data/"]) + "\n")
    print(f"copied {copied / 2**20:.1f} MiB of real data from {src_root} to {dest} (git-ignored): "
          f"{', '.join(f'{k} {v}' for k, v in DATA_SUBSET.items())}")
    return dest


def _pairs(name: str, root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) files of one split in the data set's official layout (docs/data.md)."""
    if name == "cityscapes":
        return [(img, root / "gtFine" / split / img.parent.name / img.name.replace("_leftImg8bit.png",
                                                                                    "_gtFine_labelIds.png"))
                for img in (root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")]
    return [(img, root / f"{split}annot" / img.name) for img in (root / split).glob("*.png")]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", default="check", choices=["check", "prepare"])
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data-root", default=None, help="prepare: where the real data sets are")
    args = p.parse_args(argv)
    if args.phase:
        _inner(args)
    elif args.command == "prepare":
        prepare(args.data_root)
    else:
        check(Path(os.environ.get("OUT") or REPO / "gpu_check_out"))


if __name__ == "__main__":
    main()
