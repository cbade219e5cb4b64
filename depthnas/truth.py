"""Tables of stand-alone results (architecture string -> loss), for ranking.

Accepted forms: JSON {"arch": loss}, {"arch": {"mean": loss, ...}}, a landmark
store {"entries": [{"arch", "val_loss"}]}, a list of such entries, a benchmark
table {"architectures": {...}}, or CSV with columns arch,val_loss (or arch,mean).

Lower is better everywhere, except for accuracies: an entry (JSON key or CSV
column) named `accuracy` holds a top-1 accuracy in percent, as NAS-Bench-201
reports it, and is stored as the error rate 1 - accuracy / 100 in [0, 1]. That
is the unit a classification space's stand-alone training records (its
validation score is the error rate), so table values and trained values rank
together. An entry with both a loss key and `accuracy` uses the loss key. A table
whose accuracies are all <= 1 is refused: those look like fractions, and reading
them as percent would silently turn 93% into 0.93%.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .io import read_json, read_text
from .terminal import listed

if TYPE_CHECKING:
    from .config import Config

LOSS_KEYS = ("mean", "val_loss", "loss", "score")
ACCURACY_KEYS = ("accuracy",)

log = logging.getLogger(__name__)


def _finite(arch: str, v: Any, path: Path) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{path}: entry {arch!r} has loss {v!r}; expected a number")
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"{path}: entry {arch!r} has loss {x}; a table holds finite losses "
                         "(leave a failed training out, or null in a benchmark table's 'mean')")
    return x


def _value(arch: str, v: Any, path: Path, accuracies: list[float],
           nulls: bool = False) -> float | None:
    """The entry's loss; None (`nulls`: in a file depthnas wrote) for a training that
    failed: a benchmark table's `mean` where every seed diverged, a run's NaN loss
    written as null. A null in a table of the user's is refused, not left out unsaid."""
    if isinstance(v, (int, float, str)):  # bool is an int: _finite refuses it by name
        return _finite(arch, v, path)
    if isinstance(v, dict):
        for k in LOSS_KEYS:
            if k in v:
                if v[k] is None and nulls:
                    return None
                return _finite(arch, v[k], path)
        for k in ACCURACY_KEYS:
            if k in v:
                acc = _finite(arch, v[k], path)
                if not 0.0 <= acc <= 100.0:
                    raise ValueError(f"{path}: entry {arch!r} has {k} {acc}; expected percent in [0, 100]")
                accuracies.append(acc)
                return 1.0 - acc / 100.0
    raise ValueError(f"{path}: entry {arch!r} has no loss (expected a number or one of "
                     f"{LOSS_KEYS}, or an accuracy in percent under {ACCURACY_KEYS})")


def _check_percent(accuracies: list[float], path: Path) -> None:
    if accuracies and max(accuracies) <= 1.0:
        raise ValueError(f"{path}: every accuracy is <= 1, which looks like fractions; "
                         "'accuracy' is in percent (multiply by 100)")


@dataclass
class TruthTable:
    """A table, read once: its losses, and what a benchmark table records beside them."""
    values: dict[str, float]
    # the model and data its trainings used, as config fields (model.backbone,
    # model.features, data.image_size, data.spec), where recorded (benchmarks/depth_proxy)
    setup: dict[str, Any] = field(default_factory=dict)
    # per space, the median |seed 0 - seed 1| of its losses, where recorded: the loss
    # difference below which the table's own order is noise (the sparse Kendall tau's
    # natural bin width)
    seed_noise: dict[str, float] = field(default_factory=dict)
    # values known to be losses or error rates: given as accuracy in percent (turned into
    # error rates here), or a record depthnas wrote (a run's results.json, a landmark
    # store): no sign of accuracy fractions read as losses
    known_losses: bool = False


def load_truth(path: str | Path) -> dict[str, float]:
    return read_table(path).values


