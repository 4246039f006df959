"""Training engine: configuration checks, schedules, metrics, batching, train() records,
checkpoints / resume, presets at tiny size (CPU)."""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
import torch

from ceco_lite.engine import PRESETS, TrainConfig, get_preset, train
from ceco_lite.engine.checkpoint import load_checkpoint
from ceco_lite.engine.data import iterate_batches, random_crop
from ceco_lite.engine.metrics import ConfusionEvaluator, scores_from_confusion
from ceco_lite.engine.schedule import LRFactor

pytestmark = pytest.mark.timeout(120)

TINY = dict(num_images=16, num_val_images=8, image_size=(16, 16), batch_size=8, nc_max_images=8, progress=False)


def tiny(**kw):
    return get_preset("synthetic-cpu", **{**TINY, **kw})


# ----------------------------------------------------------------------- config
def test_config_json_round_trip():
    cfg = get_preset("cifar10-lt", seed=3, ceco_lambda=0.2)
    back = TrainConfig.from_json(cfg.to_json())
    assert back == cfg and back.lr_milestones == (160, 180)
    assert json.loads(cfg.to_json())["ceco_lambda"] == 0.2


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"ceco_lambda": -0.1}, "ceco_lambda"),
        ({"ceco_lambda": float("nan")}, "ceco_lambda"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"schedule": "cosine"}, "schedule"),
        ({"ceco_variant": "other"}, "ceco_variant"),
        ({"image_size": (0, 4)}, "image_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_bad_config_rejected(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        get_preset("synthetic-cpu", **kw)


def test_unknown_preset_and_inconsistent_fields():
    with pytest.raises(ValueError, match="unknown preset 'nope'.*synthetic-cpu"):
        get_preset("nope")
    with pytest.raises(ValueError, match="num_classes must be 19"):
        get_preset("cityscapes", num_classes=5)
    with pytest.raises(ValueError, match="segmentation"):
        get_preset("cifar10-lt", in2nect_weight=0.2)
    with pytest.raises(ValueError, match="num_classes is required"):
        TrainConfig(dataset="synthetic")


def test_missing_data_root_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("CECO_DATA_DIR", str(tmp_path / "absent"))
    out = tmp_path / "run"
    for name in ("cityscapes-sample", "cifar10-lt"):
        with pytest.raises(FileNotFoundError, match="data_root"):
            train(get_preset(name, out_dir=str(out), progress=False))
    with pytest.raises(FileNotFoundError, match="holds neither"):
        train(get_preset("cityscapes", data_root=str(tmp_path), out_dir=str(out), progress=False))
    assert not out.exists()  # nothing was started


def test_model_task_mismatch_rejected():
    with pytest.raises(ValueError, match="classification"):
        train(tiny(model="resnet8"))


# -------------------------------------------------------------------- schedules
def _ldam_reference(lr, epoch):
    """LDAM-DRW cifar_train.py adjust_learning_rate (0-based epoch), transcribed."""
    epoch = epoch + 1
    if epoch <= 5:
        return lr * epoch / 5
    if epoch > 180:
        return lr * 0.0001
    if epoch > 160:
        return lr * 0.01
    return lr


def test_ldam_schedule_matches_reference():
    f = LRFactor("ldam", 200 * 7, 7, warmup_epochs=5, milestones=(160, 180), gamma=0.01)
    for epoch in range(200):
        for s in (0, 6):
            assert math.isclose(0.1 * f(epoch * 7 + s), _ldam_reference(0.1, epoch), rel_tol=1e-12)


def test_poly_schedule_in_optimizer():
    cfg = tiny(epochs=3, lr=0.2, schedule="poly", poly_power=0.9)
    res = train(cfg)
    steps_per_epoch = 16 // 8
    total = 3 * steps_per_epoch
    for rec in res.history:  # lr after the epoch's last step = lr0 (1 - t/T)^0.9
        assert math.isclose(rec["lr"], 0.2 * (1 - rec["step"] / total) ** 0.9, abs_tol=1e-12)


# ---------------------------------------------------------------------- metrics
def test_scores_match_sklearn():
    from sklearn.metrics import confusion_matrix, jaccard_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=(3, 7, 9))
    p = np.where(rng.random(y.shape) < 0.6, y, rng.integers(0, 5, size=y.shape))
    y[0, 0] = 255
    p[p == 4] = 3  # class 4 never predicted
    ev = ConfusionEvaluator(5, "segmentation")
    ev.update(torch.as_tensor(p), torch.as_tensor(y))
    out = ev.compute({"head": [0, 1], "common": [2], "tail": [3, 4]})
    keep = y != 255
    ref = jaccard_score(y[keep], p[keep], labels=range(5), average=None, zero_division=0)
    np.testing.assert_allclose(out["per_class"], 100 * ref, rtol=1e-12)
    assert math.isclose(out["miou"], 100 * np.nanmean(ref), rel_tol=1e-12)
    assert math.isclose(out["tail"], 100 * (ref[3] + ref[4]) / 2, rel_tol=1e-12)
    # classification: per-class accuracy = recall, top-1 = accuracy
    cm = torch.as_tensor(confusion_matrix(y[keep], p[keep], labels=range(5)))
    cls = scores_from_confusion(cm, "classification")
    assert math.isclose(cls["top1"], 100 * (y[keep] == p[keep]).mean(), rel_tol=1e-12)
    for k in range(5):
        assert math.isclose(cls["per_class"][k], 100 * (p[keep][y[keep] == k] == k).mean(), rel_tol=1e-12)


