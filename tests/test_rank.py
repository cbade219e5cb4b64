"""`depthnas rank` (a run's super-net against a truth table: what it leaves out, warns
about, checks and writes) and `depthnas evaluate` of a run or a checkpoint."""

import json
import random
import re

import pytest
import yaml

from depthnas.cli import main

from cli_helpers import TRAIN_TINY, truth_of


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


def test_rows_of_one_model_are_ranked_once_at_their_mean(run_dir, tmp_path, caplog):
    """Strings apart only in idle operations build one model, one super-net path: the
    committed small table's twin rows were each ranked, one score paired with two
    values, and n counted the model twice."""
    from depthnas.rank_plan import plan_rank
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    twin, other = "v1-sync:c3,c3,ap,c1,none", "v1-sync:skip,c1,ap,c1,none"
    assert space.function_key(space.from_string(twin)) == space.function_key(space.from_string(other))
    table = {twin: 0.1, other: 0.3, **dict(zip(_unranked_archs(), (0.4, 0.5, 0.6)))}
    (tmp_path / "truth.json").write_text(json.dumps(table))
    with caplog.at_level("INFO", logger="depthnas"):
        plan = plan_rank(run_dir, tmp_path / "truth.json")
    rows = dict(zip(map(space.to_string, plan.archs), plan.values))
    assert len(rows) == 4 and other not in rows and rows[twin] == pytest.approx(0.2)
    assert "1 row(s) build the model of an earlier row (twins)" in caplog.text


def test_the_default_threshold_is_of_every_usable_row_whatever_limit_samples(run_dir, tmp_path):
    """1% of the range of the rows a --limit sample scored: two samples of one table
    were binned differently, and their sparse taus could not be compared."""
    from depthnas.rank_plan import plan_rank
    values = (0.18, 0.19, 0.2, 0.207)
    (tmp_path / "truth.json").write_text(json.dumps(dict(zip(_unranked_archs() + [
        "v1-sync:c3,c3,ap,c1,none"], values))))
    for limit in (None, 2):
        plan = plan_rank(run_dir, tmp_path / "truth.json", limit=limit)
        assert plan.threshold == pytest.approx((0.207 - 0.18) / 100)


def test_a_folder_where_rank_json_goes_is_refused_before_the_scoring(run_copy, tmp_path, capsys,
                                                                     monkeypatch):
    import depthnas.rank
    truth = truth_of(run_copy, tmp_path / "truth.json")
    (run_copy / "rank.json").unlink(missing_ok=True)
    (run_copy / "rank.json").mkdir()
    monkeypatch.setattr(depthnas.rank, "score_plan", lambda *a, **k: pytest.fail("scored"))
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--no-progress"]) == 2
    assert f"--out's default {run_copy / 'rank.json'} is a folder" in capsys.readouterr().err


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


