"""`depthnas search` end to end, at a tiny size: what a search writes, how it trains and
scores its landmarks, picks and ranking samples, truth tables and the landmark store,
budgets, and the warnings about paths at a constant prediction's level."""

import copy
import json
import pathlib
import re
import shlex
import types

import pytest
import torch
import yaml

from depthnas.cli import main
from depthnas.config_checks import validate

from cli_helpers import TINY, truth_of


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


def test_metrics_jsonl_holds_strict_json_where_a_tau_is_undefined(tmp_path):
    """A ranking of equal scores has no tau: results.json wrote null, metrics.jsonl a
    bare NaN, which strict JSON parsers (jq, JavaScript) refuse."""
    from types import SimpleNamespace

    from depthnas.pipeline import SearchRun

    def strict(token):
        raise ValueError(f"not JSON: {token}")
    run = SimpleNamespace(out=tmp_path)
    for tau in (float("nan"), float("nan")):  # the second replaces the first, as a resume's
        SearchRun._record_metrics(run, {"phase": "result", "kendall_tau": tau}, "phase")
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line, parse_constant=strict) for line in lines] == [
        {"phase": "result", "kendall_tau": None}]


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
    run.standalone = types.SimpleNamespace(records={a: {"role": "landmark"} for a in first},
                                        trained_here=lambda arch: False)
    picked = run._rank_samples()
    taken = {run.space.function_key(a) for a in first}
    assert len(picked) == 3 and not taken & {run.space.function_key(a) for a in picked}


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
    # a resume may not lower the batch: fewer processes is named as the way on
    with pytest.raises(ValueError, match=r"fewer than the batch size 16 times 2 ranks \(run on at "
                                         r"most 1 process\(es\), lower --batch-size, or add data\)"):
        run.run()
    assert not any("training stand-alone" in m for m in said)


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
    assert run.standalone([twin], "landmark") == [0.123]
    assert said[-1] == ("  from the truth table [landmark] v1-sync:skip,c1,ap,c1,none: 0.12300 "
                        "(row v1-sync:c3,c3,ap,c1,none: the same model)")
    # a string with a row of its own gets its own (the committed small table has twin
    # rows of different losses, trained before idle ops were left out of a model)
    table.write_text(json.dumps({"v1-sync:c3,c3,ap,c1,none": 0.123, "v1-sync:skip,c1,ap,c1,none": 0.2}))
    run = pipeline.SearchRun(validate(cfg), progress=False, say=said.append)
    run._prepare()
    assert run.standalone([twin, run.space.from_string("v1-sync:c3,c3,ap,c1,none")], "x") == [0.2, 0.123]


