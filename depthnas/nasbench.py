"""Ground truth for the nb201 space from a NAS-Bench-201 / NATS-Bench benchmark
file the user already owns (this tool downloads nothing).

    python -m depthnas.nasbench BENCHMARK --all --out nb201_truth.json
    depthnas search --space nb201 --data cifar10:PATH --set search.truth_table=nb201_truth.json

BENCHMARK is either
  * a NATS-Bench topology file or its fast-mode folder (NATS-tss-v1_0-3ffb9*),
    read with the `nats_bench` package, or
  * a NAS-Bench-201 `.pth` file (NAS-Bench-201-v1_*.pth), read with `nas_201_api`.
Neither package is a dependency: each is imported only here, when needed. Both
load their files with pickle / torch.load, so only open files you trust.

The exported table maps each canonical NB201 string to {"accuracy": percent},
the benchmark's mean over seeds (is_random=False) after the last epoch; by default
the validation accuracy of the `cifar10-valid` protocol with the 200-epoch
schedule, the final result and the usual ground truth for ranking (the searches
in the benchmark's own papers query the 12-epoch one, --hp 12). The landmark paper's
NAS-Bench-201 table, and its authors' code, rank by `cifar10`'s test accuracy after 200
epochs (--dataset cifar10 --set test): export that to compare with its figures, knowing a
search that picks by it selects on the test set. `depthnas.truth` reads
`accuracy` as the error rate 1 - accuracy/100, the unit of the space's own
stand-alone results. Export every architecture the run may train (e.g. --all):
the search uses the table where it has an entry and trains otherwise, and
benchmark numbers do not rank together with a different training recipe's.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import pickle
import random
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator
from unittest import mock

from depthnas.spaces import get_space

from .io import atomic_write_json, path_arg

DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
SETS = ("valid", "test", "valtest", "train")
# The splits each protocol evaluates on: cifar10 trains on train + valid, and
# cifar10-valid has no separate valtest. Known before a benchmark opens (minutes).
SETS_OF = {"cifar10": ("test", "train"), "cifar10-valid": ("valid", "test", "train")}


PIP_NAMES = {"nats_bench": "nats_bench", "nas_201_api": "nas-bench-201"}


def _import(module: str, what: str) -> Any:
    try:
        return __import__(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise ImportError(f"reading {what} needs the optional module `{module}`, which is not "
                          f"installed (pip install {PIP_NAMES[module]})") from None


def open_benchmark(path: str | Path) -> Any:
    """The benchmark API object for `path` (see the module docstring for the formats)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"benchmark file not found: {path} (a NATS-Bench NATS-tss-* file or "
                                "folder, or a NAS-Bench-201 .pth file; nothing is downloaded)")
    if path.suffix == ".pth":
        api_mod = _import("nas_201_api", f"the NAS-Bench-201 file {path}")
        import torch
        # nas_201_api's bare torch.load predates torch 2.6, whose weights-only default
        # refuses the file's pickled objects. Handed the loaded dict instead, the API
        # deep-copies it: twice the memory of a multi-GB benchmark. So its load is
        # given weights_only=False for this call.
        whole_load = functools.partial(torch.load, weights_only=False)
        with _not_a_benchmark(path), mock.patch.object(torch, "load", whole_load):
            return api_mod.NASBench201API(str(path), verbose=False)
    nats = _import("nats_bench", f"the NATS-Bench benchmark {path}")
    with _not_a_benchmark(path):
        # A folder is the fast-mode archive (one small file per architecture).
        return nats.create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)


@contextlib.contextmanager
def _not_a_benchmark(path: Path) -> Iterator[None]:
    """A damaged download or another file fails deep in the readers' unpickling, in
    their words; say which file is at fault."""
    try:
        yield
    except BenchmarkQueryError:  # said in our words already
        raise
    except OSError as err:  # the file at fault may be one inside a fast-mode folder
        inside = f" ({err.filename})" if err.filename and Path(err.filename) != path else ""
        raise OSError(f"cannot read the benchmark {path}{inside}: {err.strerror or err}") from None
    except (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, TypeError, AttributeError,
            AssertionError, ValueError) as err:  # the readers check a file's layout with assert
        raise ValueError(f"{path} is not a readable NAS-Bench-201 / NATS-Bench file (a damaged "
                         f"or unfinished download?): {type(err).__name__}: {err}") from None


class BenchmarkQueryError(ValueError):
    """A query the benchmark, read whole, cannot answer (an architecture or metric it
    lacks): not a damaged file."""


