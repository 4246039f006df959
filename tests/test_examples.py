"""The example scripts in examples/ run (two training steps on CPU)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_train_with_ceco_runs_two_steps(capsys):
    example = load("train_with_ceco")
    history = example.main(["--steps", "2", "--size", "32", "--num-images", "4", "--batch-size", "2",
                            "--num-classes", "5", "--device", "cpu"])
    assert [h["step"] for h in history] == [0, 1]
    for h in history:
        assert all(math.isfinite(h[k]) for k in ("ce", "ceco", "loss"))
        assert h["ceco"] > 0
        assert h["loss"] == pytest.approx(h["ce"] + 0.4 * h["ceco"], rel=1e-5)
    out = capsys.readouterr().out
    assert "step    1/2" in out and "step    2/2" in out


def test_train_with_ceco_rejects_an_unknown_data_set():
    example = load("train_with_ceco")
    with pytest.raises(SystemExit, match="no-such-data"):
        example.main(["--data", "no-such-data"])
