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
    assert "R = 1000" in explorer.headline.value
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
    assert "no minority pair" in explorer.headline.value
    explorer.kb_slider.value = 3


def test_nc_bars_show_true_values_with_names():
    """Bars stand at their true values (no floor hiding 1e-20 vs 1e-12), labelled with them; 0 sits on the floor."""
    from ceco_lite.plotting.geometry import NC_BAR_KEYS, minority_collapse_figure, nc_bar_values, update_nc_bars

    stats = {key: v for (key, _), v in zip(NC_BAR_KEYS, (8e-20, 0.0, 0.3, 1.2e10, float("nan"), 1e-3, 2.0))}
    heights, labels, (lo, hi), dtick = nc_bar_values(stats)
    assert labels == ["8.0e-20", "0", "3.0e-01", "1.2e+10", "n/a", "1.0e-03", "2.0e+00"]
    assert heights[0] == 8e-20 and heights[3] == 1.2e10
    assert lo < -19.3 and hi > 10.08 and 10 ** lo < heights[1] < 8e-20  # zero drawn at the floor, below 8e-20
    assert dtick >= 1 and (hi - lo) / dtick <= 9  # at most ~8 tick labels
    fig = minority_collapse_figure()
    update_nc_bars(fig, stats)
    assert list(fig.data[6].x) == [label for _, label in NC_BAR_KEYS]  # names set at build time
    assert list(fig.data[6].text) == labels and fig.layout.yaxis4.type == "log"
    assert fig.layout.yaxis4.exponentformat == "power"


def test_nc1_pseudo_inverse_blows_up_when_minority_means_merge():
    """Papyan's NC1 reads huge while Tr Σ_W / Tr Σ_B is tiny when two class means nearly coincide.

    Σ_B then has an eigenvalue near 0 but not 0, and its pseudo-inverse amplifies the small
    within-class spread (constructed here; in lesson 2 at R = 1000 it is float64 round-off, whose
    size depends on the CPU). The widget's info line says so, and only in that case.
    """
    from ceco_lite import nc_metrics

    g = np.random.default_rng(0)
    means = np.zeros((4, 6))
    means[[0, 1, 2], [0, 1, 2]] = 1.0
    means[3] = means[2] + 1e-5 * g.standard_normal(6)  # two merged minority means
    labels = np.repeat(np.arange(4), 50)
    features = means[labels] + 1e-6 * g.standard_normal((200, 6))
    stats = nc_metrics(features, labels, 4, ignore_index=None)
    assert stats["nc1"] > 1e6 * stats["nc1_quotient"] and stats["nc1_quotient"] < 1e-9

    ex = MinorityCollapseExplorer(num_classes=10, dim=16, imbalance_ratio=1000.0, num_minority=2,
                                  ratios=(1, 1000), steps=600)
    assert ex.stats["nc1_quotient"] < 1e-12  # collapsed, whatever NC1's round-off reads on this CPU
    ex.stats.update(nc1=stats["nc1"], nc1_quotient=stats["nc1_quotient"])  # the constructed case
    assert "pseudo-inverse" in ex._nc1_note() and "nearly singular" in ex._nc1_note()
    ex.r_slider.value = 1.0  # balanced: both forms at round-off, no note
    assert ex.stats["nc1"] < 1e-8 and "pseudo-inverse" not in ex.info.value


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
    # the fallback describes itself: IoU against pixel frequency, and computed sentences that hold
    assert study["score_name"] == "class IoU" and "pixel" in study["frequency_name"]
    assert "synthetic" in study["title"] and "CIFAR" not in study["title"].replace("no CIFAR-10 found", "")
    from ceco_lite.verdicts import holds

    assert len(study["verdicts"]) >= 3 and all(holds(v.to_dict()) for v in study["verdicts"])
    assert all("IoU" in v.text or "Pearson" in v.text for v in study["verdicts"])
    fig = class_accuracy_figure([1.0, 0.5, 0.1], [0.9, 0.6, 0.2], pearson=0.99, title="demo")
    assert [tr.y[0] for tr in fig.data[:3]] == [0.9, 0.6, 0.2] and "0.99" in fig.layout.title.text