def test_absent_class_iou_is_nan_and_excluded():
    cm = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    out = scores_from_confusion(cm, "segmentation")
    assert math.isnan(out["per_class"][2])
    assert math.isclose(out["miou"], 100 * (5 / 8 + 3 / 6) / 2)


# ---------------------------------------------------------------------- batches
def test_distributed_shards_reassemble_the_global_batch():
    x = torch.arange(20.0).view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    y = torch.arange(20).view(20, 1, 1).expand(20, 2, 2).contiguous()
    kw = dict(seed=4, epoch=2, augment=True, task="segmentation")
    single = list(iterate_batches(x, y, 8, **kw))
    shards = [list(iterate_batches(x, y, 8, rank=r, world_size=2, **kw)) for r in range(2)]
    assert len(single) == 2
    for b, (xb, yb) in enumerate(single):
        torch.testing.assert_close(torch.cat([shards[0][b][0], shards[1][b][0]]), xb)
        torch.testing.assert_close(torch.cat([shards[0][b][1], shards[1][b][1]]), yb)
    seen = torch.cat([yb[:, 0, 0] for _, yb in single])
    assert len(set(seen.tolist())) == 16  # a permutation, no repeats
    # flips move image and mask together
    for xb, yb in single:
        assert torch.equal(xb[:, 0].long(), yb)


def test_random_crop_matches_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 6, 7, generator=g)
    offs = torch.randint(0, 9, (5, 2), generator=g)
    got = random_crop(x, offs)
    pad = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(5):
        r, c = offs[i].tolist()
        torch.testing.assert_close(got[i], pad[i, :, r:r + 6, c:c + 7])


# ------------------------------------------------------------------------ train
def test_train_records_everything(tmp_path):
    calls = []
    res = train(tiny(epochs=2, out_dir=str(tmp_path), save_features=5),
                callback=lambda rec, hist: calls.append((rec["epoch"], len(hist))))
    assert calls == [(1, 1), (2, 2)]
    rec = res.history[-1]
    assert set(rec["loss"]) == {"ce", "ceco", "total"}
    lam = res.config.ceco_lambda
    assert math.isclose(rec["loss"]["total"], rec["loss"]["ce"] + lam * rec["loss"]["ceco"], rel_tol=1e-5)
    assert rec["time_per_step"] > 0 and len(rec["per_class"]) == 8
    for key in ("equiangularity_centers", "max_angle_centers", "equiangularity_classifiers", "nc1"):
        assert math.isfinite(rec["nc"][key])
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("miou", "per_class", "head", "common", "tail", "history"):
        assert key in m
    assert m["groups"]["head"] == [0, 1, 2]  # thirds by training pixel frequency (class 0 most frequent)
    assert TrainConfig.from_json((tmp_path / "config.json").read_text()) == res.config
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2
    feats = torch.load(tmp_path / "features.pt")
    assert feats["features"].shape[1] == res.model.feature_dim
    assert torch.bincount(feats["labels"]).max() <= 5


