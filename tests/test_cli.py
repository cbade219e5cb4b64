"""End to end through the command line, at a tiny size."""
import datetime
import json
import pathlib
import random
import subprocess
import sys
import types

import pytest
import torch
import yaml

from depthnas.cli import build_parser, main
from depthnas.run_config import build_config
from depthnas.config_checks import validate

TINY = ["--preset", "quick", "--image-size", "64", "--no-progress",
        "--set", "data.synthetic_samples=40", "--set", "supernet.steps_per_epoch=2",
        "--set", "standalone.steps_per_epoch=2", "--epochs", "1", "--standalone-epochs", "1",
        "--num-landmarks", "3", "--iterations", "2", "--top-k", "1",
        "--set", "search.rank_samples=2", "--set", "search.population=4",
        "--set", "search.generations=2", "--set", "search.parents=2",
        "--set", "search.mutations=1", "--set", "search.crossovers=1",
        "--set", "search.calib_batches=1", "--set", "search.val_batches=1"]


# `depthnas train` with the same stand-alone recipe as TINY's search
TRAIN_TINY = ["--preset", "quick", "--image-size", "64", "--no-progress",
              "--set", "data.synthetic_samples=40", "--set", "standalone.steps_per_epoch=2",
              "--epochs", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(run_dir, tmp_path):
    """A copy of run_dir for a test that resumes it: run_dir stays as its search left
    it, whichever tests ran before."""
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def train_killed_after(epochs, argv, monkeypatch):
    """`depthnas train argv`, Ctrl-C'd once `epochs` epochs are checkpointed; its exit code."""
    from depthnas.trainer import Trainer
    fit = Trainer.fit

    def killed(self, *a, **k):
        fit(self, until_epoch=epochs)
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "fit", killed)
    try:
        return main(argv)
    finally:
        monkeypatch.undo()


def run_with_closed_stdout(args):
    """`python -m depthnas args` writing into a pipe whose reader is already gone."""
    import os
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "depthnas", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)

def test_search_writes_the_promised_files(run_dir, capsys):
    for name in ("best_arch.json", "config.yaml", "metrics.jsonl", "results.json", "report.md",
                 "ranking.png", "training.png", "lambda.png", "splits.json", "landmarks.json",
                 "best/model.safetensors"):
        assert (run_dir / name).is_file(), name
    best = json.loads((run_dir / "best_arch.json").read_text())
    assert best["space"] == "v1-sync" and best["string"].startswith("v1-sync:")
    results = json.loads((run_dir / "results.json").read_text())
    roles = [a["role"] for a in results["architectures"]]
    # 3 landmarks, top-1 after each of 2 iterations, 2 ranking samples
    assert roles.count("landmark") == 3 and roles.count("rank") == 2
    assert {"top-1", "top-2"} <= set(roles)
    # the first iteration's top-1 joined the landmarks; the last one did not
    by_role = {a["role"]: a for a in results["architectures"]}
    assert by_role["top-1"]["landmark"] and not by_role["top-2"]["landmark"]
    # Kendall tau on the random sample alone, as in the paper: neither the landmarks nor
    # the super-net's own top-K picks, so SPOS and SPOS + landmarks rank the same set
    assert results["ranking"]["n"] == 2
    # the answer is the best stand-alone loss among the search's candidates (not the
    # ranking samples, which only measure the super-net)
    found = [a for a in results["architectures"] if a["role"] != "rank"]
    winner = min(found, key=lambda a: a["val_loss"])
    assert best["string"] == winner["arch"] and best["val_loss"] == winner["val_loss"]
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["landmarks"]["num"] == 3 and cfg["data"]["image_size"] == [64, 64]
    store = json.loads((run_dir / "landmarks.json").read_text())["entries"]
    assert len(store) == 7 and all({"recipe", "date", "val_loss"} <= set(e) for e in store)
    # lambda.png draws the schedule of every step, not a line between logged points:
    # cosine-increasing from 0, reaching lambda_max at the last step
    lam = results["lambda_schedule"]
    steps = [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if r.get("phase") == "supernet" and "step" in r]
    assert lam["schedule"] == "cosine-increasing" and lam["steps"][0] == 1
    assert lam["lambda"][0] == 0.0 and lam["lambda"][-1] == lam["lambda_max"] == cfg["landmarks"]["lambda_max"]
    assert lam["steps"][-1] == max(steps)