def read_table(path: str | Path, recipe: Callable[[], dict[str, Any]] | None = None) -> TruthTable:
    """A CSV (an `arch` column and a loss or accuracy column) or a JSON table: a run's
    results.json, a landmark store, a benchmark's table, or arch -> value. `recipe`:
    gives the stand-alone recipe of the run the table is for (called only for a
    landmark store shared by runs of several recipes, which gives the entries of that
    one, where it holds any)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"truth table {path} is a folder; name its JSON or CSV file")
    if not path.is_file():
        raise FileNotFoundError(f"truth table not found: {path}")
    return _read_csv(path) if path.suffix.lower() == ".csv" else _read_json(path, recipe)


def _read_csv(path: Path) -> TruthTable:
    accuracies: list[float] = []
    # Excel's "CSV UTF-8" starts with a byte-order mark; "arch, val_loss" has spaces
    reader = csv.DictReader(io.StringIO(read_text(path).removeprefix("\ufeff"), newline=""))
    reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
    # each row with the line it ends on: blank lines are skipped and a quoted
    # field may span lines, so counting rows named the wrong line
    rows = [(r, reader.line_num) for r in reader]
    if "arch" not in reader.fieldnames:
        raise ValueError(f"{path}: CSV needs a header with an 'arch' column (its header: "
                         f"{', '.join(reader.fieldnames) or 'none'})")
    if not rows:
        raise ValueError(f"{path}: the CSV has a header and no rows")
    keys = LOSS_KEYS + ACCURACY_KEYS
    if not set(keys) & set(reader.fieldnames):
        raise ValueError(f"{path}: the CSV header has no loss or accuracy column (its header: "
                         f"{', '.join(reader.fieldnames)}); name one {', '.join(LOSS_KEYS)}, or "
                         f"{', '.join(ACCURACY_KEYS)} for a top-1 accuracy in percent")
    values = {}
    for r, line in rows:
        if None in r:  # more fields than the header: commas of an unquoted string
            raise ValueError(f"{path} line {line}: more fields than the header; quote "
                             'architecture strings that hold commas ("v1-sync:c3,skip,...")')
        try:
            numbers = {k: float(v) for k, v in r.items() if k in keys and v}
        except ValueError as err:
            raise ValueError(f"{path} line {line}: {err}") from None
        if r["arch"] in values:
            raise ValueError(f"{path} line {line}: {r['arch']!r} is listed a second time")
        values[r["arch"]] = _value(r["arch"], numbers, path, accuracies)
    _check_percent(accuracies, path)
    return TruthTable({k: v for k, v in values.items() if v is not None},
                      known_losses=bool(accuracies))


def _read_json(path: Path, recipe: Callable[[], dict[str, Any]] | None = None) -> TruthTable:
    accuracies: list[float] = []
    whole = data = _of_recipe(read_json(path, unique_keys=True), recipe, path)
    if isinstance(data, dict) and isinstance(data.get("arch"), str):
        raise ValueError(f"{path} is one training's result (its 'arch' {data['arch']!r}), not a "
                         "table of architectures and their losses: give a run's results.json, a "
                         "landmark store, or a table of several")
    # a run's results.json, a landmark store: lists of the losses depthnas wrote
    ours = isinstance(data, dict) and any(isinstance(data.get(k), list) for k in ("architectures", "entries"))
    # a benchmark table (benchmarks/depth_proxy): entries by name, null where no seed finished
    benchmark = isinstance(data, dict) and isinstance(data.get("architectures"), dict)
    if isinstance(data, dict) and "architectures" in data:
        data = data["architectures"]
    if isinstance(data, dict) and "entries" in data:
        data = data["entries"]
    if isinstance(data, list):
        bad = next((i for i, e in enumerate(data) if not (isinstance(e, dict) and "arch" in e)), None)
        if bad is not None:
            raise ValueError(f"{path}: entry {bad}: a list table needs objects with an 'arch' key "
                             "(the architecture string) and a loss under one of "
                             f"{LOSS_KEYS} or an accuracy")
        values = {}
        for i, e in enumerate(data):
            if e["arch"] in values:  # the last would silently win, as a dict keeps one
                raise ValueError(f"{path}: entry {i}: {e['arch']!r} is listed a second time "
                                 "(a landmark store holding two recipes' results? keep one)")
            values[e["arch"]] = _value(e["arch"], e, path, accuracies, ours)
    elif isinstance(data, dict):
        values = {k: _value(k, v, path, accuracies, benchmark) for k, v in data.items()}
    else:
        raise ValueError(f"{path}: unrecognised truth table layout")
    metric = whole.get("metric") if isinstance(whole, dict) else None
    if metric in ("test-accuracy", "valtest-accuracy"):  # python -m depthnas.nasbench --set
        log.warning("%s holds the benchmark's %s: a search that picks by it selects on the "
                    "test set, and its result is no unbiased estimate (export --set valid "
                    "for searching)", path, metric)
    failed = [k for k, v in values.items() if v is None]
    if failed:
        log.warning("%s: %d entr%s without a loss (null: the training diverged) left out: %s",
                    path, len(failed), "y" if len(failed) == 1 else "ies", listed(failed))
    _check_percent(accuracies, path)
    return TruthTable({k: v for k, v in values.items() if v is not None},
                      _recorded_setup(whole, path), _seed_noise(whole),
                      known_losses=ours or bool(accuracies))


def _of_recipe(data: Any, recipe: Callable[[], dict[str, Any]] | None, path: Path) -> Any:
    """A landmark store's entries trained under `recipe()`, where it holds some and
    others too (later runs of other settings add theirs: one architecture may then be
    listed under two recipes); else the store as it is."""
    entries = data.get("entries") if isinstance(data, dict) else None
    if recipe is None or not isinstance(entries, list) or len(
            {json.dumps(e.get("recipe"), sort_keys=True) for e in entries if isinstance(e, dict)}) < 2:
        return data  # (a recipe is worked out with torch loaded: only where it is needed)
    from .recipe import same_recipe
    ours = recipe()
    mine = [e for e in entries if isinstance(e, dict) and same_recipe(e.get("recipe"), ours)]
    if not mine or len(mine) == len(entries):
        return data
    log.info("%s: the %d entries trained as this run trains its models kept, %d of other "
             "recipes left out", path, len(mine), len(entries) - len(mine))
    return {**data, "entries": mine}


def _recorded_setup(data: Any, path: Path) -> dict[str, Any]:
    """The model and data the table's trainings used, as config fields, where the file
    records them: a benchmark table's recipe, a landmark store's entries' recipes (a
    field on which they differ is given as "A / B"), or a run's results.json's
    config.yaml beside it."""
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        data = data["entries"]
    if isinstance(data, list):  # a landmark store: each entry names its own recipe
        return _merged([_setup_of_recipe(e.get("recipe")) for e in data if isinstance(e, dict)])
    if isinstance(data, dict) and isinstance(data.get("architectures"), list):
        return _setup_of_run(path.parent / "config.yaml")
    if isinstance(data, dict) and data.get("space") == "nb201" and "dataset" in data:
        return _setup_of_nb201(data["dataset"])
    config = data.get("config") if isinstance(data, dict) else None
    return _setup_of_recipe(config.get("recipe") if isinstance(config, dict) else None)


def _setup_of_recipe(recipe: Any) -> dict[str, Any]:
    if not isinstance(recipe, dict):
        return {}
    # build_table.py nests the data settings; a stand-alone recipe (result.json) does not
    nested = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    found = {"model.backbone": recipe.get("backbone"), "model.features": recipe.get("features"),
             "data.image_size": nested.get("image_size", recipe.get("image_size")),
             "data.spec": nested.get("spec", recipe.get("data") if not nested else None)}
    # The seed drew the split (synthetic data: its scenes too), and the fractions set
    # which samples validate: losses on other images rank otherwise. A benchmark table
    # nests them under data, a stand-alone recipe does not.
    found["seed"] = nested.get("seed", recipe.get("seed"))
    for key in ("val_fraction", "reg_fraction"):
        found[f"data.{key}"] = nested.get(key, recipe.get(key))
    found["model.first_block_input"] = recipe.get("first_block_input")
    if found["data.spec"] == "synthetic":  # how many scenes were drawn matters there alone
        found["data.synthetic_samples"] = nested.get("synthetic_samples",
                                                     recipe.get("synthetic_samples"))
    if isinstance(recipe.get("model"), dict):  # classification: its space's model arguments
        found.update({f"model.{k}": v for k, v in recipe["model"].items()
                      if k != "num_classes"})  # the data set says that
    return {k: v for k, v in found.items() if v is not None}


def _setup_of_nb201(dataset: Any) -> dict[str, Any]:
    """NAS-Bench-201's networks (C = 16, N = 5) trained on `dataset`, as the run's
    settings that would match them: its cifar10-valid is CIFAR-10's training set."""
    kind = "cifar10" if dataset in ("cifar10-valid", "cifar10") else str(dataset)
    return {"model.channels": 16, "model.cells_per_stage": 5, "data.spec": kind}


