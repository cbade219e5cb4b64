"""Config: dataclass defaults < preset < YAML < CLI flags."""
import dataclasses
import re
from pathlib import Path

import pytest

from depthnas import config as C
from depthnas.cli import build_parser
from depthnas.config_checks import validate
from depthnas.run_config import build_config


def test_layering_order(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("space: v2-sync\nsupernet:\n  epochs: 7\ndata:\n  image_size: [96, 128]\n")
    args = build_parser().parse_args(["search", "--preset", "quick", "--config", str(yml),
                                      "--epochs", "9", "--set", "search.population=11",
                                      "--no-landmarks"])
    cfg = build_config(args)
    assert cfg.model.backbone == "mobilenetv3_small_050"    # preset
    assert cfg.space == "v2-sync" and cfg.data.image_size == (96, 128)  # YAML
    assert cfg.supernet.epochs == 9                          # CLI beats YAML
    assert cfg.search.population == 11 and cfg.landmarks.enabled is False


def test_yaml_round_trip(tmp_path):
    cfg = C.load(preset="quick")
    C.dump(cfg, tmp_path / "config.yaml")
    assert C.load(tmp_path / "config.yaml") == cfg


def test_errors_name_the_key():
    with pytest.raises(C.ConfigError, match="unknown config key 'supernet.epoch'"):
        C.apply_dotted(C.Config(), ["supernet.epoch=3"])
    with pytest.raises(C.ConfigError, match="supernet.epochs: expected int"):
        C.apply_dotted(C.Config(), ["supernet.epochs=many"])
    with pytest.raises(C.ConfigError, match="unknown preset 'huge'"):
        C.load(preset="huge")
    with pytest.raises(C.ConfigError, match="config file not found"):
        C.load("/nonexistent.yaml")


def test_a_whole_number_in_exponent_form_is_read(tmp_path):
    """YAML reads `max_params: 3e7` as the text '3e7': refused as "expected int"."""
    (tmp_path / "c.yaml").write_text("search:\n  max_params: 3e7\nseed: '12'\n")
    cfg = C.load(tmp_path / "c.yaml")
    assert cfg.search.max_params == 30_000_000 and cfg.seed == 12
    with pytest.raises(C.ConfigError, match="expected a whole number, got 2500.5"):
        C.apply_dotted(C.Config(), ["search.max_params=2.5005e3"])


def test_image_size_forms():
    cfg = C.apply_dotted(C.Config(), ["data.image_size=128"])
    assert cfg.data.image_size == (128, 128)
    args = build_parser().parse_args(["search", "--image-size", "96x160"])
    assert build_config(args).data.image_size == (96, 160)


@pytest.mark.parametrize(("override", "message"), [
    ("data.image_size=64.5", "data.image_size: expected H,W or one number, got 64.5"),
    ("data.image_size=", "data.image_size: expected H,W or one number"),
    ("data.image_size=null", "data.image_size: expected H,W or one number, got None"),
    ("data.image_size=64x", "data.image_size: expected H,W or one number, got '64x'"),  # read as 64x64
    ("data.image_size=x64", "data.image_size: expected H,W or one number, got 'x64'"),
    ("standalone.epochs=2.7", "standalone.epochs: expected a whole number, got 2.7"),
    ("out=[1, 2]", "out: expected str, got [1, 2]"),
])
def test_values_of_the_wrong_shape_name_their_key(override, message):
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        C.apply_dotted(C.Config(), [override])


@pytest.mark.parametrize(("overrides", "message"), [
    (["standalone.log_every=0"], "standalone.log_every=0 (expected >= 1)"),
    (["supernet.steps_per_epoch=0"], "supernet.steps_per_epoch=0"),
    (["model.features=1"], "model.features=1 (expected >= 2)"),  # the depth head halves it
    (["standalone.lr=-1"], "standalone.lr=-1.0 (expected a finite number >= 0)"),
    (["supernet.grad_clip=nan"], "supernet.grad_clip=nan"),
    (["data.spec=''"], "data.spec is empty"),
    (["data.val_fraction=1.5"], "data.val_fraction=1.5"),
    (["data.val_fraction=0.5", "data.reg_fraction=0.6"], "leave nothing to train on"),
    # every score used to come out 0.0, the best, and the search picked at random
    (["data.val_fraction=0"], "data.val_fraction=0 leaves nothing to score architectures on"),
    (["data.synthetic_samples=2"], "data.synthetic_samples=2"),
    # each of these used to surface after landmark and super-net training, or never
    (["landmarks.lambda_max=nan"], "landmarks.lambda_max=nan (expected a finite number >= 0)"),
    (["landmarks.lambda_max=-5"], "landmarks.lambda_max=-5.0"),
    (["landmarks.pairs=-1"], "landmarks.pairs=-1"),
    (["search.generations=0"], "search.generations=0 (expected >= 1)"),
    (["search.val_batches=0"], "search.val_batches=0 (expected >= 1)"),
    (["search.calib_batches=0"], "search.calib_batches=0 (expected >= 1)"),
    (["search.max_params=-3"], "search.max_params=-3 (expected a finite number > 0, or none)"),
    (["search.sparse_threshold=nan"], "search.sparse_threshold=nan"),
    (["search.mutation_prob=1.5"], "search.mutation_prob=1.5"),
    # the result is then a landmark within the budget, and none may be: a crash at the end
    (["search.top_k=0", "search.max_params=100000"], "search.top_k=0 with search.max_params"),
    (["standalone.lr=inf"], "standalone.lr=inf (expected a finite number >= 0)"),
    (["landmarks.schedule=constant", "landmarks.ramp_epochs=-2"],
     "landmarks.ramp_epochs=-2.0 (expected finite numbers >= 0)"),
    (["search.top_k=0", "landmarks.enabled=false"], "search.top_k=0: without landmarks"),
    (["data.reg_fraction=-0.1"], "data.reg_fraction=-0.1 (expected a fraction in [0, 1))"),
    (["data.image_size=100"], "data.image_size: image_size must be (H, W) with positive multiples of 32"),
])
def test_values_that_cannot_train_are_refused_before_any_work(overrides, message):
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        validate(C.apply_dotted(C.Config(), overrides))


@pytest.mark.parametrize(("overrides", "named", "not_named"), [
    # one check named both fields, the valid one included
    (["data.num_workers=-1"], "data.num_workers=-1 (expected >= 0)", "synthetic_samples"),
    (["data.synthetic_samples=2"], "data.synthetic_samples=2", "num_workers"),
    # the landmark schedule's complaint about 0 epochs came first, a side effect
    (["search.iterations=0"], "search.iterations=0 (expected >= 1)", "warmup_epochs"),
    # a negative count of iterations took top-K away from the landmarks: 2 were "too few"
    (["search.iterations=-1", "landmarks.num=2"], "search.iterations=-1 (expected >= 1)",
     "landmarks.num"),
])
def test_an_error_names_the_field_at_fault_alone(overrides, named, not_named):
    with pytest.raises(C.ConfigError) as err:
        validate(C.apply_dotted(C.Config(), overrides))
    assert named in str(err.value) and not_named not in str(err.value)


def test_backbone_weights_name_every_kind_of_file_accepted(tmp_path):
    """.pt and .bin load too; the message named only .safetensors and .pth."""
    weights = tmp_path / "resnet18.ckpt"
    weights.write_bytes(b"")
    with pytest.raises(C.ConfigError, match=re.escape(
            f"model.backbone_weights={weights}: expected a .safetensors / .pth / .pt / .bin file")):
        validate(C.apply_dotted(C.Config(), [f"model.backbone_weights={weights}"]))


def test_backbone_weights_given_a_folder_ask_for_the_file_in_it(tmp_path):
    """A folder that exists was said to be "no such file"."""
    with pytest.raises(C.ConfigError, match=re.escape(
            f"model.backbone_weights={tmp_path} is a folder; name the .safetensors / .pth / .pt "
            "/ .bin file in it")):
        validate(C.apply_dotted(C.Config(), [f"model.backbone_weights={tmp_path}"]))


def test_an_empty_text_value_is_unset_not_the_string_none(tmp_path):
    cfg = C.apply_dotted(C.Config(), ["out="])
    assert cfg.out == ""  # the default run folder, not ./None
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("out:\n")
    assert C.load(yaml_file).out == ""
    with pytest.raises(C.ConfigError, match="data.spec: expected text, got False"):
        C.apply_dotted(C.Config(), ["data.spec=no"])


def test_a_key_given_twice_in_a_yaml_config_is_an_error(tmp_path):
    """YAML keeps the last one silently; a hand-edited config often has a stale line."""
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  batch_size: 8\n  batch_size: 4\n")
    with pytest.raises(C.ConfigError, match=r"(?s)c.yaml: .*key 'batch_size' appears twice.*line 3"):
        C.load(path)
    path.write_text("data:\n  batch_size: 8\nmodel:\n  features: 16\n")
    assert C.load(path).data.batch_size == 8


def test_yaml_merge_keys_still_work_and_a_complex_key_is_a_config_error(tmp_path):
    """The duplicate-key check must not break `<<: *anchor` (an explicit key overrides
    a merged one), nor turn a list used as a key into a traceback."""
    path = tmp_path / "c.yaml"
    path.write_text("supernet: &b {epochs: 3, lr: 0.01}\nstandalone: {<<: *b, epochs: 60}\n")
    cfg = C.load(path)
    assert (cfg.standalone.lr, cfg.standalone.epochs, cfg.supernet.epochs) == (0.01, 60, 3)
    path.write_text("? [a, b]\n: 1\n")
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load(path)


@pytest.mark.parametrize("flag, value, field", [
    ("--out", "runs/t #2", "out"),            # YAML read "#2" as a comment: runs/t
    ("--out", "010", "out"),                  # YAML 1.1 read an octal 8
    ("--out", "1:30", "out"),                 # sexagesimal: 90
    ("--out", "null", "out"),                 # None: a default folder
    ("--out", "@x", "out"),                   # a YAML scanner traceback
    ("--data", "folder:{tmp}/scans #3", "data.spec"),  # (a folder that is there)
    ("--landmarks", "stores/a: b #1.json", "landmarks.store"),
])
def test_a_flag_value_is_taken_as_typed_not_read_as_yaml(flag, value, field, tmp_path):
    if flag == "--data":
        value = value.format(tmp=tmp_path)
        Path(value.partition(":")[2]).mkdir()
    cfg = build_config(build_parser().parse_args(["search", flag, value]))
    # a store's path is recorded absolute: a resume from elsewhere found no store
    assert C.dotted_fields(cfg)[field] == (C.absolute_path(value) if field == "landmarks.store" else value)
    for form in ("64", "64x96", "[64, 96]"):  # the forms --image-size documents
        cfg = build_config(build_parser().parse_args(["search", "--image-size", form]))
        assert cfg.data.image_size == ((64, 64) if form == "64" else (64, 96))


def test_set_with_a_yaml_comment_in_its_value_is_refused_not_cut_short():
    """`--set out=runs/a #2` named runs/a (YAML drops " #2" as a comment)."""
    with pytest.raises(C.ConfigError, match=re.escape(
            "--set out=runs/a #2: YAML reads ' #' and what follows as a comment; quote the "
            "value to keep it: --set 'out=\"runs/a #2\"'")):
        build_config(build_parser().parse_args(["search", "--set", "out=runs/a #2"]))
    cfg = build_config(build_parser().parse_args(["search", "--set", "out='runs/a #2'"]))
    assert cfg.out == "runs/a #2"


@pytest.mark.parametrize("assignment", ["search.max_params=#3e7", "out=#2", "out=&x", "out=|",
                                        "landmarks.store= #lm.json"])
def test_set_with_yaml_syntax_for_its_whole_value_is_refused_not_read_as_unset(assignment):
    """`--set search.max_params=#3e7` is a YAML comment: the budget was dropped (null),
    and the run went on without it."""
    with pytest.raises(C.ConfigError, match="YAML reads .* as no value at all"):
        build_config(build_parser().parse_args(["search", "--set", assignment]))
    for meant_empty in ("out=", "out=''", 'out=""', "search.max_params=null", "search.max_params=~",
                        "search.max_params=!!null"):
        build_config(build_parser().parse_args(["search", "--set", meant_empty]))


def test_set_text_that_yaml_takes_for_a_date_stays_as_typed():
    """`--set out=2024-01-01T10:00:00` named the folder '2024-01-01 10:00:00'."""
    for text in ("2024-01-01T10:00:00", "2024-01-01", "2024-01-01t10:00:00.50-05:00"):
        cfg = build_config(build_parser().parse_args(["search", "--set", f"out={text}"]))
        assert cfg.out == text
        assert C.load_yaml(f"out: {text}") == {"out": text}


def test_whole_number_flags_take_the_forms_set_takes(capsys):
    """--max-params took 3e7, --epochs refused 3e1 with argparse's 'invalid int value'."""
    cfg = build_config(build_parser().parse_args(["search", "--epochs", "3e1", "--batch-size", "1e1"]))
    assert (cfg.supernet.epochs, cfg.data.batch_size) == (30, 10)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--epochs", "2.5"])
    assert "argument --epochs: not a whole number: '2.5'" in capsys.readouterr().err


def test_whole_numbers_are_decimal_in_flags_set_and_yaml_alike(tmp_path):
    """YAML 1.1 read `--set seed=010` as octal 8 where `--seed 010` gave 10, and took
    0x64 as 100 (the error then said (100, 100)) and 1:30 as 90."""
    flag = build_config(build_parser().parse_args(["search", "--seed", "010"]))
    dotted = build_config(build_parser().parse_args(["search", "--set", "seed=010"]))
    (tmp_path / "c.yaml").write_text("seed: 010\nsupernet:\n  epochs: 1_000\n")
    filed = C.load(tmp_path / "c.yaml")
    assert flag.seed == dotted.seed == filed.seed == 10 and filed.supernet.epochs == 1000
    # a text field keeps what was typed (config.yaml writes `out: 0812` unquoted)
    (tmp_path / "o.yaml").write_text("out: 0812\nsupernet:\n  lr: 1:30.5\n")
    with pytest.raises(C.ConfigError, match=re.escape("supernet.lr: expected float, got '1:30.5'")):
        C.load(tmp_path / "o.yaml")
    (tmp_path / "o.yaml").write_text("out: 0812\n")
    assert C.load(tmp_path / "o.yaml").out == "0812"
    assert C.apply_dotted(C.Config(), ["out=010"]).out == "010"
    for item, says in (("seed=0x10", "seed: expected int, got '0x10'"),
                       ("supernet.epochs=1:30", "supernet.epochs: expected int, got '1:30'")):
        with pytest.raises(C.ConfigError, match=re.escape(says)):
            C.apply_dotted(C.Config(), [item])


def test_a_seed_numpy_cannot_take_is_refused_by_name():
    with pytest.raises(C.ConfigError, match=re.escape("seed=-1 (expected 0 to 2**32 - 1)")):
        build_config(build_parser().parse_args(["search", "--seed", "-1"]))


@pytest.mark.parametrize("item, says", [
    ("landmarks.enabled=", "landmarks.enabled: expected true/false, got None"),
    ("data.augment=2", "data.augment: expected true/false, got 2"),
    ("data.augment=[1]", "data.augment: expected true/false, got [1]"),
    ("seed=true", "seed: expected int, got True"),
    ("search.max_params=true", "search.max_params: expected int, got True"),
    ("supernet.lr=on", "supernet.lr: expected float, got True"),
    ("data.spec=[x", "--set data.spec=[x: the value is not valid YAML (while parsing"),
])
def test_set_values_that_are_mistakes_are_named(item, says):
    """A bool field took any truthy value (`enabled:` left empty turned landmarks off),
    a number field a bool, and YAML syntax errors ended in a traceback."""
    with pytest.raises(C.ConfigError) as err:
        C.apply_dotted(C.Config(), [item])
    assert str(err.value).startswith(says), str(err.value)


def test_an_empty_optional_value_is_unset():
    """`--backbone-weights "$W"` with W empty read as no weights before flags were taken
    as typed; it must not become a file named ""."""
    cfg = build_config(build_parser().parse_args(["search", "--backbone-weights", ""]))
    assert cfg.model.backbone_weights is None


def test_a_budget_flag_takes_a_whole_number_in_exponent_form(capsys):
    """--set search.max_params=3.8e5 was read, --max-params 3.8e5 refused as no int."""
    args = build_parser().parse_args(["search", "--max-params", "3.8e5"])
    assert build_config(args).search.max_params == 380_000
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--max-params", "2.5"])
    assert "argument --max-params: not a whole number: '2.5'" in capsys.readouterr().err


def test_train_precision_names_only_the_training_it_sets(capsys):
    with pytest.raises(C.ConfigError) as refused:
        build_config(build_parser().parse_args(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3",
                                                "--precision", "fp16"]))
    assert "standalone.precision='fp16'" in str(refused.value)
    assert "supernet.precision" not in str(refused.value)  # train has no super-net


