"""DistributedDataParallel: two CPU processes (gloo) give the single-process loss and
gradients on the same global batch (CeCo centres over the global batch, BatchNorm over
the global batch), ``train()`` under a ``torchrun``-like environment gives the weights of
the single-process run, and a failure on one process stops every process."""
from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from ceco_lite.engine import TrainStep, get_preset
from ceco_lite.engine.batchnorm import GlobalBatchNorm2d, convert_batchnorm
from ceco_lite.fileio import FolderLock
from ceco_lite.models import build_model

pytestmark = pytest.mark.timeout(180)

K, D = 5, 8


class TinySeg(nn.Module):
    """BN-free model with the ceco-lite interface (batch statistics would differ per process)."""

    task = "segmentation"

    def __init__(self):
        super().__init__()
        self.num_classes, self.feature_dim = K, D
        self.body = nn.Sequential(nn.Conv2d(3, D, 3, padding=1), nn.Tanh(), nn.Conv2d(D, D, 3, stride=2, padding=1))
        self.classifier = nn.Conv2d(D, K, 1)

    def forward(self, x):
        z = torch.relu(self.body(x))
        logits = F.interpolate(self.classifier(z), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"logits": logits, "features": z}

    def classifier_weight(self):
        return self.classifier.weight.reshape(K, D).T


def _data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (4, 8, 8), generator=g)
    y[0, :2] = 255  # unequal numbers of labelled pixels per process
    y[1, :, :3] = 255
    y[2][y[2] == 4] = 0  # class 4 absent from process 1's half
    y[3][y[3] == 4] = 1
    return x, y


def _step(sync: str, learned_cc: bool, pg=None, world=1):
    import ceco_lite

    torch.manual_seed(0)
    model = TinySeg().double()
    cfg = get_preset("synthetic-cpu", num_classes=K, ceco_lambda=0.7, ceco_sync=sync,
                     fixed_center_classifier=not learned_cc)
    ceco = ceco_lite.CenterCollapseLoss(K, D, learnable=learned_cc, generator=torch.Generator().manual_seed(1),
                                        process_group=pg).double()
    return TrainStep(model, cfg, ceco=ceco, process_group=pg, world_size=world)


def _grads(module):
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


# --------------------------------------------------------------- small_seg (BatchNorm)
SEG_STEPS = 3


def _seg_data():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (4, 16, 16), generator=g)
    y[0, :3] = 255
    y[3, :, :5] = 255
    return x, y


def _seg_step(pg=None, world=1, convert=False):
    """small_seg (8 BatchNorm layers) + CeCo (λ = 0.5, global centres) in float64, as the engine builds it."""
    import ceco_lite

    torch.manual_seed(0)
    model = build_model("small_seg", K).double()
    cfg = get_preset("synthetic-cpu", num_classes=K, ceco_lambda=0.5, ceco_sync="global")
    ceco = ceco_lite.CenterCollapseLoss(K, model.feature_dim, generator=torch.Generator().manual_seed(1),
                                        process_group=pg).double()
    step = TrainStep(model, cfg, ceco=ceco, process_group=pg, world_size=world)
    return convert_batchnorm(step) if convert else step


