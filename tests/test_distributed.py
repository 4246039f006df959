"""DistributedDataParallel: two CPU processes (gloo) give the single-process loss and
gradients on the same global batch (CeCo centres over the global batch), and
``train()`` runs under an initialised process group."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from ceco_lite.engine import TrainStep, get_preset

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


def _worker(rank, world, port, tmp):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        from ceco_lite.engine import train

        x, y = _data()
        local = slice(rank * 2, rank * 2 + 2)
        out = {}
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

        # the whole engine under the process group (tiny synthetic run)
        cfg = get_preset("synthetic-cpu", num_images=8, num_val_images=4, image_size=(16, 16), batch_size=4,
                         epochs=2, max_steps=3, nc_max_images=4, progress=False, out_dir=tmp + "/run")
        res = train(cfg)
        w = torch.cat([p.detach().flatten() for p in res.model.parameters()])
        ws = [torch.zeros_like(w) for _ in range(world)]
        dist.all_gather(ws, w)
        if rank == 0:
            out["train"] = {"same": all(torch.equal(ws[0], v) for v in ws), "metrics": res.metrics}
            torch.save(out, tmp + "/out.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp)), nprocs=2, join=True)
    return torch.load(tmp / "out.pt", weights_only=False), tmp


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
