"""Typed run configuration: dataclass defaults < preset < YAML file < CLI flags.

Every field can be set from YAML (nested sections) or from the command line as
`--set section.field=value`; the common ones also have their own flags.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depthnas.datasets.settings import REG_FRACTION, SYNTHETIC_SAMPLES, VAL_FRACTION
from depthnas.datasets.spec import split_spec

from .config_yaml import load_yaml, typed_text
from .io import read_text
from .terminal import listed


@dataclass
class ModelConfig:
    backbone: str = "resnet18"
    features: int = 64
    backbone_weights: str | None = None      # local .safetensors / .pth; random init if None
    first_block_input: str = "duplicate"     # paper: duplicate the encoder feature; or "zeros"
    # Classification spaces (nb201, darts); the depth spaces ignore these.
    channels: int = 16                       # C: stem/first-stage channels (NAS-Bench-201: 16)
    cells_per_stage: int = 5                 # nb201: N cells per stage (benchmark: 5)
    darts_layers: int = 5                    # darts: total cells, reductions at 1/3 and 2/3
    num_classes: int = 10                    # digits and CIFAR-10 both have 10


@dataclass
class DataConfig:
    spec: str = "synthetic"                  # synthetic | redweb:PATH | nyuv2:PATH | diode:PATH | folder:PATH
                                             # classification spaces: digits | cifar10:PATH
    image_size: tuple[int, int] = (256, 256)
    synthetic_samples: int = SYNTHETIC_SAMPLES
    val_fraction: float = VAL_FRACTION
    reg_fraction: float = REG_FRACTION       # the split the landmark regularizer evaluates on
    batch_size: int = 8
    num_workers: int = 0
    augment: bool = True
    skip_bad: bool = False
    depth_kind: str = "depth"                # what folder: files hold: depth or disparity


@dataclass
class TrainConfig:
    """One training run: the super-net, or one stand-alone architecture."""
    epochs: int = 30
    steps_per_epoch: int | None = None       # cap an epoch (None: the whole train split)
    lr: float = 1e-3                         # decoder (and super-net ops)
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0                   # max gradient norm; 0: no clipping
    loss: str = "ssi"                        # ssi | ssi-image | ssitrim
    precision: str = "fp32"                  # fp32 | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False                    # torch.compile the backbone (see trainer.compile_model)
    log_every: int = 10


@dataclass
class LandmarkConfig:
    enabled: bool = True
    num: int = 10                            # M landmarks in the first iteration
    tau: int | None = None                   # Hamming threshold; None: the space's default
    pairs: int = 1                           # m pairs per step; 0 = all pairs (Eq. 4)
    lambda_max: float = 10.0
    schedule: str = "cosine-increasing"      # or constant, cosine-decreasing, step, step-increasing
    warmup_epochs: float = 0.0               # lambda = 0 before this
    ramp_epochs: float = 0.0                 # linear ramp before constant / decreasing / step (paper preset: 10)
    store: str | None = None                 # landmark store JSON to reuse and extend


@dataclass
class SearchConfig:
    iterations: int = 3                      # T
    top_k: int = 3                           # trained stand-alone after each iteration
    method: str = "evolution"                # evolution | random
    population: int = 50
    generations: int = 20
    parents: int = 10
    mutations: int = 25
    crossovers: int = 25
    mutation_prob: float = 0.1
    random_candidates: int = 1000            # random-search budget
    # BN recalibration batches per candidate: SPOS re-estimates with a few hundred
    # (its tester: 200 training batches); fewer make the statistics, and the ranking, noisy.
    calib_batches: int = 200
    val_batches: int | None = None           # None: the whole validation split
    max_params: int | None = None
    max_latency_ms: float | None = None
    rank_samples: int = 0                    # extra random archs trained stand-alone to report Kendall tau
    sparse_threshold: float | None = None    # S-KdT bin width; None: 1% of the truth range
    truth_table: str | None = None           # stand-alone results to look up instead of training
                                             # (a row serves every string of its model)


@dataclass
class Config:
    """Every setting of a run: `load(path, preset)` reads one (YAML over a preset over
    these defaults), `apply_dotted(cfg, ["search.iterations=2"])` a copy with fields changed, and
    `config_checks.validate` checks it; a run's config.yaml is `dump`'s output."""

    space: str = "v1-sync"
    seed: int = 0
    device: str = "auto"
    out: str = ""                            # "": runs/<command>-<date>-<time> (default_out)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    supernet: TrainConfig = field(default_factory=TrainConfig)
    standalone: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20))
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


PRESETS: dict[str, dict[str, Any]] = {
    # Small enough for a laptop CPU: a full pipeline in a few minutes.
    "quick": {
        "model": {"backbone": "mobilenetv3_small_050", "features": 32},
        "data": {"image_size": [64, 64], "synthetic_samples": 160, "batch_size": 8},
        # About the least training that beats a constant prediction (0.18-0.21 on
        # these splits, by seed) at this size on a CPU: 112 super-net steps per
        # iteration (8 epochs x 14 steps), 168 per stand-alone training. Three times
        # the super-net's epochs, or of samples, gained little (README, "Measured").
        # No gradient clipping for the super-net: its paths' gradient norms differ
        # ~100x (the head's input scale does), and clipping at 1.0 cut the steps of
        # the near-dead paths most. At seed 0 no path beat a constant prediction
        # with it, and both searches did without (README, "Measured").
        "supernet": {"epochs": 8, "lr": 3e-3, "backbone_lr": 3e-3, "grad_clip": 0.0},
        "standalone": {"epochs": 12, "lr": 3e-3, "backbone_lr": 3e-3},
        "landmarks": {"num": 4},
        "search": {"iterations": 2, "top_k": 2, "population": 12, "generations": 3,
                   "parents": 4, "mutations": 4, "crossovers": 4, "calib_batches": 4,
                   "random_candidates": 30, "rank_samples": 3},
    },
    # The paper's depth experiment (section 5.3), sized for a GPU: the paper states T,
    # top-K, M, m, lambda_max and the 20 ranked samples; it gives no training recipe,
    # so the backbone, sizes, epochs and optimizer are depthnas's choice (README).
    "paper": {
        "model": {"backbone": "resnext101_32x8d", "features": 256},
        "data": {"image_size": [384, 384], "batch_size": 8},
        "supernet": {"epochs": 100, "precision": "bf16", "channels_last": True},
        "standalone": {"epochs": 60, "precision": "bf16", "channels_last": True},
        # ramp_epochs acts only under a schedule that does not increase (constant, decreasing, step)
        "landmarks": {"num": 10, "pairs": 1, "lambda_max": 10.0, "ramp_epochs": 10.0},
        # "We run T=2 iterations ... pick the three top models" (section 5.3); T = 3 is
        # the classification experiments' setting and the default.
        "search": {"iterations": 2, "top_k": 3, "rank_samples": 20},
    },
}


# Settings a resumed run may change: where and how fast it runs, not what it computes.
# (`out` too: the same folder may be named another way, or have moved.)
RESUME_MAY_CHANGE = {"out", "device", "data.num_workers", "supernet.compile", "standalone.compile",
                     "supernet.channels_last", "standalone.channels_last",
                     "supernet.log_every", "standalone.log_every"}


def run_record(cfg: Config) -> dict[str, Any]:
    """What a run computes, as `section.field`s: every setting but those a resume may
    change, paths absolute. Two starts of one run must agree on it."""
    fields = dotted_fields(absolute_paths(copy.deepcopy(cfg)))
    return {k: v for k, v in fields.items() if k not in RESUME_MAY_CHANGE}


def record_changes(recorded: dict[str, Any], cfg: Config) -> list[str]:
    """`field: recorded R, now N` for each setting `cfg` computes otherwise than the
    record (a field the record lacks, from an older depthnas, is not compared)."""
    now = run_record(cfg)
    return [f"{k}: {recorded[k]!r} then, {now[k]!r} now" for k in sorted(now)
            if k in recorded and recorded[k] != now[k]]


class ConfigError(ValueError):
    pass


def _number(text: str) -> int | float:
    """Digits as an int, anything else as a float (YAML reads 3e7 as text)."""
    return int(text) if text.strip().lstrip("+-").isdigit() else float(text)


def whole_number(text: str) -> int:
    """A whole number as typed on a command line: 30000000 or 3e7."""
    try:
        value = _number(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        # `--backbone-weights "$W"` with W empty: unset, as YAML read it
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        given = value
        if isinstance(value, str):  # "64", "64x96", "64,96", "[64, 96]"
            parts = [v.strip() for v in value.strip("[]() ").lower().replace("x", ",").split(",")]
            if any(not v for v in parts):  # "64x", "x64", "64,,96": a side left out
                raise ConfigError(f"{where}: expected H,W or one number, got {value!r}")
            value = parts * 2 if len(parts) == 1 else parts
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{where}: expected H,W or one number, got {value!r}")
        args = typing.get_args(hint)
        try:
            return tuple(_coerce(v, args[0], where) for v in value)
        except ConfigError:  # "abc": said as the whole field's form, not one side's type
            raise ConfigError(f"{where}: expected H,W or one number, got {given!r}") from None
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes", "on"):
                return True
            if value.lower() in ("false", "0", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        # `enabled:` left empty, 2, [1]: a mistake, not a value to guess at
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return bool(value)
    if hint is str:
        if value is None:  # `out:` left empty in YAML, `--set out=`: the field's "unset"
            return ""
        if typed_text(value) is not None:  # a number written into a text field: as typed
            return typed_text(value)
        if isinstance(value, bool):  # YAML reads yes/no/on/off as booleans
            raise ConfigError(f"{where}: expected text, got {value!r} (YAML reads yes/no/"
                              f"on/off as true/false: quote it, '{'yes' if value else 'no'}')")
    if hint in (int, float, str):
        if hint is str and isinstance(value, dict) and len(value) == 1:  # `folder: x/`, unquoted
            key, inner = next(iter(value.items()))
            if inner is None and isinstance(key, str):  # `--set data.spec=folder:`: as typed
                return f"{key}:"
            text = f"{key}: {inner}"
            raise ConfigError(f"{where}: expected text, got {value!r} (YAML reads {text!r} as a "
                              f"mapping: quote it, as '{text}', or drop the space after the colon)")
        if isinstance(value, (list, tuple, dict)) or (value is None and hint is not str) or \
                (isinstance(value, bool) and hint is not str):  # `seed: true` is no number
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        if hint is int and isinstance(value, str):  # YAML reads 3e7 as text, not a number
            try:
                value = _number(value)
            except ValueError:
                pass
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def _unknown_key(key: Any, where: str, hints: dict[str, Any], root: Any) -> ConfigError:
    """What a mistyped key was likely meant to be: a close name here, the same name in
    another section (`supernet.batch_size` is data.batch_size), or a dotted key that
    YAML wants nested."""
    valid = ", ".join(hints)
    close = difflib.get_close_matches(str(key), list(hints), n=1)
    elsewhere = [f"{name}.{key}" for name, section in vars(root).items()
                 if dataclasses.is_dataclass(section) and key in vars(section)
                 and f"{name}.{key}" != where]
    prefix = where[:len(where) - len(str(key))]  # the section it is in: "" at the top
    dotted = _dotted_hint(key, prefix, hints, root) if isinstance(key, str) and "." in key else ""
    if dotted:
        hint = dotted
    elif elsewhere:  # the exact name in another section beats a near one here
        hint = f" ({key!r} is {' and '.join(elsewhere)})"
    elif close:
        hint = f" (did you mean {prefix}{close[0]}?)"
    else:
        hint = ""
    return ConfigError(f"unknown config key {where!r}{hint}; valid keys here: {valid}")


def _dotted_hint(key: str, prefix: str, hints: dict[str, Any], root: Any) -> str:
    """A dotted key's likely meaning: a field of this section written with its
    section's name (`supernet.epochs` inside supernet:), or a section and its field
    that YAML wants nested (`supernet.epochs: 3` at the top; `landmark.enabled`),
    never "did you mean supernet.supernet?"."""
    last = key.rpartition(".")[2]
    if last in hints:
        return f" (did you mean {prefix}{last}?)"
    head, _, rest = key.partition(".")
    sections = [n for n, v in vars(root).items() if dataclasses.is_dataclass(v)]
    section = head if head in sections else next(iter(difflib.get_close_matches(head, sections, n=1)), "")
    if section and (rest.partition(".")[0] in vars(getattr(root, section))):
        return f" (in a YAML file a section's field is nested: '{section}:' then '  {rest}: ...')"
    return ""


def _merge(obj: Any, updates: dict[str, Any], prefix: str = "", root: Any = None) -> None:
    """`updates` into `obj`, a section of `root` (the whole Config; None: obj is it)."""
    root = obj if root is None else root
    hints = typing.get_type_hints(type(obj))
    for key, value in updates.items():
        where = f"{prefix}{key}"
        if key not in hints:
            raise _unknown_key(key, where, hints, root)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping, got {value!r}")
            _merge(current, value, where + ".", root)
        else:
            setattr(obj, key, _coerce(value, hints[key], where))


def apply(cfg: Config, updates: dict[str, Any]) -> Config:
    """A copy of `cfg` with the nested mapping `updates` (a YAML file's, a preset's)
    applied; `cfg` is left as it was, as `apply_dotted` leaves it."""
    cfg = copy.deepcopy(cfg)
    _merge(cfg, updates)
    return cfg


def unflatten(fields: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": value}` as {"a": {"b": value}}: what `apply` takes (flatten's inverse)."""
    nested: dict[str, Any] = {}
    for path, value in fields.items():
        cursor = nested
        keys = path.strip().split(".")
        for k in keys[:-1]:
            cursor = cursor.setdefault(k, {})
        cursor[keys[-1]] = value
    return nested