def test_a_shared_store_as_truth_table_stands_in_with_this_recipe_s_entries_alone(tmp_path):
    """A store that runs of other settings share holds their losses too: `rank` kept
    this run's recipe's alone, the search took every entry as a stand-alone result."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    from depthnas.recipe import recipe
    cfg = validate(config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", f"search.truth_table={tmp_path / 'store.json'}"]))
    ours = recipe(cfg)
    (tmp_path / "store.json").write_text(json.dumps({"version": 1, "entries": [
        {"arch": "v1-sync:c3,c3,c3,c3,c1", "space": "v1-sync", "val_loss": 0.1, "recipe": ours},
        {"arch": "v1-sync:c1,c1,c1,c1,c3", "space": "v1-sync", "val_loss": 0.5,
         "recipe": {**ours, "epochs": 50, "lr": 1e-4}}]}))
    run = pipeline.SearchRun(cfg, progress=False)
    assert run.standalone.truth == {"v1-sync:c3,c3,c3,c3,c1": 0.1}


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
        assert pipeline.SearchRun(validate(cfg), progress=False).standalone.truth == {}
    assert ("0 row(s) of space v1-sync stand in for training: none, so every architecture is "
            "trained; left out: 1 of other spaces") in caplog.text
    caplog.clear()
    table.write_text(json.dumps({nb201: 0.1, "v1-sync:c3,c3,c3,c3,c9": 0.2,
                                 "v1-sync:c3,c3,c3,c3,c1": 0.3}))
    with caplog.at_level("WARNING"):
        run = pipeline.SearchRun(validate(cfg), progress=False)
    assert run.standalone.truth == {"v1-sync:c3,c3,c3,c3,c1": 0.3}
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


def test_a_ranking_of_equal_scores_is_written_as_null_not_as_a_bare_nan(tmp_path, monkeypatch):
    """Kendall tau of all-equal losses is undefined (NaN), and results.json held a bare
    NaN, which strict JSON parsers (and `rank.json`, which writes null) refuse."""
    from depthnas import pipeline
    from depthnas.spaces import get_space
    monkeypatch.setattr(pipeline.PathEvaluator, "score", lambda self, a: 0.25)
    space = get_space("v1-sync")
    import itertools
    table = {space.to_string(space.make(g)): 0.2 for g in itertools.product(range(5), repeat=5)}
    (tmp_path / "truth.json").write_text(json.dumps(table))
    assert main(["search", *TINY, "--out", str(tmp_path / "run"),
                 "--set", f"search.truth_table={tmp_path / 'truth.json'}"]) == 0

    def refuse(constant: str) -> None:
        raise ValueError(f"bare {constant} in results.json")
    results = json.loads((tmp_path / "run" / "results.json").read_text(), parse_constant=refuse)
    assert results["ranking"]["kendall_tau"] is None


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
    # a resume reports the figures the search judged by, not new timings of its picks
    # (each timing moves: a pick within the budget came out over it, unflagged)
    monkeypatch.setattr(latency, "measure_latency", lambda *a: 2e6)
    assert main(["search", "--out", str(out), "--resume", "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())["architectures"]
    assert [a.get("latency_ms") for a in again] == [a.get("latency_ms") for a in archs]
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
    truth = truth_of(run_dir, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run_dir), "--truth", str(truth),
                 "--out", str(tmp_path / "rank.json"), "--no-progress"]) == 0
    for (calib, val), run in zip(seen, (out, run_dir), strict=True):
        splits = json.loads((run / "splits.json").read_text())
        assert calib == splits["train"] and val == splits["val"]
        assert not set(calib) & set(val)


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
        assert f"warning: in {which} no path the search scored on the super-net did better than a constant" in log
    assert "in searches 1, 2 no path the search scored" in (out / "report.md").read_text()


def test_a_super_net_that_beats_a_constant_prediction_is_not_warned_about(tmp_path, monkeypatch,
                                                                           capsys):
    from depthnas import pipeline
    monkeypatch.setattr(pipeline.PathEvaluator, "constant_level", lambda self: 0.2)
    monkeypatch.setattr(pipeline.PathEvaluator, "score",
                        lambda self, arch: 0.19 - 0.001 * str(arch).count("c"))
    out = tmp_path / "run"
    assert main(["search", *TINY, "--no-landmarks", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["unlearned_searches"] == []
    assert "no path the search scored on the super-net" not in capsys.readouterr().out


def test_landmarks_without_a_regularizer_split_are_refused_before_any_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", *TINY, "--set", "data.reg_fraction=0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "data.reg_fraction=0 leaves the landmark regularizer no data" in err
    assert not out.exists()  # a start refused before any work takes its folder away


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


def test_a_latency_budget_no_architecture_meets_is_refused_before_training(tmp_path, capsys):
    """It was found only when the search started; then each candidate cost a build and
    seven timed passes, up to a thousand misses in a row, without output."""
    out = tmp_path / "fast"
    assert main(["search", *TINY, "--set", "search.max_latency_ms=0.001", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "search.max_latency_ms=0.001: the smallest v1-sync architecture" in err
    assert "and none is faster (raise the budget" in err
    assert not out.exists()  # no landmark trained, and no file of the start left behind


def test_a_resume_warns_of_a_latency_budget_its_start_met_and_one_timing_now_misses(tmp_path, caplog):
    """One timing of the smallest architecture moves by 20% between processes: 2 of 5
    resumes of a finished run, budget unchanged, were refused."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    cfg = validate(config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", "search.max_latency_ms=0.001", "data.synthetic_samples=40"]))
    (tmp_path / "r").mkdir()
    config_mod.dump(cfg, tmp_path / "r" / "config.yaml")  # as the run's start wrote it
    with caplog.at_level("WARNING"):
        pipeline.SearchRun(cfg, progress=False)._prepare()
    assert "search.max_latency_ms=0.001: the smallest v1-sync architecture" in caplog.text
    assert "when the run started it did not; the run goes on" in caplog.text


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


