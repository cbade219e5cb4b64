"""What a resumed search must still agree with: the config.yaml its trainings used,
the landmarks it drew, and the searches its super-net has trained past. Each is a
refusal that names the file and how to go on; a resume that ignored one would mix
two runs in one folder."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import config as config_mod
from .checkpoint import Checkpointer
from .config import Config
from .io import drop_jsonl_records, read_json
from .recipe import recipe
from .standalone import latest_record, training_changes


def drawn_landmarks(path: Path, space: Any, cfg: Config) -> list[str]:
    """The landmarks the run drew as it started (initial_landmarks.json), checked against
    the space and the config.yaml it resumes with."""
    strings = read_json(path, expect=list)
    for s in strings:  # named here: parsed later, an error named no file
        try:
            space.from_string(s)
        except (ValueError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: {s!r} is no {space.name} architecture ({err}); "
                             "restore the file, or delete it to draw the landmarks "
                             "again") from None
    if len(strings) != cfg.landmarks.num:  # config.yaml edited since the draw
        raise config_mod.ConfigError(
            f"{path} holds the {len(strings)} landmark(s) this run drew as it started, but "
            f"{path.parent / 'config.yaml'} now asks for landmarks.num {cfg.landmarks.num}; "
            "--resume continues a run as it started: restore it, or start a new run in "
            "another --out")
    return strings


def check_config_kept(out: Path, cfg: Config) -> None:
    """Refuse a resume under a config.yaml edited since the super-net's (or, before
    it, the landmarks') trainings. Resumed, the run would go on with the new
    settings after searches done with the old ones, its schedules changed
    part-way through."""
    changes, what = supernet_config_changes(out, cfg), "super-net"
    if changes is None:  # stopped among the landmarks: their results record the recipe
        what, changes = "stand-alone trainings", _standalone_changes(out, cfg)
    if changes:
        raise config_mod.ConfigError(
            f"{out / 'config.yaml'} differs from the settings the run's {what} "
            f"trained with ({'; '.join(changes)}); a resumed run goes on as it started: "
            "restore those settings, or start a new run in another folder (--out)")


def supernet_config_changes(out: Path, cfg: Config) -> list[str] | None:
    """How `cfg` differs from the settings the run's super-net trained with, as its
    latest checkpoint records them; None before a checkpoint was written."""
    recorded = Checkpointer(out / "checkpoints").latest_metadata()
    if not recorded:
        return None
    return config_mod.record_changes(recorded.get("run_config") or {}, cfg)


def _standalone_changes(out: Path, cfg: Config) -> list[str]:
    """How the recipe now differs from that of a stand-alone training this run holds,
    finished or checkpointed on the way (`training_changes`, as `depthnas train
    --resume` checks it): a resume would train it again from scratch over its result
    or its epochs (a landmark finished before the stop would be lost)."""
    rec = recipe(cfg)
    folders = (out / "standalone").iterdir() if (out / "standalone").is_dir() else []
    for folder in sorted(f for f in folders if f.is_dir()):
        arch = latest_record(folder).get("arch")  # a damaged one: set aside, trained again
        changes = training_changes(folder, arch, rec) if arch else []
        if changes:
            return changes
    return []


def drop_stale_searches(out: Path, say: Callable[[str], None]) -> None:
    """A super-net that starts from scratch in a folder with searches (its
    checkpoints deleted, as an unreadable checkpoint's error advises) must not
    resume them: they ranked the super-net that is gone."""
    stale = sorted(out.glob("search_*.json"))
    for path in stale:
        path.unlink()
    # and their log records, which would otherwise be replaced in place, before the
    # epochs of the new super-net they follow
    drop_jsonl_records(out / "metrics.jsonl",
                       lambda r: r.get("phase") in ("search", "result"))
    if stale:
        say(f"the super-net trains from the start, so the searches of the earlier one "
            f"({', '.join(p.name for p in stale)}) were removed")


def check_search_kept(out: Path, t: int, epoch: int, epochs_per_iteration: int) -> None:
    """Refuse to go on when iteration t's search, finished, has since been deleted:
    it cannot be redone, the super-net it ranked has trained on. Redone, it would
    pick another top-K, and results.json would lose the architectures the later
    iterations trained with."""
    path = out / f"search_{t + 1}.json"
    if epoch > (t + 1) * epochs_per_iteration and not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing, but the super-net has trained past iteration {t + 1} "
            f"(epoch {epoch}), so that search cannot be redone on the super-net it "
            f"ranked; restore the file, or delete {out / 'checkpoints'} to train the "
            "super-net again from the start (stand-alone results are kept)")
