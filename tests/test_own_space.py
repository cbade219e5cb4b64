"""A search space of the user's own: depthnas reaches it only through the SearchSpace
interface (its model_kwargs and builders), not through the MiDaS decoder's settings.
The space here (toys.own_depth_space) has no timm backbone and is sized by
model.channels, which the depth spaces do not read."""
import hashlib
import json
import random
import re

import numpy as np
import pytest
import torch

import depthnas.spaces
from depthnas import config as config_mod
from depthnas.config_checks import validate
from depthnas.models import PathParameters, count_parameters, load_model, model_kwargs, model_metadata
from depthnas.checkpoint import save_model
from depthnas.recipe import recipe, recipe_diff
from depthnas.spaces import Arch

from toys import own_depth_space


@pytest.fixture
def own(monkeypatch):
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", own_depth_space)
    return own_depth_space()


def _cfg(*updates):
    return config_mod.apply_dotted(config_mod.load(preset="quick"), ["space=own", *updates])


def test_a_model_file_of_ones_own_space_is_rebuilt_from_its_own_settings(own, tmp_path):
    """It was rebuilt from the decoder's settings (backbone, features), which this
    space does not take: export, predict and the demo failed on it."""
    arch, cfg = own.parse("own:conv3,skip,conv3"), _cfg("model.channels=4").model
    model = own.build_fixed(arch, **model_kwargs(cfg, own))
    path = save_model(tmp_path / "model.safetensors", model, model_metadata(own, arch, cfg, (64, 64)))
    loaded, meta = load_model(path)
    assert meta["model"] == {"width": 4}
    assert not {"backbone", "features"} & set(meta)  # the decoder's, which this space lacks
    assert {k: v.shape for k, v in loaded.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_a_model_of_a_space_this_process_does_not_know_is_said_so_not_blamed_on_the_file(
        own, tmp_path, monkeypatch):
    """A run of a space registered by a script, exported from a shell: "metadata does
    not describe a model", as if the file were damaged."""
    arch, cfg = own.parse("own:conv3,skip,conv3"), _cfg("model.channels=4").model
    path = save_model(tmp_path / "model.safetensors", own.build_fixed(arch, **model_kwargs(cfg, own)),
                      model_metadata(own, arch, cfg, (64, 64)))
    monkeypatch.delitem(depthnas.spaces._REGISTRY, "own")
    with pytest.raises(ValueError, match=r"holds a model of space 'own', which this process does not "
                                         r"know .*install it with an entry point"):
        load_model(path)


def test_a_depth_model_file_records_no_local_weights_path(tmp_path):
    """The decoder's settings are recorded too, but not the backbone file it started
    from: the model's weights are in the file, and the path is the user's."""
    from depthnas.spaces import get_space
    cfg = config_mod.ModelConfig(backbone="resnet18", features=32, backbone_weights="/home/me/r18.pth")
    meta = model_metadata(get_space("v1-sync"), None, cfg, (64, 64))
    assert meta["model"] == {"backbone": "resnet18", "features": 32, "first_block_input": "duplicate"}


def test_the_recipe_holds_the_settings_ones_own_space_is_sized_by(own):
    """Landmarks trained at model.channels=4 were reused for a run at 32: the recipe
    held the decoder's settings only."""
    narrow, wide = recipe(_cfg("model.channels=4")), recipe(_cfg("model.channels=32"))
    assert recipe_diff(narrow, wide) == ["model: stored {'width': 4}, this run {'width': 32}"]
    assert "model" not in recipe(config_mod.load(preset="quick"))  # the depth spaces' as before
    # nor do the decoder's settings, which it does not read, keep its results from matching
    assert recipe(_cfg("model.features=64", "model.backbone=resnet50")) == recipe(_cfg())


def test_parameters_latency_and_the_start_check_build_only_what_the_space_takes(own):
    """Each passed the space a timm backbone or backbone_weights=None, which its
    builders do not take: a --max-params run, a latency budget and every start failed
    with a TypeError."""
    from depthnas.latency import measure_latency
    from depthnas.run_start import check_model_builds
    cfg = validate(_cfg("model.channels=4"))
    arch = own.parse("own:conv3,conv3,skip")
    assert PathParameters(own, cfg.model)(arch) == count_parameters(own.build_fixed(arch, width=4))
    assert measure_latency(own, arch, cfg, torch.device("cpu"), repeats=1, warmup=0) > 0
    check_model_builds(cfg, own)

    class Named(type(own)):  # an argument of its own that happens to be called `backbone`
        def model_kwargs(self, cfg):
            return {"width": cfg.channels, "backbone": cfg.backbone}

        def build_fixed(self, arch, *, width, backbone):
            assert isinstance(backbone, str), backbone  # was given a timm network
            return super().build_fixed(arch, width=width)
    assert PathParameters(Named(), cfg.model)(arch) == count_parameters(own.build_fixed(arch, width=4))


def test_the_start_check_of_ones_own_space_leaves_the_callers_random_draws_alone(own):
    """Its test forward drew a batch and built two models from torch's generator, so a
    notebook's seeded draws after pipeline.run's check differed from a built-in space's."""
    from depthnas.run_start import check_model_builds
    torch.manual_seed(3)
    check_model_builds(validate(_cfg("model.channels=4")), own)
    after = torch.rand(4)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(4))


