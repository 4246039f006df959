"""Lesson 1 widgets: setting a slider's value changes the figure, and what is drawn is right."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from ceco_lite import lemma1_bound, simplex_etf  # noqa: E402
from ceco_lite.plotting import geometry  # noqa: E402
from ceco_lite.widgets import ETFExplorer, Lemma1Explorer, SpreadAnimation  # noqa: E402


def test_etf_explorer_k_slider_redraws_gram_and_vectors():
    ex = ETFExplorer(num_classes=4)
    gram = np.array(ex.gram_figure.data[0].z)
    assert gram.shape == (4, 4)
    np.testing.assert_allclose(gram[~np.eye(4, dtype=bool)], -1 / 3, atol=1e-12)
    assert len(ex.figure.data[0].x) == 4
    assert ex.figure.data[3].visible is not False and len(ex.figure.data[3].i) == 4  # tetrahedron: 4 faces
    # the first slider of lesson 1: moving it must change the plot
    ex.k_slider.value = 6
    gram = np.array(ex.gram_figure.data[0].z)
    assert gram.shape == (6, 6)
    np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-12)
    np.testing.assert_allclose(gram[~np.eye(6, dtype=bool)], -0.2, atol=1e-12)
    assert len(ex.figure.data[0].x) == 6 and "K = 6" in ex.headline.value
    assert "projection" in ex.headline.value
    assert list(ex.gram_figure.data[0].x) == ["m₁", "m₂", "m₃", "m₄", "m₅", "m₆"]
    ex.k_slider.value = 4
    assert "projection" not in ex.headline.value
    assert ex.k_slider.description  # a visible label for the browser test


def test_etf_vertex_labels_never_share_a_point():
    """Each label sits on its vertex's ray beyond the vertex: distinct vertices give distinct label points."""
    from ceco_lite.plotting.geometry import LABEL_RADIUS

    for K in (2, 3, 4, 6, 12):
        ex = ETFExplorer(num_classes=K, max_classes=12)
        verts = np.stack([ex.figure.data[0][c] for c in "xyz"])
        labels = np.stack([ex.figure.data[1][c] for c in "xyz"])
        np.testing.assert_allclose(labels, LABEL_RADIUS * verts, atol=1e-12)
        if K <= 4:  # drawn exactly: labels pairwise at least the ETF distance apart
            gaps = np.linalg.norm(labels[:, :, None] - labels[:, None, :], axis=0)[~np.eye(K, dtype=bool)]
            assert gaps.min() >= LABEL_RADIUS * np.sqrt(2 * K / (K - 1)) - 1e-9


def test_etf_explorer_rotation_button_changes_vectors_not_gram():
    ex = ETFExplorer(num_classes=3)
    before_x = np.array(ex.figure.data[0].x)
    gram_before = np.array(ex.gram_figure.data[0].z)
    ex.rotate_button.click()
    assert not np.allclose(np.array(ex.figure.data[0].x), before_x)
    np.testing.assert_allclose(np.array(ex.gram_figure.data[0].z), gram_before, atol=1e-12)


def test_lemma1_random_sets_never_beat_the_bound():
    ex = Lemma1Explorer(num_classes=4, dim=3, num_sets=300)
    assert sum(ex.figure.data[0].y) == 300  # histogram bin counts of 300 sets
    ex.k_slider.value = 6
    assert float(ex.max_cosines.min()) >= lemma1_bound(6)
    # bins cover every value: the left edge of the first non-empty bin is above the bound
    centres, width = np.array(ex.figure.data[0].x), float(ex.figure.data[0].width)
    counts = np.array(ex.figure.data[0].y)
    assert centres[counts > 0].min() - width / 2 >= -0.2 - 1e-9
    assert ex.figure.data[1].x[0] == pytest.approx(-0.2)
    assert "K = 6" in ex.headline.value
    # d = 5 = K - 1: the optimiser reaches the bound (an ETF exists)
    ex.dim_slider.value = 5
    assert ex.optimiser_value == pytest.approx(-0.2, abs=1e-6)
    ex.sets_slider.value = 200
    assert sum(ex.figure.data[0].y) == 200


