"""Lesson 4 widget and checks: gradient flow of the centre loss (CeCo paper Eq. 6-8)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from ceco_lite.closed_forms import (  # noqa: E402
    DIFFERENCE_KEYS,
    check_closed_forms,
    check_errata,
    closed_form_verdict,
    long_tail_sizes,
    synthetic_pixel_features,
)
from ceco_lite.verdicts import holds  # noqa: E402
from ceco_lite.widgets import GradientFlowExplorer  # noqa: E402


@pytest.fixture(scope="module")
def explorer():
    return GradientFlowExplorer(num_classes=5, dim=6, imbalance_factor=1.0, n_max=400)


def test_long_tail_sizes_and_features():
    sizes = long_tail_sizes(4, 8.0, 800)
    assert sizes.tolist() == [800, 400, 200, 100]
    means = torch.eye(3, dtype=torch.float64)
    z, y = synthetic_pixel_features(means, torch.tensor([3, 2, 1]), noise=0.0)
    assert y.tolist() == [0, 0, 0, 1, 1, 2]
    torch.testing.assert_close(z, means.T[y])


def test_imbalance_slider_shrinks_minority_distance_but_not_etf(explorer):
    K = 5
    balanced = np.array(explorer.distance_figure.data[0].z)
    explorer.if_slider.value = 1000.0
    skewed = np.array(explorer.distance_figure.data[0].z)
    assert skewed[-1, -2] < 0.5 * balanced[-1, -2]  # minority collapse of the learned classifier
    etf = np.array(explorer.distance_figure.data[1].z)
    expected = explorer.alpha_slider.value * math.sqrt(2 * K / (K - 1))
    np.testing.assert_allclose(etf[~np.eye(K, dtype=bool)], expected, rtol=1e-10)
    # Eq. 8: per-pixel gradients scale like 1/n_k -> the rarest class gets much larger ones
    pix = np.array(explorer.figure.data[3].y)
    assert pix[-1] > 10 * pix[0]
    sizes = long_tail_sizes(K, 1000.0, 400).tolist()
    assert list(explorer.figure.data[0].x) == [f"{k}<br>n={n}" for k, n in enumerate(sizes)]  # every class named
    # the log panel's range spans every bar (decades), the left panel stays linear
    lo, hi = explorer.figure.layout.yaxis2.range
    both = np.concatenate([np.array(explorer.figure.data[2].y), pix])
    assert lo <= np.log10(both.min()) and np.log10(both.max()) <= hi
    assert explorer.figure.layout.yaxis.type != "log" and explorer.figure.layout.yaxis2.type == "log"
    assert "n_k" not in (explorer.figure.layout.yaxis2.title.text or "")


def test_lambda_scales_gradients_linearly_and_alpha_scales_etf(explorer):
    explorer.ceco_lambda_slider.value = 0.5
    within = np.array(explorer.figure.data[0].y)
    explorer.ceco_lambda_slider.value = 1.0
    np.testing.assert_allclose(np.array(explorer.figure.data[0].y), 2 * within, rtol=1e-12)
    explorer.alpha_slider.value = 2.0
    etf = np.array(explorer.distance_figure.data[1].z)
    assert etf[0, 1] == pytest.approx(2.0 * math.sqrt(2 * 5 / 4))
    # the ETF heatmap carries no numbers: its title gives its one distance, α√(2K/(K−1)) = 3.16 at α = 2
    assert explorer.distance_figure.data[1].texttemplate == "" and explorer.distance_figure.data[0].texttemplate
    assert explorer.distance_figure.layout.annotations[1].text.endswith(f"every pair {2.0 * math.sqrt(2 * 5 / 4):.2f}")
    within_plus_between = explorer.grads_learned.grad_weight_within + explorer.grads_learned.grad_weight_between
    torch.testing.assert_close(within_plus_between, explorer.grads_learned.grad_weight)


def test_closed_forms_match_autograd(explorer):
    sizes, feats, labels, w = explorer._state(explorer.if_slider.value)
    report = check_closed_forms(feats, labels, w, 5)
    assert report["max |dL/dW|"] > 1e-3 and report["max |dL/dz_i|"] > 1e-6  # non-trivial gradients
    for key in ("loss", "dL/dW (Eq. 6)", "within + between - dL/dW", "dL/dz_i (Eq. 8)"):
        assert report[key] < 1e-12, (key, report[key])


def test_errata_measured():
    out = check_errata(6, 8, alpha=1.5)
    assert out["measured_distance"] == pytest.approx(1.5 * math.sqrt(12 / 5), rel=1e-12)
    assert out["min_distance"] == pytest.approx(out["measured_distance"], rel=1e-12)
    assert out["measured_squared_unit"] == pytest.approx(out["paper_distance"], rel=1e-12)  # 2K/(K-1) is the square
    assert out["paper_distance"] != pytest.approx(out["corrected_distance"])
    assert out["eq4_corrected_module"] == pytest.approx(out["eq4_corrected"], rel=1e-12)
    assert abs(out["eq4_literal"] - out["eq4_corrected"]) > 1e-3


def test_closed_form_verdict_follows_the_numbers(explorer):
    sizes, feats, labels, w = explorer._state(explorer.if_slider.value)
    report = check_closed_forms(feats, labels, w, 5)
    v = closed_form_verdict(report)
    assert v.relation == "less" and holds(v.to_dict()) and "agree" in v.text
    bad = dict(report)
    bad["dL/dz_i (Eq. 8)"] = 0.1  # a wrong closed form
    v = closed_form_verdict(bad)
    assert v.relation == "greater" and holds(v.to_dict()) and "NOT" in v.text and "dL/dz_i" in v.text
    assert set(DIFFERENCE_KEYS) <= set(report)


def test_sliders_of_lesson_4_can_be_dragged(explorer):
    from ceco_lite.widgets._controls import track_width_px

    for s in (explorer.if_slider, explorer.ceco_lambda_slider, explorer.alpha_slider):
        assert len(s.description) <= 4 and s.tooltip
        assert track_width_px(int(s.layout.width.removesuffix("px")),
                              int(s.style.description_width.removesuffix("px"))) >= 150


def test_every_slider_value_is_trained_in_advance_as_one_training_per_value_would(explorer):
    """The batched training of every IF slider position gives exactly the model one training per value gives,
    and a slider move then trains nothing (no busy sign)."""
    from ceco_lite.ufm import train_ufm
    values = explorer._slider_values()
    assert len(values) == 61 and values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(1000.0)
    assert set(explorer._trained) == {round(v, 6) for v in values}
    for v in (values[0], values[37], values[-1]):
        sizes = long_tail_sizes(5, v, 400).to(torch.float64)
        alone = train_ufm(sizes, 6, classifier="learned", **explorer.ufm_kwargs)
        torch.testing.assert_close(explorer._trained[round(v, 6)].classifier, alone.classifier, rtol=0, atol=1e-12)
    shown = []
    explorer.busy_sign.line.observe(lambda change: shown.append(change["new"]), names="value")
    explorer.if_slider.value = values[45]
    assert not any("training" in text for text in shown)
    explorer.update(imbalance_factor=7.5)  # off the grid: trained now, with the busy sign
    assert any("training" in text for text in shown)


def test_distance_heatmap_title_names_the_range_of_unequal_pairs():
    from ceco_lite.plotting.geometry import distance_heatmaps_figure, update_distance_heatmaps

    fig = distance_heatmaps_figure(3)
    unequal = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
    update_distance_heatmaps(fig, dist_learned=unequal, dist_fixed=unequal)
    assert fig.layout.annotations[1].text.endswith("pairs 1.00 … 2.00")
    assert fig.data[0].zmax == fig.data[1].zmax == 2.0