def test_the_start_check_runs_ones_own_depth_model_on_the_run_s_device(own, monkeypatch):
    """It ran on the CPU whatever --device said: a model of CUDA-only kernels was
    refused as breaking the interface, with --device cuda. (No GPU here: the device
    the check asks for is what is tested.)"""
    import depthnas.runtime
    from depthnas.run_start import check_model_builds
    asked = []
    monkeypatch.setattr(depthnas.runtime, "resolve_device",
                        lambda name: asked.append(name) or torch.device("cpu"))
    check_model_builds(validate(_cfg("model.channels=4", "device=cuda:1")), own)
    assert asked == ["cuda:1"]


def test_settings_a_space_of_ones_own_does_not_read_are_refused_or_not_advised(own, tmp_path):
    """--backbone-weights trained on without a word (no timm backbone to read it into),
    and a parameter budget's error advised "a smaller backbone or model.features"."""
    from depthnas.budget import Budget
    weights = tmp_path / "r18.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(config_mod.ConfigError, match="space own has no timm backbone to load it into"):
        validate(_cfg(f"model.backbone_weights={weights}"))
    cfg = validate(_cfg("model.channels=4", "search.max_params=10"))
    with pytest.raises(ValueError, match=r"has \d+ parameters with width=4 \(raise the budget, or "
                                         r"choose smaller model settings\)"):
        Budget.of(own, cfg, torch.device("cpu")).check_reachable(print)


def test_a_setting_ones_own_space_reads_inside_a_list_is_not_said_unread(own, monkeypatch, caplog):
    """A space giving {"widths": (channels,) * 3} to its builders was warned that it did
    not read model.channels: only a value passed as it is counted as read."""
    from depthnas.cli import build_parser
    from depthnas.run_config import warn_unread_by_space
    import dataclasses
    for style in (lambda self, cfg: {"width": vars(cfg)["channels"]},
                  lambda self, cfg: {"width": dataclasses.asdict(cfg)["channels"]}):
        monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", _broken(model_kwargs=style))
        args = build_parser().parse_args(["search", "--set", "model.channels=8", "--features", "64"])
        caplog.clear()
        with caplog.at_level("WARNING"):
            warn_unread_by_space(args, "search", _cfg("model.channels=8", "model.features=64"))
        assert [r.getMessage() for r in caplog.records] == [
            "model.features: space own with data synthetic does not read it (recorded all the same)"]
    caplog.clear()
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", _broken(  # read nested, and compared
        model_kwargs=lambda self, cfg: {"widths": (cfg.channels,) * 3, "deep": cfg.backbone == "resnet50"}))
    args = build_parser().parse_args(["search", "--set", "model.channels=8", "--features", "64",
                                      "--backbone", "resnet18"])
    with caplog.at_level("WARNING"):
        warn_unread_by_space(args, "search", _cfg("model.channels=8", "model.features=64",
                                                  "model.backbone=resnet18"))
    assert [r.getMessage() for r in caplog.records] == [
        "model.features: space own with data synthetic does not read it (recorded all the same)"]