def test_print_config_shows_every_setting_a_run_would_use_and_starts_nothing(tmp_path, monkeypatch,
                                                                              capsys):
    """Without a preset a search runs the built-in defaults, which nothing listed: the
    printed YAML is the run's config.yaml, and read back as --config it is the same."""
    from depthnas.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--preset", "quick", "--depth-kind", "disparity", "--data",
                 f"folder:{tmp_path}", "--epochs", "3", "--print-config"]) == 0
    printed = capsys.readouterr().out
    (tmp_path / "c.yaml").write_text(printed)
    cfg = C.load(tmp_path / "c.yaml")
    assert cfg.data.depth_kind == "disparity" and cfg.supernet.epochs == 3
    assert cfg.out == ""  # named by the clock when a run starts: the file starts a new run each time
    assert main(["search", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert main(["train", "--arch", "v1-sync:c3,skip,c3,c1,c3", "--out", "runs/t", "--print-config"]) == 0
    assert "out: runs/t\n" in capsys.readouterr().out
    # the settings name no architecture: train printed them only once given an --arch
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # no run folder made


def test_the_defaults_are_the_papers_hyper_parameters():
    """Section 5 and the SPOS search it uses: M = 10 landmarks, T = 3 iterations, m = 1
    pair per step, lambda_max = 10 on the increasing cosine (Table 5), the top-3 trained
    after each iteration; evolution with a population of 50 over 20 generations, the
    top-10 as parents, 25 mutations (each gene resampled with probability 0.1) and 25
    crossovers; BN statistics recalibrated before each path is scored."""
    cfg = C.Config()
    lm, s = cfg.landmarks, cfg.search
    assert (lm.num, s.iterations, lm.pairs, lm.lambda_max, lm.schedule) == (10, 3, 1, 10.0,
                                                                            "cosine-increasing")
    assert s.top_k == 3 and s.method == "evolution"
    assert (s.population, s.generations, s.parents, s.mutations, s.crossovers, s.mutation_prob) == \
        (50, 20, 10, 25, 25, 0.1)
    assert s.calib_batches == 200
    from depthnas.landmark_sampler import default_tau
    from depthnas.spaces import get_space
    assert default_tau(get_space("nb201")) == 5  # the paper's tau for NAS-Bench-201
    assert default_tau(get_space("v1-sync")) == 3  # most of the 5 genes differ from the root
    paper = C.load(preset="paper")
    assert (paper.search.iterations, paper.search.top_k, paper.landmarks.num) == (2, 3, 10)


def test_the_library_draws_as_many_synthetic_scenes_as_a_run_by_default():
    """build_splits drew 256 scenes by default where a run's config draws 512: the
    same call from Python and from the CLI gave different data."""
    import inspect
    from depthnas.config import DataConfig
    from depthnas.datasets import build_splits
    from depthnas.datasets.synthetic import SYNTHETIC_SAMPLES
    from depthnas.evaluate import raw_samples
    assert DataConfig().synthetic_samples == SYNTHETIC_SAMPLES == 512
    for f in (build_splits, raw_samples):
        assert inspect.signature(f).parameters["synthetic_samples"].default == SYNTHETIC_SAMPLES


def test_every_way_in_splits_a_data_set_as_a_run_does_by_default():
    """A run holds out 15% for validation and 15% for the regularizer; the library's
    and `depthnas data`'s defaults must split the same data the same way."""
    import inspect
    from depthnas.config import DataConfig
    from depthnas.datasets import build_splits
    from depthnas.datasets.check import check_data
    from depthnas.datasets.classification import build_classification_splits
    from depthnas.evaluate import raw_samples
    assert (DataConfig().val_fraction, DataConfig().reg_fraction) == (0.15, 0.15)
    for f in (build_splits, raw_samples, check_data, build_classification_splits):
        params = inspect.signature(f).parameters
        assert (params["val_fraction"].default, params["reg_fraction"].default) == (0.15, 0.15), f


def test_a_resume_may_change_where_and_how_fast_a_run_goes_not_what_it_computes():
    """Another machine (loader workers, device, compile, memory layout) may continue a
    run; another batch size would compute another run, and is named."""
    cfg = C.Config()
    recorded = C.run_record(cfg)
    cfg.data.num_workers, cfg.device, cfg.supernet.compile = 8, "cpu", True
    cfg.standalone.channels_last = True
    cfg.supernet.log_every = 5  # how often it logs: refused as another recipe
    assert C.record_changes(recorded, cfg) == []
    cfg.data.batch_size = 4
    assert C.record_changes(recorded, cfg) == ["data.batch_size: 8 then, 4 now"]


@pytest.mark.parametrize("changes, says", [
    ({"data.val_fraction": 0.5, "data.reg_fraction": 0.5}, "leave nothing to train on"),
    ({"landmarks.schedule": "constant", "landmarks.warmup_epochs": 60.0,
      "landmarks.ramp_epochs": 30.0}, r"leave none of the super-net's 90 epochs"),
    ({"seed": 2**32}, r"seed=4294967296 \(expected 0 to 2\*\*32 - 1\)"),
    ({"search.parents": 51}, "search.parents=51 exceeds search.population=50"),
    ({"search.max_params": 0}, r"search.max_params=0 \(expected a finite number > 0"),
])
def test_each_check_holds_at_its_boundary(changes, says):
    cfg = C.Config()
    for dotted, value in changes.items():
        section, _, field = dotted.rpartition(".")
        setattr(getattr(cfg, section) if section else cfg, field, value)
    with pytest.raises(C.ConfigError, match=says):
        validate(cfg)


@pytest.mark.parametrize("overrides", [
    ["landmarks.lambda_max=0"],          # no penalty: the messages say ">= 0"
    ["landmarks.pairs=0"],               # 0 = all pairs (Eq. 4)
    ["search.mutation_prob=1"],          # a probability may be 1
    ["search.parents=50"],               # every candidate a parent
    ["search.top_k=0"],                  # with landmarks: the best landmark is the result
])
def test_settings_at_the_edge_of_their_range_are_accepted(overrides):
    validate(C.apply_dotted(C.Config(), overrides))


def test_a_section_set_to_a_single_value_is_named_not_taken():
    with pytest.raises(C.ConfigError, match=re.escape("data: expected a mapping, got 3")):
        C.apply_dotted(C.Config(), ["data=3"])


def test_a_record_from_an_older_depthnas_is_compared_on_the_fields_it_has():
    cfg = C.Config()
    recorded = C.run_record(cfg)
    del recorded["search.sparse_threshold"]  # a field a later depthnas added
    assert C.record_changes(recorded, cfg) == []
    cfg.seed = 3
    assert C.record_changes(recorded, cfg) == ["seed: 0 then, 3 now"]


def test_a_data_spec_is_recorded_one_way_however_its_kind_is_spelled():
    spelled = C.Config()
    spelled.data.spec = " Synthetic "
    assert C.record_changes(C.run_record(C.Config()), spelled) == []


@pytest.mark.parametrize("overrides", [["landmarks.warmup_epochs=nan"],
                                       ["landmarks.schedule=constant", "landmarks.ramp_epochs=nan"]])
def test_a_landmark_warmup_or_ramp_of_nan_is_refused_before_any_work(overrides):
    with pytest.raises(C.ConfigError, match=re.escape(f"{overrides[-1].split('=')[0]}=nan")):
        validate(C.apply_dotted(C.Config(), overrides))


def test_a_negative_top_k_is_named_alone():
    """It also counted as -2 landmarks joining, and blamed a landmarks.num of 2."""
    with pytest.raises(C.ConfigError) as refused:
        validate(C.apply_dotted(C.Config(), ["search.top_k=-1", "search.iterations=3", "landmarks.num=2"]))
    assert "search.top_k=-1 (expected >= 0" in str(refused.value)
    assert "landmarks.num" not in str(refused.value)


def test_search_help_lists_the_flags_by_the_section_they_set(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    text = capsys.readouterr().out
    heads = [text.index(f"\n{title}:\n") for title in
             ("configuration", "run", "data", "model", "training", "search", "landmarks")]
    assert heads == sorted(heads)
    for flag, title in (("--preset", "configuration"), ("--seed", "run"), ("--resume", "run"),
                        ("--skip-bad", "data"),
                        ("--features", "model"), ("--precision", "training"),
                        ("--top-k", "search"), ("--lambda-max", "landmarks")):
        section = text[text.index(f"\n{title}:\n"):]
        assert f"\n  {flag}" in section.split("\n\n")[0], (flag, title)


@pytest.mark.parametrize("loss", ["ssi", "ssi-image", "ssitrim"])
def test_each_depth_loss_the_trainer_builds_is_accepted(loss):
    """README: `--set standalone.loss=ssitrim`; the check and build_loss share one list."""
    from depthnas.ssi_loss import build_loss
    cfg = C.Config()
    cfg.supernet.loss = cfg.standalone.loss = loss
    assert validate(cfg) is cfg
    build_loss(loss)


def test_a_classification_loss_is_refused_for_a_depth_space():
    cfg = C.Config()
    cfg.standalone.loss = "ce"
    with pytest.raises(C.ConfigError, match=r"standalone.loss='ce' \(expected one of ssi, ssi-image, ssitrim\)"):
        validate(cfg)


@pytest.mark.parametrize("loss", ["ce", "cross_entropy", "ssi"])
def test_a_classifier_takes_cross_entropy_by_either_name_or_the_default(loss):
    from depthnas.task import ClassificationTask
    cfg = C.Config(space="nb201")
    cfg.data.spec = "digits"
    cfg.supernet.loss = cfg.standalone.loss = loss
    assert validate(cfg) is cfg
    ClassificationTask(loss)


def test_the_default_tau_is_three_fifths_of_the_genes_as_the_readme_says():
    from depthnas.landmark_sampler import default_tau
    from depthnas.spaces import get_space
    assert [default_tau(get_space(s)) for s in ("v1-sync", "v2-sync", "v1-nonsync", "v2-nonsync", "nb201")] \
        == [3, 3, 12, 14, 5]


def test_a_data_path_that_does_not_exist_is_refused_with_the_config(tmp_path):
    """A typo in --data folder:PATH was found by the loader, after the model was built
    and the run folder made."""
    for space, spec in (("v1-sync", f"folder:{tmp_path / 'nope'}"), ("nb201", f"cifar10:{tmp_path / 'nope'}")):
        cfg = C.Config(space=space)
        cfg.data.spec = spec
        with pytest.raises(C.ConfigError, match=f"data.spec='{spec}': no such file or folder"):
            validate(cfg)
    cfg = C.Config()
    cfg.data.spec = f"folder:{tmp_path}"
    assert validate(cfg) is cfg


def test_a_file_where_the_kind_reads_a_folder_is_refused_with_the_config(tmp_path):
    """folder:, redweb:, diode: and cifar10: given a file were found by the loader, once
    the run folder had been made (and, in a folder the user made, left files in it)."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"png")
    for space, kind in (("v1-sync", "folder"), ("v1-sync", "redweb"), ("v1-sync", "diode"),
                        ("nb201", "cifar10")):
        cfg = C.Config(space=space)
        cfg.data.spec = f"{kind}:{photo}"
        with pytest.raises(C.ConfigError, match=re.escape(f"data.spec='{kind}:{photo}': {photo} is "
                                                          f"a file; {kind} data is read from a folder")):
            validate(cfg)
    cfg = C.Config()
    cfg.data.spec = f"nyuv2:{photo}"  # NYUv2's labelled .mat is a file
    assert validate(cfg) is cfg


def test_an_unknown_space_is_named_once():
    """Its data check asked for the space too, and named it a second time as data.spec's."""
    cfg = C.Config(space="foo")
    with pytest.raises(C.ConfigError) as refused:
        validate(cfg)
    assert str(refused.value).count("unknown search space 'foo'") == 1


def test_a_data_spec_the_loaders_would_refuse_is_refused_with_the_config():
    """An unknown kind, a path given to embedded data, or data of the other task were
    named by the loaders, after their seconds of imports (and the model's build)."""
    for space, spec, says in (
            ("v1-sync", "bogus:/nope", "unknown dataset kind 'bogus' in spec 'bogus:/nope'"),
            ("v1-sync", "synthetic:/nope", "'synthetic' is embedded and takes no path"),
            ("v1-sync", "folder:", "spec 'folder:' needs a path: 'folder:PATH'"),
            ("v1-sync", "digits", "'digits' is a classification dataset; use it with a classification space"),
            ("nb201", "digits:/nope", "'digits' is embedded and takes no path"),
            ("nb201", "cifar10", "spec 'cifar10' needs the folder of the CIFAR-10 python batches"),
            ("nb201", "synthetic", "space nb201 classifies images: use --data digits")):
        cfg = C.Config(space=space)
        cfg.data.spec = spec
        with pytest.raises(C.ConfigError, match=re.escape(f"data.spec: {says}")):
            validate(cfg)
    cfg = C.Config()
    cfg.data.spec, cfg.data.depth_kind = "nyuv2:/x", "disparity"
    with pytest.raises(C.ConfigError, match="depth kind 'disparity' applies to folder: data"):
        validate(cfg)


def test_the_spec_reader_s_kinds_are_the_loaders_own():
    from depthnas.datasets.spec import CLASSIFICATION_KINDS, DEPTH_DATA_KINDS, KINDS_READ_FROM_A_PATH
    from depthnas.datasets.splits import KINDS
    assert KINDS == DEPTH_DATA_KINDS  # splits.py's readers, and the rendered scenes
    assert set(KINDS_READ_FROM_A_PATH) == (set(KINDS) - {"synthetic"}) | {"cifar10"}
    assert set(CLASSIFICATION_KINDS) == {"digits", "cifar10"}


def test_a_spec_with_spaces_around_its_path_names_the_folder_the_loaders_read(tmp_path):
    """`--data "folder: photos/"` (a space after the colon, as the spec reader's own
    example writes it): the loaders strip the path, so the configuration check must
    too, or it calls an existing folder missing and refuses the run."""
    from depthnas.datasets.spec import data_path_problem, split_spec
    assert split_spec(f" Folder: {tmp_path} ") == ("folder", str(tmp_path))
    assert data_path_problem(f"folder: {tmp_path} ") is None
    assert data_path_problem(f"folder: {tmp_path / 'nope'}") == f"no such file or folder {tmp_path / 'nope'}"


def test_a_data_path_under_the_home_folder_is_found_where_the_loaders_look(tmp_path, monkeypatch):
    """The loaders expand `~` (folder:~/photos); the check before them must too, or it
    refuses a data set that is there as "no such file or folder"."""
    from depthnas.datasets.spec import data_path_problem
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "photos").mkdir()
    assert data_path_problem("folder:~/photos") is None
    assert data_path_problem("folder:~/nope") == "no such file or folder ~/nope"
    cfg = C.Config()
    cfg.data.spec = "folder:~/photos"
    validate(cfg)  # no "data.spec=...: no such file or folder"


def test_a_mistyped_depth_kind_is_said_once_not_also_as_a_spec_fault():
    """data.depth_kind=depht with synthetic data is a typo in the kind: said as such,
    not also as "depth kind 'depht' applies to folder: data ... leave it unset", which
    tells the user to drop a setting a folder: data set needs."""
    cfg = C.Config()
    cfg.data.depth_kind = "depht"
    with pytest.raises(C.ConfigError) as refused:
        validate(cfg)
    assert "data.depth_kind='depht'" in str(refused.value)
    assert "applies to folder: data" not in str(refused.value)


def test_a_spec_yaml_reads_as_a_mapping_is_said_with_the_fix():
    """`--set 'data.spec=folder: my data'` (as `--data "folder: my data"` is written) was
    refused as "expected str, got {'folder': 'my data'}", with no word of why."""
    args = build_parser().parse_args(["search", "--set", "data.spec=folder: my data"])
    with pytest.raises(C.ConfigError, match=re.escape(
            "data.spec: expected text, got {'folder': 'my data'} (YAML reads 'folder: my data' as "
            "a mapping: quote it, as 'folder: my data', or drop the space after the colon)")):
        build_config(args)


def test_a_spec_with_nothing_after_the_colon_is_refused_as_typed():
    """`--set data.spec=folder:` (YAML: {'folder': None}) was told to drop a space it
    did not have before a None it did not type; --data folder: says what is missing."""
    args = build_parser().parse_args(["search", "--set", "data.spec=folder:"])
    with pytest.raises(C.ConfigError, match=re.escape("'folder:' needs a path: 'folder:PATH'")):
        build_config(args)


# C3
def test_a_depth_loss_is_refused_for_a_classification_space():
    """README: classification spaces 'train with cross-entropy, and a depth loss named
    for them is refused'."""
    cfg = C.Config(space="nb201")
    cfg.data.spec = "digits"
    cfg.supernet.loss = "ssitrim"
    with pytest.raises(C.ConfigError, match=re.escape(
            "supernet.loss='ssitrim': classification spaces train with cross-entropy (ce)")):
        validate(cfg)


# C5
def test_landmark_settings_are_not_held_against_a_run_without_landmarks():
    """--no-landmarks runs plain SPOS: a landmarks.tau or landmarks.num it never uses
    must not refuse it."""
    validate(C.apply_dotted(C.Config(), ["landmarks.enabled=false", "landmarks.tau=99"]))
    validate(C.apply_dotted(C.Config(), ["landmarks.enabled=false", "landmarks.num=100000000"]))


# C7, C8
@pytest.mark.parametrize(("overrides", "ok"), [
    # one iteration: no top-K ever joins, so one landmark makes no pair
    (["landmarks.num=1", "search.iterations=1", "search.top_k=3"], False),
    # two iterations: the first's top-1 joins the one landmark, a pair
    (["landmarks.num=1", "search.iterations=2", "search.top_k=1"], True),
])
def test_the_landmark_pairs_count_the_top_k_that_join_after_every_iteration_but_the_last(overrides, ok):
    cfg = C.apply_dotted(C.Config(), overrides)
    if ok:
        validate(cfg)
    else:
        with pytest.raises(C.ConfigError, match=re.escape("landmarks.num=1: the ranking penalty needs pairs")):
            validate(cfg)


# C12 (in the style of test_settings_at_the_edge_of_their_range_are_accepted)
def test_a_mutation_probability_of_0_is_accepted():
    """Space.mutate takes prob 0 as 'change exactly one gene'."""
    validate(C.apply_dotted(C.Config(), ["search.mutation_prob=0"]))


# C22
def test_a_classification_space_leaves_the_image_size_alone():
    """README: classification models read images at the data set's size, so
    `--image-size` leaves them untouched; a depth-only size rule must not refuse it."""
    cfg = C.apply_dotted(C.Config(space="nb201"), ["data.spec=digits", "data.image_size=100"])
    validate(cfg)


def test_apply_dotted_gives_a_copy_and_refuses_one_string_for_a_list():
    """It changed and returned its input: two variants made from one base were one
    object. A bare string was walked by its characters ("--set expects key=value,
    got 's'")."""
    base = C.load(preset="quick")
    a, b = C.apply_dotted(base, ["seed=7"]), C.apply_dotted(base, ["seed=8"])
    assert (base.seed, a.seed, b.seed) == (0, 7, 8)
    with pytest.raises(C.ConfigError, match=r"a list of 'section.field=value' strings, not one "
                                            r"string: \['seed=3'\]"):
        C.apply_dotted(base, "seed=3")


def test_apply_and_apply_dotted_leave_every_section_of_their_input_alone():
    """`apply` changed and returned its input as apply_dotted once did; a shallow copy
    would still share the sections (search, model, ...) between the variants."""
    base = C.load(preset="quick")
    iterations, channels = base.search.iterations, base.model.channels
    a = C.apply(base, {"search": {"iterations": iterations + 5}})
    b = C.apply_dotted(base, [f"model.channels={channels + 3}"])
    assert (base.search.iterations, base.model.channels) == (iterations, channels)
    assert (a.search.iterations, b.model.channels) == (iterations + 5, channels + 3)
    assert a.model is not base.model and b.search is not base.search


def test_model_channels_below_one_are_refused_and_classification_ignores_features():
    """The depth head's least width is not asked of a classification space, which has
    no head; its own width, channels, must be 1 or more."""
    with pytest.raises(C.ConfigError, match=re.escape("model.channels=0 (expected >= 1)")):
        validate(C.apply_dotted(C.Config(), ["model.channels=0"]))
    validate(C.apply_dotted(C.Config(space="nb201"), ["data.spec=digits", "model.features=1"]))


@pytest.mark.parametrize("space, setting, said", [
    ("darts", "model.darts_layers=2", "model.darts_layers=2 (expected >= 3)"),
    ("darts", "model.channels=1", "model.channels=1 (expected >= 2)"),
    ("darts", "model.num_classes=1", "model.num_classes=1 (expected >= 2)"),
    ("nb201", "model.cells_per_stage=0", "model.cells_per_stage=0 (expected >= 1)"),
    ("nb201", "model.num_classes=1", "model.num_classes=1 (expected >= 2)")])
def test_a_classification_model_s_size_is_checked_with_its_settings(space, setting, said):
    """--print-config printed them and the run then failed as the model's constructor
    said it: 'need layers >= 3 ... got layers=2', a name no setting has."""
    with pytest.raises(C.ConfigError, match=re.escape(said)):
        validate(C.apply_dotted(C.Config(space=space), ["data.spec=digits", setting]))
    validate(C.apply_dotted(C.Config(space="v1-sync"), [setting]))  # the depth spaces ignore them



@pytest.mark.parametrize("typed", ["2024.10", "1_000", "0.50", "+5", "1.0e+3"])
def test_a_number_written_into_a_text_field_keeps_its_characters(typed, tmp_path):
    """`--set out=2024.10` named the run folder 2024.1 (YAML read a float); in a config
    file too. Number fields still read it as the number."""
    args = build_parser().parse_args(["search", "--set", f"out={typed}", "--set", f"model.backbone={typed}"])
    cfg = build_config(args, check=False)
    assert cfg.out == typed and cfg.model.backbone == typed
    (tmp_path / "c.yaml").write_text(f"out: {typed}\nsupernet:\n  lr: 0.50\n")
    cfg = C.load(tmp_path / "c.yaml")
    assert cfg.out == typed and cfg.supernet.lr == 0.5 and type(cfg.supernet.lr) is float
    assert C.apply_dotted(C.Config(), ["seed=1_0"]).seed == 10


@pytest.mark.parametrize("text, says", [
    ("search:\n  generatons: 3\n", "'search.generatons' (did you mean search.generations?)"),
    ("search.generations: 3\n", "(in a YAML file a section's field is nested: 'search:' then '  generations: ...')"),
    # not "did you mean supernet.supernet?": the key's own dot is no section
    ("supernet.epochs: 3\n", "(in a YAML file a section's field is nested: 'supernet:' then '  epochs: ...')"),
    ("data:\n  batch.size: 3\n", "'data.batch.size' (did you mean data.batch_size?)"),
    ("supernet:\n  supernet.epochs: 3\n", "'supernet.supernet.epochs' (did you mean supernet.epochs?)"),
    ("landmark.enabled: false\n", "nested: 'landmarks:' then '  enabled: ...'"),
    ("supernet:\n  batch_size: 3\n", "'supernet.batch_size' ('batch_size' is data.batch_size)"),
    # the exact name elsewhere beats a near one here (supernet.epochs)
    ("supernet:\n  warmup_epochs: 3\n", "('warmup_epochs' is landmarks.warmup_epochs)"),
    ("search:\n  a: [1\n", "in c.yaml, line 2, column 6"),  # not "<unicode string>"
])
def test_a_mistyped_key_is_told_what_it_likely_meant(text, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("c.yaml").write_text(text)
    with pytest.raises(C.ConfigError) as refused:
        C.load("c.yaml")
    assert says in str(refused.value)


def test_an_empty_config_file_is_said_to_hold_no_settings(tmp_path, caplog):
    """A file cut to nothing started a run of the defaults without a word."""
    (tmp_path / "c.yaml").write_text("# experiment 4\n")
    with caplog.at_level("WARNING"):
        assert C.load(tmp_path / "c.yaml") == C.Config()
    assert "holds no settings (empty, or comments only)" in caplog.text


def test_an_empty_config_file_is_said_once(tmp_path, caplog):
    """train reads the file again (which space it names): the warning came twice."""
    from depthnas.cli import main
    (tmp_path / "c.yaml").write_text("")
    with caplog.at_level("WARNING"):
        assert main(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--config", str(tmp_path / "c.yaml"),
                     "--print-config"]) == 0
    assert caplog.text.count("holds no settings") == 1


@pytest.mark.parametrize("argv", [["--config", "a.yaml", "--config", "b.yaml"],
                                  ["--preset", "quick", "--preset", "paper"], ["--out", "a", "--out", "b"]])
def test_a_flag_naming_the_run_s_one_file_preset_or_folder_is_refused_twice(argv, capsys):
    """argparse kept the last: a base config and an experiment's, given in turn, ran the
    experiment's alone."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["search", *argv])
    assert exit_.value.code == 2
    assert f"{argv[0]} given twice ({argv[1]}, {argv[3]}): a run takes one" in capsys.readouterr().err


def test_a_landmark_store_that_is_no_json_file_is_refused():
    """`--landmarks 5`, meant as a number of landmarks, made a store file named 5."""
    with pytest.raises(C.ConfigError, match=r"landmarks.store='.*5' \(--landmarks\): a new store is a "
                                            r"\.json file; the number of landmarks is --num-landmarks"):
        build_config(build_parser().parse_args(["search", "--landmarks", "5"]))


def test_a_store_an_earlier_run_keeps_under_another_name_is_still_taken(tmp_path, monkeypatch):
    """The .json rule is for new stores: a run the earlier code started with one named
    otherwise still resumes, and a training's config naming it still trains."""
    monkeypatch.chdir(tmp_path)
    Path("5").write_text('{"version": 1, "entries": []}')
    assert build_config(build_parser().parse_args(["search", "--landmarks", "5"])).landmarks.store.endswith("5")
    Path("c.yaml").write_text("landmarks:\n  store: other\n")
    build_config(build_parser().parse_args(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3",
                                            "--config", "c.yaml"]), check=False)


def test_config_yaml_writes_unicode_as_it_reads(tmp_path):
    cfg = C.apply_dotted(C.Config(), ["out=ünï rün"])
    assert "out: ünï rün\n" in C.as_yaml(cfg)
    C.dump(cfg, tmp_path / "c.yaml")
    assert C.load(tmp_path / "c.yaml").out == "ünï rün"


@pytest.mark.parametrize("typed, says", [("abc", "got 'abc'"), ("[64, a]", "got [64, 'a']")])
def test_an_image_size_that_is_no_size_is_said_as_the_form_it_needs(typed, says):
    """"abc" read "expected int, got 'abc'", as if one side were at fault."""
    with pytest.raises(C.ConfigError, match=re.escape(f"data.image_size: expected H,W or one number, {says}")):
        C.apply_dotted(C.Config(), [f"data.image_size={typed}"])
    assert C.apply_dotted(C.Config(), ["data.image_size=64X96"]).data.image_size == (64, 96)


def test_settings_the_command_does_nothing_with_are_said(caplog):
    """Taken and recorded in config.yaml without a word: a training's super-net epochs,
    plain SPOS's landmark count."""
    with caplog.at_level("WARNING"):
        build_config(build_parser().parse_args(
            ["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--set", "supernet.epochs=5",
             "--set", "search.generations=7", "--set", "standalone.epochs=2"]), check=False)
        build_config(build_parser().parse_args(["search", "--no-landmarks", "--num-landmarks", "5"]))
    assert ("--set search.generations, supernet.epochs: `depthnas train` does nothing with them"
            in caplog.text)
    assert "--no-landmarks runs plain SPOS: --num-landmarks does nothing" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        build_config(build_parser().parse_args(["search", "--num-landmarks", "5",
                                                "--set", "supernet.epochs=5"]))
    assert "does nothing" not in caplog.text


def test_fields_a_script_sets_by_attribute_are_brought_to_their_types_or_named():
    """A Path for out failed as a YAML RepresenterError when config.yaml was written;
    1.5 iterations as a TypeError after the landmarks had trained; "1" as a seed as a
    comparison of int and str."""
    from pathlib import Path

    import torch
    cfg = C.load(preset="quick")
    cfg.out, cfg.data.spec, cfg.device, cfg.seed = Path("runs/x"), Path("folder:data"), torch.device("cpu"), "1"
    cfg.data.image_size = [64, 96]
    C.retyped(cfg)
    assert (cfg.out, cfg.data.spec, cfg.device, cfg.seed) == ("runs/x", "folder:data", "cpu", 1)
    assert cfg.data.image_size == (64, 96)
    cfg.search.iterations, cfg.landmarks.enabled = 1.5, "maybe"
    with pytest.raises(C.ConfigError) as refused:  # both at once, as validate names problems
        validate(cfg)
    assert "search.iterations: expected a whole number, got 1.5" in str(refused.value)
    assert "landmarks.enabled: expected true/false, got 'maybe'" in str(refused.value)
    # a whole section replaced: a mapping of its fields, or named (an AttributeError later)
    cfg = C.Config()
    cfg.supernet, cfg.standalone = {"epochs": "3"}, {"lr": 2e-3}
    assert C.retyped(cfg).supernet == dataclasses.replace(C.Config().supernet, epochs=3)
    # the field's own default: a stand-alone training's 20 epochs, not a TrainConfig's 30
    assert cfg.standalone == dataclasses.replace(C.Config().standalone, lr=2e-3)
    cfg.data, cfg.search = None, {"generatons": 3}
    with pytest.raises(C.ConfigError) as refused:
        validate(cfg)
    assert "data: expected a DataConfig or a mapping of its fields, got None" in str(refused.value)
    assert "unknown config key 'search.generatons' (did you mean search.generations?)" in str(refused.value)


def test_a_set_path_through_a_setting_is_refused_not_read_as_text(tmp_path):
    """`--set out.myrun=` made out the text 'myrun:' (YAML's `myrun:`) and named a run
    folder so; `--set data.spec.x=1` was told to quote a mapping."""
    for assignment, says in (("out.myrun=", "out.myrun: out is a setting, not a section (set it as out=VALUE)"),
                             ("data.spec.x=1", "data.spec.x: data.spec is a setting, not a section")):
        with pytest.raises(C.ConfigError, match=re.escape(says)):
            C.apply_dotted(C.Config(), [assignment])
    assert C.apply_dotted(C.Config(), ["data.spec=folder:"]).data.spec == "folder:"  # YAML's {folder: None}


def test_out_and_a_set_out_naming_another_folder_are_refused(tmp_path):
    """--out was checked (a folder, free), and --set out= was the folder used."""
    args = build_parser().parse_args(["search", "--out", str(tmp_path / "a"), "--set", f"out={tmp_path / 'b'}"])
    with pytest.raises(C.ConfigError, match=r"--out .*a and out=.*b \(--set\) name two folders"):
        build_config(args, check=False)
    args = build_parser().parse_args(["search", "--out", str(tmp_path / "a"), "--set", f"out={tmp_path / 'a'}"])
    assert build_config(args, check=False).out == str(tmp_path / "a")


def test_a_search_without_a_regularizer_split_is_refused_before_the_data_is_read(tmp_path):
    args = build_parser().parse_args(["search", "--set", "data.reg_fraction=0", "--out", str(tmp_path / "s")])
    with pytest.raises(C.ConfigError, match="data.reg_fraction=0 leaves the landmark regularizer no data"):
        build_config(args)
    for argv in (["search", "--no-landmarks"], ["train", "--arch", "v1-sync:c3,c3,c3,c3,c3"]):
        build_config(build_parser().parse_args([*argv, "--set", "data.reg_fraction=0",
                                                "--out", str(tmp_path / argv[0])]))


def test_an_assignment_that_is_no_string_or_pair_is_named():
    """apply_dotted(cfg, [{"search": {...}}]) raised AttributeError: 'dict' object has no
    attribute 'partition'."""
    with pytest.raises(C.ConfigError, match=r"not \{'search': \{'iterations': 2\}\} \(config.apply"):
        C.apply_dotted(C.Config(), [{"search": {"iterations": 2}}])
    assert C.apply_dotted(C.Config(), [("search.iterations", 2)]).search.iterations == 2


@pytest.mark.parametrize("setting, said", [
    ("device=", "device='' (expected auto, cpu, cuda or cuda:N)"),
    # torch knows these, depthnas does not run on them: torch's traceback as the run started
    ("device=mps", "device='mps' (expected auto, cpu, cuda or cuda:N)"),
    ("device=meta", "device='meta' (expected"),
    ("model.backbone=", "model.backbone is empty (a timm model")])
def test_an_empty_or_unsupported_device_or_empty_backbone_is_refused_with_the_settings(setting, said):
    """`device:` left empty in a YAML file passed --print-config (as device: '') and was
    refused only as the run started, as "unknown device ''"; --device mps was a
    RuntimeError traceback (and left a search's folder)."""
    with pytest.raises(C.ConfigError, match=re.escape(said)):
        validate(C.apply_dotted(C.load(preset="quick"), [setting]))


def test_a_device_torch_names_with_an_index_is_taken():
    """cpu:0, which torch and evaluate take, was refused by search and train."""
    for device in ("cpu:0", "cuda:1", "auto"):
        validate(C.apply_dotted(C.load(preset="quick"), [f"device={device}"]))
    with pytest.raises(C.ConfigError, match=re.escape("device=' cpu' (expected")):  # torch refuses it
        validate(C.apply_dotted(C.load(preset="quick"), [("device", " cpu")]))


def test_a_config_given_as_a_pipe_is_said_to_be_one_not_missing(tmp_path):
    """`--config <(printf ...)` and /dev/stdin were "config file not found: /dev/fd/63",
    for a path that exists; a run reads its config file more than once, which a pipe
    allows only once."""
    import os
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(C.ConfigError, match=r"--config .*pipe.yaml is not a regular file \(a pipe"):
        C.load(fifo)
