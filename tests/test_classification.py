"""Classification data, task, truth tables, the benchmark adapter, and a tiny search."""
import functools
import json
import pickle
import random
import sys
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depthnas import config as config_mod
from depthnas.cli import main
from depthnas.datasets.classification import (ImageClassificationDataset, build_classification_splits,
                                              load_cifar10, stratified_split)
from depthnas.datasets.spec import is_classification_spec
from depthnas.spaces import get_space
from depthnas.task import ClassificationTask, make_task
from depthnas.trainer import _seed_worker
from depthnas.truth import load_truth

NB201 = get_space("nb201")
ARCH_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ARCH_B = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def digits():
    return build_classification_splits("digits", seed=0)


# ---- data ------------------------------------------------------------------------------
def test_digits_splits_are_disjoint_stratified_and_normalised(digits):
    train, reg, val = (set(s.ids()) for s in (digits.train, digits.reg, digits.val))
    assert len(train) + len(reg) + len(val) == 1797
    assert not (train & reg or train & val or reg & val)
    assert abs(len(val) - 0.15 * 1797) < 10 and abs(len(reg) - 0.15 * 1797) < 10
    assert {int(digits.val[i]["label"]) for i in range(len(digits.val))} == set(range(10))
    item = digits.val[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64
    raw = build_classification_splits("digits", seed=0, augment=False).train
    x = torch.stack([raw[i]["image"] for i in range(len(raw))])
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    manifest = json.loads(json.dumps(digits.manifest()))
    assert manifest["val"] == digits.val.ids() and manifest["num_classes"] == 10


def test_splits_are_seeded(digits):
    assert build_classification_splits("digits", seed=0).val.ids() == digits.val.ids()
    assert build_classification_splits("digits", seed=1).val.ids() != digits.val.ids()


def test_augmentation_only_on_train_and_replayable(digits):
    torch.manual_seed(3)
    a = digits.train[5]["image"]
    torch.manual_seed(3)
    assert torch.equal(a, digits.train[5]["image"])
    plain = build_classification_splits("digits", seed=0, augment=False)
    assert torch.equal(digits.val[5]["image"], plain.val[5]["image"])  # val: never augmented
    assert torch.equal(digits.reg[5]["image"], plain.reg[5]["image"])
    crops = [digits.train[i]["image"] for i in range(20)]
    assert any(not torch.equal(c, plain.train[i]["image"]) for i, c in enumerate(crops))


def test_augmentation_is_the_same_for_any_number_of_loader_workers(digits):
    """data.num_workers may change on --resume; the crops and flips must not. They drew
    from torch's global generator, which each worker seeds differently."""
    def first_batch(workers, seed=11):
        torch.manual_seed(seed)  # what the trainer does at every epoch, and in its workers
        loader = torch.utils.data.DataLoader(digits.train, batch_size=16, num_workers=workers,
                                             worker_init_fn=functools.partial(_seed_worker, seed))
        return next(iter(loader))["image"]
    base = first_batch(0)
    for workers in (1, 2):
        assert torch.equal(base, first_batch(workers)), f"{workers} workers"
    assert not torch.equal(base, first_batch(0, seed=12))  # another epoch, other crops


def test_spec_errors():
    assert is_classification_spec("digits") and is_classification_spec("cifar10:/x")
    assert not is_classification_spec("synthetic")
    with pytest.raises(ValueError, match="takes no path"):
        build_classification_splits("digits:/tmp")
    with pytest.raises(ValueError, match="needs the folder"):
        build_classification_splits("cifar10")


def _write_cifar(root, n=30, protocol=2):
    """Batches in the layout of the official python version, with random content."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [f"{i}.png".encode() for i in range(n)]}
        with open(root / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=protocol)
    return root


@pytest.mark.parametrize("protocol", [2, 5])  # the official files are protocol 2
def test_cifar10_batches(tmp_path, protocol):
    root = _write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    x, y, xt, yt = load_cifar10(tmp_path)  # the parent folder is accepted too
    assert x.shape == (150, 3, 32, 32) and x.dtype == torch.uint8 and yt.shape == (30,)
    splits = build_classification_splits(f"cifar10:{root}", seed=0)
    assert len(splits.train) + len(splits.reg) + len(splits.val) == 150 and len(splits.test) == 30
    assert splits.train[0]["image"].shape == (3, 32, 32)
    assert splits.manifest()["classes"][0] == "airplane"


def test_cifar10_batches_of_one_class_are_refused(tmp_path):
    """All labels 3: the run trained to a 100% error rate and said only that the model
    learned nothing."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [3] * 4}, fh, protocol=2)
    with pytest.raises(ValueError, match=r"every training image has label 3 \(cat\)"):
        build_classification_splits(f"cifar10:{root}")
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": np.zeros(0, np.int64)},
                        fh, protocol=4)
    with pytest.raises(ValueError, match="the batches hold no training image"):
        build_classification_splits(f"cifar10:{root}")