def test_best_arch_json_holds_the_best_s_own_scores(run_dir):
    best = json.loads((run_dir / "best_arch.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    [entry] = [a for a in results["architectures"] if a["arch"] == best["string"]]
    assert best["val_loss"] == entry["val_loss"] and best["params"] == entry["params"]
    assert best["supernet_score"] == entry["supernet_score"] == results["best"]["supernet_score"]


def test_the_landmark_warm_up_counts_the_epochs_of_every_iteration(tmp_path, monkeypatch):
    """landmarks.warmup_epochs is in epochs of the whole super-net training (iterations
    x epochs): 1 of TINY's 2 here, so lambda is 0 over the first half of the steps and
    reaches lambda_max at the last. Counted in one iteration's epochs, the warm-up
    would stretch T-fold, or fill the run."""
    from depthnas import pipeline
    built = []

    class Stop(Exception):
        pass
    init = pipeline.Trainer.__init__

    def spy(self, *a, **k):
        init(self, *a, **k)
        if k.get("name") == "supernet":  # built, with its regularizer: enough
            built.append(self)
            raise Stop
    monkeypatch.setattr(pipeline.Trainer, "__init__", spy)
    with pytest.raises(Stop):
        main(["search", *TINY, "--set", "landmarks.warmup_epochs=1", "--out", str(tmp_path / "run")])
    [trainer] = built
    n = trainer.total_steps
    lam = [trainer.regularizer.lam(step, n) for step in range(n)]
    assert n == 2 * 2 and lam[:2] == [0.0, 0.0] and 0 < lam[2] < lam[3] == 10.0


def test_ranking_samples_are_never_models_trained_already():
    """A ranking sample that builds a landmark's or a pick's model would be relabelled
    `rank` and put into the Kendall tau set, which the paper keeps them out of."""
    from depthnas.config import Config
    from depthnas.pipeline import SearchRun
    from depthnas.runtime import seeded_rng
    from depthnas.spaces import get_space
    run = SearchRun.__new__(SearchRun)  # only what _rank_samples reads
    run.cfg, run.space = Config(), get_space("v1-sync")
    run.cfg.search.rank_samples = 3
    rng = seeded_rng(run.cfg.seed, "rank sample")
    first = [run.space.sample(rng) for _ in range(6)]  # the draws the sample starts with
    run.results = types.SimpleNamespace(records={a: {"role": "landmark"} for a in first},
                                        trained_here=lambda arch: False)
    picked = run._rank_samples()
    taken = {run.space.function_key(a) for a in first}
    assert len(picked) == 3 and not taken & {run.space.function_key(a) for a in picked}


def test_existing_run_needs_resume(run_dir, capsys):
    assert main(["search", *TINY, "--out", str(run_dir)]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


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
    monkeypatch.setattr(depthnas.pipeline, "run", lambda cfg, **k: started.append(cfg.out))
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

    def stopped(cfg, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.pipeline, "run", stopped)
    assert main(["search", *TINY, "--config", str(out / "config.yaml"), "--out", str(out)]) == 130
    assert (out / "config.yaml").read_text() == "# mine\nseed: 3\n"
    assert not (out / "splits.json").exists()


def test_a_start_stopped_before_its_config_is_not_resumed_with_a_failed_start_s(tmp_path,
                                                                               monkeypatch, capsys):
    """A start killed after writing config.yaml, then a new start there stopped early:
    "continue with: ... --resume" would have resumed with the first start's seed."""
    import depthnas.pipeline
    out = tmp_path / "r"
    out.mkdir()
    (out / ".depthnas.lock").write_text("1\n")
    (out / "config.yaml").write_text("seed: 0\n")  # the killed start's

    def stopped(cfg, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.pipeline, "run", stopped)
    assert main(["search", *TINY, "--seed", "7", "--out", str(out)]) == 130
    assert ("interrupted; nothing was kept yet: run the same command again, without --resume"
            in capsys.readouterr().err)
    assert not (out / "config.yaml").exists()


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
    monkeypatch.setattr(depthnas.pipeline, "run", lambda cfg, **k: started.append(cfg.out))
    assert main(["search", *TINY, "--out", str(out)]) == 0 and started == [str(out)]
    (landmark / "metrics.jsonl").write_text("{}\n")  # once it has trained, it is a run
    assert holds_run(out)


def test_resume_refuses_settings_that_differ_from_the_saved_config(run_copy, capsys):
    """--resume continues with the run's config.yaml: a flag that changes what it
    computes is an error naming the field, not a silent switch mid-run."""
    assert main(["search", *TINY, "--out", str(run_copy), "--resume", "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert "seed: saved 0, given 7" in err and "another --out" in err
    # the saved settings are used without repeating them; device may change
    assert main(["search", "--out", str(run_copy), "--resume", "--device", "cpu", "--no-progress"]) == 0


def test_resume_with_skip_bad_says_how_to_start_over_with_it(run_copy, tmp_path, capsys):
    """A bad sample's error advises --skip-bad, which redraws the splits: a resume
    cannot take it, but a start that trained nothing can simply start over."""
    assert main(["search", "--out", str(run_copy), "--resume", "--skip-bad"]) == 2
    err = capsys.readouterr().err
    assert "data.skip_bad: saved False, given True" in err
    assert "so it is set when a run starts: start a new run with it in another --out" in err
    failed = tmp_path / "failed"  # a start that stopped at its first bad sample
    failed.mkdir()
    (failed / "config.yaml").write_text((run_copy / "config.yaml").read_text())
    assert main(["search", "--out", str(failed), "--resume", "--skip-bad"]) == 2
    assert (f"nothing has trained in {failed} yet, so run the first command again there with "
            "--skip-bad and without --resume") in capsys.readouterr().err


def test_resume_refuses_an_out_that_names_another_folder(run_copy, tmp_path, capsys):
    """`--set out=OTHER` after --out started a whole new run in OTHER, and said nothing."""
    other = tmp_path / "other"
    assert main(["search", "--out", str(run_copy), "--resume", "--set", f"out={other}"]) == 2
    assert f"--resume continues the run in --out {run_copy}, but out={other} names another " \
           "folder" in capsys.readouterr().err
    assert not other.exists()


def test_resume_checks_a_config_file_as_it_checks_flags(run_copy, tmp_path, capsys):
    """--config was ignored under --resume (one info line), so a file asking for other
    epochs, or not even valid, resumed as if it agreed."""
    other = tmp_path / "other.yaml"
    other.write_text("supernet:\n  epochs: 5\n")
    assert main(["search", "--config", str(other), "--out", str(run_copy), "--resume"]) == 2
    assert "supernet.epochs: saved 1, given 5" in capsys.readouterr().err
    other.write_text("search:\n  generations: three\n")
    assert main(["search", "--config", str(other), "--out", str(run_copy), "--resume"]) == 2
    assert "generations" in capsys.readouterr().err
    # a value from the preset is named as such: the user typed no epochs
    assert main(["search", "--preset", "paper", "--out", str(run_copy), "--resume"]) == 2
    assert "supernet.epochs: saved 1, given 100 (by --preset paper)" in capsys.readouterr().err
    # a preset may change between versions (the quick one stopped clipping the super-net's
    # gradients): the first command, repeated, then says how to continue as saved
    saved = run_copy / "config.yaml"
    text = saved.read_text()
    saved.write_text(text.replace("  grad_clip: 0.0\n", "  grad_clip: 1.0\n", 1))
    assert main(["search", *TINY, "--out", str(run_copy), "--resume"]) == 2
    assert ("supernet.grad_clip: saved 1.0, given 0.0 (by --preset quick). Drop them to continue "
            "(--preset quick's values may differ from those of the depthnas that started this run: "
            f"`depthnas search --out {run_copy} --resume` continues it as saved)") in capsys.readouterr().err
    saved.write_text(text)
    # a whole section given with --set is checked field by field
    assert main(["search", "--set", "supernet={epochs: 99}", "--out", str(run_copy), "--resume"]) == 2
    assert "supernet.epochs: saved 1, given 99. Drop" in capsys.readouterr().err
    # the run's own config.yaml, passed back, agrees with itself
    assert main(["search", "--config", str(run_copy / "config.yaml"), "--out", str(run_copy),
                 "--resume", "--no-progress"]) == 0


@pytest.mark.parametrize(("flags", "message"), [
    (["--backbone", "resnet9000"], "unknown timm backbone 'resnet9000'"),
    (["--backbone-weights", "nope.safetensors"], "/nope.safetensors: no such file"),
])
def test_a_bad_backbone_is_refused_before_the_run_folder_is_written(tmp_path, capsys, flags, message):
    """Both surfaced when the first landmark began training, and left a config.yaml
    behind that --resume could never continue."""
    for command in (["search"], ["train", "--arch", "v1-sync:c3,skip,none,c1,ap"]):
        out = tmp_path / command[0]
        assert main([*command, *TINY[:4], *flags, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


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


def test_bad_choices_fail_before_any_training(tmp_path, capsys):
    argv = ["search", *TINY, "--schedule", "cosine", "--set", "search.method=genetic",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "landmarks.schedule='cosine'" in err and "search.method='genetic'" in err
    assert main(["search", *TINY, "--no-landmarks", "--top-k", "0", "--out", str(tmp_path / "r3")]) == 2
    assert "search.top_k=0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["search", *TINY, "--device", "gpu", "--out", str(tmp_path / "r2")]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err


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


def test_train_epochs_flag_sets_the_stand_alone_epochs(capsys):
    from depthnas.cli import build_parser
    from depthnas.run_config import build_config
    args = build_parser().parse_args(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--preset", "quick",
                                      "--epochs", "1", "--out", "x"])
    assert build_config(args).standalone.epochs == 1
    with pytest.raises(SystemExit) as exit_:  # search-only flags are not train's
        build_parser().parse_args(["train", "--arch", "a", "--num-landmarks", "3"])
    assert exit_.value.code == 2 and "--num-landmarks" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["predict", "--model", "m.onnx", "--input", "photos", "--out", ""],
    ["predict", "--model", "m.onnx", "--input", " ", "--out", "depth"],
    ["export", "--checkpoint", ""], ["evaluate", "--checkpoint", ""],
    ["rank", "--run", "", "--truth", "t.json"], ["demo", "--model", ""], ["search", "--config", ""]])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(argv, tmp_path, monkeypatch, capsys):
    """`--out "$OUT"` with OUT unset: predict wrote into the folder it ran in, and an
    empty --input predicted every image there."""
    from depthnas.cli import build_parser
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    flag = argv[[a.strip() for a in argv].index("") - 1]
    assert exit_.value.code == 2
    assert f"argument {flag}: empty path" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_interrupt_says_how_to_resume(monkeypatch, tmp_path, capsys):
    """Once the run has kept its config.yaml, --resume; before, there is nothing to
    resume (`--resume` said "nothing to resume"), so the command is run again."""
    import depthnas.pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "_run", interrupted)  # after its start
    assert main(["search", *TINY, "--out", str(tmp_path / "r")]) == 130
    assert f"continue with: depthnas search --out {tmp_path / 'r'} --resume" in capsys.readouterr().err
    monkeypatch.setattr(depthnas.pipeline, "run", interrupted)  # before
    assert main(["search", *TINY, "--out", str(tmp_path / "s")]) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted; nothing was kept yet: run the same command again, without --resume\n")


def test_resuming_a_finished_run_retrains_nothing(run_copy, capsys):
    before = json.loads((run_copy / "results.json").read_text())["elapsed_s"]
    logged = [(r["phase"], r.get("iteration"), r.get("step"))
              for r in map(json.loads, (run_copy / "metrics.jsonl").read_text().splitlines())]
    assert main(["search", *TINY, "--out", str(run_copy), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "training stand-alone" not in out and "best architecture" in out
    # the wall time goes on from the earlier sessions' (it was reset to the resume's)
    assert json.loads((run_copy / "results.json").read_text())["elapsed_s"] >= before > 0
    # one record per search and one result, however often the run was resumed
    records = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["phase"] == "search"] == [1, 2]
    assert sum(r["phase"] == "result" for r in records) == 1
    # each where it was: iteration 1's search among the epochs it followed, not moved last
    assert [(r["phase"], r.get("iteration"), r.get("step")) for r in records] == logged


def test_a_batch_too_large_for_the_ranks_is_refused_before_the_landmarks_train(
        tmp_path, monkeypatch):
    """Each rank needs a batch of the training split. The super-net checked so only once
    it was built, after every landmark had trained; a resume may not lower the batch."""
    from depthnas import config as config_mod
    from depthnas import distributed, pipeline
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        "data.synthetic_samples=40", "data.batch_size=16", f"out={tmp_path / 'r'}"])
    said = []
    run = pipeline.SearchRun(validate(cfg), progress=False, say=said.append)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)  # 28 training samples < 2 x 16
    with pytest.raises(ValueError, match="fewer than the batch size 16 times 2 ranks"):
        run.run()
    assert not any("training stand-alone" in m for m in said)


def test_library_searches_given_no_folder_each_get_their_own(tmp_path, monkeypatch):
    """A search given no `out` is named by the clock. Two that a script starts in the
    same second shared that folder, and the second resumed the first; under torchrun
    each rank named a folder of its own."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_mod, "default_out", lambda command: f"runs/{command}-20261201-010203")
    cfg = lambda: validate(config_mod.load(preset="quick"))
    first, second = pipeline.SearchRun(cfg(), progress=False), pipeline.SearchRun(cfg(), progress=False)
    assert (str(first.out), str(second.out)) == ("runs/search-20261201-010203",
                                                 "runs/search-20261201-010203-2")
    assert first.out.is_dir() and second.out.is_dir()
    bad = config_mod.Config(space="v9")  # refused before a folder is made for it
    with pytest.raises(ValueError, match="v9"):
        pipeline.SearchRun(bad, progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [first.out.name, second.out.name]
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(config_mod.ConfigError, match="under torchrun set cfg.out"):
        pipeline.SearchRun(cfg(), progress=False)


def test_a_search_with_a_truth_table_keeps_its_values_out_of_the_landmark_store(
        run_dir, tmp_path, capsys):
    """search.truth_table stands in for stand-alone training. Its values were written to
    the landmark store as results of the run's own recipe, so a later run sharing the
    store (--landmarks) reused them as trained, whatever set-up made the table."""
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    truth = {a["arch"]: a["val_loss"] + 1.0 for a in results}  # recognisably the table's
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    store = tmp_path / "store.json"
    assert main(["search", *TINY, "--out", str(tmp_path / "run"), "--landmarks", str(store),
                 "--set", f"search.truth_table={tmp_path / 'truth.json'}"]) == 0
    out = capsys.readouterr().out
    assert "training stand-alone" not in out  # the same run: all looked up, and said so
    assert "from the truth table [landmark] " in out and "training the top" not in out
    looked_up = json.loads((tmp_path / "run" / "results.json").read_text())["architectures"]
    assert {a["arch"]: a["val_loss"] for a in looked_up} == truth
    assert {a.get("source") for a in looked_up} == {"truth table"}
    assert "not trained in this run" in (tmp_path / "run" / "report.md").read_text()
    assert not store.exists() or json.loads(store.read_text())["entries"] == []


def test_a_truth_table_row_stands_in_for_every_string_of_its_model(tmp_path):
    """A row written under another string of the same model (3<-2 none: node 2's
    edges never run) is looked up, not trained again."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    table = tmp_path / "truth.json"
    table.write_text(json.dumps({"v1-sync:c3,c3,ap,c1,none": 0.123}))
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", f"search.truth_table={table}", "data.synthetic_samples=40"])
    said: list[str] = []
    run = pipeline.SearchRun(validate(cfg), progress=False, say=said.append)
    run._prepare()
    twin = run.space.from_string("v1-sync:skip,c1,ap,c1,none")
    assert run.results([twin], "landmark") == [0.123]
    assert said[-1] == ("  from the truth table [landmark] v1-sync:skip,c1,ap,c1,none: 0.12300 "
                        "(row v1-sync:c3,c3,ap,c1,none: the same model)")
    # a string with a row of its own gets its own (the committed small table has twin
    # rows of different losses, trained before idle ops were left out of a model)
    table.write_text(json.dumps({"v1-sync:c3,c3,ap,c1,none": 0.123, "v1-sync:skip,c1,ap,c1,none": 0.2}))
    run = pipeline.SearchRun(validate(cfg), progress=False, say=said.append)
    run._prepare()
    assert run.results([twin, run.space.from_string("v1-sync:c3,c3,ap,c1,none")], "x") == [0.2, 0.123]


def test_a_truth_table_s_rows_of_other_spaces_or_none_readable_are_said(tmp_path, caplog):
    """A table with no row of the run's space stood in for nothing: every architecture
    was trained, for hours, without a word about the table."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    table = tmp_path / "truth.json"
    table.write_text(json.dumps({nb201: 0.1}))
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", f"search.truth_table={table}"])
    with caplog.at_level("WARNING"):
        assert pipeline.SearchRun(validate(cfg), progress=False).results.truth == {}
    assert ("0 row(s) of space v1-sync stand in for training: none, so every architecture is "
            "trained; left out: 1 of other spaces") in caplog.text
    caplog.clear()
    table.write_text(json.dumps({nb201: 0.1, "v1-sync:c3,c3,c3,c3,c9": 0.2,
                                 "v1-sync:c3,c3,c3,c3,c1": 0.3}))
    with caplog.at_level("WARNING"):
        run = pipeline.SearchRun(validate(cfg), progress=False)
    assert run.results.truth == {"v1-sync:c3,c3,c3,c3,c1": 0.3}
    assert ("1 row(s) of space v1-sync stand in for training; left out: 1 of other spaces, "
            "1 no space reads (e.g. 'v1-sync:c3,c3,c3,c3,c9'") in caplog.text


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # scores all alike
def test_a_model_that_ignores_its_input_is_not_the_best_found(tmp_path, monkeypatch):
    """A short super-net training scored dead cells (one output for every image, near
    a constant prediction's loss but outside the 0.1% that marks one) above the live
    paths; the search picked them, and one that scored best stand-alone, where every
    model learned nothing, was reported as the architecture found."""
    import itertools

    from depthnas import pipeline
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    monkeypatch.setattr(pipeline.PathEvaluator, "constant_level", lambda self: 0.2)
    monkeypatch.setattr(pipeline.PathEvaluator, "score",
                        lambda self, a: 0.19 if space.ignores_input(a) else 0.25)
    table = {}
    for genes in itertools.product(range(5), repeat=5):
        a = space.make(genes)
        table[space.to_string(a)] = 0.1 if space.ignores_input(a) else 0.2 + sum(genes) / 1000
    (tmp_path / "truth.json").write_text(json.dumps(table))
    assert main(["search", *TINY, "--out", str(tmp_path / "run"), "--set", "search.top_k=3",
                 "--set", "search.method=random", "--set", "search.random_candidates=400",
                 "--set", f"search.truth_table={tmp_path / 'truth.json'}"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    best = json.loads((tmp_path / "run" / "best_arch.json").read_text())
    assert not space.ignores_input(space.parse(best["string"])) and best["val_loss"] >= 0.2
    picks = [a for a in results["architectures"] if a["role"].startswith("top")]
    assert picks and not any(space.ignores_input(space.parse(a["arch"])) for a in picks)


def test_a_landmark_run_names_its_best_searched_pick_beside_a_landmark_winner(
        run_dir, tmp_path, capsys):
    """Algorithm 1 outputs the best of the searched picks; a landmark run's best may be
    a landmark, a candidate plain SPOS never has. The pick is what compares with SPOS."""
    import itertools

    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    table = {space.to_string(space.make(g)): 0.2 + sum(g) / 1000
             for g in itertools.product(range(5), repeat=5)}
    landmarks = json.loads((run_dir / "initial_landmarks.json").read_text())  # seed 0's draw
    table.update({s: 0.05 for s in landmarks})
    (tmp_path / "truth.json").write_text(json.dumps(table))
    assert main(["search", *TINY, "--out", str(tmp_path / "run"),
                 "--set", f"search.truth_table={tmp_path / 'truth.json'}"]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["best"]["found_in"] == "landmark" and results["best"]["val_loss"] == 0.05
    picks = [a for a in results["architectures"] if a["role"].startswith("top")]
    pick = min(picks, key=lambda a: (a.get("ignores_input", False), a["val_loss"]))
    assert results["best_searched"] == {"string": pick["arch"], "val_loss": pick["val_loss"],
                                        "role": pick["role"]}
    assert f"best searched pick: {pick['arch']}  stand-alone validation SSI loss" in out
    assert f"- best searched pick: `{pick['arch']}` ({pick['role']}" in \
        (tmp_path / "run" / "report.md").read_text()


def test_rank_against_a_truth_table(run_copy, tmp_path, capsys):
    results = json.loads((run_copy / "results.json").read_text())["architectures"]
    truth = {a["arch"]: a["val_loss"] for a in results}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    assert main(["rank", "--run", str(run_copy), "--truth", str(tmp_path / "truth.json"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "kendall_tau" in out and "landmarks_excluded   4" in out
    assert "search_picks_excluded 1" in out
    report = json.loads((run_copy / "rank.json").read_text())
    # the search's own ranking: landmarks and the search's picks left out of both
    ranked = json.loads((run_copy / "results.json").read_text())["ranking"]
    assert report["n"] == ranked["n"] == 2
    assert report["kendall_tau"] == pytest.approx(ranked["kendall_tau"], nan_ok=True)
    # truth first, super-net scores second: S-KdT bins the truth, with 1% of its range
    from depthnas.rank_correlation import ranking_report
    used = [truth[a] for a in report["scores"]]
    expected = ranking_report(used, list(report["scores"].values()))
    for k in ("kendall_tau", "sparse_kendall_tau", "spearman_rho", "top_percentile", "sparse_threshold"):
        assert report[k] == pytest.approx(expected[k], nan_ok=True), k
    assert report["sparse_threshold"] == pytest.approx((max(used) - min(used)) / 100)
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    for seed, value in ((11, 0.3), (12, 0.4)):  # two more, for a sample of them to be a subset
        truth[space.to_string(space.sample(random.Random(seed)))] = value
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    assert main(["rank", "--run", str(run_copy), "--truth", str(tmp_path / "truth.json"),
                 "--no-progress"]) == 0
    report = json.loads((run_copy / "rank.json").read_text())
    assert report["n"] == 4
    assert main(["rank", "--run", str(run_copy), "--truth", str(tmp_path / "truth.json"),
                 "--limit", "2", "--threshold", "0.05", "--no-progress"]) == 0
    sample = json.loads((run_copy / "rank.json").read_text())
    assert sample["n"] == 2 and set(sample["scores"]) < set(report["scores"])
    assert sample["sparse_threshold"] == 0.05


def test_rank_warns_when_the_table_was_trained_with_another_model(run_copy, tmp_path, caplog):
    """A benchmark table records its recipe; ranking a run of another model or image
    size against it compared different things without a word."""
    results = json.loads((run_copy / "results.json").read_text())["architectures"]
    cfg = yaml.safe_load((run_copy / "config.yaml").read_text())
    recipe = {"backbone": cfg["model"]["backbone"], "features": cfg["model"]["features"],
              "data": {"spec": "synthetic", "image_size": cfg["data"]["image_size"]}}
    table = {"config": {"recipe": recipe},
             "architectures": {a["arch"]: {"mean": a["val_loss"]} for a in results}}
    path = tmp_path / "table.json"
    for features, warned in ((cfg["model"]["features"], False), (16, True)):
        recipe["features"] = features
        path.write_text(json.dumps(table))
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["rank", "--run", str(run_copy), "--truth", str(path), "--no-progress"]) == 0
        assert ("was trained with model.features=16; this run has model.features=32" in caplog.text) == warned
    recipe["features"] = cfg["model"]["features"]
    for samples, warned in ((cfg["data"]["synthetic_samples"], False), (1024, True)):  # other scenes
        recipe["data"]["synthetic_samples"] = samples
        path.write_text(json.dumps(table))
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["rank", "--run", str(run_copy), "--truth", str(path), "--no-progress"]) == 0
        assert ("was trained with data.synthetic_samples=1024" in caplog.text) == warned
    # other shapes of "config" are no setup to compare, not a traceback
    for config in (None, "x", {"recipe": {"data": "synthetic", "features": 16}}):
        path.write_text(json.dumps({**table, "config": config}))
        assert main(["rank", "--run", str(run_copy), "--truth", str(path), "--no-progress"]) == 0


def _rank_warnings(run, truth_path, caplog):
    """`depthnas rank`'s warnings that the table was trained with another set-up."""
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["rank", "--run", str(run), "--truth", str(truth_path), "--no-progress"]) == 0
    return [r.getMessage() for r in caplog.records if "was trained with" in r.getMessage()]


def _unranked_archs():
    from depthnas.spaces import get_space
    space = get_space("v1-sync")  # not the run's landmarks or picks: rankable rows
    return [space.to_string(space.sample(random.Random(seed))) for seed in (21, 22, 23)]


@pytest.mark.parametrize(("features", "said"), [
    ((32, 32, 32), None),
    ((16, 16, 16), "model.features=16; this run has model.features=32"),
    ((8, 16, 16), "model.features=8 / 16; this run has model.features=32"),
])
def test_rank_warns_when_a_landmark_store_was_trained_with_another_model(
        run_copy, tmp_path, caplog, features, said):
    """A landmark store records each entry's recipe; only a benchmark table's recipe was
    compared, so ranking against a store of another model said nothing."""
    own = json.loads((run_copy / "landmarks.json").read_text())["entries"][0]["recipe"]
    assert own["features"] == 32
    store = tmp_path / "store.json"
    store.write_text(json.dumps({"entries": [
        {"arch": a, "space": "v1-sync", "val_loss": 0.1 * (i + 1), "recipe": {**own, "features": f}}
        for i, (a, f) in enumerate(zip(_unranked_archs(), features))]}))
    warned = _rank_warnings(run_copy, store, caplog)
    assert (warned == []) if said is None else (len(warned) == 1 and said in warned[0]), warned


def test_rank_warns_when_another_run_s_results_were_trained_with_another_model(
        run_copy, tmp_path, caplog):
    """A run's results.json has its config.yaml beside it, which says the model."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"architectures": [
        {"arch": a, "val_loss": 0.1 * (i + 1)} for i, a in enumerate(_unranked_archs())]}))
    cfg = yaml.safe_load((run_copy / "config.yaml").read_text())
    for features, warned in ((cfg["model"]["features"], False), (16, True)):
        cfg["model"]["features"] = features
        (other / "config.yaml").write_text(yaml.safe_dump(cfg))
        assert bool(_rank_warnings(run_copy, other / "results.json", caplog)) == warned
    (other / "config.yaml").unlink()  # none beside it: nothing to compare, no error
    assert _rank_warnings(run_copy, other / "results.json", caplog) == []


def test_rank_says_what_it_left_out(run_dir, tmp_path, capsys):
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    truth = {a["arch"]: a["val_loss"] for a in results if a["landmark"] or a["role"] == "top-2"}
    truth["v1-sync:c3,c3,c3,c3,c9"] = 0.3        # a typo: not silently "another space"
    truth["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"] = 0.2
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    assert main(["rank", "--run", str(run_dir), "--truth", str(tmp_path / "truth.json"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert ("0 usable; 4 are the run's landmarks, 1 its search's picks (or build one of "
            "their models), 1 belong to other spaces, 1 could not be read") in err


def test_rank_leaves_out_a_landmark_s_twin(run_copy, tmp_path, capsys):
    """A table entry that builds a landmark's model under another string is that
    landmark's own path in the super-net: left out with it."""
    path = run_copy / "results.json"
    results = json.loads(path.read_text())
    next(a for a in results["architectures"] if a["landmark"])["arch"] = "v1-sync:c3,c3,ap,c1,none"
    path.write_text(json.dumps(results))
    truth = {"v1-sync:skip,c1,ap,c1,none": 0.1, "v1-sync:c3,skip,ap,c1,c3": 0.2}  # 3<-2 none: a twin
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    assert main(["rank", "--run", str(run_copy), "--truth", str(tmp_path / "truth.json"),
                 "--no-progress"]) == 2
    assert "(1 usable; 1 are the run's landmarks, 0 its search's picks" in capsys.readouterr().err


def test_train_one_architecture(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["arch"] == "v1-sync:c3,skip,none,c1,ap" and result["val_loss"] > 0
    assert 0 <= result["inverted"] <= 100  # % of validation images with near and far swapped
    assert (out / "model.safetensors").is_file()
    assert "validation SSI loss" in capsys.readouterr().out
    splits = json.loads((out / "splits.json").read_text())
    assert splits["skipped"] == [] and len(splits["train"]) + len(splits["val"]) + len(splits["reg"]) == 40
    # a search must not resume here: it trained landmarks into the folder, then failed
    # with advice to delete it, model and all
    before = sorted(p.name for p in out.iterdir())
    assert main(["search", *TINY, "--out", str(out), "--resume"]) == 2
    assert "is a `depthnas train` run, not a search run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_train_refuses_a_search_folder(run_dir, capsys):
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(run_dir),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "is a `depthnas search` run, not a train run" in err
    assert f"depthnas search --out {run_dir} --resume" in err


def test_train_warns_when_the_model_is_no_better_than_a_constant(tmp_path, capsys):
    out = tmp_path / "frozen"
    frozen = ["--set", "standalone.lr=0", "--set", "standalone.backbone_lr=0"]
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, *frozen,
                 "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["val_loss"] >= 0.99 * result["constant_prediction_loss"] > 0
    err = capsys.readouterr().err
    assert "learned (almost) nothing" in err and "(--backbone-weights FILE)" in err
    # a training that had pretrained weights is not told to use some
    from depthnas.cli import _warn_if_no_better_than_constant
    _warn_if_no_better_than_constant(result, pretrained=True)
    err = capsys.readouterr().err
    assert "learned (almost) nothing" in err and "--backbone-weights" not in err


def test_bad_architecture_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,conv9", *TRAIN_TINY,
                 "--out", str(tmp_path / "x")]) == 2
    assert "unknown edge op 'conv9'" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [
    ('{"space": "v1-sync", "string": "v1-sync:c3,c3,c3,c3,c3",}', "bad.json: not valid JSON"),
    ('[1, 2]', "bad.json holds a JSON list; an architecture file holds a JSON object"),
    ('{"space": "v1-sync", "blocks": [{"edges": {}}]}', "bad.json: v1-sync"),
    # a run's config.yaml: its "space: v1-sync" line was read as a string of space 'space'
    ('space: v1-sync\nseed: 0\n', "bad.json holds 2 lines: an architecture file is a best_arch.json"),
])
def test_a_bad_architecture_file_is_named(tmp_path, capsys, content, message):
    """The errors quoted the JSON parser or the space, not the file; a list was read
    as an architecture string lacking its space prefix."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["train", "--arch", str(bad), *TRAIN_TINY, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err


def test_an_unknown_space_in_an_architecture_string_is_named(tmp_path, capsys):
    """It said "for space 'v9', not 'v1-sync'", v1-sync being only the preset's default."""
    assert main(["train", "--arch", "v9:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--out", str(tmp_path / "x")]) == 2
    assert "names space 'v9', which does not exist (spaces: v1-sync" in capsys.readouterr().err


def test_spaces_lists_exact_sizes(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for size in ("3,125", "95,367,431,640,625", "12,500", "24,414,062,500,000,000"):
        assert size in out


def test_train_reproduces_a_landmarks_standalone_loss(run_dir, tmp_path, capsys):
    """Stand-alone scores come from the same code as `depthnas train`: training a
    landmark again with the same recipe and seed gives the search's number."""
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    landmark = next(a for a in results if a["role"] == "landmark")
    out = tmp_path / "again"
    assert main(["train", "--arch", landmark["arch"], *TRAIN_TINY, "--out", str(out)]) == 0
    again = json.loads((out / "result.json").read_text())
    assert again["val_loss"] == pytest.approx(landmark["val_loss"], rel=1e-6)


def test_retraining_a_folder_with_another_recipe_starts_over(tmp_path, caplog):
    """A folder trained with more epochs must not report its old model under a new
    recipe (the CLI refuses such a --resume; the library must not rely on that)."""
    from depthnas.cli import build_parser
    from depthnas.run_config import build_config
    from depthnas.data import load_splits
    from depthnas.spaces import get_space
    from depthnas.standalone import train_standalone
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,skip,none,c1,ap")

    def train(out, epochs):
        cfg = build_config(build_parser().parse_args(
            ["train", "--arch", "x", *TRAIN_TINY, "--epochs", str(epochs), "--out", str(out)]))
        return train_standalone(cfg, space, arch, load_splits(cfg), out, progress=False)
    reused, fresh = tmp_path / "reused", tmp_path / "fresh"
    train(reused, 2)
    got, want = train(reused, 1), train(fresh, 1)
    assert got["recipe"]["epochs"] == 1 and got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-6)
    assert not (reused / "checkpoints").exists()  # a finished training keeps its result and model
    # the old training's log went with its checkpoints: each epoch is recorded once
    from test_trainer import epochs_trained
    assert epochs_trained(reused) == [1]

    # A retrain under other settings stopped after its first epoch resumes from its
    # own checkpoint: the old result.json beside it made every resume start over.
    from depthnas.trainer import Trainer
    save, saves = Trainer.save, []

    def stopped_after_epoch_1(self):
        path = save(self)
        saves.append(path)
        if self.state.epoch == 1:
            raise KeyboardInterrupt
        return path
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "save", stopped_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            train(reused, 3)
    assert json.loads((reused / "result.json").read_text())["recipe"]["epochs"] == 1  # the old one
    caplog.clear()
    with caplog.at_level("INFO"):
        assert train(reused, 3)["recipe"]["epochs"] == 3
    assert "resuming after epoch 1" in caplog.text and "from scratch" not in caplog.text
    assert epochs_trained(reused) == [1, 2, 3]  # resumed at epoch 2, not started over


def test_the_summary_takes_the_last_search_s_scores_and_scores_only_the_rest(run_copy, monkeypatch):
    """Every trained architecture was scored again at the end, the last search's picks
    included: the same value (same weights, same batches) at minutes per path on a GPU."""
    from depthnas.scoring import PathEvaluator
    from depthnas.spaces import get_space
    scored = []
    real = PathEvaluator.score
    monkeypatch.setattr(PathEvaluator, "score", lambda self, a: scored.append(a) or real(self, a))
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 0
    searched = {a: s for a, s in json.loads((run_copy / "search_2.json").read_text())["scores"]}
    results = json.loads((run_copy / "results.json").read_text())["architectures"]
    assert any(r["arch"] in searched for r in results)  # the top-K picks, at least
    for r in results:
        if r["arch"] in searched:
            assert r["supernet_score"] == searched[r["arch"]]
    space = get_space("v1-sync")
    assert sorted(space.to_string(a) for a in scored) == sorted(
        r["arch"] for r in results if r["arch"] not in searched)


