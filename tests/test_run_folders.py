"""Run folders: where a run goes without --out, what a fresh start may take (not a run's
folder, nor one of other files), the run lock, a refused or failed start's leftovers,
and a run's config.yaml reused from any folder."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from depthnas.cli import build_parser, main
from depthnas.run_config import build_config
from depthnas.config_checks import validate

from cli_helpers import TINY, TRAIN_TINY


def test_a_folder_of_other_files_is_no_place_for_a_new_run(tmp_path, monkeypatch, capsys):
    """A start in a folder of the user's own deleted its splits.json and a temporary-like
    file anywhere below, and wrote over its commented config.yaml and report.md."""
    import depthnas.pipeline
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    files = {"config.yaml": "# my notes\nseed: 0\n", "splits.json": "{}", "report.md": "k",
             "sub/.draft.abcd1234.tmp": "x"}
    for name, text in files.items():
        (mine / name).write_text(text)
    for argv in (["search", *TINY, "--config", str(mine / "config.yaml")],
                 ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY]):
        assert main([*argv, "--out", str(mine)]) == 2
        assert (f"{mine} holds files of its own (config.yaml, report.md, splits.json ...) and no "
                "depthnas run") in capsys.readouterr().err
        assert {n: (mine / n).read_text() for n in files} == files
        assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "report.md", "splits.json", "sub"]
    started = []
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "run", lambda self: started.append(self.cfg.out))
    (tmp_path / "empty").mkdir()  # made beforehand, as a job script does
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"")  # looked at in Finder: still empty
    assert main(["search", *TINY, "--out", str(tmp_path / "empty")]) == 0
    assert started == [str(tmp_path / "empty")]
    # a run copied without its lock file (`cp run/*`) still resumes
    from depthnas.runs import guard_out
    guard_out(mine, resume=True)


def test_a_fresh_start_keeps_the_config_file_it_reads_from_its_folder(tmp_path, monkeypatch):
    """A failed start's config.yaml is removed by the next start, but not when that is
    the --config this start reads: the user's edited file was deleted with it."""
    import depthnas.pipeline
    out = tmp_path / "r"
    out.mkdir()
    (out / ".depthnas.lock").write_text("1\n")
    (out / "config.yaml").write_text("# mine\nseed: 3\n")
    (out / "splits.json").write_text("{}")

    def stopped(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "run", stopped)
    assert main(["search", *TINY, "--config", str(out / "config.yaml"), "--out", str(out)]) == 130
    assert (out / "config.yaml").read_text() == "# mine\nseed: 3\n"
    assert not (out / "splits.json").exists()


def test_a_search_whose_first_landmark_failed_to_start_can_start_again(tmp_path, monkeypatch):
    """A bad sample stops the first landmark before its first step, leaving only its
    config.yaml in standalone/: the rerun the error advises (--skip-bad, same --out)
    was refused as a run to resume, and --resume refused the changed flag."""
    import depthnas.pipeline
    from depthnas.runs import holds_run
    out = tmp_path / "r"
    landmark = out / "standalone" / "v1_sync_c3_c3_none_c1_ap"
    landmark.mkdir(parents=True)
    (landmark / "config.yaml").write_text("seed: 0\n")
    (out / ".depthnas.lock").write_text("1\n")  # the start's, as every start leaves it
    assert not holds_run(out)
    started = []
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "run", lambda self: started.append(self.cfg.out))
    assert main(["search", *TINY, "--out", str(out)]) == 0 and started == [str(out)]
    (landmark / "metrics.jsonl").write_text("{}\n")  # once it has trained, it is a run
    assert holds_run(out)