def test_baseline_has_no_ceco_term():
    res = train(tiny(ceco_lambda=0.0, max_steps=2))
    assert set(res.history[-1]["loss"]) == {"ce", "total"}
    assert res.metrics["steps"] == 2


def test_table1_classifier_options():
    """Fixed PC stays the simplex ETF (Table 1 "fixed"); a learned CC moves away from its ETF init."""
    import ceco_lite

    cfg = tiny(fixed_pixel_classifier=True, fixed_center_classifier=False, max_steps=3, lr=0.5)
    res = train(cfg)
    w = res.model.classifier_weight()
    gram = w.T @ w
    torch.testing.assert_close(gram, torch.eye(8) * (1 + 1 / 7) - 1 / 7, atol=1e-5, rtol=0)
    assert not any(p is res.model.classifier.weight for p in res.model.parameters())
    init = ceco_lite.CenterCollapseLoss(8, res.model.feature_dim, learnable=True,
                                        generator=torch.Generator().manual_seed(cfg.seed + 1))
    trained = res.losses["ceco"].etf
    assert trained.requires_grad and trained.shape == init.etf.shape
    assert not torch.allclose(trained, init.etf)
    # default (paper's best row): learned PC, fixed CC -> the centre classifier is the untouched ETF
    res = train(tiny(max_steps=3, lr=0.5))
    assert not res.losses["ceco"].etf.requires_grad
    torch.testing.assert_close(res.losses["ceco"].etf, init.etf.detach())
    assert any(p is res.model.classifier.weight for p in res.model.parameters())


def test_resume_gives_bitwise_same_weights(tmp_path):
    cfg = tiny(epochs=3)
    full = train(cfg.replace(out_dir=str(tmp_path / "full")))

    def stop_after_two(rec, hist):
        if rec["epoch"] == 2:
            raise KeyboardInterrupt

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        train(cfg.replace(out_dir=str(part)), callback=stop_after_two)
    ck = load_checkpoint(part / "checkpoint.pt")
    assert ck["epoch"] == 2 and len(ck["history"]) == 2
    assert not [f for f in os.listdir(part) if f.endswith(".tmp")]
    resumed = train(cfg.replace(out_dir=str(part), resume=True))
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    # a different configuration cannot resume this run
    with pytest.raises(ValueError, match="ceco_lambda"):
        train(cfg.replace(out_dir=str(part), resume=True, ceco_lambda=0.1))


def test_interrupt_mid_epoch_keeps_last_checkpoint(tmp_path, monkeypatch):
    cfg = tiny(epochs=3, out_dir=str(tmp_path))

    def stop_after_one(rec, hist):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, callback=stop_after_one)  # writes a checkpoint after epoch 1, then stops
    before = (tmp_path / "checkpoint.pt").read_bytes()
    import ceco_lite.engine.step as step

    calls = {"n": 0}
    orig = step.TrainStep.forward

    def boom(self, x, y):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(self, x, y)

    monkeypatch.setattr(step.TrainStep, "forward", boom)
    with pytest.raises(KeyboardInterrupt):
        train(cfg.replace(resume=True))  # interrupted in the middle of epoch 2
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


# ---------------------------------------------------------------------- presets
def test_every_preset_is_listed():
    assert {"synthetic-cpu", "cityscapes-sample", "cityscapes", "cifar10-lt", "cifar100-lt"} <= set(PRESETS)
    assert PRESETS["cifar10-lt"].model == "resnet32" and PRESETS["cifar10-lt"].epochs == 200
    assert PRESETS["cifar10-lt"].imbalance_factor == 100


def test_variants_run():
    for kw in ({"ceco_variant": "released"}, {"in2nect_weight": 0.2}):
        res = train(tiny(max_steps=2, **kw))
        assert math.isfinite(res.history[-1]["loss"]["total"])
    assert {"in2nect_inter", "in2nect_intra"} <= set(res.history[-1]["loss"])


def _data_root():
    from data_utils import default_data_dir

    return default_data_dir()


