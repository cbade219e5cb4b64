"""FLOP ratios of step_time.py's comparisons at the paper's configuration, counted
on the meta device (no weights, no data, any machine, ~20 s): what the three ratios
would be if time followed FLOPs. Convolutions and matrix products only
(torch.utils.flop_counter); the SSI loss and elementwise work are not counted.

    python benchmarks/paper_flops.py [--space v2-nonsync] [--candidates 5]
"""
from __future__ import annotations

import argparse
import random

import torch
from torch.utils.flop_counter import FlopCounterMode

# the recalibration's own stopper (momentum=None BN cannot run on meta tensors)
from depthnas.bn_calibration import _Done, _StopAfterLastBN, batchnorms
from depthnas.spaces import get_space


def tflop(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e12


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="v2-nonsync")
    p.add_argument("--backbone", default="resnext101_32x8d")
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--image-size", type=int, default=384)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--calib-batches", type=int, default=200)
    p.add_argument("--val-batches", type=int, default=40)
    p.add_argument("--candidates", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from depthnas.spaces import list_spaces
    depth = list_spaces("depth")
    if args.space not in depth:
        p.error(f"--space {args.space}: one of {', '.join(depth)} (the decoder search spaces)")
    for name in ("candidates", "calib_batches", "val_batches", "batch_size", "features"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.image_size < 32 or args.image_size % 32:
        p.error(f"--image-size must be a multiple of 32, got {args.image_size}")
    space = get_space(args.space)
    with torch.device("meta"):
        net = space.build_supernet(backbone=args.backbone, features=args.features)
    rng = random.Random(args.seed)

    path, l1, l2 = space.sample_live(rng), space.sample_live(rng), space.sample_live(rng)
    shape = (args.batch_size, 3, args.image_size, args.image_size)
    x, xr = torch.randn(shape, device="meta"), torch.randn(shape, device="meta")
    net.train()

    def plain():
        net(x, path).mean().backward()

    def shared(violated: bool):
        loss = net(x, path).mean()
        f = net.encode(xr)
        r = net.decode(f, l1).mean() - net.decode(f, l2).mean()
        (loss + (r if violated else r.detach())).backward()

    def naive():
        loss = net(x, path).mean()
        (loss + net(xr, l1).mean() - net(xr, l2).mean()).backward()

    p0 = tflop(plain)
    sv, ss, nv = tflop(lambda: shared(True)), tflop(lambda: shared(False)), tflop(naive)
    print(f"{args.backbone} {args.image_size}px, features {args.features}, batch {args.batch_size}, "
          f"{args.space}; TFLOP per training step (forward + backward)")
    print("  (a) super-net path = stand-alone model: identical kernels, 1.00x by construction")
    print(f"  (b) plain SPOS {p0:.2f}; + pair, shared encoder: violated {sv:.2f} ({sv / p0:.2f}x), "
          f"satisfied {ss:.2f} ({ss / p0:.2f}x); naive 3 passes {nv:.2f} ({nv / p0:.2f}x)")
    net.eval()
    C, V = args.calib_batches, args.val_batches
    with torch.no_grad():
        enc = tflop(lambda: net.encode(x))
        feats = net.encode(x)
        ratios = []
        for _ in range(args.candidates):
            a = space.sample_live(rng)
            dec = tflop(lambda: net.decode(feats, a))
            # what PathEvaluator runs: no head, and each forward after the first
            # stops at the path's last BN layer
            stopper = _StopAfterLastBN(batchnorms(net.decoder_modules()))
            cal = tflop(lambda: net.decode_for_calibration(feats, a))
            if stopper.arm():
                def stopped():
                    try:
                        net.decode_for_calibration(feats, a)
                    except _Done:
                        pass
                cal += (C - 1) * tflop(stopped)
            stopper.remove()
            full, cached = (C + V) * (enc + dec), cal + V * dec
            ratios.append(full / cached)
            print(f"  (c) {space.to_string(a)}: encode {enc:.3f}, decode {dec:.3f} TFLOP/batch, "
                  f"calibration {cal / C:.3f} TFLOP/batch -> full/cached {full / cached:.2f}x "
                  f"(with full decodes in calibration: {full / ((C + V) * dec):.2f}x)")
    print(f"  (c) mean over {len(ratios)} candidates: {sum(ratios) / len(ratios):.2f}x "
          f"({C} calibration + {V} validation batches)")


if __name__ == "__main__":
    main()
