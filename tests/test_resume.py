"""`depthnas search --resume`: a stopped or finished search resumes to the uninterrupted
result, and a resume refuses what would change the run (other flags, an edited or
damaged config.yaml, run files of the wrong shape, data that no longer splits as
recorded); the searches of a super-net trained again are dropped."""

import json

import pytest
import torch

from depthnas.cli import main

from cli_helpers import TINY, TRAIN_TINY


def test_existing_run_needs_resume(run_dir, capsys):
    assert main(["search", *TINY, "--out", str(run_dir)]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


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


def test_a_report_that_fails_still_leaves_the_results_written(run_copy, monkeypatch):
    """results.json marks the search finished; without it a resume re-ran the end only to
    meet the same failing report again, and the results of the run were never written."""
    import depthnas.report
    (run_copy / "results.json").unlink()

    def broken(out, summary):
        raise RuntimeError("plotting broke")
    monkeypatch.setattr(depthnas.report, "write_report", broken)
    with pytest.raises(RuntimeError, match="plotting broke"):
        main(["search", "--out", str(run_copy), "--resume", "--no-progress"])
    results = json.loads((run_copy / "results.json").read_text())
    assert results["best"]["string"] and results["architectures"]


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
    # the run's own config.yaml, whose out: names it, is not how a run is resumed: said
    assert main(["search", "--config", str(run_copy / "config.yaml"), "--resume"]) == 2
    assert ("--resume needs --out: the folder of the run to continue (`--out RUN --resume` "
            "reads the run's config.yaml from there: no --config)") in capsys.readouterr().err


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


def test_resume_of_a_folder_without_a_run_is_an_error(tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path / "typo"), "--resume"]) == 2
    assert "nothing to resume in" in capsys.readouterr().err


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


def test_a_search_stopped_inside_a_landmark_s_training_refuses_an_edited_config_yaml(run_copy, capsys):
    """Only finished trainings (result.json) were compared: a landmark stopped after
    some epochs was trained from scratch under the edited settings, its epochs lost."""
    import shutil

    import yaml

    from depthnas.checkpoint import Checkpointer, read_metadata
    from depthnas.models import load_model
    shutil.rmtree(run_copy / "checkpoints")  # stopped among the landmarks
    (run_copy / "results.json").unlink()
    for result in (run_copy / "standalone").glob("*/result.json"):
        result.unlink()
    folder = sorted((run_copy / "standalone").iterdir())[0]  # its first epoch checkpointed
    model_file = folder / "model.safetensors"
    Checkpointer(folder / "checkpoints").save(1, load_model(model_file)[0], {}, read_metadata(model_file))
    model_file.unlink()
    epoch = (folder / "checkpoints" / "epoch_0001" / "model.safetensors").read_bytes()
    path = run_copy / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["standalone"]["lr"] = 0.004
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
    assert "(lr: saved 0.003, now 0.004)" in capsys.readouterr().err
    assert (folder / "checkpoints" / "epoch_0001" / "model.safetensors").read_bytes() == epoch


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


@pytest.mark.parametrize("edit, said", [
    (lambda d: d.pop("generation"), "(KeyError: 'generation')"),
    (lambda d: d.update(generation="3"), "(TypeError: generation is '3', not a whole number)"),
    (lambda d: d["scores"][0].__setitem__(1, "low"), "(TypeError: a score is 'low', not a number)"),
])
def test_a_search_checkpoint_without_its_generation_or_with_a_score_of_text_is_named(
        run_copy, capsys, edit, said):
    """Checked as its other fields are: a KeyError traceback, or a TypeError in the
    ranking of the scores."""
    path = run_copy / "search_1.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    (run_copy / "search_2.json").unlink()  # iteration 1's search is read back on the resume
    (run_copy / "results.json").unlink()
    assert main(["search", "--out", str(run_copy), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"search checkpoint {path} is damaged {said}" in err and "Traceback" not in err, err


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