def test_resume_finds_the_run_however_out_is_spelled(run_copy, monkeypatch, capsys):
    monkeypatch.chdir(run_copy.parent)
    assert main(["search", "--out", f"{run_copy.name}/", "--resume", "--no-progress"]) == 0
    assert main(["search", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_train_resume_refuses_another_architecture(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    assert main(["train", "--arch", "v1-sync:c1,c1,c1,c1,c1", *TRAIN_TINY, "--out", str(out),
                 "--resume"]) == 2
    assert "holds a training of v1-sync:c3,skip,none,c1,ap" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text())["arch"] == "v1-sync:c3,skip,none,c1,ap"


def test_the_best_architecture_keeps_the_parameter_budget(run_dir, tmp_path, monkeypatch):
    """Landmarks are drawn without the budget; one over it may not be the result. With
    a latency budget too (one every model keeps), each candidate's measured latency is
    recorded: it was not, so a result near the budget could not be checked."""
    import zlib

    from depthnas import latency

    def fake_latency(space, arch, cfg, device):  # 1 to 2 ms; timing itself is tested apart
        return 1 + zlib.crc32(space.to_string(arch).encode()) % 1000 / 1000
    monkeypatch.setattr(latency, "measure_latency", fake_latency)
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    sizes = sorted(a["params"] for a in results if a["role"] == "landmark")  # drawn, not picked
    budget = sizes[len(sizes) // 2]
    out = tmp_path / "budget"
    assert main(["search", *TINY, "--max-params", str(budget), "--set", "search.max_latency_ms=1e6",
                 "--out", str(out)]) == 0
    best = json.loads((out / "best_arch.json").read_text())
    assert best["params"] <= budget and 0 < best["latency_ms"] < 1e6
    # the landmarks over it say so (results.json, and the report's table)
    archs = json.loads((out / "results.json").read_text())["architectures"]
    landmarks = [a for a in archs if a["role"] == "landmark"]
    assert all(a.get("over_budget", False) == (a["params"] > budget) for a in landmarks)
    assert any(a["params"] > budget for a in landmarks)
    report = (out / "report.md").read_text()
    assert "(over budget) | landmark |" in report and "| latency (ms) |" in report
    # timed: every candidate (the landmarks too); the ranking samples are none
    assert all((a["role"] == "rank") == ("latency_ms" not in a) for a in archs)
    # each training's share of validation images upside down reaches results.json, where
    # the report reads it (it stayed in standalone/*/result.json)
    assert all(0 <= a["inverted"] <= 100 for a in archs)


def test_a_parameter_budget_no_architecture_meets_is_refused_before_training(tmp_path, capsys):
    """It used to fail only when the search started, after the landmarks and the
    super-net had trained, and --resume may not change the budget."""
    out = tmp_path / "tight"
    assert main(["search", *TINY, "--max-params", "1000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "search.max_params=1,000: no v1-sync architecture fits" in err
    assert "v1-sync:none,none,none,none,none" in err  # the backbone and head alone
    assert not out.exists()  # nothing written, not even the lock's folder: a retry starts clean


def test_resuming_a_start_that_failed_on_missing_data_says_to_start_again(tmp_path, capsys, monkeypatch):
    """A start refused for its data, killed before it removed its config.yaml; with the
    data gone since, --resume said the data was "not there any more" and to link its old
    path: it never was read."""
    from depthnas import runs
    out, data = tmp_path / "r", tmp_path / "nowhere"
    data.mkdir()  # there, but without images/: refused by the loader, once the run has begun
    assert main(["search", *TINY, "--data", f"folder:{data}", "--out", str(out)]) == 2
    assert not out.exists()  # a folder it made for a start that wrote nothing of value: gone
    out.mkdir()  # an empty folder of the user's stays, without what the start wrote
    assert main(["search", *TINY, "--data", f"folder:{data}", "--out", str(out)]) == 2
    assert out.is_dir() and list(out.iterdir()) == []
    with monkeypatch.context() as killed:  # before its clean-up ran
        killed.setattr(runs, "_remove_failed_start", lambda *a: None)
        assert main(["search", *TINY, "--data", f"folder:{data}", "--out", str(out)]) == 2
    assert (out / "config.yaml").is_file()
    data.rmdir()
    capsys.readouterr()
    assert main(["search", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"nothing has run in {out} yet" in err and "without --resume" in err
    assert "link" not in err


def test_a_training_refused_for_its_data_leaves_no_folder(tmp_path, capsys):
    """It left arch.json and the lock file behind (a search: config.yaml)."""
    out = tmp_path / "wrong"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--data",
                 f"folder:{tmp_path}", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "images folder not found" in captured.err
    assert not out.exists() and "run folder" not in captured.out  # it named a folder then removed


def test_more_new_candidates_than_the_population_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no --out: were the refusal lost, runs/ would go here
    assert main(["search", *TINY, "--set", "search.mutations=4"]) == 2
    assert "exceed search.population=4" in capsys.readouterr().err


def test_evaluate_a_run_on_its_own_validation_split(run_copy, capsys):
    """Without --data, evaluate takes the run's data, seed and fractions: its val split
    is the run's (6 of 40 synthetic scenes), not a re-split that mixes in training data."""
    splits = json.loads((run_copy / "splits.json").read_text())
    assert main(["evaluate", "--checkpoint", str(run_copy), "--split", "val", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"on {len(splits['val'])} sample(s) of synthetic [val]" in out
    assert (run_copy / "eval-val.json").is_file()


def test_train_resume_takes_the_architecture_from_its_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--epochs", "2",
            "--out", str(out)]
    assert train_killed_after(1, argv, monkeypatch) == 130
    hint = capsys.readouterr().err.strip().splitlines()[-1]
    command = hint.split("continue with: depthnas ", 1)[1].split()
    assert main(command + ["--no-progress"]) == 0  # exactly what it said
    assert json.loads((out / "result.json").read_text())["arch"] == "v1-sync:c3,skip,none,c1,ap"
    from test_trainer import epochs_trained
    assert epochs_trained(out) == [1, 2]  # continued with epoch 2, did not start over
    capsys.readouterr()
    assert main(command + ["--no-progress"]) == 0  # finished: its result, said as such
    said = capsys.readouterr().out
    assert "finished its training in" in said and "training v1-sync" not in said


def test_backbone_weights_of_another_model_are_refused_before_a_run_folder_is_named(tmp_path,
                                                                                   capsys):
    """It printed "training ... run folder X", then failed, and removed X."""
    import torch
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"decoder.conv.weight": torch.ones(4, 4, 3, 3)}, str(other))
    out = tmp_path / "t"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--backbone-weights", str(other), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "none of the" in captured.err and "are in it" in captured.err
    assert "run folder" not in captured.out and not out.exists()


def test_a_full_disk_mid_training_is_one_line_and_the_way_to_go_on(tmp_path, capsys, monkeypatch):
    import errno
    from depthnas import checkpoint
    calls = []

    def second_save_fails(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_file(tensors, path, metadata=metadata)
    from safetensors.torch import save_file
    monkeypatch.setattr(checkpoint, "save_file", second_save_fails)
    out = tmp_path / "t"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--epochs", "2",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: cannot write " in err and "(No space left on device)" in err
    assert f"the work done so far is kept; once the file can be written, continue with: " \
           f"depthnas train --out {out} --resume" in err
    assert "Traceback" not in err


def test_a_training_stopped_in_its_first_epoch_resumes_as_its_hint_says(tmp_path, capsys,
                                                                        monkeypatch):
    """Stopped before its first checkpoint, a training used to say `--resume`, which
    then asked for --arch: nothing in the folder named the architecture. Its arch.json
    does now; the steps it logged before the stop are logged once, not twice."""
    from depthnas.trainer import Trainer
    step, calls = Trainer.train_step, []

    def stopped_at_step_3(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return step(self, *a, **k)
    monkeypatch.setattr(Trainer, "train_step", stopped_at_step_3)
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out),
            "--set", "standalone.steps_per_epoch=3", "--set", "standalone.log_every=1"]
    assert main(argv) == 130
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    logged = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2]
    monkeypatch.undo()
    hint = capsys.readouterr().err.strip().splitlines()[-1]
    command = hint.split("continue with: depthnas ", 1)[1].split()
    assert main(command + ["--no-progress"]) == 0  # exactly what it said
    assert json.loads((out / "result.json").read_text())["arch"] == "v1-sync:c3,skip,none,c1,ap"
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if "loss" in r]  # the per-step records (an epoch's summary repeats its last step)
    assert steps == [1, 2, 3]


def test_a_resumed_training_s_time_counts_every_session(tmp_path, monkeypatch):
    """train_time_s (in result.json, and through it the landmark store) counted only the
    last session: a training stopped after 1 of 2 epochs recorded half its time."""
    from depthnas.trainer import Trainer
    save = Trainer.save

    def stopped_after_epoch_1(self):
        save(self)
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "save", stopped_after_epoch_1)
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--epochs", "2",
            "--out", str(out)]
    assert main(argv) == 130
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
    epochs = [r["epoch_time_s"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if "epoch_time_s" in r]
    assert len(epochs) == 2
    assert json.loads((out / "result.json").read_text())["train_time_s"] == pytest.approx(
        sum(epochs), abs=0.05)


def test_a_stopped_search_keeps_the_time_it_spent(tmp_path, monkeypatch):
    """The run's wall time was kept only at stage ends: what a stop cut short was lost
    (the report of a run stopped 15 times said 18 s). Here the super-net's first step
    moves the run's clock on 1000 s, and is stopped."""
    import time
    from types import SimpleNamespace

    import depthnas.run_clock as run_clock
    from depthnas.trainer import Trainer
    skipped = [0.0]
    monkeypatch.setattr(run_clock, "time", SimpleNamespace(time=lambda: time.time() + skipped[0]))
    step = Trainer.train_step

    def long_then_stopped(self, batch, arch):
        if self.name != "supernet":
            return step(self, batch, arch)
        skipped[0] += 1000.0
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "train_step", long_then_stopped)
    out = tmp_path / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 130
    assert json.loads((out / "elapsed.json").read_text())["elapsed_s"] >= 1000


def test_a_training_resumed_under_an_edited_config_is_refused_not_restarted(tmp_path, capsys,
                                                                            monkeypatch):
    """--resume refuses flags that change the recipe, so an edited config.yaml is how
    one gets changed: the checkpoints were then deleted and training began again."""
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--epochs", "2",
            "--out", str(out)]
    assert train_killed_after(1, argv, monkeypatch) == 130
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["standalone"]["lr"] == 0.003
    saved["standalone"]["lr"] = 0.001
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "lr: saved 0.003, now 0.001" in err and "Restore config.yaml" in err
    from test_trainer import epochs_trained
    assert epochs_trained(out) == [1]  # the epoch trained is still there


def test_a_resume_after_the_data_moved_says_to_link_the_old_path(tmp_path, capsys):
    """The data path is part of the run's recipe (stand-alone results are reused only
    under it), so --data NEW is refused under --resume; the refusal said only "drop
    the flag", which a user whose data is gone from the old path cannot do."""
    from test_datasets import make_folder
    old = make_folder(tmp_path / "data", n=12)
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--batch-size", "4",
            "--out", str(out)]
    assert main([*argv, "--data", f"folder:{old}"]) == 0
    new = old.rename(tmp_path / "moved here")  # the command, pasted, must run as it reads
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--data", f"folder:{new}"]) == 2
    err = capsys.readouterr().err
    assert (f"If {old} moved to {new}, link the old path to it (ln -s '{new.resolve()}' {old})"
            in err)
    # without the flag: said before the run starts, not as the loader's "folder not found"
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert f"the run's data.spec folder:{old} (from {out / 'config.yaml'}) is not there" in captured.err
    assert "ln -s NEW OLD" in captured.err and "training" not in captured.out
    old.symlink_to(new)  # as it says: the run resumes, its recipe unchanged
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    # another kind of data set is not a move: no such advice
    assert main(["train", "--out", str(out), "--resume", "--data", f"redweb:{new}"]) == 2
    assert "link the old path" not in capsys.readouterr().err


def test_a_relative_data_path_names_the_same_data_from_any_folder(tmp_path, monkeypatch, capsys):
    """config.yaml kept --data as typed: a resume from another folder found no data,
    and `evaluate --split val` given the same data by its absolute path re-split it
    with seed 0, scoring samples the run had trained on as "val"."""
    from test_datasets import make_folder
    make_folder(tmp_path / "data", n=12)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--batch-size", "4",
            "--seed", "3", "--out", "t"]
    assert main([*argv, "--data", "folder:data/"]) == 0
    saved = yaml.safe_load((tmp_path / "t" / "config.yaml").read_text())
    assert saved["data"]["spec"] == f"folder:{tmp_path / 'data'}"
    # the first command repeated with --resume names the same data, however spelled
    assert main([*argv, "--data", "Folder:./data", "--resume"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["train", "--out", "../t", "--resume", "--no-progress"]) == 0
    for data in ([], ["--data", f"folder:{tmp_path / 'data'}"]):
        assert main(["evaluate", "--checkpoint", str(tmp_path / "t"), "--split", "val", *data,
                     "--no-progress"]) == 0
        assert "split val as the run made it (seed 3" in capsys.readouterr().out
    # a run from before, its path recorded as typed: resumed elsewhere, it says where from
    saved = yaml.safe_load((tmp_path / "t" / "config.yaml").read_text())
    saved["data"]["spec"] = "folder:data/"
    (tmp_path / "t" / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert main(["train", "--out", "../t", "--resume", "--no-progress"]) == 2
    assert "data/ is relative to the folder the run was started in; resume from that folder" \
        in capsys.readouterr().err


def test_a_bad_sample_met_mid_search_says_the_work_is_kept(tmp_path, capsys):
    """The regularizer's split is first read after every landmark has trained: a
    corrupt image there stopped the search with the file's name alone, though a
    resume, once it is fixed, keeps those trainings."""
    from pathlib import Path

    from depthnas import config as config_mod
    from depthnas.data import load_splits
    from test_datasets import make_folder
    data = make_folder(tmp_path / "data", n=24)
    argv = ["search", *TINY, "--data", f"folder:{data}", "--batch-size", "4", "--out",
            str(tmp_path / "s")]
    cfg = config_mod.apply_dotted(config_mod.load(None, "quick"),
                                  [("data.spec", f"folder:{data}"), ("seed", 0)])
    bad = Path(load_splits(cfg).reg.refs[0].image)
    photo = bad.read_bytes()
    bad.write_bytes(photo[:40])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert bad.name in err and "the work done so far is kept; once the data is fixed, " \
        f"continue with: depthnas search --out {tmp_path / 's'} --resume" in err
    bad.write_bytes(photo)
    assert main(["search", "--out", str(tmp_path / "s"), "--resume", "--no-progress"]) == 0
    assert "training stand-alone [landmark]" not in capsys.readouterr().out  # kept, not retrained


def test_resuming_a_finished_training_restores_its_lost_model_file(tmp_path, caplog, monkeypatch):
    """result.json was taken as the training's whole output: a deleted or cut
    model.safetensors was reported as written, and only export found it missing. A
    finished training keeps no checkpoints (at the paper's size they took some 75 GB
    over a search), so the model is trained again; one stopped as it saved, with its
    last checkpoint still there, is saved again from it."""
    from depthnas.checkpoint import read_metadata
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]
    assert main(argv) == 0
    assert not (out / "checkpoints").exists() and (out / "model.safetensors").is_file()
    first = json.loads((out / "result.json").read_text())
    model = out / "model.safetensors"
    for damage in (model.unlink, lambda: model.write_bytes(model.read_bytes()[:1000])):
        damage()
        caplog.clear()
        assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
        assert "holds no readable model.safetensors; training it again" in caplog.text
        assert read_metadata(model)["arch"] == "v1-sync:c3,skip,none,c1,ap"
        again = json.loads((out / "result.json").read_text())
        assert again["val_loss"] == pytest.approx(first["val_loss"], rel=1e-6)  # the same training
    # checkpoints kept (as by a stop between the last one and their removal): re-saved
    monkeypatch.setattr("depthnas.checkpoint.Checkpointer.clear", lambda self: None)
    model.unlink()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    monkeypatch.undo()
    model.unlink()
    caplog.clear()
    before = json.loads((out / "result.json").read_text())
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "saving it again from the last checkpoint" in caplog.text
    again = json.loads((out / "result.json").read_text())
    # re-saved, not trained: the training's time and date stay those of its session
    assert (again["train_time_s"], again["date"]) == (before["train_time_s"], before["date"])


def test_a_bad_sample_read_in_a_loader_worker_is_named_in_one_line(tmp_path, capsys):
    """With data.num_workers > 0 the worker's error came wrapped in its traceback."""
    from test_datasets import make_folder
    root = make_folder(tmp_path / "f", n=12)
    for image in (root / "images").iterdir():  # whichever the worker reads first
        image.write_bytes(b"definitely not a jpeg")
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--data", f"folder:{root}", "--batch-size", "2", "--set", "data.val_fraction=0.1",
                 "--set", "data.reg_fraction=0", "--set", "data.num_workers=1",
                 "--set", "standalone.steps_per_epoch=5", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "error: cannot read image" in err and ".jpg" in err
    assert "Traceback" not in err and "worker" not in err


def test_exporting_a_stopped_training_says_to_finish_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--epochs", "2",
            "--out", str(out)]
    assert train_killed_after(1, argv, monkeypatch) == 130
    capsys.readouterr()
    for command in (["export", "--run", str(out), "--out", str(tmp_path / "m.onnx")],
                    ["evaluate", "--checkpoint", str(out), "--split", "val"]):
        assert main(command) == 2
        assert f"its training stopped before the end; finish it with `depthnas train --out {out} " \
               "--resume`" in capsys.readouterr().err
    # a training still running in another process is not told to resume (its folder is
    # held: the advice failed with "in use by another depthnas process")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "depthnas"])
    try:
        (out / ".depthnas.lock").write_text(f"{other.pid}\n")
        for command in (["export", "--run", str(out), "--out", str(tmp_path / "m.onnx")],
                        ["evaluate", "--checkpoint", str(out), "--split", "val"]):
            assert main(command) == 2
            assert (f"{out} holds no model yet: its training is still running (depthnas process "
                    f"{other.pid}), and writes its model when it ends") in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    assert main(["evaluate", "--checkpoint", str(out)]) == 2  # ended: stopped, as before
    assert "its training stopped before the end" in capsys.readouterr().err


def test_a_lock_naming_a_pid_another_program_took_since_is_no_running_run(tmp_path):
    from depthnas.runs import _process_start, running_holder
    lock = tmp_path / ".depthnas.lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{other.pid}\n")
        assert running_holder(tmp_path) is None
    finally:
        other.kill()
        other.wait()
    # another depthnas given the pid since: told apart by its start time, which the lock
    # records beside the pid
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "depthnas"])
    try:
        started = _process_start(other.pid)
        assert started is not None
        lock.write_text(f"{other.pid} {started}\n")
        assert running_holder(tmp_path) == other.pid
        lock.write_text(f"{other.pid} {int(started) - 1}\n")
        assert running_holder(tmp_path) is None
    finally:
        other.kill()
        other.wait()