needs_data = pytest.mark.skipif(_data_root() is None, reason="no real data root (CECO_DATA_DIR)")


@needs_data
@pytest.mark.parametrize("name", ["cityscapes-sample", pytest.param("cityscapes", marks=pytest.mark.slow),
                                  "cifar10-lt", "cifar100-lt"])
def test_real_data_presets_tiny(name):
    """Every real-data preset (GPU ones shrunk) trains a few steps on CPU and evaluates."""
    kw = dict(limit_images=2, image_size=(32, 64), batch_size=2) if "city" in name else \
        dict(limit_images=64, batch_size=16, verify_checksums=False)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", UserWarning)  # truncated CIFAR copy: md5 differs
        res = train(get_preset(name, max_steps=2, device="cpu", num_workers=0, nc_max_images=2, progress=False,
                               **kw))
    m = res.metrics
    assert m["steps"] == 2 and math.isfinite(res.history[-1]["loss"]["total"])
    score = m["miou"] if "city" in name else m["top1"]
    assert 0 <= score <= 100 and len(m["per_class"]) == res.config.num_classes
    assert set(m["groups"]) == {"head", "common", "tail"}


# ------------------------------------------------------- run folders under hostile use
def test_run_folder_is_never_replaced_silently(tmp_path):
    out = tmp_path / "X"
    train(tiny(epochs=3, out_dir=str(out)))
    files = ("config.json", "checkpoint.pt", "history.json", "metrics.json")
    before = {n: (out / n).read_bytes() for n in files}
    with pytest.raises(FileExistsError, match="resume=True"):
        train(tiny(epochs=1, lr=0.01, out_dir=str(out)))
    with pytest.raises(ValueError, match=r"epochs: 3 -> 1; lr: 0.1 -> 0.01"):
        train(tiny(epochs=1, lr=0.01, out_dir=str(out), resume=True))
    assert {n: (out / n).read_bytes() for n in files} == before


def test_default_run_folder_follows_every_result_field():
    from ceco_lite.engine import RUN_FIELDS, run_dir

    base = tiny()
    changes = {"lr": 0.01, "epochs": 3, "image_size": (8, 8), "num_images": 32, "batch_size": 4, "seed": 1,
               "ignore_index": 100, "feature_dim": 16, "momentum": 0.5, "augment": False, "max_steps": 1,
               "weight_decay": 0.0, "imbalance_factor": 10.0, "num_val_images": 4, "ceco_variant": "released",
               "in2nect_weight": 0.1, "fixed_pixel_classifier": True, "schedule": "constant", "amp": "off",
               "synthetic_options": {"noise_level": 0.1}, "nc_max_images": 4, "eval_every": 2, "save_features": 3}
    folders = {name: run_dir(base.replace(**{name: value})) for name, value in changes.items()}
    assert len(set(folders.values()) | {run_dir(base)}) == len(changes) + 1
    assert not set(changes) & set(RUN_FIELDS)
    # the fields that do not change results do not change the folder either
    same = base.replace(num_threads=1, progress=True, out_dir="elsewhere", num_workers=2, checkpoint=False)
    assert run_dir(same) == run_dir(base)


def test_overwrite_keeps_the_old_run_until_the_new_one_is_built(tmp_path):
    from ceco_lite.fileio import read_json

    out = tmp_path / "X"
    train(tiny(epochs=2, out_dir=str(out)))
    with pytest.raises(ValueError, match="feature_dim"):  # the new run cannot be built: nothing is deleted
        train(tiny(epochs=2, num_classes=40, out_dir=str(out), overwrite=True))
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2 and read_json(out / "config.json")["lr"] == 0.1

    def stop(rec, hist):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the replacing run is interrupted after its first epoch
        train(tiny(epochs=3, lr=0.05, out_dir=str(out), overwrite=True), callback=stop)
    ck = load_checkpoint(out / "checkpoint.pt")
    assert read_json(out / "config.json")["lr"] == ck["config"]["lr"] == 0.05 and ck["epoch"] == 1
    assert not (out / "metrics.json").exists()  # the old run's results went with it
    res = train(tiny(epochs=3, lr=0.05, out_dir=str(out), resume=True))
    assert res.metrics["epochs_run"] == 3