def test_cifar10_rows_are_red_green_blue_planes(tmp_path):
    """The official batches store each image as 1024 red, 1024 green, then 1024 blue
    bytes; read as pixels of three bytes, the colours mix."""
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    row = np.concatenate([np.full(1024, 255), np.zeros(1024), np.full(1024, 7)]).astype(np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": np.tile(row, (2, 1)), b"labels": [0, 1]}, fh, protocol=2)
    x = load_cifar10(root)[0]
    assert x.shape == (10, 3, 32, 32)
    assert (x[:, 0] == 255).all() and (x[:, 1] == 0).all() and (x[:, 2] == 7).all()


def test_cifar10_missing_files_are_named(tmp_path):
    root = _write_cifar(tmp_path / "c")
    (root / "data_batch_3").unlink()
    (root / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_3, test_batch"):
        load_cifar10(root)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_cifar10(tmp_path / "nowhere")


def test_damaged_cifar10_batches_and_an_archive_given_as_the_folder_are_named(tmp_path):
    root = _write_cifar(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="is a file; pass the folder of the python batches"):
        load_cifar10(root / "data_batch_1")
    with open(root / "data_batch_2", "wb") as fh:  # labels as class names
        pickle.dump({b"data": np.zeros((30, 3072), np.uint8), b"labels": ["cat"] * 30}, fh)
    with pytest.raises(ValueError, match=r"data_batch_2: 'labels' are <U3, expected integers"):
        load_cifar10(root)
    other = _write_cifar(tmp_path / "d")
    raw = bytearray((other / "data_batch_1").read_bytes())
    raw[40] ^= 0xFF  # a flipped byte: the unpickler may ask for a huge allocation
    (other / "data_batch_1").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="data_batch_1"):
        load_cifar10(other)


def test_a_broken_nb201_string_gets_the_nb201_parser_s_message(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no --out: were the refusal lost, runs/ would go here
    assert main(["train", "--arch", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",
                 "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "nb201" in err and "lacks the space prefix" not in err


def test_report_escapes_the_bars_of_nb201_strings_in_its_table(tmp_path):
    from depthnas.report import write_report
    arch = "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    entry = {"arch": arch, "role": "landmark", "val_loss": 0.2, "supernet_score": 0.3,
             "landmark": True, "params": 1000}
    write_report(tmp_path, {"space": "nb201", "landmarks": True, "elapsed_s": 60.0, "ranking": None,
                            "best": {"string": arch, "val_loss": 0.2, "params": 1000, "found_in": "landmark"},
                            "architectures": [entry]})
    row = [line for line in (tmp_path / "report.md").read_text().splitlines() if "landmark |" in line][0]
    assert row.replace("\\|", "").count("|") == 5  # four cells: the arch's bars are escaped


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_reader_runs_no_code(tmp_path, capsys):
    root = _write_cifar(tmp_path / "c")
    with open(root / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": []}, fh)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_cifar10(root)
    assert "pwned" not in capsys.readouterr().out


def test_load_splits_dispatch_and_mismatch():
    from depthnas.data import load_splits
    cfg = config_mod.Config(space="nb201")
    cfg.data.spec = "digits"
    assert len(load_splits(cfg).val) > 0
    cfg.data.spec = "synthetic"
    with pytest.raises(ValueError, match="classifies images"):
        load_splits(cfg)
    cfg = config_mod.Config(space="v1-sync")
    cfg.data.spec = "digits"
    with pytest.raises(ValueError, match="classification dataset"):
        load_splits(cfg)
    # 20 logits for 10 classes trained without a word, at error 1.0
    for classes in (5, 20):
        cfg = config_mod.Config(space="nb201")
        cfg.data.spec, cfg.model.num_classes = "digits", classes
        with pytest.raises(ValueError, match=f"digits has 10 classes but model.num_classes is {classes}; "
                                             "they must be equal"):
            load_splits(cfg)


# ---- task ------------------------------------------------------------------------------
def test_classification_task():
    task = make_task(NB201, "ssi")  # the config default means "the task's own loss"
    assert isinstance(task, ClassificationTask)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    batch = {"image": torch.zeros(3), "label": torch.tensor([0, 1, 1])}
    wrong, n = task.score(logits, batch)
    assert (float(wrong), n) == (1.0, 3)  # one error: the score is the error rate
    torch.testing.assert_close(task.loss(logits, batch),
                               torch.nn.functional.cross_entropy(logits, batch["label"]))
    with pytest.raises(ValueError, match="cross-entropy"):
        make_task(NB201, "ssitrim")


def test_a_classifier_that_ignores_its_input_is_at_the_constant_level(digits, capsys):
    """Same logits for every image name one class; at best the most frequent one. That
    error rate is the level `depthnas train` and the search compare with, as the
    constant map is for depth (a chance-level classifier used to pass unremarked)."""
    from depthnas.train_cli import _warn_if_no_better_than_constant
    from depthnas.degenerate import at_constant_level, learned_nothing
    from depthnas.scoring import constant_score, evaluate_fixed
    labels = torch.stack([digits.val[i]["label"] for i in range(len(digits.val))])
    counts = torch.bincount(labels, minlength=10)
    base = constant_score(ClassificationTask(), digits.val, batch_size=16)
    assert base == pytest.approx(1 - counts.max().item() / len(labels))
    assert 0.85 < base < 0.95  # digits: ten nearly equal classes

    class Constant(torch.nn.Module):
        def __init__(self, cls):
            super().__init__()
            self.cls = cls

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((x.shape[0],), self.cls), 10).float()
    scores = [evaluate_fixed(Constant(c), ClassificationTask(), digits.val) for c in range(10)]
    assert min(scores) == pytest.approx(base)
    assert at_constant_level(min(scores), base) and learned_nothing(max(scores), base)
    _warn_if_no_better_than_constant({"val_loss": 0.9, "constant_prediction_loss": base},
                                     classifies=True)
    err = capsys.readouterr().err
    assert "most frequent class for every image" in err and "ReLU" not in err
    _warn_if_no_better_than_constant({"val_loss": 0.2, "constant_prediction_loss": base},
                                     classifies=True)
    assert capsys.readouterr().err == ""


# ---- truth tables ------------------------------------------------------------------------
def test_truth_accuracy_is_read_as_error_rate(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(f"arch,accuracy\n{ARCH_A},93.5\n{ARCH_B},80\n")
    assert load_truth(csv) == pytest.approx({ARCH_A: 0.065, ARCH_B: 0.2})
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"architectures": {ARCH_A: {"accuracy": 90.0}, ARCH_B: {"val_loss": 0.3,
                                                                                    "accuracy": 1.0}}}))
    assert load_truth(js) == pytest.approx({ARCH_A: 0.1, ARCH_B: 0.3})  # a loss key wins
    js.write_text(json.dumps([{"arch": ARCH_A, "accuracy": 0.93}, {"arch": ARCH_B, "accuracy": 0.8}]))
    with pytest.raises(ValueError, match="looks like fractions"):
        load_truth(js)
    js.write_text(json.dumps({ARCH_A: {"accuracy": 193}}))
    with pytest.raises(ValueError, match=r"percent in \[0, 100\]"):
        load_truth(js)


def test_a_classification_error_rate_of_one_is_an_error_rate():
    from depthnas.truth import for_space
    space = get_space("nb201")
    arch = space.to_string(space.sample(random.Random(0)))
    assert list(for_space({arch: 1.0}, space, "t.json").values.values()) == [1.0]


# ---- benchmark adapter -----------------------------------------------------------------
class _StubAPI:
    """Stands in for nats_bench's topology API: same query methods, our numbers."""

    def __init__(self):
        self.calls = []

    def query_index_by_arch(self, arch):
        return {ARCH_A: 7, ARCH_B: 11}.get(arch, -1)

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        return {"train-accuracy": 99.0, "valid-accuracy": {7: 91.25, 11: 85.0}[index]}


def test_nasbench_export_round_trips_through_truth(tmp_path, monkeypatch, caplog):
    from depthnas.nasbench import export_truth
    api = _StubAPI()
    shuffled_a = "|nor_conv_3x3~0|+|avg_pool_3x3~1|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    export_truth(api, [shuffled_a, ARCH_B], tmp_path / "truth.json")
    assert api.calls == [(7, "cifar10-valid", "200", False), (11, "cifar10-valid", "200", False)]
    assert load_truth(tmp_path / "truth.json") == pytest.approx({ARCH_A: 0.0875, ARCH_B: 0.15})
    with pytest.raises(ValueError, match="no test-accuracy"):
        export_truth(api, [ARCH_A], tmp_path / "t2.json", setname="test")
    # a table of test accuracies is said to be one where it is read: a search picks by it
    api.get_more_info = lambda *a, **k: {"test-accuracy": 90.0}
    export_truth(api, [ARCH_A], tmp_path / "t2.json", setname="test")
    with caplog.at_level("WARNING", logger="depthnas.truth"):
        assert load_truth(tmp_path / "t2.json") == pytest.approx({ARCH_A: 0.1})
    assert "t2.json holds the benchmark's test-accuracy: a search that picks by it selects on the test set" \
        in caplog.text
    # a typo is named before the benchmark opens (minutes for a full NATS file)
    opened = []
    monkeypatch.setattr("depthnas.nasbench.open_benchmark", lambda path: opened.append(path) or api)
    with pytest.raises(ValueError, match="nor_conv_9x9"):
        export_truth(tmp_path / "bench.pth", [ARCH_A, ARCH_A.replace("nor_conv_3x3", "nor_conv_9x9", 1)],
                     tmp_path / "t3.json")
    assert opened == [] and not (tmp_path / "t3.json").exists()


def test_nasbench_missing_file_or_package(tmp_path, monkeypatch):
    from depthnas.nasbench import open_benchmark
    with pytest.raises(FileNotFoundError, match="benchmark file not found"):
        open_benchmark(tmp_path / "NATS-tss-v1_0-3ffb9-simple")
    (tmp_path / "NATS-tss-v1_0-3ffb9-simple").mkdir()
    (tmp_path / "NAS-Bench-201-v1_1-096897.pth").touch()
    monkeypatch.setitem(sys.modules, "nats_bench", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "nas_201_api", None)
    with pytest.raises(ImportError, match="pip install nats_bench"):
        open_benchmark(tmp_path / "NATS-tss-v1_0-3ffb9-simple")
    with pytest.raises(ImportError, match="pip install nas-bench-201"):
        open_benchmark(tmp_path / "NAS-Bench-201-v1_1-096897.pth")


@pytest.mark.parametrize("raised, said", [
    (OSError(22, "Invalid data stream"), "NATS-tss-v1_0-3ffb9-simple: Invalid data stream"),
    # a file inside a fast-mode folder: "No such file" named the folder, which exists
    (OSError(2, "No such file or directory", "NATS-tss-v1_0-3ffb9-simple/meta.pickle.pbz2"),
     "NATS-tss-v1_0-3ffb9-simple (NATS-tss-v1_0-3ffb9-simple/meta.pickle.pbz2): No such file"),
    (ValueError("invalid literal for int() with base 10: 'arbage'"), "NATS-tss-v1_0-3ffb9-simple is not a readable")])
def test_a_nats_bench_file_its_reader_cannot_read_is_one_line_naming_it(tmp_path, monkeypatch, capsys,
                                                                       raised, said):
    """A damaged download came out of `python -m depthnas.nasbench` as a traceback (an
    OSError), or as the reader's words without the file's name (a ValueError)."""
    import types

    from depthnas.nasbench import main as nasbench_main

    def create(path, space, fast_mode, verbose):
        raise raised
    monkeypatch.setitem(sys.modules, "nats_bench", types.SimpleNamespace(create=create))
    bench = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    bench.write_bytes(b"x\n")
    assert nasbench_main([str(bench), "--random", "3", "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and "Traceback" not in err


def test_a_fast_mode_file_damaged_past_the_opening_is_named_not_a_traceback(tmp_path, monkeypatch, capsys):
    """NATS-Bench's fast mode reads each architecture's file at its first query: a
    missing or cut one failed minutes into --all, as the reader's AssertionError."""
    import types

    from depthnas.nasbench import main as nasbench_main

    class API(_StubAPI):
        def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
            if index == 11:
                raise AssertionError(f"invalid data path : {bench}/11.pickle.pbz2")
            return super().get_more_info(index, dataset, iepoch, hp, is_random)
    monkeypatch.setitem(sys.modules, "nats_bench", types.SimpleNamespace(create=lambda *a, **k: API()))
    bench = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    bench.mkdir()
    (tmp_path / "archs.txt").write_text(f"{ARCH_A}\n{ARCH_B}\n")
    assert nasbench_main([str(bench), "--archs", str(tmp_path / "archs.txt"), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bench} is not a readable NAS-Bench-201 / NATS-Bench file") and \
        "11.pickle.pbz2" in err and "Traceback" not in err
    # an architecture the benchmark lacks is said so, not taken for a damaged file
    with pytest.raises(ValueError, match=r"^architecture \|nor_conv_3x3.* is not in the benchmark \(a NATS"):
        from depthnas.nasbench import export_truth
        export_truth(_StubAPI(), [ARCH_A.replace("skip_connect~2", "none~2")], tmp_path / "t.json")


@pytest.mark.parametrize("argv, said", [
    (["--dataset", "cifar10"], "--set valid: the cifar10 protocol has no valid-accuracy (it has test, train); "
                               "the validation accuracy is cifar10-valid's"),
    (["--set", "valtest"], "--set valtest: the cifar10-valid protocol has no valtest-accuracy"),
])
def test_a_split_the_protocol_lacks_is_refused_before_the_benchmark_opens(tmp_path, monkeypatch, capsys,
                                                                          argv, said):
    from depthnas.nasbench import main as nasbench_main
    opened = []
    monkeypatch.setattr("depthnas.nasbench.open_benchmark", lambda path: opened.append(path))
    (tmp_path / "archs.txt").write_text(ARCH_A + "\n")
    assert nasbench_main([str(tmp_path / "b.pth"), "--archs", str(tmp_path / "archs.txt"),
                          "--out", str(tmp_path / "t.json"), *argv]) == 2
    assert said in capsys.readouterr().err and opened == []
    (tmp_path / "archs.txt").write_text("\n\n")  # nothing to export: said, not an empty table
    assert nasbench_main([str(tmp_path / "b.pth"), "--archs", str(tmp_path / "archs.txt"),
                          "--out", str(tmp_path / "t.json")]) == 2
    assert "no architectures to export" in capsys.readouterr().err and opened == []


class _BenchmarkRecord:
    """An object a benchmark file pickles, which torch's weights-only loading refuses."""


def test_a_nas_bench_201_file_opens_under_torch_2_6_and_a_damaged_one_is_named(tmp_path, monkeypatch):
    """nas_201_api reads its .pth with a bare torch.load, which torch >= 2.6 turns into
    a weights-only load that refuses the file's pickled objects; a damaged file came
    out as an UnpicklingError traceback, another model's .pth as an AssertionError."""
    import types

    import torch

    from depthnas.nasbench import main as nasbench_main, open_benchmark

    class API:  # as nas_201_api's: it loads the path itself, and asserts the layout
        def __init__(self, path, verbose):
            data = torch.load(path, map_location="cpu")
            assert isinstance(data, dict) and "meta_archs" in data, "Can not find key[meta_archs]"
            self.data = data
    monkeypatch.setitem(sys.modules, "nas_201_api", types.SimpleNamespace(NASBench201API=API))
    bench = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save({"meta_archs": ["|skip_connect~0|"], "record": _BenchmarkRecord()}, bench)
    assert open_benchmark(bench).data["meta_archs"] == ["|skip_connect~0|"]
    assert torch.load.__module__ == "torch.serialization"  # not left patched
    torch.save(torch.nn.Linear(2, 2).state_dict(), bench)  # another model's weights
    with pytest.raises(ValueError, match="NAS-Bench-201-v1_1-096897.pth is not a readable"):
        open_benchmark(bench)
    bench.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="NAS-Bench-201-v1_1-096897.pth is not a readable"):
        open_benchmark(bench)
    archs = tmp_path / "archs.txt"
    archs.write_text(ARCH_A + "\n")
    assert nasbench_main([str(bench), "--archs", str(archs), "--out", str(tmp_path / "t.json")]) == 2


# ---- end to end ------------------------------------------------------------------------------
TINY = ["model.cells_per_stage=1", "model.channels=8", "data.batch_size=16",
        "supernet.epochs=1", "standalone.epochs=1", "supernet.steps_per_epoch=3",
        "standalone.steps_per_epoch=3", "landmarks.num=3", "search.iterations=2", "search.top_k=1",
        "search.population=3", "search.generations=1", "search.parents=2", "search.mutations=1",
        "search.crossovers=1", "search.calib_batches=1", "search.val_batches=2", "search.rank_samples=1"]


@pytest.fixture
def one_thread():
    """Tensors this small gain nothing from a second intra-op thread, and on a busy
    machine its synchronisation stalls each op for milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Three steps per training leave every tiny model at the same error, so the rank
# correlation of the two held-out architectures is undefined (nan), as reported.
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_tiny_nb201_search_with_landmarks(tmp_path, one_thread, capsys, caplog):
    out = tmp_path / "run"
    argv = ["search", "--space", "nb201", "--data", "digits", "--out", str(out), "--device", "cpu",
            "--no-progress", "--skip-bad"]  # a script's habit: said to do nothing here
    assert main(argv + [a for kv in TINY for a in ("--set", kv)] + ["--set", "search.rank_samples=2"]) == 0
    assert "--skip-bad (data.skip_bad) leaves out bad files" in caplog.text
    best = json.loads((out / "best_arch.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert NB201.from_string(best["string"]) == NB201.from_json(best)
    assert 0.0 <= best["val_loss"] <= 1.0  # an error rate
    assert results["landmarks"] is True
    assert results["score_name"] == "error rate"
    assert 0.85 < results["constant_prediction_loss"] < 0.95  # one class named for every image
    # paths are picked by error rate alone: one at the majority class's error rate is
    # not thereby collapsed (live paths land there by chance), so none is put last
    assert results["search_constant_loss"] is None
    assert "stand-alone validation error rate" in (out / "report.md").read_text()
    assert "random architectures, against their stand-alone error rate: Kendall tau" in \
        capsys.readouterr().out
    assert sum(a["landmark"] for a in results["architectures"]) >= 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("train_reg" in r for r in records if r.get("phase") == "supernet")
    assert json.loads((out / "splits.json").read_text())["spec"] == "digits"
    from depthnas.models import load_model
    model, meta = load_model(out)
    assert meta["space"] == "nb201" and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # its splits.json records image indices, not file names: resume and rank read them
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    truth = tmp_path / "truth.json"
    table = {a["arch"]: a["val_loss"] for a in results["architectures"]}
    for seed in range(4):  # a user's table holds architectures the run did not train
        table[NB201.to_string(NB201.sample(random.Random(100 + seed)))] = 0.5 + seed / 10
    truth.write_text(json.dumps(table))
    caplog.clear()
    assert main(["rank", "--run", str(out), "--truth", str(truth), "--no-progress"]) == 0
    assert "--skip-bad" not in caplog.text  # rank was given no such flag
    ranked = json.loads((out / "rank.json").read_text())
    # judged against naming the majority class, not taken as learned for want of a level
    level = results["constant_prediction_loss"]
    assert ranked["constant_level"] == pytest.approx(level)
    assert ranked["supernet_learned"] is (min(ranked["scores"].values()) < 0.99 * level)


def test_tiny_darts_standalone_training(tmp_path, one_thread, capsys):
    genotype = get_space("darts").to_string(get_space("darts").sample(__import__("random").Random(0)))
    out = tmp_path / "darts"
    argv = ["train", "--space", "darts", "--data", "digits", "--arch", genotype, "--out", str(out),
            "--device", "cpu", "--no-progress", "--set", "model.channels=4", "--set", "model.darts_layers=3",
            "--set", "data.batch_size=8", "--set", "standalone.epochs=1",
            "--set", "standalone.steps_per_epoch=2"]
    assert main(argv) == 0
    assert "validation error rate" in capsys.readouterr().out  # not "SSI loss"
    result = json.loads((out / "result.json").read_text())
    assert result["arch"] == genotype and 0.0 <= result["val_loss"] <= 1.0
    assert result["recipe"]["model"] == {"channels": 4, "layers": 3, "num_classes": 10}


def test_train_refuses_an_arch_of_another_space_than_its_config_names(tmp_path, capsys):
    """A run's config.yaml reused with --config and a genotype of another space
    silently trained that space instead of the one the file named."""
    genotype = get_space("darts").to_string(get_space("darts").sample(random.Random(0)))
    config = tmp_path / "nb201.yaml"
    config.write_text("space: nb201\ndata:\n  spec: digits\n")
    argv = ["train", "--arch", genotype, "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(argv + ["--config", str(config)]) == 2
    assert f"is one of space darts, not of --config {config}: space nb201" in capsys.readouterr().err
    assert main(argv + ["--data", "digits", "--set", "space=nb201"]) == 2
    assert "is one of space darts, not of --set space=nb201" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("data, says", [("digits", True), ("synthetic", True), ("folder:x", False)])
def test_skip_bad_is_said_to_do_nothing_where_there_is_no_file_to_skip(data, says):
    """--skip-bad was accepted with classification data and did nothing, silently: a
    damaged CIFAR-10 batch still stopped the run. Said, not refused: a run saved with
    it must still resume."""
    from depthnas.config import Config
    from depthnas.data import check_data_fits_space, skip_bad_unused
    cfg = Config(space="nb201" if data == "digits" else "v1-sync")
    cfg.data.spec, cfg.data.skip_bad = data, True
    check_data_fits_space(cfg)  # no error
    note = skip_bad_unused(cfg)
    assert (note is not None and f"{data!r} has none to skip, so it does nothing here" in note) == says
    cfg.data.skip_bad = False
    assert skip_bad_unused(cfg) is None


def _tiny_nb201():
    """A one-cell, four-channel NB201 configuration: milliseconds to build and time."""
    from depthnas.config import Config
    cfg = Config(space="nb201")
    cfg.model.cells_per_stage, cfg.model.channels = 1, 4
    return cfg


def test_latency_budget_is_measured_at_the_models_own_input_size(monkeypatch):
    """NB201 models see 32x32 whatever data.image_size says."""
    from depthnas.latency import measure_latency
    seen = []
    build = NB201.build_fixed

    def recording(arch, **kw):
        model = build(arch, **kw)
        model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
        return model
    monkeypatch.setattr(NB201, "build_fixed", recording)
    cfg = _tiny_nb201()
    cfg.data.image_size = (256, 256)
    measure_latency(NB201, NB201.sample(random.Random(0)), cfg, torch.device("cpu"),
                    repeats=1, warmup=0)
    assert seen == [(1, 3, 32, 32)]


def test_latency_is_measured_in_the_stand_alone_models_precision_and_layout(monkeypatch):
    """The search hands over the stand-alone model: it was timed in fp32 and the default
    layout whatever standalone.precision / channels_last said."""
    from depthnas.latency import measure_latency
    seen = []
    build = NB201.build_fixed

    def recording(arch, **kw):
        model = build(arch, **kw)
        model.register_forward_pre_hook(lambda m, args: seen.append(
            (args[0].is_contiguous(memory_format=torch.channels_last),
             torch.is_autocast_enabled("cpu"))))
        return model
    monkeypatch.setattr(NB201, "build_fixed", recording)
    cfg = _tiny_nb201()
    arch = NB201.sample(random.Random(0))
    measure_latency(NB201, arch, cfg, torch.device("cpu"), repeats=1, warmup=0)
    cfg.standalone.precision, cfg.standalone.channels_last = "bf16", True
    measure_latency(NB201, arch, cfg, torch.device("cpu"), repeats=1, warmup=0)
    assert seen == [(False, False), (True, True)]


def test_a_classification_table_s_model_and_data_are_compared_with_the_run_s(tmp_path):
    """A landmark store, another run's results.json and a NAS-Bench-201 export record
    what they were trained with; only depth tables were compared (by their backbone),
    so ranking a digits run against CIFAR-10 values, or a super-net of 8 channels
    against a table of 16, was said nowhere."""
    import copy

    from depthnas.config import Config, dump
    from depthnas.recipe import recipe
    from depthnas.truth import other_setup, read_table
    run = Config(space="nb201")
    run.data.spec, run.model.channels = "digits", 8
    other = copy.deepcopy(run)
    other.model.channels = 16
    archs = [NB201.to_string(NB201.sample(random.Random(s))) for s in range(3)]
    store = tmp_path / "landmarks.json"
    for trained, differ in ((run, {}), (other, {"model.channels": (16, 8)})):
        store.write_text(json.dumps({"entries": [
            {"arch": a, "space": "nb201", "val_loss": 0.1 * i, "recipe": recipe(trained)}
            for i, a in enumerate(archs)]}))
        assert other_setup(read_table(store).setup, run) == differ
        (tmp_path / "results.json").write_text(json.dumps({"architectures": [
            {"arch": a, "val_loss": 0.1 * i} for i, a in enumerate(archs)]}))
        dump(trained, tmp_path / "config.yaml")  # a run's results: its config.yaml says
        assert other_setup(read_table(tmp_path / "results.json").setup, run) == differ
    darts = Config(space="darts")
    darts.model.darts_layers = 3
    store.write_text(json.dumps({"entries": [{"arch": get_space("darts").to_string(
        get_space("darts").sample(random.Random(0))), "val_loss": 0.1, "recipe": recipe(darts)}]}))
    darts.model.darts_layers = 8
    assert other_setup(read_table(store).setup, darts) == {"model.layers": (3, 8)}  # as DARTS takes it
    # NAS-Bench-201's own networks (C=16, N=5), on the data set the export names
    export = tmp_path / "nb201.json"
    for dataset, spec, differ in (
            ("cifar10-valid", "cifar10:/data/c10", {}),
            ("cifar100", "cifar10:/data/c10", {"data.spec": ("cifar100", "cifar10:/data/c10")}),
            ("cifar10-valid", "digits", {"data.spec": ("cifar10", "digits")})):
        export.write_text(json.dumps({"space": "nb201", "dataset": dataset, "architectures": {
            a: {"accuracy": 90.0 + i} for i, a in enumerate(archs)}}))
        other.data.spec = spec
        assert other_setup(read_table(export).setup, other) == differ
    assert other_setup(read_table(export).setup, run) == {"model.channels": (16, 8),
                                                          "data.spec": ("cifar10", "digits")}


def test_a_search_warns_when_its_truth_table_was_trained_on_other_data(tmp_path, caplog):
    """The table's values stood in for the landmarks, the top-K were trained on digits,
    and a best "found" at a CIFAR-10 error rate of 0.069 was reported without a word."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    from depthnas.config_checks import validate
    table = tmp_path / "nb201.json"
    table.write_text(json.dumps({"space": "nb201", "dataset": "cifar10-valid",
                                 "architectures": {ARCH_A: {"accuracy": 93.1}}}))
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        "space=nb201", "data.spec=digits", "model.channels=8", f"out={tmp_path / 'r'}",
        f"search.truth_table={table}"])
    with caplog.at_level("WARNING"):
        pipeline.SearchRun(validate(cfg), progress=False)
    assert (f"search.truth_table {table} was trained with model.channels=16, data.spec=cifar10; "
            "this run has model.channels=8, data.spec=digits") in caplog.text


def test_report_of_a_truth_table_search_without_parameter_counts(tmp_path):
    from depthnas.report import write_report
    best = {"string": "nb201-arch", "val_loss": 0.1, "params": None, "found_in": "top-1"}
    summary = {"space": "nb201", "landmarks": True, "elapsed_s": 1.0, "best": best, "ranking": None,
               "score_name": "error rate",
               "architectures": [{"arch": "a", "val_loss": 0.1, "supernet_score": 0.2, "landmark": False,
                                  "role": "top-1"}]}
    text = write_report(tmp_path, summary).read_text()
    assert "unknown parameters" in text


def test_depth_settings_a_classifier_cannot_use_are_refused(tmp_path, capsys):
    """--backbone-weights trained from random init without a word; a depth loss was
    refused only after the run folder was written."""
    from depthnas.cli import main
    for item, says in (("standalone.loss=ssi-image", "standalone.loss='ssi-image': classification "
                                                     "spaces train with cross-entropy (ce)"),
                       ("model.backbone_weights=w.safetensors", "model.backbone_weights: space "
                                                                "nb201 has no backbone")):
        assert main(["search", "--space", "nb201", "--data", "digits", "--set", item,
                     "--out", str(tmp_path / "run")]) == 2
        assert says in capsys.readouterr().err


def test_train_checks_its_settings_for_the_space_its_arch_names(tmp_path, capsys):
    """The space came from --arch after the preset's (v1-sync) had been checked: the
    weights were recorded and ignored, a depth loss refused only after the run began."""
    from depthnas.cli import main
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    for item, says in ((f"model.backbone_weights={weights}", "space nb201 has no backbone"),
                       ("standalone.loss=ssitrim", "classification spaces train with cross-entropy")):
        out = tmp_path / "run"
        assert main(["train", "--arch", nb201, "--data", "digits", "--set", item,
                     "--out", str(out)]) == 2
        assert says in capsys.readouterr().err
        assert not out.exists()


def test_data_of_the_other_task_is_refused_before_the_run_folder_is_written(tmp_path, capsys):
    """Found when the splits were loaded: the run folder (config.yaml, arch.json) was
    written by then, and the rerun with the right --data had to name a new one."""
    from depthnas.cli import main
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    for argv, says in ((["train", "--arch", nb201], "space nb201 classifies images: use --data digits"),
                       (["search", "--space", "nb201"], "space nb201 classifies images: use --data "
                        "digits (embedded) or --data cifar10:PATH, not the default, synthetic depth scenes"),
                       (["search", "--space", "nb201", "--data", "folder:x"], "/x'\n"),
                       (["search", "--data", "digits"], "'digits' is a classification dataset; use it "
                                                        "with a classification space")):
        out = tmp_path / "run"
        assert main([*argv, "--out", str(out)]) == 2
        assert says in capsys.readouterr().err
        assert not out.exists()


def test_a_parameter_budget_names_what_sizes_a_classifier(tmp_path, capsys):
    from depthnas.cli import main
    assert main(["search", "--space", "nb201", "--data", "digits", "--max-params", "1000",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "with model.channels=16, model.cells_per_stage=5 (raise the budget, or choose a " \
           "smaller model.channels or model.cells_per_stage)" in err and "backbone" not in err
    assert main(["search", "--space", "darts", "--data", "digits", "--max-params", "1000",
                 "--out", str(tmp_path / "darts")]) == 2
    assert "model.darts_layers=5" in capsys.readouterr().err


def test_a_latency_budget_few_classifiers_meet_is_a_warning_and_none_an_error(
        tmp_path, capsys, monkeypatch):
    """A classification space's smallest architecture (by parameters) need not be its
    fastest (DARTS: max-pool cells against skip ones twice as fast), so the check before
    training times 10 random ones too. None fitting used to be a warning, and the search
    failed after the super-net had trained; now it is refused. Few fitting: a warning.
    (Stand-in latency: 1 to 2 ms, by a hash of the architecture's string.)"""
    import zlib

    from depthnas.budget import Budget
    timed = []

    def fake_latency(space, arch, cfg, device):
        timed.append(arch)
        return 1 + zlib.crc32(space.to_string(arch).encode()) % 1000 / 1000
    cfg = config_mod.Config(space="darts", out=str(tmp_path / "run"))
    cfg.model.channels, cfg.model.darts_layers = 4, 3
    cfg.search.max_latency_ms = 0.5
    budget = Budget(get_space("darts"), cfg, torch.device("cpu"), measure=fake_latency)
    with pytest.raises(ValueError) as refused:
        budget.check_reachable(say=print)
    assert "search.max_latency_ms=0.5: 0 of 11 darts architectures timed on cpu fit" in str(refused.value)
    assert "so the search would find few, if any, after the super-net has trained" in str(refused.value)
    assert len(timed) == 11
    latencies = sorted(budget.latency_ms.values())
    budget.max_latency_ms = latencies[1]  # a few fit, fewer than a quarter
    budget.check_reachable(say=print)
    out = capsys.readouterr().out
    assert f"warning: search.max_latency_ms={latencies[1]:g}: 2 of 11 darts architectures timed " \
           "on cpu fit (the smallest by parameters, Genotype(" in out
    assert "; the search may find few (raise the budget" in out
    budget.max_latency_ms = latencies[-1]  # all fit: nothing said, nothing timed again
    budget.check_reachable(say=print)
    assert "warning" not in capsys.readouterr().out and len(timed) == 11
    # under a parameter budget too, only architectures within it are timed: the search
    # never times the others, so they said nothing of what it would find
    from depthnas.models import PathParameters
    params = PathParameters(get_space("darts"), cfg.model)
    sizes = sorted(params(a) for a in set(timed))
    cfg.search.max_params, cfg.search.max_latency_ms = sizes[len(sizes) // 2], 10.0
    timed.clear()
    Budget(get_space("darts"), cfg, torch.device("cpu"), measure=fake_latency).check_reachable(say=print)
    assert len(timed) == 11 and all(params(a) <= cfg.search.max_params for a in timed)


def test_a_bad_line_of_an_architecture_list_is_named_by_its_line(tmp_path, capsys):
    """Only the token was named, to be found among 15,625 lines; before the benchmark,
    whose opening takes minutes."""
    from depthnas.nasbench import main as nasbench_main
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{ARCH_A}\n\n|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    assert nasbench_main([str(tmp_path / "missing.pth"), "--archs", str(archs),
                          "--out", str(tmp_path / "t.json")]) == 2
    assert f"error: {archs}, line 3: " in capsys.readouterr().err


def test_the_benchmark_export_refuses_a_schedule_and_a_sample_size_it_cannot_serve(tmp_path, capsys):
    """NATS looks the schedule up as a key: --hp 50 ended in a KeyError traceback, and
    --random -1 in random.sample's own message."""
    from depthnas.nasbench import main as nasbench_main
    for argv, says in ((["--hp", "50", "--all"], "invalid choice: '50'"),
                       (["--random", "-1"], "--random -1: sample at least 1 architecture")):
        with pytest.raises(SystemExit):
            nasbench_main([str(tmp_path / "bench.pth"), *argv, "--out", str(tmp_path / "t.json")])
        assert says in capsys.readouterr().err


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_a_classification_recipe_holds_only_what_its_training_reads(space):
    """Image size, backbone, features and the depth loss named in the config do not
    touch a classifier's training; in its recipe they kept a landmark store from
    matching a run that differed in them alone, and recorded loss 'ssi'."""
    from depthnas.config import Config
    from depthnas.recipe import DEPTH_ONLY, recipe, same_recipe
    a, b = Config(space=space), Config(space=space)
    b.data.image_size, b.model.backbone, b.model.features = (96, 96), "resnet50", 8
    b.standalone.loss, b.standalone.backbone_lr = "ce", 1.0
    rec = recipe(a)
    assert rec["loss"] == "ce" and not set(DEPTH_ONLY) & set(rec)
    assert same_recipe(recipe(b), rec)
    b.standalone.lr *= 2  # what it does read still tells trainings apart
    assert not same_recipe(recipe(b), rec)
    # a record from before still matches (a resumed run, a store): it held them all
    older = {**rec, "loss": "ssi", "image_size": [64, 64], "backbone": "mobilenetv3_small_050",
             "features": 32, "backbone_lr": 1e-4, "depth_kind": "depth", "synthetic_samples": 512,
             "first_block_input": "duplicate", "backbone_weights": None}
    assert same_recipe(older, rec)
    assert not same_recipe({**older, "lr": 1.0}, rec)


class _OldAPI:
    """nas_201_api 1.x: a 12-epoch flag, no hp."""

    def __init__(self):
        self.flags = []

    def query_index_by_arch(self, arch):
        return 3

    def get_more_info(self, index, dataset, iepoch=None, use_12epochs_result=False, is_random=True):
        self.flags.append((use_12epochs_result, is_random))
        return {"valid-accuracy": 90.0}


def test_an_old_nas_201_api_is_asked_for_the_schedule_given():
    from depthnas.nasbench import query_accuracy
    api = _OldAPI()
    query_accuracy(api, ARCH_A, hp="200")
    query_accuracy(api, ARCH_A, hp="12")
    assert api.flags == [(False, False), (True, False)]  # 200 epochs, then 12; seed-averaged


def test_latency_is_the_median_of_the_timed_passes_after_the_warm_up(monkeypatch):
    """A budget judged on the slowest pass, or on warm-up passes (allocation, caches),
    would refuse models by noise."""
    import types
    import depthnas.latency as latency
    passes = [1.0, 1.0] + [0.001 * k for k in (3, 1, 2, 100, 4, 5, 8, 6, 7)]  # seconds: 2 warm-up, 9 timed
    clock = [t for i, d in enumerate(passes) for t in (10.0 * i, 10.0 * i + d)]  # before and after each
    ticks = iter(clock)
    monkeypatch.setattr(latency, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    ms = latency.measure_latency(NB201, NB201.sample(random.Random(0)), _tiny_nb201(), torch.device("cpu"))
    assert ms == pytest.approx(5.0)


def test_a_parameter_budget_the_smallest_architecture_meets_exactly_is_reachable():
    """The start-up check and the search agree at the boundary: params <= max_params."""
    from depthnas.budget import Budget
    from depthnas.models import smallest_architecture
    cfg = _tiny_nb201()
    arch, params = smallest_architecture(NB201, cfg.model)
    cfg.search.max_params = params
    budget = Budget(NB201, cfg, torch.device("cpu"))
    assert budget(arch)
    budget.check_reachable(lambda said: None)  # no error


def test_load_splits_passes_the_runs_seed_fractions_and_augment_to_classification_data(digits):
    from depthnas.data import load_splits
    cfg = config_mod.Config(space="nb201", seed=1)
    cfg.data.spec, cfg.data.augment = "digits", False
    cfg.data.val_fraction, cfg.data.reg_fraction = 0.1, 0.3
    splits = load_splits(cfg)
    direct = build_classification_splits("digits", seed=1, val_fraction=0.1, reg_fraction=0.3)
    assert splits.val.ids() == direct.val.ids() and splits.reg.ids() == direct.reg.ids()
    assert splits.val.ids() != digits.val.ids()  # seed 0's
    assert not splits.train.augment


def test_each_split_takes_its_own_fraction():
    s = build_classification_splits("digits", seed=0, val_fraction=0.1, reg_fraction=0.3, augment=False)
    assert abs(len(s.val) - 0.1 * 1797) < 10 and abs(len(s.reg) - 0.3 * 1797) < 10


def test_a_classification_spec_is_known_in_any_case():
    assert is_classification_spec("Digits") and is_classification_spec(" CIFAR10:/x")
    from depthnas.data import check_data_fits_space
    cfg = config_mod.Config(space="nb201")
    cfg.data.spec = "Digits"
    check_data_fits_space(cfg)  # build_classification_splits reads it in any case too


def test_a_cifar10_label_outside_0_to_9_is_named(tmp_path):
    root = _write_cifar(tmp_path / "c")
    with open(root / "data_batch_3", "wb") as fh:  # 11 logits' worth of labels for 10 classes
        pickle.dump({b"data": np.zeros((30, 3072), np.uint8), b"labels": [10] * 30}, fh)
    with pytest.raises(ValueError, match=r"data_batch_3: 'labels' must be 30 integers in 0\.\.9"):
        load_cifar10(root)


def _crops(flip: bool) -> list[list[tuple[int, int, bool]]]:
    """Per sample of an augmented split, every (dy, dx, mirrored) that reproduces it."""
    torch.manual_seed(5)  # the epoch's seed, as the trainer sets it
    images = torch.rand(24, 1, 32, 32)
    ds = ImageClassificationDataset(images, torch.zeros(24, dtype=torch.int64), np.arange(24), [0.0], [1.0],
                                    augment=True, pad=2, flip=flip)
    found = []
    for i in range(len(ds)):
        x, p = ds[i]["image"][:1], F.pad(images[i], (2,) * 4)
        found.append([(dy, dx, m) for dy in range(5) for dx in range(5) for m in (False, True)
                      if torch.equal(p[:, dy:dy + 32, dx:dx + 32].flip(-1) if m else
                                     p[:, dy:dy + 32, dx:dx + 32], x)])
    return found


def test_each_sample_gets_its_own_crop_and_digits_are_never_mirrored():
    plain = _crops(flip=False)
    assert all(len(hits) == 1 and not hits[0][2] for hits in plain)  # a crop, never mirrored
    assert len({hits[0] for hits in plain}) > 1  # samples of one epoch cropped differently
    mirrored = [hits[0][2] for hits in _crops(flip=True)]
    assert any(mirrored) and not all(mirrored)  # CIFAR-10: flipped half the time


def _darts_budget(tmp_path):
    from depthnas.budget import Budget

    def fake_latency(space, arch, cfg, device):  # 1 to 2 ms, by a hash of the architecture
        return 1 + zlib.crc32(space.to_string(arch).encode()) % 1000 / 1000
    cfg = config_mod.Config(space="darts", out=str(tmp_path / "run"))
    cfg.model.channels, cfg.model.darts_layers = 4, 3
    cfg.search.max_latency_ms = 10.0
    budget = Budget(get_space("darts"), cfg, torch.device("cpu"), measure=fake_latency)
    budget.check_reachable(say=lambda said: None, samples=3)  # all fit: times them, says nothing
    return budget


def test_a_latency_budget_a_quarter_of_the_timed_classifiers_meet_is_not_warned_of(tmp_path):  # B9
    budget = _darts_budget(tmp_path)
    latencies = sorted(budget.latency_ms.values())
    assert len(latencies) == 4 and latencies[0] < latencies[1]  # smallest + 3 random ones
    budget.max_latency_ms = latencies[0]  # exactly one of four fits: a quarter is enough
    said = []
    budget.check_reachable(say=said.append, samples=3)
    assert not [s for s in said if s.startswith("warning")]


def test_a_latency_budget_one_timed_classifier_meets_is_a_warning_not_an_error(tmp_path):  # B10
    budget = _darts_budget(tmp_path)
    latencies = sorted(budget.latency_ms.values())
    budget.max_latency_ms = latencies[0]  # one of four fits; with 5 timed, one of five
    said = []
    budget.check_reachable(say=said.append, samples=4)  # times one more: 1 of 5 fit
    assert any(s.startswith("warning: search.max_latency_ms=") and ": 1 of 5 darts" in s for s in said)


def test_a_record_that_named_cross_entropy_in_full_matches_a_ce_one():
    """Records from before recipe() wrote "ce" held the loss as configured."""
    from depthnas.config import Config
    from depthnas.recipe import recipe, same_recipe
    rec = recipe(Config(space="nb201"))
    assert rec["loss"] == "ce"
    for older in ("ce", "cross_entropy", "ssi"):
        assert same_recipe({**rec, "loss": older}, rec), older
    assert not same_recipe({**rec, "loss": "ssitrim"}, rec)


def test_depth_data_given_to_the_classification_loader_is_named_as_such():
    """`synthetic` (depth scenes) reached the CIFAR-10 reader, which then named a
    missing batch file under '' instead of the spec's fault."""
    from depthnas.datasets.classification import build_classification_splits
    for spec in ("synthetic", "folder:/x", "Synthetic"):
        with pytest.raises(ValueError, match=f"unknown classification dataset '{spec}'; expected "
                                             "'digits' or 'cifar10:PATH'"):
            build_classification_splits(spec)


# D2
def test_cifar10_batches_pickled_with_text_keys_are_read(tmp_path):
    """A batch re-pickled under Python 3 has str keys ('data', 'labels'), not bytes."""
    root = tmp_path / "c"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(root / name, "wb") as fh:
            pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, fh, protocol=2)
    x, y, xt, yt = load_cifar10(root)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [0, 1] * 5 and yt.shape == (2,)


# D4, D6, D7
@pytest.mark.parametrize(("data", "labels", "says"), [
    (np.zeros((30, 3072), np.float64), [0] * 30, r"'data' is float64 \(30, 3072\), expected uint8 \[N, 3072\]"),
    (np.zeros((30, 3072), np.uint8), [-1] * 30, r"'labels' must be 30 integers in 0\.\.9"),
    (np.zeros((30, 3072), np.uint8), [0] * 29, r"'labels' must be 30 integers in 0\.\.9"),
])
def test_a_cifar10_batch_of_the_wrong_kind_is_named(tmp_path, data, labels, says):
    root = _write_cifar(tmp_path / "c")
    with open(root / "data_batch_4", "wb") as fh:
        pickle.dump({b"data": data, b"labels": labels}, fh)
    with pytest.raises(ValueError, match=r"data_batch_4: " + says):
        load_cifar10(root)


# D11
def test_cifar10_training_batches_are_concatenated_1_to_5_as_the_manifest_says(tmp_path):
    """splits.json indexes data_batch_1..5 concatenated in order."""
    root = tmp_path / "c"
    root.mkdir()
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], start=1):
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": np.full((2, 3072), i, np.uint8), b"labels": [0, 1]}, fh, protocol=2)
    x, _, xt, _ = load_cifar10(root)
    assert x[:, 0, 0, 0].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5] and (xt == 6).all()


# D12
@pytest.mark.parametrize("fractions", [(-0.1, 0.15), (0.15, -0.1)])
def test_a_negative_split_fraction_is_refused(fractions):
    labels = np.repeat(np.arange(3), 20)
    with pytest.raises(ValueError, match=r"_fraction must be in \[0, 1\), got -0.1"):
        stratified_split(labels, 0, *fractions)


# D20
def test_digits_training_images_are_cropped_but_never_mirrored():
    """A mirrored digit is another symbol: build_classification_splits must not flip digits."""
    torch.manual_seed(5)  # the epoch's seed, as the trainer sets it
    train = build_classification_splits("digits", seed=0).train
    mean, std = train.mean, train.std
    mirrored_only = 0
    for i in range(24):
        x = train[i]["image"]
        p = F.pad(train.images[int(train.index[i])].float(), (2,) * 4)
        crops = [((p[:, dy:dy + 32, dx:dx + 32] - mean) / std).expand(3, -1, -1)
                 for dy in range(5) for dx in range(5)]
        plain = any(torch.allclose(c, x, atol=1e-5) for c in crops)
        flipped = any(torch.allclose(c.flip(-1), x, atol=1e-5) for c in crops)
        assert plain or flipped, i  # some crop of the padded image
        mirrored_only += flipped and not plain
    assert mirrored_only == 0


def test_a_nats_bench_folder_opens_in_fast_mode_and_a_damaged_file_is_named(tmp_path, monkeypatch):
    """A NATS-tss folder is the fast-mode archive, a file the whole benchmark; a file
    nats_bench cannot unpickle is named, not a traceback from deep in its reader."""
    import types

    from depthnas.nasbench import open_benchmark
    calls = []

    def create(path, space, fast_mode, verbose):
        calls.append((path, space, fast_mode))
        if path.endswith(".pickle.pbz2"):
            raise pickle.UnpicklingError("invalid load key, 'x'.")
        return "api"
    monkeypatch.setitem(sys.modules, "nats_bench", types.SimpleNamespace(create=create))
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    whole = tmp_path / "NATS-tss-v1_0-3ffb9-full.pickle.pbz2"
    whole.write_bytes(b"x")
    assert open_benchmark(folder) == "api"
    assert calls[-1] == (str(folder), "tss", True)
    with pytest.raises(ValueError, match="NATS-tss-v1_0-3ffb9-full.pickle.pbz2 is not a readable"):
        open_benchmark(whole)
    assert calls[-1] == (str(whole), "tss", False)


def test_a_training_given_skip_bad_for_digits_says_it_does_nothing(tmp_path, one_thread, caplog):
    """A search said so; `depthnas train --skip-bad` with classification data said nothing."""
    from depthnas.cli import main
    argv = ["train", "--arch", ARCH_A, "--data", "digits", "--out", str(tmp_path / "r"),
            "--device", "cpu", "--no-progress", "--skip-bad"]
    for kv in ("model.cells_per_stage=1", "model.channels=8", "data.batch_size=16",
               "standalone.epochs=1", "standalone.steps_per_epoch=2"):
        argv += ["--set", kv]
    assert main(argv) == 0
    assert "--skip-bad (data.skip_bad) leaves out bad files" in caplog.text



def test_compile_on_a_space_without_a_backbone_is_said_to_do_nothing(caplog):
    """--compile compiles a model's backbone alone: on nb201 it ran eager without a word."""
    from depthnas.config_checks import validate
    from depthnas.run_start import check_model_builds
    cfg = validate(config_mod.apply_dotted(config_mod.load(preset="quick"),
                                       ["space=nb201", "standalone.loss=ce", "supernet.loss=ce",
                                        "data.spec=digits", "model.channels=4", "standalone.compile=true"]))
    with caplog.at_level("WARNING"):
        check_model_builds(cfg, NB201)
    assert "--compile compiles a model's backbone, and nb201's models have none" in caplog.text
    caplog.clear()
    depth = validate(config_mod.apply_dotted(config_mod.load(preset="quick"), ["standalone.compile=true"]))
    with caplog.at_level("WARNING"):
        check_model_builds(depth, get_space(depth.space))
    assert "--compile" not in caplog.text


def test_build_splits_given_classification_data_points_to_its_reader():
    """build_splits("digits") listed the depth kinds, as if digits were a typo."""
    from depthnas.datasets import build_splits
    with pytest.raises(ValueError, match=r"'digits' is classification data \(labelled images\), not "
                                         r"depth data: depthnas.datasets.classification.build_classification_splits"):
        build_splits("digits", (32, 32))


def test_a_regularizer_split_rounded_to_nothing_is_said_as_set(tmp_path, capsys):
    """reg_fraction=0.002 gives each digit class 0.36 samples, rounded to none: refused as
    "data.reg_fraction=0", a value nobody set."""
    from depthnas.cli import main
    assert main(["search", "--preset", "quick", "--space", "nb201", "--data", "digits",
                 "--set", "model.channels=4", "--set", "data.reg_fraction=0.002",
                 "--out", str(tmp_path / "run")]) == 2
    assert ("data.reg_fraction=0.002 (each class's share of it rounds to no sample) leaves the "
            "landmark regularizer no data") in capsys.readouterr().err


@pytest.mark.parametrize("command", ["search", "train"])
def test_a_validation_split_rounded_to_nothing_is_refused_before_training(tmp_path, capsys, command,
                                                                          monkeypatch):
    """train trained its epochs and search its first landmark, then said "nothing to
    score the model on: the validation split is empty"."""
    import depthnas.trainer
    from depthnas.cli import main
    monkeypatch.setattr(depthnas.trainer.Trainer, "fit",
                        lambda *a, **k: pytest.fail("trained before the empty split was said"))
    arch = ["--arch", "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"]
    assert main([command, *(arch if command == "train" else ["--space", "nb201"]),
                 "--preset", "quick", "--data", "digits", "--set", "model.channels=4",
                 "--set", "data.val_fraction=0.001", "--out", str(tmp_path / "run")]) == 2
    assert ("data.val_fraction=0.001 (each class's share of it rounds to no sample) leaves "
            "nothing to score models on; raise it") in capsys.readouterr().err


@pytest.mark.parametrize("output, got", [(torch.zeros(4, 5), r"\(4, 5\)"), (torch.zeros(4, 1, 8, 8), r"\(4, 1, 8, 8\)")])
def test_a_classifier_breaking_the_logits_contract_is_named_by_its_space(output, got):
    """Five logits for ten classes failed as torch's "Target 8 is out of bounds", an
    image-shaped output as "only batches of spatial targets supported"."""
    from depthnas.task import make_task
    batch = {"label": torch.tensor([0, 8, 2, 3])}
    with pytest.raises(ValueError, match=rf"space nb201's model returned {got} for a batch of 4 with "
                                         r"labels up to 8: a classification model returns logits \[B, classes\]"):
        make_task(NB201, "ce").loss(output, batch)
    assert make_task(NB201, "ce").loss(torch.zeros(4, 10), batch) > 0


def test_model_and_data_flags_a_classification_space_never_reads_are_said(caplog):
    """--backbone, --features and --image-size trained an nb201 model as if not given,
    unsaid, and config.yaml recorded them (--backbone-weights is refused)."""
    from depthnas.cli import main
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
    with caplog.at_level("WARNING"):
        assert main(["train", "--arch", arch, "--preset", "quick", "--data", "digits",
                     "--backbone", "resnet50", "--features", "128", "--image-size", "128",
                     "--set", "model.channels=4", "--print-config"]) == 0
    said = [r.getMessage() for r in caplog.records if "does not read" in r.getMessage()]
    assert said == ["model.backbone, model.features, data.image_size: space nb201 with data "
                    "digits does not read them (recorded all the same)"]
    caplog.clear()
    with caplog.at_level("WARNING"):  # the depth space reads them all
        assert main(["train", "--arch", "v1-sync:c3,c3,c3,c3,c3", "--preset", "quick",
                     "--backbone", "resnet34", "--features", "64", "--print-config"]) == 0
        assert main(["search", "--preset", "quick", "--space", "darts", "--data", "digits",
                     "--set", "model.channels=4", "--set", "model.darts_layers=5", "--print-config"]) == 0
    assert not [r for r in caplog.records if "does not read" in r.getMessage()]