def test_a_failed_start_does_not_block_the_retry(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *TINY, "--data", f"folder:{tmp_path / 'nope'}", "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["search", *TINY, "--data", f"folder:{tmp_path / 'nope'}", "--out", str(out)]) == 2
    assert "already holds a run" not in capsys.readouterr().err


def test_a_retry_draws_its_own_landmarks_not_the_failed_starts(tmp_path, capsys, monkeypatch):
    """A start that failed after drawing its landmarks (here: as the first landmark's
    training starts) left initial_landmarks.json, and a corrected fresh start trained
    those."""
    from depthnas import standalone_results

    def fails(*args, **kwargs):
        raise ValueError("the first landmark's training failed")
    monkeypatch.setattr(standalone_results, "train_standalone", fails)
    out, typo = tmp_path / "run", tmp_path / "landmark.json"
    out.mkdir()  # the user's folder: kept with the failed start's files (one it made goes)
    assert main(["search", *TINY, "--landmarks", str(typo), "--out", str(out)]) == 2
    assert f"landmark store {typo} does not exist yet" in capsys.readouterr().out
    first = json.loads((out / "initial_landmarks.json").read_text())
    assert main(["search", *TINY, "--seed", "5", "--out", str(out)]) == 2
    assert json.loads((out / "initial_landmarks.json").read_text()) != first


def test_runs_without_out_get_their_own_folders(monkeypatch, tmp_path):
    from depthnas.cli import build_parser
    from depthnas.run_config import build_config
    monkeypatch.chdir(tmp_path)
    cfg = build_config(build_parser().parse_args(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3"]))
    assert cfg.out.startswith("runs/train-") and len(cfg.out) == len("runs/train-20261128-093000")


def test_runs_started_in_the_same_second_get_a_folder_each(monkeypatch, tmp_path, capsys):
    """`depthnas search --seed 1 & depthnas search --seed 2 &` both chose
    runs/search-<second> and the second was refused as "in use"."""
    from depthnas import config as config_mod
    from depthnas.runs import claim_folder
    monkeypatch.chdir(tmp_path)
    first, made = claim_folder(tmp_path / "runs" / "train-20261129-184750")
    assert made == tmp_path / "runs"  # a refused start takes away the runs/ it made too
    assert claim_folder(first) == (first.with_name(first.name + "-2"),) * 2
    assert claim_folder(first) == (first.with_name(first.name + "-3"),) * 2
    monkeypatch.setattr(config_mod, "default_out", lambda command: "runs/train-20261129-184750")
    arch = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY]
    assert main(arch) == 0
    assert (tmp_path / "runs" / "train-20261129-184750-4" / "model.safetensors").is_file()
    # a start refused inside the lock (the loader finds no images) removes the folder it claimed
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main([*arch, "--data", "folder:empty"]) == 2
    assert "folder" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "train-20261129-184750-5").exists()


def test_a_refused_start_without_out_leaves_no_runs_folder(monkeypatch, tmp_path, capsys):
    """A start refused inside the lock took away the clock-named folder it had
    claimed but left the `runs/` it had made for it, empty."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--data", "folder:empty"]) == 2
    assert "empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_library_searches_given_no_folder_each_get_their_own(tmp_path, monkeypatch):
    """A search given no `out` is named by the clock. Two that a script starts in the
    same second shared that folder, and the second resumed the first; under torchrun
    each rank named a folder of its own. SearchRun itself made the folder before its
    checks were done, and so left it behind when refused: it now needs `out`."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_mod, "default_out", lambda command: f"runs/{command}-20261201-010203")
    monkeypatch.setattr(pipeline.SearchRun, "run", lambda self: {})
    cfg = lambda: config_mod.load(preset="quick")
    first, second = pipeline.run(cfg())["out"], pipeline.run(cfg())["out"]
    assert (first, second) == ("runs/search-20261201-010203", "runs/search-20261201-010203-2")
    runs = tmp_path / "runs"
    bad = config_mod.Config(space="v9")  # refused before a folder is made for it
    with pytest.raises(config_mod.ConfigError, match="v9"):
        pipeline.run(bad)
    with pytest.raises(config_mod.ConfigError, match="SearchRun needs cfg.out"):
        pipeline.SearchRun(validate(cfg()), progress=False)
    assert sorted(p.name for p in runs.iterdir()) == ["search-20261201-010203", "search-20261201-010203-2"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(config_mod.ConfigError, match="under torchrun set cfg.out"):
        pipeline.run(cfg())
    assert len(list(runs.iterdir())) == 2


def test_a_library_search_whose_model_does_not_build_is_refused_before_its_folder(tmp_path):
    """pipeline.run skipped the command's start checks: an unknown backbone failed after
    the run folder was made, and left it (a space of one's own that breaks the interface
    ran to the end, recording another model than it trained)."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"),
                                  ["model.backbone=resnet9000", f"out={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match="resnet9000"):
        pipeline.run(cfg)
    assert not (tmp_path / "run").exists()


def test_a_training_refused_for_its_data_leaves_no_folder(tmp_path, capsys):
    """It left arch.json and the lock file behind (a search: config.yaml)."""
    out = tmp_path / "wrong"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--data",
                 f"folder:{tmp_path}", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "images folder not found" in captured.err
    assert not out.exists() and "run folder" not in captured.out  # it named a folder then removed


def test_a_run_folder_is_held_while_its_lock_is_and_not_after(tmp_path):
    """What a lock file names is a guess: the file stays when a run ends, a script's or
    notebook's process lives on after pipeline.run (taken for a running run, it was
    told to wait, not to resume), and its pid may go to another process."""
    from depthnas.runs import _process_start, running_holder
    from cli_helpers import LockHolder
    lock = tmp_path / ".depthnas.lock"
    with LockHolder(tmp_path, tmp_path / "w") as run:  # no depthnas on its command line
        lock.write_text(f"{run.pid} {_process_start(run.pid)}\n")
        assert running_holder(tmp_path) == run.pid
        lock.write_text(f"{run.pid}\n")  # an older version's lock: the pid alone
        assert running_holder(tmp_path) == run.pid
        run.release()  # ended, in a process that lives on
        assert running_holder(tmp_path) is None
    with LockHolder(tmp_path, tmp_path / "w", lock=False) as other:  # given the pid since
        lock.write_text(f"{other.pid} {_process_start(other.pid)}\n")
        assert running_holder(tmp_path) is None


def test_without_the_kernel_s_lock_table_the_lock_file_s_pid_start_and_command_tell(
        tmp_path, monkeypatch):
    from depthnas import runs
    from depthnas.runs import _process_start, running_holder
    from cli_helpers import LockHolder
    monkeypatch.setattr(runs, "_holds_lock", lambda pid, lock: None)  # no /proc/locks
    lock = tmp_path / ".depthnas.lock"
    with LockHolder(tmp_path, tmp_path / "w", lock=False) as other:
        lock.write_text(f"{other.pid}\n")  # pid alone: a python of ~/depthnas/.venv is no depthnas
        assert running_holder(tmp_path) is None
        started = _process_start(other.pid)
        lock.write_text(f"{other.pid} {started}\n")  # the start time names the process
        assert running_holder(tmp_path) == other.pid
        lock.write_text(f"{other.pid} {int(started) - 1}\n")
        assert running_holder(tmp_path) is None
    with LockHolder(tmp_path, tmp_path / "w", "-m", "depthnas", lock=False) as run:
        lock.write_text(f"{run.pid}\n")
        assert running_holder(tmp_path) == run.pid


def test_a_run_lock_records_its_process_start_beside_its_pid(tmp_path):
    import os
    from depthnas.runs import _process_start, run_lock
    with run_lock(tmp_path / "run"):
        recorded = (tmp_path / "run" / ".depthnas.lock").read_text().split()
    assert recorded == [str(os.getpid()), _process_start(os.getpid())]


def test_a_run_folder_in_use_by_another_process_is_refused(run_dir, tmp_path, capsys):
    import os
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    holder = subprocess.Popen(  # as a running search holds it (POSIX locks are per process)
        [sys.executable, "-c", "import fcntl, sys\n"
         f"fh = open({str(copy / '.depthnas.lock')!r}, 'a+')\n"
         "fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "fh.truncate(0); fh.write('4242\\n'); fh.flush()\n"
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["search", "--out", str(copy), "--resume", "--no-progress"]) == 2
    finally:
        holder.communicate("")
    assert f"{copy} is in use by another depthnas process (pid 4242)" in capsys.readouterr().err
    assert main(["search", "--out", str(copy), "--resume", "--no-progress"]) == 0  # released
    assert (copy / ".depthnas.lock").read_text().split()[0] == str(os.getpid())


def test_temporary_files_a_kill_left_are_removed_when_the_folder_is_next_locked(tmp_path):
    """kill -9 mid-write left an empty mkstemp file and safetensors' own model-sized
    temporary in the folder, which no resume removed."""
    from depthnas.runs import run_lock
    out = tmp_path / "run"
    left = [out / "standalone" / "a" / ".model.safetensors.uvj8fd1r.tmp",
            out / "standalone" / "a" / ".tmpNWsRWZ", out / ".results.json.k3j_x9a1.tmp"]
    kept = [out / "standalone" / "a" / "model.safetensors", out / ".hidden_notes.tmp",
            out / "notes.tmp"]
    for p in left + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    with run_lock(out):
        assert not any(p.exists() for p in left)
    assert all(p.exists() for p in kept)


def test_a_run_folder_lock_is_not_held_by_the_processes_a_run_forked(tmp_path):
    """DataLoader workers are forked: after a kill -9 of the run they lived on for
    seconds, holding the folder's flock, and an immediate --resume was refused."""
    import os
    import signal
    import time

    from depthnas.runs import run_lock
    out = tmp_path / "run"
    with run_lock(out):
        child = os.fork()
        if child == 0:  # a worker that outlives the run
            time.sleep(30)
            os._exit(0)
    try:
        with run_lock(out):  # the run is gone: the folder is free
            pass
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_a_run_without_its_config_yaml_and_an_out_that_is_a_file_are_named(run_copy, tmp_path,
                                                                            capsys):
    """Without config.yaml, --resume said "drop --resume", and without it the folder
    "already holds a run; pass --resume": each message sent the user to the other."""
    (run_copy / "config.yaml").unlink()
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
    assert f"the run in {run_copy} has lost its config.yaml" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--out", str(afile)]) == 2
    assert capsys.readouterr().err == f"error: --out {afile} is a file; it must name the run's folder\n"


def test_a_config_yaml_naming_its_own_run_asks_for_an_out(run_dir, capsys, tmp_path, monkeypatch):
    """`--config RUN/config.yaml` (the README's SPOS comparison) got "already holds a run;
    pass --resume", and --resume then refused the change: advice in a circle."""
    monkeypatch.chdir(tmp_path)  # were the refusal lost, the runs would go here
    config = run_dir / "config.yaml"
    assert main(["search", "--config", str(config), "--no-landmarks"]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir} (out: in {config}) holds a run already; pass --out NEW_FOLDER for this " \
           f"one (or --out {run_dir} --resume to continue that run)" in err
    # training its winner: no --resume offered, a search run is not a training's to resume
    assert main(["train", "--config", str(config), "--arch", str(run_dir / "best_arch.json")]) == 2
    assert capsys.readouterr().err.endswith("pass --out NEW_FOLDER for this one\n")


def _seen_from_a_sibling_folder(run, tmp_path, monkeypatch):
    """`run`'s config.yaml as a run started with `--out NAME` from its parent folder
    records it (a relative out:), seen from a folder beside the run: the path to it."""
    config = run / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "out": run.name},
                                     sort_keys=False))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return f"../{run.name}/config.yaml"