def test_a_run_that_never_finished_an_epoch_leaves_a_reusable_folder(tmp_path):
    out = tmp_path / "X"
    with pytest.raises(ValueError, match="feature_dim"):  # fails while building: the folder it made goes
        train(tiny(num_classes=40, out_dir=str(out)))
    assert not out.exists()
    from ceco_lite.engine import TrainingDiverged

    with pytest.raises(TrainingDiverged):  # fails in epoch 1: only config.json is left ...
        train(tiny(lr=1e6, ceco_lambda=0.0, out_dir=str(out)))
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json"]
    res = train(tiny(max_steps=1, out_dir=str(out)))  # ... and a new run may take the folder without flags
    assert res.metrics["steps"] == 1


@pytest.mark.skipif(os.name != "posix", reason="the holder uses fcntl.flock")
def test_a_second_process_cannot_use_a_locked_folder(tmp_path):
    import signal
    import subprocess
    import sys

    from ceco_lite.fileio import FolderLockedError

    out = tmp_path / "X"
    out.mkdir()
    holder = subprocess.Popen(  # another process holding the run folder's lock (no torch: starts fast)
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('locked', flush=True); "
         "time.sleep(120)", str(out / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=rf"{out} is in use by another training run \(process "
                                                    rf"{holder.pid}\)"):
            train(tiny(max_steps=1, out_dir=str(out)))
        assert not (out / "config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert train(tiny(max_steps=1, out_dir=str(out))).metrics["steps"] == 1  # a killed holder frees the folder


def test_more_than_255_classes_need_another_ignore_index():
    with pytest.raises(ValueError, match="ignore_index must lie outside"):
        tiny(num_classes=300)
    res = train(tiny(num_classes=300, ignore_index=-1, feature_dim=299, max_steps=1))
    assert len(res.metrics["per_class"]) == 300 and res.metrics["steps"] == 1


def test_ignore_index_only_renames_the_ignored_pixels():
    """Synthetic data with an ignored region: ignore_index 255 and -7 train the same weights; decoded
    targets carry the configured label only."""
    from ceco_lite.engine.data import load_data

    kw = dict(synthetic_options={"ignore_region": True}, max_steps=2)
    data = load_data(tiny(ignore_index=-7, **kw))
    _, y = data.decode(data.train_x, data.train_y)
    assert (y == -7).any() and not (y == 255).any()
    a, b = train(tiny(**kw)), train(tiny(ignore_index=-7, **kw))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert json.dumps(a.metrics["per_class"]) == json.dumps(b.metrics["per_class"])  # NaN: absent classes
    assert a.metrics["class_counts"] == b.metrics["class_counts"]


def test_labels_outside_the_classes_are_refused():
    from ceco_lite.engine.data import label_counts

    assert label_counts(torch.tensor([0, 1, 255], dtype=torch.uint8), 2, 255, "m").tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"masks of x hold labels \[7\] outside the classes 0..4"):
        label_counts(torch.tensor([[0, 7], [255, 4]], dtype=torch.uint8), 5, 255, "the masks of x")
    with pytest.raises(ValueError, match=r"\[-3, 9\]"):
        label_counts(torch.tensor([-3, 0, 9, -1]), 5, -1, "labels")


@pytest.mark.parametrize("kw", [dict(ceco_lambda=0.0), dict(ceco_lambda=1.0), dict(lr=1e30)])
def test_divergence_names_the_step_and_a_lower_learning_rate(kw):
    from ceco_lite.engine import TrainingDiverged

    lr = kw.pop("lr", 1e6)
    with pytest.raises(TrainingDiverged, match=rf"diverged at step \d+ \(epoch 1\).*lower learning rate, "
                                               rf"e.g. lr={re.escape(f'{lr / 10:g}')}$"):
        train(tiny(lr=lr, **kw))


def test_evaluation_refuses_non_finite_outputs():
    from ceco_lite.engine.evaluation import NonFiniteOutputs, collect_nc_stats, evaluate
    from ceco_lite.engine.runtime import Runtime
    from ceco_lite.engine.trainer import build

    cfg = tiny()
    parts = build(cfg, Runtime(torch.device("cpu")))
    with torch.no_grad():
        parts.model.classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteOutputs, match="logits"):
        evaluate(parts.model, parts.data, Runtime(torch.device("cpu")))
    with torch.no_grad():
        next(parts.model.parameters()).fill_(float("inf"))
    with pytest.raises(NonFiniteOutputs, match="features"):
        collect_nc_stats(parts.model, parts.data, Runtime(torch.device("cpu")))