def test_a_search_trains_and_exports_ones_own_space(own, tmp_path):
    from depthnas import pipeline
    from depthnas.export.onnx_export import check_parity, export_onnx
    cfg = _cfg(f"out={tmp_path / 'run'}", "model.channels=4", "data.image_size=[64, 64]",
               "data.synthetic_samples=24", "supernet.epochs=1", "standalone.epochs=1",
               "supernet.steps_per_epoch=2", "standalone.steps_per_epoch=2", "landmarks.num=3",
               "search.iterations=1", "search.top_k=1", "search.rank_samples=6",
               "search.population=4", "search.generations=1", "search.parents=2",
               "search.mutations=1", "search.crossovers=1", "search.calib_batches=1",
               "search.val_batches=1", "search.max_params=1000000")
    said = []
    summary = pipeline.run(cfg, progress=False, say=said.append)
    # 8 models: 3 landmarks and a pick leave 4 for the ranking
    assert "ranking sample: 4 of the 6 asked for (search.rank_samples); the landmarks and searched " \
        "picks had trained the rest of the space" in said
    best = json.loads((tmp_path / "run" / "best_arch.json").read_text())["string"]
    assert best == summary["best"]["string"] and best.startswith("own:")
    exported = export_onnx(tmp_path / "run", tmp_path / "own.onnx", exporter="legacy")
    assert all(p.ok for p in check_parity(exported.path, tmp_path / "run"))


def test_an_unknown_space_is_said_once_not_with_its_data_read_as_depth_data():
    with pytest.raises(config_mod.ConfigError) as err:
        validate(config_mod.apply_dotted(config_mod.load(preset="quick"),
                                         ["space=v9", "data.spec=digits"]))
    assert "unknown search space 'v9'" in str(err.value) and "data.spec" not in str(err.value)


@pytest.fixture
def installed(monkeypatch):
    """Entry points as an installed package declaring spaces would give them."""
    from importlib import metadata

    def declare(**spaces):
        eps = [metadata.EntryPoint(name, value, depthnas.spaces.ENTRY_POINTS)
               for name, value in spaces.items()]
        real = metadata.entry_points  # torch's own plugins (triton's) still read theirs
        monkeypatch.setattr(metadata, "entry_points", lambda **kw: eps if kw.get("group") ==
                            depthnas.spaces.ENTRY_POINTS else real(**kw))
        depthnas.spaces._declared.cache_clear()
    yield declare
    depthnas.spaces._declared.cache_clear()


def test_a_space_installed_as_an_entry_point_is_found_by_its_name(installed, tmp_path, capsys):
    """`depthnas` itself (and torchrun, a --resume, export, the demo) finds a space
    installed with its package; register_space reached only the script calling it."""
    from depthnas.cli import main
    from depthnas.spaces import get_space, list_spaces

    from cli_helpers import TRAIN_TINY
    installed(own="toys:own_depth_space")
    assert get_space("own").name == "own" and list_spaces()[-1] == "own"
    assert "own" in list_spaces("depth")
    assert main(["spaces"]) == 0 and "\nown                             8 architectures" in capsys.readouterr().out
    out = tmp_path / "trained"
    assert main(["train", "--arch", "own:conv3,skip,conv3", *TRAIN_TINY, "--set", "model.channels=4",
                 "--out", str(out)]) == 0
    assert main(["export", "--run", str(out), "--exporter", "legacy", "--check"]) == 0
    import onnx
    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert (props["space"], props["backbone"]) == ("own", "none")


def test_a_broken_installed_space_leaves_the_others_working(installed, capsys):
    """One package's space that fails to import stopped `depthnas spaces` and every
    truth table's reading (its rows of other spaces are told apart by parsing)."""
    from depthnas.cli import main
    from depthnas.spaces import get_space, list_spaces
    from depthnas.truth import for_space
    installed(broken="toys:no_such_space")
    assert main(["spaces"]) == 1
    captured = capsys.readouterr()
    assert "v1-sync" in captured.out and "darts" in captured.out
    assert "broken       does not load: search space 'broken'" in captured.err
    assert "broken" not in list_spaces("depth")
    assert for_space({"v1-sync:c3,skip,none,c1,ap": 0.2}, get_space("v1-sync"), "t.json").values


