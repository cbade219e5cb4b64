"""`depthnas train`: one architecture trained, resumed, trained again under another recipe;
its --arch strings and files, and its errors (a full disk, a diverged or upside-down
model, a bad sample, backbone weights of another model); train_standalone's own checks."""

import datetime
import json
import shutil
import types

import pytest
import torch
import yaml

from depthnas import config as config_mod
from depthnas.cli import main
from depthnas.spaces import get_space

from cli_helpers import TINY, TRAIN_TINY


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


def test_a_damaged_result_is_set_aside_and_its_training_done_again(tmp_path, capsys, caplog):
    """A result.json cut short (a full disk) stopped every resume with "not valid JSON"
    and no word of what to do; the search's stand-alone results met the same."""
    out = tmp_path / "t"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    loss = json.loads((out / "result.json").read_text())["val_loss"]
    text = (out / "result.json").read_text()
    (out / "result.json").write_text(text[:40])
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "result.json: not valid JSON" in caplog.text and "else its training done again" in caplog.text
    assert (out / "result.json.damaged").read_text() == text[:40]  # kept, not lost
    assert json.loads((out / "result.json").read_text())["val_loss"] == pytest.approx(loss)


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
    # a training that had pretrained weights, or has no timm backbone, is not told to use some
    from depthnas.train_cli import _warn_if_no_better_than_constant
    _warn_if_no_better_than_constant(result, advise_weights=False)
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
    # the same in a JSON file's "space": it was the bare "unknown search space 'v9'"
    typo = tmp_path / "typo.json"
    typo.write_text('{"space": "v9", "string": "v1-sync:c3,skip,none,c1,ap"}')
    assert main(["train", "--arch", str(typo), *TRAIN_TINY, "--out", str(tmp_path / "x")]) == 2
    assert (f"--arch {typo}: architecture JSON 'v1-sync:c3,skip,none,c1,ap': its \"space\" 'v9' "
            "does not exist (spaces: v1-sync") in capsys.readouterr().err
    # a "space" of null names none, as the spaces read it: the string's prefix does
    from depthnas.arch_arg import space_of
    assert space_of('{"space": null, "string": "v2-sync:c3,skip,none,c1,ap+bil"}', None, "v1-sync") == "v2-sync"


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


def test_train_resume_refuses_another_architecture(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    assert main(["train", "--arch", "v1-sync:c1,c1,c1,c1,c1", *TRAIN_TINY, "--out", str(out),
                 "--resume"]) == 2
    assert "holds a training of v1-sync:c3,skip,none,c1,ap" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text())["arch"] == "v1-sync:c3,skip,none,c1,ap"


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


def test_checkpoints_a_stop_left_beside_a_finished_training_go_at_its_resume(tmp_path, monkeypatch):
    """A stop after result.json, before the checkpoints were removed: every resume read
    the result and kept them, optimizer state and all (about 1 GB an epoch at the
    paper's size, dozens of trainings a search)."""
    out = tmp_path / "t"
    monkeypatch.setattr("depthnas.checkpoint.Checkpointer.clear", lambda self: None)
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    monkeypatch.undo()
    assert (out / "checkpoints").is_dir()
    model = (out / "model.safetensors").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert not (out / "checkpoints").exists() and (out / "model.safetensors").read_bytes() == model


def test_a_validation_loss_that_is_not_a_number_is_not_recorded(tmp_path, capsys, monkeypatch):
    """A NaN result.json was reused by every resume, and the landmark store refused to
    hold it: a search stopped there for good."""
    out = tmp_path / "t"
    monkeypatch.setattr("depthnas.standalone.evaluate_fixed", lambda *a, **k: float("nan"))
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 2
    assert "v1-sync:c3,skip,none,c1,ap: stand-alone validation SSI loss nan" in capsys.readouterr().err
    assert not (out / "result.json").exists() and (out / "checkpoints").is_dir()
    # one an older depthnas recorded is set aside, not read back as the finished result
    monkeypatch.undo()
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out / "t2")]) == 0
    result = json.loads((out / "t2" / "result.json").read_text())
    (out / "t2" / "result.json").write_text(json.dumps({**result, "val_loss": float("nan")}))
    capsys.readouterr()
    assert main(["train", "--out", str(out / "t2"), "--resume", "--no-progress"]) == 0
    assert "already" not in capsys.readouterr().out
    assert (out / "t2" / "result.json.damaged").is_file()
    assert json.loads((out / "t2" / "result.json").read_text())["val_loss"] == pytest.approx(result["val_loss"])


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
    from cli_helpers import LockHolder
    with LockHolder(out, tmp_path) as other:
        (out / ".depthnas.lock").write_text(f"{other.pid}\n")
        for command in (["export", "--run", str(out), "--out", str(tmp_path / "m.onnx")],
                        ["evaluate", "--checkpoint", str(out), "--split", "val"]):
            assert main(command) == 2
            assert (f"{out} holds no model yet: its training is still running (depthnas process "
                    f"{other.pid}), and writes its model when it ends") in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(out)]) == 2  # ended: stopped, as before
    assert "its training stopped before the end" in capsys.readouterr().err