def test_a_run_s_config_yaml_with_a_relative_out_is_its_run_from_any_folder(
        run_copy, capsys, tmp_path, monkeypatch):
    """A run started with a relative --out records it so. Reused from another folder,
    its config.yaml's `out` named a new folder there: a look-alike run was started
    (a train run under the search's name) instead of the refusal given from the first."""
    relative = _seen_from_a_sibling_folder(run_copy, tmp_path, monkeypatch)
    assert main(["train", "--config", relative, "--arch", str(run_copy / "best_arch.json")]) == 2
    assert (f"../{run_copy.name} (out: in {relative}) holds a run already; pass --out NEW_FOLDER "
            "for this one") in capsys.readouterr().err
    assert not (tmp_path / "elsewhere" / run_copy.name).exists()
    # an out: edited to name another folder is where the user wants the new run
    config = run_copy / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "out": "winner-longer"},
                                     sort_keys=False))
    args = build_parser().parse_args(["train", "--config", relative, "--arch",
                                      str(run_copy / "best_arch.json")])
    assert build_config(args).out == "winner-longer"


def test_a_refused_start_removes_the_folder_it_made_and_a_stopped_one_keeps_it(tmp_path):
    """A start stopped by Ctrl-C or SIGTERM before its first checkpoint printed its resume
    command, and the folder it names had been removed with the refused starts'. A
    refused start takes away what it made: its folder and the parents it made, or in an
    empty folder of the user's, its files."""
    from depthnas.stopping import Terminated
    from depthnas.runs import run_lock
    for stop in (KeyboardInterrupt, Terminated):
        out = tmp_path / stop.__name__
        with pytest.raises(stop):
            with run_lock(out):
                (out / "config.yaml").write_text("seed: 0\n")
                raise stop()
        assert (out / "config.yaml").is_file()
    refused = tmp_path / "refused"
    with pytest.raises(ValueError):
        with run_lock(refused):
            (refused / "config.yaml").write_text("seed: 0\n")
            raise ValueError("data not found")
    assert not refused.exists()
    # an empty folder the user made stays, without what the start wrote (left, a later
    # --resume there retried the refused settings); one holding a file of theirs, whole
    kept = tmp_path / "user"
    kept.mkdir()
    with pytest.raises(ValueError):
        with run_lock(kept):
            (kept / "config.yaml").write_text("seed: 0\n")
            raise ValueError("data not found")
    assert kept.is_dir() and list(kept.iterdir()) == []
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(ValueError):
        with run_lock(kept):
            (kept / "config.yaml").write_text("seed: 0\n")
            raise ValueError("data not found")
    assert (kept / "config.yaml").is_file() and (kept / "notes.txt").is_file()
    nested = tmp_path / "out" / "one"  # the parents it made go too
    with pytest.raises(ValueError):
        with run_lock(nested):
            raise ValueError("data not found")
    assert not (tmp_path / "out").exists()