def test_an_entry_point_that_does_not_load_is_named_with_its_package(installed):
    from depthnas.spaces import get_space
    installed(gone="toys:no_such_space", misnamed="toys:own_depth_space")
    with pytest.raises(ValueError, match=r"search space 'gone', declared by an installed package "
                                         r"as 'toys:no_such_space', does not load: AttributeError"):
        get_space("gone")
    with pytest.raises(ValueError, match="gives Own 'own': a SearchSpace named 'misnamed' was expected"):
        get_space("misnamed")
    with pytest.raises(ValueError, match="unknown search space 'nope'; available: v1-sync, .*, gone, misnamed"):
        get_space("nope")


def test_an_installed_space_of_a_registered_name_is_listed_once_and_the_registered_one_is_got(installed):
    """A name both registered (built in, or by register_space) and declared by an
    installed package is one space: listed once, and the process's own registration
    is the one get_space gives."""
    from depthnas.spaces import get_space, list_spaces
    installed(**{"v1-sync": "toys:own_depth_space"})
    assert list_spaces().count("v1-sync") == 1
    assert list_spaces("depth").count("v1-sync") == 1
    assert type(get_space("v1-sync")).__name__ == "DepthSpace"


def test_an_entry_point_that_gives_no_search_space_is_named_not_a_traceback(installed):
    installed(plain="builtins:dict")
    from depthnas.spaces import get_space
    with pytest.raises(ValueError, match=r"search space 'plain', declared by an installed package as "
                                         r"'builtins:dict', gives dict None: a SearchSpace named 'plain' "
                                         r"was expected"):
        get_space("plain")


def test_a_space_registered_by_a_script_and_built_wrong_is_named_with_what_it_lacks(monkeypatch):
    """An abstract method left out failed with a TypeError from deep inside the first
    command that tried every space (--arch detection), naming no space."""
    from depthnas.cli import main
    from depthnas.spaces import SearchSpace, SpaceLoadError, get_space

    class Half(SearchSpace):
        name = "half"

        def gene_choices(self):
            return (2,)
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "half", Half)
    with pytest.raises(SpaceLoadError, match=r"search space 'half', registered by register_space, "
                                             r"does not load: TypeError: .*abstract.*model_kwargs"):
        get_space("half")
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "renamed", own_depth_space)
    with pytest.raises(SpaceLoadError, match="gives Own 'own': a SearchSpace named 'renamed'"):
        get_space("renamed")
    assert main(["spaces"]) == 1  # the others listed, these two named


def test_the_entry_point_group_is_the_one_readme_tells_packages_to_declare():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f'[project.entry-points."{depthnas.spaces.ENTRY_POINTS}"]' in readme
    assert depthnas.spaces.ENTRY_POINTS == "depthnas.spaces"


def test_a_training_of_ones_own_space_that_learned_nothing_is_not_told_to_load_backbone_weights(
        own, tmp_path, capsys):
    """The advice named --backbone-weights, which such a space refuses, and the MiDaS
    head's final ReLU, which it may not have."""
    from depthnas.cli import main

    from cli_helpers import TRAIN_TINY
    assert main(["train", "--arch", "own:conv3,skip,conv3", *TRAIN_TINY, "--set", "model.channels=4",
                 "--set", "standalone.lr=0", "--out", str(tmp_path / "frozen")]) == 0
    err = capsys.readouterr().err
    assert "learned (almost) nothing" in err and "--backbone-weights" not in err
    assert "ReLU" not in err and "Try a lower --set standalone.lr" in err


@pytest.mark.parametrize("output, got", [(torch.zeros(2, 1, 16, 16), r"\(2, 1, 16, 16\)"),
                                         (torch.zeros(2, 32, 32), r"\(2, 32, 32\)"),
                                         ((torch.zeros(2, 1, 32, 32),), "a tuple")])
