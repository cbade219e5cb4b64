"""BatchNorm recalibration for one path of a super-net (as in SPOS).

Running statistics accumulated during super-net training mix every path that
was sampled; evaluating a path with them misranks it. Before a path is scored,
its decoder BN layers are reset and re-estimated with a cumulative average over
a few training batches. (The authors' code forced BN into train mode at eval
instead, which makes a score depend on the evaluation batch.)
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from torch import nn


def batchnorms(modules: Iterable[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for mod in modules for m in mod.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def statistics_kept(modules: Iterable[nn.Module]) -> Iterator[None]:
    """The BN layers under `modules` end the block with the running statistics they
    began it with. Scoring a path leaves them calibrated for that path; kept, the
    super-net trains on from what training left, whether a search scored it in this
    process or a resumed run read that search back."""
    saved = [(buf, buf.clone()) for bn in batchnorms(modules)
             for buf in bn.buffers(recurse=False)]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


class _Done(Exception):
    """Raised from a hook once the last BN layer of a forward has run."""


class _StopAfterLastBN:
    """Records which BN layers a forward runs, then stops later forwards right
    after the last of them."""

    def __init__(self, bns: list[nn.Module]):
        self.calls: list[nn.Module] = []
        self.handles = [bn.register_forward_hook(self._record) for bn in bns]

    def _record(self, module, inputs, output) -> None:
        self.calls.append(module)

    def arm(self) -> bool:
        """Switch from recording to stopping; False if no BN layer ran."""
        self.remove()
        if not self.calls:
            return False
        last = self.calls[-1]
        self.expected, self.seen = self.calls.count(last), 0
        self.handles = [last.register_forward_hook(self._stop)]
        return True

    def _stop(self, module, inputs, output) -> None:
        self.seen += 1
        if self.seen == self.expected:
            self.seen = 0
            raise _Done

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@torch.no_grad()
def recalibrate(modules: Iterable[nn.Module], forward: Callable[[object], object],
                batches: Iterable[object], stop_after_last_bn: bool = False) -> int:
    """Reset the BN layers under `modules`, then run forward(batch) on each batch
    with those layers in train mode and momentum=None (an exact mean over the
    batches). Returns the number of batches used; the modules end in eval mode.

    stop_after_last_bn: the first batch records which BN layers the forward runs;
    later forwards stop right after the last of them (nothing after it changes a
    statistic), and when none ran, no batch follows the first. Same statistics,
    less work: in the depth decoder the finest block's upsampling (unless pixel
    shuffle) comes after the last BN. `forward` must let exceptions through."""
    bns = batchnorms(modules)
    saved = [(bn, bn.momentum) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    stopper = _StopAfterLastBN(bns) if stop_after_last_bn else None
    count = 0
    try:
        for batch in batches:
            if stopper is not None and count == 1 and not stopper.arm():
                break  # no BN layer on this path: nothing to estimate
            try:
                forward(batch)
            except _Done:
                pass
            count += 1
    finally:
        if stopper is not None:
            stopper.remove()
        for bn, momentum in saved:
            bn.momentum = momentum
            bn.eval()  # calibrated for evaluation, whatever mode it came in
    return count
