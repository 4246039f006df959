"""Hostile but realistic inputs, as a table: every try is a command line or an API call with a bad
or extreme input, the exception type (or exit status) it must give and a piece of text its message
must hold -- the argument, option, variable or file at fault.

Tries cover the configuration fields, the command-line options, data roots, run folders,
checkpoints, resuming, ``compare`` and the ``torchrun`` environment. A try with ``expect=None``
must simply work (an extreme but valid input). Run this file as a script to print the counts::

    python tests/test_hostile_inputs.py
"""
from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import pytest
import torch

from ceco_lite.cli import main
from ceco_lite.engine import TrainConfig, TrainingDiverged, compare, get_preset, train
from ceco_lite.engine.checkpoint import load_checkpoint
from ceco_lite.fileio import CorruptFileError, FolderLock, FolderLockedError, load_npz, read_json
from data_utils import default_data_dir

pytestmark = pytest.mark.timeout(120)

TINY = dict(num_images=8, num_val_images=4, image_size=(16, 16), batch_size=4, nc_max_images=4, progress=False,
            epochs=2, max_steps=None, num_threads=None)
CLI_TINY = ["train", "--preset", "synthetic-cpu", "--image-size", "16", "16", "--num-images", "8", "--batch-size", "4",
            "--no-progress", "--set", "num_val_images=4", "--set", "nc_max_images=4", "--epochs", "2"]
DATA = default_data_dir()


def tiny(**kw) -> TrainConfig:
    return get_preset("synthetic-cpu", **{**TINY, **kw})


@dataclass(frozen=True)
class Try:
    """One hostile try: ``run(tmp)`` (a fresh folder) must raise ``expect`` (an exception type) or
    return it (a command line's exit status), with ``message`` in the error; ``expect=None``: it works."""

    name: str
    run: Callable[[Path], Any]
    expect: Any
    message: str = ""
    needs: str = ""  # "data": real data; "no-cuda": a machine without CUDA
    check: Callable[[Path], None] | None = None  # after the try: what must (still) hold


# ------------------------------------------------------------------ helpers
def cfg_try(name, kw, expect, message, preset="synthetic-cpu"):
    return Try(name, lambda tmp: get_preset(preset, **kw), expect, message)


