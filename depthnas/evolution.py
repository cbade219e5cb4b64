"""Search on a trained super-net: SPOS evolutionary search and random search.

Fitness is a score to minimise (the super-net validation loss of a path after BN
recalibration). Every generation is checkpointed, so a long search resumes.

An `order` (a sort key of an architecture and its score; default: the score) decides the ranking, for
parents and for the result alike; the recorded scores stay the true values. The
search pipeline uses it to rank last the paths whose score says nothing about the
architecture (`degenerate.search_order`).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable

from tqdm.auto import tqdm

from depthnas.spaces import Arch, SearchSpace

from .config import SearchConfig
from .io import atomic_write_json, read_json

log = logging.getLogger(__name__)
Score = Callable[[Arch], float]
Constraint = Callable[[Arch], bool]
Order = Callable[[Arch, float], Any]
# Random draws in a row that may all be duplicates or break the constraint before
# the space counts as exhausted: with a budget that admits 8% of a space, 50 misses
# in a row happen in 1.5% of draws, which cut generations short; 1000 in 10^-36.
RANDOM_TRIES = 1000


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def _score(value: Any) -> float:
    """A saved score: a number (NaN, a diverged path's, is written as NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a score is {value!r}, not a number")
    return float(value)


class Search:
    """Shared bookkeeping: memoised scores, constraints, checkpoints."""

    def __init__(self, space: SearchSpace, score: Score, rng: random.Random,
                 constraint: Constraint | None = None, checkpoint: str | Path | None = None,
                 progress: bool = True, order: Order | None = None):
        self.space, self._score, self.rng = space, score, rng
        self.order = order
        self.constraint = constraint
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.progress = progress
        self.scores: dict[Arch, float] = {}
        self.seen: set[Hashable] = set()  # the function keys of the scored architectures
        self.key = functools.cache(space.function_key)  # each candidate's is asked twice
        self.rejected = 0
        # which search this is: the generator it starts from (the run's seed and the
        # iteration draw it), recorded so a checkpoint of another is not taken for it
        self.origin = hashlib.sha256(repr(rng.getstate()).encode()).hexdigest()[:16]

    def allowed(self, arch: Arch) -> bool:
        if self.constraint is not None and not self.constraint(arch):
            self.rejected += 1
            return False
        return True

    def evaluate(self, archs: list[Arch], desc: str) -> None:
        todo = [a for a in archs if a not in self.scores]
        for a in tqdm(todo, desc=desc, leave=False, disable=not self.progress):
            self.scores[a] = float(self._score(a))
            self.seen.add(self.key(a))
            if not math.isfinite(self.scores[a]):
                log.warning("%s scores %s in the super-net (its path diverged); it ranks last",
                            self.space.to_string(a), self.scores[a])

    def require_candidates(self) -> None:
        """A search that found nothing to score is an error that says why."""
        if self.scores:
            return
        why = (f"the search constraint rejected all {self.rejected} candidates drawn (in a "
               "depthnas search: raise search.max_params / search.max_latency_ms)" if self.rejected else
               "no new candidate could be drawn (every one drawn builds a model scored before)")
        raise ValueError(f"no {self.space.name} architecture to score: {why}")

    def ranked(self) -> list[tuple[Arch, float]]:
        order = self.order or (lambda arch, score: score)

        def key(item: tuple[Arch, float]) -> tuple:
            # NaN compares false with everything: left in the sort, it scrambles it
            arch, score = item
            return (False, order(arch, score)) if math.isfinite(score) else (True,)
        return sorted(self.scores.items(), key=key)

    def save(self, **state) -> None:
        if self.checkpoint is None:
            return
        atomic_write_json(self.checkpoint, {
            "space": self.space.name, "origin": self.origin, "rng": _rng_state(self.rng),
            "scores": [[self.space.to_string(a), s] for a, s in self.scores.items()],
            "rejected": self.rejected, **state})

    def load(self, needs: tuple[str, ...] = ()) -> dict | None:
        """The saved search, its state restored; `needs`: the whole-number fields the
        caller goes on from (evolution's generation)."""
        if self.checkpoint is None or not self.checkpoint.is_file():
            return None
        # a search the super-net has trained past cannot be redone on the super-net it
        # ranked (`search_resume.check_search_kept`): deleting it alone is refused then
        remedy = (f"restore it, or delete it to search again (and, if the super-net has "
                  f"trained past this search, {self.checkpoint.parent / 'checkpoints'} too: "
                  "the super-net trains again from the start, stand-alone results are kept)")
        try:
            data = read_json(self.checkpoint, expect=dict)
        except ValueError as err:  # cut short: "not valid JSON"
            raise ValueError(f"{err}; {remedy}") from None
        if data.get("space") != self.space.name:
            raise ValueError(f"search checkpoint {self.checkpoint} is for space {data.get('space')!r}")
        if data.get("origin", self.origin) != self.origin:  # (files from before it: taken as they are)
            raise ValueError(f"search checkpoint {self.checkpoint} was saved by another search (another "
                             f"seed, or another iteration's), not this one; {remedy}")
        try:
            _set_rng_state(self.rng, data["rng"])
            self.scores = {self.space.from_string(a): _score(s) for a, s in data["scores"]}
            self.seen = {self.key(a) for a in self.scores}
            self.rejected = int(data.get("rejected", 0))
            for field in needs:
                if isinstance(data[field], bool) or not isinstance(data[field], int):
                    raise TypeError(f"{field} is {data[field]!r}, not a whole number")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"search checkpoint {self.checkpoint} is damaged ({type(err).__name__}: "
                             f"{err}); {remedy}") from None
        return data

    def fresh(self, make: Callable[[], Arch], taken: set[Hashable], tries: int = 50) -> Arch | None:
        """A candidate whose model is new (not scored, not in `taken`, the keys of
        this generation's candidates so far) and satisfies the constraint, its key
        added to `taken`; None after `tries` misses in a row. Two strings that build
        one model score alike on the super-net: scoring both would waste an
        evaluation and a place in the generation."""
        for _ in range(tries):
            a = make()
            key = self.key(a)
            if key not in taken and key not in self.seen and self.allowed(a):
                taken.add(key)
                return a
        return None


