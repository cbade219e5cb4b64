"""Drawing landmark architectures (paper Algorithm 1): a random root and architectures
more than tau genes from it, so the landmarks spread over the space.

Free of torch: a configuration's landmark settings are checked against the space
(`landmark_problem`) before the seconds torch takes to load."""
from __future__ import annotations

import random
from typing import Sequence

from depthnas.spaces import Arch, SearchSpace


def sample_landmarks(space: SearchSpace, num: int, tau: int, rng: random.Random,
                     exclude: Sequence[Arch] = (), max_tries: int = 100_000) -> list[Arch]:
    """A random root plus architectures reached by repeated single-gene mutations
    of it, each kept once its Hamming distance to the root exceeds `tau` (one gene
    a step: at exactly tau + 1)."""
    if num < 1:
        raise ValueError(f"landmarks.num={num}: expected >= 1")
    problem = landmark_problem(space, num, tau)
    if problem:
        raise ValueError(problem)
    key = space.function_key  # one landmark per model: two strings may build one
    seen = {key(a) for a in exclude}
    root = space.sample(rng)
    while key(root) in seen:
        root = space.sample(rng)
    out = [root]
    seen.add(key(root))
    walk, tries = root, 0
    while len(out) < num:
        tries += 1
        if tries > max_tries:
            raise ValueError(f"landmarks.num={num}: found only {len(out)} landmarks further than "
                             f"landmarks.tau={tau} from the root in {max_tries:,} tries (some "
                             "excluded as already stored or as another landmark's model "
                             "under another string); lower either")
        walk = space.mutate(walk, rng)
        if space.hamming(walk, root) > tau:
            if key(walk) not in seen:
                out.append(walk)
                seen.add(key(walk))
            walk = root  # restart, so landmarks spread around the root, not along one path
    return out


def landmark_problem(space: SearchSpace, num: int, tau: int) -> str | None:
    """Why `num` landmarks further than `tau` from a root cannot be drawn in `space`,
    or None: said before any work, not as a failure after the data has loaded. The
    walk keeps the first architecture it reaches beyond `tau`, so only those exactly
    tau + 1 genes from the root can be drawn."""
    choices = [int(c) for c in space.gene_choices() if c > 1]  # a one-choice gene never differs
    if not choices:  # one architecture: trained (train), or refused as nothing to search
        return None
    if not 0 <= tau < len(choices):
        return (f"landmarks.tau={tau}: expected 0 to {len(choices) - 1} for {space.name} (no "
                f"architecture differs from another in more than its {len(choices)} genes)")
    # architectures at each Hamming distance from any root: the coefficients of
    # prod (1 + (c - 1) x) over the genes
    at = [1]
    for c in choices:
        at = [a + (c - 1) * b for a, b in zip(at + [0], [0] + at)]
    reachable = at[tau + 1]
    if num > 1 + reachable:
        return (f"landmarks.num={num}: only {reachable:,} {space.name} architectures lie "
                f"landmarks.tau + 1 = {tau + 1} genes from a root, where the sampler keeps its "
                f"landmarks, so at most {1 + reachable:,} landmarks (lower landmarks.num, or "
                "change landmarks.tau)")
    return None


def default_tau(space: SearchSpace) -> int:
    """Require most genes to differ from the root (NAS-Bench-201: tau = 5 in the paper, so
    all 6 edges differ)."""
    return space.landmark_tau if space.landmark_tau is not None else \
        max(1, (3 * len(space.gene_choices())) // 5)