def test_outputs_written_into_a_checkpoint_folder_are_said_to_go_with_it(tmp_path, capsys):
    """An export beside a checkpoint's model (the default) was removed with the
    checkpoint by the training's next epochs, without a word."""
    from fixtures_models import make_model_file
    out = tmp_path / "t"
    epoch = out / "checkpoints" / "epoch_0001"  # as a training mid-way holds it
    epoch.mkdir(parents=True)
    make_model_file(epoch / "model.safetensors")
    (epoch / "model.onnx").write_text("a file of the user's")
    assert main(["export", "--checkpoint", str(epoch / "model.safetensors"), "--exporter", "legacy"]) == 2
    said = capsys.readouterr()  # refused: no note on where a file that is not written would go
    assert "exists and is not a depthnas export" in said.err and "note:" not in said.out
    (epoch / "model.onnx").unlink()
    assert main(["export", "--checkpoint", str(epoch / "model.safetensors"), "--exporter", "legacy"]) == 0
    said = capsys.readouterr()
    assert (f"note: {epoch / 'model.onnx'} lies in a checkpoint folder, which its training removes "
            "as it goes on") in said.out
    from depthnas.checkpoint import in_checkpoint
    assert not in_checkpoint(tmp_path / "kept.onnx") and not in_checkpoint(out / "model.onnx")
    assert not in_checkpoint(tmp_path / "epoch_0001" / "model.onnx")  # a folder of one's own
    assert not in_checkpoint(tmp_path / "checkpoints" / "epoch_best" / "model.onnx")
    assert not in_checkpoint(epoch / ".." / ".." / "eval.json")  # the run folder, by `..`