def test_a_model_breaking_the_depth_contract_is_named_by_its_space(own, output, got):
    """A half-size map failed in the loss as 'prediction, target and mask must match',
    and a tuple crashed with an AttributeError: neither named the space's model."""
    from depthnas.task import make_task
    batch = {"target": torch.rand(2, 32, 32) + 0.1, "mask": torch.ones(2, 32, 32, dtype=torch.bool)}
    with pytest.raises(ValueError, match=rf"space own's model returned {got} for a batch of 2 at "
                                         r"32x32: a depth model returns one tensor \[B, 1, H, W\]"):
        make_task(own).loss(output, batch)
    assert make_task(own).loss(torch.rand(2, 1, 32, 32), batch) > 0


def test_registering_a_name_again_replaces_its_space(monkeypatch):
    """[spaces/__init__.py:28]"""
    from toys import own_depth_space
    monkeypatch.setattr(depthnas.spaces, "_REGISTRY", dict(depthnas.spaces._REGISTRY))
    depthnas.spaces.register_space("own", lambda: None)
    depthnas.spaces.register_space("own", own_depth_space)
    assert depthnas.spaces.get_space("own").name == "own"


def test_a_built_in_space_s_name_is_not_taken_over(monkeypatch):
    """register_space("v1-sync", ...) replaced the built-in space without a word; every
    run and model file naming v1-sync would then be read with the user's space."""
    from toys import own_depth_space
    monkeypatch.setattr(depthnas.spaces, "_REGISTRY", dict(depthnas.spaces._REGISTRY))
    for name in ("v1-sync", "v2-nonsync", "nb201", "darts"):
        with pytest.raises(ValueError, match=rf"search space '{name}' is built into depthnas; "
                                             "register yours under another name"):
            depthnas.spaces.register_space(name, own_depth_space)
    assert depthnas.spaces.get_space("v1-sync").size() == 3125


def test_an_entry_point_that_does_not_load_names_its_package(monkeypatch):
    """The tests' entry points have no distribution; a real one names its package.
    [spaces/__init__.py:78]"""
    import types
    from importlib import metadata
    ep = metadata.EntryPoint("gone", "toys:no_such_space", depthnas.spaces.ENTRY_POINTS)
    ep = ep._for(types.SimpleNamespace(name="acme-spaces"))
    monkeypatch.setattr(depthnas.spaces, "_declared", lambda: {"gone": [ep]})
    with pytest.raises(ValueError, match=r"search space 'gone', declared by package acme-spaces as "
                                         r"'toys:no_such_space', does not load"):
        depthnas.spaces.get_space("gone")


