"""Lesson 3: the synthetic-data explorer (set a slider, check the figure changed), the measured imbalance of
real data (ceco_lite.engine.studies) and the NC-curve figures of runs."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ceco_lite.engine.studies import accuracy_frequency_correlation, dataset_status, measured_imbalance
from ceco_lite.plotting.runs import imbalance_rows, nc_comparison_figure, nc_curves
from ceco_lite.published import IMBALANCE_FACTORS
from ceco_lite.widgets import SyntheticDataExplorer
from data_utils import make_synthetic_segmentation
from data_utils.synthetic import class_names


def _bruteforce_counts(masks, K):
    m = masks.numpy()
    pixels = np.array([(m == k).sum() for k in range(K)])
    centres = np.array([sum(bool((img == k).any()) for img in m) for k in range(K)])
    return pixels, centres


def test_explorer_sliders_regenerate_data_and_redraw():
    ex = SyntheticDataExplorer(num_classes=5, num_images=12, size=24, imbalance_factor=50.0, num_shown=2)
    hist_before = list(ex.figure.data[0].y)
    panels_before = [tr.source for tr in ex.samples.data]
    ex.worker.join()  # the other slider positions are generated in the background
    assert len(ex.cache) == 8 * 6  # 7 default imbalance factors and the initial 50, times 6 context strengths
    ex.imbalance.value = 10.0  # slider release -> update()
    _, masks = make_synthetic_segmentation(12, 5, 24, 10.0, seed=0, context_strength=0.8)
    pixels, centres = _bruteforce_counts(masks, 5)
    order = np.argsort(-pixels, kind="stable")
    np.testing.assert_allclose(ex.figure.data[0].y, pixels[order] / pixels.max())
    np.testing.assert_allclose(ex.figure.data[1].y, centres[order] / centres.max())
    assert list(ex.figure.data[0].y) != hist_before
    assert any(tr.source != b for tr, b in zip(ex.samples.data, panels_before))  # new PNG pictures
    assert f"{pixels.max() / pixels[pixels > 0].min():.1f}" in ex.status.value  # pixel IF printed
    panels_before = [tr.source for tr in ex.samples.data]
    ex.context.value = 0.0
    assert any(tr.source != b for tr, b in zip(ex.samples.data, panels_before))  # new PNG pictures


def test_explorer_generates_an_unstored_position_under_a_busy_sign(monkeypatch):
    ex = SyntheticDataExplorer(num_classes=4, num_images=6, size=16, imbalance_factor=20.0, num_shown=2,
                               imbalance_factors=(1.0,), context_strengths=(0.5,), precompute=False)
    assert [v for _, v in ex.imbalance.options] == [1.0, 20.0] and list(ex.cache) == [(20.0, 0.8)]
    seen = []
    real = ex.compute
    monkeypatch.setattr(ex, "compute", lambda f, c: (seen.append(("ceco-busy" in ex.widget._dom_classes, f, c)),
                                                     real(f, c))[1])
    ex.imbalance.value = 1.0
    assert seen == [(True, 1.0, 0.8)] and "ceco-busy" not in ex.widget._dom_classes
    ex.imbalance.value = 20.0  # stored: no generation
    assert len(seen) == 1
    assert ex.stats["pixel_if"] == pytest.approx(real(20.0, 0.8)[2]["pixel_if"])
    with pytest.raises(ValueError, match="context_strength"):
        SyntheticDataExplorer(context_strength=1.5, precompute=False)


def test_synthetic_class_names_mark_groups():
    names = class_names(6)
    assert names[0] == "0 (head)" and names[-1].endswith("(tail)") and len(names) == 6


def test_imbalance_rows_ours_then_paper():
    rows = imbalance_rows({"ours": {"pixel_if": 12.0, "center_if": 3.0}})
    assert rows[0] == ("ours", 12.0, 3.0)
    assert ("Cityscapes (paper)", 373.0, 20.0) in rows and len(rows) == 1 + len(IMBALANCE_FACTORS)


def _fake_cityscapes(root, split, city, labels_list):
    for i, labels in enumerate(labels_list):
        stem = f"{city}_000000_{i:06d}"
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        h, w = labels.shape
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        Image.fromarray(labels.astype(np.uint8), mode="L").save(
            root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


def test_measured_imbalance_counts_a_fake_cityscapes_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("CECO_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "cityscapes"
    a = np.full((8, 16), 7)       # labelId 7 = road (trainId 0)
    a[:2, :3] = 26                # car (trainId 13): 6 pixels
    a[7, :] = 0                   # unlabeled -> ignored
    b = np.full((8, 16), 7)
    b[0, 0] = 26                  # 1 car pixel
    _fake_cityscapes(root, "train", "aachen", [a, b])
    stats, msg = measured_imbalance("cityscapes", tmp_path, splits=("train",), size=(8, 16))
    assert stats is not None and "2 images" in msg
    assert stats["pixel_counts"][0] == (112 - 6) + 127 and stats["pixel_counts"][13] == 7
    assert stats["center_counts"][0] == 2 and stats["center_counts"][13] == 2
    assert stats["pixel_if"] == pytest.approx(233 / 7) and stats["class_names"][13] == "car"
    assert stats["palette"].shape == (19, 3)


def test_measured_imbalance_missing_data_says_how_to_get_it(tmp_path):
    stats, msg = measured_imbalance("cityscapes", tmp_path / "nowhere")
    assert stats is None and "cityscapes-dataset.com" in msg and "not found" in msg
    stats, msg = measured_imbalance("cityscapes", tmp_path)  # exists but holds no Cityscapes
    assert stats is None and "holds neither leftImg8bit" in msg


def test_dataset_status(tmp_path):
    assert dataset_status("synthetic") == (True, "")
    ok, msg = dataset_status("cifar10-lt", tmp_path)
    assert not ok and "download=True" in msg


def test_nc_curves_and_comparison_figure():
    hist = {"seg": [{"epoch": 1, "nc": {"a": 0.5, "b": 0.4}}, {"epoch": 4, "nc": {"a": 0.3, "b": 0.2}}],
            "cls": [{"epoch": 2, "nc": {"a": 0.9, "b": 0.1}}, {"epoch": 10}]}
    curves = nc_curves(hist, "nc.a")
    assert curves["seg"] == ([0.25, 1.0], [0.5, 0.3]) and curves["cls"] == ([1.0], [0.9])
    fig = nc_comparison_figure(hist, key="nc.a", classifier_key="nc.b", title="t", yaxis_title="y")
    names = [tr.name for tr in fig.data]
    assert names == ["seg: class means", "cls: class means", "seg: classifiers", "cls: classifiers"]
    assert fig.data[2].line.dash == "dash" and list(fig.data[2].y) == [0.4, 0.2]


def test_accuracy_frequency_correlation_matches_numpy():
    iou = [90.0, 50.0, 40.0, 5.0]
    pix = [1000, 300, 100, 10]
    cen = [10, 9, 6, 2]
    res = SimpleNamespace(metrics={"per_class": iou, "data_info": {"pixel_counts": pix, "center_counts": cen}})
    out = accuracy_frequency_correlation(res)
    assert out["pearson_pixel"] == pytest.approx(np.corrcoef(iou, np.array(pix) / 1000)[0, 1])
    assert out["pearson_center"] == pytest.approx(np.corrcoef(iou, np.array(cen) / 10)[0, 1])