def evolutionary_search(space: SearchSpace, score: Score, cfg: SearchConfig, rng: random.Random,
                        **kw) -> list[tuple[Arch, float]]:
    """SPOS's genetic search. Every generation scores `population` new candidates:
    `mutations` mutants (each gene resampled with probability `mutation_prob`) and
    `crossovers` uniform crossovers of the best `parents` found so far, then random
    samples to fill up (also for mutants and crossovers that came out duplicates or
    broke the constraint). Parents are not re-scored: their scores are kept."""
    s = Search(space, score, rng, **kw)
    state = s.load(needs=("generation",)) or {"generation": 0}
    for gen in range(state["generation"], cfg.generations):
        population: list[Arch] = []
        taken: set[Hashable] = set()
        if gen > 0:
            parents = [a for a, _ in s.ranked()[:cfg.parents]]
            for _ in range(cfg.mutations):
                a = s.fresh(lambda: space.mutate(rng.choice(parents), rng, cfg.mutation_prob), taken)
                if a is not None:
                    population.append(a)
            for _ in range(cfg.crossovers):
                a = s.fresh(lambda: space.crossover(rng.choice(parents), rng.choice(parents), rng), taken)
                if a is not None:
                    population.append(a)
        while len(population) < cfg.population:
            a = s.fresh(lambda: space.sample(rng), taken, tries=RANDOM_TRIES)
            if a is None:
                break  # the space (under the constraint) is exhausted
            population.append(a)
        s.evaluate(population, f"generation {gen + 1}/{cfg.generations}")
        s.require_candidates()
        best_arch, best = s.ranked()[0]
        log.info("  generation %d/%d: best %.5f %s (%d evaluated)", gen + 1, cfg.generations,
                 best, space.to_string(best_arch), len(s.scores))
        s.save(generation=gen + 1, population=[space.to_string(a) for a in population])
    return s.ranked()


def random_search(space: SearchSpace, score: Score, cfg: SearchConfig, rng: random.Random,
                  **kw) -> list[tuple[Arch, float]]:
    """The baseline: score `random_candidates` random architectures, distinct models."""
    s = Search(space, score, rng, **kw)
    s.load()
    taken: set[Hashable] = set()
    while len(s.scores) < cfg.random_candidates:
        a = s.fresh(lambda: space.sample(rng), taken, tries=RANDOM_TRIES)
        if a is None:
            break
        s.evaluate([a], "random search")
        if len(s.scores) % 10 == 0:
            s.save()
    s.save()
    s.require_candidates()
    return s.ranked()


def new_models(space: SearchSpace, archs: Iterable[Arch], taken: Iterable[Arch], n: int,
               keep: Callable[[Arch], bool] = lambda arch: False) -> list[Arch]:
    """The first `n` of `archs` that build a model none of `taken` builds, one per
    model: a search's picks, or a random sample, to train stand-alone. `keep(a)`:
    take `a` (not one of `taken`) although its model is taken."""
    taken = set(taken)
    keys = {space.function_key(a) for a in taken}
    out: list[Arch] = []
    for a in archs:
        if len(out) >= n:
            break
        key = space.function_key(a)
        if a not in taken and (key not in keys or keep(a)):
            keys.add(key)
            taken.add(a)
            out.append(a)
    return out


SEARCHERS = {"evolution": evolutionary_search, "random": random_search}


def run_search(method: str, *args, **kw) -> list[tuple[Arch, float]]:
    if method not in SEARCHERS:
        raise ValueError(f"unknown search method {method!r}; expected one of {list(SEARCHERS)}")
    return SEARCHERS[method](*args, **kw)
