"""Discriminative learning rates, weight-decay groups and the warmup + cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import nn


def param_groups(
    backbone: nn.Module,
    head_params: Iterable[nn.Parameter],
    lr_backbone: float,
    lr_head: float,
    weight_decay: float,
) -> list[dict]:
    """AdamW groups: backbone and head at their own lr, each split into decay / no-decay.

    Norm weights and biases (every parameter with fewer than 2 dimensions) get no weight
    decay: shrinking them towards zero regularises nothing useful.
    """
    groups = []
    for name, params, lr in (
        ("backbone", list(backbone.parameters()), lr_backbone),
        ("head", list(head_params), lr_head),
    ):
        trainable = [p for p in params if p.requires_grad]
        decay = [p for p in trainable if p.ndim >= 2]
        no_decay = [p for p in trainable if p.ndim < 2]
        groups.append({"name": f"{name}", "params": decay, "lr": lr, "weight_decay": weight_decay})
        groups.append(
            {"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0}
        )
    return [g for g in groups if g["params"]]


def warmup_cosine(warmup_steps: int, total_steps: int, decay_rate: float):
    """Multiplier for ``LambdaLR``: linear warmup to 1, then cosine down to ``decay_rate``.

    A multiplier (not timm's absolute ``lr_min``) so every parameter group ends at its
    own ``lr * decay_rate``.
    """
    total_steps = max(total_steps, 1)
    warmup_steps = min(max(warmup_steps, 0), total_steps - 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps - 1, 1), 1.0)
        return decay_rate + (1 - decay_rate) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
