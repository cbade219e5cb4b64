"""Data-parallel training under torchrun: 2-process gloo runs on CPU, the sharding
of stand-alone trainings and regularizer batches, and checkpoints that move
between DDP and a single process."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthnas import config as config_mod
from depthnas.cli import main
from depthnas.data import load_splits
from depthnas.distributed import shard, state_checksum
from depthnas.models import model_kwargs
from depthnas.spaces import get_space
from depthnas.task import make_task
from depthnas.trainer import Trainer
from cli_helpers import TINY, TRAIN_TINY

ROOT = Path(__file__).resolve().parents[1]
# Batch 4: two steps per rank and epoch; all landmark pairs, logged every step.
DDP = [*TINY, "--batch-size", "4", "--pairs", "0", "--set", "supernet.log_every=1"]


def torchrun(*args: str) -> str:
    return torchrun_process(*args).stdout


def torchrun_process(*args: str) -> subprocess.CompletedProcess:
    # --standalone: the agent binds its own free port (localhost:0), so no other process
    # can take a port between our probe and torchrun's bind
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "depthnas", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    return out, torchrun("search", *DDP, "--out", str(out))


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    """torch.cuda.set_device failed with "invalid device ordinal" instead."""
    import torch

    from depthnas.distributed import local_device
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="local rank 3, but this machine shows 2 GPU"):
        local_device(torch.device("cuda"))
    assert local_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_device(torch.device("cuda")) == torch.device("cuda", 1)


@pytest.mark.parametrize("value", ["2h", "0", "nan"])
def test_a_bad_process_group_timeout_is_named(monkeypatch, value):
    """It was "could not convert string to float: '2h'", naming no variable."""
    import torch

    from depthnas import distributed
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("DEPTHNAS_DIST_TIMEOUT_S", value)
    monkeypatch.setattr(distributed, "active", lambda: False)
    with pytest.raises(ValueError, match=f"DEPTHNAS_DIST_TIMEOUT_S='{value}': expected seconds"):
        distributed.init(torch.device("cpu"))


def test_shards_cover_every_item_once():
    for n in range(12):
        items = [f"arch{i}" for i in range(n)]
        for world in (1, 2, 3, 4):
            shares = [shard(items, r, world) for r in range(world)]
            assert sorted(sum(shares, [])) == sorted(items)          # nothing lost, no repeats
            assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced
    assert shard(["a", "b", "c"]) == ["a", "b", "c"]  # a single process trains everything
    with pytest.raises(ValueError, match="rank 2 outside a world of 2"):
        shard([1, 2], 2, 2)


def test_a_ddp_step_with_the_landmark_penalty_equals_a_single_process_step(tmp_path):
    """The same training batch on both ranks: DDP's averaged gradient must be the single
    process's. Each rank used to take the hinge on its half of the regularizer batch,
    and the mean of hinges of halves is another objective (the hinge is not linear;
    train-mode BatchNorm saw half the batch): gradients nearly orthogonal to the
    single process's, and none at all where both halves happened to be in order."""
    import torch
    script = str(ROOT / "tests" / "ddp_step.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    for where, launcher in (("ddp", ["-m", "torch.distributed.run", "--standalone",
                                     "--nproc_per_node", "2"]), ("single", [])):
        (tmp_path / where).mkdir()
        proc = subprocess.run([sys.executable, *launcher, script, str(tmp_path / where)], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ddp, single = (torch.load(tmp_path / w / "step.pt") for w in ("ddp", "single"))
    assert ddp["ranks"] == 2 and single["ranks"] == 1
    assert single["logs"]["reg_violated"] == 1.0 and ddp["logs"]["reg"] == single["logs"]["reg"]
    for name, value in single["weights"].items():
        torch.testing.assert_close(ddp["weights"][name], value, rtol=1e-5, atol=1e-7, msg=name)


def test_main_leaves_a_process_group_the_caller_joined_in_place(tmp_path):
    """A script that joined the group itself and called main() found the group gone,
    and its next collective failed ("Default process group has not been initialized")."""
    import importlib

    import torch.distributed as tdist
    importlib.import_module("depthnas.distributed")  # loaded: main's clean-up looks for it
    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert main(["spaces"]) == 0
        assert tdist.is_initialized()
        tdist.barrier()
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()


def test_the_logged_loss_is_the_mean_over_the_ranks_and_a_nan_on_one_rank_is_named():
    """Each rank trains on its own shard: rank 0 logged its half's loss alone, for
    metrics.jsonl and the report's training plot. And a rank whose loss was finite said
    "non-finite loss" beside its own finite value, naming no rank."""
    import tempfile
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests")}
    saved = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("plain", "nan"):
            out = Path(tmp) / mode
            out.mkdir()
            proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   "--nproc_per_node", "2", str(ROOT / "tests" / "ddp_loss.py"),
                                   str(out), mode], env=env, cwd=ROOT, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
            saved[mode] = torch.load(out / "step.pt")
    plain = saved["plain"]
    assert plain["losses"][0] != pytest.approx(plain["losses"][1])  # two shards, two losses
    assert plain["logs"]["loss"] == pytest.approx(sum(plain["losses"]) / 2, rel=1e-5)
    error = saved["nan"]["error"]
    assert error.startswith("train: non-finite loss on rank 1 of 2 at step 0 ({'loss': nan"), error