def _seg_run(step, batches):
    """``SEG_STEPS`` SGD steps: per step the loss, the gradients; at the end the weights and BN buffers."""
    opt = torch.optim.SGD([p for p in step.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    losses, grads = [], []
    for xb, yb in batches:
        loss, _ = step(xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        grads.append(_grads(step.module if hasattr(step, "module") else step))
    module = step.module if hasattr(step, "module") else step
    return losses, grads, {k: v.detach().clone() for k, v in module.state_dict().items()}


def _seg_batches(x, y, rank=0, world=1):
    """The same global batches every step (shifted), sharded by rank."""
    local = x.shape[0] // world
    out = []
    for s in range(SEG_STEPS):
        xs, ys = torch.roll(x, s, 0), torch.roll(y, s, 0)
        out.append((xs[rank * local:(rank + 1) * local], ys[rank * local:(rank + 1) * local]))
    return out


def _train_config(tmp, name, **kw):
    return get_preset("synthetic-cpu", num_images=8, num_val_images=4, image_size=(16, 16), batch_size=4, epochs=2,
                      max_steps=3, nc_max_images=4, progress=False, out_dir=f"{tmp}/{name}", **kw)


def _worker(rank, world, ports, tmp):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(ports[0])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        from ceco_lite.engine import train

        x, y = _data()
        local = slice(rank * 2, rank * 2 + 2)
        for learned_cc in (False, True):
            # global centres: DDP loss/gradients = single-process loss/gradients on the global batch
            step = _step("global", learned_cc, dist.group.WORLD, world)
            ddp = DDP(step)  # keep a reference: the reducer must outlive backward()
            loss, terms = ddp(x[local], y[local])
            loss.backward()
            losses = [torch.zeros((), dtype=loss.dtype) for _ in range(world)]
            dist.all_gather(losses, loss.detach())
            out[("global", learned_cc)] = {"loss": torch.stack(losses).mean(), "grads": _grads(step),
                                           "ceco": terms["ceco"]}
            # per-process centres (released code): DDP gradient = mean of the per-process gradients
            step = _step("local", learned_cc)
            ddp = DDP(step)
            loss, _ = ddp(x[local], y[local])
            loss.backward()
            out[("local", learned_cc)] = {"grads": _grads(step)}

        # small_seg with BatchNorm over the global batch: several SGD steps under DDP
        xs, ys = _seg_data()
        step = _seg_step(dist.group.WORLD, world, convert=True)
        assert sum(isinstance(m, GlobalBatchNorm2d) for m in step.modules()) >= 8
        losses, grads, state = _seg_run(DDP(step), _seg_batches(xs, ys, rank, world))
        gathered = []
        for loss in losses:
            parts = [torch.zeros((), dtype=loss.dtype) for _ in range(world)]
            dist.all_gather(parts, loss)
            gathered.append(torch.stack(parts).mean())
        out["seg"] = {"losses": gathered, "grads": grads, "state": state}

        # the whole engine under the initialised process group (tiny synthetic run)
        res = train(_train_config(tmp, "run"))
        w = torch.cat([p.detach().flatten() for p in res.model.parameters()])
        ws = [torch.zeros_like(w) for _ in range(world)]
        dist.all_gather(ws, w)
        out["train"] = {"same": all(torch.equal(ws[0], v) for v in ws), "metrics": res.metrics}
    finally:
        dist.destroy_process_group()

    # a torchrun-like environment: train() joins (and leaves) the process group itself
    os.environ.update(MASTER_PORT=str(ports[1]), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    from ceco_lite.engine import train

    res = train(_train_config(tmp, "torchrun"))
    out["torchrun"] = {"state": {k: v.detach().clone() for k, v in res.model.state_dict().items()},
                       "metrics": res.metrics, "left_group": not dist.is_initialized()}
    # a failure on one process only (rank 0 cannot lock its run folder) stops both, without waiting
    errors = {}
    for port, (name, kw) in zip(ports[2:], (("locked", {}), ("bad_dim", {"num_classes": 40}))):
        os.environ["MASTER_PORT"] = str(port)  # a fresh rendezvous for every process group
        try:
            train(_train_config(tmp, name, **kw))
        except Exception as exc:  # noqa: BLE001 - recorded for the test
            errors[name] = (type(exc).__name__, str(exc))
    out["errors"] = errors
    torch.save(out, f"{tmp}/out{rank}.pt")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    with FolderLock(tmp / "locked", purpose="test"):  # rank 0 of the "locked" run finds it in use
        mp.spawn(_worker, args=(2, _free_ports(4), str(tmp)), nprocs=2, join=True)
    return torch.load(tmp / "out0.pt", weights_only=False), tmp


@pytest.mark.parametrize("learned_cc", [False, True])
def test_ddp_loss_and_gradients_equal_single_process(ddp_results, learned_cc):
    got, _ = ddp_results
    x, y = _data()

    # single process, whole global batch
    ref = _step("global", learned_cc)
    loss, terms = ref(x, y)
    loss.backward()
    g = got[("global", learned_cc)]
    torch.testing.assert_close(g["loss"], loss.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g["ceco"], terms["ceco"], rtol=1e-10, atol=1e-12)
    ref_grads = _grads(ref)
    assert set(ref_grads) == set(g["grads"])
    if learned_cc:
        assert any(n.startswith("ceco") for n in ref_grads)  # the learned centre classifier is synchronised too
    for n, v in ref_grads.items():
        torch.testing.assert_close(g["grads"][n], v, rtol=1e-9, atol=1e-12, msg=n)

    # per-process centres: DDP averages the two halves' single-process gradients
    halves = []
    for r in range(2):
        s = _step("local", learned_cc)
        loss, _ = s(x[r * 2:r * 2 + 2], y[r * 2:r * 2 + 2])
        loss.backward()
        halves.append(_grads(s))
    loc = got[("local", learned_cc)]["grads"]
    for n in halves[0]:
        torch.testing.assert_close(loc[n], (halves[0][n] + halves[1][n]) / 2, rtol=1e-9, atol=1e-12, msg=n)
    # ... which differ from the global-centre gradients (the option matters)
    assert any(not torch.allclose(loc[n], ref_grads[n]) for n in ref_grads)


def test_train_runs_with_ddp(ddp_results):
    got, tmp = ddp_results
    assert got["train"]["same"]  # DDP keeps the replicas identical
    m = got["train"]["metrics"]
    assert m["world_size"] == 2 and m["steps"] == 3
    assert 0 <= m["miou"] <= 100 and "ceco" in m["history"][-1]["loss"]
    assert (tmp / "run" / "metrics.json").exists()


def test_global_batchnorm_ddp_equals_single_process(ddp_results):
    """small_seg + CeCo (global centres): loss, gradients at every step, final weights and BatchNorm
    running statistics of 2 gloo processes equal one process on the global batch."""
    got, _ = ddp_results
    xs, ys = _seg_data()
    losses, grads, state = _seg_run(_seg_step(), _seg_batches(xs, ys))
    seg = got["seg"]
    for s in range(SEG_STEPS):
        torch.testing.assert_close(seg["losses"][s], losses[s], rtol=1e-6, atol=1e-6, msg=f"loss, step {s + 1}")
        assert set(seg["grads"][s]) == set(grads[s])
        for n, v in grads[s].items():
            torch.testing.assert_close(seg["grads"][s][n], v, rtol=1e-6, atol=1e-6, msg=f"{n}, step {s + 1}")
    assert set(seg["state"]) == set(state)  # the converted model's state_dict has plain BatchNorm keys
    for k, v in state.items():
        torch.testing.assert_close(seg["state"][k], v, rtol=1e-6, atol=1e-6, msg=k)
    assert any("running_var" in k for k in state) and int(state["model.stem.1.num_batches_tracked"]) == SEG_STEPS


def test_per_process_batchnorm_would_differ():
    """The comparison above can fail: BatchNorm statistics of half the batch give other gradients."""
    xs, ys = _seg_data()
    full = _seg_step()
    loss, _ = full(xs, ys)
    loss.backward()
    half = _seg_step()
    loss_h, _ = half(xs[:2], ys[:2])
    loss_h.backward()
    g_full, g_half = _grads(full), _grads(half)
    name = "model.stem.0.weight"
    assert not torch.allclose(g_full[name], g_half[name], rtol=1e-3, atol=1e-6)


def test_torchrun_environment_train_equals_single_process(ddp_results, tmp_path):
    """WORLD_SIZE=2 (torchrun's variables, no process group yet): a few optimiser steps of train()
    give the single-process weights, BatchNorm statistics and NC statistics."""
    got, _ = ddp_results
    run = got["torchrun"]
    assert run["left_group"] and run["metrics"]["world_size"] == 2 and run["metrics"]["steps"] == 3
    ref = __import__("ceco_lite.engine", fromlist=["train"]).train(_train_config(tmp_path, "single"))
    assert ref.metrics["world_size"] == 1
    state = ref.model.state_dict()
    assert set(run["state"]) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(run["state"][k], v, rtol=1e-6, atol=1e-6, msg=k)
    for key in ("nc1", "equiangularity_centers"):
        assert math.isclose(run["metrics"]["nc"][key], ref.metrics["nc"][key], rel_tol=1e-4), key
    for a, b in zip(run["metrics"]["history"], ref.history):
        assert math.isclose(a["loss"]["total"], b["loss"]["total"], rel_tol=1e-6)


def test_failure_on_one_process_stops_all(ddp_results, tmp_path):
    """Rank 0 cannot lock its run folder: it reports why, rank 1 stops too (no hang)."""
    got, tmp = ddp_results
    errs0 = got["errors"]
    errs1 = torch.load(tmp / "out1.pt", weights_only=False)["errors"]
    assert errs0["locked"][0] == "FolderLockedError" and "in use" in errs0["locked"][1]
    assert errs1["locked"][0] == "RuntimeError" and "another process" in errs1["locked"][1]
    # a configuration error raises the same error on every process
    for errs in (errs0, errs1):
        assert errs["bad_dim"][0] == "ValueError" and "feature_dim" in errs["bad_dim"][1]
