"""The command line itself: help, --version, `spaces`, argument parsing and the settings
refused before any work, what loads at start-up (a refused command is said before
torch, OpenCV or gradio load; packages load their parts on first use), and how
messages and log lines read."""

import json
import logging
import re
import subprocess
import sys

import pytest

from depthnas.cli import main

from cli_helpers import TINY


@pytest.mark.parametrize(("flags", "message"), [
    (["--backbone", "resnet9000"], "error: --backbone (model.backbone): unknown timm backbone 'resnet9000'"),
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
    assert "device='gpu' (expected auto, cpu, cuda or cuda:N)" in capsys.readouterr().err


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
    assert re.search(rf"argument {flag}(/--model)?: empty path", capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def test_spaces_lists_exact_sizes(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for size in ("3,125", "95,367,431,640,625", "12,500", "24,414,062,500,000,000"):
        assert size in out


def test_more_new_candidates_than_the_population_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no --out: were the refusal lost, runs/ would go here
    assert main(["search", *TINY, "--set", "search.mutations=4"]) == 2
    assert "exceed search.population=4" in capsys.readouterr().err


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


def test_every_command_with_a_device_uses_the_gpu_when_there_is_one():
    """search, train and rank defaulted to auto, while evaluate, predict and demo ran
    on the CPU of a GPU machine unless told (and the API's evaluate/load_estimator too)."""
    import argparse
    import inspect

    from depthnas.cli import build_parser
    from depthnas.config import Config
    from depthnas.evaluate import evaluate
    from depthnas.export.inference import load_estimator
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    defaults = {name: action.default for name, command in sub.choices.items()
                for action in command._actions if "--device" in action.option_strings}
    assert {"search", "train", "rank", "evaluate", "predict", "demo"} <= set(defaults)
    # search's and train's None leaves the device to the run's configuration
    assert {d if d is not None else Config().device for d in defaults.values()} == {"auto"}, defaults
    for api in (evaluate, load_estimator):
        assert inspect.signature(api).parameters["device"].default == "auto", api.__name__


def test_main_called_from_a_script_leaves_its_logging_as_it_found_it():
    """main() set the root logger to INFO with a handler of its own, for good: the
    script's own INFO messages (and every library's) were printed from then on."""
    import subprocess
    import sys
    script = ("import logging; from depthnas.cli import main; main(['spaces']); "
              "r = logging.getLogger(); print(r.level, len(r.handlers))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"{logging.WARNING} 0"


def test_commands_of_one_process_are_refused_under_torchrun(monkeypatch, capsys):
    """`torchrun ... depthnas rank` scored every architecture on every rank, each
    printing the table and writing the same --out."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["rank", "--run", "r", "--truth", "t.json"]) == 2
    assert "depthnas rank runs in one process (search and train run on several), and " \
           "WORLD_SIZE=2 is set, as torchrun sets it: start it without torchrun, or unset " \
           "WORLD_SIZE" in capsys.readouterr().err
    assert main(["spaces"]) == 0  # a listing, the same on every rank


def test_main_returns_a_status_for_usage_errors_and_refuses_one_string(capsys):
    """A script's main(["search", "--bogus"]) ended the script with SystemExit, where a
    bad setting returned 2; main("spaces") read 's' as the command."""
    assert main(["search", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(TypeError, match=r"main takes the arguments as a list, not one string: "
                                        r"main\(\['spaces'\]\)"):
        main("spaces")


def test_version_is_the_installed_package_s(capsys):
    import importlib.metadata

    import depthnas
    assert main(["--version"]) == 0
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
        assert main(argv) == 0, argv
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
    assert f"--run {out}: no such folder" in said[14]
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


@pytest.mark.parametrize("name", ["depth", "nb201", "darts"])
def test_every_name_a_space_package_exports_loads(name):
    """As test_the_data_package_loads_its_loaders_when_asked_for does for the data:
    a name left out of exports_on_first_use broke `from depthnas.spaces.nb201 import *`."""
    import importlib
    package = importlib.import_module(f"depthnas.spaces.{name}")
    assert set(package.__all__) <= set(dir(package))
    for export in package.__all__:
        assert getattr(package, export) is not None, export


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


def test_a_depth_kind_data_cannot_use_is_refused_before_the_loaders_load(tmp_path):
    """`depthnas data --data redweb:DIR --depth-kind disparity`: the kind is ignored by
    redweb's files, a fault of the command line, said before OpenCV's and torch's
    seconds of import, as `search` says it."""
    said, loaded = _refused_without(("cv2", "torch"), tmp_path,
                                    ["data", "--data", f"redweb:{tmp_path}", "--depth-kind", "disparity"])
    assert "depth kind 'disparity' applies to folder: data; redweb: files hold a known kind" in said[0]
    assert loaded == "[]"


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


@pytest.mark.parametrize("argv, said", [
    # took x.onnx as the model file: "argument model: not allowed with argument --run"
    (["export", "--run", "r", "--output", "x.onnx"],
     "depthnas export: error: unrecognized arguments: --output (did you mean --out?)"),
    # the top-level usage, naming no command
    (["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--standalone-epochs", "3"],
     "depthnas train: error: unrecognized arguments: --standalone-epochs\n"),
    (["predict", "--colour=jet"], "depthnas predict: error: unrecognized arguments: --colour (did you mean --colormap?)"),
    # a stray word, or a single dash: the top-level usage too
    (["search", "--set", "search.population=8", "search.generations=3"],
     "depthnas search: error: unrecognized arguments: search.generations=3 (each --set takes one "
     "KEY=VALUE: --set search.population=8 --set search.generations=3)"),
    (["search", "--preset", "quick", "-epochs", "3"], "depthnas search: error: unrecognized arguments: -epochs 3"),
])
def test_an_option_the_command_lacks_is_said_with_its_usage_and_the_nearest_it_has(argv, said, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: depthnas {argv[0]} ") and said in err, err


def test_abbreviated_options_and_values_after_a_double_dash_are_left_to_argparse(capsys):
    assert main(["search", "--prin", "--preset", "quick"]) == 0  # --print-config, abbreviated
    assert "supernet:" in capsys.readouterr().out
    # a value with a space is a value to argparse, whatever it starts with
    assert main(["search", "--preset", "quick", "--out", "--my run", "--print-config"]) == 0
    assert "out: --my run" in capsys.readouterr().out