def _setup_of_run(config_yaml: Path) -> dict[str, Any]:
    """A run's results were trained with its config.yaml's model and data."""
    from . import config as config_mod
    from .recipe import recipe
    try:
        # (recipe: a run of a space this process does not know, whose rows are left
        # out as another space's, records nothing to compare)
        return _setup_of_recipe(recipe(config_mod.load(config_yaml, complete=True)))
    except (OSError, ValueError, KeyError):  # none beside it, or not one depthnas reads
        return {}


def other_setup(setup: dict[str, Any], cfg: Config) -> dict[str, tuple[Any, Any]]:
    """The fields of a table's recorded `setup` on which run config `cfg` differs:
    {field: (table's, run's)}. Model settings are compared as the run's space takes
    them (`model.layers`: DARTS's model.darts_layers), as recipes record them. A data
    set recorded by kind alone (a benchmark's "cifar10") matches any path of that kind."""
    from depthnas.spaces import get_space

    from .config import dotted_fields
    ours = dotted_fields(cfg)
    ours.update({f"model.{k}": v for k, v in get_space(cfg.space).model_kwargs(cfg.model).items()})

    def same(key: str, theirs: Any) -> bool:
        mine = ours.get(key)
        if key == "data.spec" and isinstance(theirs, str) and ":" not in theirs \
                and isinstance(mine, str):
            return mine.split(":")[0] == theirs
        return mine == theirs
    return {k: (v, ours.get(k)) for k, v in setup.items() if not same(k, v)}


