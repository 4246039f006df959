"""Lesson 1 widgets: setting a slider's value changes the figure, and what is drawn is right."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from ceco_lite import lemma1_bound  # noqa: E402
from ceco_lite.widgets import ETFExplorer, Lemma1Explorer, SpreadAnimation  # noqa: E402


def test_etf_explorer_k_slider_redraws_gram_and_vectors():
    ex = ETFExplorer(num_classes=4)
    gram = np.array(ex.figure.data[3].z)
    assert gram.shape == (4, 4)
    np.testing.assert_allclose(gram[~np.eye(4, dtype=bool)], -1 / 3, atol=1e-12)
    assert len(ex.figure.data[0].x) == 4
    assert ex.figure.data[2].visible is not False and len(ex.figure.data[2].i) == 4  # tetrahedron: 4 faces
    # the first slider of lesson 1: moving it must change the plot
    ex.k_slider.value = 6
    gram = np.array(ex.figure.data[3].z)
    assert gram.shape == (6, 6)
    np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-12)
    np.testing.assert_allclose(gram[~np.eye(6, dtype=bool)], -0.2, atol=1e-12)
    assert len(ex.figure.data[0].x) == 6 and "K = 6" in ex.figure.layout.title.text
    assert "projection" in ex.figure.layout.title.text
    ex.k_slider.value = 4
    assert "projection" not in ex.figure.layout.title.text
    assert ex.k_slider.description  # a visible label for the browser test


def test_etf_explorer_rotation_button_changes_vectors_not_gram():
    ex = ETFExplorer(num_classes=3)
    before_x = np.array(ex.figure.data[0].x)
    gram_before = np.array(ex.figure.data[3].z)
    ex.rotate_button.click()
    assert not np.allclose(np.array(ex.figure.data[0].x), before_x)
    np.testing.assert_allclose(np.array(ex.figure.data[3].z), gram_before, atol=1e-12)


def test_lemma1_random_sets_never_beat_the_bound():
    ex = Lemma1Explorer(num_classes=4, dim=3, num_sets=300)
    assert len(ex.figure.data[0].x) == 300
    ex.k_slider.value = 6
    values = np.array(ex.figure.data[0].x)
    assert float(ex.max_cosines.min()) >= lemma1_bound(6)
    assert values.min() >= -0.2 - 1e-12
    assert ex.figure.data[1].x[0] == pytest.approx(-0.2)
    assert "K = 6" in ex.figure.layout.title.text
    # d = 5 = K - 1: the optimiser reaches the bound (an ETF exists)
    ex.dim_slider.value = 5
    assert ex.optimiser_value == pytest.approx(-0.2, abs=1e-6)
    ex.sets_slider.value = 200
    assert len(ex.figure.data[0].x) == 200


def test_spread_animation_steps_and_converges():
    anim = SpreadAnimation(num_classes=4, dim=3)
    x0 = np.array(anim.figure.data[0].x)
    last = anim.step_slider.max
    assert last == anim.play.max and last > 1
    anim.step_slider.value = last
    assert not np.allclose(np.array(anim.figure.data[0].x), x0)
    assert anim.figure.data[4].x[0] == int(anim.history.snapshot_steps[-1])
    assert anim.figure.data[4].y[0] == pytest.approx(-1 / 3, abs=1e-6)  # Lemma 1 equality: an ETF
    anim.k_slider.value = 5  # d = 3 < K - 1 = 4: stays above the bound
    assert anim.step_slider.value == 0
    assert float(anim.history.max_cosine[-1]) > lemma1_bound(5) + 0.1
    assert "no ETF" in anim.figure.layout.title.text


def test_widgets_restore_torch_threads():
    before = torch.get_num_threads()
    ETFExplorer(num_classes=3).k_slider.value = 4
    assert torch.get_num_threads() == before
