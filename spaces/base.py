"""The one interface the trainer, landmark sampler and evolutionary search see.

An architecture is a tuple of integer genes, one per searchable choice. Everything
generic (size, uniform sampling, single-element mutation, crossover, Hamming
distance) follows from `gene_choices`; a concrete space adds the human-readable
forms (string, JSON), the arguments its models take from the run's model settings,
and knows how to build a super-net or a fixed model. Its class attributes say what
the rest of depthnas asks of it: the task its models solve, a fixed input size, the
paper's landmark tau.
"""
from __future__ import annotations

import math
import numbers
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Hashable, Sequence

if TYPE_CHECKING:  # only models need torch: parsing or counting architectures does not wait for it
    from torch import nn

# The op names the cell spaces share (depth fusion blocks, NAS-Bench-201); their
# modules are in ops.py.
EDGE_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class ArchitectureError(ValueError):
    """An architecture string, JSON or gene list that does not belong to a space."""


@dataclass(frozen=True)
class Arch:
    """One architecture of one space: hashable, so it can key dictionaries."""

    space: str
    genes: tuple[int, ...]


class SearchSpace(ABC):
    """A set of architectures, each a tuple of integer genes (`Arch`). Get one from
    `depthnas.spaces.get_space(name)`; `parse`, `sample`, `mutate`, `crossover` give
    architectures, `build_fixed` and `build_supernet` their models."""

    name: str
    task_kind: str = "depth"                      # or "classification": what the models output
    input_size: tuple[int, int] | None = None     # a fixed input (CIFAR's 32x32); None: the data's
    landmark_tau: int | None = None               # Algorithm 1's tau, where the paper fixes one
    strings_name_space: bool = False  # "v1-sync:c3,..." names its space; an NB201 cell does not

    # ---- what a concrete space defines -------------------------------------------
    @abstractmethod
    def gene_choices(self) -> tuple[int, ...]:
        """Number of options of every gene, in encoding order."""

    @abstractmethod
    def to_string(self, arch: Arch) -> str:
        """The one-line form, e.g. "v1-sync:c3,skip,none,c1,ap"."""

    @abstractmethod
    def from_string(self, text: str) -> Arch:
        """The architecture of a one-line form; ArchitectureError if it is none."""

    @abstractmethod
    def to_json(self, arch: Arch) -> dict[str, Any]:
        """The JSON form (op names spelled out), with the one-line form as "string"."""

    @abstractmethod
    def from_json(self, data: dict[str, Any]) -> Arch:
        """The architecture of a JSON form; ArchitectureError if it is none."""

    @abstractmethod
    def model_kwargs(self, cfg: Any) -> dict[str, Any]:
        """The constructor arguments of this space's models, from the run's model
        settings (a ModelConfig): the fields it takes, under the names it takes them."""

    @abstractmethod
    def build_supernet(self, **model_kw: Any) -> nn.Module:
        """A model holding every candidate op; forward(x, arch) runs one path.
        `model_kw` is what `model_kwargs` gives, nothing more. Optional, for speed:
        `encode(x)` and `decode(features, arch)` (the encoder is then run once for
        several paths; encode returns a list of feature tensors),
        `decode_for_calibration(features, arch)` (decode only as far
        as BatchNorm recalibration needs, skipping a head without BatchNorm),
        `backbone` (its own learning rate, what --compile compiles) and
        `decoder_modules()` (whose BatchNorm statistics depend on the path)."""

    @abstractmethod
    def build_fixed(self, arch: Arch, **model_kw: Any) -> nn.Module:
        """A stand-alone model holding only `arch`'s parameters, whose state-dict
        keys are a subset of the super-net's so weights copy across by name. A
        model file records `model_kw` and rebuilds the model from it."""

    def ignores_input(self, arch: Arch, **model_kw: Any) -> bool:
        """Whether `arch`'s models (built with `model_kw`) give the same output whatever
        the input: no op path joins the input to the output (a dead cell where it cuts
        the network). Such a model learns one output for every image; a search ranks
        it last, whatever its score."""
        return False

    def describe(self) -> str:
        """Human summary for `depthnas spaces` (in the built-in spaces' columns)."""
        return f"{self.name:12s} {self.size():>20,d} architectures"

    # ---- generic machinery ---------------------------------------------------------
    def size(self) -> int:
        """How many architectures (gene tuples) the space holds: V1-sync 3,125."""
        return math.prod(int(n) for n in self.gene_choices())  # numpy counts would wrap at 2**63

    def make(self, genes: Sequence[int]) -> Arch:
        """The architecture of these genes (one option index per gene), checked."""
        if not all(isinstance(g, numbers.Integral) and not isinstance(g, bool) for g in genes):
            # int(1.5) and int("2") would pass as another architecture
            raise ArchitectureError(f"{self.name}: genes must be whole numbers, got {list(genes)}")
        genes = tuple(int(g) for g in genes)
        choices = self.gene_choices()
        if len(genes) != len(choices):
            raise ArchitectureError(
                f"{self.name}: expected {len(choices)} genes, got {len(genes)}")
        for i, (g, n) in enumerate(zip(genes, choices)):
            if not 0 <= g < n:
                raise ArchitectureError(f"{self.name}: gene {i} = {g} is outside 0..{n - 1}")
        return Arch(self.name, genes)

    def check(self, arch: Arch) -> Arch:
        """`arch` itself if it is one of this space's, else ArchitectureError."""
        if not isinstance(arch, Arch):
            raise ArchitectureError(
                f"expected an architecture of space {self.name}, got {type(arch).__name__} "
                f"{_quoted(arch)} (space.parse reads one from its string or JSON)")
        if arch.space != self.name:
            raise ArchitectureError(
                f"architecture belongs to space {arch.space!r}, not {self.name!r}")
        return self.make(arch.genes)

    def sample(self, rng: random.Random) -> Arch:
        """One architecture drawn uniformly (every gene uniformly), as SPOS samples paths."""
        _check_rng(rng)
        return Arch(self.name, tuple(rng.randrange(n) for n in self.gene_choices()))

    def mutate(self, arch: Arch, rng: random.Random, prob: float | None = None) -> Arch:
        """prob=None: change exactly one gene (the paper's landmark mutation);
        otherwise resample each gene with probability `prob` (SPOS evolution: a
        resampled gene may draw its own value again), drawing again while the result
        is the parent, as SPOS does. (Forcing one change instead made two-gene
        mutants 3x rarer.)"""
        self.check(arch)  # another space's genes would be relabelled as this one's
        _check_rng(rng)
        if prob is not None and not 0.0 <= prob <= 1.0:
            raise ValueError(f"mutate: prob={prob} is no probability of resampling a gene "
                             "(expected 0 <= prob <= 1, or None for one gene)")
        genes = list(arch.genes)
        choices = self.gene_choices()
        mutable = [i for i, n in enumerate(choices) if n > 1]
        if not mutable:
            raise ValueError(f"mutate: space {self.name!r} has one architecture (gene choices "
                             f"{tuple(choices)}): there is no other to mutate to, nor to search")
        for _ in range(1000 if prob else 0):  # prob 0 (or None): the one-gene change below
            genes = list(arch.genes)
            for i in mutable:
                if rng.random() < prob:
                    genes[i] = rng.randrange(choices[i])
            if tuple(genes) != arch.genes:
                return Arch(self.name, tuple(genes))
        i = rng.choice(mutable)
        genes[i] = rng.choice([v for v in range(choices[i]) if v != genes[i]])
        return Arch(self.name, tuple(genes))

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Uniform crossover: each gene from either parent with equal probability."""
        self.check(a)
        self.check(b)
        _check_rng(rng)
        return Arch(self.name, tuple(x if rng.random() < 0.5 else y
                                     for x, y in zip(a.genes, b.genes)))

    def function_key(self, arch: Arch) -> Hashable:
        """Architectures with equal keys build the same model (the same ops, holding
        the same parameters, on the same inputs), so one super-net score or
        stand-alone training stands for all of them and a search keeps one of each.
        The default claims no equivalence: the architecture is its own key."""
        return self.check(arch)

    @staticmethod
    def hamming(a: Arch, b: Arch) -> int:
        """How many genes differ: the landmark sampler's distance (Algorithm 1's tau)."""
        if a.space != b.space or len(a.genes) != len(b.genes):
            raise ArchitectureError(f"Hamming distance needs architectures of one space, "
                                    f"got {a.space!r} and {b.space!r}")
        return sum(x != y for x, y in zip(a.genes, b.genes))

    def _from_prefixed(self, text: str) -> Arch:
        """from_string, also taking "nb201:|...|": depth strings carry their space's
        name, so a user may well write it before the strings that do not."""
        prefix = f"{self.name}:"
        if text.startswith(prefix) and not self.strings_name_space:
            text = text[len(prefix):].strip()
        return self.from_string(text)

    def check_json_space(self, data: dict[str, Any]) -> None:
        """JSON of another space is refused; JSON that names none is read as this
        space's, the one the caller chose (--space, the run's config)."""
        if not isinstance(data, dict):
            raise ArchitectureError(f"{self.name}: architecture JSON is an object, got "
                                    f"{type(data).__name__} {_quoted(data)}")
        named = data.get("space")
        if named is not None and named != self.name:
            raise ArchitectureError(f"architecture JSON is for space {named!r}, not {self.name!r}")

    def parse(self, text_or_json: str | dict[str, Any]) -> Arch:
        """Accept either form: a dict/JSON text, or the compact string. Anything
        malformed raises ArchitectureError quoting the input."""
        import json
        data: Any = text_or_json
        if isinstance(data, str) and data.strip().startswith("{"):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as err:
                raise ArchitectureError(f"{self.name}: architecture JSON is not valid JSON ({err})") from err
        if not isinstance(data, (str, dict)):
            raise ArchitectureError(f"{self.name}: an architecture is a string or a JSON object, "
                                    f"not {type(data).__name__}")
        try:
            if isinstance(data, str):
                return self._from_prefixed(data.strip())
            if "string" in data and set(data) <= {"space", "string"}:  # JSON with the string only
                self.check_json_space(data)
                return self.from_string(str(data["string"]).strip())
            arch = self.from_json(data)
            # best_arch.json carries both forms; one edited by hand must not be
            # silently overruled by the other
            if isinstance(data.get("string"), str) and self.from_string(data["string"].strip()) != arch:
                raise ArchitectureError(
                    f"{self.name}: architecture JSON's 'string' {data['string']!r} disagrees with "
                    f"the rest of it ({self.to_string(arch)!r}); make them match or delete one")
            return arch
        except ArchitectureError:
            raise
        except Exception as err:  # noqa: BLE001
            # a value of the wrong type deep inside (a space's own from_string raising
            # "tuple.index(x): x not in tuple", or an `assert`): say which input, not
            # which line. Other spaces try the string too (which space reads --arch?):
            # one installed space's AssertionError stopped every command of the others'.
            raise ArchitectureError(f"{self.name}: cannot read architecture {text_or_json!r} "
                                    f"({type(err).__name__}: {err})") from err


def resolve_arch(space: SearchSpace, fixed: Arch | None, given: Arch | None) -> Arch:
    """The architecture a model runs: a fixed model runs its own (and refuses
    another), the super-net runs the one it is given (and needs one)."""
    if fixed is not None:
        if given is not None and given != fixed:
            raise ValueError(f"this is a fixed model of {space.to_string(fixed)}; "
                             f"it cannot run {space.to_string(given)}")
        return fixed
    if given is None:
        raise ValueError("the super-net needs an architecture: model(x, arch)")
    return given


def refuse_backbone_weights(space: SearchSpace, weights: str | None) -> None:
    """Networks without a pretrained part take `backbone_weights` only to refuse a
    file by name: passed by a caller used to the depth spaces, it is not dropped unread."""
    if weights is not None:
        raise ValueError(f"space {space.name} has no backbone; backbone_weights must be unset")


def inherit_weights(fixed: nn.Module, supernet: nn.Module) -> nn.Module:
    """Load a fixed model with the super-net's weights for its path. Works because
    a fixed model's parameter names are a subset of the super-net's (one
    ChoiceEdge naming scheme for both)."""
    source = supernet.state_dict()
    missing = [k for k in fixed.state_dict() if k not in source]
    if missing:
        raise ValueError(f"the super-net lacks {len(missing)} of the fixed model's tensors "
                         f"(e.g. {missing[0]}): built from different spaces or settings?")
    fixed.load_state_dict({k: source[k] for k in fixed.state_dict()})
    return fixed


def _check_rng(rng: Any) -> None:
    """The draws take a random.Random: a seed given in its place failed inside them."""
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random (e.g. random.Random(0)), got "
                        f"{type(rng).__name__} {_quoted(rng)}")


def _quoted(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def contract_problems(space: SearchSpace, rng: random.Random, samples: int = 5) -> list[str]:
    """What a space of one's own gets wrong that a search would only show late, or
    never: strings or JSON that do not read back as the architecture (results and
    run folders would name other models) and a mutate that returns its input
    (evolution silently becomes random search), a gene of no choice, a function_key
    that is not hashable, mutants and offspring outside the space. Checked on a few
    samples."""
    choices = tuple(space.gene_choices())
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in choices):
        return [f"gene_choices() = {choices}: each gene's number of choices is a whole number "
                "(sample draws from range(n))"]
    if any(n < 1 for n in choices):
        return [f"gene_choices() = {choices}: every gene needs at least one choice "
                "(sample draws from range(n))"]
    problems = []
    for _ in range(samples):
        arch = space.sample(rng)
        try:
            hash(space.function_key(arch))
        except TypeError as err:  # a list: its stand-alone trainings are kept in a dict
            return [f"function_key(a) must be hashable (a tuple, not a list): {err}"]
        for form, written in (("to_string", space.to_string(arch)), ("to_json", space.to_json(arch))):
            try:
                back = space.parse(written)
            except ArchitectureError as err:
                back = err
            if back != arch:
                problems.append(f"parse({form}(a)) is not a for a = {arch!r}: {form} gave "
                                f"{written!r}, which reads as {back!r}")
        if problems:
            break
        written = space.to_string(arch)
        try:  # a run folder's records are read back by from_string itself, not parse
            strict = space.from_string(written)
        except Exception as err:  # noqa: BLE001 - the space's own parser, any fault
            strict = err
        if strict != arch:  # (parse strips what from_string may not: trailing spaces)
            problems.append(f"from_string(to_string(a)) is not a for a = {arch!r}: to_string "
                            f"gave {written!r}, which from_string reads as {strict!r}")
            break
    elsewhere = _draws_elsewhere(space)
    if elsewhere:
        return problems + [elsewhere]
    if space.size() < 2:  # nothing to mutate to (a search refuses it; train takes it)
        return problems
    arch = space.sample(rng)
    if all(space.mutate(arch, rng) == arch for _ in range(10)):
        problems.append(f"mutate returned its input 10 times in a row (for {arch!r})")
    for method, child in (("mutate", lambda: space.mutate(arch, rng)),
                          ("mutate(prob=0.5)", lambda: space.mutate(arch, rng, 0.5)),
                          ("crossover", lambda: space.crossover(arch, space.sample(rng), rng))):
        try:
            space.check(child())
        except ArchitectureError as err:  # found only as a search's generations run
            problems.append(f"{method} gives an architecture outside the space: {err}")
    return problems


def _draws_elsewhere(space: SearchSpace) -> str | None:
    """What a sample or mutate drawing from the global generators (Python's, NumPy's,
    torch's) instead of its `rng` breaks: torchrun's ranks, each seeded apart for its
    data, train different paths without a word (DDP averages them into equal weights),
    and a resumed search draws other candidates. Each is drawn twice from equal rngs,
    the global generators seeded apart in between and restored after."""
    import numpy as np
    import torch

    from depthnas.runtime import generators_kept
    draws = []
    with generators_kept():
        for seed in (1, 2):
            random.seed(seed)
            np.random.seed(seed)
            # the CPU generator alone: manual_seed would reseed every GPU's too
            torch.default_generator.manual_seed(seed)
            arch = space.sample(random.Random(0))
            draws.append((arch, space.mutate(arch, random.Random(1)) if space.size() > 1 else None))
    if draws[0][0] != draws[1][0]:
        return ("sample(rng) draws from a global generator, not from rng alone (two equal rngs "
                f"gave {draws[0][0]!r} and {draws[1][0]!r}): torchrun's ranks would train "
                "different paths, and a resumed search draw other ones")
    if draws[0][1] != draws[1][1]:
        return ("mutate(a, rng) draws from a global generator, not from rng alone (two equal "
                f"rngs gave {draws[0][1]!r} and {draws[1][1]!r}): a resumed search would "
                "draw other candidates")
    return None