def test_ddp_search_is_complete_and_ranks_agree(ddp_run):
    out, stdout = ddp_run
    for name in ("best_arch.json", "results.json", "report.md", "metrics.jsonl", "landmarks.json",
                 "config.yaml", "splits.json", "best/model.safetensors", "checkpoints/latest"):
        assert (out / name).is_file(), name
    assert stdout.count("best architecture:") == 1 and "x 2 ranks" in stdout  # rank 0 reports
    rows = records(out / "metrics.jsonl")
    steps = [r["step"] for r in rows if r.get("phase") == "supernet" and "loss" in r]
    assert steps == [1, 2, 3, 4]  # 2 epochs x 2 steps, each logged once (by rank 0)
    epochs = [r for r in rows if "replica_checksums" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:  # both ranks held identical weights and BN statistics after each epoch
        assert len(r["replica_checksums"]) == 2 and len(set(r["replica_checksums"])) == 1
    assert any(r.get("reg", 0) > 0 for r in rows)  # the landmark hinge trained through DDP
    assert len([r for r in rows if r.get("phase") == "search"]) == 2
    assert len([r for r in rows if r.get("phase") == "result"]) == 1


API_SCRIPT = """
import json, sys
from depthnas import pipeline
from depthnas.cli import build_parser
from depthnas.run_config import build_config
import logging, os
from pathlib import Path
import torch.distributed
cfg = build_config(build_parser().parse_args(json.loads(sys.argv[1])))
best = pipeline.run(cfg, progress=False)["best"]["string"]
# one file per rank: the ranks share one stdout, where their lines can interleave
Path(sys.argv[2], "after-" + os.environ["RANK"]).write_text(
    f"best {best} level {logging.getLogger().level} joined {torch.distributed.is_initialized()}")
"""


def test_pipeline_run_under_torchrun_is_the_command_s_search(ddp_run, tmp_path):
    """pipeline.run joined no process group: every rank took itself for rank 0, and the
    second was refused the folder the first had locked."""
    out, _ = ddp_run
    script = tmp_path / "api_search.py"
    script.write_text(API_SCRIPT)
    api_out = tmp_path / "api"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(script),
                           json.dumps(["search", *DDP, "--out", str(api_out)]), str(tmp_path)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "x 2 ranks" in proc.stdout
    # each rank left the process group it joined, and the caller's log level as it was
    # (rank 1's was ERROR, its warnings gone)
    after = [(tmp_path / f"after-{rank}").read_text() for rank in (0, 1)]
    best = json.loads((api_out / "best_arch.json").read_text())["string"]
    assert after == [f"best {best} level 30 joined False"] * 2
    ran = [[{k: v for k, v in a.items() if k != "model"}  # a path in each run's folder
            for a in json.loads((o / "results.json").read_text())["architectures"]]
           for o in (out, api_out)]
    assert ran[0] == ran[1]


def test_standalone_trainings_are_shared_out_without_overlap(ddp_run):
    out, _ = ddp_run
    archs = json.loads((out / "results.json").read_text())["architectures"]
    initial = json.loads((out / "initial_landmarks.json").read_text())
    landmarks = [a for a in archs if a["role"] == "landmark"]
    assert sorted(a["arch"] for a in landmarks) == sorted(initial)  # each landmark once
    assert {a["trained_on_rank"] for a in landmarks} == {0, 1}
    by_rank = {r: [a["arch"] for a in landmarks if a["trained_on_rank"] == r] for r in (0, 1)}
    assert by_rank == {r: shard(initial, r, 2) for r in (0, 1)}
    assert len({a["arch"] for a in archs}) == len(archs) == 7
    assert {a["trained_on_rank"] for a in archs if a["role"] == "rank"} == {0, 1}
    store = json.loads((out / "landmarks.json").read_text())["entries"]
    assert sorted(e["arch"] for e in store) == sorted(a["arch"] for a in archs)
    for a in archs:  # each in its own folder, written by the rank that trained it
        assert json.loads(Path(a["model"]).with_name("result.json").read_text())["arch"] == a["arch"]


def test_ddp_checkpoint_resumes_in_one_process(ddp_run, tmp_path):
    out, _ = ddp_run
    shutil.copytree(out / "checkpoints", tmp_path / "checkpoints")
    cfg = config_mod.load(str(out / "config.yaml"))
    space = get_space(cfg.space)
    trainer = Trainer(space.build_supernet(**model_kwargs(cfg.model, space)), make_task(space),
                      cfg.supernet, load_splits(cfg).train, out_dir=tmp_path, total_epochs=3,
                      seed=cfg.seed, sample_arch=space.sample, batch_size=cfg.data.batch_size,
                      progress=False)
    assert trainer.try_resume() and trainer.state.epoch == 2 and trainer.state.step == 4
    last = [r for r in records(out / "metrics.jsonl") if "replica_checksums" in r][-1]
    assert state_checksum(trainer.model) == last["replica_checksums"][0]  # what every rank held
    trainer.fit()  # and training goes on in this process
    assert trainer.state.epoch == 3 and (tmp_path / "checkpoints" / "epoch_0003").is_dir()


def test_train_resumes_under_ddp(tmp_path, capsys, monkeypatch):
    out, arch = tmp_path / "one", "v1-sync:c3,skip,none,c1,ap"
    argv = ["--arch", arch, *TRAIN_TINY, "--epochs", "2", "--out", str(out)]
    fit = Trainer.fit

    def killed_after_epoch_1(self, *a, **k):
        fit(self, until_epoch=1)
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "fit", killed_after_epoch_1)
    assert main(["train", *argv]) == 130  # one process, killed after epoch 1 of 2
    monkeypatch.undo()
    proc = torchrun_process("train", *argv, "--resume")
    assert proc.stdout.count("validation SSI loss") == 1
    # a model that uses every parameter is wrapped without find_unused_parameters (DDP
    # warned on every rank that it was not needed)
    assert "find_unused_parameters=True was specified" not in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["ranks"] == 2 and result["recipe"]["epochs"] == 2 and result["val_loss"] > 0
    rows = [r for r in records(out / "metrics.jsonl") if "epoch_time_s" in r]
    assert [r["epoch"] for r in rows] == [1, 2]  # epoch 2 continued from the 1-process checkpoint
    assert "replica_checksums" not in rows[0] and len(set(rows[1]["replica_checksums"])) == 1
    assert not (out / "checkpoints").exists()  # finished: its result and model are kept


