"""`depthnas evaluate` on real files: the Middlebury motorcycle pair (scikit-image)."""
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthnas.checkpoint import read_metadata
from depthnas.cli import main
from depthnas.evaluate import evaluate, raw_samples
from fixtures_models import make_model_file


@pytest.fixture(scope="module")
def motorcycle(tmp_path_factory):
    """scikit-image's Middlebury stereo pair written as a folder dataset (disparity,
    inf = invalid kept in PFM)."""
    from skimage.data import stereo_motorcycle
    from depthnas.datasets import write_pfm
    left, _, disp = stereo_motorcycle()
    root = tmp_path_factory.mktemp("middlebury")
    (root / "images").mkdir()
    (root / "depth").mkdir()
    cv2.imwrite(str(root / "images" / "motorcycle.png"), cv2.cvtColor(left, cv2.COLOR_RGB2BGR))
    write_pfm(root / "depth" / "motorcycle.pfm", disp)
    return root, disp


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("model") / "model.safetensors")


def test_motorcycle_evaluated_end_to_end(motorcycle, model, tmp_path, capsys, monkeypatch):
    """The report names its data as runs record theirs: the kind in lower case, the
    path absolute (one typed relative meant nothing from another folder)."""
    root, disp = motorcycle
    out = tmp_path / "eval.json"
    monkeypatch.chdir(root.parent)
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"Folder:./{root.name}/",
                 "--depth-kind", "disparity", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 1 and report["split"] == "all"
    assert report["data"] == f"folder:{os.path.abspath(root.name)}"
    for k in ("ssi", "absrel", "delta1", "rmse"):
        assert np.isfinite(report[k]) and report[k] >= 0, k
    assert 0 <= report["delta1"] <= 100
    printed = capsys.readouterr().out
    assert "absrel" in printed and "delta1" in printed


def test_reports_on_two_data_sets_are_two_files_beside_the_model(motorcycle, model, tmp_path,
                                                                  capsys):
    """Both wrote MODEL.eval.json: scoring on a second data set lost the first's report.
    Synthetic "all" is scenes no run trains on, and says so (it read as every sample)."""
    root, _ = motorcycle
    lone = tmp_path / "model.safetensors"
    lone.write_bytes(model.read_bytes())
    assert main(["evaluate", "--checkpoint", str(lone), "--data", f"folder:{root}",
                 "--depth-kind", "disparity", "--no-progress"]) == 0
    assert f"on 1 sample(s) of folder:{root} [all]" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic",
                 "--synthetic-samples", "2", "--no-progress"]) == 0
    assert "on 2 sample(s) of synthetic [all: scenes no run trains on]" in capsys.readouterr().out
    folder = json.loads((tmp_path / f"model.eval-disparity-folder-{root.name}.json").read_text())
    synthetic = json.loads((tmp_path / "model.eval-samples2-synthetic.json").read_text())
    assert folder["samples"] == 1 and synthetic["samples"] == 2


def test_a_perfect_model_scores_zero(motorcycle, model, monkeypatch):
    """The metric pipeline (resize back, align, invert) is exact: a model that returns
    an affine map of the true disparity scores ~0 on every metric."""
    root, disp = motorcycle
    import depthnas.evaluate as ev
    truth = np.where(np.isfinite(disp), disp, 0).astype(np.float32)

    class Oracle:  # answers at full resolution, so resizing back is the identity
        def __call__(self, x):
            import torch
            return torch.from_numpy(truth)[None, None] * 3 + 2

    monkeypatch.setattr("depthnas.models.load_model", lambda path, device: (Oracle(), {"image_size": [384, 384]}))
    report = ev.evaluate(model, f"folder:{root}", depth_kind="disparity", progress=False)
    for k in ("ssi", "absrel", "delta1", "rmse"):
        assert report[k] == pytest.approx(0.0, abs=1e-4), k


def test_a_model_that_outputs_nan_is_refused_not_scored_a_perfect_delta1(motorcycle, model, monkeypatch):
    """NaN compares false, so every NaN pixel passed delta1's test: 0% bad, exit 0."""
    root, _ = motorcycle
    import torch

    import depthnas.evaluate as ev

    class Broken:
        def __call__(self, x):
            return torch.full((1, 1, *x.shape[-2:]), float("nan"))
    monkeypatch.setattr("depthnas.models.load_model", lambda path, device: (Broken(), {"image_size": [64, 64]}))
    with pytest.raises(ValueError, match=r"model.safetensors: the model outputs NaN or inf on sample "
                                         r"\S*motorcycle\S* \(a damaged model file"):
        ev.evaluate(model, f"folder:{root}", depth_kind="disparity", progress=False)


def test_synthetic_scenes_of_another_seed_get_a_report_of_their_own(model, tmp_path, capsys):
    """Synthetic "all" draws its scenes from the seed: --seed 5 scored other scenes and
    wrote over eval.json, whose fields did not say which."""
    lone = tmp_path / "model.safetensors"
    lone.write_bytes(model.read_bytes())
    written = []
    for flags in ([], ["--seed", "5"]):
        assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic", "--synthetic-samples",
                     "2", "--no-progress", *flags]) == 0
        written.append(Path(capsys.readouterr().out.splitlines()[-1].removeprefix("wrote ")))
    assert "-seed5-" in written[1].name and "seed" not in written[0].name
    assert [json.loads(p.read_text())["seed"] for p in written] == [0, 5]
    assert json.loads(written[0].read_text())["model"] == str(lone.resolve())


