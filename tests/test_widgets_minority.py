"""Lesson 2 widget: the live layer-peeled model reacts to R, K_B and the classifier switch."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from ceco_lite.widgets import MinorityCollapseExplorer  # noqa: E402


@pytest.fixture(scope="module")
def explorer():
    return MinorityCollapseExplorer(num_classes=6, dim=8, imbalance_ratio=1.0, num_minority=3,
                                    ratios=(1, 10, 1000), steps=400, weight_decay=5e-2, feature_decay=5e-2)


def _minority_block(fig, trace=0, minority=3):
    z = np.array(fig.data[trace].z)
    block = z[-minority:, -minority:]
    return block[~np.eye(minority, dtype=bool)].mean()


def test_balanced_start_is_an_etf(explorer):
    z = np.array(explorer.figure.data[0].z)
    np.testing.assert_allclose(z[~np.eye(6, dtype=bool)], -0.2, atol=1e-4)
    assert explorer.stats["nc1"] < 1e-8


def test_r_slider_retrains_and_minority_classifiers_collapse(explorer):
    before = np.array(explorer.figure.data[0].z)
    explorer.r_slider.value = 1000.0  # the first slider of lesson 2
    after = np.array(explorer.figure.data[0].z)
    assert not np.allclose(before, after)
    assert _minority_block(explorer.figure) > 0.95
    assert "R = 1000" in explorer.figure.layout.title.text
    assert explorer.figure.data[4].x[0] == pytest.approx(1000.0)
    assert explorer.r_slider.description


def test_fixed_etf_switch_keeps_minority_apart(explorer):
    explorer.r_slider.value = 1000.0
    explorer.classifier_toggle.value = "fixed_etf"
    assert _minority_block(explorer.figure, 0) == pytest.approx(-0.2, abs=1e-9)
    assert _minority_block(explorer.figure, 1) == pytest.approx(-0.2, abs=1e-4)  # class means too
    assert len(explorer.figure.data[4].x) == 0 and len(explorer.figure.data[5].x) == 1
    explorer.classifier_toggle.value = "learned"


def test_curves_follow_number_of_minority_classes(explorer):
    learned = np.array(explorer.figure.data[2].y)
    fixed = np.array(explorer.figure.data[3].y)
    assert len(learned) == 3 and np.all(np.diff(learned) > 0)
    np.testing.assert_allclose(fixed, -0.2, atol=1e-9)
    explorer.kb_slider.value = 2
    assert len(explorer.figure.data[2].y) == 3
    assert not np.allclose(np.array(explorer.figure.data[2].y), learned)
    explorer.kb_slider.value = 1  # no minority pair: curves cleared, no error
    assert len(explorer.figure.data[2].y) == 0
    assert "no minority pair" in explorer.figure.layout.title.text
    explorer.kb_slider.value = 3


def test_class_accuracy_figure_and_synthetic_fallback(tmp_path, monkeypatch):
    """Without CIFAR the real-data study says why in one line and falls back to synthetic segmentation."""
    from scipy.stats import pearsonr

    from ceco_lite.engine import PRESETS
    from ceco_lite.engine.studies import accuracy_vs_frequency
    from ceco_lite.plotting.geometry import class_accuracy_figure

    monkeypatch.setitem(PRESETS, "synthetic-tiny", PRESETS["synthetic-tiny"].replace(
        num_images=8, num_val_images=4, image_size=(16, 16), epochs=1, eval_every=1, nc_every=1, nc_max_images=4,
        batch_size=4))
    study = accuracy_vs_frequency(tmp_path / "runs", data_root=tmp_path / "nowhere")
    assert study["source"] == "synthetic"
    assert "cifar10-lt data not found" in study["message"] and "download=True" in study["message"]
    assert "\n" not in study["message"]
    f, a = study["frequency"], study["accuracy"]
    assert f.max() == 1.0 and len(f) == len(a) == 8
    keep = np.isfinite(a) & (study["counts"] > 0)
    if keep.sum() >= 3 and np.ptp(a[keep]) > 0:
        assert study["pearson"] == pytest.approx(pearsonr(a[keep], f[keep]).statistic)
    assert (study["run_dir"] / "metrics.json").exists()  # cached run dir
    with pytest.raises(FileNotFoundError):
        accuracy_vs_frequency(tmp_path / "runs2", data_root=tmp_path / "nowhere", fallback=False)
    fig = class_accuracy_figure([1.0, 0.5, 0.1], [0.9, 0.6, 0.2], pearson=0.99, title="demo")
    assert list(fig.data[0].y) == [0.9, 0.6, 0.2] and "0.99" in fig.layout.title.text
