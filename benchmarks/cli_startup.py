"""How long `depthnas` takes to start, against what every command used to import first.

Every command builds one argument parser. Until the evaluate command's flags moved to
depthnas/evaluate_cli.py, building it imported depthnas.evaluate, and with it torch,
albumentations and OpenCV: `depthnas --help` and `depthnas spaces` waited seconds for
libraries they do not use. A refused configuration, and `predict` given a model file
that does not exist, waited as long again before they were said, as did `rank` given
a run folder that is not there and `search` given a data kind that does not exist
(both said after torch, and the loaders, had loaded). This script times, in
one run and in alternating rounds (so a machine's load falls on all alike), fresh
processes of

  help      python -m depthnas --help
  spaces    python -m depthnas spaces
  refused   python -m depthnas search --set supernet.precision=bf17   (exits 2)
  no model  python -m depthnas predict --model missing.onnx ...      (exits 2)
  no run    python -m depthnas rank --run missing --truth missing     (exits 2)
  bad kind  python -m depthnas search --data bogus:/x                 (exits 2)
  old cost  python -c "import depthnas.evaluate"   (the import each command paid)

and prints the medians and the ratios of the old cost to each.

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
import tempfile
import time
from pathlib import Path

from depthnas.runtime import cpu_model  # torch loads here; the timed commands are fresh processes

_MISSING = os.path.join(tempfile.gettempdir(), "depthnas-cli-startup-missing")  # never made
COMMANDS = {  # name: (arguments, the exit status expected)
    "help": (["-m", "depthnas", "--help"], 0),
    "spaces": (["-m", "depthnas", "spaces"], 0),
    "refused": (["-m", "depthnas", "search", "--set", "supernet.precision=bf17", "--out", _MISSING], 2),
    "no_model": (["-m", "depthnas", "predict", "--model", _MISSING + ".onnx", "--input", _MISSING,
                  "--out", _MISSING], 2),
    "no_run": (["-m", "depthnas", "rank", "--run", _MISSING, "--truth", _MISSING + ".json"], 2),
    "bad_kind": (["-m", "depthnas", "search", "--data", "bogus:/x", "--out", _MISSING], 2),
    "old_cost": (["-c", "import depthnas.evaluate"], 0),
}


def time_once(args: list[str], expect: int) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=env)
    took = time.perf_counter() - start
    if done.returncode != expect:  # timing a command that failed otherwise measures nothing
        raise SystemExit(f"python {' '.join(args)} exited {done.returncode}, not {expect}: "
                         f"{done.stderr.strip()[-500:]}")
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (after one warm-up)")
    p.add_argument("--json", help="write the figures here too")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.json and Path(args.json).is_dir():  # said after the timings, as a traceback
        p.error(f"--json {args.json} is a folder; name the file to write")
    for cmd, expect in COMMANDS.values():  # warm-up: the file cache, .pyc files
        time_once(cmd, expect)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, (cmd, expect) in COMMANDS.items():
            times[name].append(time_once(cmd, expect))
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {"machine": f"{cpu_model()}, {os.cpu_count()} cpus", "python": platform.python_version(),
              "rounds": args.rounds, "median_s": median}
    result.update({f"old_cost_over_{name}": median["old_cost"] / median[name]
                   for name in COMMANDS if name != "old_cost"})
    print(f"{result['machine']}; Python {result['python']}; median of {args.rounds} rounds")
    for name, (cmd, _) in COMMANDS.items():
        print(f"  {name:9s} {median[name]:7.3f} s   python {' '.join(cmd)}")
    for name in COMMANDS:
        if name != "old_cost":
            print(f"old cost / {name + ':':9s} {result[f'old_cost_over_{name}']:.1f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