def test_a_run_lock_records_its_process_start_beside_its_pid(tmp_path):
    import os
    from depthnas.runs import _process_start, run_lock
    with run_lock(tmp_path / "run"):
        recorded = (tmp_path / "run" / ".depthnas.lock").read_text().split()
    assert recorded == [str(os.getpid()), _process_start(os.getpid())]


def test_the_signal_handlers_are_restored_when_a_run_ends():
    """`main` called from a script or notebook: its Ctrl-C is its own again afterwards."""
    import signal
    from depthnas.stopping import stop_on_signals
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals([]):
        assert {s: signal.getsignal(s) for s in before} != before
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("code, ignored", [(130, True), (143, True), (0, False), (2, False)])
def test_the_command_ignores_a_second_ctrl_c_once_a_stopped_run_is_ending(monkeypatch, code, ignored):
    """A second Ctrl-C after "interrupted; continue with ..." landed in torch's exit hooks
    as "Exception ignored in atexit callback ... KeyboardInterrupt"."""
    import signal
    import depthnas.cli
    monkeypatch.setattr(depthnas.cli, "main", lambda: code)
    before = signal.getsignal(signal.SIGINT)
    try:
        # as from a terminal (a background job, such as a script's test run, starts with
        # Ctrl-C ignored already)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with pytest.raises(SystemExit) as ended:
            depthnas.cli.console()
        assert ended.value.code == code
        assert (signal.getsignal(signal.SIGINT) == signal.SIG_IGN) == ignored
    finally:
        signal.signal(signal.SIGINT, before)


def _stop_signals_as_from_a_terminal() -> None:
    """A test session started by a script's background job inherits SIGINT ignored,
    and a run keeps an ignored Ctrl-C ignored (by design): stop signals as a terminal
    leaves them."""
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_terminated_training_says_how_to_resume(tmp_path, signame):
    """SIGTERM is how a scheduler, `timeout` or `docker stop` ends a run: it used to
    die without the hint (and without removing half-written files). `timeout` signals
    the whole process group, loader workers too, whose deaths printed a traceback;
    and the run folder may be the default one, named only once the run starts. A
    terminal's Ctrl-C signals the group too (SIGINT), with the same tracebacks."""
    import os
    import signal
    import time
    sig = getattr(signal, signame)
    proc = subprocess.Popen(
        [sys.executable, "-m", "depthnas", "train", "--arch", "v1-sync:c3,skip,none,c1,ap",
         *TRAIN_TINY, "--epochs", "200", "--set", "data.num_workers=2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=dict(os.environ, HF_HUB_OFFLINE="1"), start_new_session=True,
        preexec_fn=_stop_signals_as_from_a_terminal)
    try:
        deadline = time.time() + 240  # a readiness wait on a busy machine, not a timing
        while (not list(tmp_path.glob("runs/*/checkpoints/epoch_*")) and time.time() < deadline
               and proc.poll() is None):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]  # still training: stop it
        os.killpg(proc.pid, sig)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == {"SIGTERM": 143, "SIGINT": 130}[signame], err
    [out] = tmp_path.glob("runs/train-*")
    said = {"SIGTERM": "terminated (SIGTERM)", "SIGINT": "interrupted"}[signame]
    assert f"{said}; continue with: depthnas train --out runs/{out.name} --resume" in err
    assert "Traceback" not in err and "killed by signal" not in err, err
    # no half-written file (atomic writes: NAME.tmp..., checkpoints: .epoch_NNNN.xxxx)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.startswith(".epoch_")]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_swallowed_where_it_landed_still_stops_the_run(signame):
    """The group's SIGTERM or Ctrl-C can land in code that cannot raise (a fork hook, a
    __del__), where the stop was swallowed, and torch's SIGCHLD handler then raised the
    loader workers' deaths over it: the run ended in a traceback, or went on training."""
    import os
    import signal
    import time

    from depthnas.stopping import Terminated, stop_on_signals
    sig = getattr(signal, signame)

    class Landing:
        def __del__(self):
            os.kill(os.getpid(), sig)

    signalled: list[int] = []
    child = signal.getsignal(signal.SIGCHLD)
    # as from a terminal (a background job's session inherits SIGINT ignored, and an
    # ignored signal stays ignored)
    before = signal.signal(sig, signal.default_int_handler if signame == "SIGINT" else signal.SIG_DFL)
    try:
        with pytest.raises(KeyboardInterrupt) as stop, stop_on_signals(signalled):
            Landing()  # its __del__ runs at once, and swallows the stop it raises
            for _ in range(100):
                time.sleep(0.05)
    finally:
        signal.signal(sig, before)
    assert isinstance(stop.value, Terminated) == (signame == "SIGTERM")
    assert signalled == [sig, sig]
    after = signal.getsignal(signal.SIGCHLD)  # no worker's death raised over it
    assert callable(after) and after(signal.SIGCHLD, None) is None
    # a run that ends without a signal leaves the SIGCHLD handler torch installed during it
    def torch_s(signum, frame):
        pass
    with stop_on_signals([]):
        signal.signal(signal.SIGCHLD, torch_s)
    assert signal.getsignal(signal.SIGCHLD) is torch_s
    signal.signal(signal.SIGCHLD, child)


def test_a_diverged_training_is_an_error_line_not_a_traceback(tmp_path, capsys):
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--set", "standalone.lr=1e30", "--set", "standalone.backbone_lr=1e30",
                 "--epochs", "2", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "error: standalone: non-finite" in err and "in a new --out" in err


def test_a_stopped_torchrun_job_says_once_how_to_relaunch_it(monkeypatch, tmp_path):
    """Every rank printed the hint, and it left out torchrun: followed to the letter,
    an 8-GPU search resumed in one process."""
    from depthnas.cli import build_parser
    from depthnas.exits import stopped_message
    from depthnas.stopping import Terminated
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "config.yaml").write_text("seed: 0\n")  # a run that kept its start
    args = build_parser().parse_args(["search", "--out", "runs/x"])
    assert stopped_message(args, KeyboardInterrupt()) == \
        "\ninterrupted; continue with: depthnas search --out runs/x --resume"
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert stopped_message(args, Terminated()) is None
    monkeypatch.setenv("RANK", "0")
    assert stopped_message(args, Terminated()) == (
        "\nterminated (SIGTERM); continue with: torchrun --nproc_per_node 4 -m depthnas search "
        "--out runs/x --resume (any number of processes resumes it)")


def test_a_resume_command_for_a_folder_with_a_space_in_its_name_pastes_whole(monkeypatch, tmp_path):
    """`--out sp ace/run 1 --resume`, pasted, named three folders."""
    import shlex
    from depthnas.cli import build_parser
    from depthnas.exits import stopped_message
    from depthnas.runs import check_kind
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sp ace" / "run 1"
    out.mkdir(parents=True)
    (out / "config.yaml").write_text("seed: 0\n")
    args = build_parser().parse_args(["search", "--out", str(out)])
    command = stopped_message(args, KeyboardInterrupt()).split("continue with: ", 1)[1]
    assert shlex.split(command) == ["depthnas", "search", "--out", str(out), "--resume"]
    (out / "results.json").write_text("{}")
    with pytest.raises(Exception, match="continue it with `depthnas search --out (.*)`") as refused:
        check_kind(out, "train", resume=True)
    said = str(refused.value).split("continue it with `", 1)[1].split("`")[0]
    assert shlex.split(said) == ["depthnas", "search", "--out", str(out), "--resume"]


def test_a_rank_that_loses_its_peers_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    """When one rank fails, the others' collectives break: each printed a 35-line gloo
    traceback after the failing rank's clear error. Rank 0 then says how to go on,
    as after a Ctrl-C."""
    import depthnas.cli

    def peer_gone(args):
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection "
                           "closed by peer [127.0.0.1]:29500\nException raised from ...")
    monkeypatch.setattr(depthnas.cli, "cmd_search", peer_gone)
    with pytest.raises(RuntimeError):  # one process: not a lost peer, a bug to show whole
        main(["search", "--out", "x"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--out", "x"]) == 2
    lost, hint = capsys.readouterr().err.strip().splitlines()
    assert lost.startswith("error: rank 0: the ranks lost contact ([../third_party/gloo") and \
        "Connection closed by peer" in lost
    assert hint == "nothing was kept yet: run the same command again, without --resume"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.yaml").write_text("seed: 0\n")  # a run that has started
    assert main(["search", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[1] == (
        "continue with: torchrun --nproc_per_node 2 -m depthnas search --out x --resume "
        "(any number of processes resumes it)")
    monkeypatch.setenv("RANK", "1")  # one hint, from rank 0
    assert main(["search", "--out", "x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_paths_are_calibrated_on_training_batches_and_scored_on_validation_ones(
        run_dir, tmp_path, monkeypatch):
    """BN statistics come from the training split (SPOS), the score from the validation
    split, in the search and in `rank` alike: calibrating on validation batches would
    let the score see its own data."""
    from depthnas.scoring import PathEvaluator
    seen = []

    class Stop(Exception):
        pass
    init = PathEvaluator.__init__

    def spy(self, model, task, calib_set, val_set, *a, **k):
        seen.append((list(calib_set.ids()), list(val_set.ids())))
        init(self, model, task, calib_set, val_set, *a, **k)
        if len(seen) == 1:
            raise Stop  # the search's evaluator is built: no need to train on
    monkeypatch.setattr(PathEvaluator, "__init__", spy)
    out = tmp_path / "run"
    with pytest.raises(Stop):
        main(["search", *TINY, "--out", str(out)])
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run_dir), "--truth", str(truth),
                 "--out", str(tmp_path / "rank.json"), "--no-progress"]) == 0
    for (calib, val), run in zip(seen, (out, run_dir), strict=True):
        splits = json.loads((run / "splits.json").read_text())
        assert calib == splits["train"] and val == splits["val"]
        assert not set(calib) & set(val)


def test_resume_of_a_folder_without_a_run_is_an_error(tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path / "typo"), "--resume"]) == 2
    assert "nothing to resume in" in capsys.readouterr().err


def test_the_landmark_penalty_reads_the_split_disjoint_from_training(tmp_path, monkeypatch):
    """L(a_i), L(a_j) are taken on the reg split, never on batches that train L_s."""
    from depthnas import pipeline
    seen = {}

    class Stop(Exception):
        pass
    regularizer_init, trainer_init = pipeline.LandmarkRegularizer.__init__, pipeline.Trainer.__init__

    def regularizer_spy(self, landmarks, reg_set, *a, **k):
        seen["reg"] = list(reg_set.ids())
        regularizer_init(self, landmarks, reg_set, *a, **k)

    def trainer_spy(self, model, task, cfg, train_set, **k):
        if k.get("name") == "supernet":  # (stand-alone trainings come first)
            seen["train"] = list(train_set.ids())
            raise Stop
        trainer_init(self, model, task, cfg, train_set, **k)
    monkeypatch.setattr(pipeline.LandmarkRegularizer, "__init__", regularizer_spy)
    monkeypatch.setattr(pipeline.Trainer, "__init__", trainer_spy)
    out = tmp_path / "run"
    with pytest.raises(Stop):
        main(["search", *TINY, "--out", str(out)])
    splits = json.loads((out / "splits.json").read_text())
    assert seen["reg"] == splits["reg"] and seen["train"] == splits["train"]
    assert not set(seen["reg"]) & set(seen["train"])


def test_a_search_killed_mid_run_resumes_to_the_uninterrupted_result(run_dir, tmp_path, monkeypatch,
                                                                     capsys):
    """Killed in iteration 2 (after its super-net epochs, during the search), then
    `--resume`: the same architectures, losses and super-net scores as run_dir's
    uninterrupted run with the same flags."""
    from depthnas import pipeline
    real, calls = pipeline.run_search, []

    def killed_in_iteration_2(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(pipeline, "run_search", killed_in_iteration_2)
    out = tmp_path / "killed"
    assert main(["search", *TINY, "--out", str(out)]) == 130
    assert not (out / "results.json").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["search", *TINY, "--out", str(out), "--resume"]) == 0
    resumed = capsys.readouterr().out
    assert "[landmark]" not in resumed and "[top-1]" not in resumed  # not trained again

    def summary(folder):
        r = json.loads((folder / "results.json").read_text())
        return r["best"]["string"], {a["arch"]: (a["role"], a["val_loss"], a["supernet_score"])
                                     for a in r["architectures"]}
    got, want = summary(out), summary(run_dir)
    assert got[0] == want[0] and got[1].keys() == want[1].keys()
    for arch, (role, val, score) in want[1].items():
        assert got[1][arch][0] == role
        assert got[1][arch][1:] == pytest.approx((val, score), rel=1e-5), arch


def test_a_search_resumed_after_its_first_search_trains_on_to_the_same_super_net(
        run_dir, tmp_path, monkeypatch):
    """Stopped in iteration 1's top-1 training, the run resumes from the checkpoint saved
    before search 1 and reads that search back. Scoring had left the decoder's BN
    statistics calibrated for the last scored path in the uninterrupted run only, so
    the two super-nets' checkpoints differed in every decoder BN layer."""
    from safetensors.torch import load_file
    from depthnas.standalone_results import StandaloneResults
    real = StandaloneResults.__call__

    def stopped_at_top_1(self, archs, role):
        if role == "top-1":
            raise KeyboardInterrupt
        return real(self, archs, role)
    monkeypatch.setattr(StandaloneResults, "__call__", stopped_at_top_1)
    out = tmp_path / "stopped"
    assert main(["search", *TINY, "--out", str(out)]) == 130
    assert (out / "search_1.json").is_file() and not (out / "checkpoints" / "epoch_0002").exists()
    monkeypatch.undo()
    assert main(["search", *TINY, "--out", str(out), "--resume"]) == 0
    got = load_file(out / "checkpoints" / "epoch_0002" / "model.safetensors")
    want = load_file(run_dir / "checkpoints" / "epoch_0002" / "model.safetensors")
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(got[k], want[k])] == []


def test_a_search_trains_one_string_of_each_model(tmp_path, monkeypatch):
    """Two strings of one model score alike on the super-net. Here both top the
    ranking of every iteration: the first is trained, the other never (the next
    model takes its place), and no two trained architectures share a model."""
    from depthnas import pipeline
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    first, same, other = (space.from_string(f"v1-sync:{s}") for s in
                          ("c3,c3,ap,c1,none", "skip,c1,ap,c1,none", "c1,c3,skip,ap,c3"))
    assert space.function_key(first) == space.function_key(same)  # 3<-2 none: node 2 idle
    real = pipeline.run_search

    def ranked_with_twins_on_top(*a, **k):
        ours = [(first, 0.1), (same, 0.1), (other, 0.2)]
        return ours + [(x, s + 1.0) for x, s in real(*a, **k) if x not in dict(ours)]
    monkeypatch.setattr(pipeline, "run_search", ranked_with_twins_on_top)
    out = tmp_path / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 0
    trained = {a["arch"]: a["role"] for a in json.loads((out / "results.json").read_text())["architectures"]}
    assert space.to_string(first) in trained and space.to_string(same) not in trained
    assert len({space.function_key(space.from_string(a)) for a in trained}) == len(trained)


def test_a_run_that_trained_two_strings_of_one_model_keeps_them_when_resumed(tmp_path, monkeypatch,
                                                                          capsys):
    """Depthnas before one string per model could pick two strings of one model, and
    its super-net went on training with both as landmarks. Resumed, such a run keeps
    those picks (trained already) rather than trading one for a new model."""
    from depthnas import evolution, pipeline
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    first, same = (space.from_string(f"v1-sync:{s}") for s in ("c3,c3,ap,c1,none", "skip,c1,ap,c1,none"))
    real, calls, stop = pipeline.run_search, [], [True]

    def twins_on_top(*a, **k):
        calls.append(1)
        if len(calls) == 2 and stop[0]:
            raise KeyboardInterrupt  # in iteration 2, after top-1 trained
        ours = [(first, 0.1), (same, 0.1)]
        return ours + [(x, s + 1.0) for x, s in real(*a, **k) if x not in dict(ours)]

    def by_string(space, archs, taken, n, keep=None):  # the older depthnas' picks
        return [a for a in archs if a not in set(taken)][:n]
    monkeypatch.setattr(pipeline, "run_search", twins_on_top)
    monkeypatch.setattr(pipeline, "new_models", by_string)
    out = tmp_path / "run"
    flags = [*TINY, "--top-k", "2", "--out", str(out)]
    assert main(["search", *flags]) == 130
    monkeypatch.setattr(pipeline, "new_models", evolution.new_models)
    stop[0] = False
    capsys.readouterr()
    assert main(["search", *flags, "--resume"]) == 0
    assert "training stand-alone [top-1]" not in capsys.readouterr().out  # both kept, none new
    roles = {a["arch"]: a["role"] for a in json.loads((out / "results.json").read_text())["architectures"]}
    assert roles[space.to_string(first)] == roles[space.to_string(same)] == "top-1"