def test_a_finished_search_without_its_model_is_not_called_stopped(tmp_path):
    """A finished search (results.json) whose best/model.safetensors is gone (a truth
    table's best, or deleted) did not stop half-way: --resume would not make the model."""
    from depthnas.model_files import resolve_model_file
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as err:
        resolve_model_file(run)
    assert "holds no model.safetensors (nor best/model.safetensors)" in str(err.value)
    assert "--resume" not in str(err.value)


def test_under_torchrun_out_is_asked_for_first_and_a_given_out_is_taken(tmp_path, monkeypatch, capsys):
    """The --out refusal comes before the model checks (each rank would otherwise
    report those first, then claim a folder of its own); with --out the run goes on
    to them."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.chdir(tmp_path)
    unknown = ["--set", "model.backbone=resnet_nope"]
    for argv in (["search", "--preset", "quick", *unknown],
                 ["train", "--preset", "quick", *unknown, "--arch", "v1-sync:c1,c3,skip,skip,ap"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "under torchrun pass --out" in err and "resnet_nope" not in err
        assert main(argv + ["--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert "unknown timm backbone 'resnet_nope'" in err and "under torchrun" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_run_s_config_yaml_reused_with_a_new_out_is_no_refusal(run_copy, tmp_path, monkeypatch):
    """The README's SPOS comparison (--config RUN/config.yaml --out NEW) and `--set out=`
    name a folder of their own: only a run's config.yaml given no other folder is refused.
    A config.yaml beside a run that does not set `out`, or one setting it outside any run,
    names no run."""
    relative = _seen_from_a_sibling_folder(run_copy, tmp_path, monkeypatch)

    def out_of(*argv):
        return build_config(build_parser().parse_args(["search", "--config", *argv]), check=False).out
    # new folders, one of the run's own name
    for new in (tmp_path / "spos", tmp_path / "other" / run_copy.name):
        assert out_of(relative, "--out", str(new)) == str(new)
        assert out_of(relative, "--set", f"out={new}") == str(new)
    beside = run_copy / "tweak.yaml"  # the user's own file, kept in the run folder, no `out`
    beside.write_text("seed: 3\n")
    assert out_of(str(beside)) != str(run_copy)
    mine = tmp_path / "exp1" / "config.yaml"  # `out` names its folder, where no run is
    mine.parent.mkdir()
    mine.write_text("out: exp1\n")
    assert out_of(str(mine)).endswith("exp1")


def test_a_search_s_config_yaml_with_a_relative_out_offers_its_resume_from_any_folder(
        run_copy, capsys, tmp_path, monkeypatch):
    """From another folder, the hint names the run where it is (../RUN), as given."""
    relative = _seen_from_a_sibling_folder(run_copy, tmp_path, monkeypatch)
    assert main(["search", "--config", relative, "--no-landmarks"]) == 2
    assert (f"../{run_copy.name} (out: in {relative}) holds a run already; pass --out NEW_FOLDER "
            f"for this one (or --out ../{run_copy.name} --resume to continue that run)"
            ) in capsys.readouterr().err
    assert not (tmp_path / "elsewhere" / run_copy.name).exists()


def test_an_out_of_the_home_folder_written_with_a_tilde_is_made_there(tmp_path, monkeypatch, capsys):
    """`out: ~/runs/t` in a YAML file (or --out='~/x', which the shell leaves as typed)
    made a folder named "~" in the working folder, while every other path setting's ~
    was expanded; `rm -rf ~` is one slip from it."""
    from depthnas.cli import main
    from cli_helpers import TRAIN_TINY
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    (work / "t.yaml").write_text("out: ~/runs/t\n")
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", "--config", "t.yaml", *TRAIN_TINY]) == 0
    assert (home / "runs" / "t" / "model.safetensors").is_file() and not (work / "~").exists()


@pytest.mark.parametrize("how", ["--out", "--set"])
def test_a_run_folder_path_that_cannot_be_made_is_one_line_and_makes_nothing(tmp_path, monkeypatch,
                                                                            capsys, how):
    """`--set out=FILE` said "[Errno 17] File exists", a path below a file "[Errno 20]
    Not a directory", and a folder name over 255 bytes four chained tracebacks that
    left the folders above it."""
    from depthnas.cli import main
    from cli_helpers import TRAIN_TINY
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    long = "a" * 300
    for out, said in (("afile", "afile is a file; it must name the run's folder"),
                      ("afile/sub", "afile/sub: afile is a file, not a folder"),
                      (f"runs/{long}", "a folder name of 300 bytes; file systems allow at most 255"),
                      # a Latin-1 name (argv's bytes as Python reads them): its first step failed
                      (os.fsdecode(b"runs/caf\xe9"), "not UTF-8 text")):
        given = ["--out", out] if how == "--out" else ["--set", f"out={out}"]
        assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, *given]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_run_in_a_folder_one_may_not_write_in_resumes_and_a_tilde_out_is_home(
        run_copy, tmp_path, monkeypatch):
    """Write permission was asked of the run folder's parent even when the folder was
    there already, so a run kept in a read-only parent could not resume; and
    --out='~/x' --resume (quoted: the shell leaves the ~) looked for a folder named "~".
    (Simulated: root, who runs the tests here, may write anywhere.)"""
    import os
    from pathlib import Path
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != tmp_path and real_access(p, mode, **k))
    args = build_parser().parse_args(["search", "--out", str(run_copy), "--resume"])
    assert Path(build_config(args).out) == run_copy
    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["search", "--out", "~/run", "--resume"])
    assert Path(build_config(args).out) == run_copy