def test_a_diverged_training_is_an_error_line_not_a_traceback(tmp_path, capsys):
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY,
                 "--set", "standalone.lr=1e30", "--set", "standalone.backbone_lr=1e30",
                 "--epochs", "2", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "error: standalone: non-finite" in err and "in a new --out" in err


def test_a_training_s_result_json_of_the_wrong_shape_is_named(tmp_path, caplog):
    out = tmp_path / "t"
    argv = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]
    assert main(argv) == 0
    (out / "result.json").write_text("[1, 2]")
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0  # trained again
    assert f"{out / 'result.json'}: expected a JSON object, found array" in caplog.text


def test_a_mistyped_arch_file_is_not_read_as_an_architecture(tmp_path, capsys):
    missing = tmp_path / "runs" / "x" / "best_arch.jsn"
    for arg in (str(missing), str(tmp_path / "best_arch.json")):
        assert main(["train", "--arch", arg, *TRAIN_TINY, "--out", str(tmp_path / "t")]) == 2
        assert f"--arch {arg}: no such file" in capsys.readouterr().err


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


def test_train_standalone_leaves_the_caller_s_random_streams_as_they_were(tmp_path):
    import random
    import numpy as np
    import torch
    random.seed(5); np.random.seed(5); torch.manual_seed(5)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(5); np.random.seed(5); torch.manual_seed(5)
    _train_standalone(tmp_path / "t")
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


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


def test_a_file_holding_the_one_line_string_is_an_architecture(tmp_path):
    """Only a file of several lines is refused; one line (with its newline) is the string."""
    from depthnas.arch_arg import read_arch_arg
    arch = tmp_path / "arch.txt"
    arch.write_text("v1-sync:c3,skip,none,c1,ap\n")
    assert read_arch_arg(str(arch)) == ("v1-sync:c3,skip,none,c1,ap", str(arch))


MUTANT_ARCH = "v1-sync:c3,skip,none,c1,ap"

def test_a_training_resumed_on_data_that_now_splits_differently_is_refused(tmp_path, capsys):
    """train --resume must refuse data that gained samples (its validation samples
    would be trained on), as a search's resume does. [train_cli.py:48]"""
    from test_datasets import make_folder
    data = make_folder(tmp_path / "data", n=12)
    out = tmp_path / "t"
    assert main(["train", "--arch", MUTANT_ARCH, *TRAIN_TINY, "--batch-size", "4",
                 "--data", f"folder:{data}", "--out", str(out)]) == 0
    make_folder(data, n=16)  # four samples more: the split is drawn again
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "no longer splits as" in capsys.readouterr().err


