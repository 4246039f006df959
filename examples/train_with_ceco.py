#!/usr/bin/env python3
"""Train a torchvision segmentation model with CeCo, without changing the model's code.

The Center Collapse Regularizer (CeCo paper Eq. 5: ``L = L_CE + λ L_CR``) needs the
pre-classifier pixel features; a forward hook (``ceco_lite.attach_features``) takes
them from the model as it is. The change to an ordinary training loop is three lines,
marked ``# CeCo`` below.

    python examples/train_with_ceco.py                       # LR-ASPP, synthetic data, CPU/GPU
    python examples/train_with_ceco.py --model deeplabv3 --steps 50
    python examples/train_with_ceco.py --data camvid --data-root /path/to/data   # a registered data set

Data come from the data-set registry (``data_utils.registry``): ``synthetic``
(imbalanced synthetic segmentation, generated) by default, or any registered
segmentation data set found under ``--data-root`` / ``CECO_DATA_DIR``. Runs on the GPU
when there is one (``--device cpu`` to force the CPU). Weights are random
(``weights=None``): nothing is downloaded.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, lraspp_mobilenet_v3_large

from ceco_lite import CenterCollapseLoss, attach_features, main_output
from data_utils.registry import LoadRequest, get_dataset

#: model builder and the layer whose *input* is the pre-classifier feature map
MODELS = {
    "lraspp": (lraspp_mobilenet_v3_large, "classifier.high_classifier"),
    "deeplabv3": (deeplabv3_mobilenet_v3_large, "classifier.4"),
}
IGNORE_INDEX = 255


def load_training_data(name: str, *, num_classes: int, size: int, num_images: int, data_root=None):
    """``(images (N, 3, H, W) float32 normalised, masks (N, H, W) int64, K)`` of one training split."""
    try:
        spec = get_dataset(name)
    except ValueError as exc:
        raise SystemExit(f"--data: {exc}") from None
    if spec.task != "segmentation":
        raise SystemExit(f"--data {name} is a {spec.task} data set; choose a segmentation one")
    k = spec.num_classes or num_classes
    request = LoadRequest(split="train", size=(size, size), limit=num_images, num_classes=k,
                          ignore_index=IGNORE_INDEX, num_images=num_images)
    images, masks = spec.load_split(spec.resolve_root(data_root), request)
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    if spec.mean is not None:
        mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(spec.std).view(1, 3, 1, 1)
        images = (images - mean) / std
    return images.float(), masks.long(), k


def train(model_name="lraspp", data="synthetic", *, num_classes=8, size=64, num_images=32, batch_size=4,
          steps=20, lam=0.4, lr=0.01, device=None, data_root=None, seed=0, log=print):
    """Train ``steps`` SGD steps with ``CE + lam * CeCo``; return the per-step losses."""
    torch.manual_seed(seed)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    x, y, k = load_training_data(data, num_classes=num_classes, size=size, num_images=num_images,
                                 data_root=data_root)
    builder, layer = MODELS[model_name]
    model = builder(weights=None, weights_backbone=None, num_classes=k).to(device)

    tap = attach_features(model, layer, capture="input")                                # CeCo
    ceco = CenterCollapseLoss(k, tap.feature_dim(x[:2].to(device))).to(device)          # CeCo

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    history = []
    model.train()
    for step in range(steps):
        idx = torch.randperm(len(x), generator=generator)[:batch_size]
        images, masks = x[idx].to(device), y[idx].to(device)
        start = time.perf_counter()
        out, features = tap(images)                                                    # CeCo: was out = model(images)
        ce = F.cross_entropy(main_output(out), masks, ignore_index=IGNORE_INDEX)
        cr = ceco(features, masks)  # features at stride 8; the loss aligns the full-size labels
        loss = ce + lam * cr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step, "ce": ce.item(), "ceco": cr.item(), "loss": loss.item()})
        log(f"step {step + 1:4d}/{steps}  CE {ce.item():.4f}  CeCo {cr.item():.4f}  "
            f"({time.perf_counter() - start:.2f} s, {device.type})")
    tap.remove()
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="lraspp")
    parser.add_argument("--data", default="synthetic", help="registered segmentation data set (default: synthetic)")
    parser.add_argument("--data-root", default=None, help="data root (default: CECO_DATA_DIR)")
    parser.add_argument("--num-classes", type=int, default=8, help="classes of the synthetic data")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lam", type=float, default=0.4, help="CeCo weight λ (paper: 0.4-0.5)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    history = train(args.model, args.data, num_classes=args.num_classes, size=args.size,
                    num_images=args.num_images, batch_size=args.batch_size, steps=args.steps, lam=args.lam,
                    lr=args.lr, device=args.device, data_root=args.data_root, seed=args.seed)
    if not all(math.isfinite(h["loss"]) for h in history):
        raise SystemExit("a loss is not finite")
    return history


if __name__ == "__main__":
    main()