def test_a_table_of_another_space_is_refused_without_comparing_its_set_up(run_copy, tmp_path, caplog,
                                                                          capsys):
    """Its recipe was compared first ("trained with model.features=16; this run has
    ...", or a setting the run's space has not: "model.layers=None"), then the refusal."""
    table = {"config": {"recipe": {"features": 16, "data": {"spec": "digits"}}},
             "architectures": {"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|":
                               {"mean": 0.2}, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": {"mean": 0.9}}}
    path = tmp_path / "nb201.json"
    path.write_text(json.dumps(table))
    with caplog.at_level("WARNING"):
        assert main(["rank", "--run", str(run_copy), "--truth", str(path), "--no-progress"]) == 2
    assert "was trained with" not in caplog.text
    assert "2 belong to other spaces" in capsys.readouterr().err


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
    cfg["model"]["features"] = 32
    cfg["seed"] = 1  # its split (and synthetic scenes) drawn by another seed: other images
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    [warned] = _rank_warnings(run_copy, other / "results.json", caplog)
    assert "was trained with seed=1; this run has seed=0" in warned
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


def test_evaluate_a_run_on_its_own_validation_split(run_copy, capsys):
    """Without --data, evaluate takes the run's data, seed and fractions: its val split
    is the run's (6 of 40 synthetic scenes), not a re-split that mixes in training data."""
    splits = json.loads((run_copy / "splits.json").read_text())
    assert main(["evaluate", "--checkpoint", str(run_copy), "--split", "val", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"on {len(splits['val'])} sample(s) of synthetic [val]" in out
    assert (run_copy / "eval-val.json").is_file()


def test_rank_is_reproducible_and_scores_as_the_search_did(run_copy, tmp_path):
    """`depthnas rank` seeds itself from the run's seed, as the search did before scoring:
    whatever torch seed the process starts with (another one in every new process), the
    BN calibration batches are the same, so are the scores, and they are the search's."""
    import torch
    from depthnas.rank import rank_run
    truth = truth_of(run_copy, tmp_path / "truth.json")
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
    truth = truth_of(run_dir, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run_dir), "--truth", str(truth), *flags,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1, err


def test_rank_names_a_damaged_config_yaml(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("space: v1-sync\ndata: {spec: synthetic\n")  # cut short
    truth = truth_of(run_dir, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run), "--truth", str(truth), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(run / "config.yaml") in err, err
    assert "Traceback" not in err


def test_rank_refuses_a_config_yaml_cut_or_edited_since_the_super_net_trained(run_copy, tmp_path, capsys):
    """A line lost from config.yaml silently became the default (200 calibration
    batches instead of 4), an edited one another setting: either scored every path
    otherwise than the search had."""
    truth = truth_of(run_copy, tmp_path / "truth.json")
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
    truth = truth_of(run_copy, tmp_path / "truth.json")
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
    truth = truth_of(run_dir, tmp_path / "truth.json")
    out = tmp_path / "rank.json"
    with caplog.at_level("WARNING"):
        assert main(["rank", "--run", str(run_dir), "--truth", str(truth), "--out", str(out),
                     "--no-progress"]) == 0
    assert ("their super-net scores are noise, and so is this ranking" in caplog.text) == warned
    # a best path lower than the level, within 1% of it, read as a contradiction
    assert ("within 1% of it or worse)" in caplog.text) == warned
    assert json.loads(out.read_text())["supernet_learned"] is not warned


def test_a_limited_sample_of_paths_none_beating_a_constant_says_it_is_a_sample(run_dir, tmp_path,
                                                                               monkeypatch, caplog):
    """With --limit, rank said 'this super-net had not learned yet' where the full table
    said it had: a sample speaks for its paths, not the super-net."""
    from depthnas.scoring import PathEvaluator
    from depthnas.spaces import get_space
    monkeypatch.setattr(PathEvaluator, "constant_level", lambda self: 1e-6)
    space = get_space("v1-sync")
    truth = json.loads(truth_of(run_dir, tmp_path / "truth.json").read_text())
    for seed in range(20, 24):
        truth[space.to_string(space.sample(random.Random(seed)))] = 0.1 + seed / 100
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    with caplog.at_level("WARNING"):
        assert main(["rank", "--run", str(run_dir), "--truth", str(tmp_path / "truth.json"),
                     "--limit", "2", "--out", str(tmp_path / "r.json"), "--no-progress"]) == 0
    assert re.search(r"none of the 2 scored path\(s\) beat a constant .* \(--limit: 2 of \d+ "
                     r"scored; others may beat it\)", caplog.text), caplog.text
    assert "had not learned" not in caplog.text


def test_rank_calls_a_super_net_learned_when_its_best_path_beats_a_constant(run_dir, tmp_path,
                                                                           monkeypatch):
    """One path below the constant's level is enough: the best decides, not the worst."""
    import itertools
    from depthnas.scoring import PathEvaluator
    scores = itertools.chain([0.3, 0.1], itertools.repeat(0.3))  # in the order rank scores rows
    monkeypatch.setattr(PathEvaluator, "score", lambda self, arch: next(scores))
    monkeypatch.setattr(PathEvaluator, "constant_level", lambda self: 0.2)
    out = tmp_path / "rank.json"
    assert main(["rank", "--run", str(run_dir), "--truth", str(truth_of(run_dir, tmp_path / "t.json")),
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
    truth = truth_of(run_dir, tmp_path / "truth.json")
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
    truth = truth_of(run_dir, tmp_path / "truth.json")
    for state in ("finished", "killed before its result"):
        assert main(["rank", "--run", str(out), "--truth", str(truth), "--no-progress"]) == 2, state
        err = capsys.readouterr().err
        assert err.startswith(f"error: {out} is a `depthnas train` run, not a search run"), (state, err)
        assert "delete" not in err
        (out / "result.json").unlink(missing_ok=True)  # as a training killed mid-way
        (out / "model.safetensors").unlink(missing_ok=True)


def test_rank_states_a_small_threshold_and_warns_about_an_unfinished_run(run_copy, tmp_path, capsys,
                                                                         caplog, monkeypatch):
    import shutil
    truth = truth_of(run_copy, tmp_path / "truth.json")
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--threshold", "5e-05",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sparse_threshold     5e-05" in out  # was 0.0000
    assert "sparse_threshold_rule given (--threshold)" in out
    assert re.search(r"\ntop_percentile +\d+%\n", out) and re.search(r"\nconstant_level +\d\.\d{5}\n", out)
    # without one: the run's own, else the table's seed noise, else 1% of the range
    from depthnas.rank_plan import sparse_threshold
    from depthnas.truth import read_table
    assert read_table(truth).seed_noise == {}
    assert sparse_threshold(None, None, None) == (None, "1% of the truth range of the table's usable rows")
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


def test_evaluating_a_super_net_checkpoint_names_it_before_asking_for_data(run_dir, capsys):
    """It said "--data is needed" (the checkpoint's folder has no config.yaml), and named
    the super-net only once --data was given."""
    supernet = sorted((run_dir / "checkpoints").glob("epoch_*"))[-1] / "model.safetensors"
    assert main(["evaluate", "--checkpoint", str(supernet), "--no-progress"]) == 2
    assert f"{supernet} holds a super-net, not one architecture" in capsys.readouterr().err
    # export said where its file would go (a checkpoint folder) first, then refused
    assert main(["export", "--checkpoint", str(supernet)]) == 2
    said = capsys.readouterr()
    assert f"{supernet} holds a super-net, not one architecture" in said.err and said.out == ""


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


def test_rank_keeps_each_sampled_row_with_its_own_loss(run_dir, tmp_path, monkeypatch):
    """--limit samples rows of the table: each must keep its own stand-alone loss. A
    super-net that scores every path at its table loss ranks any sample perfectly."""
    from depthnas.scoring import PathEvaluator
    from depthnas.spaces import get_space
    space = get_space("v1-sync")
    truth = json.loads(truth_of(run_dir, tmp_path / "truth.json").read_text())
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
    truth = truth_of(run_copy, tmp_path / "truth.json")
    splits = json.loads((run_copy / "splits.json").read_text())
    splits["train"].append(splits["val"].pop())
    (run_copy / "splits.json").write_text(json.dumps(splits))
    assert main(["rank", "--run", str(run_copy), "--truth", str(truth), "--no-progress"]) == 2
    assert "no longer splits as" in capsys.readouterr().err


def test_rank_names_paths_that_score_inf_as_diverged(run_dir, tmp_path, monkeypatch, caplog):
    from depthnas.scoring import PathEvaluator
    scores = iter([float("inf"), 0.2, 0.3, 0.4])
    monkeypatch.setattr(PathEvaluator, "score", lambda self, arch: next(scores))
    truth = truth_of(run_dir, tmp_path / "truth.json")
    with caplog.at_level("WARNING", logger="depthnas.rank"):
        assert main(["rank", "--run", str(run_dir), "--truth", str(truth), "--out", str(tmp_path / "r.json"),
                     "--no-progress"]) == 0
    assert "1 path(s) score non-finite in the super-net (diverged)" in caplog.text


def test_rank_from_python_leaves_the_caller_s_generators_as_they_were(run_dir, tmp_path):
    """score_plan seeds Python's, NumPy's and torch's generators from the run's seed, as
    the search did: a script ranking several runs drew other numbers after each."""
    import numpy as np
    import torch

    from depthnas.rank import score_plan
    from depthnas.rank_plan import plan_rank
    plan = plan_rank(run_dir, truth_of(run_dir, tmp_path / "truth.json"), out=tmp_path / "rank.json")
    random.seed(21), np.random.seed(22), torch.manual_seed(23)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    assert score_plan(plan, progress=False, device="cpu")["n"] >= 2
    assert random.getstate() == states[0] and (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])



def test_a_landmark_store_shared_by_runs_of_two_recipes_ranks_the_run_on_its_own(
        run_copy, tmp_path, caplog):
    """A later run of other settings adds its entries to the store, one architecture
    then listed under two recipes: rank refused the store ("listed a second time") and
    the user had to split the JSON by hand."""
    from depthnas.rank_plan import plan_rank
    own = json.loads((run_copy / "landmarks.json").read_text())["entries"][0]["recipe"]
    archs = _unranked_archs()
    store = tmp_path / "store.json"
    store.write_text(json.dumps({"entries": [
        {"arch": a, "space": "v1-sync", "val_loss": loss, "recipe": {**own, "features": f}}
        for f, base in ((32, 0.1), (16, 0.5)) for a, loss in zip(archs, (base, base + 0.1, base + 0.2))]}))
    plan = plan_rank(run_copy, store)
    assert plan.values == pytest.approx([0.1, 0.2, 0.3])  # the run's recipe (features 32)
    assert _rank_warnings(run_copy, store, caplog) == []  # nothing of another set-up ranked


def test_rank_out_naming_a_file_that_is_no_ranking_is_refused_before_scoring(run_dir, tmp_path,
                                                                              capsys):
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"\x89PNG\r\n\x1a\n")
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    (tmp_path / "truth.json").write_text(json.dumps({a["arch"]: a["val_loss"] for a in results}))
    assert main(["rank", "--run", str(run_dir), "--truth", str(tmp_path / "truth.json"),
                 "--out", str(keep), "--no-progress"]) == 2
    assert "exists and is not an earlier rank.json report" in capsys.readouterr().err
    assert keep.read_bytes() == b"\x89PNG\r\n\x1a\n"