def test_a_model_file_without_its_training_size_is_named_not_run_at_a_guessed_one(
        model, monkeypatch):
    """evaluate ran such a file at 384x384, unsaid, where export and predict refuse it."""
    import depthnas.evaluate as ev
    monkeypatch.setattr("depthnas.models.load_model", lambda path, device: (None, {"task": "depth"}))
    with pytest.raises(ValueError, match=rf"{re.escape(str(model))}: metadata image_size None is not \[H, W\]"):
        ev.evaluate(model, "synthetic", progress=False)


def test_a_model_with_near_and_far_swapped_scores_well_and_is_called_inverted(
        motorcycle, model, monkeypatch, capsys, tmp_path):
    """The alignment's negative scale turns it round, so every metric is ~0; only the
    fit's sign shows it, and its raw output (predict, the demo) is upside down."""
    root, disp = motorcycle
    truth = np.where(np.isfinite(disp), disp, 0).astype(np.float32)

    class Backwards:
        def __call__(self, x):
            import torch
            return 9 - 3 * torch.from_numpy(truth)[None, None]

    monkeypatch.setattr("depthnas.models.load_model", lambda path, device: (Backwards(), {"image_size": [384, 384]}))
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"folder:{root}", "--depth-kind",
                 "disparity", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["absrel"] == pytest.approx(0.0, abs=1e-4) and report["inverted"] == 100.0
    captured = capsys.readouterr()
    [line] = [row for row in captured.out.splitlines() if row.startswith("inverted")]
    assert line.startswith("inverted 100.00000 ") and line.endswith("(% of images with near and far "
                                                                      "swapped, before alignment)")
    assert "warning: on 100% of the images the model's output has near and far swapped" in captured.err


def test_scores_are_shown_beside_a_constant_prediction_s_on_the_same_pixels(
        motorcycle, model, monkeypatch, capsys, tmp_path):
    """A loss means something only against that of a model that learned nothing: one
    value everywhere, scored on the same samples, pixels and cap."""
    import torch
    root, disp = motorcycle
    truth = torch.from_numpy(np.where(np.isfinite(disp), disp, 0).astype(np.float32))[None, None]
    reports = {}
    for name, output in (("right", lambda x: 2 * truth + 1), ("flat", lambda x: torch.ones_like(truth))):
        monkeypatch.setattr("depthnas.models.load_model",
                            lambda path, device, output=output: (output, {"image_size": [384, 384]}))
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", "--checkpoint", str(model), "--data", f"folder:{root}",
                     "--depth-kind", "disparity", "--out", str(out), "--no-progress"]) == 0
        reports[name] = json.loads(out.read_text()), capsys.readouterr()
    (right, said), (flat, flat_said) = reports["right"], reports["flat"]
    assert right["constant_prediction"] == flat["constant_prediction"]  # the data's, not the model's
    level = right["constant_prediction"]
    assert set(level) == {"ssi", "absrel", "delta1", "rmse"}
    assert right["ssi"] == pytest.approx(0.0, abs=1e-6) and level["ssi"] > 0.01
    for k in level:  # the flat model is that constant
        assert flat[k] == pytest.approx(level[k], rel=1e-5), k
    assert said.out.splitlines()[:2] == ["            model  constant",
                                         f"ssi       0.00000  {level['ssi']:8.5f}"]
    assert "learned nothing of this data" not in said.err
    assert (f"warning: the model's SSI {flat['ssi']:.5f} is no better than a constant prediction's "
            f"{level['ssi']:.5f} (or within 1% of it): it learned nothing of this data") in flat_said.err