# An assignment: "a.b=value" as --set gives it (value read as YAML), or (path, value)
# as a typed flag gives it (value taken as typed: `--out "runs/a #2"` is no YAML comment).
Assignment = str | tuple[str, Any]


def _nested(item: Assignment) -> dict[str, Any]:
    """`a.b=value` as {"a": {"b": value}}."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return unflatten({item[0]: item[1]})
    if not isinstance(item, str):  # a mapping is apply()'s: said, not an AttributeError
        raise ConfigError(f"an assignment is 'section.field=value' or (\"section.field\", value), "
                          f"not {item!r}" + (" (config.apply(cfg, mapping) takes a mapping)"
                                             if isinstance(item, dict) else ""))
    path, sep, raw = item.partition("=")
    if not sep:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    try:  # argv's bytes of another encoding (Latin-1, say) arrive as surrogates
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"--set {item!r}: a value that is not UTF-8 text (bytes from another "
                          "encoding)") from None
    try:
        value = load_yaml(raw)  # as a config file reads it
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"--set {item}: the value is not valid YAML ({reason}; quote it: "
                          f"--set '{path}=\"...\"')") from None
    if (value in (None, "") and raw.strip() not in ("", "~", "null", "Null", "NULL", "''", '""')
            and not raw.strip().startswith("!!")):
        # YAML's syntax, not a value: `#3e7` is a comment, `&x` an anchor, `|` a block
        why = " ('#' starts a comment)" if "#" in raw else ""
        raise ConfigError(f"--set {item}: YAML reads {raw.strip()!r} as no value at all{why}; "
                          f"a text value keeps it quoted: --set '{path}=\"{raw.strip()}\"'")
    if " #" in raw and not (isinstance(value, str) and "#" in value):
        # YAML drops " #..." as a comment: `--set out=runs/a #2` named runs/a
        raise ConfigError(f"--set {item}: YAML reads ' #' and what follows as a comment; quote "
                          f"the value to keep it: --set '{path}=\"{raw.strip()}\"'")
    return unflatten({path: value})


def apply_dotted(cfg: Config, assignments: list[Assignment]) -> Config:
    """A copy of `cfg` with `section.field=value` assignments applied, in order
    (`cfg` itself is left as it was: variants made from one base stay apart)."""
    if isinstance(assignments, str):  # its characters would be read as assignments
        raise ConfigError(f"assignments are a list of 'section.field=value' strings, not one "
                          f"string: [{assignments!r}]")
    cfg = copy.deepcopy(cfg)  # also with no assignment at all
    for item in assignments:
        _check_path(cfg, item)
        _merge(cfg, _nested(item))
    return cfg


def _check_path(obj: Any, item: Assignment) -> None:
    """A dotted path goes through sections only: `--set out.myrun=` made `out` the
    text 'myrun:' (read as YAML's `myrun:`), and named a folder so. (The value may
    still be a mapping: `--set data.spec=folder: x` is said as YAML's reading.)"""
    path = item[0] if isinstance(item, tuple) else str(item).partition("=")[0]
    keys = path.strip().split(".")
    for i, key in enumerate(keys[:-1]):
        if not hasattr(obj, key):  # an unknown key: _merge says what it likely meant
            return
        obj = getattr(obj, key)
        if not dataclasses.is_dataclass(obj):
            setting = ".".join(keys[:i + 1])
            raise ConfigError(f"{path.strip()}: {setting} is a setting, not a section "
                              f"(set it as {setting}=VALUE)")


def assigned_fields(assignments: list[Assignment]) -> set[str]:
    """The `section.field`s `section.field=value` strings set (`data={batch_size: 2}`
    sets data.batch_size)."""
    return {k for item in assignments for k in flatten(_nested(item))}


def absolute_path(path: str) -> str:
    """`path` absolute, `~` expanded, without resolving links (a link is how a moved
    data folder keeps its recorded path)."""
    return os.path.abspath(os.path.expanduser(path))


def canonical_spec(spec: str) -> str:
    """`spec` with its kind in lower case and its path absolute: one data set, named
    one way (folder:data/x, folder:./data/x/ and Folder:/abs/data/x alike)."""
    kind, path = split_spec(spec)
    return f"{kind}:{absolute_path(path)}" if path else spec.strip().lower()


def retyped(cfg: Any, problems: list[str] | None = None, prefix: str = "") -> Any:
    """`cfg` with every field of the type its dataclass declares, as a YAML file or
    --set would give it (a Path as text, "3" as 3), in place; a value that is no such
    thing is a ConfigError naming the field (or, given `problems`, a line added to it).
    Fields a script sets by attribute skip `apply_dotted`'s conversion, and failed
    late: a Path in config.yaml's writing, 1.5 iterations after the landmarks trained."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, where = getattr(cfg, f.name), f"{prefix}{f.name}"
        section = hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else None
        if section is not None and not isinstance(value, section):
            # `cfg.supernet = {"epochs": 1}` in a script: an AttributeError much later
            try:
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: expected a {section.__name__} or a mapping of "
                                      f"its fields, got {value!r}")
                # the field's own default (standalone trains 20 epochs, a TrainConfig 30)
                value = f.default_factory() if f.default_factory is not dataclasses.MISSING else section()
                _merge(value, getattr(cfg, f.name), where + ".")
            except ConfigError as err:
                if problems is None:
                    raise
                problems.append(str(err))
                continue
            setattr(cfg, f.name, value)
        if dataclasses.is_dataclass(value):
            retyped(value, problems, where + ".")
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        try:
            setattr(cfg, f.name, _coerce(value, hints[f.name], where))
        except ConfigError as err:
            if problems is None:
                raise
            problems.append(str(err))
    return cfg


def absolute_paths(cfg: Config) -> Config:
    """A new run records its data and weights by absolute path: a relative one named
    other files (or none) when the run was resumed, evaluated or ranked from another
    folder, and the same files named two ways did not compare as the same."""
    cfg.data.spec = canonical_spec(cfg.data.spec)
    if cfg.out:  # `out: ~/runs/x` made a folder named "~" in the working folder
        cfg.out = os.path.expanduser(cfg.out)
    if cfg.model.backbone_weights:
        cfg.model.backbone_weights = absolute_path(cfg.model.backbone_weights)
    # a resume from elsewhere started a second landmark store beside the first
    if cfg.landmarks.store:
        cfg.landmarks.store = absolute_path(cfg.landmarks.store)
    if cfg.search.truth_table:
        cfg.search.truth_table = absolute_path(cfg.search.truth_table)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's own mapping, before defaults fill it in."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config {path} is a folder; name its YAML file (a run's config.yaml)")
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():  # read more than once (the run's record, the resume check)
        raise ConfigError(f"--config {path} is not a regular file (a pipe, <(...), /dev/stdin?): "
                          "write the YAML to a file and pass that")
    try:
        data = load_yaml(read_text(path))
    except yaml.YAMLError as err:
        where = str(err).replace('"<unicode string>"', str(path))  # its marks name the text read
        raise ConfigError(f"{path}: not valid YAML ({where})") from err
    if data is None:  # a file cut to nothing: no settings (load says so)
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    return data


def named_fields(path: str | Path | None, preset: str | None) -> set[str]:
    """The `section.field`s a preset and a config file set themselves."""
    keys = set(flatten(PRESETS[preset])) if preset in PRESETS else set()
    return keys | (set(flatten(read_yaml(path))) if path is not None else set())


def load(path: str | Path | None = None, preset: str | None = None, *,
         complete: bool = False) -> Config:
    """Defaults < preset < the YAML file. `complete=True` (a run's own config.yaml,
    which lists every field) refuses a file lacking fields: it was damaged or cut,
    and filling them with defaults would retrain the run at another size."""
    cfg = Config()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
        cfg = apply(cfg, PRESETS[preset])
    if path is not None:
        data = read_yaml(path)
        if not data:  # a file cut to nothing reads as no settings at all: said
            logging.getLogger(__name__).warning("config file %s holds no settings (empty, or "
                                                "comments only)", path)
        missing = sorted(set(dotted_fields(cfg)) - set(flatten(data))) if complete else []
        if missing:
            raise ConfigError(
                f"{path} lacks {len(missing)} field(s) every run writes ({listed(missing, 6)}): "
                "damaged? Restore it, or start a new run in another --out")
        try:
            cfg = apply(cfg, data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    return cfg


def default_out(command: str) -> str:
    """A run folder named by the command and the start time (`runs.claim_folder`
    keeps runs started in the same second apart)."""
    import datetime as _dt
    return f"runs/{command}-{_dt.datetime.now():%Y%m%d-%H%M%S}"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"section.field": value}` of a nested mapping (sections are dicts)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def dotted_fields(cfg: Config) -> dict[str, Any]:
    """`{"section.field": value}` of every field (what --set addresses)."""
    return flatten(to_dict(cfg))


def to_dict(cfg: Config) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return list(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def as_yaml(cfg: Config) -> str:
    """Every field, in the classes' order: what a run's config.yaml holds."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def dump(cfg: Config, path: str | Path) -> None:
    from .io import atomic_write_text
    atomic_write_text(path, as_yaml(cfg))


def from_dict(data: dict[str, Any]) -> Config:
    return apply(Config(), data)
