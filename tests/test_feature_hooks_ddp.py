"""FeatureTap under DistributedDataParallel: two CPU processes (gloo), a model we do not change,
features captured through the ``module.`` prefix, CeCo centres over the global batch."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from ceco_lite import CenterCollapseLoss
from ceco_lite.feature_hooks import attach_features, main_output

K = 4


def gen(seed):
    return torch.Generator().manual_seed(seed)


class NoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, 6, 3, stride=2, padding=1))
        self.head = nn.Conv2d(6, K, 1)

    def forward(self, x):
        return {"out": F.interpolate(self.head(torch.relu(self.body(x))), size=x.shape[-2:], mode="bilinear",
                                           align_corners=False)}


def _ddp_data():
    g = gen(11)
    x = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (4, 8, 8), generator=g)
    y[0, :3] = 255
    return x, y


def _ddp_loss(model, tap, x, y, pg=None):
    ceco = CenterCollapseLoss(K, 6, generator=gen(12), process_group=pg).double()
    out, z = tap(x)
    return F.cross_entropy(main_output(out), y, ignore_index=255) + 0.5 * ceco(z, y)


def _ddp_worker(rank, world, port, tmp):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = NoBN().double()
        ddp = nn.parallel.DistributedDataParallel(model)
        tap = attach_features(ddp, "module.head", capture="input")
        x, y = _ddp_data()
        local = slice(rank * 2, rank * 2 + 2)
        loss = _ddp_loss(ddp, tap, x[local], y[local], pg=dist.group.WORLD)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        if rank == 0:
            torch.save({"grads": grads}, os.path.join(tmp, "ddp.pt"))
        dist.barrier()  # no rank tears the group down while another still uses it (gloo aborts then)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_global_centres_match_single_process(tmp_path):
    """Two gloo ranks, each half the batch: CE is the mean of the halves, CeCo uses the global centres."""
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    got = torch.load(tmp_path / "ddp.pt")["grads"]
    torch.manual_seed(0)
    model = NoBN().double()
    tap = attach_features(model, "head", capture="input")
    x, y = _ddp_data()
    # reference: DDP averages per-rank gradients; CE per rank is each half's mean, CeCo's global loss
    # reaches every rank with the same value (see CenterCollapseLoss notes), so the average gradient
    # is mean_r grad(CE_r) + 0.5 * grad(CeCo on the whole batch)
    ce_grads = []
    for r in range(2):
        model.zero_grad()
        out, _ = tap(x[r * 2:r * 2 + 2])
        F.cross_entropy(main_output(out), y[r * 2:r * 2 + 2], ignore_index=255).backward()
        ce_grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.zero_grad()
    _, z = tap(x)
    (0.5 * CenterCollapseLoss(K, 6, generator=gen(12)).double()(z, y)).backward()
    for n, p in model.named_parameters():
        ceco_grad = p.grad if p.grad is not None else torch.zeros_like(p)  # none for the head (after the tap)
        want = (ce_grads[0][n] + ce_grads[1][n]) / 2 + ceco_grad
        torch.testing.assert_close(got[n], want, rtol=1e-9, atol=1e-12, msg=n)
