"""Run orchestration (ceco_lite.engine.runs), figures and tables of runs (ceco_lite.plotting.runs/tables),
the t-SNE explorer and the full-scale plan (lesson 5)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ceco_lite.engine import get_preset, load_snapshots, run_dir, run_or_load, snapshot_callback
from ceco_lite.engine.data import decode_batch, load_data
from ceco_lite.engine.studies import full_scale_plan
from ceco_lite.plotting.runs import lambda_sweep_plot, per_class_iou_figure, rarest_class_overlays, summary_rows
from ceco_lite.plotting.tables import ablation_table, results_table
from ceco_lite.published import CECO_TABLE1, CECO_TABLE2
from ceco_lite.widgets import TSNEExplorer
from test_plotting import png_pixels

TINY = dict(num_classes=4, image_size=(16, 16), num_images=16, num_val_images=8, batch_size=8, epochs=3,
            nc_max_images=8, device="cpu")


def _tiny(**kw):
    return get_preset("synthetic-cpu", **{**TINY, **kw})


def test_config_tag_tracks_results_not_bookkeeping():
    a = _tiny(ceco_lambda=0.4)
    assert a.tag() == a.replace(progress=False, num_threads=1, out_dir="/x", resume=True).tag()
    assert a.tag() != a.replace(ceco_lambda=0.2).tag()
    assert a.tag() != a.replace(fixed_pixel_classifier=True).tag()
    assert run_dir(a, "/r").name == f"lam0.4-seed0-{a.tag()}"
    assert run_dir(a, "/r") != run_dir(a.replace(epochs=4), "/r")


def test_run_or_load_trains_once_and_snapshots_epochs(tmp_path):
    cfg = _tiny(ceco_lambda=0.4)
    cb = snapshot_callback(cfg, tmp_path, [1, 3], max_images=4)
    first = run_or_load(cfg, tmp_path, callback=cb)
    assert len(first.history) == 3 and first.run_dir == run_dir(cfg, tmp_path)
    snaps = load_snapshots(first)
    assert sorted(snaps) == [1, 3]
    feats, labels = snaps[3]
    assert feats.shape[0] == 4 and feats.shape[1] == first.model.feature_dim
    assert labels.shape == (4,) + tuple(feats.shape[2:])
    # the final snapshot equals the trained model's own features on the same images
    x = load_data(cfg).val_x[:4]
    with torch.no_grad():
        ref = first.model.cpu().eval()(x)["features"].float()
    torch.testing.assert_close(feats, ref)
    t0 = time.perf_counter()
    again = run_or_load(cfg, tmp_path)  # finished: loaded, not retrained
    assert time.perf_counter() - t0 < 30
    assert again.history == first.history and again.metrics["miou"] == pytest.approx(first.metrics["miou"])


def test_tables_and_figures_from_results():
    groups = {"head": [1], "common": [0], "tail": [2]}
    mk = lambda miou, pc, nc: SimpleNamespace(metrics={
        "miou": miou, "head": pc[1], "common": pc[0], "tail": pc[2], "per_class": pc, "groups": groups,
        "class_counts": [50, 100, 1], "time_per_step": 0.1, "nc": {"equiangularity_centers": nc, "nc1": 1.0}},
        history=[{"epoch": 1, "nc": {"equiangularity_centers": nc + 0.1}}, {"epoch": 2, "nc": {"equiangularity_centers": nc}}],
        score=miou)
    res = {"baseline": mk(30.0, [20.0, 60.0, 10.0], 0.5), "CeCo": mk(35.0, [30.0, 61.0, 14.0], 0.3)}
    rows = summary_rows(res)
    assert rows["CeCo"]["tail"] == 14.0 and rows["baseline"]["equiangularity_centers"] == 0.5
    html = results_table(res, nc_keys=("equiangularity_centers",))
    assert "<td>35.0</td>" in html and "equiang. centres" in html
    fig = per_class_iou_figure(res, ["a", "b", "c"])
    assert list(fig.data[0].x) == ["b [H]", "a [C]", "c [T]"]  # sorted by training frequency
    assert list(fig.data[1].y) == [61.0, 30.0, 14.0]
    sweep = lambda_sweep_plot({0.0: res["baseline"], 0.4: res["CeCo"]})
    assert list(sweep.data[0].customdata) == [30.0, 35.0] and list(sweep.data[0].y) == [0.0, 5.0]
    scannet = [CECO_TABLE2[k][0] for k in sorted(CECO_TABLE2)]
    assert list(sweep.data[1].customdata) == scannet
    assert list(sweep.data[1].y) == [v - scannet[0] for v in scannet]
    table = ablation_table({("learned", None): res["baseline"], ("learned", "fixed"): res["CeCo"]})
    assert "PC learned / CC fixed" in table and f"<td>{CECO_TABLE1[('learned', 'fixed')][0]:.1f}</td>" in table


def test_tsne_explorer_switches_run_epoch_and_classes():
    rng = np.random.default_rng(0)
    lab = np.array([0, 0, 1, 1, 2, 2])
    emb = {(r, e): {"embedding": rng.standard_normal((6, 2)).astype(np.float32), "labels": lab}
           for r in ("baseline", "CeCo") for e in (1, 5)}
    ex = TSNEExplorer(emb, ["a", "b", "c"], groups={"head": [0], "common": [1], "tail": [2]})
    np.testing.assert_allclose(ex.figure.data[0].x, emb[("baseline", 5)]["embedding"][:2, 0])
    ex.run.value = "CeCo"
    np.testing.assert_allclose(ex.figure.data[0].x, emb[("CeCo", 5)]["embedding"][:2, 0])
    ex.epoch.value = 1
    np.testing.assert_allclose(ex.figure.data[2].y, emb[("CeCo", 1)]["embedding"][4:, 1])
    ex.subset.value = "tail"
    assert [tr.visible for tr in ex.figure.data] == [False, False, True]
    assert "CeCo, epoch 1, tail" in ex.figure.layout.title.text
    with pytest.raises(KeyError):
        ex.update(run="other")


def test_rarest_class_overlays_rank_images_by_tail_pixels():
    class Const(torch.nn.Module):  # predicts class 1 everywhere
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
            logits[:, 1] = 1.0
            return {"logits": logits}

    masks = torch.zeros(3, 4, 4, dtype=torch.long)
    masks[1, :2] = 2   # 8 tail pixels
    masks[2, 0, 0] = 2  # 1 tail pixel
    res = {"m": SimpleNamespace(metrics={"groups": {"tail": [2]}}, model=Const())}
    fig = rarest_class_overlays(res, torch.rand(3, 3, 4, 4), masks, num_images=2, num_classes=3)
    assert len(fig.data) == 2 * 3  # image, ground truth, prediction per column
    gt_first = png_pixels(fig.data[1].source)
    assert (gt_first[:2] == gt_first[0, 0]).all() and not np.array_equal(gt_first[0, 0], gt_first[3, 0])


def test_rarest_class_overlays_decodes_uint8_images_for_the_model():
    seen = []

    class Record(torch.nn.Module):  # remembers its input, predicts class 0
        def forward(self, x):
            seen.append(x)
            return {"logits": torch.zeros(x.shape[0], 3, *x.shape[2:])}

    images = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)
    masks = torch.zeros(3, 4, 4, dtype=torch.long)
    res = {"m": SimpleNamespace(metrics={"groups": {"tail": [2]}}, model=Record())}
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    rarest_class_overlays(res, images, masks, num_images=3, num_classes=3,
                          decode=lambda x: decode_batch(x, mean=mean, std=std))
    expected = decode_batch(images, mean=mean, std=std)
    assert seen[0].dtype == torch.float32
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)


def test_full_scale_plan_smoke_and_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg, msg, full = full_scale_plan(data_root=tmp_path)
    assert not full and cfg.dataset == "synthetic" and "No real data set was found" in msg
    assert "cityscapes data not found" in msg and "cifar10-lt data not found" in msg
    assert cfg.max_steps == 2
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    cfg, msg, full = full_scale_plan(data_root=tmp_path)
    assert not full and cfg.dataset == "cifar10-lt" and cfg.max_steps == 2 and cfg.device == "cpu"
    assert "No CUDA GPU" in msg and "smoke" in msg
    cfg, msg, full = full_scale_plan(data_root=tmp_path, smoke=False)
    assert full and cfg.epochs == get_preset("cifar10-lt").epochs


def test_imbalance_verdicts_state_the_measured_ratio():
    from ceco_lite.engine.studies import imbalance_verdicts
    from ceco_lite.verdicts import holds
    vs = imbalance_verdicts({"a": {"pixel_if": 108.0, "center_if": 2.1, "num_images": 367},
                             "b": {"pixel_if": 3.0, "center_if": 4.0}, "c": {"pixel_if": 5.0, "center_if": 5.0}})
    assert [v.relation for v in vs] == ["greater", "less", "equal"]
    assert all(holds(v.to_dict()) for v in vs)
    assert vs[0].text.startswith("a (367 images):") and f"{108 / 2.1:.1f} times" in vs[0].text
    assert vs[1].extra == {"dataset": "b"} and "below" in vs[1].text


def test_studies_without_real_data_say_so_and_fall_back(tmp_path):
    from ceco_lite.engine.studies import camvid_comparison, classification_nc_history
    runs, message = camvid_comparison(tmp_path / "runs", data_root=tmp_path)
    assert runs is None and "camvid data not found" in message
    cls = classification_nc_history(tmp_path / "runs", data_root=tmp_path, ufm_steps=40, ufm_points=3)
    assert cls["source"] == "ufm" and cls["result"] is None and "cifar10-lt data not found" in cls["message"]
    assert [h["epoch"] for h in cls["history"]] == [0, 20, 40]
    first, last = cls["history"][0]["nc"], cls["history"][-1]["nc"]
    # balanced unconstrained features collapse: the statistics fall from their random start
    assert last["equiangularity_centers"] < first["equiangularity_centers"]
    assert last["nc1"] < first["nc1"]
    with pytest.raises(ValueError, match="ufm_points"):
        classification_nc_history(tmp_path / "runs", data_root=tmp_path, ufm_points=1)


def test_per_class_iou_figure_selected_classes():
    res = {"r": SimpleNamespace(metrics={"per_class": [10.0, 20.0, 30.0], "class_counts": [3, 2, 1],
                                         "groups": {"head": [0], "common": [1], "tail": [2]}})}
    fig = per_class_iou_figure(res, ["a", "b", "c"], classes=["c", 0])
    assert list(fig.data[0].x) == ["c [T]", "a [H]"] and list(fig.data[0].y) == [30.0, 10.0]
    with pytest.raises(ValueError, match="classes"):
        per_class_iou_figure(res, ["a", "b", "c"], classes=["d"])
    with pytest.raises(ValueError, match="classes"):
        per_class_iou_figure(res, ["a", "b", "c"], classes=[3])