def said_setup(differ: dict[str, tuple[Any, Any]]) -> str:
    """`other_setup`'s fields as "was trained with F=X; this run has F=Y"."""
    return ("was trained with " + ", ".join(f"{k}={t}" for k, (t, _) in differ.items()) +
            "; this run has " + ", ".join(f"{k}={o}" for k, (_, o) in differ.items()))


def _merged(setups: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for s in setups for k in s):
        values = list(dict.fromkeys(json.dumps(s[key]) for s in setups if key in s))
        out[key] = json.loads(values[0]) if len(values) == 1 else \
            " / ".join(str(json.loads(v)) for v in values)
    return out


def _seed_noise(data: Any) -> dict[str, float]:
    noise = data.get("seed_median_abs_diff") if isinstance(data, dict) else None
    if not isinstance(noise, dict):
        return {}
    return {k: float(v) for k, v in noise.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0}


@dataclass
class SpaceTruth:
    """A table's entries of one space, keyed by the space's canonical string."""
    values: dict[str, float] = field(default_factory=dict)
    foreign: int = 0                                   # rows of other spaces
    invalid: list[str] = field(default_factory=list)   # rows no space reads, with why


def for_space(truth: dict[str, float], space: Any, source: str | Path, *,
              known_losses: bool = False) -> SpaceTruth:
    """The rows of `truth` that are architectures of `space`, under its canonical
    string: a table may spell an architecture otherwise (NB201 tokens of a node in
    another order, a DARTS genotype as published) and may hold other spaces' rows.
    Two spellings of one architecture with different losses are an error; a
    classification table with a value above 1 is one too (error rates are
    fractions: that looks like accuracy in percent without the `accuracy` key)."""
    from depthnas.spaces import ArchitectureError, loaded_spaces
    # (another package's broken space is left out: its rows count as unread)
    others = [o for o in loaded_spaces() if o.name != space.name]
    out, spelled = SpaceTruth(), {}
    for text, value in truth.items():
        try:
            key = space.to_string(space.parse(text))
        except ArchitectureError as err:
            if any(_parses(o, text) for o in others):
                out.foreign += 1
            else:
                out.invalid.append(f"{text!r} ({err})")
            continue
        if key in out.values and not math.isclose(out.values[key], value, rel_tol=1e-9):
            a, b = f"{out.values[key]:.6g}", f"{value:.6g}"
            if a == b:  # apart below six digits: shown in full, or they read alike
                a, b = repr(out.values[key]), repr(value)
            raise ValueError(f"{source}: {spelled[key]!r} and {text!r} are the same {space.name} "
                             f"architecture with losses {a} and {b}")
        out.values[key], spelled[key] = value, text
    if space.task_kind == "classification":
        above = [k for k, v in out.values.items() if v > 1.0]
        if above:
            raise ValueError(f"{source}: {len(above)} {space.name} entr{'y' if len(above) == 1 else 'ies'} "
                             f"above 1 (e.g. {above[0]!r}: {out.values[above[0]]}), but a classification "
                             "table holds error rates in [0, 1]; put accuracies in percent under "
                             "'accuracy'")
        if not known_losses and len(out.values) >= 2 and min(out.values.values()) > 0.5:
            # accuracy fractions read as error rates rank upside down; high error rates
            # alone (ImageNet16-120's) are possible, so a warning, not a refusal
            log.warning(
                "%s: every %s entry is an error rate above 0.5 (the lowest %.4g); if these are "
                "accuracies, give 1 - accuracy, or accuracies in percent under 'accuracy'",
                source, space.name, min(out.values.values()))
    return out


def _parses(space: Any, text: str) -> bool:
    from depthnas.spaces import ArchitectureError
    try:
        space.parse(text)
        return True
    except ArchitectureError:
        return False