# ---- stand-alone results: stored, looked up or trained. Each test here caught a
# one-line mutation that the rest of the suite let through
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
                        lambda folder, s, rec: {"arch": s, "val_loss": 0.5, "params": 10}
                        if s in done else None)  # a result.json as train_standalone writes it
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
    assert run.standalone.after_training == run._keep_time
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
    run.standalone = types.SimpleNamespace(records={first: {"role": "landmark"}},
                                        trained_here=lambda arch: arch == twin)
    monkeypatch.setattr(run.space, "sample", lambda rng: twin)
    assert run._rank_samples() == [twin]


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
    run.standalone.store.add(arch, run.space.name, 0.5, run.standalone.recipe, model=model)
    assert run.standalone([run.space.from_string(arch)], "landmark") == [0.5]
    [record] = run.standalone.records.values()
    assert record["source"] == "landmark store"
    assert pathlib.Path(record["model"]).resolve() == model.resolve()
    assert not any("from the truth table" in line for line in said)


def test_a_stored_result_stands_in_for_every_string_of_its_model(tmp_path):
    """The store was searched by string alone: a pick that builds a stored model under
    another string (node 2's edges never run) was trained again, as truth table rows
    were not."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", "data.synthetic_samples=40"])
    said: list[str] = []
    run = pipeline.SearchRun(validate(cfg), progress=False, say=said.append)
    run._prepare()
    model = tmp_path / "earlier" / "model.safetensors"
    model.parent.mkdir()
    model.write_bytes(b"x")
    run.standalone.store.add("v1-sync:c3,c3,ap,c1,none", run.space.name, 0.5, run.standalone.recipe,
                             model=model)
    twin = run.space.from_string("v1-sync:skip,c1,ap,c1,none")
    assert run.standalone([twin], "top-1") == [0.5]
    assert said[-1] == ("  from the landmark store [top-1] v1-sync:skip,c1,ap,c1,none: 0.50000 "
                        "(entry v1-sync:c3,c3,ap,c1,none: the same model)")
    assert not (tmp_path / "r" / "standalone").exists()  # nothing trained


def test_a_best_model_copied_from_a_twin_s_file_counts_as_kept(tmp_path):
    """The file a stored twin gave the best names the twin's string: a resume whose
    source file had moved said "no model file for the best architecture" over it."""
    from depthnas.pipeline import _holds
    from depthnas.spaces import get_space
    from fixtures_models import make_model_file
    space = get_space("v1-sync")
    model = make_model_file(tmp_path / "m.safetensors", arch="v1-sync:c3,c3,ap,c1,none")
    assert _holds(model, space.from_string("v1-sync:skip,c1,ap,c1,none"), space)
    assert not _holds(model, space.from_string("v1-sync:skip,c1,ap,c1,c3"), space)
    assert not _holds(tmp_path / "missing.safetensors", space.from_string("v1-sync:skip,c1,ap,c1,none"), space)


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
    assert run.standalone([arch], "landmark") == [0.25]
    assert "trained_on_rank" not in run.standalone.records[arch]
    assert "source" not in run.standalone.records[arch]  # trained in this run


def test_a_training_s_inverted_share_reaches_the_record_and_the_store(tmp_path, monkeypatch):
    """The report warns of a best model upside down from results.json's `inverted`; it
    comes to the record through the landmark store, so the store must keep it."""
    from depthnas import config as config_mod
    from depthnas import pipeline, standalone_results
    from depthnas.landmark_store import LandmarkStore
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [
        f"out={tmp_path / 'r'}", "data.synthetic_samples=40"])
    run = pipeline.SearchRun(validate(cfg), progress=False, say=lambda line: None)
    run._prepare()
    monkeypatch.setattr(standalone_results, "train_standalone", lambda *a, **k: {
        "val_loss": 0.25, "params": 10, "train_time_s": 1.0, "device": "cpu", "inverted": 80.0})
    arch = run.space.from_string("v1-sync:c3,c3,ap,c1,none")
    run.standalone([arch], "landmark")
    assert run.standalone.records[arch]["inverted"] == 80.0
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
    run.standalone.store.add(arch, run.space.name, 0.5, {**run.standalone.recipe, SAMPLES: "0" * 16})
    monkeypatch.setattr(standalone_results, "train_standalone", lambda *a, **k: {
        "val_loss": 0.25, "params": 10, "train_time_s": 1.0, "device": "cpu"})
    assert run.standalone([run.space.from_string(arch)], "landmark") == [0.25]
    assert run.standalone.store.entries[-1]["recipe"][SAMPLES] == samples_digest(run.splits)


# pipeline.run's settings at TINY's size
LIBRARY_TINY = ["data.synthetic_samples=40", "supernet.epochs=1", "supernet.steps_per_epoch=2",
                "standalone.epochs=1", "standalone.steps_per_epoch=2", "landmarks.num=2",
                "search.iterations=1", "search.top_k=1", "search.rank_samples=2",
                "search.population=4", "search.generations=1", "search.parents=2",
                "search.mutations=1", "search.crossovers=1", "search.calib_batches=1",
                "search.val_batches=1"]


def _library_cfg(*more):
    from depthnas import config as config_mod
    return config_mod.apply_dotted(config_mod.load(preset="quick"), LIBRARY_TINY + list(more))


def test_a_library_search_refuses_what_the_command_refuses_and_leaves_no_folder(tmp_path, monkeypatch):
    """pipeline.run wrote over a folder of the user's own files, ran settings
    `validate` refuses, could resume in a training's folder, and a start refused with
    no cfg.out left its new folder."""
    from depthnas import pipeline
    from depthnas.config import ConfigError
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match=r"holds files of its own .* choose a new or empty --out \(cfg.out\)"):
        pipeline.run(_library_cfg(f"out={mine}"), progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    with pytest.raises(ConfigError, match=r"supernet.epochs=0 \(expected >= 1\)"):
        pipeline.run(_library_cfg("supernet.epochs=0", f"out={tmp_path / 'bad'}"), progress=False)
    with pytest.raises(ConfigError, match=r"nothing to resume in .*bad \(no config.yaml\)"):
        pipeline.run(_library_cfg(f"out={tmp_path / 'bad'}"), resume=True, progress=False)
    with pytest.raises(ConfigError, match="resume=True needs cfg.out"):
        pipeline.run(_library_cfg(), resume=True, progress=False)
    from depthnas.config import to_dict
    with pytest.raises(TypeError, match=r"pipeline.run takes a depthnas.config.Config, not a dict: "
                                        r"config.load\(path, preset\) reads one"):
        pipeline.run(to_dict(_library_cfg(f"out={tmp_path / 'bad'}")), progress=False)
    assert not (tmp_path / "bad").exists()
    trained = tmp_path / "trained"  # `depthnas train`'s folder: a trained model
    trained.mkdir()
    (trained / "config.yaml").write_text("seed: 0\n")
    (trained / "result.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"is a `depthnas train` run, not a search run; choose "
                                          r"another --out \(cfg.out\) \(or continue it with"):
        pipeline.run(_library_cfg(f"out={trained}"), resume=True, progress=False)
    assert sorted(p.name for p in trained.iterdir()) == ["config.yaml", "result.json"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "table.json").write_text("[1, 2]")  # read once the folder is made
    given = _library_cfg("search.truth_table=table.json")
    as_given = copy.deepcopy(given)
    with pytest.raises(ValueError, match="table.json"):
        pipeline.run(given, progress=False)
    assert not (tmp_path / "runs").exists()
    assert given == as_given  # not given the folder taken away again, nor absolute paths


def test_a_library_search_leaves_the_caller_s_config_and_generators_and_resumes_when_asked(tmp_path):
    """pipeline.run set the caller's cfg.out (a second call resumed the first run, and
    continued a run's folder without being asked) and left the caller's generators
    reseeded."""
    import random

    import numpy as np

    from depthnas import pipeline
    from depthnas.config import ConfigError
    given = _library_cfg(f"out={tmp_path / 'run'}")
    as_given = copy.deepcopy(given)
    random.seed(11), np.random.seed(12), torch.manual_seed(13)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    summary = pipeline.run(given, progress=False, say=lambda line: None)
    assert summary["out"] == str(tmp_path / "run") and (tmp_path / "run" / "results.json").is_file()
    assert given == as_given  # its copy is the run's config.yaml
    assert random.getstate() == states[0] and (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
    with pytest.raises(ConfigError, match=r"already holds a run; pass --resume \(resume=True\) to "
                                          r"continue it, or choose another --out \(cfg.out\)"):
        pipeline.run(given, progress=False)
    resumed = pipeline.run(given, resume=True, progress=False, say=lambda line: None)
    assert resumed["best"] == summary["best"]


# test_library_searches_given_no_folder_each_get_their_own) ---

def test_the_first_landmarks_stay_landmarks_when_a_search_s_pick_joins_them(run_dir):
    """An iteration's top-K joins the landmarks the next super-net trains with: the
    landmarks drawn at the start stay among them (and are marked so in results.json)."""
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    drawn = [a for a in results if a["role"] == "landmark"]
    assert len(drawn) == 3 and all(a["landmark"] for a in drawn)


def test_a_library_search_passes_on_its_progress_and_say(tmp_path, monkeypatch, capsys):
    """pipeline.run's `progress` and `say` reach the search: its messages go where the
    caller sends them, not to stdout, and no bars are drawn when asked for none."""
    from depthnas import config as config_mod
    from depthnas import pipeline
    monkeypatch.setattr(pipeline.SearchRun, "run",
                        lambda self: {"progress": self.progress, "said": self.say("hello")})
    said = []
    cfg = config_mod.apply_dotted(config_mod.load(preset="quick"), [f"out={tmp_path / 'run'}"])
    got = pipeline.run(cfg, progress=False, say=said.append)
    assert got["progress"] is False and said == ["hello"]
    assert "hello" not in capsys.readouterr().out


def test_a_shared_store_s_lock_file_another_user_owns_is_said_before_any_training(
        tmp_path, capsys, monkeypatch):
    """The folder was checked, not the lock file runs sharing the store take turns on:
    another user's read-only one failed the run after its first landmark trained."""
    import os
    (tmp_path / ".store.json.lock").write_text("")
    real = os.access  # the tests may run as root, whom a file's mode does not stop
    monkeypatch.setattr(os, "access", lambda path, mode: real(path, mode) and
                        not (pathlib.Path(path).name == ".store.json.lock" and mode & os.W_OK))
    assert main(["search", *TINY, "--landmarks", str(tmp_path / "store.json"),
                 "--out", str(tmp_path / "run")]) == 2
    assert f"no permission to write its lock file {tmp_path / '.store.json.lock'}" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_landmark_store_that_cannot_be_written_is_said_before_any_training(tmp_path, capsys):
    """It failed after every landmark (and at the paper's size, hours) had trained,
    with "[Errno 17] File exists" naming neither the store nor --landmarks."""
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "run"
    assert main(["search", *TINY, "--landmarks", str(tmp_path / "a-file" / "store.json"),
                 "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"--landmarks (landmarks.store) {tmp_path / 'a-file' / 'store.json'}: " \
           f"{tmp_path / 'a-file'} is a file, not a folder" in captured.err
    assert "stage 1" not in captured.out + captured.err
    assert not out.exists()  # a start refused before any work takes its folder away


def test_a_best_model_whose_source_has_gone_is_kept_from_the_earlier_finish(tmp_path, capsys):
    """The resume of a finished run whose best stand-alone model file was deleted said
    "no model file ... so no best/model.safetensors" (it was there) and told to train
    it into best/, which train then refused for the file already there."""
    run = tmp_path / "run"  # its own: run_copy's records name run_dir's model files
    assert main(["search", *TINY, "--iterations", "1", "--num-landmarks", "2", "--out", str(run)]) == 0
    best = json.loads((run / "best_arch.json").read_text())
    kept = (run / "best" / "model.safetensors").read_bytes()
    [record] = [a for a in json.loads((run / "results.json").read_text())["architectures"]
                if a["arch"] == best["string"]]
    pathlib.Path(record["model"]).unlink()
    capsys.readouterr()
    recorded = (run / "config.yaml").read_text()
    assert main(["search", "--out", str(run), "--resume", "--no-progress", "--device", "cpu"]) == 0
    assert (run / "config.yaml").read_text() == recorded  # not rewritten with what trained nothing
    captured = capsys.readouterr()
    assert "no model file for the best architecture" not in captured.out + captured.err
    assert (run / "best" / "model.safetensors").read_bytes() == kept
    assert "this run had finished: what it kept is read back" in captured.out  # not re-run
    moved = tmp_path / "moved"  # its record names the folder it is in now
    run.rename(moved)
    assert main(["search", "--out", str(moved), "--resume", "--no-progress", "--device", "cpu"]) == 0
    assert (moved / "config.yaml").read_text() == recorded.replace(str(run), str(moved))
    import shutil
    shutil.rmtree(moved / "checkpoints")  # the super-net trains again: not said to be read back
    capsys.readouterr()
    assert main(["search", "--out", str(moved), "--resume", "--no-progress"]) == 0
    assert "this run had finished" not in capsys.readouterr().out
    # both copies gone: the command said trains it (a DARTS string in hand-made quotes did not parse)
    for record in json.loads((moved / "results.json").read_text())["architectures"]:
        if record["arch"] == best["string"]:
            pathlib.Path(record["model"]).unlink(missing_ok=True)
    (moved / "best" / "model.safetensors").unlink()
    assert main(["search", "--out", str(moved), "--resume", "--no-progress", "--device", "cpu"]) == 0
    said = capsys.readouterr()
    [command] = re.findall(r"train it with `depthnas (train [^`]*)`", said.out + said.err)
    argv = shlex.split(command)
    assert argv[argv.index("--arch") + 1] == str(moved / "best_arch.json")
    assert main([*argv, "--no-progress"]) == 0
    assert json.loads((moved / "best" / "result.json").read_text())["arch"] == best["string"]


def test_a_run_s_own_trainings_stay_its_own_when_another_run_sharing_the_store_trained_them_too(
        tmp_path, capsys):
    """Two runs of one seed sharing a store at once each train the same landmarks; the
    last to write replaced the other's entries. Resumed, the first then recorded its own
    trainings as the other's ("source": "landmark store", their model files), and with
    the other run deleted, said its best model was lost."""
    import shutil
    store, run, other = tmp_path / "store.json", tmp_path / "a", tmp_path / "b"
    assert main(["search", *TINY, "--iterations", "1", "--num-landmarks", "2",
                 "--landmarks", str(store), "--out", str(run)]) == 0
    shutil.copytree(run / "standalone", other / "standalone")
    data = json.loads(store.read_text())
    for e in data["entries"]:  # as the other run wrote them: its own model files
        e["model_abs"] = str(other / "standalone" / pathlib.Path(e["model_abs"]).parent.name / "model.safetensors")
        e["model"] = str(pathlib.Path(e["model_abs"]).relative_to(tmp_path))
    store.write_text(json.dumps(data))
    shutil.rmtree(other)  # the user removes the duplicate
    capsys.readouterr()
    assert main(["search", "--out", str(run), "--resume", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "no model file" not in captured.out + captured.err
    for a in json.loads((run / "results.json").read_text())["architectures"]:
        assert "source" not in a and pathlib.Path(a["model"]).is_relative_to(run), a


def test_a_search_stopped_among_its_landmarks_sets_a_damaged_result_aside(tmp_path, caplog):
    """Resumed before the super-net's first checkpoint, the config check read every
    landmark's result.json first, and stopped at a damaged one ("not valid JSON")."""
    import shutil
    run = tmp_path / "run"
    assert main(["search", *TINY, "--iterations", "1", "--num-landmarks", "2", "--out", str(run)]) == 0
    for stage in ("checkpoints", "results.json", "search_1.json"):  # as if stopped after the landmarks
        shutil.rmtree(run / stage) if (run / stage).is_dir() else (run / stage).unlink()
    damaged = sorted((run / "standalone").glob("*/result.json"))[0]
    damaged.write_text(damaged.read_text()[:40])
    assert main(["search", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert "result.json: not valid JSON" in caplog.text and "else its training done again" in caplog.text
    assert (damaged.parent / "result.json.damaged").is_file() and (run / "results.json").is_file()


def test_every_key_of_results_json_is_documented_in_the_readme(run_dir):
    """README described "every architecture ..., its role, stand-alone and super-net
    loss"; a dozen keys (inverted, picks, lambda_schedule, ...) were nowhere."""
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("`results.json`, key by key")[1].split("\n\n")[1]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    documented = {k for first, _ in rows for k in re.findall(r"`(\w+)`", first)}
    said = {re.findall(r"`(\w+)`", first)[0]: set(re.findall(r"`(\w+)`", text)) for first, text in rows}
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results) <= documented, set(results) - documented
    for record in results["architectures"]:
        assert set(record) <= said["architectures"], set(record) - said["architectures"]
    assert set(results["ranking"]) <= said["ranking"], set(results["ranking"]) - said["ranking"]


def test_a_finished_search_keeps_the_super_net_s_last_checkpoint_alone(run_dir):
    """The epoch before the last (kept in case the last was damaged mid-write) stayed,
    with its optimizer state: about 1 GB at the paper's size that nothing reads."""
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("epoch_*")) == ["epoch_0002"]


def test_a_library_search_tunes_cudnn_per_shape_as_the_command_does_then_restores_it(
        tmp_path, monkeypatch):
    """pipeline.run skipped the command's per-shape kernel timing (`depthnas search` set
    it and left it on for the rest of the process)."""
    import contextlib

    import torch

    import depthnas.runs
    from depthnas import pipeline
    seen = []
    real = depthnas.runs.run_folder

    @contextlib.contextmanager
    def run_folder(*args, **kwargs):
        seen.append(torch.backends.cudnn.benchmark)
        with real(*args, **kwargs) as out:
            yield out

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(depthnas.runs, "run_folder", run_folder)
    pipeline.run(_library_cfg(f"out={tmp_path / 's'}"), progress=False, say=lambda _: None)
    assert seen == [True] and torch.backends.cudnn.benchmark is False
