"""Rendering speed of the embedded synthetic RGB-D scenes (ms per scene).

    python benchmarks/synthetic_render.py [--sizes 128 256] [--scenes 10]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from depthnas.datasets import render_scene
from depthnas.runtime import cpu_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])  # the usage is argparse's
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="square sides (default 128 256)")
    p.add_argument("--scenes", type=int, default=10, help="scenes timed per size (default 10)")
    args = p.parse_args()
    if args.scenes < 1 or min(args.sizes) < 8:
        p.error("--scenes must be >= 1 and every --sizes value >= 8 pixels")
    print(f"CPU: {cpu_model()} (one process, numpy)")
    for size in args.sizes:
        render_scene(np.random.default_rng(0), size, size)  # warm-up
        times = []
        for i in range(args.scenes):
            t = time.perf_counter()
            render_scene(np.random.default_rng([0, i]), size, size)
            times.append(time.perf_counter() - t)
        print(f"{size}x{size}: median {1e3 * float(np.median(times)):.1f} ms per scene "
              f"({args.scenes} scenes)")


if __name__ == "__main__":
    main()