@contextlib.contextmanager
def _working_dir(path: Path):
    """``contextlib.chdir`` for Python 3.10 too."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def cli(*argv, env=None):
    """A command line ``ceco-lite argv`` run in this process from the folder ``tmp`` ("{tmp}" in ``argv``
    and ``env`` values is replaced by it): returns (exit status, stderr)."""
    def run(tmp):
        words = [str(w).replace("{tmp}", str(tmp)) for w in argv]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), _working_dir(tmp), \
                mock.patch.dict(os.environ, {k: v.replace("{tmp}", str(tmp)) for k, v in (env or {}).items()}):
            try:
                code = main(words)
            except SystemExit as exc:  # argparse
                code = exc.code
        return code, err.getvalue()
    return run


_TEMPLATE: dict[str, Path] = {}


def finished_run() -> Path:
    """A finished tiny run (2 epochs, config TINY), made once and copied by the tries."""
    if "run" not in _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="ceco-hostile-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        train(tiny(out_dir=str(root / "run")))
        _TEMPLATE["run"] = root / "run"
    return _TEMPLATE["run"]


def with_run(tmp: Path, damage: Callable[[Path], None] | None = None) -> Path:
    """``tmp/run``: a copy of :func:`finished_run`, then ``damage(folder)``."""
    folder = tmp / "run"
    shutil.copytree(finished_run(), folder)
    (folder / ".lock").unlink(missing_ok=True)
    if damage is not None:
        damage(folder)
    return folder


def folder_try(name, damage, expect, message, **kw):
    """train(TINY config with ``kw``) on a damaged copy of a finished run."""
    def run(tmp):
        folder = with_run(tmp, damage)
        return train(tiny(out_dir=str(folder), **kw))
    return Try(name, run, expect, message)


def folder_cli(name, damage, expect, message, *extra):
    def run(tmp):
        with_run(tmp, damage)
        return cli(*CLI_TINY, "--out", "{tmp}/run", *extra)(tmp)
    return Try(name, run, expect, message)


def write(name: str, data: bytes | str):
    def damage(folder: Path):
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return damage


def truncate(name: str, keep: float = 0.5):
    def damage(folder: Path):
        raw = (folder / name).read_bytes()
        (folder / name).write_bytes(raw[:int(len(raw) * keep)])
    return damage


def remove(*names):
    def damage(folder: Path):
        for n in names:
            (folder / n).unlink()
    return damage


def edit_checkpoint(change: Callable[[dict], Any]):
    def damage(folder: Path):
        ck = torch.load(folder / "checkpoint.pt", weights_only=False)
        ck = change(ck) or ck
        torch.save(ck, folder / "checkpoint.pt")
    return damage


def edit_config(**fields):
    def damage(folder: Path):
        d = json.loads((folder / "config.json").read_text())
        d.update(fields)
        (folder / "config.json").write_text(json.dumps(d))
    return damage


def locked(tmp_run):
    """Train into a folder another process holds (the lock is taken here)."""
    def run(tmp):
        with FolderLock(tmp / "run", purpose="test"):
            return tmp_run(tmp)
    return run


def env_try(name, env, expect, message, **kw):
    """train() with the environment variables ``env`` set (None: unset)."""
    def run(tmp):
        with mock.patch.dict(os.environ, {k: v for k, v in env.items() if v is not None}):
            for k in [k for k, v in env.items() if v is None]:
                os.environ.pop(k, None)
            return train(tiny(out_dir=str(tmp / "run"), **kw))
    return Try(name, run, expect, message)


def cifar_copy(tmp: Path, damage_batch: bool) -> Path:
    """A copy of the real CIFAR folder; with ``damage_batch`` its first training batch is garbage."""
    root = tmp / "data"
    shutil.copytree(DATA / "cifar", root / "cifar")
    if damage_batch:
        (root / "cifar" / "cifar-10-batches-py" / "data_batch_1").write_bytes(os.urandom(2000))
    return root


def orphan(tmp: Path) -> Path:
    """tmp/run holding the temporary file of a writer that died (process 999999999)."""
    (tmp / "run").mkdir()
    (tmp / "run" / ".checkpoint.pt.999999999.0123abcd.tmp").write_text("x")
    return tmp / "run"


def intact_run(tmp: Path):
    """After the try, tmp/run still holds the finished run it held (nothing lost)."""
    ck = load_checkpoint(tmp / "run" / "checkpoint.pt")
    assert ck["epoch"] == 2 and read_json(tmp / "run" / "config.json")["seed"] == TINY.get("seed", 0)
    assert read_json(tmp / "run" / "metrics.json")["epochs_run"] == 2


def untouched(path: str):
    def check(tmp: Path):
        assert not (tmp / path).exists(), f"{path} was created"
    return check


def files_valid(tmp: Path):
    """Every run file in tmp/run reads back (nothing half-written or left damaged)."""
    folder = tmp / "run"
    for name in ("config.json", "history.json", "metrics.json"):
        read_json(folder / name)
    load_checkpoint(folder / "checkpoint.pt")


# -------------------------------------------------------------------- table
VE, TE = ValueError, TypeError
TRIES: list[Try] = [
    # ---- configuration fields (API: get_preset / TrainConfig) -------------------------------
    cfg_try("lambda negative", {"ceco_lambda": -0.1}, VE, "ceco_lambda"),
    cfg_try("lambda NaN", {"ceco_lambda": float("nan")}, VE, "ceco_lambda"),
    cfg_try("lambda inf", {"ceco_lambda": float("inf")}, VE, "ceco_lambda"),
    cfg_try("lambda as text", {"ceco_lambda": "0.3"}, TE, "ceco_lambda"),
    cfg_try("lambda as bool", {"ceco_lambda": True}, TE, "ceco_lambda"),
    cfg_try("epochs 0", {"epochs": 0}, VE, "epochs"),
    cfg_try("epochs negative", {"epochs": -3}, VE, "epochs"),
    cfg_try("epochs float", {"epochs": 2.5}, TE, "epochs"),
    cfg_try("epochs text", {"epochs": "10"}, TE, "epochs"),
    cfg_try("batch 0", {"batch_size": 0}, VE, "batch_size"),
    cfg_try("batch float", {"batch_size": 2.5}, TE, "batch_size"),
    cfg_try("lr 0", {"lr": 0}, VE, "lr"),
    cfg_try("lr negative", {"lr": -1}, VE, "lr"),
    cfg_try("lr inf", {"lr": float("inf")}, VE, "lr"),
    cfg_try("lr NaN", {"lr": float("nan")}, VE, "lr"),
    cfg_try("momentum 1", {"momentum": 1.0}, VE, "momentum"),
    cfg_try("momentum negative", {"momentum": -0.1}, VE, "momentum"),
    cfg_try("weight decay negative", {"weight_decay": -1.0}, VE, "weight_decay"),
    cfg_try("poly power negative", {"poly_power": -1.0}, VE, "poly_power"),
    cfg_try("unknown schedule", {"schedule": "cosine"}, VE, "schedule"),
    cfg_try("unknown variant", {"ceco_variant": "x"}, VE, "ceco_variant"),
    cfg_try("unknown sync", {"ceco_sync": "all"}, VE, "ceco_sync"),
    cfg_try("unknown amp", {"amp": "fp16"}, VE, "amp"),
    cfg_try("unknown reduction", {"ceco_reduction": "max"}, VE, "ceco_reduction"),
    cfg_try("image size zero", {"image_size": (0, 4)}, VE, "image_size"),
    cfg_try("image size one number", {"image_size": (16,)}, TE, "image_size"),
    cfg_try("image size text", {"image_size": "16x16"}, TE, "image_size"),
    cfg_try("image size float", {"image_size": (16.0, 16)}, TE, "image_size"),
    cfg_try("no images", {"num_images": 0}, VE, "num_images"),
    cfg_try("no evaluation images", {"num_val_images": 0}, VE, "num_val_images"),
    cfg_try("imbalance factor < 1", {"imbalance_factor": 0.5}, VE, "imbalance_factor"),
    cfg_try("imbalance factor NaN", {"imbalance_factor": float("nan")}, VE, "imbalance_factor"),
    cfg_try("one class", {"num_classes": 1}, VE, "num_classes"),
    cfg_try("classes float", {"num_classes": 2.0}, TE, "num_classes"),
    cfg_try("300 classes, ignore 255", {"num_classes": 300}, VE, "ignore_index"),
    cfg_try("ignore index is a class", {"ignore_index": 3}, VE, "ignore_index"),
    cfg_try("ignore index None", {"ignore_index": None}, TE, "ignore_index"),
    cfg_try("ignore index text", {"ignore_index": "255"}, TE, "ignore_index"),
    cfg_try("ignore index -2**63", {"ignore_index": -(2**63)}, VE, "ignore_index"),
    cfg_try("seed negative", {"seed": -1}, VE, "seed"),
    cfg_try("seed 2**40", {"seed": 2**40}, VE, "seed"),
    cfg_try("seed float", {"seed": 1.5}, TE, "seed"),
    cfg_try("max steps 0", {"max_steps": 0}, VE, "max_steps"),
    cfg_try("eval every 0", {"eval_every": 0}, VE, "eval_every"),
    cfg_try("nc every 0", {"nc_every": 0}, VE, "nc_every"),
    cfg_try("nc images 0", {"nc_max_images": 0}, VE, "nc_max_images"),
    cfg_try("features negative", {"save_features": -1}, VE, "save_features"),
    cfg_try("workers negative", {"num_workers": -1}, VE, "num_workers"),
    cfg_try("a million workers", {"num_workers": 10**6}, VE, "num_workers"),
    cfg_try("threads 0", {"num_threads": 0}, VE, "num_threads"),
    cfg_try("a million threads", {"num_threads": 10**6}, VE, "num_threads"),
    cfg_try("warm-up negative", {"warmup_epochs": -1}, VE, "warmup_epochs"),
    cfg_try("milestones decreasing", {"lr_milestones": (10, 5)}, VE, "lr_milestones"),
    cfg_try("milestone 0", {"lr_milestones": (0,)}, VE, "lr_milestones"),
    cfg_try("lr gamma 0", {"lr_gamma": 0}, VE, "lr_gamma"),
    cfg_try("feature dim 0", {"feature_dim": 0}, VE, "feature_dim"),
    cfg_try("limit images 0", {"limit_images": 0}, VE, "limit_images"),
    cfg_try("device gpu", {"device": "gpu"}, VE, "device"),
    cfg_try("device cuda:x", {"device": "cuda:x"}, VE, "device"),
    cfg_try("device cpu:x", {"device": "cpu:x"}, VE, "device"),
    cfg_try("device cuda:-1", {"device": "cuda:-1"}, VE, "device"),
    cfg_try("device as int", {"device": 0}, VE, "device"),
    cfg_try("device empty", {"device": ""}, VE, "device"),
    cfg_try("unknown dataset", {"dataset": "imagenet"}, VE, "dataset"),
    cfg_try("dataset None", {"dataset": None}, VE, "dataset"),
    cfg_try("model empty", {"model": ""}, TE, "model"),
    cfg_try("model as int", {"model": 3}, TE, "model"),
    cfg_try("pretrained as int", {"pretrained": 1}, TE, "pretrained"),
    cfg_try("unknown synthetic option", {"synthetic_options": {"foo": 1}}, VE, "synthetic_options"),
    cfg_try("synthetic options a list", {"synthetic_options": [1]}, TE, "synthetic_options"),
    cfg_try("ignore region with 300 classes", {"synthetic_options": {"ignore_region": True}, "num_classes": 300,
                                               "ignore_index": -1}, VE, "ignore_region"),
    cfg_try("model options a list", {"model_options": [1]}, TE, "model_options"),
    cfg_try("data root for generated data", {"data_root": "/data"}, VE, "data_root"),
    cfg_try("data root empty", {"data_root": ""}, VE, "data_root"),
    cfg_try("out dir empty", {"out_dir": ""}, VE, "out_dir"),
    cfg_try("out dir blank", {"out_dir": "  "}, VE, "out_dir"),
    cfg_try("out dir an int", {"out_dir": 3}, TE, "out_dir"),
    cfg_try("out dir with NUL", {"out_dir": "a\x00b"}, VE, "out_dir"),
    cfg_try("resume and overwrite", {"resume": True, "overwrite": True}, VE, "resume"),
    cfg_try("resume as text", {"resume": "yes"}, TE, "resume"),
    cfg_try("progress as int", {"progress": 1}, TE, "progress"),
    cfg_try("fixed PC as text", {"fixed_pixel_classifier": "no"}, TE, "fixed_pixel_classifier"),
    cfg_try("channels last as text", {"channels_last": "yes"}, TE, "channels_last"),
    cfg_try("verify checksums as text", {"verify_checksums": "no"}, TE, "verify_checksums"),
    cfg_try("augment None", {"augment": None}, TE, "augment"),
    cfg_try("compile as text", {"compile": "yes"}, TE, "compile"),
    cfg_try("checkpoint 0", {"checkpoint": 0}, TE, "checkpoint"),
    cfg_try("In2NeCT negative", {"in2nect_weight": -1.0}, VE, "in2nect_weight"),
    cfg_try("CeCo scale 0", {"ceco_scale": 0}, VE, "ceco_scale"),
    cfg_try("unknown field", {"no_such_field": 1}, VE, "no_such_field"),
    cfg_try("released variant on CIFAR", {"ceco_variant": "released"}, VE, "segmentation", preset="cifar10-lt"),
    cfg_try("In2NeCT on CIFAR", {"in2nect_weight": 0.2}, VE, "segmentation", preset="cifar10-lt"),
    cfg_try("Cityscapes with 5 classes", {"num_classes": 5}, VE, "num_classes must be 19", preset="cityscapes"),
    cfg_try("synthetic options on CIFAR", {"synthetic_options": {"seed": 1}}, VE, "synthetic_options",
            preset="cifar10-lt"),
    Try("unknown preset", lambda tmp: get_preset("nope"), VE, "unknown preset"),
    Try("config from broken JSON", lambda tmp: TrainConfig.from_json("{"), VE, "line 1"),
    Try("config from a list", lambda tmp: TrainConfig.from_dict([1]), TE, "dict"),
    Try("train a preset name", lambda tmp: train("synthetic-cpu"), TE, "config"),
    Try("train None", lambda tmp: train(None), TE, "config"),
    Try("train a dict with a bad field", lambda tmp: train({"dataset": "synthetic", "num_classes": 4, "lr": -1}),
        VE, "lr"),
    # ---- training: extreme values ------------------------------------------------------------
    Try("lr 1e6, λ = 0", lambda tmp: train(tiny(lr=1e6, ceco_lambda=0.0)), TrainingDiverged, "lower learning rate"),
    Try("lr 1e6, CeCo", lambda tmp: train(tiny(lr=1e6)), TrainingDiverged, "at step"),
    Try("lr 1e30", lambda tmp: train(tiny(lr=1e30)), TrainingDiverged, "at step"),
    Try("weight decay 1e12", lambda tmp: train(tiny(weight_decay=1e12, lr=1.0)), TrainingDiverged, "at step"),
    Try("300 classes, feature_dim 32", lambda tmp: train(tiny(num_classes=300, ignore_index=-1)), VE, "feature_dim",
        check=untouched("run")),
    Try("300 classes, ignore -1, feature_dim 299",
        lambda tmp: train(tiny(num_classes=300, ignore_index=-1, feature_dim=299, max_steps=1)), None),
    Try("300 classes with an ignore region", lambda tmp: train(tiny(num_classes=300, ignore_index=-1, feature_dim=299,
                                                                     synthetic_options={"ignore_region": True})),
        VE, "ignore_region"),
    Try("ignore index -7 with an ignore region",
        lambda tmp: train(tiny(ignore_index=-7, synthetic_options={"ignore_region": True}, max_steps=1)), None),
    Try("ignore index 1000", lambda tmp: train(tiny(ignore_index=1000, max_steps=1)), None),
    Try("fixed ETF classifier, 40 classes", lambda tmp: train(tiny(fixed_pixel_classifier=True, num_classes=40,
                                                                   ceco_lambda=0.0)), VE, "feature_dim"),
    Try("batch larger than the data", lambda tmp: train(tiny(batch_size=100)), VE, "batch_size"),
    Try("classification model on segmentation", lambda tmp: train(tiny(model="resnet8")), VE, "classification"),
    Try("unknown model", lambda tmp: train(tiny(model="nope")), VE, "nope"),
    Try("unknown model option", lambda tmp: train(tiny(model_options={"bogus": 1})), TE, "bogus"),
    Try("2 classes", lambda tmp: train(tiny(num_classes=2, max_steps=1)), None),
    Try("batch of 1", lambda tmp: train(tiny(batch_size=1, max_steps=2)), None),
    Try("image 4x4", lambda tmp: train(tiny(image_size=(4, 4), max_steps=1)), None),
    Try("image 1x1", lambda tmp: train(tiny(image_size=(1, 1), max_steps=1)), None),
    Try("image 8x40", lambda tmp: train(tiny(image_size=(8, 40), max_steps=1)), None),
    Try("imbalance factor 1e6", lambda tmp: train(tiny(imbalance_factor=1e6, max_steps=1)), None),
    Try("evaluate every 5 of 2 epochs", lambda tmp: train(tiny(eval_every=5, nc_every=5)), None),
    Try("NC on 1 image", lambda tmp: train(tiny(nc_max_images=1, max_steps=1)), None),
    Try("max steps beyond the epochs", lambda tmp: train(tiny(max_steps=10**9, epochs=1)), None),
    Try("1 thread", lambda tmp: train(tiny(num_threads=1, max_steps=1)), None),
    Try("bf16 on the CPU", lambda tmp: train(tiny(amp="bf16", max_steps=1)), None),
    Try("save features 1 per class", lambda tmp: train(tiny(save_features=1, max_steps=1, out_dir=str(tmp / "r"))),
        None),
    Try("device cuda without CUDA", lambda tmp: train(tiny(device="cuda")), VE, "CUDA", needs="no-cuda"),
    Try("device cuda:99", lambda tmp: train(tiny(device="cuda:99")), VE, "cuda:99"),
    Try("device mps without MPS", lambda tmp: train(tiny(device="mps")), VE, "MPS",
        needs="no-mps"),
    # ---- data roots ----------------------------------------------------------------------------
    Try("Cityscapes root empty", lambda tmp: train(get_preset("cityscapes", data_root=str(tmp), progress=False)),
        FileNotFoundError, "holds neither"),
    Try("Cityscapes root is a file", lambda tmp: (tmp / "f").write_text("x") and train(
        get_preset("cityscapes", data_root=str(tmp / "f"), progress=False)), FileNotFoundError, "holds neither"),
    Try("Cityscapes root missing", lambda tmp: train(get_preset("cityscapes", data_root=str(tmp / "no"),
                                                                progress=False)), FileNotFoundError, "no"),
    env_try("CECO_DATA_DIR a missing folder", {"CECO_DATA_DIR": "/nonexistent/ceco"}, FileNotFoundError,
            "CECO_DATA_DIR=/nonexistent/ceco is not a folder", dataset="cityscapes", num_classes=None,
            image_size=(32, 64)),
    env_try("CECO_DATA_DIR a file", {"CECO_DATA_DIR": "/etc/hostname"}, FileNotFoundError, "CECO_DATA_DIR",
            dataset="camvid", num_classes=None, image_size=(32, 64)),
    Try("CIFAR root without CIFAR", lambda tmp: train(get_preset("cifar10-lt-quick", data_root=str(tmp),
                                                                 progress=False)), FileNotFoundError, "cifar"),
    Try("CIFAR checksum mismatch", lambda tmp: train(get_preset("cifar10-lt", max_steps=1, progress=False)),
        VE, "verify_checksums=False", needs="data"),
    Try("CIFAR batch of garbage", lambda tmp: train(get_preset("cifar10-lt-quick", data_root=str(cifar_copy(tmp, True)),
                                                               max_steps=1, progress=False)),
        (ValueError, OSError), "cifar", needs="data"),
    Try("Cityscapes with ignore index 100", lambda tmp: train(get_preset(
        "cityscapes-sample", limit_images=2, image_size=(32, 64), batch_size=2, max_steps=1, ignore_index=100,
        nc_max_images=2, progress=False)), None, needs="data"),
    # ---- run folders ----------------------------------------------------------------------------
    Try("folder holds a run", lambda tmp: train(tiny(out_dir=str(with_run(tmp)))), FileExistsError, "resume=True",
        check=intact_run),
    Try("folder holds a run, other lr", lambda tmp: train(tiny(out_dir=str(with_run(tmp)), lr=0.01)),
        FileExistsError, "overwrite=True", check=intact_run),
    folder_try("resume with another lr", None, VE, "lr: 0.1 -> 0.01", resume=True, lr=0.01),
    folder_try("resume with more epochs", None, VE, "epochs: 2 -> 5", resume=True, epochs=5),
    folder_try("resume with another seed", None, VE, "seed", resume=True, seed=3),
    folder_try("resume with another image size", None, VE, "image_size", resume=True, image_size=(8, 8)),
    folder_try("resume with 1 thread (no result change)", None, None, "", resume=True, num_threads=1),
    folder_try("resume a finished run", None, None, "", resume=True),
    Try("out dir is a file", lambda tmp: (tmp / "f").write_text("x") and train(tiny(out_dir=str(tmp / "f"))),
        NotADirectoryError, "is a file"),
    Try("out dir below a file", lambda tmp: (tmp / "f").write_text("x") and train(tiny(out_dir=str(tmp / "f" / "r"))),
        OSError, "f"),
    Try("out dir cannot be created", lambda tmp: train(tiny(out_dir="/proc/ceco-lite-run")), OSError,
        "/proc/ceco-lite-run"),
    Try("out dir locked", locked(lambda tmp: train(tiny(out_dir=str(tmp / "run")))), FolderLockedError, "in use"),
    Try("folder with only another run's config.json",
        lambda tmp: ((tmp / "run").mkdir(), (tmp / "run" / "config.json").write_text(tiny(lr=0.5).to_json()),
                     train(tiny(out_dir=str(tmp / "run"), max_steps=1))), None),
    Try("folder with an orphan temporary file", lambda tmp: train(tiny(out_dir=str(orphan(tmp)), max_steps=1)), None,
        check=untouched("run/.checkpoint.pt.999999999.0123abcd.tmp")),
    folder_try("overwrite a run", None, None, "", overwrite=True, lr=0.05),
    Try("resume into an empty folder", lambda tmp: train(tiny(out_dir=str(tmp / "new"), resume=True, max_steps=1)),
        None),
    Try("overwrite, but the new run fails to build",
        lambda tmp: train(tiny(out_dir=str(with_run(tmp)), overwrite=True, num_classes=40)), VE, "feature_dim",
        check=intact_run),
    folder_try("resume, results but no configuration",
               lambda f: (remove("config.json", "checkpoint.pt")(f), write("metrics.json", "{}")(f)), VE,
               "no configuration", resume=True),
    # ---- damaged files + resume -------------------------------------------------------------------
    folder_try("config.json garbage", write("config.json", "{not json"), CorruptFileError, "config.json", resume=True),
    folder_try("config.json empty", write("config.json", ""), CorruptFileError, "config.json", resume=True),
    folder_try("config.json a list", write("config.json", "[1, 2]"), CorruptFileError, "config.json", resume=True),
    folder_try("config.json unknown field", edit_config(bogus=1), CorruptFileError, "config.json", resume=True),
    folder_try("config.json bad value", edit_config(lr=-1), CorruptFileError, "config.json", resume=True),
    folder_try("config.json binary", write("config.json", b"\xff\xfe\x00"), CorruptFileError, "config.json",
               resume=True),
    folder_try("config.json garbage, no resume", write("config.json", "{not json"), FileExistsError, "already holds"),
    folder_try("checkpoint truncated", truncate("checkpoint.pt"), CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint cut to 10 bytes", truncate("checkpoint.pt", 1e-5), CorruptFileError, "checkpoint.pt",
               resume=True),
    folder_try("checkpoint empty", write("checkpoint.pt", ""), CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint text", write("checkpoint.pt", "12345 not a checkpoint\n"), CorruptFileError,
               "checkpoint.pt", resume=True),
    folder_try("checkpoint random bytes", write("checkpoint.pt", os.urandom(4096)), CorruptFileError, "checkpoint.pt",
               resume=True),
    folder_try("checkpoint a list", edit_checkpoint(lambda ck: [1, 2]), CorruptFileError, "checkpoint.pt",
               resume=True),
    folder_try("checkpoint without optimizer", edit_checkpoint(lambda ck: ck.pop("optimizer") and None),
               CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint epoch as text", edit_checkpoint(lambda ck: ck.update(epoch="2")), CorruptFileError,
               "checkpoint.pt", resume=True),
    folder_try("checkpoint of another model", edit_checkpoint(lambda ck: ck.update(
        model={k: v.flatten()[:1] for k, v in ck["model"].items()})), CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint optimizer of another model", edit_checkpoint(lambda ck: ck.update(
        optimizer={"state": {}, "param_groups": []})), CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint RNG state damaged", edit_checkpoint(lambda ck: ck.update(rng={"python": 1})),
               CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint history shorter than its epoch", edit_checkpoint(lambda ck: ck.update(history=[])),
               CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint config damaged", edit_checkpoint(lambda ck: ck.update(config={"lr": "x"})),
               CorruptFileError, "checkpoint.pt", resume=True),
    folder_try("checkpoint is a folder", lambda f: ((f / "checkpoint.pt").unlink(), (f / "checkpoint.pt").mkdir()),
               OSError, "checkpoint.pt", resume=True),
    folder_try("checkpoint of another lr, no config.json",
               lambda f: (remove("config.json")(f), edit_checkpoint(lambda ck: ck["config"].update(lr=0.3))(f)),
               VE, "checkpoint.pt", resume=True),
    folder_try("config.json and checkpoint disagree",
               edit_checkpoint(lambda ck: ck["config"].update(lr=0.3)), VE, "checkpoint.pt", resume=True),
    Try("history.json damaged, resume a finished run",
        lambda tmp: train(tiny(out_dir=str(with_run(tmp, write("history.json", "[{"))), resume=True)), None,
        check=files_valid),
    Try("metrics.json damaged, resume a finished run",
        lambda tmp: train(tiny(out_dir=str(with_run(tmp, truncate("metrics.json"))), resume=True)), None,
        check=files_valid),
    Try("checkpoint missing, config.json present, resume", lambda tmp: train(tiny(
        out_dir=str(with_run(tmp, remove("checkpoint.pt"))), resume=True)), None, check=files_valid),
    # ---- files read directly ------------------------------------------------------------------------
    Try("load a missing checkpoint", lambda tmp: load_checkpoint(tmp / "none.pt"), FileNotFoundError, "none.pt"),
    Try("read damaged JSON", lambda tmp: (tmp / "m.json").write_text("{") and read_json(tmp / "m.json"),
        CorruptFileError, "m.json"),
    Try("read a truncated npz", lambda tmp: (tmp / "c.npz").write_bytes(b"PK\x03\x04junk") and
        load_npz(tmp / "c.npz", ("image",)), CorruptFileError, "c.npz"),
    # ---- torchrun environment -----------------------------------------------------------------------
    env_try("WORLD_SIZE not a number", {"WORLD_SIZE": "two"}, VE, "WORLD_SIZE"),
    env_try("WORLD_SIZE 0", {"WORLD_SIZE": "0"}, VE, "WORLD_SIZE"),
    env_try("WORLD_SIZE negative", {"WORLD_SIZE": "-2"}, VE, "WORLD_SIZE"),
    env_try("RANK beyond WORLD_SIZE", {"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1",
                                       "MASTER_PORT": "29999"}, VE, "RANK"),
    env_try("RANK not a number", {"WORLD_SIZE": "2", "RANK": "x"}, VE, "RANK"),
    env_try("LOCAL_RANK not a number", {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "x"}, VE, "LOCAL_RANK"),
    env_try("global batch not divisible", {"WORLD_SIZE": "3", "RANK": "0"}, VE, "divisible"),
    env_try("WORLD_SIZE 2 without MASTER_ADDR", {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": None,
                                                 "MASTER_PORT": None}, VE, "MASTER_ADDR"),
    env_try("WORLD_SIZE 1 (one process)", {"WORLD_SIZE": "1", "RANK": "0"}, None, "", max_steps=1),
    # ---- compare ------------------------------------------------------------------------------------
    Try("compare repeated seeds", lambda tmp: compare(tiny(), [0, 0], out_dir=tmp), VE, "distinct"),
    Try("compare no seeds", lambda tmp: compare(tiny(), [], out_dir=tmp), VE, "seeds"),
    Try("compare λ = 0", lambda tmp: compare(tiny(), [0], ceco_lambda=0.0, out_dir=tmp), VE, "ceco_lambda"),
    Try("compare λ negative", lambda tmp: compare(tiny(), [0], ceco_lambda=-1.0, out_dir=tmp), VE, "ceco_lambda"),
    Try("compare negative seed", lambda tmp: compare(tiny(), [-1], out_dir=tmp), VE, "seed"),
    Try("compare unknown preset", lambda tmp: compare("nope", [0], out_dir=tmp), VE, "unknown preset"),
    # ---- command line ---------------------------------------------------------------------------------
    Try("cli: no preset", cli("train"), 2, "--preset"),
    Try("cli: epochs not a number", cli(*CLI_TINY, "--epochs", "abc"), 2, "--epochs"),
    Try("cli: lambda not a number", cli(*CLI_TINY, "--lambda", "x"), 2, "lambda"),
    Try("cli: resume and overwrite", cli(*CLI_TINY, "--resume", "--overwrite"), 2, "not allowed"),
    Try("cli: --set without =", cli(*CLI_TINY, "--set", "epochs"), 2, "KEY=VALUE"),
    Try("cli: --set unknown field", cli(*CLI_TINY, "--set", "nope=1"), 2, "nope"),
    Try("cli: --set epochs=abc", cli(*CLI_TINY, "--set", "epochs=abc"), 2, "epochs"),
    Try("cli: 300 classes", cli(*CLI_TINY, "--set", "num_classes=300"), 2, "ignore_index"),
    Try("cli: 300 classes, ignore -1", cli(*CLI_TINY, "--set", "num_classes=300", "--ignore-index", "-1",
                                           "--out", "{tmp}/r"), 2, "--set feature_dim=299"),
    Try("cli: device cuda:x", cli(*CLI_TINY, "--device", "cuda:x"), 2, "device"),
    Try("cli: device cpu:x", cli(*CLI_TINY, "--device", "cpu:x"), 2, "device"),
    Try("cli: image size 0", cli(*CLI_TINY, "--image-size", "0", "16"), 2, "image_size"),
    Try("cli: image size one number", cli("train", "--preset", "synthetic-cpu", "--image-size", "16"), 2,
        "--image-size"),
    Try("cli: --out empty", cli(*CLI_TINY, "--out", ""), 2, "--out"),
    Try("cli: --out a file", lambda tmp: (tmp / "f").write_text("x") and cli(*CLI_TINY, "--out", "{tmp}/f")(tmp),
        2, "is a file"),
    Try("cli: lr 1e6", cli(*CLI_TINY, "--lr", "1e6", "--lambda", "0", "--out", "{tmp}/r"), 3, "--lr 100000"),
    Try("cli: data root for synthetic", cli(*CLI_TINY, "--data-root", "/data"), 2, "--data-root is given"),
    Try("cli: seed negative", cli(*CLI_TINY, "--seed", "-1"), 2, "seed"),
    Try("cli: batch 0", cli(*CLI_TINY, "--batch-size", "0"), 2, "batch_size"),
    Try("cli: max steps 0", cli(*CLI_TINY, "--max-steps", "0"), 2, "max_steps"),
    Try("cli: threads 0", cli(*CLI_TINY, "--num-threads", "0"), 2, "num_threads"),
    Try("cli: unknown option", cli(*CLI_TINY, "--foo"), 2, "--foo"),
    Try("cli: unknown command", cli("fit"), 2, "fit"),
    Try("cli: unknown preset", cli("train", "--preset", "nope"), 2, "unknown preset"),
    Try("cli: ignore index a class", cli(*CLI_TINY, "--ignore-index", "3"), 2, "ignore_index"),
    Try("cli: ignore index not a number", cli(*CLI_TINY, "--ignore-index", "abc"), 2, "--ignore-index"),
    Try("cli: In2NeCT negative", cli(*CLI_TINY, "--in2nect", "-1"), 2, "in2nect_weight"),
    Try("cli: features negative", cli(*CLI_TINY, "--save-features", "-1"), 2, "save_features"),
    Try("cli: limit images 0", cli(*CLI_TINY, "--limit-images", "0"), 2, "limit_images"),
    Try("cli: released variant on CIFAR", cli("train", "--preset", "cifar10-lt", "--variant", "released"), 2,
        "segmentation"),
    Try("cli: classification model", cli(*CLI_TINY, "--model", "resnet8", "--out", "{tmp}/r"), 2, "classification"),
    Try("cli: unknown model", cli(*CLI_TINY, "--model", "nope", "--out", "{tmp}/r"), 2, "nope"),
    Try("cli: imbalance factor 0", cli(*CLI_TINY, "--imbalance-factor", "0"), 2, "imbalance_factor"),
    Try("cli: amp fp16", cli(*CLI_TINY, "--amp", "fp16"), 2, "--amp"),
    Try("cli: no images", cli(*CLI_TINY, "--num-images", "0"), 2, "num_images"),
    Try("cli: presets with an argument", cli("presets", "extra"), 2, "extra"),
    folder_cli("cli: folder holds a run", None, 2, "--resume"),
    folder_cli("cli: resume with another lr", None, 2, "lr: 0.1 -> 0.2", "--lr", "0.2", "--resume"),
    folder_cli("cli: checkpoint truncated", truncate("checkpoint.pt"), 2, "checkpoint.pt", "--resume"),
    folder_cli("cli: checkpoint empty", write("checkpoint.pt", ""), 2, "checkpoint.pt", "--resume"),
    folder_cli("cli: checkpoint text", write("checkpoint.pt", "1 2 3\n"), 2, "checkpoint.pt", "--resume"),
    folder_cli("cli: config.json garbage", write("config.json", "]["), 2, "config.json", "--resume"),
    folder_cli("cli: resume a finished run", None, 0, "", "--resume"),
    Try("cli: folder locked", locked(cli(*CLI_TINY, "--out", "{tmp}/run")), 2, "in use"),
    Try("cli: CECO_DATA_DIR missing", cli("train", "--preset", "cityscapes-sample", "--out", "{tmp}/r",
                                          env={"CECO_DATA_DIR": "{tmp}/absent"}), 2, "CECO_DATA_DIR="),
    Try("cli: data root missing", cli("train", "--preset", "cityscapes-sample", "--data-root", "{tmp}/absent",
                                      "--out", "{tmp}/r"), 2, "holds neither"),
    Try("cli: CIFAR checksum", cli("train", "--preset", "cifar10-lt", "--max-steps", "1", "--out", "{tmp}/r",
                                   "--no-progress"), 2, "--no-verify-checksums", needs="data"),
    Try("cli: CIFAR batch of garbage", lambda tmp: cli(
        "train", "--preset", "cifar10-lt-quick", "--data-root", str(cifar_copy(tmp, True)), "--max-steps", "1",
        "--out", "{tmp}/r", "--no-progress")(tmp), 2, "cifar", needs="data"),
    Try("cli: WORLD_SIZE not a number", cli(*CLI_TINY, "--out", "{tmp}/r", env={"WORLD_SIZE": "two"}), 2,
        "WORLD_SIZE"),
    Try("cli: compare repeated seeds", cli("compare", *CLI_TINY[1:], "--seeds", "0", "0", "--out", "{tmp}"), 2,
        "distinct"),
    Try("cli: compare λ = 0", cli("compare", *CLI_TINY[1:], "--lambda", "0", "--out", "{tmp}"), 2, "> 0"),
    Try("cli: compare negative seed", cli("compare", *CLI_TINY[1:], "--seeds", "-1", "--out", "{tmp}"), 2, "seed"),
    Try("cli: compare no seeds", cli("compare", *CLI_TINY[1:], "--seeds"), 2, "--seeds"),
    Try("cli: compare a λ = 0 preset", cli("compare", "--preset", "synthetic-tiny", "--seeds", "0", "--out", "{tmp}"),
        2, "ceco_lambda"),
    Try("cli: compare seed not a number", cli("compare", *CLI_TINY[1:], "--seeds", "x"), 2, "--seeds"),
]


def _skip_reason(t: Try) -> str | None:
    if t.needs == "data" and (DATA is None or not (DATA / "cifar").is_dir() or not (DATA / "cityscapes").is_dir()):
        return "no real data root (CECO_DATA_DIR)"
    if t.needs == "no-cuda" and torch.cuda.is_available():
        return "CUDA is available here"
    if t.needs == "no-mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "MPS is available here"
    return None


def outcome(t: Try, tmp: Path) -> tuple[bool, str]:
    """(as expected, what happened) for one try in the empty folder ``tmp``."""
    try:
        result = t.run(tmp)
    except BaseException as exc:  # noqa: BLE001 - judged below
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        got, text = exc, f"{type(exc).__name__}: {exc}"
        ok = isinstance(t.expect, (type, tuple)) and isinstance(exc, t.expect) and t.message in str(exc)
    else:
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):  # a command line
            code, err = result
            text = f"exit {code}: {err.strip()}"
            # the message is on the error line ("ceco-lite: error: ..." or argparse's "ceco-lite train: error: ...")
            error_lines = [ln for ln in err.splitlines() if ln.startswith("ceco-lite") and "error:" in ln]
            clear = code == 0 or any(t.message in ln for ln in error_lines)
            ok = code == t.expect and clear and "Traceback" not in err
        else:
            text = "no error"
            ok = t.expect is None
    if ok and t.check is not None:
        try:
            t.check(tmp)
        except AssertionError as exc:
            return False, f"{text}; then: {exc}"
    return ok, text


@pytest.mark.parametrize("t", TRIES, ids=[t.name for t in TRIES])
def test_hostile_try(t: Try, tmp_path):
    reason = _skip_reason(t)
    if reason:
        pytest.skip(reason)
    ok, text = outcome(t, tmp_path)
    want = t.expect.__name__ if isinstance(t.expect, type) else t.expect
    assert ok, f"{t.name}: expected {want} with {t.message!r}, got {text}"


def test_table_is_broad():
    names = [t.name for t in TRIES]
    assert len(names) == len(set(names)) and len(TRIES) >= 150
    kinds = {"cli": sum(n.startswith("cli:") for n in names),
             "folder": sum(("folder" in n or "checkpoint" in n or "config.json" in n or "resume" in n) for n in names),
             "env": sum(any(v in n for v in ("WORLD_SIZE", "RANK", "CECO_DATA_DIR")) for n in names),
             "compare": sum("compare" in n for n in names)}
    assert kinds["cli"] >= 40 and kinds["folder"] >= 30 and kinds["env"] >= 6 and kinds["compare"] >= 6, kinds


def summarize() -> dict:
    """Run every try (skipping those whose needs are not met) and count the outcomes."""
    counts = {"tries": len(TRIES), "skipped": 0, "clear_error": 0, "works_as_expected": 0, "defects": []}
    for t in TRIES:
        if _skip_reason(t):
            counts["skipped"] += 1
            continue
        with tempfile.TemporaryDirectory() as d:
            ok, text = outcome(t, Path(d))
        if not ok:
            counts["defects"].append(f"{t.name}: {text}")
        elif t.expect is None or t.expect == 0:
            counts["works_as_expected"] += 1
        else:
            counts["clear_error"] += 1
    return counts


if __name__ == "__main__":  # pragma: no cover
    c = summarize()
    print(f"{c['tries']} tries: {c['clear_error']} clear errors, {c['works_as_expected']} extreme but valid inputs "
          f"that work, {len(c['defects'])} defects, {c['skipped']} skipped")
    for d in c["defects"]:
        print("  defect:", d)
    sys.exit(1 if c["defects"] else 0)
