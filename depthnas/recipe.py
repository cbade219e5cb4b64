"""What makes two stand-alone losses comparable, and how two records of it compare."""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from depthnas.spaces import get_space

from .choices import CLASSIFICATION_LOSSES
from .config import Config, absolute_path, canonical_spec
from .models import has_timm_backbone, is_classification, model_kwargs

if TYPE_CHECKING:
    from depthnas.datasets.splits import SplitSet


def recipe(cfg: Config, splits: SplitSet | None = None) -> dict[str, Any]:
    """What makes two stand-alone losses comparable: everything that changes the
    model, its training data and schedule, or the validation split that scores it.
    The seed is in it because it draws the split (and the synthetic scenes): a loss
    on another seed's validation images is not one to rank against. With the loaded
    `splits`, it also holds a digest of which samples each split holds: a folder: data
    set with files added or removed is named by the same spec, and its losses were
    reused as comparable."""
    # A setting added to the config goes in here or in the test's NOT_IN_DEPTH_RECIPE,
    # which says why a loss does not depend on it (the test fails until it is either).
    t, d = cfg.standalone, cfg.data
    rec = {"space": cfg.space, "data": d.spec, "image_size": list(d.image_size),
           "synthetic_samples": d.synthetic_samples, "val_fraction": d.val_fraction,
           "reg_fraction": d.reg_fraction, "augment": d.augment, "depth_kind": d.depth_kind,
           "backbone": cfg.model.backbone, "backbone_weights": cfg.model.backbone_weights,
           "features": cfg.model.features, "first_block_input": cfg.model.first_block_input,
           "epochs": t.epochs, "steps_per_epoch": t.steps_per_epoch, "lr": t.lr,
           "backbone_lr": t.backbone_lr, "weight_decay": t.weight_decay,
           "grad_clip": t.grad_clip, "precision": t.precision, "loss": t.loss,
           "batch_size": d.batch_size, "seed": cfg.seed}
    # Classification models are sized by their own settings (channels, cells), see
    # fixed-size images and train with cross-entropy whatever `loss` says: the depth
    # fields would only stop a store from matching a run that differs in them alone.
    space = get_space(cfg.space)
    kw = model_kwargs(cfg.model, space)
    if is_classification(space):
        for field in DEPTH_ONLY:
            del rec[field]
        rec.update(loss="ce", model=as_recorded(kw))
    elif not has_timm_backbone(space):  # a depth space of the user's: sized by its own
        for field in DECODER_ONLY:       # settings, and the decoder's, which it does not
            del rec[field]               # read, would keep its results from matching
        rec["model"] = as_recorded({k: v for k, v in kw.items() if k != "backbone_weights"})
    if splits is not None:
        rec[SAMPLES] = samples_digest(splits)
    return rec


def as_recorded(kw: dict[str, Any]) -> dict[str, Any]:
    """`kw` as a JSON record reads back (a tuple as a list): compared with a saved
    recipe, a tuple never equalled its own list, and every finished training of an own
    space with one was redone on resume."""
    return json.loads(json.dumps(kw))


SAMPLES = "samples"  # the recipe field of the splits' digest


def samples_digest(splits: SplitSet) -> str:
    """A short digest of the sample ids in train, reg and val. (Not of the samples
    skipped as bad: those are recorded as messages, whose wording a library update
    may change; a skipped sample is missing from the ids anyway.)"""
    m = splits.manifest()
    held = [list(m.get(k) or []) for k in ("train", "reg", "val")]
    return hashlib.sha256(json.dumps(held).encode()).hexdigest()[:16]


# Recipe fields only the MiDaS decoder's spaces read.
DECODER_ONLY = ("backbone", "backbone_weights", "features", "first_block_input")
# Recipe fields a classification training does not read.
DEPTH_ONLY = ("image_size", "synthetic_samples", "depth_kind", *DECODER_ONLY, "backbone_lr")


def _canonical(key: str, value: Any) -> Any:
    """Paths as absolute ones: a run records them so now, runs and stores from before
    as typed (relative to the folder the run was started in, taken as this one)."""
    if key == "data" and isinstance(value, str):
        return canonical_spec(value)
    if key == "backbone_weights" and isinstance(value, str) and value:
        return absolute_path(value)
    return value


def recipe_diff(theirs: Any, ours: dict[str, Any], their_name: str = "stored",
                our_name: str = "this run") -> list[str]:
    """How recipe `theirs` differs from `ours`, as "field: stored X, this run Y"."""
    theirs = theirs if isinstance(theirs, dict) else {}
    classification = "model" in ours and not any(f in ours for f in DEPTH_ONLY)
    if classification and "model" in theirs:  # records from before classification ones
        # left out what their training does not read (a resumed run must still match)
        theirs = {k: v for k, v in theirs.items() if k not in DEPTH_ONLY}
        if theirs.get("loss") in CLASSIFICATION_LOSSES:
            theirs["loss"] = "ce"
    # the samples' digest is compared where both hold one: records from before it, and
    # checks made before the data is read (a resume's), go by the settings alone
    keys = set(theirs) | set(ours)
    if SAMPLES not in theirs or SAMPLES not in ours:
        keys.discard(SAMPLES)
    return [f"{k}: {their_name} {theirs.get(k)!r}, {our_name} {ours.get(k)!r}"
            + (" (the data's files, or how they split, changed)" if k == SAMPLES else "")
            for k in sorted(keys) if _canonical(k, theirs.get(k)) != _canonical(k, ours.get(k))]


def same_recipe(theirs: Any, ours: dict[str, Any]) -> bool:
    return isinstance(theirs, dict) and not recipe_diff(theirs, ours)
