"""Tests of ceco_lite.plotting.segmentation (figure builders of lessons 3, 5, 6)."""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from ceco_lite.plotting import segmentation as ps


def test_colorize_mask_matches_a_loop():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, size=(5, 7))
    mask[0, 0] = 255
    pal = rng.integers(0, 256, size=(4, 3)).astype(np.uint8)
    rgb = ps.colorize_mask(mask, pal, ignore_color=(1, 2, 3))
    for i in range(5):
        for j in range(7):
            want = (1, 2, 3) if mask[i, j] == 255 else tuple(pal[mask[i, j]])
            assert tuple(rgb[i, j]) == want
    with pytest.raises(ValueError, match="palette has"):
        ps.colorize_mask(mask, pal[:2])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        ps.colorize_mask(mask[None], pal)


def test_class_histogram_is_sorted_and_normalised():
    pixels = np.array([10, 1000, 0, 50])
    centres = np.array([5, 20, 0, 10])
    fig = ps.class_histogram_figure(pixels, centres, ["a", "b", "c", "d"])
    assert isinstance(fig, go.Figure) and not isinstance(fig, go.FigureWidget)  # static: no widget comm
    assert list(fig.data[0].x) == ["b", "d", "a", "c"]
    np.testing.assert_allclose(fig.data[0].y[:3], [1.0, 0.05, 0.01])
    np.testing.assert_allclose(fig.data[1].y[:3], [1.0, 0.5, 0.25])
    assert np.isnan(fig.data[0].y[3])  # an absent class is not drawn on the log axis
    ps.update_class_histogram(fig, pixels[::-1], centres[::-1], ["d", "c", "b", "a"])
    assert list(fig.data[0].x) == ["b", "d", "a", "c"]


def png_pixels(uri: str) -> np.ndarray:
    """The ``(H, W, 3)`` pixels of a ``data:image/png;base64`` URI, decoded independently of the library."""
    head, data = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_png_data_uri_is_lossless_and_checks_its_input():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(png_pixels(ps.png_data_uri(rgb)), rgb)
    with pytest.raises(ValueError, match="rgb"):
        ps.png_data_uri(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="rgb"):
        ps.png_data_uri(rgb[..., 0])


def test_mask_grid_update_changes_pictures_and_checks_shape():
    imgs = [np.zeros((3, 4, 4), dtype=np.float32), np.ones((3, 4, 4), dtype=np.float32)]
    masks = [np.zeros((4, 4), dtype=int), np.ones((4, 4), dtype=int)]
    fig = ps.mask_grid_figure(imgs, {"gt": masks}, num_classes=2)
    assert len(fig.data) == 4
    before = [tr.source for tr in fig.data]
    # the pictures are PNGs of the images and of the colourised masks (image, mask per column)
    np.testing.assert_array_equal(png_pixels(fig.data[1].source), ps.colorize_mask(masks[0], num_classes=2))
    np.testing.assert_array_equal(png_pixels(fig.data[2].source), np.full((4, 4, 3), 255, dtype=np.uint8))
    ps.update_mask_grid(fig, imgs, {"gt": masks[::-1]}, num_classes=2)
    np.testing.assert_array_equal(png_pixels(fig.data[1].source), ps.colorize_mask(masks[1], num_classes=2))
    after = [tr.source for tr in fig.data]
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
    with pytest.raises(ValueError, match="panels"):
        ps.update_mask_grid(fig, imgs[:1], {"gt": masks[:1]}, num_classes=2)


def test_curves_and_bars_update_by_name():
    fig = ps.curves_figure({"a": ([1, 2], [3, 4]), "b": ([1, 2], [5, 6])}, reference=0.0)
    ps.update_curves(fig, {"b": ([1, 2, 3], [0, 0, 0])})
    assert list(fig.data[1].y) == [0, 0, 0] and list(fig.data[0].y) == [3, 4]
    with pytest.raises(KeyError, match="no curve"):
        ps.update_curves(fig, {"c": ([1], [1])})
    bars = ps.grouped_bars_figure(["x", "y"], {"r1": [1.0, None]})
    assert bars.data[0].text == ("1.0", "")
    ps.update_grouped_bars(bars, ["x", "y"], {"r1": [2.0, 3.0]})
    assert list(bars.data[0].y) == [2.0, 3.0]


def test_embedding_figure_one_trace_per_class_and_visibility():
    emb = np.arange(12, dtype=float).reshape(6, 2)
    lab = np.array([0, 1, 1, 2, 2, 2])
    fig = ps.embedding_figure(emb, lab, ["a", "b", "c"])
    assert [len(t.x) for t in fig.data] == [1, 2, 3]
    ps.update_embedding(fig, emb[::-1], lab, visible_classes=[2], title="t")
    assert [t.visible for t in fig.data] == [False, False, True]
    assert list(fig.data[2].x) == [4.0, 2.0, 0.0] and fig.layout.title.text == "t"


def test_cluster_sizes_sorted():
    fig = ps.cluster_sizes_figure([1, 5, 3], {"w": [2, 2, 5]})
    assert list(fig.data[0].y) == [5, 3, 1] and list(fig.data[1].y) == [5, 2, 2]
    ps.update_cluster_sizes(fig, [4, 4, 1], {"w": [0, 9, 0]}, title="new")
    assert list(fig.data[1].y) == [9, 0, 0] and fig.layout.title.text == "new"


def test_lambda_and_if_figures():
    f = ps.lambda_sweep_figure([0, 0.4], [10, 12], {"P": [1, 2, 3]}, paper_lambdas=[0, 0.2, 0.4])
    assert f.data[1].yaxis in (None, "y") and list(f.data[1].x) == [0, 0.2, 0.4]  # one axis for all curves
    assert list(f.data[0].y) == [0, 2] and list(f.data[1].y) == [0, 1, 2]  # gain over each curve's λ = 0
    assert list(f.data[1].customdata) == [1, 2, 3]  # absolute mIoU in the hover
    g = ps.imbalance_factor_figure([("a", 100.0, 10.0)])
    assert g.layout.yaxis.type == "log" and list(g.data[1].y) == [10.0]