def test_depth_folder_is_evaluated_in_disparity(tmp_path, model, monkeypatch):
    """Depth files (png16 millimetres) are read as disparity once: a model that
    answers an affine map of 1/depth scores ~0."""
    root = tmp_path / "nyu-like"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    rng = np.random.default_rng(0)
    depth_mm = rng.integers(500, 9000, size=(48, 64)).astype(np.uint16)
    cv2.imwrite(str(root / "images" / "a.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "depth" / "a.png"), depth_mm)
    disparity = (1000.0 / depth_mm).astype(np.float32)

    class Oracle:
        def __call__(self, x):
            import torch
            return torch.from_numpy(disparity)[None, None] * 0.5 + 1

    monkeypatch.setattr("depthnas.models.load_model", lambda path, device: (Oracle(), {"image_size": [64, 64]}))
    report = evaluate(model, f"folder:{root}", depth_kind="depth", depth_cap=10.0, progress=False)
    for k in ("ssi", "absrel", "delta1", "rmse"):
        assert report[k] == pytest.approx(0.0, abs=1e-4), k


def test_unknown_split_is_an_error(motorcycle, model):
    root, _ = motorcycle
    with pytest.raises(ValueError, match="unknown split 'test'"):
        evaluate(model, f"folder:{root}", split="test", depth_kind="disparity", progress=False)


def test_synthetic_validation_split(model):
    report = evaluate(model, "synthetic", split="val", synthetic_samples=20, progress=False)
    assert report["samples"] == 3 and np.isfinite(report["ssi"])


def test_synthetic_all_means_held_out_scenes_at_the_training_size():
    from depthnas.datasets.synthetic import VAL_INDEX_OFFSET
    from depthnas.evaluate import raw_samples
    got = list(raw_samples("synthetic", "all", synthetic_samples=2, image_size=(32, 64)))
    assert [s[0] for s in got] == [f"synthetic:0:{VAL_INDEX_OFFSET + i}" for i in range(2)]
    assert all(rgb.shape == (32, 64, 3) and disp.shape == (32, 64) for _, rgb, disp, _ in got)
    train = list(raw_samples("synthetic", "train", synthetic_samples=10, image_size=(32, 64)))
    assert train[0][0] == "synthetic:0:0"  # the training scenes, when asked for


def test_nyuv2_is_capped_at_10_m_by_default(tmp_path, model, capsys):
    """The standard NYUv2 evaluation ignores ground truth beyond 10 m."""
    from test_datasets import make_nyu_sync
    root = make_nyu_sync(tmp_path / "nyu", scenes=2, frames=1)
    capped, uncapped = tmp_path / "capped.json", tmp_path / "uncapped.json"
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"NYUv2:{root}",  # any case
                 "--out", str(capped), "--no-progress"]) == 0
    assert "capped at 10 m" in capsys.readouterr().out
    assert json.loads(capped.read_text())["depth_cap"] == 10.0
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"nyuv2:{root}",
                 "--depth-cap", "0", "--out", str(uncapped), "--no-progress"]) == 0
    assert json.loads(uncapped.read_text())["depth_cap"] is None