def test_lemma1_batched_max_cosine_matches_loop():
    """The widget's batched max_pairwise_cosine agrees with a brute-force loop over pairs."""
    ex = Lemma1Explorer(num_classes=5, dim=4, num_sets=100)
    gen = torch.Generator().manual_seed(ex.seed)
    sets = torch.randn(100, 4, 5, generator=gen, dtype=torch.float64)
    brute = []
    for v in sets:
        u = v / v.norm(dim=0)
        brute.append(max(float(u[:, i] @ u[:, j]) for i in range(5) for j in range(5) if i != j))
    np.testing.assert_allclose(ex.max_cosines.numpy(), brute, rtol=0, atol=1e-12)


def test_spread_animation_frames_and_convergence():
    anim = SpreadAnimation(num_classes=4, dim=3)
    fig = anim.figure
    snaps = anim.history.snapshot_steps.tolist()
    assert [f["name"] for f in fig["frames"]] == [str(t) for t in snaps] and len(snaps) > 2
    assert len(fig["layout"]["sliders"][0]["steps"]) == len(snaps)
    first, last = fig["frames"][0], fig["frames"][-1]
    assert not np.allclose(first["data"][0]["x"], last["data"][0]["x"])  # the vectors move
    np.testing.assert_allclose(last["data"][0]["x"], anim.history.vectors[-1][0].numpy())
    assert last["data"][2]["x"][0] == snaps[-1]
    assert last["data"][2]["y"][0] == pytest.approx(-1 / 3, abs=1e-6)  # Lemma 1 equality: an ETF
    assert None in last["data"][1]["x"]  # rays separated by null (JSON has no NaN)
    json.dumps(fig, allow_nan=False)
    assert len(anim.view.shown()["frames"]) == len(snaps)  # what the browser received
    anim.k_slider.value = 5  # d = 3 < K - 1 = 4: stays above the bound
    assert float(anim.history.max_cosine[-1]) > lemma1_bound(5) + 0.1
    title = anim.figure["layout"]["title"]["text"]
    assert "no ETF" in title and "R^" not in title and "ℝ<sup>3</sup>" in title
    before = anim.history.vectors[0].clone()
    anim.restart_button.click()  # a new random start
    assert not torch.allclose(anim.history.vectors[0], before)
    pane = anim.view.widget
    assert anim.view.shown()["frames"][0]["data"][0]["x"] == pytest.approx(anim.history.vectors[0][0].tolist())
    assert anim.view.widget is pane  # the new animation replaced the old one in the same pane


def test_widgets_restore_torch_threads():
    before = torch.get_num_threads()
    ETFExplorer(num_classes=3).k_slider.value = 4
    assert torch.get_num_threads() == before


def test_sliders_leave_room_for_their_tracks():
    """Every slider of lesson 1 has a short description and a fixed width with a track of >= 150 px."""
    from ceco_lite.widgets._controls import track_width_px

    for w in (ETFExplorer(num_classes=3), Lemma1Explorer(num_sets=100), SpreadAnimation(steps=20)):
        sliders = [c for c in vars(w).values() if hasattr(c, "readout") and hasattr(c, "description")]
        assert sliders
        for s in sliders:
            assert len(s.description) <= 12, s.description
            width = int(s.layout.width.removesuffix("px"))
            label = int(s.style.description_width.removesuffix("px"))
            assert track_width_px(width, label) >= 150


def _values(a):
    """A plotly JSON array: a list, or plotly's typed-array encoding ``{"dtype", "bdata"}``."""
    if isinstance(a, dict):
        return np.frombuffer(base64.b64decode(a["bdata"]), dtype=np.dtype(a["dtype"]).newbyteorder("<"))
    return np.asarray(a, dtype=float)


def test_etf_explorer_redraws_its_panes_with_the_new_etf():
    """The ETF explorer's two figures reach the browser through panes; a new rotation resends the 3-D view only."""
    ex = ETFExplorer(num_classes=4)
    view3d, gram_view = ex.views
    shown = view3d.shown()["data"]
    np.testing.assert_allclose(_values(shown[0]["x"]), ex.vectors[0].numpy())
    z = gram_view.shown()["data"][0]["z"]
    gram = _values(z).reshape(4, 4) if isinstance(z, dict) else np.array(z, dtype=float)
    np.testing.assert_allclose(gram, (ex.vectors.T @ ex.vectors).numpy())
    before = gram_view.data.spec
    ex.rotate_button.click()
    shown = view3d.shown()["data"]
    np.testing.assert_allclose(_values(shown[0]["x"]), ex.vectors[0].numpy())
    assert gram_view.data.spec is before  # the Gram matrix does not depend on the rotation: not resent