def test_a_stand_alone_model_leaves_parameters_unused_only_with_a_dead_cell():
    """DDP needs find_unused_parameters for those (a dead cell's ops get no gradient)."""
    from depthnas.datasets import SyntheticDepth
    from depthnas.spaces import get_space
    from depthnas.task import make_task
    from depthnas.trainer import _leaves_parameters_unused
    space = get_space("v1-sync")
    data = SyntheticDepth(2, (64, 64), 0)
    for arch, unused in (("v1-sync:c3,skip,none,c1,ap", False), ("v1-sync:c3,c3,none,none,none", True)):
        model = space.build_fixed(space.parse(arch), backbone="resnet18", features=16)
        stats = [b.clone() for b in model.buffers()]
        assert _leaves_parameters_unused(model, make_task(space, "ssi"), data, torch.device("cpu")) == unused
        assert model.training and all(torch.equal(a, b) for a, b in zip(stats, model.buffers()))


def test_ranks_other_than_0_keep_their_warnings_to_themselves(monkeypatch):
    """Every rank reads the same data under the same settings: each warning (a data set
    with too few scenes, say) was printed once per rank."""
    import logging

    from depthnas import distributed, run_start
    monkeypatch.setattr(distributed, "init", lambda device: None)
    root, checkpoints = logging.getLogger(), logging.getLogger("depthnas.checkpoint")
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setattr(checkpoints, "level", logging.NOTSET)
    for main_rank, level in ((True, logging.INFO), (False, logging.ERROR)):
        monkeypatch.setattr(distributed, "is_main", lambda: main_rank)
        run_start.join_ranks(config_mod.Config(device="cpu"))
        assert root.level == level
    # but a checkpoint it found damaged, which it alone read, is said
    assert checkpoints.isEnabledFor(logging.WARNING)