def test_a_super_net_trained_again_from_the_start_is_searched_again(tmp_path, monkeypatch, capsys):
    """An unreadable checkpoint's error says to delete the checkpoints folder; the
    super-net then trained from the start, and the search resumed the gone super-net's
    finished search_1.json instead of searching the new one."""
    import shutil

    from depthnas import pipeline
    real, resumed_from = pipeline.run_search, []

    def killed_in_iteration_2(*a, **k):
        resumed_from.append(k["checkpoint"].is_file())
        if len(resumed_from) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(pipeline, "run_search", killed_in_iteration_2)
    out = tmp_path / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 130
    assert (out / "search_1.json").is_file()
    shutil.rmtree(out / "checkpoints")
    resumed_from.clear()
    capsys.readouterr()
    monkeypatch.setattr(pipeline, "run_search", lambda *a, **k: (resumed_from.append(
        k["checkpoint"].is_file()), real(*a, **k))[1])
    assert main(["search", *TINY, "--out", str(out), "--resume"]) == 0
    assert ("the super-net trains from the start, so the searches of the earlier one "
            "(search_1.json) were removed") in capsys.readouterr().out
    assert resumed_from == [False, False]
    # each search logged after the epochs of the super-net it searched, not where the
    # removed super-net's search was (the report's iteration marks read this order)
    phases = [json.loads(line)["phase"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert phases.count("search") == 2 and phases.index("search") > phases.index("supernet")


def test_a_finished_search_deleted_from_a_later_iteration_s_run_is_refused(run_dir, tmp_path,
                                                                          capsys):
    """search_1.json deleted (after "not valid JSON", say) once the super-net had trained
    on: iteration 1's search ran again on the later super-net, picked another top-1, and
    results.json lost the architecture iteration 2 had trained with as a landmark."""
    import shutil
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    (out / "results.json").unlink()
    (out / "search_1.json").unlink()
    assert main(["search", *TINY, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert (f"error: {out / 'search_1.json'} is missing, but the super-net has trained past "
            "iteration 1 (epoch 2), so that search cannot be redone") in err
    assert f"delete {out / 'checkpoints'} to train the super-net again" in err
    assert not (out / "results.json").exists()


def test_a_search_resumed_under_an_edited_config_yaml_is_refused(run_copy, capsys):
    """supernet.epochs edited in config.yaml, then --resume: the run went on at the new
    length, with searches and schedules of the old one; a seed edited there was
    reported as data that "no longer splits" as recorded."""
    import yaml
    path = run_copy / "config.yaml"
    saved = path.read_text()
    for field, value in (("supernet.epochs", 3), ("seed", 7)):
        cfg = yaml.safe_load(saved)
        section, _, name = field.rpartition(".")
        (cfg[section] if section else cfg)[name] = value
        path.write_text(yaml.safe_dump(cfg))
        assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"error: {path} differs from the settings the run's super-net trained with" in err
        assert f"{field}: " in err and f"{value} now" in err, err
    path.write_text(saved)
    # what a resume may change, it may
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress",
                 "--set", "data.num_workers=0"]) == 0


def test_a_search_stopped_among_its_landmarks_refuses_an_edited_config_yaml(run_copy, capsys):
    """Before the super-net's first checkpoint the edit went unseen: a warning, then a
    finished landmark was trained again over its result under the new settings."""
    import shutil

    import yaml
    shutil.rmtree(run_copy / "checkpoints")  # as if stopped before the super-net trained
    (run_copy / "results.json").unlink()
    results = sorted((run_copy / "standalone").glob("*/result.json"))
    before = [p.read_text() for p in results]
    path = run_copy / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["standalone"]["lr"] = 0.004
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path} differs from the settings the run's stand-alone trainings trained " \
           "with (lr: saved 0.003, now 0.004)" in err
    assert [p.read_text() for p in results] == before  # nothing trained over


@pytest.mark.parametrize("name, content, said", [
    ("search_1.json", '{"space": "v1-sync"}', "is damaged (KeyError: 'rng'); restore it, or delete it"),
    ("search_1.json", "[1, 2]", "search_1.json: expected a JSON object, found array"),
    ("elapsed.json", "[]", "elapsed.json: expected a JSON object, found array"),
    ("elapsed.json", '{"elapsed_s": "soon"}', "elapsed.json: 'elapsed_s' should be a number"),
    ("initial_landmarks.json", '["v1-sync:c3,c3"]', "initial_landmarks.json: 'v1-sync:c3,c3' is no "
                                                     "v1-sync architecture"),
])
def test_a_run_file_of_the_wrong_shape_is_named(run_copy, capsys, name, content, said):
    """Valid JSON of the wrong shape raised a KeyError, TypeError or AttributeError
    traceback naming no file (a parse error in initial_landmarks.json named none either)."""
    (run_copy / name).write_text(content)
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and "Traceback" not in err, err


def test_a_landmark_count_edited_before_the_super_net_trained_is_refused(run_copy, capsys):
    """Stopped among the landmarks (no super-net checkpoint to compare with), a resume
    under `landmarks.num` edited ran on with the landmarks drawn at the start."""
    import shutil
    drawn = json.loads((run_copy / "initial_landmarks.json").read_text())
    shutil.rmtree(run_copy / "checkpoints")
    config = run_copy / "config.yaml"
    text = config.read_text()
    assert f"  num: {len(drawn)}\n" in text
    config.write_text(text.replace(f"  num: {len(drawn)}\n", f"  num: {len(drawn) + 1}\n", 1))
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
    assert (f"initial_landmarks.json holds the {len(drawn)} landmark(s) this run drew as it started, "
            f"but {config} now asks for landmarks.num {len(drawn) + 1}") in capsys.readouterr().err


def test_a_line_of_the_wrong_shape_in_metrics_jsonl_is_skipped(run_copy, capsys):
    """A `[1, 2]` line ended the run in an AttributeError after all its work, without
    report.md."""
    with open(run_copy / "metrics.jsonl", "a") as fh:
        fh.write("[1, 2]\n")
    (run_copy / "report.md").unlink()
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 0
    assert (run_copy / "report.md").is_file()


def test_a_training_s_result_json_of_the_wrong_shape_is_named(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]
    assert main(argv) == 0
    (out / "result.json").write_text("[1, 2]")
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert f"{out / 'result.json'}: expected a JSON object, found array" in capsys.readouterr().err


def test_a_second_search_reuses_the_stored_landmarks_and_random_search_runs(run_dir, tmp_path,
                                                                          capsys):
    """--landmarks STORE: landmarks trained by an earlier run of the same recipe are not
    trained again (the paper's point: their cost is paid once); --method random is the
    baseline searcher, scoring `random_candidates` distinct architectures."""
    store = tmp_path / "store.json"
    store.write_text((run_dir / "landmarks.json").read_text())
    out = tmp_path / "second"
    assert main(["search", *TINY, "--landmarks", str(store), "--method", "random",
                 "--set", "search.random_candidates=5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reusing 3 of 7 stored landmark(s)" in printed and "[landmark]" not in printed
    # where their losses come from: said in results.json and the report (they were not)
    archs = json.loads((out / "results.json").read_text())["architectures"]
    assert all(a.get("source") == "landmark store" for a in archs if a["role"] == "landmark")
    rows = [line for line in (out / "report.md").read_text().splitlines() if "| landmark |" in line]
    assert rows and all("(stored) |" in line for line in rows)
    stored_picks = [a for a in archs if a["role"] != "landmark" and a.get("source") == "landmark store"]
    assert all(f"from the landmark store [{a['role']}] {a['arch']}" in printed for a in stored_picks)
    assert printed.count("from the landmark store [") == len(stored_picks)  # and no others
    scores = json.loads((out / "search_1.json").read_text())["scores"]
    assert len(scores) == 5 and len({json.dumps(s[0]) for s in scores}) == 5


def test_resume_refuses_a_damaged_config_yaml(run_dir, tmp_path, capsys):
    """Defaults must not fill in what a cut config.yaml lost: that would retrain the
    run at another size and overwrite its settings."""
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    text = (copy / "config.yaml").read_text()
    (copy / "config.yaml").write_text(text[:40])
    assert main(["search", "--out", str(copy), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml lacks" in err and "damaged?" in err
    assert (copy / "config.yaml").read_text() == text[:40]  # left as it was


def test_binary_or_damaged_files_are_named(run_dir, tmp_path, capsys):
    """A non-UTF-8 --config, --arch file or --truth CSV, or a cut run file on --resume:
    the error names the file, not only the decoder's complaint."""
    import shutil
    binary = tmp_path / "photo.yaml"
    binary.write_bytes(b"\xff\xd8\xff\xe0 not text")
    assert main(["search", "--config", str(binary), "--out", str(tmp_path / "a")]) == 2
    assert f"{binary}: not a UTF-8 text file" in capsys.readouterr().err
    arch = tmp_path / "best_arch.json"
    arch.write_bytes(b"\xff\xfe")
    assert main(["train", "--arch", str(arch), *TRAIN_TINY, "--out", str(tmp_path / "b")]) == 2
    assert f"{arch}: not a UTF-8 text file" in capsys.readouterr().err
    csv_file = tmp_path / "truth.csv"
    csv_file.write_bytes(b"arch,loss\n\xff\n")
    assert main(["rank", "--run", str(run_dir), "--truth", str(csv_file), "--no-progress"]) == 2
    assert f"{csv_file}: not a UTF-8 text file" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "results.json").unlink()  # unfinished: the resume reads its run files
    (copy / "initial_landmarks.json").write_text('["v1-sync:c3,')
    assert main(["search", "--out", str(copy), "--resume", "--no-progress"]) == 2
    assert "initial_landmarks.json: not valid JSON" in capsys.readouterr().err


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


def test_a_mistyped_arch_file_is_not_read_as_an_architecture(tmp_path, capsys):
    missing = tmp_path / "runs" / "x" / "best_arch.jsn"
    for arg in (str(missing), str(tmp_path / "best_arch.json")):
        assert main(["train", "--arch", arg, *TRAIN_TINY, "--out", str(tmp_path / "t")]) == 2
        assert f"--arch {arg}: no such file" in capsys.readouterr().err


def _truth_of(run_dir, path):
    """The run's own stand-alone results as a truth table."""
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    path.write_text(json.dumps({a["arch"]: a["val_loss"] for a in results}))
    return path


def test_rank_is_reproducible_and_scores_as_the_search_did(run_copy, tmp_path):
    """`depthnas rank` seeds itself from the run's seed, as the search did before scoring:
    whatever torch seed the process starts with (another one in every new process), the
    BN calibration batches are the same, so are the scores, and they are the search's."""
    import torch
    from depthnas.rank import rank_run
    truth = _truth_of(run_copy, tmp_path / "truth.json")
    reports = []
    for process_seed in (1, 2):  # two processes' random states
        torch.manual_seed(process_seed)
        rank_run(run_copy, truth, progress=False)
        reports.append(json.loads((run_copy / "rank.json").read_text()))
    first, second = reports
    assert first["n"] == len(first["scores"]) >= 2 and first["scores"] == second["scores"]
    for k in ("kendall_tau", "sparse_kendall_tau", "spearman_rho", "top_percentile"):
        assert first[k] == pytest.approx(second[k], nan_ok=True), k
    searched = {a["arch"]: a["supernet_score"]
                for a in json.loads((run_copy / "results.json").read_text())["architectures"]}
    for arch, score in first["scores"].items():
        assert score == pytest.approx(searched[arch], rel=1e-5), arch


@pytest.mark.parametrize("flags, says", [
    (["--limit", "-1"], "--limit must be >= 2 (ranking needs two architectures), got -1"),
    (["--limit", "0"], "--limit must be >= 2 (ranking needs two architectures), got 0"),
    (["--limit", "1"], "--limit must be >= 2 (ranking needs two architectures), got 1"),
    (["--threshold", "nan"], "--threshold must be a finite bin width > 0, got nan"),
    (["--threshold", "inf"], "--threshold must be a finite bin width > 0, got inf"),
    (["--threshold", "-1"], "--threshold must be a finite bin width > 0, got -1"),
    (["--threshold", "0"], "--threshold must be a finite bin width > 0, got 0"),
])
def test_rank_options_are_checked_before_scoring(run_dir, tmp_path, monkeypatch, capsys,
                                                 flags, says):
    def no_scoring(*args, **kw):
        raise AssertionError("scoring started before the options were checked")
    monkeypatch.setattr("depthnas.rank.PathEvaluator", no_scoring)
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run_dir), "--truth", str(truth), *flags,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1, err


def test_rank_names_a_damaged_config_yaml(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("space: v1-sync\ndata: {spec: synthetic\n")  # cut short
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run), "--truth", str(truth), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(run / "config.yaml") in err, err
    assert "Traceback" not in err


def test_rank_refuses_a_config_yaml_cut_or_edited_since_the_super_net_trained(run_copy, tmp_path, capsys):
    """A line lost from config.yaml silently became the default (200 calibration
    batches instead of 4), an edited one another setting: either scored every path
    otherwise than the search had."""
    truth = _truth_of(run_copy, tmp_path / "truth.json")
    saved = (run_copy / "config.yaml").read_text()
    assert "calib_batches: 1\n" in saved
    (run_copy / "config.yaml").write_text(saved.replace("  calib_batches: 1\n", ""))
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--no-progress"]) == 2
    assert "lacks 1 field(s) every run writes (search.calib_batches)" in capsys.readouterr().err
    (run_copy / "config.yaml").write_text(saved.replace("calib_batches: 1\n", "calib_batches: 3\n"))
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--no-progress"]) == 2
    assert ("differs from the settings the run's super-net trained with (search.calib_batches"
            in capsys.readouterr().err)


def test_rank_scores_where_told_writes_where_told_and_says_where(run_copy, tmp_path, capsys):
    """A run started with --device cuda could not be ranked on a machine without one:
    the error told to use a --device that `rank` did not have."""
    truth = _truth_of(run_copy, tmp_path / "truth.json")
    saved = (run_copy / "config.yaml").read_text()
    assert "device: auto" in saved
    (run_copy / "config.yaml").write_text(saved.replace("device: auto", "device: cuda:3"))
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--out", str(tmp_path),
                 "--no-progress"]) == 2  # a folder: said before any scoring, not after all of it
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
    out = tmp_path / "against-truth.json"
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--device", "cpu",
                 "--out", str(out), "--no-progress"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["n"] == 2 and not (run_copy / "rank.json").exists()
    assert report["constant_level"] > 0 and isinstance(report["supernet_learned"], bool)


@pytest.mark.parametrize("level, warned", [(1e-6, True), (1e6, False)])
def test_rank_warns_when_no_path_beat_a_constant_prediction(run_dir, tmp_path, monkeypatch, caplog,
                                                           level, warned):
    """The search warned that its super-net had learned nothing; `rank` then printed a
    Kendall tau of that noise as plainly as any other."""
    from depthnas.scoring import PathEvaluator
    monkeypatch.setattr(PathEvaluator, "constant_level", lambda self: level)
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    out = tmp_path / "rank.json"
    with caplog.at_level("WARNING"):
        assert main(["rank", "--run", str(run_dir), "--truth", str(truth), "--out", str(out),
                     "--no-progress"]) == 0
    assert ("this super-net had not learned yet, so its side of the ranking is noise"
            in caplog.text) == warned
    # a best path lower than the level, within 1% of it, read as a contradiction
    assert ("within 1% of it or worse)" in caplog.text) == warned
    assert json.loads(out.read_text())["supernet_learned"] is not warned


def test_rank_calls_a_super_net_learned_when_its_best_path_beats_a_constant(run_dir, tmp_path,
                                                                           monkeypatch):
    """One path below the constant's level is enough: the best decides, not the worst."""
    import itertools
    from depthnas.scoring import PathEvaluator
    scores = itertools.chain([0.3, 0.1], itertools.repeat(0.3))  # in the order rank scores rows
    monkeypatch.setattr(PathEvaluator, "score", lambda self, arch: next(scores))
    monkeypatch.setattr(PathEvaluator, "constant_level", lambda self: 0.2)
    out = tmp_path / "rank.json"
    assert main(["rank", "--run", str(run_dir), "--truth", str(_truth_of(run_dir, tmp_path / "t.json")),
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())["supernet_learned"] is True


def test_rank_refuses_a_table_without_order_and_writes_no_nan(run_dir, tmp_path, monkeypatch, capsys,
                                                              caplog):
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    flat = {a["arch"]: 0.2 for a in results}
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    assert main(["rank", "--run", str(run_dir), "--truth", str(tmp_path / "flat.json"),
                 "--no-progress"]) == 2
    assert "have the same loss (0.2): there is no order to measure" in capsys.readouterr().err
    # a super-net that scores every path alike: no tau, written as null (NaN is no JSON)
    from depthnas.scoring import PathEvaluator
    monkeypatch.setattr(PathEvaluator, "score", lambda self, arch: 0.25)
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    out = tmp_path / "rank.json"
    assert main(["rank", "--run", str(run_dir), "--truth", str(truth), "--out", str(out),
                 "--no-progress"]) == 0
    text = out.read_text()
    assert "NaN" not in text and json.loads(text)["kendall_tau"] is None
    # losses below 0 are no loss: said
    negative = {a: -v for a, v in json.loads(truth.read_text()).items()}
    (tmp_path / "neg.json").write_text(json.dumps(negative))
    with caplog.at_level("WARNING"):
        assert main(["rank", "--run", str(run_dir), "--truth", str(tmp_path / "neg.json"),
                     "--out", str(out), "--no-progress"]) == 0
    assert "loss(es) below 0" in caplog.text


def test_rank_says_a_train_run_is_not_a_search_run(run_dir, tmp_path, capsys):
    """A `depthnas train` folder has a config.yaml and checkpoints too, of one stand-alone
    model: rank says so instead of calling its checkpoints unreadable (and advising to
    delete the folder), finished or not."""
    out = tmp_path / "one"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    for state in ("finished", "killed before its result"):
        assert main(["rank", "--run", str(out), "--truth", str(truth), "--no-progress"]) == 2, state
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out} is a `depthnas train` run, not a search run"), (state, err)
        assert "delete" not in err
        (out / "result.json").unlink(missing_ok=True)  # as a training killed mid-way
        (out / "model.safetensors").unlink(missing_ok=True)


def test_a_search_says_when_its_models_or_its_picks_are_at_a_constant_prediction_s_level():
    """make search once picked super-net paths that output one value everywhere (their
    loss, the target variance, beat the live paths') and said nothing. What it says at
    its end is what report.md lists."""
    from depthnas.report import warnings_of
    archs = [{"role": role, "val_loss": loss, "supernet_score": score}
             for role, loss, score in [("landmark", 0.174, 0.2026), ("top-1", 0.20036, 0.20036),
                                       ("top-1", 0.193, 0.20036), ("top-2", 0.173, 0.2051)]]
    summary = {"architectures": archs, "constant_prediction_loss": 0.20036, "picks": 3,
               "flat_picks": 0, "ranking": {"n": 12, "kendall_tau": 0.5}}
    said = warnings_of(summary)
    assert any("1 of 4 architectures trained stand-alone scored no better than a constant" in m
               for m in said)
    # the final super-net scores two picks at that level, but they were live when picked
    assert not any("picked" in m for m in said)
    summary.update(flat_picks=2, search_constant_loss=0.19)  # the level the search scored at
    assert any("2 of the 3 architectures the search picked ignored their input" in m
               and "level, 0.19000," in m and "for want of live ones" in m
               for m in warnings_of(summary))
    summary.update(constant_prediction_loss=None, search_constant_loss=None)
    # classification: no level to be at; only a dead cell cuts a pick's input off
    assert [m for m in warnings_of(summary) if "(cut off by a dead cell)" in m]
    summary.update(flat_picks=0)
    assert not warnings_of(summary)


def test_the_search_picks_live_paths_before_paths_at_the_constant_level(tmp_path, monkeypatch,
                                                                        capsys):
    """The pipeline hands the search its order: a super-net path at a constant
    prediction's level (here every path whose first edge is avg_pool) loses to live
    paths with a worse score, and the log counts them. The level is the one of the
    batches the search scores on (the evaluator's); stand-alone results are judged
    against the whole split's."""
    from depthnas import pipeline
    constant = 0.2
    monkeypatch.setattr(pipeline.PathEvaluator, "constant_level", lambda self: constant)
    monkeypatch.setattr(pipeline, "constant_score", lambda *a, **k: 0.3)

    def score(self, arch):
        text = pipeline.get_space("v1-sync").to_string(arch)
        return constant if text.split(":")[1].startswith("ap") else 0.25 + 0.001 * text.count("c")
    monkeypatch.setattr(pipeline.PathEvaluator, "score", score)
    out = tmp_path / "run"
    assert main(["search", *TINY, "--no-landmarks", "--set", "search.population=12",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    picks = [a for a in results["architectures"] if a["role"].startswith("top")]
    assert picks and not any(a["arch"].split(":")[1].startswith("ap") for a in picks)
    log = capsys.readouterr().out
    assert "super-net path(s) ignoring their input rank last" in log
    assert "picked for want of live ones" not in log
    searches = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
                if '"search"' in line]
    assert len(searches) == 2 and all(r["at_constant_level"] > 0 for r in searches)
    assert results["constant_prediction_loss"] == 0.3
    # every live path (0.25 and up) is worse than a constant prediction (0.2): the
    # super-net learned nothing, and the picks are noise
    assert results["unlearned_searches"] == [1, 2]
    for which in ("search 1", "search 2", "searches 1, 2"):  # as each ends, then in the summary
        assert f"warning: in {which} no super-net path scored better than a constant" in log
    assert "in searches 1, 2 no super-net path" in (out / "report.md").read_text()


def test_a_super_net_that_beats_a_constant_prediction_is_not_warned_about(tmp_path, monkeypatch,
                                                                           capsys):
    from depthnas import pipeline
    monkeypatch.setattr(pipeline.PathEvaluator, "constant_level", lambda self: 0.2)
    monkeypatch.setattr(pipeline.PathEvaluator, "score",
                        lambda self, arch: 0.19 - 0.001 * str(arch).count("c"))
    out = tmp_path / "run"
    assert main(["search", *TINY, "--no-landmarks", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["unlearned_searches"] == []
    assert "no super-net path scored better" not in capsys.readouterr().out


def test_log_lines_speak_like_the_rest_of_the_output():
    """Search logs mixed 'INFO depthnas.evolution: ...' lines with the pipeline's own
    plain ones; now information is plain and a warning says 'warning:', as the CLI's
    own warnings do. --verbose keeps the logger names for debugging."""
    import logging

    from depthnas.exits import log_handler
    def line(handler, level, msg):
        record = logging.LogRecord("depthnas.evolution", level, __file__, 1, msg, None, None)
        return handler.format(record)
    plain = log_handler(verbose=False)
    assert line(plain, logging.INFO, "  generation 1/3: best 0.2") == "  generation 1/3: best 0.2"
    assert line(plain, logging.WARNING, "skipping a checkpoint") == "warning: skipping a checkpoint"
    assert line(plain, logging.ERROR, "x") == "error: x"
    verbose = log_handler(verbose=True)
    assert line(verbose, logging.DEBUG, "x") == "DEBUG depthnas.evolution: x"


def test_landmarks_without_a_regularizer_split_are_refused_before_any_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *TINY, "--set", "data.reg_fraction=0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "data.reg_fraction=0 leaves the landmark regularizer no data" in err
    assert not (out / "standalone").exists()


def test_an_empty_validation_split_is_an_error_not_a_perfect_score():
    from depthnas.scoring import evaluate_fixed
    from depthnas.task import DepthTask
    with pytest.raises(ValueError, match="validation split is empty"):
        evaluate_fixed(torch.nn.Identity(), DepthTask(), [])


def test_images_without_valid_depth_in_the_scored_crop_do_not_score_zero():
    """Valid depth only outside the validation crop: each such image added a perfect 0,
    so a split of them scored 0.0 ('learned nothing' blamed on a dead ReLU)."""
    from depthnas.scoring import evaluate_fixed
    from depthnas.task import DepthTask
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 1, 1)

    def sample(valid: bool):
        return {"image": torch.randn(3, 8, 8), "target": torch.rand(1, 8, 8) + 0.5,
                "mask": torch.full((1, 8, 8), valid)}
    scored, blank = sample(True), sample(False)
    alone = evaluate_fixed(model, DepthTask(), [scored], batch_size=1)
    assert alone > 0
    assert evaluate_fixed(model, DepthTask(), [scored, blank, blank], batch_size=1) == pytest.approx(alone)
    with pytest.raises(ValueError, match="no image in it has two valid depth pixels inside the area scored"):
        evaluate_fixed(model, DepthTask(), [blank, blank], batch_size=2)


def test_rank_states_a_small_threshold_and_warns_about_an_unfinished_run(run_copy, tmp_path, capsys,
                                                                         caplog, monkeypatch):
    import shutil
    truth = _truth_of(run_copy, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--threshold", "5e-05",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sparse_threshold     5e-05" in out  # was 0.0000
    assert "sparse_threshold_rule given (--threshold)" in out
    # without one: the run's own, else the table's seed noise, else 1% of the range
    from depthnas.rank_plan import sparse_threshold
    from depthnas.truth import read_table
    assert read_table(truth).seed_noise == {}
    assert sparse_threshold(None, None, None) == (None, "1% of the truth range")
    noisy = tmp_path / "noisy.json"
    noisy.write_text(json.dumps({"architectures": {}, "seed_median_abs_diff": {"v1-sync": 0.002}}))
    noise = read_table(noisy).seed_noise.get("v1-sync")
    assert sparse_threshold(None, None, noise) == (0.002, "the table's median |seed 0 - seed 1|")
    assert sparse_threshold(None, 0.01, noise) == (0.01, "the run's search.sparse_threshold")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_copy, unfinished)
    (unfinished / "results.json").unlink()
    monkeypatch.chdir(truth.parent)
    with caplog.at_level("WARNING", logger="depthnas.rank"):
        assert main(["rank", "--run", str(unfinished), "--truth", truth.name, "--no-progress"]) == 0
    assert "has no results.json (the search has not finished)" in caplog.text
    # rank.json, kept after the run finishes, says it ranked an unfinished run's super-net
    # (a reviewer took it for the final ranking), and names the table wherever it is read
    ranked = json.loads((unfinished / "rank.json").read_text())
    assert ranked["run_finished"] is False and ranked["supernet_epoch"] == ranked["supernet_epochs"] == 2
    assert ranked["truth"] == str(truth.resolve())


def test_a_training_whose_newest_checkpoint_is_damaged_resumes_from_the_one_before(tmp_path, capsys,
                                                                                    monkeypatch):
    """The trainer skips a damaged epoch for the one before, but reading the newest
    epoch's metadata (which architecture, which recipe) raised first, so every resume
    of that training failed until the folder was deleted by hand."""
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--epochs", "3",
            "--out", str(out), "--no-progress"]
    assert train_killed_after(2, argv, monkeypatch) == 130
    (out / "checkpoints" / "epoch_0002" / "model.safetensors").write_bytes(b"cut short")
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert json.loads((out / "result.json").read_text())["arch"] == "v1-sync:c3,skip,none,c1,ap"


def test_output_piped_into_a_reader_that_leaves_early_is_not_an_error():
    """`depthnas spaces | head -1` ended with 'error: [Errno 32] Broken pipe'."""
    done = run_with_closed_stdout(["spaces"])
    assert done.returncode == 0 and "Broken pipe" not in done.stderr and "Error" not in done.stderr


def test_a_search_whose_output_pipe_closes_says_how_to_continue(tmp_path):
    """Work stopped half-way is not a success: exit 141 (SIGPIPE's), with what to do.
    Here the pipe is closed at the first line, before any work: the folder holding only
    its start is removed, so the command is run again (--resume found nothing)."""
    out = tmp_path / "run"
    done = run_with_closed_stdout(["search", *TINY, "--out", str(out)])
    assert done.returncode == 141, done.stderr[-500:]
    assert "output pipe closed; nothing was kept yet: run the same command again, without " \
           "--resume" in done.stderr
    assert not out.exists()


def test_a_run_refuses_data_that_no_longer_splits_as_it_recorded(tmp_path, capsys):
    """The split is drawn from the files found: after files are added, a resume would
    train on the run's own validation samples, and evaluating its split would score
    training ones. splits.json records the split; both now compare against it."""
    from test_datasets import make_folder
    root = make_folder(tmp_path / "data", n=10)
    out = tmp_path / "run"
    train = ["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--preset", "quick", "--image-size", "32",
             "--epochs", "1", "--batch-size", "2", "--set", "standalone.steps_per_epoch=1",
             "--data", f"folder:{root}", "--no-progress", "--out", str(out)]
    assert main(train) == 0
    assert main(["evaluate", "--checkpoint", str(out), "--split", "val", "--no-progress"]) == 0
    recorded = (out / "splits.json").read_text()
    make_folder(root, n=14)  # the same 10 samples, and 4 more
    capsys.readouterr()
    for command in (train + ["--resume"],
                    ["evaluate", "--checkpoint", str(out), "--split", "val", "--no-progress"]):
        assert main(command) == 2, command[0]
        err = capsys.readouterr().err
        assert f"no longer splits as {out / 'splits.json'} recorded" in err, err
        assert ("4 sample(s) added (images/s010.jpg, images/s011.jpg, images/s012.jpg ...), "
                "0 gone, 4 moved between splits (images/s") in err
        assert ("score every sample (--split all)" in err) == (command[0] == "evaluate")
    assert (out / "splits.json").read_text() == recorded
    # an evaluation of the validation split needs only that split as recorded
    make_folder(root, n=10)
    for extra in root.glob("*/s01[0-3].*"):
        extra.unlink()
    edited = json.loads(recorded)
    edited["reg"].append(edited["train"].pop())
    (out / "splits.json").write_text(json.dumps(edited))
    assert main(["evaluate", "--checkpoint", str(out), "--split", "val", "--no-progress"]) == 0
    assert main(["evaluate", "--checkpoint", str(out), "--split", "reg", "--no-progress"]) == 2
    assert main(train + ["--resume"]) == 2
    (out / "splits.json").write_text(recorded)
    # the whole folder is no split of the run's, and --seed draws one anew, on purpose
    assert main(["evaluate", "--checkpoint", str(out), "--split", "all", "--no-progress"]) == 0
    assert main(["evaluate", "--checkpoint", str(out), "--split", "val", "--seed", "3",
                 "--no-progress"]) == 0
    assert "split val drawn again with --seed (seed 3): not the run's own" in capsys.readouterr().out
    for broken in ({"train": 5, "reg": [], "val": []}, {}):
        (out / "splits.json").write_text(json.dumps(broken))
        assert main(["evaluate", "--checkpoint", str(out), "--split", "val", "--no-progress"]) == 2
        assert "splits.json is not a record of splits" in capsys.readouterr().err


def test_a_search_resume_refuses_data_that_no_longer_splits_as_it_recorded(run_copy, tmp_path,
                                                                          capsys):
    """As for `train --resume` (and `rank`, which scores the super-net on the run's
    validation split): here the recorded split is edited instead of the data."""
    splits = json.loads((run_copy / "splits.json").read_text())
    splits["val"].append(splits["train"].pop())
    (run_copy / "splits.json").write_text(json.dumps(splits))
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({a["arch"]: a["val_loss"] for a in json.loads(
        (run_copy / "results.json").read_text())["architectures"]}))
    for command in (["search", "--out", str(run_copy), "--resume", "--no-progress"],
                    ["rank", "--run", str(run_copy), "--truth", str(truth), "--no-progress"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "0 sample(s) added, 0 gone, 1 moved between splits (synthetic:0:" in err
        assert ": val -> train)" in err


def test_a_start_that_failed_is_not_held_to_its_split(tmp_path, capsys):
    """The first start's error advised adding data; starting over with more must not be
    refused for splitting otherwise than the start that failed."""
    out = tmp_path / "run"
    train = ["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--preset", "quick", "--image-size", "32",
             "--epochs", "1", "--batch-size", "16", "--set", "standalone.steps_per_epoch=1",
             "--no-progress", "--out", str(out)]
    assert main([*train, "--set", "data.synthetic_samples=12"]) == 2
    assert "fewer than the batch size 16" in capsys.readouterr().err
    assert main([*train, "--set", "data.synthetic_samples=40"]) == 0
    (out / "splits.json").write_text("[1]")
    assert main([*train, "--set", "data.synthetic_samples=40", "--resume"]) == 2
    assert "splits.json is not a record of splits" in capsys.readouterr().err


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


def test_folders_given_for_files_are_named(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best_arch.json").write_text('{"arch": "v1-sync:c3,c3,c3,c3,c3"}')
    for argv, says in (
            (["train", "--arch", str(run)], f"--arch {run} is a folder; name the architecture file: "
                                            f"--arch {run / 'best_arch.json'}"),
            (["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--config", str(run)],
             f"--config {run} is a folder; name its YAML file")):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith(f"error: {says}")
    header_only = tmp_path / "truth.csv"
    header_only.write_text("arch,accuracy\n")
    from depthnas.truth import load_truth
    with pytest.raises(ValueError, match="truth.csv: the CSV has a header and no rows"):
        load_truth(header_only)


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


def test_a_latency_budget_no_architecture_meets_is_refused_before_training(tmp_path, capsys):
    """It was found only when the search started; then each candidate cost a build and
    seven timed passes, up to a thousand misses in a row, without output."""
    out = tmp_path / "fast"
    assert main(["search", *TINY, "--set", "search.max_latency_ms=0.001", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "search.max_latency_ms=0.001: the smallest v1-sync architecture" in err
    assert "and none is faster (raise the budget" in err
    assert not (out / "standalone").exists()  # no landmark trained


def test_the_wall_time_includes_the_final_scoring(tmp_path, monkeypatch):
    """The report's wall time was taken before every trained architecture was scored in
    the super-net: minutes at the paper's size. Here each scoring moves the run's clock
    on by 1000 s."""
    import time
    from types import SimpleNamespace

    import depthnas.pipeline as pipeline
    import depthnas.run_clock as run_clock
    skipped = [0.0]
    monkeypatch.setattr(run_clock, "time", SimpleNamespace(time=lambda: time.time() + skipped[0]))
    finish = pipeline.SearchRun.finish

    def slow_finish(self, evaluator, *a, **k):
        score = evaluator.score

        def slow_score(arch):
            skipped[0] += 1000.0
            return score(arch)
        evaluator.score = slow_score
        return finish(self, evaluator, *a, **k)
    monkeypatch.setattr(pipeline.SearchRun, "finish", slow_finish)
    assert main(["search", *TINY, "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["architectures"]) == 7
    # (those the last search scored are not scored again: the ranking samples are)
    assert skipped[0] >= 2000 and results["elapsed_s"] >= skipped[0]


def test_every_command_s_help_says_what_it_does():
    """`depthnas export --help` (and predict, evaluate, demo) listed options only."""
    import argparse

    from depthnas.cli import build_parser
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"search", "train", "export", "predict", "evaluate", "demo", "rank"} <= set(sub.choices)
    for name, command in sub.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings}"


def test_version_is_the_installed_package_s(capsys):
    import importlib.metadata

    import depthnas
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    installed = importlib.metadata.version("depthnas")  # pyproject reads depthnas.__version__
    assert capsys.readouterr().out.strip() == f"depthnas {installed}" == f"depthnas {depthnas.__version__}"


def test_help_the_spaces_listing_and_architecture_strings_do_not_wait_for_torch():
    """`depthnas --help` took 5.5 s on a loaded machine: every command builds one
    parser, and evaluate's imported torch, albumentations and OpenCV with it. Help,
    `spaces` and parsing or counting architectures need none of them."""
    code = """
import contextlib, io, random, sys
from depthnas.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["spaces"]) == 0
    for argv in (["--help"], ["evaluate", "--help"], ["export", "--help"], ["demo", "--help"]):
        try:
            main(argv)
        except SystemExit as done:
            assert done.code == 0, argv
from depthnas.spaces import depth, get_space, list_spaces
for name in list_spaces():
    space = get_space(name)
    assert space.parse(space.to_string(space.sample(random.Random(0)))).space == name
print(sorted(m for m in ("torch", "timm", "albumentations", "cv2", "gradio") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _refused_without(modules, tmp_path, *argvs):
    """Each argv exits 2, all in one fresh process: the last error line of each, and
    which of `modules` they loaded (as the text of a sorted list)."""
    code = f"""
import contextlib, io, json, sys
from depthnas.cli import main
lines = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 2, argv
    lines.append(err.getvalue().strip().splitlines()[-1])
print(json.dumps(lines))
print(sorted(m for m in {list(modules)!r} if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code, json.dumps([list(a) for a in argvs])],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said, loaded = done.stdout.strip().splitlines()[-2:]
    return json.loads(said), loaded


def test_a_refused_config_or_model_is_said_before_torch_loads(tmp_path):
    """A typo in a config, or in --arch, waited 4 s for torch, OpenCV and albumentations
    before it was named (the check's allowed values lived beside their torch code), and
    `predict`, `evaluate`, `export` and the demo 3-5 s for torch (and gradio) before
    they said there was no model, `search` and `data` before a typo in a data spec, and
    `rank` before a missing run or table."""
    from depthnas import config as config_mod
    out, arch = str(tmp_path / "run"), "v1-sync:c1,c3,skip,skip,ap"
    (tmp_path / "runs").mkdir()
    held = tmp_path / "held"  # a run under way
    held.mkdir()
    config_mod.dump(config_mod.load(None, "quick"), held / "config.yaml")
    (held / "metrics.jsonl").write_text("")
    nb201_table = tmp_path / "nb201.json"
    nb201_table.write_text(json.dumps({"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
                                       "nor_conv_3x3~1|skip_connect~2|": 0.2}))
    said, loaded = _refused_without(
        ("torch", "timm", "albumentations", "gradio", "onnxruntime"), tmp_path,
        ["search", "--set", "supernet.precision=bf17", "--out", out],
        ["search", "--set", "standalone.loss=l1", "--set", "data.depth_kind=depht", "--out", out],
        ["search", "--set", "data.image_size=[100,96]", "--set", "landmarks.num=99999", "--out", out],
        ["train", "--arch", arch, "--set", "supernet.precision=bf17", "--out", out],
        ["train", "--arch", arch, "--resume", "--out", out],
        ["train", "--arch", "v1-sync:c1,c3", "--out", out],
        ["demo", "--runs", str(tmp_path / "runs"), "--port", "1"],
        ["demo", "--model", out + ".onnx", "--port", "1"],
        ["predict", "--model", out, "--input", str(tmp_path / "runs"), "--out", out + "-depth"],
        ["evaluate", "--checkpoint", out, "--data", "synthetic"],
        ["export", "--run", out],
        # in a folder that holds a run: the resume hint (torchrun's or not) loaded torch
        ["search", "--out", str(held), "--resume", "--set", "supernet.precision=bf17"],
        ["search", "--data", f"folder:{tmp_path / 'photos'}", "--out", out],
        ["data", "--data", f"folder:{tmp_path / 'photos'}"],
        # rank: a typo in --run or --truth, and a table with nothing of the run's space
        ["rank", "--run", out, "--truth", str(tmp_path / "truth.json")],
        ["rank", "--run", str(held), "--truth", str(tmp_path / "truth.json")],
        ["rank", "--run", str(held), "--truth", str(nb201_table)],
        # a data kind that does not exist, or data of the other task
        ["search", "--data", "bogus:/x", "--out", out],
        ["data", "--data", "bogus:/x"],
        ["search", "--data", "digits", "--out", out])
    assert "supernet.precision='bf17' (expected one of fp32, bf16)" in said[0]
    assert "standalone.loss='l1'" in said[1] and "data.depth_kind='depht'" in said[1]
    assert "data.image_size" in said[2] and "landmarks.num=99999" in said[2]
    assert "supernet.precision='bf17'" in said[3]
    assert "--resume" in said[4]
    assert "v1-sync block 0: expected 5 edge ops" in said[5]
    assert "no --model given and no run under" in said[6]
    assert "ONNX model not found" in said[7]
    assert all("run: no such file or folder (give a model.safetensors" in line for line in said[8:11])
    assert "bf17" in said[11]
    assert f"data.spec='folder:{tmp_path / 'photos'}': no such file or folder" in said[12]
    assert f"--data folder:{tmp_path / 'photos'}: no such file or folder" in said[13]
    assert f"{out} is not a search run (no config.yaml)" in said[14]
    assert "truth.json" in said[15] and "not found" in said[15]
    assert "fewer than two architectures of space v1-sync" in said[16] and "1 belong to other" in said[16]
    assert all("unknown dataset kind 'bogus' in spec 'bogus:/x'" in line for line in said[17:19])
    assert "'digits' is a classification dataset; use it with a classification space" in said[19]
    assert loaded == "[]"  # (OpenCV, a tenth of a second, names the colormaps predict checks first)
    assert not (tmp_path / "run").exists()


def test_the_data_package_loads_its_loaders_when_asked_for():
    import depthnas.datasets as data
    from depthnas.datasets import build_splits
    from depthnas.datasets.splits import build_splits as at_home
    assert build_splits is at_home and data.DepthTransform.__module__ == "depthnas.datasets.transforms"
    assert set(data.__all__) <= set(dir(data))
    for name in data.__all__:  # each maps to the module that holds it
        assert getattr(data, name) is not None
    with pytest.raises(AttributeError, match="'depthnas.datasets' has no attribute 'build_split'"):
        data.build_split


def test_a_space_package_s_models_load_when_asked_for():
    from depthnas.spaces import darts, depth, nb201
    from depthnas.spaces.depth import DepthNet
    assert DepthNet is depth.DepthNet and DepthNet.__module__ == "depthnas.spaces.depth.model"
    assert nb201.NB201Net.__name__ == "NB201Net" and darts.DartsNet.__name__ == "DartsNet"
    assert {"DepthNet", "create_backbone", "DepthSpace"} <= set(dir(depth))  # tab completion
    with pytest.raises(AttributeError, match="'depthnas.spaces.depth' has no attribute 'Depthnet'"):
        depth.Depthnet


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


def test_a_child_exiting_as_the_stop_lands_is_not_reported(monkeypatch):
    """A loader worker's SIGCHLD pending when the SIGTERM handler ran: the handler set
    SIGCHLD to SIG_DFL, and Python then reported "OSError: Signal 17 ignored due to
    race condition" under the resume hint (1 run in 40 of a stress test)."""
    import signal
    import threading

    from depthnas.stopping import Terminated, stop_on_signals
    seen: list = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)  # where Python reports it
    both = {signal.SIGTERM, signal.SIGCHLD}
    child = signal.signal(signal.SIGCHLD, lambda *_: None)  # as torch's loaders set one
    try:
        with pytest.raises(Terminated), stop_on_signals([]):
            signal.pthread_sigmask(signal.SIG_BLOCK, both)
            # to this thread: signals to the process may reach another thread at once
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            signal.pthread_kill(threading.get_ident(), signal.SIGCHLD)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, both)  # both arrive at once
            sum(range(1000))  # (the handlers run here)
        sum(range(1000))
    finally:
        signal.signal(signal.SIGCHLD, child)
    assert [str(u.exc_value) for u in seen] == []


def test_after_a_stop_logging_s_fork_hook_failing_is_not_reported(monkeypatch):
    """The stop raised in logging's before-fork hook, before it took its lock; its
    after-fork hook then failed to release it, printed as "Exception ignored in
    _releaseLock ... cannot release un-acquired lock" under the resume hint."""
    import logging
    from types import SimpleNamespace

    from depthnas.stopping import stop_on_signals

    def reported(hook_owner, signalled) -> bool:
        seen: list = []
        monkeypatch.setattr(sys, "unraisablehook", seen.append)
        with stop_on_signals(signalled):
            sys.unraisablehook(SimpleNamespace(
                exc_type=RuntimeError, exc_value=RuntimeError("cannot release un-acquired lock"),
                exc_traceback=None, err_msg=None, object=hook_owner))
        return bool(seen)
    assert not reported(logging.getLogger, [15])
    assert reported(logging.getLogger, [])  # no stop: reported
    assert reported(print, [15])  # another owner: reported


def test_a_signal_ignored_at_the_start_stays_ignored():
    """A script without job control starts `depthnas search &` with SIGINT ignored, so
    that its own Ctrl-C spares the job; the run's handler took SIGINT over regardless."""
    import signal

    from depthnas.stopping import stop_on_signals
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals([]):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_run_stopped_before_it_kept_anything_is_not_told_to_resume(tmp_path):
    """Stopped before its config.yaml, `depthnas train` said `--resume`, which then
    failed with "nothing to resume"."""
    import argparse

    from depthnas.exits import resume_hint
    args = argparse.Namespace(command="train", resolved_out=str(tmp_path))
    assert resume_hint(args) == "nothing was kept yet: run the same command again, without --resume"
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    assert resume_hint(args) == f"continue with: depthnas train --out {tmp_path} --resume"


def test_a_loader_worker_forked_with_the_stop_handler_ends_quietly():
    """A worker forked while the run's SIGTERM handler was set, and signalled before
    torch set its own, raised the stop inside its start-up: a traceback under the
    resume hint (the SIGTERM test failed so in a clean-clone run)."""
    import os
    import signal

    from depthnas.stopping import stop_on_signals
    signalled: list[int] = []
    with stop_on_signals(signalled):
        ask_r, ask_w = os.pipe()
        answer_r, answer_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "worker": never returns into pytest
            try:
                os.close(ask_w)
                os.close(answer_r)
                os.write(answer_w, b"x")  # ready
                while os.read(ask_r, 1):  # answers each question, until the parent leaves
                    os.write(answer_w, b"x")
            finally:
                os._exit(3)  # (a Terminated raised in it ends here, at once)
        os.close(ask_r)
        os.close(answer_w)
        os.read(answer_r, 1)
        os.kill(pid, signal.SIGTERM)
        # asked after the signal, it answers only if the signal let it live (else the
        # pipe ends: empty read), however slowly a loaded machine schedules it
        os.write(ask_w, b"?")
        alive = os.read(answer_r, 1) == b"x"
        os.kill(pid, signal.SIGKILL)  # as the run's shutdown would end it
        os.waitpid(pid, 0)
        os.close(ask_w)
        os.close(answer_r)
    assert alive and signalled == []  # the run itself was not stopped


def test_evaluating_a_super_net_checkpoint_names_it_before_asking_for_data(run_dir, capsys):
    """It said "--data is needed" (the checkpoint's folder has no config.yaml), and named
    the super-net only once --data was given."""
    supernet = sorted((run_dir / "checkpoints").glob("epoch_*"))[-1] / "model.safetensors"
    assert main(["evaluate", "--checkpoint", str(supernet), "--no-progress"]) == 2
    assert f"{supernet} holds a super-net, not one architecture" in capsys.readouterr().err


def test_outputs_written_into_a_checkpoint_folder_are_said_to_go_with_it(tmp_path, capsys,
                                                                          monkeypatch):
    """An export beside a checkpoint's model (the default) was removed with the
    checkpoint by the training's next epochs, without a word."""
    from fixtures_models import make_model_file
    import depthnas.export.onnx_export as onnx_export
    out = tmp_path / "t"
    epoch = out / "checkpoints" / "epoch_0001"  # as a training mid-way holds it
    epoch.mkdir(parents=True)
    make_model_file(epoch / "model.safetensors")

    def exported(*args, **kw):  # said before the export: its 20 s are not needed here
        raise ValueError("export reached")
    monkeypatch.setattr(onnx_export, "export_onnx", exported)
    assert main(["export", "--checkpoint", str(epoch / "model.safetensors")]) == 2
    said = capsys.readouterr()
    assert "export reached" in said.err
    assert (f"note: {epoch / 'model.onnx'} lies in a checkpoint folder, which its training removes "
            "as it goes on") in said.out
    from depthnas.checkpoint import in_checkpoint
    assert not in_checkpoint(tmp_path / "kept.onnx") and not in_checkpoint(out / "model.onnx")
    assert not in_checkpoint(tmp_path / "epoch_0001" / "model.onnx")  # a folder of one's own
    assert not in_checkpoint(tmp_path / "checkpoints" / "epoch_best" / "model.onnx")
    assert not in_checkpoint(epoch / ".." / ".." / "eval.json")  # the run folder, by `..`


def test_a_report_that_cannot_be_written_beside_the_model_is_said_before_the_work(
        tmp_path, capsys, monkeypatch):
    """In a read-only run folder evaluate printed every metric, then failed to write."""
    import os
    from pathlib import Path
    import depthnas.evaluate
    out = tmp_path / "t"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == out else real(p, mode))
    monkeypatch.setattr(depthnas.evaluate, "evaluate", lambda *a, **k: pytest.fail("evaluated"))
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--no-progress"]) == 2
    assert (f"the report {out / 'eval.json'}: no permission to write in {out}; pass --out FILE to "
            "write it elsewhere") in capsys.readouterr().err


# ---- pipeline, run config, run folders and hints: each test here caught a one-line mutation
# that the rest of the suite let through
def _bare_results(tmp_path):
    """A search's stand-alone results with no data and no super-net: what is stored or
    looked up, and the trainings (monkeypatched) it would start."""
    from depthnas.config import Config
    from depthnas.spaces import get_space
    from depthnas.standalone_results import StandaloneResults
    cfg, out = Config(), tmp_path / "run"
    out.mkdir()
    cfg.out = str(out)
    said: list[str] = []
    results = StandaloneResults(cfg, get_space("v1-sync"), out, device="cpu", progress=False,
                                say=said.append)
    results.said = said
    return results


@pytest.mark.parametrize("edited", [0, 1])
def test_a_resume_stopped_among_the_landmarks_checks_every_finished_one(tmp_path, edited):
    """Before the super-net's first checkpoint, any finished landmark whose recipe
    config.yaml no longer gives is a refusal, whichever of them it is (only the first
    in file order, or all but it, went unseen)."""
    from depthnas.config import ConfigError
    from depthnas.recipe import recipe
    run = _bare_results(tmp_path)
    rec = recipe(run.cfg)
    for i, name in enumerate(("a_first", "b_second")):
        folder = run.out / "standalone" / name
        folder.mkdir(parents=True)
        theirs = {**rec, "lr": rec["lr"] * 2} if i == edited else rec
        (folder / "result.json").write_text(json.dumps({"arch": "v1-sync:c3,c3,c3,c3,c3",
                                                        "recipe": theirs}))
    from depthnas.search_resume import check_config_kept
    with pytest.raises(ConfigError, match="the run's stand-alone trainings trained with .*lr: "):
        check_config_kept(run.out, run.cfg)


def test_a_resumed_search_says_which_stand_alone_trainings_it_reuses(tmp_path, monkeypatch):
    """A landmark that finished before the stop is read back, and said so; not
    announced as "training stand-alone" (which it is not)."""
    from depthnas import standalone_results
    run = _bare_results(tmp_path)
    a, b = (run.space.from_string(f"v1-sync:{s}") for s in ("c3,c3,c3,c3,c3", "c1,c1,c1,c1,c1"))
    done = {run.space.to_string(a)}
    monkeypatch.setattr(standalone_results, "finished_training",
                        lambda folder, s, rec: {"arch": s} if s in done else None)
    monkeypatch.setattr(standalone_results, "train_standalone", lambda cfg, space, arch, *x, **k: {
        "val_loss": 0.5, "params": 10, "train_time_s": 1.0, "device": "cpu"})
    assert run([a, b], "landmark") == [0.5, 0.5]
    assert f"  reusing finished stand-alone [landmark] {run.space.to_string(a)}" in run.said
    assert f"  training stand-alone [landmark] {run.space.to_string(b)}" in run.said
    assert not any("training stand-alone [landmark] " + run.space.to_string(a) in m for m in run.said)


def test_the_run_s_time_is_kept_after_each_stand_alone_training(tmp_path, monkeypatch):
    """A run killed among its trainings resumes its clock from the last one finished,
    not from the stage's start: each training this rank runs is followed by the save."""
    from depthnas import config as config_mod
    from depthnas import pipeline, standalone_results
    run = pipeline.SearchRun(validate(config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}"])), progress=False)
    assert run.results.after_training == run._keep_time
    results = _bare_results(tmp_path)
    saved: list[int] = []
    results.after_training = lambda: saved.append(len(saved))
    monkeypatch.setattr(standalone_results, "train_standalone", lambda cfg, space, arch, *x, **k: {
        "val_loss": 0.5, "params": 10, "train_time_s": 1.0, "device": "cpu"})
    a, b = (results.space.from_string(f"v1-sync:{s}") for s in ("c3,c3,c3,c3,c3", "c1,c1,c1,c1,c1"))
    results([a, b], "landmark")
    assert saved == [0, 1]
    results([a, b], "top-1")  # stored now: nothing trains, nothing to save
    assert saved == [0, 1]


def test_a_stored_result_is_not_trained_again_and_only_another_run_s_is_marked_as_such(
        tmp_path, monkeypatch):
    """An architecture the store holds under this recipe is read, not trained; its
    source is "landmark store" only when its model lies outside this run's folder."""
    from depthnas import standalone_results
    from depthnas.recipe import recipe
    run = _bare_results(tmp_path)
    rec = recipe(run.cfg)
    own, other = (run.space.from_string(f"v1-sync:{s}") for s in ("c3,c3,c3,c3,c3", "c1,c1,c1,c1,c1"))
    for arch, folder, loss in ((own, run.out / "standalone" / "x", 0.25),
                               (other, tmp_path / "elsewhere", 0.5)):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"x")
        run.store.add(run.space.to_string(arch), "v1-sync", loss, rec,
                      model=folder / "model.safetensors")

    def no_training(*a, **k):
        raise AssertionError("a stored result was trained again")
    monkeypatch.setattr(standalone_results, "train_standalone", no_training)
    assert run([own, other], "top-1") == [0.25, 0.5]
    assert "source" not in run.records[own]
    assert run.records[other]["source"] == "landmark store"
    assert not any(run.space.to_string(own) in m for m in run.said)


def test_the_ranking_sample_keeps_a_twin_this_run_trained_already(tmp_path, monkeypatch):
    """A model whose twin string this run trained (older depthnas picked both) is still
    drawn into the ranking sample when the run trained that very string: as for picks."""
    from depthnas.config import Config
    from depthnas.pipeline import SearchRun
    from depthnas.spaces import get_space
    run = SearchRun.__new__(SearchRun)  # only what _rank_samples reads
    run.cfg, run.space = Config(), get_space("v1-sync")
    first, twin = (run.space.from_string(f"v1-sync:{s}") for s in ("c3,c3,ap,c1,none", "skip,c1,ap,c1,none"))
    assert run.space.function_key(first) == run.space.function_key(twin)
    run.cfg.search.rank_samples = 1
    run.results = types.SimpleNamespace(records={first: {"role": "landmark"}},
                                        trained_here=lambda arch: arch == twin)
    monkeypatch.setattr(run.space, "sample", lambda rng: twin)
    assert run._rank_samples() == [twin]


# ---- depthnas.run_config ----------------------------------------------------------
def _parse(argv):
    from depthnas.cli import build_parser
    return build_parser().parse_args(argv)


def test_channels_last_reaches_both_trainings():
    from depthnas.run_config import build_config
    cfg = build_config(_parse(["search", "--channels-last"]))
    assert cfg.supernet.channels_last and cfg.standalone.channels_last


def test_the_preset_hint_is_given_only_when_the_preset_alone_differs(tmp_path):
    """A typed flag that changes the run is the user's doing: the hint that the preset's
    values may have changed between versions would mislead there."""
    from depthnas import config as config_mod
    from depthnas.config import ConfigError
    from depthnas.run_config import build_config
    out = tmp_path / "run"
    out.mkdir()
    cfg = config_mod.load(None, "quick")
    cfg.out, cfg.supernet.grad_clip = str(out), 1.0 - (cfg.supernet.grad_clip or 0.0)
    config_mod.dump(cfg, out / "config.yaml")
    with pytest.raises(ConfigError) as refused:
        build_config(_parse(["search", "--preset", "quick", "--out", str(out), "--resume"]))
    assert "--preset quick's values may differ" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        build_config(_parse(["search", "--preset", "quick", "--seed", "7", "--out", str(out), "--resume"]))
    assert "seed: saved 0, given 7" in str(refused.value)
    assert "values may differ" not in str(refused.value)


# ---- depthnas.runs ----------------------------------------------------------------
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


# ---- depthnas.cli -----------------------------------------------------------------
def test_the_work_kept_hint_needs_work_in_the_folder(tmp_path):
    """A bad sample met before anything trained (config.yaml written, no run marker):
    no "the work done so far is kept"; once work is there, it is said."""
    import argparse
    from depthnas.exits import fixed_then
    from depthnas.datasets.io import DatasetError
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("seed: 0\n")
    args = argparse.Namespace(command="search", out=str(out), resolved_out=str(out))
    assert fixed_then(args, DatasetError("bad.png: truncated")) == ""
    (out / "metrics.jsonl").write_text("{}\n")
    assert "the work done so far is kept" in fixed_then(args, DatasetError("bad.png: truncated"))


@pytest.mark.parametrize("learned, warned", [(True, True), (False, False)])
def test_train_says_upside_down_only_of_a_model_that_learned_something(tmp_path, monkeypatch, capsys,
                                                                      learned, warned):
    import depthnas.standalone as standalone
    monkeypatch.setattr(standalone, "train_standalone", lambda cfg, space, arch, splits, out, **k: {
        "arch": space.to_string(arch), "val_loss": 0.1 if learned else 0.2, "params": 1000,
        "constant_prediction_loss": 0.2, "inverted": 90.0})
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--out", str(tmp_path / "t")]) == 0
    assert ("near and far swapped" in capsys.readouterr().err) == warned


def test_rank_keeps_each_sampled_row_with_its_own_loss(run_dir, tmp_path, monkeypatch):
    """--limit samples rows of the table: each must keep its own stand-alone loss. A
    super-net that scores every path at its table loss ranks any sample perfectly."""
    from depthnas.scoring import PathEvaluator
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    truth = json.loads(_truth_of(run_dir, tmp_path / "truth.json").read_text())
    for seed, value in zip(range(20, 28), (0.5, 0.1, 0.45, 0.15, 0.4, 0.2, 0.35, 0.25)):
        truth[space.to_string(space.sample(random.Random(seed)))] = value
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    monkeypatch.setattr(PathEvaluator, "score", lambda self, arch: truth[space.to_string(arch)])
    out = tmp_path / "rank.json"
    assert main(["rank", "--run", str(run_dir), "--truth", str(tmp_path / "truth.json"),
                 "--limit", "4", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 4 and report["kendall_tau"] == pytest.approx(1.0)


def test_rank_refuses_data_that_no_longer_splits_as_the_run_recorded(run_copy, tmp_path, capsys):
    """README: `rank` refuses data that no longer splits this way (it would recalibrate
    and score on another validation split than the super-net's)."""
    truth = _truth_of(run_copy, tmp_path / "truth.json")
    splits = json.loads((run_copy / "splits.json").read_text())
    splits["train"].append(splits["val"].pop())
    (run_copy / "splits.json").write_text(json.dumps(splits))
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--no-progress"]) == 2
    assert "no longer splits as" in capsys.readouterr().err


def test_rank_names_paths_that_score_inf_as_diverged(run_dir, tmp_path, monkeypatch, caplog):
    from depthnas.scoring import PathEvaluator
    scores = iter([float("inf"), 0.2, 0.3, 0.4])
    monkeypatch.setattr(PathEvaluator, "score", lambda self, arch: next(scores))
    truth = _truth_of(run_dir, tmp_path / "truth.json")
    with caplog.at_level("WARNING", logger="depthnas.rank"):
        assert main(["rank", "--run", str(run_dir), "--truth", str(truth), "--out", str(tmp_path / "r.json"),
                     "--no-progress"]) == 0
    assert "1 path(s) score non-finite in the super-net (diverged)" in caplog.text


# ---- train_standalone's own checks: each test caught a one-line mutation
STANDALONE_ARCH = "v1-sync:c3,skip,none,c1,ap"


def _train_standalone(out, arch=STANDALONE_ARCH, *extra):
    from depthnas.cli import build_parser
    from depthnas.data import load_splits
    from depthnas.run_config import build_config
    from depthnas.spaces import get_space
    from depthnas.standalone import train_standalone
    space = get_space("v1-sync")
    cfg = build_config(build_parser().parse_args(
        ["train", "--arch", "x", *TRAIN_TINY, *extra, "--out", str(out)]))
    return train_standalone(cfg, space, space.from_string(arch), load_splits(cfg), out, progress=False)


def test_a_folder_holding_another_architecture_s_result_trains_this_one(tmp_path):  # ST2
    other = "v1-sync:c1,c1,c1,c1,c1"
    _train_standalone(tmp_path / "t", other)
    got = _train_standalone(tmp_path / "t")
    assert got["arch"] == STANDALONE_ARCH
    assert got["val_loss"] == pytest.approx(_train_standalone(tmp_path / "fresh")["val_loss"], rel=1e-6)


def test_a_result_without_its_model_file_is_not_a_finished_training(tmp_path):  # ST3
    from depthnas.standalone import finished_training
    rec = {"epochs": 1}
    (tmp_path / "result.json").write_text(json.dumps({"arch": STANDALONE_ARCH, "recipe": rec, "val_loss": 0.1}))
    assert finished_training(tmp_path, STANDALONE_ARCH, rec) is None  # no model.safetensors


def test_a_result_from_before_recipes_were_recorded_differs_only_by_architecture(tmp_path):  # ST5
    from depthnas.standalone import training_changes
    (tmp_path / "result.json").write_text(json.dumps({"arch": STANDALONE_ARCH, "val_loss": 0.1}))
    assert training_changes(tmp_path, STANDALONE_ARCH, {"epochs": 1, "lr": 0.1}) == []
    other = training_changes(tmp_path, "v1-sync:c1,c1,c1,c1,c1", {"epochs": 1})
    assert other == [f"arch: saved {STANDALONE_ARCH!r}, now 'v1-sync:c1,c1,c1,c1,c1'"]


def test_a_model_trained_again_records_this_session_s_date(tmp_path):  # ST7
    out = tmp_path / "t"
    _train_standalone(out)
    result = json.loads((out / "result.json").read_text())
    result["date"] = "2000-01-01T00:00:00"
    (out / "result.json").write_text(json.dumps(result))
    (out / "model.safetensors").unlink()  # no checkpoint left: trained again
    assert _train_standalone(out)["date"] != "2000-01-01T00:00:00"


def test_a_stopped_training_of_other_settings_is_not_resumed(tmp_path, caplog):  # ST8
    from depthnas.trainer import Trainer
    save = Trainer.save

    def stopped_after_epoch_1(self):
        path = save(self)
        if self.state.epoch == 1:
            raise KeyboardInterrupt
        return path
    out = tmp_path / "t"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "save", stopped_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            _train_standalone(out, STANDALONE_ARCH, "--epochs", "2")
    caplog.clear()
    with caplog.at_level("INFO"):
        got = _train_standalone(out, STANDALONE_ARCH, "--epochs", "2", "--set", "standalone.lr=0.05")
    assert "from scratch" in caplog.text and "resuming after epoch" not in caplog.text
    fresh = _train_standalone(tmp_path / "fresh", STANDALONE_ARCH, "--epochs", "2", "--set", "standalone.lr=0.05")
    assert got["val_loss"] == pytest.approx(fresh["val_loss"], rel=1e-6)


def test_a_model_saved_again_from_its_checkpoint_keeps_its_training_s_date(tmp_path, monkeypatch):  # ST10
    import depthnas.standalone as standalone
    out = tmp_path / "t"
    monkeypatch.setattr("depthnas.checkpoint.Checkpointer.clear", lambda self: None)
    first = _train_standalone(out)
    (out / "model.safetensors").unlink()  # its last checkpoint is still there

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2099, 1, 1)
    monkeypatch.setattr(standalone, "_dt", types.SimpleNamespace(datetime=Later))
    again = _train_standalone(out)
    assert (again["date"], again["train_time_s"]) == (first["date"], first["train_time_s"])


@pytest.mark.parametrize("name", ["depth", "nb201", "darts"])
def test_every_name_a_space_package_exports_loads(name):
    """As test_the_data_package_loads_its_loaders_when_asked_for does for the data:
    a name left out of exports_on_first_use broke `from depthnas.spaces.nb201 import *`."""
    import importlib
    package = importlib.import_module(f"depthnas.spaces.{name}")
    assert set(package.__all__) <= set(dir(package))
    for export in package.__all__:
        assert getattr(package, export) is not None, export


def test_the_work_kept_hint_is_only_for_bad_data_or_a_failed_write(tmp_path):
    """Any other error in a folder that holds work (a refused --resume, a bug) is not
    one that "once the file can be written" goes away."""
    import argparse
    from depthnas.exits import fixed_then
    from depthnas.config import ConfigError
    from depthnas.datasets.io import DatasetError
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("seed: 0\n")
    (out / "metrics.jsonl").write_text("{}\n")
    args = argparse.Namespace(command="search", out=str(out), resolved_out=str(out))
    assert "the work done so far is kept" in fixed_then(args, DatasetError("bad.png: truncated"))
    for err in (ValueError("x"), ConfigError("--arch must name it"), RuntimeError("y")):
        assert fixed_then(args, err) == "", err


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


def test_train_checks_its_settings_for_the_space_arch_names(tmp_path, monkeypatch, capsys):
    """An nb201 training's own loss (ce) and data (digits) were refused, checked first
    against the preset's depth space. Under torchrun without --out the command stops at
    the next check, after the configuration's."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.chdir(tmp_path)
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["train", "--arch", nb201, "--data", "digits", "--set", "standalone.loss=ce"]) == 2
    err = capsys.readouterr().err
    assert "under torchrun pass --out" in err and "invalid configuration" not in err
    assert list(tmp_path.iterdir()) == []


def test_train_names_a_typo_in_space_as_such(tmp_path, capsys):
    """With the config checked after --arch named the space, `--space v1sync` was said
    as "is one of space v1-sync, not of --space v1sync"; and a broken config waited
    for an --arch to be named."""
    out = str(tmp_path / "r")
    assert main(["train", "--arch", "v1-sync:c1,c3,skip,skip,ap", "--space", "v1sync", "--out", out]) == 2
    assert "invalid configuration: space: unknown search space 'v1sync'" in capsys.readouterr().err
    assert main(["train", "--set", "supernet.precision=bf17", "--out", out]) == 2
    assert "supernet.precision='bf17'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_refused_config_loads_no_opencv_either(tmp_path):
    """fixed_then asks whether the folder holds work before it imports DatasetError
    (OpenCV): a config refused before any run folder is named needs neither."""
    said, loaded = _refused_without(("cv2", "torch"), tmp_path,
                                    ["search", "--set", "supernet.precision=bf17", "--out", str(tmp_path / "r")])
    assert "supernet.precision='bf17'" in said[0]
    assert loaded == "[]"


def test_settings_refused_for_the_space_arch_names_are_said_before_torch_loads(tmp_path):
    """train's second check (the space --arch names, not the preset's) comes before the
    imports of the training."""
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    said, loaded = _refused_without(("torch",), tmp_path,
                                    ["train", "--arch", nb201, "--data", "digits", "--set",
                                     "standalone.loss=ssitrim", "--out", str(tmp_path / "r")])
    assert "classification spaces train with cross-entropy" in said[0]
    assert loaded == "[]"
    assert not (tmp_path / "r").exists()


def test_an_export_s_bad_out_is_said_before_torch_loads(tmp_path):
    """cmd_export checks --out (a folder, no .onnx suffix, below a file) before the
    exporter loads."""
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"not read before --out is checked")
    (tmp_path / "folder").mkdir()
    said, loaded = _refused_without(("torch", "onnxruntime"), tmp_path,
                                    ["export", "--checkpoint", str(model), "--out", str(tmp_path / "folder")],
                                    ["export", "--checkpoint", str(model), "--out", str(tmp_path / "m.txt")],
                                    ["export", "--checkpoint", str(model), "--out", str(model / "m.onnx")])
    assert "is a folder; name the ONNX file to write" in said[0]
    assert "an ONNX file must end in .onnx" in said[1]
    assert f"{model} is a file, not a folder" in said[2]
    assert loaded == "[]"


def test_a_bad_model_file_is_said_by_the_demo_before_gradio_loads(tmp_path):
    """The model loads (and a damaged one is named) before gradio's seconds of import."""
    import socket
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\0" * 64)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    said, loaded = _refused_without(("gradio",), tmp_path, ["demo", "--model", str(bad), "--port", str(port)])
    assert "model.safetensors" in said[0]
    assert loaded == "[]"


def test_a_training_s_architecture_is_read_from_its_checkpoint(tmp_path):
    """trained_arch: a training checkpointed but without arch.json (a folder from before
    it was written, or one it was lost from) still names its architecture."""
    from torch import nn
    from depthnas.checkpoint import Checkpointer
    from depthnas.runs import trained_arch
    arch = "v1-sync:c3,skip,none,c1,ap"
    Checkpointer(tmp_path / "t" / "checkpoints").save(1, nn.Linear(1, 1), {}, metadata={"arch": arch})
    assert trained_arch(tmp_path / "t") == arch
    assert trained_arch(tmp_path / "nothing") is None


def test_a_landmark_count_lowered_since_the_draw_is_refused_too(tmp_path):
    """initial_landmarks.json holds the 3 landmarks a run drew; config.yaml edited to
    landmarks.num 2 resumed with all 3 (the penalty's pairs and the report's counts
    then disagree with the config the run records), where a raised count was refused."""
    from depthnas import config as config_mod
    from depthnas.search_resume import drawn_landmarks
    from depthnas.spaces import get_space
    drawn = ["v1-sync:c3,c3,c3,c3,c3", "v1-sync:c1,c1,c1,c1,c1", "v1-sync:skip,ap,none,c1,none"]
    path = tmp_path / "initial_landmarks.json"
    path.write_text(json.dumps(drawn))
    cfg = config_mod.Config()
    for num in (2, 4):
        cfg.landmarks.num = num
        with pytest.raises(config_mod.ConfigError, match=f"holds the 3 landmark.s. this run drew as it "
                                                         f"started, but .* landmarks.num {num}"):
            drawn_landmarks(path, get_space("v1-sync"), cfg)
    cfg.landmarks.num = 3
    assert drawn_landmarks(path, get_space("v1-sync"), cfg) == drawn


def test_a_super_net_trained_again_drops_the_old_searches_result_records_too(tmp_path):
    """The searches of a super-net whose checkpoints were deleted are removed, with
    their log records: a 'result' record left in metrics.jsonl (the old run's best and
    its Kendall tau) would be read as the new super-net's."""
    from depthnas.search_resume import drop_stale_searches
    (tmp_path / "search_1.json").write_text("{}")
    records = [{"phase": "supernet", "epoch": 1}, {"phase": "search", "iteration": 1},
               {"phase": "result", "kendall_tau": 0.5}, {"phase": "standalone", "arch": "a"}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    said = []
    drop_stale_searches(tmp_path, said.append)
    assert not (tmp_path / "search_1.json").exists()
    kept = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert kept == [records[0], records[3]]
    assert said == ["the super-net trains from the start, so the searches of the earlier one "
                    "(search_1.json) were removed"]


def test_a_depth_kind_data_cannot_use_is_refused_before_the_loaders_load(tmp_path):
    """`depthnas data --data redweb:DIR --depth-kind disparity`: the kind is ignored by
    redweb's files, a fault of the command line, said before OpenCV's and torch's
    seconds of import, as `search` says it."""
    said, loaded = _refused_without(("cv2", "torch"), tmp_path,
                                    ["data", "--data", f"redweb:{tmp_path}", "--depth-kind", "disparity"])
    assert "depth kind 'disparity' applies to folder: data; redweb: files hold a known kind" in said[0]
    assert loaded == "[]"


def test_a_super_net_trained_again_drops_every_earlier_search(tmp_path):
    """A super-net restarted after two finished searches: search_2.json left behind
    would be 'resumed' by the new super-net's second iteration, its picks those of
    the super-net that is gone."""
    from depthnas.search_resume import drop_stale_searches
    for t in (1, 2):
        (tmp_path / f"search_{t}.json").write_text("{}")
    said = []
    drop_stale_searches(tmp_path, said.append)
    assert not list(tmp_path.glob("search_*.json"))
    assert said == ["the super-net trains from the start, so the searches of the earlier one "
                    "(search_1.json, search_2.json) were removed"]


def test_a_fresh_super_net_without_earlier_searches_says_nothing_of_them(tmp_path):
    """Every new search starts its super-net from scratch: no 'searches ... were
    removed' line when there were none."""
    from depthnas.search_resume import drop_stale_searches
    said = []
    drop_stale_searches(tmp_path, said.append)
    assert said == []


@pytest.mark.parametrize("value, accepted", [
    (0, True), (12.5, True), (-1, False), (True, False), (float("nan"), False)])
def test_elapsed_json_holds_a_number_of_seconds_at_least_zero(tmp_path, value, accepted):
    """elapsed.json (a run's wall time over its sessions): 0 s is a time; a negative
    count, NaN or a boolean is a damaged file, named, not added to the report's time."""
    from depthnas.run_clock import RunClock
    path = tmp_path / "elapsed.json"
    path.write_text(json.dumps({"elapsed_s": value}))  # NaN as JSON's NaN, which json reads
    if accepted:
        assert RunClock(path).elapsed() >= value
    else:
        with pytest.raises(ValueError, match="'elapsed_s' should be a number of seconds"):
            RunClock(path)


def test_a_timeout_between_ranks_names_the_setting_that_sets_it(monkeypatch):
    """gloo says "Timed out waiting ...", NCCL "... timed out": either is a wait the
    user can lengthen, and the line says with what."""
    from depthnas.exits import lost_peers
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for text in ("[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:81] Timed out "
                 "waiting 1800000ms for recv operation to complete",
                 "[Rank 1] Watchdog caught collective operation timeout: NCCL op timed out"):
        said = lost_peers(RuntimeError(text))
        assert said is not None and "DEPTHNAS_DIST_TIMEOUT_S sets how long ranks wait" in said, text
    said = lost_peers(RuntimeError("[../third_party/gloo] Connection closed by peer"))
    assert said is not None and "DEPTHNAS_DIST_TIMEOUT_S" not in said


def test_an_error_without_words_is_named_by_its_type():
    """`error: ` alone named nothing."""
    from depthnas.exits import plain_message
    assert plain_message(OSError()) == "OSError"
    assert plain_message(ValueError("x.json: not JSON")) == "x.json: not JSON"


def test_messages_name_a_few_of_many():
    """A message lists the first few things at fault and says there are more."""
    from depthnas.terminal import listed
    assert listed(["a", "b", "c"]) == "a, b, c"
    assert listed(["a", "b", "c", "d"]) == "a, b, c ..."
    assert listed(range(10), 5, "; ") == "0; 1; 2; 3; 4 ..."
    assert listed([]) == ""


def test_a_stand_alone_result_in_the_store_comes_before_the_truth_table(tmp_path):
    """StandaloneResults takes a loss from the first of the landmark store, the truth
    table, a training: an architecture this recipe trained already keeps its trained
    loss (and its model), not the table's number."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    arch = "v1-sync:c3,c3,ap,c1,none"
    table = tmp_path / "truth.json"
    table.write_text(json.dumps({arch: 0.123}))
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", f"search.truth_table={table}", "data.synthetic_samples=40"])
    said: list[str] = []
    run = pipeline.SearchRun(validate(cfg), progress=False, say=said.append)
    run._prepare()
    model = tmp_path / "earlier" / "model.safetensors"  # an earlier run's training
    model.parent.mkdir()
    model.write_bytes(b"x")
    run.results.store.add(arch, run.space.name, 0.5, run.results.recipe, model=model)
    assert run.results([run.space.from_string(arch)], "landmark") == [0.5]
    [record] = run.results.records.values()
    assert record["source"] == "landmark store"
    assert pathlib.Path(record["model"]).resolve() == model.resolve()
    assert not any("from the truth table" in line for line in said)


def test_a_single_process_search_records_no_rank_for_its_trainings(tmp_path, monkeypatch):
    """README: `trained_on_rank` is what a torchrun search records, for each training
    of its last session; a search of one process names no rank."""
    from depthnas import config as config_mod
    from depthnas import pipeline, standalone_results
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", "data.synthetic_samples=40"])
    run = pipeline.SearchRun(validate(cfg), progress=False, say=lambda line: None)
    run._prepare()
    monkeypatch.setattr(standalone_results, "train_standalone", lambda *a, **k: {
        "val_loss": 0.25, "params": 10, "train_time_s": 1.0, "device": "cpu"})
    arch = run.space.from_string("v1-sync:c3,c3,ap,c1,none")
    assert run.results([arch], "landmark") == [0.25]
    assert "trained_on_rank" not in run.results.records[arch]
    assert "source" not in run.results.records[arch]  # trained in this run


def test_a_training_s_inverted_share_reaches_the_record_and_the_store(tmp_path, monkeypatch):
    """The report warns of a best model upside down from results.json's `inverted`; it
    comes to the record through the landmark store, so the store must keep it."""
    from depthnas import config as config_mod
    from depthnas import pipeline, standalone_results
    from depthnas.landmarks import LandmarkStore
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", "data.synthetic_samples=40"])
    run = pipeline.SearchRun(validate(cfg), progress=False, say=lambda line: None)
    run._prepare()
    monkeypatch.setattr(standalone_results, "train_standalone", lambda *a, **k: {
        "val_loss": 0.25, "params": 10, "train_time_s": 1.0, "device": "cpu", "inverted": 80.0})
    arch = run.space.from_string("v1-sync:c3,c3,ap,c1,none")
    run.results([arch], "landmark")
    assert run.results.records[arch]["inverted"] == 80.0
    [entry] = LandmarkStore(tmp_path / "r" / "landmarks.json").entries
    assert entry["inverted"] == 80.0


def test_a_stored_result_of_other_samples_is_trained_again(tmp_path, monkeypatch):
    """Stand-alone results are comparable only on the same samples: once the run's
    splits are known, the recipe holds their digest, and a store entry of other data
    (the same settings) is not reused, while this run's own training is stored with it."""
    from depthnas import config as config_mod
    from depthnas import pipeline, standalone_results
    from depthnas.recipe import SAMPLES, samples_digest
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", "data.synthetic_samples=40"])
    run = pipeline.SearchRun(validate(cfg), progress=False, say=lambda line: None)
    run._prepare()
    arch = "v1-sync:c3,c3,ap,c1,none"
    run.results.store.add(arch, run.space.name, 0.5, {**run.results.recipe, SAMPLES: "0" * 16})
    monkeypatch.setattr(standalone_results, "train_standalone", lambda *a, **k: {
        "val_loss": 0.25, "params": 10, "train_time_s": 1.0, "device": "cpu"})
    assert run.results([run.space.from_string(arch)], "landmark") == [0.25]
    assert run.results.store.entries[-1]["recipe"][SAMPLES] == samples_digest(run.splits)


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


def test_a_file_holding_the_one_line_string_is_an_architecture(tmp_path):
    """Only a file of several lines is refused; one line (with its newline) is the string."""
    from depthnas.arch_arg import read_arch_arg
    arch = tmp_path / "arch.txt"
    arch.write_text("v1-sync:c3,skip,none,c1,ap\n")
    assert read_arch_arg(str(arch)) == ("v1-sync:c3,skip,none,c1,ap", str(arch))