def test_train_without_arch_says_why_only_under_resume(tmp_path, capsys):
    """[train_cli.py:76-77]"""
    empty = tmp_path / "empty"  # a training stopped before it named its architecture
    empty.mkdir()
    config_mod.dump(config_mod.load(preset="quick"), empty / "config.yaml")
    assert main(["train", "--out", str(empty), "--resume"]) == 2
    assert f"--arch is needed: {empty} holds no checkpoint" in capsys.readouterr().err
    assert main(["train", *TRAIN_TINY, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "--arch is needed" in err and "holds no checkpoint" not in err


def test_a_config_file_that_names_no_space_lets_arch_choose_it(tmp_path, capsys):
    """Only a --config that sets `space` pins the space. [train_cli.py:97]"""
    config = tmp_path / "mine.yaml"
    config.write_text("seed: 3\n")
    out = tmp_path / "t"
    assert main(["train", "--arch", "v2-sync:c3,skip,none,c1,ap+ps", "--config", str(config),
                 *TRAIN_TINY, "--out", str(out)]) == 0
    assert json.loads((out / "arch.json").read_text())["space"] == "v2-sync"


def test_a_classifier_that_learned_nothing_is_told_so_in_its_own_terms(tmp_path, capsys):
    """[train_cli.py:128]"""
    from depthnas.train_cli import _say_trained
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"),
                                  ["space=nb201", "standalone.loss=ce", "data.spec=digits"])
    result = {"arch": "nb201", "val_loss": 2.3, "constant_prediction_loss": 2.3, "params": 10}
    _say_trained(result, cfg, get_space("nb201"), tmp_path, dead=False)
    err = capsys.readouterr().err
    assert "naming the most frequent class" in err and "ReLU" not in err


def test_an_architecture_that_ignores_its_input_is_said_to_before_it_trains(tmp_path, capsys):
    """A dead cell's model was trained and then told to try a lower learning rate or
    more epochs, neither of which can help a model that never sees the image."""
    dead = "v1-sync:none,none,none,none,none"
    assert get_space("v1-sync").ignores_input(get_space("v1-sync").parse(dead))
    assert main(["train", "--arch", dead, *TRAIN_TINY, "--out", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert (f"warning: {dead} gives one output whatever the image (its none ops cut every path "
            "from the image to the output)") in err
    assert "--set standalone.lr" not in err


def test_train_lets_cudnn_pick_kernels_per_shape_and_then_leaves_it_as_it_was(
        tmp_path, monkeypatch):
    """cuDNN times its kernels per shape while a run works (one input size), and the
    caller's setting is back afterwards: cli.main left it on for a script's or
    notebook's later work on images of many sizes."""
    import contextlib

    import depthnas.run_start
    seen = []

    def watched(folder_of):
        @contextlib.contextmanager
        def run_folder(*args, **kwargs):
            seen.append(torch.backends.cudnn.benchmark)
            with folder_of(*args, **kwargs) as out:
                yield out
        return run_folder

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(depthnas.run_start, "run_folder", watched(depthnas.run_start.run_folder))
    assert main(["train", "--arch", MUTANT_ARCH, *TRAIN_TINY, "--out", str(tmp_path / "t")]) == 0
    assert seen == [True] and torch.backends.cudnn.benchmark is False


def test_a_stop_in_a_clock_named_folder_taken_already_names_the_folder_used(
        tmp_path, monkeypatch, capsys):
    """Two runs started in the same second: the second's Ctrl-C hint named the first's
    folder. [run_start.py:71]"""
    from depthnas import standalone
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_mod, "default_out", lambda command: "runs/train-20261129-184750")
    (tmp_path / "runs" / "train-20261129-184750").mkdir(parents=True)  # the other run's

    def stop(self, *a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(standalone.Trainer, "fit", stop)
    main(["train", "--arch", MUTANT_ARCH, *TRAIN_TINY])
    assert "--out runs/train-20261129-184750-2 --resume" in capsys.readouterr().err


def test_train_names_the_model_file_it_wrote(tmp_path, capsys):
    """[train_cli.py:126]"""
    out = tmp_path / "t"
    assert main(["train", "--arch", MUTANT_ARCH, *TRAIN_TINY, "--out", str(out)]) == 0
    assert f"-> {out / 'model.safetensors'}" in capsys.readouterr().out


def test_exporting_a_training_stopped_before_its_first_checkpoint_says_to_finish_it(tmp_path, capsys):
    """A training stopped (or still running) before its first log line or checkpoint
    holds only its start: config.yaml, arch.json, splits.json. Export and predict said
    "holds no model.safetensors (nor best/model.safetensors)", no hint."""
    out = tmp_path / "t"
    assert main(["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]) == 0
    for later in ("model.safetensors", "result.json", "metrics.jsonl", "checkpoints", "tb"):
        if (out / later).is_dir():
            shutil.rmtree(out / later)
        else:
            (out / later).unlink(missing_ok=True)
    assert main(["export", "--run", str(out), "--out", str(tmp_path / "m.onnx")]) == 2
    assert f"its training stopped before the end; finish it with `depthnas train --out {out} " \
           "--resume`" in capsys.readouterr().err