def check_query(dataset: str, setname: str) -> None:
    """A dataset and split no benchmark holds together, refused before one opens."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown benchmark dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    sets = SETS_OF.get(dataset, SETS)
    if setname not in sets:
        raise ValueError(f"--set {setname}: the {dataset} protocol has no {setname}-accuracy "
                         f"(it has {', '.join(sets)})" + (
                             "; the validation accuracy is cifar10-valid's (--dataset cifar10-valid)"
                             if dataset == "cifar10" and setname == "valid" else ""))


def _more_info(api: Any, index: int, dataset: str, hp: str) -> dict[str, Any]:
    # nats_bench and nas_201_api >= 2.0 take hp; nas_201_api 1.x a 12-epoch flag instead.
    params = inspect.signature(api.get_more_info).parameters
    if "hp" in params:
        return api.get_more_info(index, dataset, iepoch=None, hp=hp, is_random=False)
    if hp not in ("12", "200"):
        raise ValueError(f"this nas_201_api version has only the 12- and 200-epoch results, not hp={hp}")
    return api.get_more_info(index, dataset, iepoch=None, use_12epochs_result=hp == "12", is_random=False)


def query_accuracy(api: Any, arch: str, *, dataset: str = "cifar10-valid", hp: str = "200",
                   setname: str = "valid") -> float:
    """Top-1 accuracy in percent of `arch` (an NB201 string) on `setname`."""
    check_query(dataset, setname)
    index = api.query_index_by_arch(arch)
    if index is None or index < 0:
        raise BenchmarkQueryError(f"architecture {arch} is not in the benchmark (a NATS-Bench "
                                  "size-space file? nb201 needs the topology one, NATS-tss)")
    info = _more_info(api, int(index), dataset, str(hp))
    key = f"{setname}-accuracy"
    if info.get(key) is None:
        have = sorted(k for k in info if k.endswith("-accuracy"))
        raise BenchmarkQueryError(f"the benchmark has no {key} for {dataset} (it has {', '.join(have)})")
    return float(info[key])


def architectures(indices: Iterable[int]) -> list[str]:
    """NB201 strings of the given indices into the space's genes in mixed-radix order."""
    space = get_space("nb201")
    radix = space.gene_choices()
    out = []
    for i in indices:
        genes = []
        for n in reversed(radix):
            i, g = divmod(i, n)
            genes.append(g)
        out.append(space.to_string(space.make(genes[::-1])))
    return out


def all_architectures() -> list[str]:
    """All 15,625 NB201 strings."""
    return architectures(range(get_space("nb201").size()))


def _read_archs(path: Path) -> list[str]:
    """One NB201 string per line (blank lines skipped); a bad one named by its line,
    which a 15,625-line file needs."""
    space = get_space("nb201")
    archs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                space.from_string(line.strip())
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: {err}") from None
            archs.append(line.strip())
    return archs


def export_truth(benchmark: str | Path | Any, archs: Iterable[str], out: str | Path, *,
                 dataset: str = "cifar10-valid", hp: str = "200", setname: str = "valid") -> dict[str, Any]:
    """Write a truth table JSON for `archs` and return it. `benchmark` is a path, or
    an already opened API object (opening a full benchmark takes minutes)."""
    space = get_space("nb201")
    # canonical, as the search looks them up; read before the benchmark, whose opening
    # takes minutes, so that a typo is named at once
    canonical = [space.to_string(space.from_string(text)) for text in archs]
    if not canonical:
        raise ValueError("no architectures to export (an empty --archs file?)")
    check_query(dataset, setname)
    path = Path(benchmark).expanduser() if isinstance(benchmark, (str, Path)) else None
    api = open_benchmark(path) if path is not None else benchmark
    table: dict[str, dict[str, float]] = {}
    # a fast-mode folder reads each architecture's file at its first query: a damaged
    # one fails here, minutes in, and is named as a damaged file is at the opening
    with _not_a_benchmark(path) if path is not None else contextlib.nullcontext():
        for arch in canonical:
            table[arch] = {"accuracy": query_accuracy(api, arch, dataset=dataset, hp=hp, setname=setname)}
    data = {"source": str(benchmark) if isinstance(benchmark, (str, Path)) else type(api).__name__,
            "space": space.name, "dataset": dataset, "hp": str(hp), "metric": f"{setname}-accuracy",
            "unit": "accuracy in percent; read as error = 1 - accuracy / 100",
            "architectures": table}
    atomic_write_json(out, data)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m depthnas.nasbench",
                                description="Export an nb201 truth table from a benchmark file you own.")
    p.add_argument("benchmark", help="NATS-tss-* file/folder or NAS-Bench-201-v1_*.pth")
    p.add_argument("--out", required=True, type=path_arg, help="truth table JSON to write")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs", help="text file: one NB201 architecture string per line")
    which.add_argument("--all", action="store_true", help="all 15,625 architectures")
    which.add_argument("--random", type=int, metavar="N", help="N architectures sampled uniformly")
    p.add_argument("--seed", type=int, default=0, help="seed for --random")
    p.add_argument("--dataset", default="cifar10-valid", choices=DATASETS)
    p.add_argument("--hp", default="200", choices=("12", "200"),
                   help="training schedule: 12 or 200 (epochs)")
    p.add_argument("--set", dest="setname", default="valid", choices=SETS, help="evaluation split")
    args = p.parse_args(argv)
    if args.random is not None and args.random < 1:
        p.error(f"--random {args.random}: sample at least 1 architecture")
    try:
        if args.archs:
            archs = _read_archs(Path(args.archs))
        elif args.all:
            archs = all_architectures()
        else:
            size = get_space("nb201").size()
            archs = architectures(random.Random(args.seed).sample(range(size), min(args.random, size)))
        data = export_truth(args.benchmark, archs, args.out, dataset=args.dataset, hp=args.hp,
                            setname=args.setname)
    except (ImportError, OSError, ValueError) as err:  # OSError: a file the reader cannot read
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(data['architectures'])} architecture(s) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
