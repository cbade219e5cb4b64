"""Models that are no depth estimator whatever their loss: one that learned nothing
(scoring at a constant prediction's level, or worse), a super-net path whose output
ignores its input (collapsed), one whose output is upside down; and the orders that
put such models last. Pure functions of scores and records, without torch: the
report and the commands read their verdicts from here."""
from __future__ import annotations

from typing import Any, Callable


def learned_nothing(loss: float, constant: float | None) -> bool:
    """A stand-alone score within 1% of a constant prediction's, or worse: the model
    learned (almost) nothing."""
    return constant is not None and loss >= 0.99 * constant


def supernet_level(search_level: float | None, split_level: float | None) -> float | None:
    """The constant-prediction level super-net scores are judged by: that of the
    batches the search scores on, else (classification keeps none of its own) the
    split's majority-class error."""
    return split_level if search_level is None else search_level


def unlearned_note(searches: list[int], level: float, best: float | None = None) -> str:
    """What a search whose super-net beat no constant prediction means, and the fix."""
    which = f"search{'es' if len(searches) > 1 else ''} {', '.join(map(str, searches))}"
    best_s = f"; the best path scored {best:.5f}" if best is not None else ""
    # "no path": a path the search did not draw may beat it on the same weights (the
    # report's table holds such), so the claim is of the paths scored
    return (f"in {which} no path the search scored on the super-net did better than a "
            f"constant prediction ({level:.5f}{best_s}): the super-net had not learned yet, "
            "so the search's order and picks are noise, as is the super-net side of any "
            "ranking; train it longer (--epochs, super-net epochs per iteration)")


def candidate_order(record: dict[str, Any]) -> tuple[bool, float]:
    """How trained candidates (results.json records) rank for "the best": by stand-alone
    loss, except that one whose output ignores its input comes after every other. It
    is no depth estimator, whatever its loss (when every model learned nothing it may
    score best): the best only for want of others."""
    return record.get("ignores_input", False), record["val_loss"]


def at_constant_level(score: float, constant: float | None) -> bool:
    """A score within 0.1% of a constant prediction's: the output ignores the input
    (depth: one value everywhere, from a head whose final ReLU died), and its order
    among such scores is float noise."""
    return constant is not None and abs(score - constant) <= 1e-3 * constant


def collapsed(space: Any, arch: Any, score: float, constant: float | None,
              model_kw: dict[str, Any] | None = None) -> bool:
    """A super-net path whose output ignores its input, so that its score says nothing
    about the architecture: by the architecture itself (a dead cell cutting the input
    off, `space.ignores_input` for models built with `model_kw`), or in the shared
    weights (a head whose final ReLU died: a constant prediction's score)."""
    return space.ignores_input(arch, **(model_kw or {})) or at_constant_level(score, constant)


def search_order(space: Any, constant: float | None, model_kw: dict[str, Any] | None = None
                 ) -> Callable[[Any, float], tuple[bool, float]]:
    """The order in which a search picks super-net paths: by score, except that
    collapsed paths come after every other. Their score (for depth, about the target
    variance) beats live paths that a short super-net training left slightly worse
    than a constant: a short search would pick them, and report one as its best."""
    return lambda arch, score: (collapsed(space, arch, score, constant, model_kw), score)


def inverted_note(share: float | None, where: str = "validation images") -> str | None:
    """The warning for a model mostly upside down (`share`: % of images), else None."""
    if share is None or share <= 50.0:
        return None
    return (f"on {share:.0f}% of the {where} the model's output has near and far swapped: the "
            "SSI loss fits it with a negative scale, so its scores look fine, but its raw output "
            "(predict, the demo) is upside down; train longer, with another --seed, or with the "
            "sign-aware loss (--set standalone.loss=ssitrim)")
