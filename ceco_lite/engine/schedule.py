"""Learning-rate schedules, stepped once per optimiser step.

* ``poly`` -- CeCo paper supplement Appendix D.2: ``lr_t = lr_0 (1 - t/T)^p``, p = 0.9.
* ``ldam`` -- LDAM-DRW CIFAR recipe (Cao et al. 2019, public ``cifar_train.py``
  ``adjust_learning_rate``): with 1-based epoch e, ``lr_0 e/W`` for e ≤ W (warm-up),
  then ``lr_0 γ^m`` where m counts the milestones strictly below e (γ = 0.01,
  milestones 160, 180 → lr_0·0.01 from epoch 161 and lr_0·1e-4 from epoch 181).
* ``constant``.
"""
from __future__ import annotations

import torch

__all__ = ["LRFactor", "build_scheduler"]


class LRFactor:
    """Multiplicative learning-rate factor as a function of the global step.

    Parameters
    ----------
    kind : {"poly", "ldam", "constant"}
    total_steps : int
        Horizon T of the poly schedule (≥ 1).
    steps_per_epoch : int
        For the epoch-based ``ldam`` schedule.
    power : float
        Poly power (0.9 in the paper).
    warmup_epochs : int
    milestones : tuple of int
        1-based epochs after which the factor is multiplied by ``gamma``.
    gamma : float
    """

    def __init__(self, kind: str, total_steps: int, steps_per_epoch: int, *, power: float = 0.9,
                 warmup_epochs: int = 0, milestones=(), gamma: float = 0.01):
        if kind not in ("poly", "ldam", "constant"):
            raise ValueError(f"kind must be 'poly', 'ldam' or 'constant', got {kind!r}")
        if total_steps < 1 or steps_per_epoch < 1:
            raise ValueError("total_steps and steps_per_epoch must be >= 1")
        self.kind = kind
        self.total_steps = int(total_steps)
        self.steps_per_epoch = int(steps_per_epoch)
        self.power = float(power)
        self.warmup_epochs = int(warmup_epochs)
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "poly":
            return max(0.0, 1.0 - min(step, self.total_steps) / self.total_steps) ** self.power
        epoch = step // self.steps_per_epoch + 1  # 1-based, as in LDAM-DRW
        if self.warmup_epochs and epoch <= self.warmup_epochs:
            return epoch / self.warmup_epochs
        return self.gamma ** sum(epoch > m for m in self.milestones)


def build_scheduler(optimizer: torch.optim.Optimizer, factor: LRFactor) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`torch.optim.lr_scheduler.LambdaLR` applying ``factor`` per step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