@pytest.mark.parametrize("damage", ["truncated", "empty", "text", "random", "other model"])
def test_damaged_checkpoint_is_named_on_resume(tmp_path, damage):
    from ceco_lite.fileio import CorruptFileError

    out = tmp_path / "X"
    train(tiny(out_dir=str(out), epochs=2, max_steps=3))
    path = out / "checkpoint.pt"
    raw = path.read_bytes()
    if damage == "other model":
        ck = torch.load(path, weights_only=False)
        ck["model"] = {k: v.flatten()[:1] for k, v in ck["model"].items()}
        torch.save(ck, path)
    else:
        path.write_bytes({"truncated": raw[:len(raw) // 3], "empty": b"", "text": b"7 not a checkpoint\n",
                          "random": os.urandom(3000)}[damage])
    with pytest.raises(CorruptFileError, match=r"checkpoint\.pt is damaged"):
        train(tiny(out_dir=str(out), epochs=2, max_steps=3, resume=True))


def test_resuming_a_finished_run_rewrites_damaged_records(tmp_path):
    from ceco_lite.fileio import read_json

    out = tmp_path / "X"
    train(tiny(out_dir=str(out), max_steps=2))
    (out / "history.json").write_text("[{")
    (out / "metrics.json").write_bytes(b"")
    res = train(tiny(out_dir=str(out), max_steps=2, resume=True))
    assert len(read_json(out / "history.json")) == len(res.history)
    assert read_json(out / "metrics.json")["steps"] == 2


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:x", "cuda:-1", "", "CUDA"])
def test_bad_device_strings_name_the_device(device):
    with pytest.raises(ValueError, match="device must be"):
        tiny(device=device)


def test_unusable_ceco_data_dir_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("CECO_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=rf"CECO_DATA_DIR={tmp_path / 'absent'} is not a folder"):
        train(get_preset("cityscapes-sample", progress=False, out_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_run_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "X"
        train(tiny(out_dir=str(out), max_steps=1, save_features=1))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert modes == {n: 0o644 for n in (".lock", "config.json", "checkpoint.pt", "history.json", "metrics.json",
                                        "features.pt")}
    assert out.stat().st_mode & 0o777 == 0o755


def test_dot_regression_classifier_loss(tmp_path):
    """classifier_loss="dot_regression" trains onto the fixed ETF (Yang et al. 2022) and needs a fixed classifier."""
    with pytest.raises(ValueError, match="fixed_pixel_classifier"):
        tiny(classifier_loss="dot_regression")
    with pytest.raises(ValueError, match="classifier_loss"):
        tiny(classifier_loss="focal")
    res = train(tiny(classifier_loss="dot_regression", fixed_pixel_classifier=True, ceco_lambda=0.0, max_steps=2))
    assert set(res.history[-1]["loss"]) == {"dot_regression", "total"}
    assert math.isfinite(res.history[-1]["loss"]["total"])
    # the loss module regresses onto the model's own fixed classifier
    from ceco_lite.engine.step import TrainStep

    step = TrainStep(res.model, res.config)
    torch.testing.assert_close(step.dot_regression.etf, res.model.classifier_weight().detach())


def test_cross_entropy_of_an_all_ignored_batch_is_zero():
    from ceco_lite.engine.step import TrainStep
    from ceco_lite.models import build_model

    cfg = tiny(ceco_lambda=0.0)
    model = build_model(cfg.model, cfg.num_classes)
    x = torch.randn(2, 3, 16, 16)
    loss, terms = TrainStep(model, cfg)(x, torch.full((2, 16, 16), 255))
    assert float(loss) == 0.0 and float(terms["ce"]) == 0.0
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
