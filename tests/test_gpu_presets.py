"""The GPU path at CPU size: the engine's loop without per-step host waits, the GPU presets
benchmark (``--tiny``), the GPU check script's CPU fallback, and the CUDA-only checks that
``scripts/gpu_check.py`` runs on a GPU (skipped here: "needs CUDA")."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ceco_lite.ceco import CenterCollapseLoss, CompiledCenterLoss
from ceco_lite.centers import class_sums
from ceco_lite.engine import get_preset, train
from ceco_lite.engine.data import decode_batch, epoch_generator, iterate_batches, random_crop
from ceco_lite.engine.runtime import start_runtime
from ceco_lite.engine.trainer import TrainState, build, run_epoch

REPO = Path(__file__).resolve().parent.parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _load(relpath: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str((REPO / relpath).parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def _per_batch_reference(x, y, batch_size, *, seed, epoch, augment, task, rank=0, world_size=1):
    """The batches of one epoch with every random draw made right before its batch (CPU)."""
    g = epoch_generator(seed, epoch)
    n = x.shape[0]
    perm = torch.randperm(n, generator=g)
    local = batch_size // world_size
    out = []
    for b in range(max(n // batch_size, 1)):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        if augment:
            flip = torch.rand(idx.numel(), generator=g) < 0.5
            if task == "classification":
                offs = torch.randint(0, 9, (idx.numel(), 2), generator=g)
        sl = slice(rank * local, (rank + 1) * local)
        idx = idx[sl]
        xb, yb = decode_batch(x[idx], y[idx])
        if augment:
            f = flip[sl]
            xb = torch.where(f.view(-1, 1, 1, 1), xb.flip(-1), xb)
            if task == "segmentation":
                yb = torch.where(f.view(-1, 1, 1), yb.flip(-1), yb)
            else:
                xb = random_crop(xb, offs[sl])
        out.append((xb, yb))
    return out


@pytest.mark.parametrize("task", ["classification", "segmentation"])
@pytest.mark.parametrize("world_size", [1, 2])
def test_epoch_draws_made_up_front_give_the_per_batch_batches(task, world_size):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (22, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 5, (22,) if task == "classification" else (22, 8, 8), generator=g)
    for rank in range(world_size):
        kw = dict(seed=3, epoch=2, augment=True, task=task, rank=rank, world_size=world_size)
        got = list(iterate_batches(x, y, 6, **kw))
        want = _per_batch_reference(x, y, 6, **kw)
        assert len(got) == len(want) == 3
        for (xa, ya), (xb, yb) in zip(got, want):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ------------------------------------------------------------------------------ benchmark and script
@pytest.mark.slow
def test_gpu_presets_benchmark_runs_at_tiny_size(tmp_path):
    bench = _load("benchmarks/bench_gpu_presets.py", "bench_gpu_presets")
    out = tmp_path / "presets.json"
    res = bench.main(["--tiny", "--device", "cpu", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    arms = res["cifar100-lt"]["arms"]
    assert set(arms) == {"CE", "CeCo", "CeCo+compile_loss"}
    for a in arms.values():
        assert len(a["epoch_wall_s"]) == 2 and a["time_to_result_s"] > a["first_epoch_s"] > 0
        assert a["steps_per_epoch"] == 1 and a["train_time_per_step_ms"] > 0
    assert arms["CE"]["vs_CE"] == 1.0
    for name in ("camvid", "cityscapes"):
        r = res[name]
        assert r["image_size"] == [32, 64] and set(r["time_per_step_ms"]) == {"CE", "CeCo"}
        assert r["CeCo_vs_CE"] > 0 and r["time_to_result_h"]["total"] > r["time_to_result_h"]["train"] > 0
    assert res["camvid"]["steps_per_epoch_full"] == 367 // 4


def test_shape_dataset_has_cifar100_lt_counts():
    bench = _load("benchmarks/bench_gpu_presets.py", "bench_gpu_presets")
    from data_utils.cifar_lt import cifar_lt_counts
    from data_utils.registry import LoadRequest, get_dataset

    counts = cifar_lt_counts(500, 100, 100.0)
    name = bench.register_shape_dataset("cifar100-lt", train=sum(counts), val=100, size=(32, 32), counts=counts)
    x, y = get_dataset(name).load_split(None, LoadRequest(split="train", num_classes=100))
    assert sum(counts) == 10_847 and x.shape == (10_847, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y, minlength=100).tolist() == counts
    cfg = get_preset("cifar100-lt", dataset=name)
    assert cfg.task == "classification" and cfg.num_classes == 100


@pytest.mark.slow
def test_gpu_check_cpu_fallback_writes_every_phase(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "TINY": "1", "OUT": str(tmp_path), "PHASES": "env,resume",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(report["phases"]) == ["env", "cuda_tests", "resume", "overhead", "presets", "lesson5"]
    assert report["phases"]["env"]["status"] == "ok" and report["phases"]["presets"]["status"] == "skipped"
    resume = report["phases"]["resume"]
    assert resume["status"] == "ok", resume
    for mode in ("deterministic", "default"):
        assert resume["result"][mode]["resumed_vs_first"]["bitwise_equal"]  # CPU: bit for bit
    assert (tmp_path / "gpu_check.log").read_text().count("=====") >= 4
    assert "summary" in proc.stdout


def test_gpu_check_finds_the_gpu_only_tests():
    check = _load("scripts/gpu_check.py", "gpu_check")
    files = check.cuda_test_files()
    assert "tests/test_gpu_presets.py" in files and "tests/test_ceco.py" in files
    found = []
    for f in files:
        tree = ast.parse((REPO / f).read_text())
        markers = {t.id for node in tree.body if isinstance(node, ast.Assign) and "needs CUDA" in ast.unparse(node.value)
                   for t in node.targets if isinstance(t, ast.Name)}
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            decorators = [ast.unparse(d) for d in fn.decorator_list]
            if any("needs CUDA" in d or d in markers for d in decorators):
                # skipped for want of CUDA: "cuda" in the name, so that `pytest -k cuda` selects it
                assert "cuda" in fn.name, (f, fn.name)
                found.append(fn.name)
    assert "test_cuda_resume_gives_the_uninterrupted_weights" in found and len(found) >= 9


# -------------------------------------------------------------------------------------- CUDA only
@needs_cuda
def test_cuda_class_sums_backward_equals_cpu():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 8, 6, 10, generator=g)
    y = torch.randint(0, 5, (2, 6, 10), generator=g)
    y[0, 0] = 255
    up = torch.randn(5, 8, generator=g)
    for feats in (z, z.contiguous(memory_format=torch.channels_last)):
        ref = feats.clone().requires_grad_(True)
        (class_sums(ref, y, 5)[0] * up).sum().backward()
        for dtype in (torch.float32, torch.bfloat16):
            got = feats.cuda().to(dtype).requires_grad_(True)
            (class_sums(got, y.cuda(), 5)[0] * up.cuda()).sum().backward()
            assert got.grad.dtype == dtype
            assert torch.equal(got.grad.float().cpu(), ref.grad.to(dtype).float())  # a gather: exact


@needs_cuda
def test_cuda_fused_and_compiled_losses_equal_cpu():
    K, d = 6, 16
    cpu = CenterCollapseLoss(K, d, learnable=True, generator=torch.Generator().manual_seed(1))
    gpu = CenterCollapseLoss(K, d, learnable=True, generator=torch.Generator().manual_seed(1)).cuda()
    compiled = CompiledCenterLoss(gpu)
    assert compiled.mode == "reduce-overhead"
    g = torch.Generator().manual_seed(2)
    for step in range(4):  # several replays of the CUDA graph, fresh inputs each time
        z = torch.randn(4, d, 8, 8, generator=g)
        y = torch.randint(0, K, (4, 32, 32), generator=g)
        y[:, :3] = 255
        zc = z.clone().requires_grad_(True)
        ref = cpu(zc, y)
        ref.backward()
        for fn in (gpu, compiled):
            zg = z.cuda().contiguous(memory_format=torch.channels_last).requires_grad_(True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = fn(zg, y.cuda())
            loss.backward()
            torch.testing.assert_close(loss.cpu(), ref.detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(zg.grad.cpu(), zc.grad, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(gpu.etf.grad.cpu(), cpu.etf.grad, rtol=1e-4, atol=1e-6)
            gpu.etf.grad = None
        cpu.etf.grad = None


@needs_cuda
def test_cuda_training_loop_waits_for_the_device_only_at_the_end_of_an_epoch():
    """As many synchronising calls in an epoch of 8 steps as in one of 4: none per step."""
    counts = {}
    for n_images in (32, 64):
        cfg = get_preset("synthetic-cpu", device="cuda", num_images=n_images, batch_size=8, progress=False,
                         checkpoint=False, epochs=3, image_size=(32, 32))
        with start_runtime(cfg) as runtime:
            parts = build(cfg, runtime)
            state = TrainState()
            run_epoch(parts, state, cfg, runtime)  # warm-up
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    run_epoch(parts, state, cfg, runtime)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
        counts[n_images] = sum("synchroniz" in str(w.message) for w in caught)
    assert counts[32] == counts[64], counts


@needs_cuda
def test_cuda_resume_gives_the_uninterrupted_weights(tmp_path):
    cfg = get_preset("synthetic-cpu", device="cuda", epochs=2, num_images=32, num_val_images=8, nc_max_images=8,
                     progress=False, image_size=(16, 16))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        full = train(cfg.replace(out_dir=str(tmp_path / "a")))

        def stop(record, history):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train(cfg.replace(out_dir=str(tmp_path / "b")), callback=stop)
        resumed = train(cfg.replace(out_dir=str(tmp_path / "b"), resume=True))
    finally:
        torch.use_deterministic_algorithms(False)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:  # to CUDA's determinism (scripts/gpu_check.py reports the differences)
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    assert resumed.metrics["steps"] == full.metrics["steps"]
