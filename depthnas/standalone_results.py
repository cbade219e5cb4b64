"""Each architecture's stand-alone loss in one search: read from the landmark store
or the truth table, or trained in the run's standalone/ folder (shared out across
torchrun's ranks); and the run's record of them, results.json's "architectures"."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable

from depthnas.spaces import Arch, SearchSpace, is_builtin

from . import distributed as dist
from .config import Config
from .landmark_store import LandmarkStore
from .models import PathParameters
from .recipe import recipe
from .runs import TRAIN_MODEL
from .standalone import arch_slug, finished_training, train_standalone, trains_arch

if TYPE_CHECKING:
    import torch

    from depthnas.datasets.splits import SplitSet

log = logging.getLogger(__name__)


class StandaloneResults:
    """The stand-alone losses a search needs (landmarks, picks, ranking samples), each
    from the first of: the landmark store (this run's results, or an earlier run's of
    the same recipe), the truth table, a training. `records` is what results.json
    lists of them. `use_splits` gives it the run's data before anything trains;
    `after_training` is called after each training this rank ran."""

    def __init__(self, cfg: Config, space: SearchSpace, out: Path, *, device: torch.device,
                 progress: bool, say: Callable[[str], None],
                 after_training: Callable[[], None] = lambda: None):
        self.cfg, self.space, self.out, self.device = cfg, space, out, device
        self.progress, self.say, self.after_training = progress, say, after_training
        # Every rank keeps the same store in memory (rank 0's file, then the same
        # additions in the same order); rank 0 alone writes it.
        self.store = LandmarkStore(cfg.landmarks.store or out / "landmarks.json",
                                   persist=dist.is_main())
        self.store.entries = dist.broadcast_object(self.store.entries)
        self.records: dict[Arch, dict[str, Any]] = {}
        self.splits: SplitSet | None = None
        # what makes stand-alone results comparable; with the samples' digest once
        # the splits are known (use_splits)
        self.recipe: dict[str, Any] = recipe(cfg)
        self.truth: dict[str, float] = {}
        if cfg.search.truth_table:  # keyed by canonical strings
            self.truth = self._truth_table(cfg.search.truth_table)
        # a row stands in for the other strings of its model (a string's own row first)
        self.truth_rows: dict[Hashable, str] = {
            space.function_key(space.from_string(s)): s for s in self.truth}

    def use_splits(self, splits: SplitSet) -> None:
        self.splits = splits
        self.recipe = recipe(self.cfg, splits)

    def _truth_table(self, path: str) -> dict[str, float]:
        """The table's rows of this space, with a warning naming the rows left out.
        Without it a table of none (another space's, a typo'd column of strings)
        would stand in for nothing, and every architecture train, for hours, without
        a word."""
        from .truth import for_space, other_setup, read_table, said_setup
        # a landmark store shared by runs of several recipes: this run's entries alone, as
        # `depthnas rank` takes them (another recipe's losses are not this run's to rank)
        read = read_table(path, lambda: self.recipe)
        table = for_space(read.values, self.space, path, known_losses=read.known_losses)
        differ = other_setup(read.setup, self.cfg)
        if differ and dist.is_main():  # its rows would rank beside this run's own trainings
            log.warning("search.truth_table %s %s: its rows stand in for trainings of another "
                        "setup, ranked beside those this run trains", path, said_setup(differ))
        left = ", ".join(part for part in (
            f"{table.foreign} of other spaces" if table.foreign else "",
            f"{len(table.invalid)} no space reads (e.g. {table.invalid[0]})" if table.invalid else "")
            if part)
        if not table.values and not left:
            left = "nothing: the table is empty"
        if left and dist.is_main():  # warned, not refused: a run saved so must still resume
            log.warning("search.truth_table %s: %d row(s) of space %s stand in for training%s; "
                        "left out: %s", path, len(table.values), self.space.name,
                        "" if table.values else ": none, so every architecture is trained", left)
        return table.values

    def __call__(self, archs: list[Arch], role: str) -> list[float]:
        """Stand-alone losses of `archs`: from the store or the truth table, or
        trained. Trainings are shared out across the ranks (each an ordinary
        single-process training in its own folder); every rank gets every result."""
        strings = [self.space.to_string(a) for a in archs]
        looked_up = self._from_truth_table(archs, strings, role)
        todo = [s for a, s in zip(archs, strings) if s not in looked_up and self._stored(a, s) is None]
        trained_on = self._train_shared(todo, role)
        return [self._record(a, s, role, looked_up.get(s), trained_on.get(s))
                for a, s in zip(archs, strings)]

    def _from_truth_table(self, archs: list[Arch], strings: list[str],
                          role: str) -> dict[str, dict[str, Any]]:
        """The results a benchmark table gives for `archs` the store does not hold. Its
        values stay in this run: in the store they would pass, for a later run of this
        recipe, as trained under it."""
        rows = {s: s if s in self.truth else self.truth_rows.get(self.space.function_key(a))
                for a, s in zip(archs, strings)}
        from_table = [s for a, s in zip(archs, strings) if rows[s] and self._stored(a, s) is None]
        params = PathParameters(self.space, self.cfg.model) if from_table else None
        for s in from_table:
            self.say(f"  from the truth table [{role}] {s}: {self.truth[rows[s]]:.5f}" +
                     (f" (row {rows[s]}: the same model)" if rows[s] != s else ""))
        return {s: {"val_loss": self.truth[rows[s]], "params": params(self.space.from_string(s))}
                for s in from_table}

    def _stored(self, arch: Arch, s: str) -> dict[str, Any] | None:
        """The store's entry of `arch` under this recipe: its own string's, else one of
        another string that builds the same model (a twin, as truth table rows stand
        in for theirs): looked up by string alone, a twin was trained again."""
        entry = self.store.find(s, self.recipe)
        if entry is not None:
            return entry
        key = self.space.function_key(arch)
        return next((e for e in self.store.matching(self.space.name, self.recipe)
                     if self.space.function_key(self.space.from_string(e["arch"])) == key), None)

    def _train_shared(self, todo: list[str], role: str) -> dict[str, int]:
        """Train `todo` stand-alone, shared out across the ranks, and add every result to
        the store on every rank; returns the rank that trained each one (under torchrun,
        for those not finished before a resume)."""
        rec, world = self.recipe, dist.world_size()
        owner = {s: r for r in range(world) for s in dist.shard(todo, r, world)}
        mine: dict[str, dict[str, Any]] = {}
        # a resumed run reads what finished before the stop (decided before any rank
        # trains: a result another rank writes meanwhile was trained now)
        finished = {s for s in todo
                    if finished_training(self.folder(s), s, rec) is not None}
        for s in todo:
            self.say(f"  reusing finished stand-alone [{role}] {s}" if s in finished else
                     f"  training stand-alone [{role}] {s}" +
                     (f" on rank {owner[s]}" if world > 1 else ""))
            if owner[s] == dist.rank():
                mine[s] = train_standalone(self.cfg, self.space, self.space.from_string(s),
                                           self.splits, self.folder(s),
                                           progress=self.progress and dist.is_main(),
                                           device=self.device)
                self.after_training()
        results = {s: (r, res) for r, part in enumerate(dist.gather_objects(mine))
                   for s, res in part.items()}
        for s in todo:  # the same additions, in the same order, on every rank
            result = results[s][1]
            self.store.add(s, self.space.name, result["val_loss"], rec,
                           params=result["params"], train_time_s=result["train_time_s"],
                           device=result["device"], seed=self.cfg.seed,
                           model=str(self.folder(s) / TRAIN_MODEL),
                           **({"inverted": result["inverted"]} if "inverted" in result else {}))
        return {s: results[s][0] for s in todo if world > 1 and s not in finished}

    def _record(self, arch: Arch, s: str, role: str, looked_up: dict[str, Any] | None,
                trained_on: int | None) -> float:
        """Enter `arch` in the run's record of stand-alone results (results.json), saying
        where its loss is from; returns the loss."""
        # this run's own training first: a run sharing the store, training the same
        # model meanwhile, replaced the store's entry with its own (and model file)
        own = finished_training(self.folder(s), s, self.recipe) if looked_up is None else None
        stored = self._stored(arch, s) if looked_up is None and own is None else None
        entry = looked_up or own or stored
        model = self.folder(s) / TRAIN_MODEL if own else self.store.model_file(stored) if stored else None
        record = {"arch": s, "val_loss": entry["val_loss"], "role": role,
                  "params": entry.get("params"), "model": str(model) if model else None}
        if entry.get("inverted") is not None:  # the report warns of a best upside down
            record["inverted"] = entry["inverted"]
        if looked_up is not None:  # not trained in this run: say where the loss is from
            record["source"] = "truth table"
        elif not _inside(model, self.out):  # another run's, from --landmarks (this run's
            # trainings are stored with their model under its standalone/)
            record["source"] = "landmark store"
            if role != "landmark":  # those were counted when drawn
                twin = f" (entry {entry['arch']}: the same model)" if entry["arch"] != s else ""
                self.say(f"  from the landmark store [{role}] {s}: {entry['val_loss']:.5f}{twin}")
        if trained_on is not None:
            record["trained_on_rank"] = trained_on
        self.records[arch] = record
        return entry["val_loss"]

    def folder(self, s: str) -> Path:
        """Where architecture string `s` trains stand-alone in this run. A built-in
        space's strings differ in letters and digits, never in punctuation alone, so
        their slugs are distinct; a space of the user's may have ops `conv` and
        `conv+`, whose strings shared one folder (one training lost, and the other's
        model exported as the winner): its slugs carry a digest of the whole string.
        A run begun before that keeps the digest-less folder of each string it holds,
        so a resume goes on with its trainings in progress."""
        slug = arch_slug(s)  # "" for "+|-" (no letter or digit): its folder is "_<digest>"
        if is_builtin(self.space.name):
            return self.out / "standalone" / slug
        digested = self.out / "standalone" / f"{slug}_{hashlib.sha256(s.encode()).hexdigest()[:8]}"
        before = self.out / "standalone" / slug
        return before if slug and not digested.exists() and trains_arch(before, s) else digested

    def trained_here(self, arch: Arch) -> bool:
        """Whether this run trained `arch` stand-alone already. Depthnas before one
        string per model could pick two strings of one model; a run it started keeps
        such picks when resumed, as its super-net trained with them as landmarks."""
        s = self.space.to_string(arch)
        return finished_training(self.folder(s), s, self.recipe) is not None


def _inside(path: Path | None, folder: Path) -> bool:
    """Whether a stored model file lies in `folder` (a result of this run's own)."""
    return path is not None and Path(path).resolve().is_relative_to(folder.resolve())