class _Halved(torch.nn.Module):
    """A super-net whose output is at half the input's size."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, arch=None):
        return torch.nn.functional.avg_pool2d(self.net(x, arch), 2)


def _broken(**methods):
    """The toy space with some of its methods replaced, registered as "own"."""
    space = own_depth_space()
    cls = type("Broken", (type(space),), methods)
    return cls


@pytest.mark.parametrize("methods, says", [
    # a string that drops a gene: results.json and run folders named other models
    ({"to_string": lambda self, a: "own:" + ",".join(("conv3", "skip")[g] for g in a.genes[:2]) + ",conv3"},
     "breaks the SearchSpace interface: parse(to_string(a)) is not a"),
    ({"mutate": lambda self, a, rng, prob=None: a},  # evolution silently random search
     "mutate returned its input 10 times in a row"),
    ({"model_kwargs": lambda self, cfg: {"width": cfg.channels, "depth": 3}},
     "space own: its super-net does not build from its model_kwargs (TypeError: "),
    # each of these was a traceback after the landmarks or the super-net had trained
    ({"function_key": lambda self, a: list(a.genes)}, "function_key(a) must be hashable"),
    ({"crossover": lambda self, a, b, rng: Arch("own", a.genes[:2])},
     "crossover gives an architecture outside the space"),
    ({"to_string": lambda self, a: "own:" + ",".join(("conv3", "skip")[g] for g in a.genes) + " "},
     "from_string(to_string(a)) is not a"),  # parse strips the space, a run folder does not
    ({"ignores_input": lambda self, a: False}, "ignores_input(arch, **model_kwargs) fails"),
    # torchrun's ranks, seeded apart, trained different paths without a word
    ({"sample": lambda self, rng: own_depth_space().sample(random.Random(random.random()))},
     "sample(rng) draws from a global generator, not from rng alone"),
    ({"mutate": lambda self, a, rng, prob=None: own_depth_space().mutate(
        a, random.Random(int(np.random.randint(1 << 30))), prob)},
     "mutate(a, rng) draws from a global generator, not from rng alone"),
    ({"build_supernet": lambda self, *, width: _Halved(own_depth_space().build_supernet(width=width))},
     "the super-net's path for a batch of 2 at 64x64 gave (2, 1, 32, 32); a depth model returns "
     "(2, 1, 64, 64)"),
])
def test_a_space_of_ones_own_that_breaks_the_interface_is_refused_before_any_work(methods, says,
                                                                                  monkeypatch):
    """Each showed late (a traceback after the landmarks trained) or never (a search
    exiting 0 with results naming other models)."""
    from depthnas.run_start import check_model_builds
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", _broken(**methods))
    cfg = validate(_cfg("model.channels=4"))
    with pytest.raises(ValueError, match=re.escape(says)):
        check_model_builds(cfg, depthnas.spaces.get_space("own"))
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", own_depth_space)
    check_model_builds(cfg, depthnas.spaces.get_space("own"))  # the toy as it is


def test_a_space_of_one_architecture_trains_and_is_refused_as_nothing_to_search(monkeypatch, tmp_path,
                                                                               capsys):
    """Its landmarks were refused as "expected 0 to -1", and without landmarks the start
    check's mutate died of an IndexError (rng.choice of no gene); train, which has a
    use for it, was refused the same way."""
    from depthnas.cli import main
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", _broken(gene_choices=lambda self: (1, 1, 1)))
    space = depthnas.spaces.get_space("own")
    tiny = ["--preset", "quick", "--image-size", "32", "--no-progress", "--set", "space=own",
            "--set", "model.channels=4", "--set", "data.synthetic_samples=40",
            "--set", "standalone.steps_per_epoch=1", "--epochs", "1"]
    assert main(["train", "--arch", "own:conv3,conv3,conv3", *tiny, "--out", str(tmp_path / "t")]) == 0
    assert main(["search", *tiny, "--out", str(tmp_path / "s")]) == 2
    assert "space own has one architecture: nothing to search (depthnas train trains it)" in \
        capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match=r"mutate: space 'own' has one architecture \(gene choices"):
        space.mutate(space.sample(random.Random(0)), random.Random(0))


def test_a_space_s_own_value_error_in_reading_a_string_names_the_space_and_the_input(monkeypatch):
    """from_string raising ValueError ("tuple.index(x): x not in tuple") printed that alone."""
    def from_string(self, text):
        return self.make([("conv3", "skip").index(n) for n in text.removeprefix("own:").split(",")])
    space = _broken(from_string=from_string)()
    with pytest.raises(depthnas.spaces.ArchitectureError,
                       match=r"own: cannot read architecture 'own:conv3,conv9,skip' \(ValueError: "):
        space.parse("own:conv3,conv9,skip")


def test_strings_of_ones_own_space_differing_in_punctuation_train_in_folders_of_their_own(
        own, tmp_path):
    """A space with ops `conv` and `conv+`: `coll:conv,skip` and `coll:conv+,skip` both
    trained in standalone/coll_conv_skip, the second over the first, and the winner's
    name was exported with the other's model. A built-in space's folders keep their
    names (existing runs resume from them)."""
    from depthnas.spaces import get_space
    from depthnas.standalone_results import StandaloneResults
    cfg = _cfg(f"out={tmp_path / 'run'}")
    (tmp_path / "run").mkdir()
    mine = StandaloneResults(cfg, own, tmp_path / "run", device="cpu", progress=False, say=print)
    a, b = mine.folder("own:conv+,skip"), mine.folder("own:conv,skip")
    assert a != b and a.parent == b.parent == tmp_path / "run" / "standalone"
    assert a.name.startswith("own_conv_skip_") and mine.folder("own:conv+,skip") == a
    # a run begun before the digest resumes its training of the string in the old folder
    old = tmp_path / "run" / "standalone" / "own_conv_skip"
    old.mkdir(parents=True)
    (old / "result.json").write_text(json.dumps({"arch": "own:conv,skip", "val_loss": 0.1}))
    assert mine.folder("own:conv,skip") == old and mine.folder("own:conv+,skip") == a
    # a string of punctuation alone trained in standalone_<digest>, beside standalone/
    # (named "_<digest>" since the digest came in: a resume finds its training there)
    assert mine.folder("+|-|+").parent == tmp_path / "run" / "standalone"
    assert mine.folder("+|-|+").name == "_" + hashlib.sha256(b"+|-|+").hexdigest()[:8]
    builtin = StandaloneResults(_cfg("space=v1-sync", f"out={tmp_path / 'run'}"), get_space("v1-sync"),
                                tmp_path / "run", device="cpu", progress=False, say=print)
    assert builtin.folder("v1-sync:c3,skip,none,c1,ap").name == "v1_sync_c3_skip_none_c1_ap"


def test_own_model_settings_are_compared_as_their_record_reads_back(own, monkeypatch):
    """model_kwargs with a tuple: saved as a JSON list, it never equalled the tuple
    again, so every finished training was redone on resume and the store never reused;
    a value JSON cannot hold (a dtype) failed after the first landmark's first epoch."""
    from depthnas.recipe import same_recipe
    from depthnas.run_start import check_model_builds
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", lambda: own)  # this very instance
    monkeypatch.setattr(own, "model_kwargs", lambda cfg: {"width": cfg.channels, "stages": (1, 2)})
    cfg = _cfg("model.channels=4")
    saved = json.loads(json.dumps(recipe(cfg)))  # as a store or result.json holds it
    assert saved["model"] == {"width": 4, "stages": [1, 2]} and same_recipe(saved, recipe(cfg))
    monkeypatch.setattr(own, "model_kwargs", lambda cfg: {"width": cfg.channels, "stages": torch.float32})
    monkeypatch.setattr(own, "build_supernet", lambda **kw: own_depth_space().build_supernet(width=4))
    with pytest.raises(ValueError, match=r"space own breaks the SearchSpace interface: its "
                                         r"model_kwargs must be JSON values"):
        check_model_builds(cfg, own)


