"""Command line (`python -m ceco_lite`, `ceco-lite`): train, compare, presets, errors."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from ceco_lite.cli import build_parser, config_from_args, main

pytestmark = pytest.mark.timeout(120)

TINY = ["--preset", "synthetic-cpu", "--image-size", "16", "16", "--num-images", "16", "--batch-size", "8",
        "--no-progress", "--set", "num_val_images=8", "--set", "nc_max_images=8"]


def test_overrides_reach_the_config():
    args = build_parser().parse_args(["train", *TINY, "--lambda", "0.25", "--epochs", "3", "--seed", "7",
                                      "--fixed-pc", "--learned-cc", "--variant", "released", "--set", "lr=0.02"])
    cfg = config_from_args(args)
    assert (cfg.ceco_lambda, cfg.epochs, cfg.seed, cfg.lr) == (0.25, 3, 7, 0.02)
    assert cfg.fixed_pixel_classifier and not cfg.fixed_center_classifier and cfg.ceco_variant == "released"
    assert cfg.image_size == (16, 16) and cfg.num_val_images == 8 and cfg.progress is False


def test_train_writes_metrics_and_prints_table(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "3", "--out", str(out), "--lambda", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "mIoU" in text and "tail" in text and "equiangularity_centers" in text
    m = json.loads((out / "metrics.json").read_text())
    for key in ("miou", "per_class", "head", "common", "tail", "history"):
        assert key in m
    assert m["steps"] == 3 and m["config"]["ceco_lambda"] == 0.3
    assert f"{m['miou']:8.2f}" in text  # the printed table shows the stored number
    # --resume of a finished run just reports it again
    assert main(["train", *TINY, "--max-steps", "3", "--out", str(out), "--lambda", "0.3", "--resume"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--preset", "synthetic-cpu", "--lambda", "-1"], "ceco_lambda must be finite and >= 0"),
        (["train", "--preset", "synthetic-cpu", "--set", "epochs"], "KEY=VALUE"),
        (["compare", "--preset", "synthetic-cpu", "--lambda", "0"], "ceco_lambda must be > 0"),
        (["compare", "--preset", "synthetic-cpu", "--seeds", "0", "0"], "seeds must be distinct"),
        (["train", "--preset", "synthetic-cpu", "--data-root", "/data"], "--data-root is given but"),
        (["train", "--preset", "synthetic-cpu", "--set", "num_classes=300"], "ignore_index must lie outside"),
    ],
)
def test_bad_input_fails_before_training(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_data_root(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CECO_DATA_DIR", str(tmp_path / "absent"))
    assert main(["train", "--preset", "cityscapes-sample", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "needs real data" in err and "--data-root" in err
    assert not (tmp_path / "x").exists()


def test_compare_prints_both_arms(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--max-steps", "2", "--seeds", "0", "1", "--lambda", "0.5",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "CE (λ=0) vs CeCo (λ=0.5)" in text and "tail" in text
    (path,) = out.glob("compare-*.json")
    res = json.loads(path.read_text())
    row = res["summary"]["mIoU / top-1"]
    ce, ceco = row["ce_values"], row["ceco_values"]
    assert len(ce) == len(ceco) == 2
    diffs = [b - a for a, b in zip(ce, ceco)]
    assert math.isclose(row["diff"][0], sum(diffs) / 2, rel_tol=1e-9, abs_tol=1e-12)
    for lam in (0.0, 0.5):
        for seed in (0, 1):
            (folder,) = (out / "synthetic-cpu").glob(f"lam{lam:g}-seed{seed}-*")
            cfg = json.loads((folder / "config.json").read_text())
            assert (cfg["ceco_lambda"], cfg["seed"]) == (lam, seed)
    # a second comparison reuses the finished runs
    assert main(["compare", *TINY, "--max-steps", "2", "--seeds", "0", "1", "--lambda", "0.5",
                 "--out", str(out)]) == 0
    assert len(list((out / "synthetic-cpu").iterdir())) == 4


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "ceco_lite", "presets"], capture_output=True, text=True,
                          timeout=110)
    assert proc.returncode == 0, proc.stderr
    for name in ("synthetic-cpu", "cityscapes-sample", "cityscapes", "cifar10-lt", "cifar100-lt"):
        assert name in proc.stdout


# ------------------------------------------------------------- interrupts and messages
def _interrupt_at(monkeypatch, call: int, how):
    """Make the ``call``-th training step raise KeyboardInterrupt (or send SIGTERM to this process)."""
    import ceco_lite.engine.step as step

    calls = {"n": 0}
    orig = step.TrainStep.forward

    def forward(self, x, y):
        calls["n"] += 1
        if calls["n"] == call:
            how()
        return orig(self, x, y)

    monkeypatch.setattr(step.TrainStep, "forward", forward)


def _ctrl_c():
    raise KeyboardInterrupt


def test_interrupt_before_the_first_checkpoint_says_so(tmp_path, capsys, monkeypatch):
    _interrupt_at(monkeypatch, 1, _ctrl_c)
    assert main(["train", *TINY, "--epochs", "3", "--out", str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "intact" not in err and "--resume" not in err


def test_sigterm_stops_like_ctrl_c_and_the_hint_continues_the_run(tmp_path, capsys, monkeypatch):
    """SIGTERM in epoch 2 of 3 (2 steps per epoch): checkpoint.pt holds epoch 1; the printed command
    keeps every option given (--epochs too) and finishes the run (bitwise resumption: test_engine)."""
    import os
    import shlex
    import signal

    out = tmp_path / "r"
    _interrupt_at(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert main(["train", *TINY, "--epochs", "3", "--lr", "0.05", "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert f"{out / 'checkpoint.pt'} holds epoch 1 of 3 (step 2)" in err
    hint = err.strip().splitlines()[-1].strip()
    assert hint.startswith("python -m ceco_lite train") and hint.endswith("--resume") and "--epochs 3" in hint
    monkeypatch.undo()
    assert main(shlex.split(hint)[3:]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs_run"] == 3 and m["config"]["lr"] == 0.05


def test_compare_with_one_seed_shows_no_spread(tmp_path, capsys):
    assert main(["compare", *TINY, "--max-steps", "1", "--seeds", "0", "--lambda", "0.5", "--out",
                 str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "one seed: no spread" in text and "n/a" in text and "± 0.000" not in text


def test_unexpected_errors_and_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    import warnings

    import ceco_lite.cli as cli

    def boom(config):
        warnings.warn("something to know", UserWarning)
        raise KeyError("surprise")

    monkeypatch.setattr(cli, "train", boom)
    assert main(["train", *TINY, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ceco-lite: warning: something to know",
                   "ceco-lite: internal error: KeyError: 'surprise' (CECO_LITE_TRACEBACK=1 shows where)"]


def test_cifar_checksum_failure_is_one_line_with_the_cli_option(tmp_path, capsys, data_dir):
    if not (data_dir / "cifar" / "cifar-10-batches-py").is_dir():
        pytest.skip("no CIFAR-10 copy")
    assert main(["train", "--preset", "cifar10-lt", "--max-steps", "1", "--no-progress", "--out",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-verify-checksums" in err and "verify_checksums=False" not in err
    assert "cifar10-lt" in err and "Traceback" not in err
