"""How long `depthnas` takes to start, against what every command used to import first.

Every command builds one argument parser. Until the evaluate command's flags moved to
depthnas/evaluate_cli.py, building it imported depthnas.evaluate, and with it torch,
albumentations and OpenCV: `depthnas --help` and `depthnas spaces` waited seconds for
libraries they do not use. This script times, in one run and in alternating rounds (so
a machine's load falls on all three alike), fresh processes of

  help      python -m depthnas --help
  spaces    python -m depthnas spaces
  old cost  python -c "import depthnas.evaluate"   (the import each command paid)

and prints the medians and the ratios old cost / help and old cost / spaces.

  python benchmarks/cli_startup.py [--rounds 7] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from depthnas.runtime import cpu_model  # torch loads here; the timed commands are fresh processes

COMMANDS = {
    "help": ["-m", "depthnas", "--help"],
    "spaces": ["-m", "depthnas", "spaces"],
    "old_cost": ["-c", "import depthnas.evaluate"],
}


def time_once(args: list[str]) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (after one warm-up)")
    p.add_argument("--json", help="write the figures here too")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    for cmd in COMMANDS.values():  # warm-up: the file cache, .pyc files
        time_once(cmd)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            times[name].append(time_once(cmd))
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {"machine": f"{cpu_model()}, {os.cpu_count()} cpus", "python": platform.python_version(),
              "rounds": args.rounds, "median_s": median,
              "old_cost_over_help": median["old_cost"] / median["help"],
              "old_cost_over_spaces": median["old_cost"] / median["spaces"]}
    print(f"{result['machine']}; Python {result['python']}; median of {args.rounds} rounds")
    for name, cmd in COMMANDS.items():
        print(f"  {name:9s} {median[name]:7.3f} s   python {' '.join(cmd)}")
    print(f"old cost / help:   {result['old_cost_over_help']:.1f}x")
    print(f"old cost / spaces: {result['old_cost_over_spaces']:.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