def test_a_space_whose_parser_asserts_stops_no_command_of_another_space(own, monkeypatch, capsys):
    """An installed space whose from_string used `assert` raised AssertionError out of
    --arch detection: `depthnas train --arch <nb201 string>` died in another package."""
    from depthnas.cli import main
    from depthnas.spaces import ArchitectureError

    def asserts(text):
        assert text.startswith("own:"), "not mine"
        return (0, 0, 0)
    monkeypatch.setattr(own, "from_string", asserts)
    monkeypatch.setitem(depthnas.spaces._REGISTRY, "own", lambda: own)
    with pytest.raises(ArchitectureError, match=r"own: cannot read architecture .*AssertionError: not mine"):
        own.parse("v1-sync:c3,c3,c3,c3,c3")
    nb201 = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
    assert main(["train", "--arch", nb201, "--preset", "quick", "--data", "digits",
                 "--set", "model.channels=4", "--print-config"]) == 0


def test_rank_against_a_run_of_a_space_this_process_does_not_know(tmp_path):
    """Another run's results.json, of a space registered by a script: 'unknown search
    space' (naming no table), where the README says rows of other spaces are left out."""
    from depthnas.truth import read_table
    other = tmp_path / "mine1"
    other.mkdir()
    config_mod.dump(config_mod.apply_dotted(config_mod.load(preset="quick"), ["space=mine"]),
                    other / "config.yaml")
    (other / "results.json").write_text(json.dumps({"architectures": [
        {"arch": "mine:a", "val_loss": 0.1}, {"arch": "mine:b", "val_loss": 0.2}]}))
    read = read_table(other / "results.json")
    assert read.values == {"mine:a": 0.1, "mine:b": 0.2} and read.setup == {}