def test_the_depth_cap_leaves_farther_ground_truth_out_of_the_metrics(tmp_path, model,
                                                                      monkeypatch):
    """The cap reaches the metrics, not only the report: on a map whose right half lies
    beyond 10 m, the capped AbsRel, delta1 and RMSE are those of the nearer half."""
    import torch
    from depthnas import models
    from depthnas.depth_metrics import depth_metrics
    rng = np.random.default_rng(0)
    depth_mm = rng.integers(500, 9000, size=(48, 64)).astype(np.uint16)
    depth_mm[:, 32:] = rng.integers(12000, 30000, size=(48, 32))
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    cv2.imwrite(str(root / "images" / "a.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(root / "depth" / "a.png"), depth_mm)
    disparity = torch.from_numpy(1000.0 / depth_mm.astype(np.float32))[None]
    pred = disparity * (1 + 0.3 * torch.from_numpy(rng.standard_normal((48, 64)).astype(np.float32)))
    # a model whose prediction the test knows, at the image's own size
    monkeypatch.setattr(models, "load_depth_model",
                        lambda path, device: (lambda x: pred[None], {"image_size": [64, 64]}))
    report = evaluate(model, f"folder:{root}", depth_kind="depth", depth_cap=10.0, progress=False)
    everywhere = torch.ones(1, 48, 64, dtype=torch.bool)
    capped = depth_metrics(pred, disparity, everywhere, depth_cap=10.0)
    uncapped = depth_metrics(pred, disparity, everywhere)
    assert capped["rmse"] < 0.5 * uncapped["rmse"]  # 1.5 m against 4.6: the cap matters here
    for k in ("ssi", "absrel", "delta1", "rmse"):
        assert report[k] == pytest.approx(capped[k], rel=1e-4), k
    assert capped["ssi"] != pytest.approx(uncapped["ssi"], rel=1e-3)


def test_images_with_nothing_within_the_cap_are_counted_as_left_out(tmp_path, model, capsys):
    """'on 1 sample(s)' of 2 said nothing of the other, all of it beyond the cap."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for name, (lo, hi) in {"near": (500, 9000), "far": (12000, 30000)}.items():
        cv2.imwrite(str(root / "images" / f"{name}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "depth" / f"{name}.png"), rng.integers(lo, hi, (48, 64)).astype(np.uint16))
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"folder:{root}", "--depth-cap", "10",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "on 1 sample(s)" in printed
    assert ("note: 1 other image(s) have fewer than three pixels of ground truth within the 10 m "
            "cap, or all at one depth (a scale and a shift fit those exactly, whatever the model "
            "predicts): left out") in printed
    report = json.loads(out.read_text())
    assert report["samples"] == 1 and report["left_out"] == 1
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"folder:{root}",
                 "--out", str(out), "--no-progress"]) == 0
    assert "left out" not in capsys.readouterr().out
    assert json.loads(out.read_text())["left_out"] == 0
    # every image at one depth within the cap: nothing to score, and said so
    half = np.full((48, 64), 20000, np.uint16)
    half[:24] = 5000
    for name in ("near", "far"):
        cv2.imwrite(str(root / "depth" / f"{name}.png"), half)
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"folder:{root}", "--depth-cap", "10",
                 "--out", str(out), "--no-progress"]) == 2
    assert "three valid pixels or more, not all at one depth" in capsys.readouterr().err


def test_redweb_farthest_level_is_evaluated_as_in_training(tmp_path):
    """RD 254 is ReDWeb's farthest valid level: training keeps it, so the evaluation
    must too. It was a disparity of 0, which has no depth: an object in front of that
    level left its image with one depth, and the image out of every metric."""
    import torch
    from depthnas.datasets import build_splits
    from depthnas.depth_metrics import MetricAccumulator
    from test_datasets import _save_png, make_redweb
    root = make_redweb(tmp_path / "ReDWeb_V1", n=1)
    rd = np.full((48, 64), 254, np.uint8)  # the farthest level, an object at RD 10, sky
    rd[20:30, 20:40] = 10
    rd[:4] = 255
    _save_png(root / "RDs" / "r0.png", rd)
    [(_, _, disparity, valid)] = list(raw_samples(f"redweb:{root}", "all", image_size=(32, 64)))
    _, _, trained_valid = build_splits(f"redweb:{root}", (32, 64), val_fraction=0.0,
                                       reg_fraction=0.0).train.raw(0)
    np.testing.assert_array_equal(valid, trained_valid)
    assert (disparity[valid] > 0).all()
    target = torch.from_numpy(disparity)[None, None]
    scored = MetricAccumulator()
    scored.update(target, target, torch.from_numpy(valid)[None, None])
    assert (scored.count, scored.left_out) == (1, 0)
    assert scored.compute()["absrel"] == pytest.approx(0.0, abs=1e-6)


def test_a_gpu_that_is_not_there_is_a_clear_error(model, monkeypatch, capsys):
    """--device cuda on a machine without one: the device check search uses, not torch's
    driver traceback."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["evaluate", "--checkpoint", str(model), "--data", "synthetic",
                 "--synthetic-samples", "1", "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda'") and "no CUDA GPU" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option, value, says", [
    ("--net-size", "0", "--net-size (net_size) must be >= 32 (pixels of the longer side), got 0"),
    ("--net-size", "10", "--net-size (net_size) must be >= 32 (pixels of the longer side), got 10"),
    ("--depth-cap", "nan", "--depth-cap (depth_cap) must be a finite depth >= 0 (0 = no cap), got nan"),
    ("--depth-cap", "inf", "--depth-cap (depth_cap) must be a finite depth >= 0 (0 = no cap), got inf"),
    ("--depth-cap", "-1", "--depth-cap (depth_cap) must be a finite depth >= 0 (0 = no cap), got -1"),
    ("--synthetic-samples", "0", "--synthetic-samples must be >= 1, got 0"),
    ("--seed", "-1", "--seed must be 0 to 2**32 - 1, got -1"),
])
def test_bad_options_are_named_before_the_model_is_loaded(model, monkeypatch, capsys,
                                                          option, value, says):
    def no_evaluation(path, device):
        raise AssertionError("the model was loaded before the options were checked")
    monkeypatch.setattr("depthnas.models.load_model", no_evaluation)
    assert main(["evaluate", "--checkpoint", str(model), "--data", "synthetic",
                 option, value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1, err  # one line


def test_net_size_zero_is_refused_not_read_as_the_training_size(model):
    with pytest.raises(ValueError, match=r"--net-size \(net_size\) must be >= 32"):
        evaluate(model, "synthetic", net_size=0, synthetic_samples=1, progress=False)


def test_out_naming_a_folder_is_refused_before_evaluating(model, tmp_path, monkeypatch, capsys):
    """--out names the JSON file; a folder (as `depthnas export` says too) is an error
    up front, not an IsADirectoryError after the whole evaluation."""
    def no_evaluation(path, device):
        raise AssertionError("evaluated before --out was checked")
    monkeypatch.setattr("depthnas.models.load_model", no_evaluation)
    folder = tmp_path / "results"
    folder.mkdir()
    for out in (str(folder), f"{folder}/", f"{tmp_path / 'not-yet'}/"):
        assert main(["evaluate", "--checkpoint", str(model), "--data", "synthetic",
                     "--out", out, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {out} is a folder; name the JSON file to write"), err
    assert list(folder.iterdir()) == [] and not (tmp_path / "not-yet").exists()


def test_a_missing_model_is_named_before_data_is_asked_for(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'nope'}: no such file or folder"), err


@pytest.mark.parametrize("command", ["evaluate", "export", "predict"])
def test_an_out_in_a_folder_one_may_not_write_in_is_refused_before_the_work(
        model, tmp_path, capsys, monkeypatch, command):
    """The export ran its 24 s and then failed naming a hidden temporary file; predict
    named its first output, not the folder it could not make. (Simulated: root, who
    runs the tests here, may write anywhere.)"""
    import os
    from pathlib import Path
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != locked and real_access(p, mode, **k))
    out = locked / ("x.json" if command == "evaluate" else "x.onnx" if command == "export" else "preds")
    argv = {"evaluate": ["evaluate", "--checkpoint", str(model), "--data", "synthetic", "--no-progress"],
            "export": ["export", "--checkpoint", str(model), "--exporter", "legacy"],
            "predict": ["predict", "--model", str(model), "--input", str(tmp_path), "--no-progress"]}[command]
    assert main([*argv, "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: no permission to write in {locked}\n"


def test_a_file_that_cannot_be_written_is_named_not_its_temporary(tmp_path, monkeypatch):
    import os

    from depthnas.io import atomic_write_text

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(PermissionError) as caught:
        atomic_write_text(tmp_path / "x.json", "{}")
    monkeypatch.undo()
    assert str(caught.value) == f"cannot write {tmp_path / 'x.json'} (Permission denied)"


def test_a_signal_while_the_temporary_file_is_made_leaves_none_behind(tmp_path, monkeypatch):
    """A Ctrl-C or SIGTERM that arrived while mkstemp made the temporary file was raised
    before its name reached atomic_write: a stopped training kept
    checkpoints/.latest.u2iw244z.tmp."""
    import os

    from depthnas.io import atomic_write_text
    close = os.close

    def interrupted(fd):
        close(fd)
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "close", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "latest", "epoch_0001\n")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_signal_while_a_checkpoint_s_folder_is_made_leaves_none_behind(tmp_path, monkeypatch):
    """The same for the folder an epoch is written in before it is renamed (mkdtemp's)."""
    import os

    import torch

    from depthnas.checkpoint import Checkpointer
    mkdir = os.mkdir

    def interrupted(path, *args, **kwargs):
        mkdir(path, *args, **kwargs)
        if ".epoch_" in str(path):
            raise KeyboardInterrupt
    monkeypatch.setattr(os, "mkdir", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Checkpointer(tmp_path / "checkpoints").save(1, torch.nn.Linear(2, 2), {"epoch": 1})
    monkeypatch.undo()
    assert list((tmp_path / "checkpoints").iterdir()) == []


@pytest.mark.parametrize("command", ["evaluate", "export", "predict"])
def test_an_out_below_a_file_is_refused_before_the_work(model, tmp_path, capsys, command):
    """Found only when writing, the evaluation or export was lost, with "File exists"."""
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / ("x.json" if command == "evaluate" else "x.onnx" if command == "export"
                                else "preds")
    argv = {"evaluate": ["evaluate", "--checkpoint", str(model), "--data", "synthetic"],
            "export": ["export", "--checkpoint", str(model), "--exporter", "legacy"],
            "predict": ["predict", "--model", str(model), "--input", str(tmp_path / "afile")]}[command]
    assert main([*argv, "--out", str(out), "--no-progress"] if command != "export"
                else [*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {out}: {tmp_path / 'afile'} is a file, not a folder\n", err


def test_inverted_share_counts_validation_images_with_near_and_far_swapped():
    """What a stand-alone training records in result.json (a model is upside down on a
    share of its validation images); here models that read the target off the image."""
    import torch
    from depthnas.scoring import InvertedShare, evaluate_fixed
    from depthnas.task import DepthTask
    target = 0.1 + torch.rand(6, 1, 8, 8)
    data = [{"image": t.expand(3, -1, -1), "target": t[0], "mask": torch.ones(8, 8, dtype=torch.bool)}
            for t in target]
    right = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        right.weight.fill_(1.0), right.bias.fill_(0.0)

    def share(model) -> float:  # measured in the pass that scores the model
        counted = InvertedShare()
        evaluate_fixed(model, DepthTask(), data, batch_size=4, observe=counted)
        return counted.percent
    assert share(right) == 0.0
    with torch.no_grad():
        right.weight.fill_(-1.0)
    assert share(right) == 100.0


def test_the_samples_skip_bad_left_out_are_recorded_in_the_report(tmp_path, model, capsys):
    """evaluate --skip-bad said how many it skipped, but eval.json held only the samples
    scored: a report read later could not tell a 3-image set from 4 with one bad."""
    rng = np.random.default_rng(2)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for name in ("a", "b", "c"):
        cv2.imwrite(str(root / "images" / f"{name}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "depth" / f"{name}.png"), rng.integers(500, 9000, (48, 64)).astype(np.uint16))
    (root / "images" / "c.png").write_bytes(b"not an image")
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(model), "--data", f"folder:{root}", "--skip-bad",
                 "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 2 and len(report["skipped"]) == 1 and "c.png" in report["skipped"][0]


def test_net_size_32_is_the_smallest_accepted_and_16384_the_largest():
    """--net-size 100000 went on to a traceback: an 18 GB allocation for the photo
    alone, which the out-of-memory killer may answer by ending other work."""
    from depthnas.datasets.transforms import check_net_size
    check_net_size(32)  # "--net-size (net_size) must be >= 32": 32 itself is usable
    with pytest.raises(ValueError, match=r"--net-size \(net_size\) must be >= 32"):
        check_net_size(31)
    check_net_size(16384)  # the largest side an exported graph takes
    with pytest.raises(ValueError, match=r"--net-size \(net_size\) must be <= 16384 .*got 16385"):
        check_net_size(16385)


def test_running_out_of_memory_is_said_with_what_to_change(model, tmp_path, monkeypatch, capsys):
    """evaluate --net-size 16384 on a CPU ended in torch's DefaultCPUAllocator traceback."""
    def run_out(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 322961408 bytes.")
    monkeypatch.setattr("depthnas.datasets.prepare_image", run_out)
    assert main(["evaluate", "--checkpoint", str(model), "--data", "synthetic", "--synthetic-samples",
                 "1", "--net-size", "8192", "--out", str(tmp_path / "e.json"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not enough memory to run the network at net size 8192 on cpu" in err
    assert "pass a smaller --net-size" in err and "Traceback" not in err


def test_a_model_trained_on_non_square_images_is_run_at_its_longer_side(model, monkeypatch):
    """The default inference size is the training size, whose longer side prepare_image
    takes (--net-size: 'pixels of the longer side')."""
    from depthnas import models
    seen = []

    def net(x):
        seen.append(tuple(x.shape[-2:]))
        return x[:, :1]
    monkeypatch.setattr(models, "load_depth_model", lambda path, device: (net, {"image_size": [32, 64]}))
    report = evaluate(model, "synthetic", synthetic_samples=1, progress=False)
    assert report["net_size"] == 64 and max(seen[0]) == 64


def test_net_size_is_reported_and_named_as_the_side_the_network_ran_at(tmp_path, model, monkeypatch):
    """Sides are multiples of 32: --net-size 50 ran the network at 64, and the report
    said 50 under the name eval-...-net50 beside the default reading at 64."""
    from depthnas import models
    from depthnas.datasets.transforms import net_side
    assert [net_side(n) for n in (32, 50, 64, 70, 100, 16384)] == [32, 64, 64, 64, 96, 16384]
    seen = []

    def net(x):
        seen.append(max(x.shape[-2:]))
        return x[:, :1]
    monkeypatch.setattr(models, "load_depth_model", lambda path, device: (net, {"image_size": [64, 64]}))
    assert evaluate(model, "synthetic", net_size=50, synthetic_samples=1, progress=False)["net_size"] == 64
    assert seen == [64]
    trained = max(read_metadata(model)["image_size"])
    for flags, name in ((["--net-size", str(trained + 6)], "eval-samples1-synthetic"),
                        (["--net-size", str(trained + 26)], f"eval-samples1-net{trained + 32}-synthetic")):
        out = tmp_path / "m" / "model.safetensors"
        out.parent.mkdir(exist_ok=True)
        shutil.copy(model, out)
        assert main(["evaluate", "--checkpoint", str(out), "--data", "synthetic", "--synthetic-samples",
                     "1", "--no-progress", *flags]) == 0
        assert (out.parent / f"model.{name}.json").is_file(), sorted(p.name for p in out.parent.iterdir())


def _bad_folder(root, names=("a", "b", "c"), bad="c"):
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for name in names:
        cv2.imwrite(str(root / "images" / f"{name}.png"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "depth" / f"{name}.png"), rng.integers(500, 9000, (48, 64)).astype(np.uint16))
    if bad:
        (root / "images" / f"{bad}.png").write_bytes(b"not an image")
    return root


def test_a_search_s_best_model_is_evaluated_on_its_run_s_own_data_and_settings(tmp_path, model, capsys):
    """RUN/best/model.safetensors: the run's config.yaml is two folders up; its data,
    and its --skip-bad, are the defaults, and the report is the run's own MODEL.eval.json."""
    root = _bad_folder(tmp_path / "data")
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "config.yaml").write_text(f"data:\n  spec: folder:{root}\n  skip_bad: true\n")
    best = run / "best" / "model.safetensors"
    best.write_bytes(model.read_bytes())
    assert main(["evaluate", "--checkpoint", str(best), "--no-progress"]) == 0
    capsys.readouterr()
    report = json.loads((run / "best" / "model.eval.json").read_text())
    assert report["data"] == f"folder:{root}" and report["samples"] == 2 and len(report["skipped"]) == 1


def _half_val_run(tmp_path, model, seed=0):
    """A training folder on a 6-image folder data set, half of it val (its splits.json
    as the run recorded it), and those splits."""
    from depthnas.datasets import build_splits
    root = _bad_folder(tmp_path / "data", names=("a", "b", "c", "d", "e", "f"), bad=None)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"seed: {seed}\ndata:\n  spec: folder:{root}\n"
                                     "  val_fraction: 0.5\n  reg_fraction: 0.0\n")
    splits = build_splits(f"folder:{root}", (64, 64), seed=seed, val_fraction=0.5, reg_fraction=0.0)
    (run / "splits.json").write_text(json.dumps(splits.manifest()))
    (run / "model.safetensors").write_bytes(model.read_bytes())
    return run, root, splits


def test_split_val_is_the_run_s_own_with_its_own_fractions(tmp_path, model, capsys):
    run, _, splits = _half_val_run(tmp_path, model)
    assert main(["evaluate", "--checkpoint", str(run), "--split", "val", "--no-progress"]) == 0
    assert "split val as the run made it" in capsys.readouterr().out
    assert json.loads((run / "eval-val.json").read_text())["samples"] == len(splits.val) == 3
    # all of it, by default: said to hold what the run trained on, and at which size it ran
    assert main(["evaluate", "--checkpoint", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sample(s) of folder:" in out and "[all] at net size 64;" in out
    assert "note: all of the run's data, the samples it trained on included" in out


def test_a_reading_of_the_run_s_data_other_than_its_own_gets_a_report_of_its_own(tmp_path, model, capsys):
    """`--depth-kind` or `--seed` re-read the run's own data otherwise, and wrote over its
    own eval-val.json, under the same name and with nothing in it to tell them apart."""
    run, _, splits = _half_val_run(tmp_path, model, seed=3)
    assert main(["evaluate", "--checkpoint", str(run), "--split", "val", "--no-progress"]) == 0
    own = json.loads((run / "eval-val.json").read_text())
    capsys.readouterr()
    trained = read_metadata(run / "model.safetensors")["image_size"]
    for flags, name in ((["--seed", "0"], "eval-val-seed0"), (["--depth-kind", "disparity"], "eval-val-disparity"),
                        (["--net-size", "96"], "eval-val-net96"), (["--depth-cap", "0.6"], "eval-val-cap0.6"),
                        (["--seed", "3"], "eval-val"),  # the run's own seed: its own reading
                        (["--net-size", str(max(trained))], "eval-val"),  # the size it trained at
                        (["--depth-cap", "0"], "eval-val"),  # no cap: the default for this data
                        (["--synthetic-samples", "9"], "eval-val"),  # folder data draws no scenes
                        (["--skip-bad"], "eval-val-skipbad")):  # drawn again without bad samples
        assert main(["evaluate", "--checkpoint", str(run), "--split", "val", "--no-progress", *flags]) == 0
        assert (run / f"{name}.json").is_file(), flags
        # a flag repeating the run's own reading keeps its split, checked as recorded
        resplit = name in ("eval-val-seed0", "eval-val-disparity", "eval-val-skipbad")
        assert ("split val as the run made it" in capsys.readouterr().out) != resplit, flags
    assert json.loads((run / "eval-val-disparity.json").read_text())["depth_kind"] == "disparity"
    assert json.loads((run / "eval-val-cap0.6.json").read_text())["depth_cap"] == 0.6
    # the run's own readings, under other flags, went to the run's own file
    assert sorted(p.name for p in run.glob("eval*.json")) == [
        "eval-val-cap0.6.json", "eval-val-disparity.json", "eval-val-net96.json",
        "eval-val-seed0.json", "eval-val-skipbad.json", "eval-val.json"]
    assert own["depth_kind"] == "depth" and json.loads((run / "eval-val.json").read_text()) == own
    (run / "config.yaml").write_text("seed: 3\ndata:\n  synthetic_samples: 5\n")  # a synthetic run
    (run / "splits.json").unlink()  # (of the folder data: not this run's)
    for samples, name in (("6", "eval-val-samples6"), ("5", "eval-val")):  # 5: the run's own
        assert main(["evaluate", "--checkpoint", str(run), "--data", "synthetic", "--split", "val",
                     "--no-progress", "--synthetic-samples", samples]) == 0
        assert json.loads((run / f"{name}.json").read_text())["data"] == "synthetic", samples


def test_evaluate_from_python_scores_the_run_s_own_val_split(tmp_path, model):
    """The CLI took the run's seed and fractions; evaluate() called from Python
    re-split with seed 0 and 0.15, and scored training samples as "val" unsaid."""
    run, root, _ = _half_val_run(tmp_path, model, seed=3)
    assert evaluate(run, f"folder:{root}", split="val", progress=False)["samples"] == 3
    # "all" reads the data with the run's settings too: 5 synthetic scenes, not 512
    (run / "config.yaml").write_text("seed: 3\ndata:\n  synthetic_samples: 5\n")
    assert evaluate(run, "synthetic", progress=False)["samples"] == 5
    # a setting given re-splits as asked
    assert evaluate(run, f"folder:{root}", split="val", progress=False, seed=0)["samples"] == 1


def test_a_reading_as_the_default_writes_the_default_report_and_no_other(tmp_path, model, capsys):
    """--depth-cap 0 on data capped at nothing by default, --synthetic-samples on folder
    data (which draws no scenes) and NYUv2's own 10 m given as --depth-cap read the data
    as the default does: the default report, not a second file beside it."""
    run, _, _ = _half_val_run(tmp_path, model, seed=3)
    for flags in ([], ["--depth-cap", "0"], ["--synthetic-samples", "9"]):
        assert main(["evaluate", "--checkpoint", str(run), "--split", "val", "--no-progress", *flags]) == 0
        assert sorted(p.name for p in run.glob("eval*.json")) == ["eval-val.json"], flags
    from test_datasets import make_nyu_sync
    nyu = make_nyu_sync(tmp_path / "nyu", scenes=2, frames=1)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.safetensors").write_bytes(model.read_bytes())
    for flags in ([], ["--depth-cap", "10"]):
        assert main(["evaluate", "--checkpoint", str(alone), "--data", f"nyuv2:{nyu}",
                     "--no-progress", *flags]) == 0
        assert len(list(alone.glob("eval*.json"))) == 1, flags


def test_a_model_better_in_ssi_but_worse_in_depth_metrics_is_told_which(capsys):
    """RMSE 9.35 against a constant's 6.26 went unremarked, the SSI being better."""
    from depthnas.evaluate_cli import _print_report
    level = {"ssi": 0.2, "absrel": 0.3, "delta1": 40.0, "rmse": 6.26}
    report = {"ssi": 0.178, "absrel": 0.25, "delta1": 35.0, "rmse": 9.35, "inverted": 0.0,
              "constant_prediction": level, "samples": 8, "left_out": 0, "depth_cap": None,
              "net_size": 64}
    _print_report(report, "synthetic", "val")
    err = capsys.readouterr().err
    assert "warning: worse than a constant prediction in rmse 9.35000 vs 6.26000: better in SSI" in err
    _print_report({**report, "rmse": 6.0}, "synthetic", "val")
    assert "worse than a constant" not in capsys.readouterr().err
    _print_report({**report, "ssi": 0.2}, "synthetic", "val")  # SSI's own warning says it all
    err = capsys.readouterr().err
    assert "learned nothing of this data" in err and "worse than a constant" not in err


def test_a_model_of_no_run_is_scored_on_as_many_synthetic_scenes_by_the_api_as_by_the_cli(
        model, tmp_path, capsys):
    """The CLI drew 64 scenes for a model without a run, evaluate() 512: one model, two
    reports of the same command in two spellings, and the API's eight times slower."""
    from depthnas.datasets.settings import EVAL_SYNTHETIC_SAMPLES
    lone = tmp_path / "model.safetensors"
    lone.write_bytes(model.read_bytes())
    assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic", "--no-progress"]) == 0
    cli = json.loads((tmp_path / "model.eval-synthetic.json").read_text())
    api = evaluate(lone, "synthetic", progress=False)
    assert api["samples"] == cli["samples"] == EVAL_SYNTHETIC_SAMPLES == 64
    assert api["ssi"] == pytest.approx(cli["ssi"])


def test_two_data_sets_in_folders_of_one_name_keep_a_report_each(motorcycle, model, tmp_path,
                                                                  capsys):
    """setA/val and setB/val both reported to MODEL.eval-folder-val.json: the second
    evaluation silently replaced the first's scores."""
    root, _ = motorcycle
    lone = tmp_path / "model.safetensors"
    lone.write_bytes(model.read_bytes())
    sets = [tmp_path / name / "val" for name in ("setA", "setB")]
    for s in sets:
        shutil.copytree(root, s)
    reports = []
    for s in (*sets, sets[1]):  # setB twice: its report is found again, not a third made
        assert main(["evaluate", "--checkpoint", str(lone), "--data", f"folder:{s}",
                     "--depth-kind", "disparity", "--no-progress"]) == 0
        reports.append(capsys.readouterr().out.splitlines()[-1].removeprefix("wrote "))
    assert reports[0] == str(tmp_path / "model.eval-disparity-folder-val.json")
    assert reports[1] != reports[0] and reports[2] == reports[1]
    for s, report in zip(sets, reports):
        assert json.loads(Path(report).read_text())["data"] == f"folder:{s}"


def test_out_naming_a_file_that_is_no_report_is_refused_and_kept(model, tmp_path, capsys):
    """--out model.safetensors (or config.yaml, a photo) replaced the file with the JSON
    report: the model was gone. An earlier report of evaluate's is written over."""
    lone = tmp_path / "model.safetensors"
    lone.write_bytes(model.read_bytes())
    for victim in (lone, tmp_path / "config.yaml", tmp_path / "notes.json"):
        if victim != lone:
            victim.write_text("seed: 3\n" if victim.suffix == ".yaml" else '{"mine": 1}')
        before = victim.read_bytes()
        assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic",
                     "--synthetic-samples", "2", "--out", str(victim), "--no-progress"]) == 2
        assert f"--out {victim} exists and is not an earlier eval.json report" in capsys.readouterr().err
        assert victim.read_bytes() == before
    null = tmp_path / "null"  # size 0 as an empty file is: not replaced by a report
    os.symlink(os.devnull, null)
    assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic",
                 "--synthetic-samples", "2", "--out", str(null), "--no-progress"]) == 2
    assert null.is_symlink() and capsys.readouterr().err.count("is not a regular file") == 1
    pipe = tmp_path / "fifo"  # read to see whether it is a report, it blocked for ever
    os.mkfifo(pipe)
    assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic",
                 "--synthetic-samples", "2", "--out", str(pipe), "--no-progress"]) == 2
    assert "is not a regular file (a device or a pipe)" in capsys.readouterr().err
    report = tmp_path / "mine.json"
    report.touch()  # `--out "$(mktemp)"`: empty, so nothing is lost (and a link to it)
    os.symlink(report, tmp_path / "link.json")
    assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic",
                 "--synthetic-samples", "2", "--out", str(tmp_path / "link.json"), "--no-progress"]) == 0
    report.write_text("")
    for _ in range(2):  # written, then written again over its own report
        assert main(["evaluate", "--checkpoint", str(lone), "--data", "synthetic",
                     "--synthetic-samples", "2", "--out", str(report), "--no-progress"]) == 0
    assert json.loads(report.read_text())["samples"] == 2


def test_other_data_read_otherwise_gets_a_report_of_its_own(motorcycle, model, tmp_path, capsys):
    """--depth-kind or --seed re-read the run's own data into a report of their own, but
    other data's readings all went to one eval-val-folder-NAME.json."""
    root, _ = motorcycle
    lone = tmp_path / "model.safetensors"
    lone.write_bytes(model.read_bytes())
    written = []
    for flags in ([], ["--depth-kind", "disparity"], ["--seed", "3"]):
        assert main(["evaluate", "--checkpoint", str(lone), "--data", f"folder:{root}",
                     "--split", "all", "--no-progress", *flags]) == 0
        written.append(capsys.readouterr().out.splitlines()[-1])
    assert len(set(written)) == 3 - 1  # "all" is no split: another seed reads the same
    assert written[1].endswith(f"model.eval-disparity-folder-{root.name}.json")
