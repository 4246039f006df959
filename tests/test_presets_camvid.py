"""The CamVid presets (camvid-cpu, camvid, camvid-quick): valid, and each trains two steps at tiny
size on the CPU -- on a SegNet-layout fixture always, on the real CamVid when it is found
(``CECO_DATA_DIR``) -- and ``compare`` on camvid-cpu prints the paired CE-versus-CeCo difference."""
from __future__ import annotations

import json
import math

import pytest

from ceco_lite.cli import main
from ceco_lite.engine import PRESET_DESCRIPTIONS, PRESETS, get_preset, train
from ceco_lite.models import MODEL_TASKS
from data_utils import CamVid
from conftest_data import needs_real_camvid, write_camvid

pytestmark = pytest.mark.timeout(180)

CAMVID_PRESETS = ("camvid-cpu", "camvid", "camvid-quick")
#: Shrinks any CamVid preset to two optimiser steps of two 32x48 images on the CPU.
TINY = dict(max_steps=2, epochs=1, image_size=(32, 48), limit_images=4, batch_size=2, nc_max_images=2,
            device="cpu", num_workers=0, num_threads=None, progress=False, checkpoint=False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Resized pairs are cached under the test's folder, not in the user's cache."""
    monkeypatch.setenv("CECO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fixture_root(tmp_path):
    """A data root holding a SegNet-layout CamVid of 6 train / 4 val frames of 48x64."""
    write_camvid(tmp_path / "data" / "camvid", layout={"train": 6, "val": 4}, size=(48, 64))
    return tmp_path / "data"


# ------------------------------------------------------------------ the presets
@pytest.mark.parametrize("name", CAMVID_PRESETS)
def test_preset_is_a_valid_camvid_configuration(name):
    cfg = get_preset(name)
    assert cfg.preset == name and cfg.dataset == "camvid" and cfg.task == "segmentation"
    assert cfg.num_classes == CamVid.num_classes == 11 and cfg.ignore_index == 255
    assert MODEL_TASKS[cfg.model] == "segmentation"
    assert cfg.schedule == "poly" and cfg.ceco_lambda > 0 and cfg.fixed_center_classifier
    assert cfg.batch_size <= 367  # the training split
    text = PRESET_DESCRIPTIONS[name]
    assert f"{cfg.image_size[0]}x{cfg.image_size[1]}" in text  # the description states the resolution
    assert get_preset(name, seed=5).replace(seed=cfg.seed) == cfg  # overrides leave the rest alone


def test_camvid_cpu_description_states_its_chosen_hyper_parameters():
    cfg, text = PRESETS["camvid-cpu"], PRESET_DESCRIPTIONS["camvid-cpu"]
    assert cfg.device == "cpu" and cfg.num_threads == 2
    for part in (f"λ = {cfg.ceco_lambda:g}", f"α = {cfg.ceco_scale:g}", f"{cfg.epochs} epochs",
                 f"lr {cfg.lr:g}", f"batch {cfg.batch_size}"):
        assert part in text, part


def test_gpu_preset_follows_the_paper_recipe_and_works_offline():
    cfg = PRESETS["camvid"]
    assert cfg.image_size == (360, 480) == CamVid.native_size  # full resolution
    assert cfg.device == "auto" and cfg.model in ("deeplabv3_resnet50", "lraspp_mobilenet_v3")
    # CeCo supplement Appendix D: SGD (momentum 0.9), poly 0.9, weight decay 1e-3
    assert (cfg.momentum, cfg.poly_power, cfg.weight_decay) == (0.9, 0.9, 1e-3)
    assert cfg.pretrained is False  # nothing to download by default; --set pretrained=true for ImageNet
    assert "pretrained=true" in PRESET_DESCRIPTIONS["camvid"]


def test_quick_preset_is_the_cpu_recipe_cut_short():
    quick, cpu = PRESETS["camvid-quick"], PRESETS["camvid-cpu"]
    assert quick.epochs * 3 <= cpu.epochs
    # the same data, model, loss and optimiser: only the schedule's length and the evaluations differ
    differ = {"epochs", "eval_every", "nc_every", "preset", "num_threads"}
    assert {k: v for k, v in vars(quick).items() if k not in differ} == {
        k: v for k, v in vars(cpu).items() if k not in differ}
    assert quick.epochs % quick.eval_every == 0 and quick.epochs % quick.nc_every == 0  # the last epoch is measured
    # a lesson's own thread setting holds: two threads on a 2-core machine that also runs the browser
    # are many times slower than one
    assert quick.num_threads is None and cpu.num_threads == 2


# -------------------------------------------------------- two steps, CE and CeCo
def _check_two_steps(res, cfg):
    m = res.metrics
    assert m["steps"] == 2 and m["epochs_run"] == 1 and m["device"] == "cpu"
    assert math.isfinite(res.history[-1]["loss"]["total"])
    assert ("ceco" in res.history[-1]["loss"]) == cfg.uses_ceco
    assert 0 <= m["miou"] <= 100 and len(m["per_class"]) == 11
    assert set(m["groups"]) == {"head", "common", "tail"}
    assert sum(m["class_counts"]) == cfg.limit_images * 32 * 48 - m["data_info"]["num_ignored"]


@pytest.mark.parametrize("name", CAMVID_PRESETS)
@pytest.mark.parametrize("ceco_lambda", [0.0, None])
def test_preset_trains_two_steps_on_a_fixture(name, ceco_lambda, fixture_root, cache):
    over = {} if ceco_lambda is None else {"ceco_lambda": ceco_lambda}
    cfg = get_preset(name, data_root=str(fixture_root), **TINY, **over)
    res = train(cfg)
    _check_two_steps(res, cfg)
    assert any((cache / "camvid").rglob("*_32x48_*.npz"))  # the fixture went through the CamVid loader


@needs_real_camvid
@pytest.mark.parametrize("name", CAMVID_PRESETS)
def test_preset_trains_two_steps_on_real_camvid(name, cache):
    cfg = get_preset(name, **TINY)
    res = train(cfg)
    _check_two_steps(res, cfg)
    counts = res.metrics["class_counts"]
    assert counts.index(max(counts)) in (0, 1, 3)  # sky, building or road dominates real frames


# ------------------------------------------------------------------ compare
def test_compare_on_camvid_cpu_prints_the_paired_difference(fixture_root, cache, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["compare", "--preset", "camvid-cpu", "--seeds", "0", "1", "--max-steps", "1", "--epochs", "1",
            "--image-size", "32", "48", "--limit-images", "4", "--batch-size", "2", "--device", "cpu",
            "--data-root", str(fixture_root), "--no-progress", "--set", "nc_max_images=2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    lam = PRESETS["camvid-cpu"].ceco_lambda
    assert f"CE (λ=0) vs CeCo (λ={lam:g}), seeds [0, 1]" in text and "Δ (CeCo − CE)" in text
    saved = json.loads(next(out.glob("compare-camvid-cpu-*.json")).read_text())
    ce = [r["miou"] for r in saved["runs"]["ce"]]
    cc = [r["miou"] for r in saved["runs"]["ceco"]]
    diffs = [b - a for a, b in zip(ce, cc)]
    mean = sum(diffs) / 2
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs))  # unbiased, n - 1 = 1
    row = next(line for line in text.splitlines() if line.startswith("mIoU / top-1"))
    assert row.split()[-3:] == [f"{mean:.3f}", "±", f"{std:.3f}"]
    assert len(list((out / "camvid-cpu").iterdir())) == 4  # two arms x two seeds, one folder each
