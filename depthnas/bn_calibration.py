"""BatchNorm recalibration for one path of a super-net (as in SPOS).

Running statistics accumulated during super-net training mix every path that
was sampled; evaluating a path with them misranks it. Before a path is scored,
its decoder BN layers are reset and re-estimated with a cumulative average over
a few training batches. (The authors' code forced BN into train mode at eval
instead, which makes a score depend on the evaluation batch.)
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


def batchnorms(modules: Iterable[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for mod in modules for m in mod.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate(modules: Iterable[nn.Module], forward: Callable[[object], object],
                batches: Iterable[object]) -> int:
    """Reset the BN layers under `modules`, then run forward(batch) on each batch
    with those layers in train mode and momentum=None (an exact mean over the
    batches). Returns the number of batches used; the modules end in eval mode."""
    bns = batchnorms(modules)
    saved = [(bn, bn.momentum, bn.training) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    count = 0
    try:
        for batch in batches:
            forward(batch)
            count += 1
    finally:
        for bn, momentum, _ in saved:
            bn.momentum = momentum
            bn.eval()
    return count