def test_an_error_every_rank_meets_is_printed_once(tmp_path):
    """A refusal every rank met alike (a budget nothing fits, data not found) was
    printed once per rank: 8 copies on 8 GPUs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    out = tmp_path / "tight"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "depthnas", "search", *DDP,
                           "--max-params", "1000", "--out", str(out)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if "search.max_params=1,000: no v1-sync" in line]
    assert len(said) == 1 and said[0].startswith("error: "), proc.stderr[-3000:]
    assert not out.exists()


def test_a_deleted_search_is_refused_by_every_rank(ddp_run, tmp_path):
    """Rank 0 alone checked it: the other ranks then ended in "the ranks lost contact"."""
    src, _ = ddp_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (out / "results.json").unlink()
    (out / "search_1.json").unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "depthnas", "search", "--out", str(out),
                           "--resume", "--no-progress"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if "search_1.json is missing" in line]
    assert len(said) == 1 and said[0].startswith("error: "), proc.stderr[-3000:]
    assert "lost contact" not in proc.stderr, proc.stderr[-3000:]


def test_results_read_back_on_a_resume_record_no_rank(ddp_run, tmp_path):
    """A stand-alone result finished before the stop was recorded as trained on rank 0
    of the resumed session (README: only those trained in the last session are)."""
    src, _ = ddp_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (out / "results.json").unlink()  # stopped as the run ended: every training is done,
    (out / "landmarks.json").unlink()  # and (stopped sooner still) none yet in the store
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "depthnas", "search", "--out", str(out),
                           "--resume", "--no-progress"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    archs = json.loads((out / "results.json").read_text())["architectures"]
    assert len(archs) == 7 and not any("trained_on_rank" in a for a in archs)
    assert "reusing finished stand-alone" in proc.stdout and " on rank " not in proc.stdout


def test_an_error_rank_0_did_not_meet_is_said_by_its_rank(monkeypatch, capsys):
    from depthnas import exits
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_PORT", f"test-{os.getpid()}")
    exits.say_once("error: a bad sample in rank 1's share", wait_s=0.2)
    assert capsys.readouterr().err == "rank 1: error: a bad sample in rank 1's share\n"
    monkeypatch.setenv("RANK", "0")
    exits.say_once("error: the same for all")
    monkeypatch.setenv("RANK", "1")
    exits.say_once("error: the same for all", wait_s=0.2)
    assert capsys.readouterr().err == "error: the same for all\n"


def test_an_error_every_rank_meets_is_said_once_on_each_machine(monkeypatch, tmp_path, capsys):
    """The note that rank 0 said it lies in its machine's temporary folder: the ranks of
    a second machine never read it and each said the error, after waiting for it. Now
    the second machine's first rank says it, once, for the ranks there."""
    import tempfile
    from depthnas import exits
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the second machine's folder
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_PORT", f"multi-{os.getpid()}")
    for rank, local in (("2", "0"), ("3", "1")):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local)
        exits.say_once("error: refused", wait_s=0.5)
    assert capsys.readouterr().err == "rank 2: error: refused\n"


def test_rank_0_s_notes_of_jobs_long_over_are_removed(monkeypatch, tmp_path, capsys):
    """Each refused torchrun job left its note in the temporary folder for good."""
    import tempfile
    from depthnas import exits
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old, recent = tmp_path / "depthnas-error-a_b_1", tmp_path / "depthnas-error-a_b_2"
    for note in (old, recent):
        note.write_text("error: x")
    os.utime(old, (1_000_000, 1_000_000))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_PORT", "3")
    exits.say_once("error: y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depthnas-error-__3", recent.name]


def test_an_error_of_one_process_leaves_no_note_for_other_ranks(monkeypatch, tmp_path, capsys):
    """Without torchrun there are no other ranks to tell: the error is printed, and no
    depthnas-error-* note is left in the temporary folder."""
    import tempfile
    from depthnas import exits
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    exits.say_once("error: x")
    assert capsys.readouterr().err == "error: x\n"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("WORLD_SIZE", "1")
    exits.say_once("error: y")
    assert list(tmp_path.iterdir()) == []