def test_a_space_name_two_installed_packages_declare_is_refused_naming_both(monkeypatch):
    """Which one loaded depended on the order of sys.path, unsaid: a resume, an export
    or a rank of a run read it with the other package's space."""
    import types
    from importlib import metadata
    eps = [metadata.EntryPoint("hdepth", value, depthnas.spaces.ENTRY_POINTS)._for(
        types.SimpleNamespace(name=package))
        for value, package in (("toys:own_depth_space", "acme"), ("toys:own_depth_space", "acme"),
                               ("other:space", "rival"))]
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: eps if kw.get("group") ==
                        depthnas.spaces.ENTRY_POINTS else real(**kw))
    depthnas.spaces._declared.cache_clear()
    try:
        assert depthnas.spaces.list_spaces().count("hdepth") == 1
        with pytest.raises(depthnas.spaces.SpaceLoadError,
                           match=r"'hdepth' is declared by package acme as 'toys:own_depth_space' "
                                 r"and by package rival as 'other:space': uninstall one"):
            depthnas.spaces.get_space("hdepth")
    finally:
        depthnas.spaces._declared.cache_clear()


def test_a_gene_of_no_choice_is_named_not_randrange_s_empty_range():
    """"error: empty range for randrange()" named neither the space nor the gene."""
    from depthnas.spaces.base import contract_problems
    broken = _broken(gene_choices=lambda self: (2, 0, 2))()
    assert contract_problems(broken, random.Random(0)) == [
        "gene_choices() = (2, 0, 2): every gene needs at least one choice (sample draws from range(n))"]
    broken = _broken(gene_choices=lambda self: (2.0, 2, 2))()  # was said to have no choice
    assert contract_problems(broken, random.Random(0)) == [
        "gene_choices() = (2.0, 2, 2): each gene's number of choices is a whole number "
        "(sample draws from range(n))"]


def test_the_start_check_of_a_space_leaves_every_random_generator_as_it_was(monkeypatch):
    """It draws twice under other global seeds: torch.manual_seed reseeded every GPU's
    generator too, which pipeline.run promises its caller to leave alone."""
    from depthnas.spaces.base import contract_problems
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    assert contract_problems(own_depth_space(), random.Random(0)) == []
    assert reseeded == []
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])


def test_numpy_gene_choices_are_whole_numbers_too():
    """A space whose gene_choices() come from a numpy array was refused as having a gene
    of no choice."""
    from depthnas.spaces.base import contract_problems
    real = own_depth_space().gene_choices()
    space = _broken(gene_choices=lambda self: tuple(np.array(real)))()
    assert isinstance(space.gene_choices()[0], np.integer)
    assert contract_problems(space, random.Random(0)) == []
    wide = _broken(gene_choices=lambda self: tuple(np.array([2] * 64)))()
    assert wide.size() == 2**64  # numpy's product wrapped to 0: "one architecture"
    from depthnas.landmark_sampler import landmark_problem
    many = _broken(gene_choices=lambda self: tuple(np.array([2] * 70)))()
    assert landmark_problem(many, 4, 42) is None  # was "only -238,185,... architectures lie"


def test_a_latency_budget_of_an_own_depth_space_times_random_architectures_too(own, tmp_path):
    """An own space whose parameter-free op is slow: the smallest architecture (all
    skips) was taken for the fastest, as in the MiDaS spaces, and the budget refused
    with "none is faster" and advice about a backbone the space does not have."""
    from depthnas.budget import Budget
    cfg = validate(_cfg("model.channels=4", f"out={tmp_path / 'run'}", "search.max_latency_ms=3"))
    slow_skips = lambda space, arch, cfg, device: 1.0 + 7.0 * sum(g == 1 for g in arch.genes) / 3  # noqa: E731
    budget = Budget(own, cfg, torch.device("cpu"), measure=slow_skips)
    said = []
    budget.check_reachable(say=said.append)  # conv-heavy ones fit: no refusal
    assert said and "timing" in said[0] and len(budget.latency_ms) > 1
    budget.max_latency_ms = 0.5  # none fits: refused, with advice this space can follow
    with pytest.raises(ValueError, match=r"choose smaller model settings or image size"):
        budget.check_reachable(say=said.append)
