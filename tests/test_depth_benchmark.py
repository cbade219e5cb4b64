"""The depth proxy benchmark (benchmarks/depth_proxy/build_table.py) and the SPOS vs
SPOS + landmarks experiment (benchmarks/ranking.py), end to end at a tiny size on the
CPU: valid JSON, a table that `depthnas rank --truth` accepts, and data/batches that
match depthnas' own synthetic splits and trainer. No timing assertions."""
import json
import random
import re
import sys
import time
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "depth_proxy"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import build_table  # noqa: E402
import proxy  # noqa: E402
import ranking as ranking_bench  # noqa: E402

from depthnas.cli import main as cli_main  # noqa: E402
from depthnas.io import read_jsonl  # noqa: E402
from depthnas.spaces import get_space  # noqa: E402
from depthnas.truth import load_truth  # noqa: E402

V1, V2, LANDMARKS = 6, 2, 3


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("depth_proxy")


@pytest.fixture(scope="module")
def table_path(work):
    out = work / "table.json"
    # one worker process: the spawn/queue path the GPU run takes
    assert build_table.main(["--preset", "cpu", "--v1", str(V1), "--v2", str(V2), "--workers", "1",
                             "--render-processes", "1", "--threads", "1", "--work", str(work / "w"),
                             "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ranking_result(work, table_path):
    out = work / "ranking.json"
    md = work / "ranking.md"
    assert ranking_bench.main(["--table", str(table_path), "--spaces", "v1-sync", "--seeds", "0",
                               "--num-landmarks", str(LANDMARKS), "--epochs", "1",
                               "--calib-batches", "1", "--in-process", "--threads", "1",
                               "--work", str(work / "w"), "--json", str(out), "--md", str(md)]) == 0
    assert md.read_text().startswith("Table 4")
    return json.loads(out.read_text())


def test_table_is_complete_and_loads_as_truth(table_path):
    table = json.loads(table_path.read_text())
    archs = table["architectures"]
    assert table["counts"] == {"v1-sync": V1, "v2-sync": V2} and len(archs) == V1 + V2
    for arch, e in archs.items():
        space = get_space(e["space"])
        assert not space.has_dead_cell(space.from_string(arch))
        assert len(e["seeds"]) == 2 and all(v > 0 for v in e["seeds"])
        assert e["mean"] == pytest.approx(sum(e["seeds"]) / 2) and e["params"] > 0
    assert table["seed_pairs"]["overall"] == V1 + V2
    assert -1.0 <= table["seed_kendall_tau"]["v1-sync"] <= 1.0
    assert table["seed_median_abs_diff"]["v1-sync"] > 0
    assert table["config"]["recipe"]["backbone"] == "mobilenetv3_small_050"
    assert table["device"] and table["date"]
    truth = load_truth(table_path)
    assert truth == {a: e["mean"] for a, e in archs.items()}
    # each training says when it ran: the recipe key does not cover code changes
    lines = read_jsonl(table_path.parent / "w" / "trainings.jsonl")
    assert lines and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", r["trained"]) for r in lines)
    # the proxy trainer keeps its metrics in memory: each line has its training loss,
    # and no training wrote TensorBoard files (the stock Trainer's record_metrics does)
    assert all(r["train_loss_last_epoch"] > 0 for r in lines), lines
    assert not list((table_path.parent / "w").rglob("tb"))


@pytest.mark.parametrize("folder", ["depth_proxy", "depth_proxy/small"])
def test_the_committed_tables_count_the_parameters_a_model_runs(folder):
    """'params' is derived from the architecture and the recipe: the stand-alone
    model's parameters, which hold only the ops its path runs."""
    from depthnas.config import ModelConfig
    from depthnas.models import PathParameters
    table = json.loads((ROOT / "benchmarks" / folder / "table.json").read_text())
    recipe = table["config"]["recipe"]
    cfg = ModelConfig(backbone=recipe["backbone"], features=recipe["features"],
                      first_block_input=recipe["first_block_input"])
    counts = {name: PathParameters(get_space(name), cfg) for name in table["counts"]}
    for arch, e in table["architectures"].items():
        space = get_space(e["space"])
        assert e["params"] == counts[space.name](space.from_string(arch)), arch


def test_table_build_resumes_without_retraining(work, table_path, capsys):
    before = json.loads(table_path.read_text())["architectures"]
    again = work / "table_again.json"
    assert build_table.main(["--preset", "cpu", "--v1", str(V1), "--v2", str(V2), "--workers", "1",
                             "--work", str(work / "w"), "--out", str(again)]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert json.loads(again.read_text())["architectures"] == before
    # the device, from the trainings' own lines: a table rebuilt with nothing left to
    # train (a GPU session's fresh --out once the table is whole) said "device": null
    device = json.loads(again.read_text())["device"]
    assert device == json.loads(table_path.read_text())["device"] and "cpu" in device


def test_a_table_names_every_device_its_trainings_ran_on():
    lines = {("a", 0): {"device": "NVIDIA H200"}, ("a", 1): {"device": "cpu (x86_64, 2 cores)"},
             ("b", 0): {}}  # a line from before lines named their device
    assert build_table.table_device(lines, "NVIDIA H200") == "NVIDIA H200 + cpu (x86_64, 2 cores)"
    assert build_table.table_device({("b", 0): {}}, None) == "unrecorded"


def test_lines_of_another_recipe_are_said_not_silently_passed_over(tmp_path):
    """A resume from a work folder of another recipe said '0 already in', and why not."""
    log = tmp_path / "trainings.jsonl"
    log.write_text("".join(json.dumps({"arch": f"a{i}", "seed": 0, "val_loss": 0.1, "recipe_key": k}) + "\n"
                           for i, k in enumerate(["aaaa", "bbbb", "bbbb"])))
    said = []
    assert list(build_table.read_done(log, "aaaa", said.append)) == [("a0", 0)]
    assert said == [f"note: 2 line(s) of {log} are of another recipe (bbbb: 2; this one aaaa): not used"]


def test_a_worker_killed_from_outside_is_named_and_fails_the_build(tmp_path, capsys):
    """The out-of-memory killer ending a worker went unsaid: the build wrote an empty
    table and exited 0, which gpu_run.sh logged as success."""
    import multiprocessing
    import os
    import signal
    import threading
    import time
    work = tmp_path / "w"
    earlier = {p.pid for p in multiprocessing.active_children()}  # an earlier test's, if any

    def kill_the_worker():
        deadline = time.time() + 240
        while time.time() < deadline:
            workers = [p for p in multiprocessing.active_children() if p.pid not in earlier]
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                return
            time.sleep(0.05)
    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    assert build_table.main(["--preset", "cpu", "--v1", "1", "--v2", "0", "--workers", "1",
                             "--render-processes", "1", "--threads", "1", "--work", str(work),
                             "--set", "standalone.epochs=100"]) == 1
    killer.join()
    out = capsys.readouterr().out
    assert "worker 0 died (signal 9)" in out and "error: no training ran: the training processes failed" in out
    # killed in a training (the main process knows which from the worker's word):
    job = {"arch": "v1-sync:c3,c3,none,c1,ap", "seed": 1}
    assert build_table.death_note(3, -9, job) == ("worker 3 died (signal 9); v1-sync:c3,c3,none,c1,ap "
                                                  "seed 1 was lost and runs on the next build")


def test_ranking_experiment_writes_table4(ranking_result, table_path):
    table = json.loads(table_path.read_text())
    res = ranking_result
    assert {r["method"] for r in res["per_run"]} == {"spos", "landmarks"}
    marks = res["landmarks"]["v1-sync_s0"]
    assert len(marks) == LANDMARKS and len({m["arch"] for m in marks}) == LANDMARKS
    for m in marks:  # landmarks are table entries with the table's loss
        assert table["architectures"][m["arch"]]["mean"] == pytest.approx(m["loss"])
    for r in res["per_run"]:
        assert r["n"] == V1 - LANDMARKS  # landmarks left out of the evaluation set
        assert r["best_found"] not in {m["arch"] for m in marks}
        assert 1 <= r["best_found_table_rank"] <= V1
        assert r["sparse_threshold"] == pytest.approx(table["seed_median_abs_diff"]["v1-sync"])
        assert 0.0 <= r["at_constant"] <= 1.0
    assert all(run["final_train_loss"] > 0 for run in res["runs"])  # the super-net's, kept in memory
    constants = {run["constant_score"] for run in res["runs"]}  # one validation split, one level
    assert len(constants) == 1 and constants.pop() > 0
    s = res["summary"]["v1-sync"]
    assert set(s) == {"spos", "landmarks", "landmarks_minus_spos"}
    assert s["landmarks_minus_spos"]["sparse_kendall_tau"]["n"] <= 1  # one seed: one difference
    assert "SPOS+landmarks" in res["table4"] and res["plan"]["epochs"] == 1
    assert not res["missing_runs"] and not res["unpaired_runs"] and res["paired_runs"] == 1


def test_the_epoch_plan_cuts_to_what_fits_and_keeps_the_floor():
    """Every run gets one epoch count: the requested one while it fits in the seconds
    left (after the scoring, 10-20% to spare), fewer when not, never below --min-epochs."""
    args = ranking_bench.parse_args(["--epochs", "30", "--min-epochs", "2"])
    specs = [{"score_archs": ["a"] * 10}, {"score_archs": ["a"] * 8}]
    rates = {"spos": {"step_s": 0.1, "refresh_s": 1.0, "score_s": 0.5},
             "landmarks": {"step_s": 0.2, "refresh_s": 2.0, "score_s": 0.25}}
    # contended step 1.1 x 0.2 s; scoring 1.2 x (1 + 10 x 0.5) = 7.2 s; 10 s kept back
    plan = ranking_bench.plan_epochs(args, specs, rates, seconds_left=1000.0, steps_per_epoch=10)
    assert plan["step_s"] == pytest.approx(0.22) and plan["score_s_estimate"] == pytest.approx(7.2)
    assert plan["epochs_that_fit"] == int((1000 - 7.2 - 10) // 2.2) == 446 and plan["epochs"] == 30
    cut = ranking_bench.plan_epochs(args, specs, rates, seconds_left=17.2 + 22.5, steps_per_epoch=10)
    assert cut["epochs_that_fit"] == 10 and cut["epochs"] == 10
    floor = ranking_bench.plan_epochs(args, specs, rates, seconds_left=20.0, steps_per_epoch=10)
    assert floor["epochs_that_fit"] == 1 and floor["epochs"] == 2


def test_a_finished_run_is_summarised_again_without_training(ranking_result, work, table_path,
                                                             tmp_path, capsys):
    """--resummarize recomputes Table 4 from the path scores a run saved: the same
    figures under the same code, the run's provenance kept and the re-summary's added."""
    out, md = tmp_path / "again.json", tmp_path / "again.md"
    assert ranking_bench.main(["--table", str(table_path), "--resummarize", str(work / "ranking.json"),
                               "--json", str(out), "--md", str(md)]) == 0
    again = json.loads(out.read_text())
    assert again["per_run"] == ranking_result["per_run"] and again["table4"] == ranking_result["table4"]
    assert again["command"] == ranking_result["command"] and "--resummarize" in again["resummarized"]["command"]
    assert "from the runs' saved path scores (no training)" in md.read_text()
    with pytest.raises(SystemExit, match="--resummarize needs --json"):
        ranking_bench.main(["--table", str(table_path), "--resummarize", str(work / "ranking.json")])
    other = json.loads(table_path.read_text())
    del other["architectures"][next(a for a in other["architectures"] if a.startswith("v1-sync"))]
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="scored other v1-sync architectures than --table"):
        ranking_bench.main(["--table", str(tmp_path / "other.json"), "--resummarize",
                            str(work / "ranking.json"), "--json", str(out)])
    # a file without a run's landmarks: named, not a KeyError
    (tmp_path / "nolm.json").write_text(json.dumps({**ranking_result, "landmarks": {}}))
    with pytest.raises(SystemExit, match="lacks its space's settings, its landmarks or its scores"):
        ranking_bench.main(["--table", str(table_path), "--resummarize", str(tmp_path / "nolm.json"),
                            "--json", str(out)])
    # one arm only: nothing to compare, but its scores are not dropped from the file
    one = {**ranking_result, "runs": ranking_result["runs"][:1]}
    (tmp_path / "one.json").write_text(json.dumps(one))
    assert ranking_bench.main(["--table", str(table_path), "--resummarize", str(tmp_path / "one.json"),
                               "--json", str(tmp_path / "one.json")]) == 1
    assert json.loads((tmp_path / "one.json").read_text())["runs"] == one["runs"]


def test_depthnas_rank_accepts_the_table(ranking_result, work, table_path, capsys, caplog):
    run = work / "w" / "ranking" / "v1-sync_landmarks_s0"
    for name in ("config.yaml", "initial_landmarks.json", "run.json"):
        assert (run / name).is_file(), name
    with caplog.at_level("WARNING", logger="depthnas.rank"):
        assert cli_main(["rank", "--run", str(run), "--truth", str(table_path), "--no-progress"]) == 0
    assert "has not finished" not in caplog.text  # no search to finish: its landmarks are all
    out = capsys.readouterr().out
    assert "kendall_tau" in out and f"landmarks_excluded   {LANDMARKS}" in out
    rank = json.loads((run / "rank.json").read_text())
    assert rank["n"] == V1 - LANDMARKS
    assert rank["run_finished"] is True  # its run.json; said False, read for a search's results.json
    # the sparse Kendall tau as the experiment computed it: its threshold (the table's seed
    # noise, recorded in the run's config), not 1% of the range, which tied nothing
    own = next(r for r in ranking_result["per_run"] if r["method"] == "landmarks" and r["seed"] == 0)
    assert rank["sparse_threshold"] == pytest.approx(own["sparse_threshold"])
    assert rank["sparse_kendall_tau"] == pytest.approx(own["sparse_kendall_tau"], abs=1e-6)
    assert rank["sparse_threshold_rule"] == "the run's search.sparse_threshold"
    # the stock data path (SyntheticDepth + transforms) scores as the tensor path did
    mine = next(r for r in ranking_result["runs"] if r["name"] == "v1-sync_landmarks_s0")["scores"]
    for arch, score in rank["scores"].items():
        assert score == pytest.approx(mine[arch], rel=1e-4, abs=1e-6)


def test_tensor_data_and_batches_match_depthnas(work, table_path):
    from depthnas.config import TrainConfig
    from depthnas.data import load_splits
    from depthnas.task import DepthTask
    from depthnas.trainer import Trainer
    cfg = proxy.make_config("cpu")
    tensors = proxy.TensorSplits(proxy.render_data(cfg, work / "w"), torch.device("cpu"))
    stock = load_splits(cfg)  # build_splits("synthetic", ..., augment=False)
    for name in ("train", "reg", "val"):
        a, b = getattr(tensors, name), getattr(stock, name)
        assert len(a) == len(b)
        for i in (0, len(b) - 1):
            for k in ("image", "target", "mask"):
                assert torch.allclose(a[i][k].float(), b[i][k].float(), atol=1e-6), (name, i, k)
    model = torch.nn.Conv2d(3, 1, 1)
    kw = dict(out_dir=work / "t", total_epochs=2, seed=3, batch_size=4, progress=False)
    mine = proxy.TensorTrainer(model, DepthTask(), TrainConfig(), tensors.train, **kw)
    theirs = Trainer(model, DepthTask(), TrainConfig(), stock.train, **kw)
    for epoch in (0, 1):
        for x, y in zip(mine._batches(epoch), theirs._batches(epoch), strict=True):
            assert torch.allclose(x["image"], y["image"], atol=1e-6)
            assert torch.equal(x["target"], y["target"])


def test_training_reads_batches_from_the_tensors(work, table_path, monkeypatch):
    """Both trainer and regularizer must take their batches from the device tensors: a
    DataLoader with pin_memory over CUDA tensors (the stock path) fails on the GPU."""
    from depthnas.config import LandmarkConfig, TrainConfig
    from depthnas.task import DepthTask
    cfg = proxy.make_config("cpu")
    tensors = proxy.TensorSplits(proxy.render_data(cfg, work / "w"), torch.device("cpu"))
    calls = []
    real = proxy.TensorDepthSet.batch
    monkeypatch.setattr(proxy.TensorDepthSet, "batch",
                        lambda self, idx: calls.append(len(self)) or real(self, idx))
    space = get_space("v1-sync")
    net = space.build_supernet(backbone="mobilenetv3_small_050", features=16)
    marks = [(a, float(i)) for i, a in enumerate(proxy.random_archs(space, 2, random.Random(0)))]
    reg = proxy.TensorLandmarkRegularizer(marks, tensors.reg, DepthTask(),
                                          LandmarkConfig(schedule="constant"), batch_size=4,
                                          device="cpu", total_epochs=1)
    cfg_t = TrainConfig(epochs=1, steps_per_epoch=2)
    trainer = proxy.TensorTrainer(net, DepthTask(), cfg_t, tensors.train, out_dir=work / "t2",
                                  total_epochs=1, batch_size=4, progress=False,
                                  sample_arch=space.sample, regularizer=reg)
    trainer.fit(resume=False)
    assert calls.count(len(tensors.train)) == 2 and calls.count(len(tensors.reg)) == 2
    assert not (work / "t2" / "checkpoints").exists()  # no per-epoch I/O


def test_landmarks_are_table_entries_further_than_tau_from_a_root():
    """Algorithm 1 inside the table. The sampler's own draws, each mapped to its nearest
    table entry, came out as spread as random entries (and some within tau of the root)."""
    space = get_space("v1-sync")
    table = [space.to_string(a) for a in proxy.random_archs(space, 30, random.Random(0))]
    marks = ranking_bench.choose_landmarks(space, table, 10, 3, random.Random(1))
    chosen = [m["arch"] for m in marks]
    assert len(set(chosen)) == 10 and set(chosen) <= set(table)
    root = space.from_string(chosen[0])
    assert all(space.hamming(space.from_string(a), root) > 3 for a in chosen[1:])
    assert [m["hamming_to_root"] for m in marks][0] == 0
    again = ranking_bench.choose_landmarks(space, table, 10, 3, random.Random(1))
    assert [m["arch"] for m in again] == chosen  # a function of the seed
    # too few that far: the farthest make up the rest
    few = ranking_bench.choose_landmarks(space, table, 10, 4, random.Random(1))
    assert len({m["arch"] for m in few}) == 10


def test_sigterm_stops_the_workers_and_still_writes_the_table(tmp_path):
    """What `timeout` does to a GPU run that overruns: the table of what finished survives."""
    import os
    import signal
    import subprocess
    import time
    out, work = tmp_path / "table.json", tmp_path / "w"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "depth_proxy" / "build_table.py"),
           "--preset", "cpu", "--v1", "40", "--v2", "0", "--workers", "1", "--threads", "1",
           "--render-processes", "1", "--work", str(work), "--out", str(out)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        log = work / "trainings.jsonl"
        deadline = time.time() + 240
        while not (log.is_file() and log.read_text().strip()) and proc.poll() is None:
            assert time.time() < deadline, "no training finished in 240 s"
            time.sleep(0.5)
        # as GNU timeout does it: to the process, then at once to its whole group (the
        # second, after the first restored the default handler, killed the build
        # before it wrote the table)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stdout
    assert "interrupted (signal 15)" in stdout
    table = json.loads(out.read_text())
    finished = len(log.read_text().splitlines())
    assert 1 <= finished < 80 and table["timing"]["stopped_by_budget"] is True
    # the worker went with the parent: soon nothing is left in its process group
    # (multiprocessing's resource tracker leaves once the parent's pipe closes)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        left = subprocess.run(["ps", "-o", "pid,args", "-g", str(proc.pid)],
                              capture_output=True, text=True).stdout
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"processes left behind:\n{left}")


def test_the_table_is_written_where_asked_never_over_another_recipe_s(tmp_path, capsys):
    """--out defaulted to the committed H200 table, which a CPU smoke run replaced;
    --seeds 0 0 gave a seed-to-seed tau of +1."""
    args = build_table.parse_args(["--work", str(tmp_path / "w")])
    assert args.out == str(tmp_path / "w" / "table.json")
    other = tmp_path / "table.json"
    other.write_text(json.dumps({"config": {"recipe_key": "aaaa"}, "architectures": {}}))
    with pytest.raises(SystemExit, match="holds a table of another recipe .aaaa, this build bbbb."):
        build_table.check_out(other, "bbbb")
    build_table.check_out(other, "aaaa")  # its own: resumed
    other.write_text("{ damaged")
    build_table.check_out(other, "bbbb")  # written again from trainings.jsonl
    with pytest.raises(SystemExit, match="is a folder"):
        build_table.check_out(tmp_path, "bbbb")
    with pytest.raises(SystemExit, match=r"--out .*/t.json: .*table.json is a file, not a folder"):
        build_table.check_out(other / "t.json", "bbbb")  # a traceback after the trainings
    # a file of the user's named as --out was replaced by the table
    for name, text in (("README.md", "# notes\n"), ("other.json", '{"a": 1}')):
        (tmp_path / name).write_text(text)
        with pytest.raises(SystemExit, match=f"{name} is no table this script wrote; choose another --out"):
            build_table.check_out(tmp_path / name, "bbbb")
    for flags, says in ((["--time-budget", "-5"], "--time-budget must be >= 0, got -5.0"),
                        (["--render-processes", "0"], "--render-processes must be >= 1, got 0")):
        with pytest.raises(SystemExit):
            build_table.parse_args(flags)
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_table.parse_args(["--seeds", "0", "0"])
    assert "--seeds 0 0: each seed once" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # wrote an empty table and exited 0
        build_table.parse_args(["--v1", "0", "--v2", "0"])
    assert "--v1 0 --v2 0: no architecture to train" in capsys.readouterr().err


def test_a_build_in_which_no_training_finished_exits_non_zero(tmp_path, capsys):
    """gpu_run.sh reads the exit status: a table of failures exited 0, each failure
    printed without its reason."""
    assert build_table.main(["--preset", "cpu", "--v1", "3", "--v2", "0", "--workers", "1",
                             "--render-processes", "1", "--threads", "1", "--work", str(tmp_path),
                             "--set", "model.backbone=nosuchnet"]) == 1
    out = capsys.readouterr().out
    assert "error: no training of this run finished (3 failed" in out
    assert "FAILED (ValueError: " in out and "nosuchnet" in out


def test_a_build_its_budget_stopped_before_any_training_ended_is_no_failure(tmp_path, capsys):
    """The exit status said failure (1) for a budget stop: nothing had failed."""
    assert build_table.main(["--preset", "cpu", "--v1", "2", "--v2", "0", "--workers", "1",
                             "--render-processes", "1", "--threads", "1", "--work", str(tmp_path / "w"),
                             "--out", str(tmp_path / "new" / "table.json"),  # its folder is made
                             "--time-budget", "0.01", "--grace", "0"]) == 0
    assert "error:" not in capsys.readouterr().out
    assert json.loads((tmp_path / "new" / "table.json").read_text())["timing"]["stopped_by_budget"]


def test_trainings_that_end_by_the_budget_are_waited_for():
    """The stop (no new trainings) comes a median training before the budget; the grace
    counted from the stop killed trainings due to end by the budget itself."""
    budget, grace = 250.0, 25.0
    stop_at = budget - 1.05 * 38.0  # a GPU training: 38 s
    assert not build_table.grace_over(budget + 10.0, stop_at, budget, grace)
    assert build_table.grace_over(budget + grace + 1.0, stop_at, budget, grace)
    assert build_table.grace_over(262.0, 236.0, 200.0, grace)  # a stop after the budget


def test_a_worker_takes_no_job_it_cannot_finish_by_the_deadline(monkeypatch):
    """The main process sets its stop once a second: a worker freed just before took
    another job, which the grace period then killed."""
    import queue
    import threading
    import time

    def job_of(cfg, job, splits, dev, work):
        time.sleep(0.2)
        return {"arch": job["arch"], "space": "v1-sync", "seed": 0, "val_loss": 0.1}
    monkeypatch.setattr(build_table, "run_job", job_of)
    monkeypatch.setattr(build_table.proxy, "TensorSplits", lambda *a: None)
    jobs, results = queue.Queue(), queue.Queue()
    for i in range(5):
        jobs.put({"id": i, "arch": f"a{i}"})
    cfg = build_table.config_mod.to_dict(build_table.config_mod.Config())
    build_table.worker_main(0, cfg, "unused", "cpu", 1, "unused", jobs, results,
                            threading.Event(), deadline=time.time() + 0.3)
    messages = [results.get_nowait() for _ in range(results.qsize())]
    done = [m for m in messages if m["type"] == "result"]
    assert len(done) == 1 and jobs.qsize() == 4  # after the first: 0.2 s + 0.21 s > 0.3 s
    assert messages[-1] == {"type": "exit", "worker": 0, "out_of_time": True}  # the table says why


@pytest.mark.parametrize(("flags", "message"), [
    (["--num-landmarks", "0"], "needs at least 2 landmarks"),  # was a ValueError deep inside
    (["--threshold", "0"], "bin width must be > 0"),           # was read as "not given"
    (["--seeds", "0", "0"], "a seed given twice"),  # one run counted twice: "± 0.000"
    # two runs trained into one folder at once, then counted as two seeds
    (["--spaces", "v1-sync", "v1-sync"], "a space given twice"),
    # trained all --epochs, unsaid: the budget plans concurrent runs only
    (["--in-process", "--time-budget", "5"], "give --epochs instead"),
])
def test_ranking_refuses_flags_that_cannot_work(flags, message):
    with pytest.raises(SystemExit, match=message):
        ranking_bench.main([*flags, "--table", "unused.json"])


def test_ranking_refuses_a_file_that_is_not_a_table(tmp_path, table_path):
    cut = tmp_path / "cut.json"
    cut.write_text(table_path.read_text()[:200])
    with pytest.raises(SystemExit, match="--table: .*cut.json: not valid JSON"):  # one line, no traceback
        ranking_bench.load_table(cut)
    truth_only = tmp_path / "plain.json"
    truth_only.write_text(json.dumps({"v1-sync:c3,skip,none,c1,ap": 0.1}))
    with pytest.raises(SystemExit, match="plain.json: not a depth proxy table"):
        ranking_bench.load_table(truth_only)
    table = json.loads(table_path.read_text())
    first = next(iter(table["architectures"]))
    del table["architectures"][first]["mean"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(table))
    with pytest.raises(SystemExit, match=f"broken.json: entry '{first}' lacks"):
        ranking_bench.load_table(broken)
    assert ranking_bench.load_table(table_path)["architectures"]


# architectures of a table: live ones (the search ranks a dead cell last by itself)
LIVE = [f"v1-sync:c3,{x},{y},c3,c3" for x in ("none", "skip", "c1", "c3") for y in ("none", "skip")]


def test_a_super_net_scoring_its_paths_at_the_constant_level_is_flagged():
    truth = {"v1-sync": {LIVE[i]: 0.1 + 0.01 * i for i in range(6)}}
    constant = 0.2
    def run(method, scores):
        return {"space": "v1-sync", "method": method, "seed": 0, "landmarks": [],
                "epochs": 1, "steps": 1, "constant_score": constant, "scores": scores}
    dead = {a: constant * (1 + 1e-5 * i) for i, a in enumerate(truth["v1-sync"])}  # float noise
    alive = {a: 0.5 * v for a, v in truth["v1-sync"].items()}
    out = ranking_bench.summarize([run("spos", alive), run("landmarks", dead)], truth, {"v1-sync": 0.001})
    by_method = {r["method"]: r["at_constant"] for r in out["per_run"]}
    assert by_method == {"spos": 0.0, "landmarks": 1.0}
    text = ranking_bench.table4(out["summary"], {"v1-sync": "given"}, {"v1-sync": 0.001},
                                out["per_run"])
    assert "Collapsed super-nets" in text and "v1-sync SPOS+landmarks seed 0 (100%)" in text
    assert "SPOS seed" not in text.split("Collapsed super-nets")[1].split("\n")[0]
    assert "S-KdT thresholds: v1-sync 0.001 (given)" in text


def test_a_super_net_whose_live_paths_all_score_worse_than_a_constant_is_flagged():
    """No path at the constant level, yet none better than it: close to collapse, and
    the 'best found' is then a path the super-net learned nothing about."""
    truth = {"v1-sync": {LIVE[i]: 0.1 + 0.01 * i for i in range(8)}}
    constant = 0.2
    worse = {a: 0.21 + 0.001 * i for i, a in enumerate(truth["v1-sync"])}
    better = {a: 0.1 + 0.001 * i for i, a in enumerate(truth["v1-sync"])}
    runs = [{"space": "v1-sync", "method": m, "seed": 0, "landmarks": [], "epochs": 1, "steps": 1,
             "constant_score": constant, "scores": sc}
            for m, sc in (("spos", better), ("landmarks", worse))]
    out = ranking_bench.summarize(runs, truth, {"v1-sync": 0.001})
    assert {r["method"]: r["beat_constant"] for r in out["per_run"]} == {"spos": 1.0, "landmarks": 0.0}
    text = ranking_bench.table4(out["summary"], {"v1-sync": "x"}, {"v1-sync": 0.001}, out["per_run"])
    assert "Near collapse" in text and "SPOS+landmarks seed 0 (0%)" in text
    # 0.5% better is what `depthnas rank` calls learning nothing: not "better" here either
    barely = {a: 0.995 * constant for a in truth["v1-sync"]}
    (row,) = ranking_bench.summarize([{**runs[0], "scores": barely}], truth,
                                     {"v1-sync": 0.001})["per_run"]
    assert row["beat_constant"] == 0.0
    diverged = {a: float("nan") for a in truth["v1-sync"]}  # NaN >= level is False
    (row,) = ranking_bench.summarize([{**runs[0], "scores": diverged}], truth,
                                     {"v1-sync": 0.001})["per_run"]
    assert row["beat_constant"] == 0.0


def test_table4_gives_the_mean_and_sample_std_of_the_finite_values():
    """mean +- std over seeds: the sample std (ddof = 1), and a seed whose tau is
    undefined (NaN: one side all ties) counted out, not averaged in as NaN."""
    import math
    s = ranking_bench.mean_std([0.1, 0.3, 0.5])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(0.2)  # population: 0.163
    s = ranking_bench.mean_std([0.2, math.nan, 0.4, None])
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(math.sqrt(0.02))


def test_the_methods_are_compared_seed_by_seed():
    """Both arms of a seed share its landmarks and evaluation set: the summary holds the
    per-seed difference, and one value has no standard deviation (it printed +- 0.000)."""
    truth = {"v1-sync": {LIVE[i]: 0.1 + 0.01 * i for i in range(8)}}
    archs = list(truth["v1-sync"])

    def run(method, seed, order):
        return {"space": "v1-sync", "method": method, "seed": seed, "landmarks": [], "epochs": 1,
                "steps": 1, "constant_score": None,
                "scores": {a: 0.1 + 0.001 * order.index(a) for a in archs}}
    right, wrong = archs, archs[::-1]
    runs = [run("spos", 0, wrong), run("landmarks", 0, right),
            run("spos", 1, wrong), run("landmarks", 1, right)]
    out = ranking_bench.summarize(runs, truth, {"v1-sync": 0.001})
    diff = out["summary"]["v1-sync"]["landmarks_minus_spos"]
    assert diff["kendall_tau"]["mean"] == pytest.approx(2.0) and diff["kendall_tau"]["n"] == 2
    assert diff["kendall_tau"]["std"] == pytest.approx(0.0)
    one = ranking_bench.summarize(runs[:2], truth, {"v1-sync": 0.001})
    text = ranking_bench.table4(one["summary"], {"v1-sync": "x"}, {"v1-sync": 0.001}, one["per_run"])
    assert "± 0.000" not in text and "(n = 1)" in text
    assert "landmarks - SPOS per seed: S-KdT +2.000 (n = 1)" in text


# two strings of one model: 3<-2 is none, so node 2's edges never run
TWINS = ("v1-sync:c3,c3,ap,c1,none", "v1-sync:skip,c1,ap,c1,none")


def test_a_landmark_s_twin_is_left_out_of_the_evaluation_set():
    """A table entry that builds a landmark's model under another string is that
    landmark's very path in the super-net: ranking it would score the regularizer on
    its own training pairs (each committed V1-sync run had 1 to 3 of them)."""
    space = get_space("v1-sync")
    assert space.function_key(space.parse(TWINS[0])) == space.function_key(space.parse(TWINS[1]))
    archs = [*LIVE[:6], *TWINS]
    truth = {"v1-sync": {a: 0.1 + 0.01 * i for i, a in enumerate(archs)}}
    scores = {a: 0.5 * v for a, v in truth["v1-sync"].items()}
    scores[TWINS[1]] = 0.01  # the super-net's best: the landmark's twin
    run = {"space": "v1-sync", "method": "landmarks", "seed": 0, "epochs": 1, "steps": 1,
           "constant_score": None, "scores": scores,
           "landmarks": [{"arch": TWINS[0]}, {"arch": LIVE[0]}]}
    (row,) = ranking_bench.summarize([run], truth, {"v1-sync": 0.001})["per_run"]
    assert row["n"] == len(archs) - 3 and row["best_found"] == LIVE[1]


def test_the_table_s_landmarks_are_distinct_models():
    space = get_space("v1-sync")
    table = [*LIVE, *TWINS]
    for seed in range(10):  # all but one of the ten entries: both twins were often drawn
        marks = ranking_bench.choose_landmarks(space, table, len(table) - 1, 0, random.Random(seed))
        assert len({space.function_key(space.parse(m["arch"])) for m in marks}) == len(marks) == 9


def test_the_best_found_is_what_the_search_would_pick_not_a_dead_path():
    """A path at the constant level beats every live path by score; `depthnas search`
    ranks it last, and the benchmark's 'best found' follows the search."""
    truth = {"v1-sync": {LIVE[i]: 0.1 + 0.01 * i for i in range(6)}}
    constant = 0.2
    scores = dict(zip(LIVE, (0.31, 0.30, 0.32, constant, constant * (1 + 1e-5), 0.33)))
    run = {"space": "v1-sync", "method": "spos", "seed": 0, "landmarks": [], "epochs": 1,
           "steps": 1, "constant_score": constant, "scores": scores}
    (row,) = ranking_bench.summarize([run], truth, {"v1-sync": 0.001})["per_run"]
    assert row["best_found"] == LIVE[1] and row["best_found_table_rank"] == 2


def test_a_worker_leaves_when_its_parent_is_gone(monkeypatch):
    """After a kill -9 of build_table, its workers trained on for nobody (device time)."""
    import queue
    import threading
    parents = iter([100, 100, 1])  # at the start, before job 1, before job 2: re-parented

    def job_of(cfg, job, splits, dev, work):
        return {"arch": job["arch"], "space": "v1-sync", "seed": 0, "val_loss": 0.1}
    monkeypatch.setattr(build_table, "run_job", job_of)
    monkeypatch.setattr(build_table.proxy, "TensorSplits", lambda *a: None)
    monkeypatch.setattr(build_table.os, "getppid", lambda: next(parents, 1))
    jobs, results = queue.Queue(), queue.Queue()
    for i in range(3):
        jobs.put({"id": i, "arch": f"a{i}"})
    cfg = build_table.config_mod.to_dict(build_table.config_mod.Config())
    build_table.worker_main(0, cfg, "unused", "cpu", 1, "unused", jobs, results, threading.Event())
    messages = [results.get_nowait() for _ in range(results.qsize())]
    assert [m["arch"] for m in messages if m["type"] == "result"] == ["a0"] and jobs.qsize() == 2


@pytest.mark.parametrize(("flags", "message"), [
    (["--num-landmarks", "1"], "needs at least 2 landmarks"),  # one landmark: no pair
    # 0 reset the decoder's BatchNorm statistics and estimated none
    (["--calib-batches", "0"], "--calib-batches must be >= 1"),
    (["--epochs", "2", "--min-epochs", "5"], "--min-epochs 5 is more than --epochs 2"),
    (["--json", "a-file/r.json"], "--json a-file/r.json: a-file is a file"),
    # each started every run's process, to fail there (or after it: a traceback at 0)
    (["--time-budget", "-5"], "--time-budget must be >= 0, got -5.0"),
    (["--threads", "0"], "--threads must be >= 1"), (["--lambda-max", "-1"], "--lambda-max must be >= 0"),
    (["--seeds", "-1"], "--seeds -1: each from 0 to 2\\*\\*32 - 1"),
    (["--device", "gpu"], "--device gpu: unknown device 'gpu'"),
])
def test_ranking_refuses_the_first_value_that_cannot_work(flags, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")  # an output path below it failed after all the work
    with pytest.raises(SystemExit, match=message):
        ranking_bench.check_args(ranking_bench.parse_args([*flags, "--table", "unused.json"]))


def test_seed_agreement_by_hand():
    """The table's seed-to-seed tau and noise level (the sparse tau's threshold), on
    hand values: only a range was checked, which any tau meets."""
    entries = {"v1-sync:a": {"seeds": [0.10, 0.40]}, "v1-sync:b": {"seeds": [0.20, 0.30]},
               "v1-sync:c": {"seeds": [0.30, 0.20]},
               "v1-sync:d": {"seeds": [0.40, None]},  # one seed diverged: no pair
               "v2-sync:e": {"seeds": [0.5, 0.5]}}
    got = proxy.seed_agreement(entries)
    assert got["kendall_tau"]["v1-sync"] == pytest.approx(-1.0)  # seed 1 reverses seed 0
    assert got["median_abs_diff"]["v1-sync"] == pytest.approx(0.1)  # of 0.3, 0.1, 0.1
    assert got["n_pairs"] == {"v1-sync": 3, "v2-sync": 1, "overall": 4}
    assert got["kendall_tau"]["v2-sync"] is None and got["median_abs_diff"]["overall"] == pytest.approx(0.1)


def test_ranking_takes_the_least_values_that_work():
    ranking_bench.check_args(ranking_bench.parse_args(
        ["--num-landmarks", "2", "--calib-batches", "1", "--table", "unused.json"]))


def test_ranking_s_truth_leaves_out_diverged_architectures_and_needs_two_to_rank():
    args = ranking_bench.parse_args(["--num-landmarks", "2", "--spaces", "v1-sync",
                                     "--table", "t.json"])
    archs = {f"v1-sync:a{i}": {"space": "v1-sync", "mean": 0.1 * (i + 1)} for i in range(4)}
    archs["v1-sync:dead"] = {"space": "v1-sync", "mean": None}  # every seed diverged
    archs["v2-sync:b"] = {"space": "v2-sync", "mean": 0.5}
    table = {"architectures": archs, "seed_median_abs_diff": {"v1-sync": 0.01}}
    truth, thresholds, rules = ranking_bench.truth_and_thresholds(table, args, print)
    assert sorted(truth["v1-sync"]) == [f"v1-sync:a{i}" for i in range(4)]
    assert thresholds == {"v1-sync": 0.01} and rules == {"v1-sync": "median |seed0 - seed1| of the table"}
    del archs["v1-sync:a3"]  # 3 = 2 landmarks + 1 to rank
    with pytest.raises(SystemExit, match="3 v1-sync architectures; need at least 4"):
        ranking_bench.truth_and_thresholds(table, args, print)


def test_ranking_takes_a_run_s_failure_and_notes_a_silent_death():
    said = []
    args = ranking_bench.parse_args(["--table", "unused.json"])
    specs = [{"name": n} for n in ("r0", "r1", "r2")]
    runs = ranking_bench.Runs(specs, {}, args, None, 10, time.time(), said.append)
    runs.take({"type": "fatal", "run": "r0", "error": "Traceback ..."})
    assert runs.failed == {"r0"} and said == ["r0 failed:\nTraceback ..."]
    alive = lambda up: types.SimpleNamespace(is_alive=lambda: up)  # noqa: E731
    runs.procs = [alive(False), alive(False), alive(True)]  # r1 ended without a word
    runs.note_silent_deaths(types.SimpleNamespace(empty=lambda: True))
    assert runs.failed == {"r0", "r1"} and said[-1] == "r1: process ended without a result"


def test_ranking_sends_every_run_the_epoch_count_planned_from_all_their_rates(
        work, table_path, monkeypatch):
    """The GPU run's path (gpu_run.sh): one process per run; each times its contended
    steps, then the parent plans once from every run's rates and sends all of them the
    count it gives (here cut to 1 of the 2 requested): equal epochs for both arms."""
    real, seen = ranking_bench.plan_epochs, []

    def cut_to_one(args, specs, rates, deadline, steps_per_epoch):
        seen.append(sorted(rates))
        return {**real(args, specs, rates, deadline, steps_per_epoch), "epochs": 1}
    monkeypatch.setattr(ranking_bench, "plan_epochs", cut_to_one)
    out = work / "cut.json"
    assert ranking_bench.main(["--table", str(table_path), "--spaces", "v1-sync", "--seeds", "0",
                               "--num-landmarks", str(LANDMARKS), "--epochs", "2",
                               "--calib-batches", "1", "--threads", "1", "--time-budget", "300",
                               "--warmup-s", "1", "--work", str(work / "cut"),
                               "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(seen) == 1 and len(seen[0]) == 2  # both runs' rates
    assert res["plan"]["epochs"] == 1 and {r["epochs"] for r in res["runs"]} == {1}
    assert res["plan"]["requested_epochs"] == 2 and res["plan"]["step_s"] > 0
    assert res["paired_runs"] == 1 and not res["missing_runs"]
    assert {r["method"] for r in res["runs"]} == {"spos", "landmarks"}


def _build(tmp_path, said):
    args = build_table.parse_args(["--work", str(tmp_path / "w")])
    b = build_table.TableBuild(None, args, "k", tmp_path / "trainings.jsonl", {},
                          build_table.Progress(4, 0, time.time()), time.time(), said.append)
    return b


def test_a_build_s_messages_keep_what_finished_and_name_only_what_was_lost(tmp_path):
    said = []
    b = _build(tmp_path, said)
    job = {"id": 0, "arch": "v1-sync:c3,c3,none,c1,ap", "space": "v1-sync", "seed": 1}
    b.take({"type": "start", "worker": 0, "job": job})
    b.take({"type": "result", "worker": 0, "job": 0, "arch": job["arch"], "space": "v1-sync",
            "seed": 1, "val_loss": 0.1, "train_time_s": 1.0})
    assert b.ran == b.finished_ok == 1 and (job["arch"], 1) in b.done
    gone = lambda code: types.SimpleNamespace(is_alive=lambda: False, exitcode=code)  # noqa: E731
    b.procs = [gone(-9), gone(0)]  # worker 0 killed after its result; worker 1 left cleanly
    b.note_deaths()
    assert b.workers_lost == 1 and b.exited == {0}
    assert said[-1] == "worker 0 died (signal 9)"  # its training was not lost
    b.take({"type": "exit", "worker": 1, "out_of_time": True})  # left by its own clock
    assert b.stopped_by_budget


def test_a_build_stops_starting_trainings_a_median_training_before_its_budget(
        tmp_path, monkeypatch):
    """With a median training longer than the time left, no training starts, though
    the budget itself is far off: the table says the budget stopped it."""
    monkeypatch.setattr(build_table.Progress, "median_wall", lambda self: 1e6)
    out = tmp_path / "table.json"
    assert build_table.main(["--preset", "cpu", "--v1", "2", "--v2", "0", "--workers", "1",
                             "--render-processes", "1", "--threads", "1", "--work", str(tmp_path / "w"),
                             "--out", str(out), "--time-budget", "600", "--grace", "0"]) == 0
    timing = json.loads(out.read_text())["timing"]
    assert timing["stopped_by_budget"] and timing["trainings_this_run"] < 4


def test_an_in_process_build_its_budget_stopped_says_so(tmp_path):
    out = tmp_path / "table.json"
    assert build_table.main(["--preset", "cpu", "--v1", "2", "--v2", "0", "--workers", "0",
                             "--render-processes", "1", "--threads", "1", "--work", str(tmp_path / "w"),
                             "--out", str(out), "--time-budget", "0.01"]) == 0
    timing = json.loads(out.read_text())["timing"]
    assert timing["stopped_by_budget"] and timing["trainings_this_run"] == 0


@pytest.mark.parametrize("workers", [1, 0])
def test_a_build_of_failures_counts_them_as_trainings_run(tmp_path, workers):
    """timing.trainings_this_run counts every training run, failed ones too; a budget
    stop that left nothing undone is no stop. In this process (--workers 0) a failed
    training was a traceback out of the build, where a worker records it and goes on."""
    out = tmp_path / "table.json"
    assert build_table.main(["--preset", "cpu", "--v1", "1", "--v2", "0", "--workers", str(workers),
                             "--render-processes", "1", "--threads", "1", "--work", str(tmp_path / "w"),
                             "--out", str(out), "--set", "model.backbone=nosuchnet"]) == 1
    timing = json.loads(out.read_text())["timing"]
    assert timing["trainings_this_run"] == 2 and timing["stopped_by_budget"] is False
    lines = list(read_jsonl(tmp_path / "w" / "trainings.jsonl"))
    assert [r["error_kind"] for r in lines] == ["ValueError", "ValueError"]


def test_a_budget_stop_that_left_no_training_undone_is_no_stop(tmp_path):
    """The stop came, and the trainings in flight all ended in the grace period: the
    table is whole, and gpu_run.sh must not read it as cut short."""
    out = tmp_path / "table.json"
    args = build_table.parse_args(["--preset", "cpu", "--v1", "1", "--v2", "0",
                                   "--work", str(tmp_path / "w"), "--out", str(out)])
    cfg = build_table.proxy.make_config(args.preset, args.set)
    jobs, archs = build_table.planned_jobs(args)
    done = {(j["arch"], j["seed"]): {"arch": j["arch"], "space": j["space"], "seed": j["seed"],
                                     "val_loss": 0.1 + 0.01 * j["seed"], "device": "cpu",
                                     "params": 1000, "train_time_s": 1.0}
            for j in jobs}
    for whole in (True, False):
        kept = done if whole else dict(list(done.items())[:-1])
        b = build_table.TableBuild(cfg, args, "k", tmp_path / "t.jsonl", kept,
                              build_table.Progress(len(jobs), 0, time.time()), time.time(), print)
        b.stopped_by_budget = True
        b.write_table(archs, jobs)
        assert json.loads(out.read_text())["timing"]["stopped_by_budget"] is (not whole)


COMPUTING_ALIKE = (("v1-sync:ap,skip,c1,none,none", "v1-sync:c1,none,none,none,skip"),  # node 3 = c1(n0)
         ("v1-sync:c3,none,none,skip,skip", "v1-sync:c1,c1,c3,skip,none"))    # n1 + c3(n0)


@pytest.mark.parametrize("twins", COMPUTING_ALIKE)
def test_strings_that_compute_alike_are_one_architecture_of_the_table(twins):
    """The space keeps these apart (they build different edges), yet seeded alike their
    models give the same depth: the 60-architecture draw held two such pairs, two of
    its trainings repeating others."""
    space = get_space("v1-sync")
    a, b = (space.parse(s) for s in twins)
    assert space.function_key(a) != space.function_key(b)
    assert proxy.computation_key(space, a) == proxy.computation_key(space, b)
    x = torch.rand(1, 3, 64, 64)
    outputs = []
    for arch in (a, b):
        torch.manual_seed(0)
        outputs.append(space.build_fixed(arch, backbone="mobilenetv3_small_050",
                                         features=16).eval()(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    # a conv is not a skip, nor the 3x3 conv the 1x1: these stay apart
    assert (proxy.computation_key(space, space.parse("v1-sync:c3,c3,c3,c3,c3"))
            != proxy.computation_key(space, space.parse("v1-sync:c1,c3,c3,c3,c3")))


def test_the_tables_draw_computes_each_architecture_once_and_keeps_what_was_trained():
    """The GPU table's 60 + 30 are distinct computations; the draw is the one the
    committed trainings came from (only its 31st architecture on changed)."""
    for k, (name, n) in enumerate((("v1-sync", 60), ("v2-sync", 30))):
        space = get_space(name)
        archs = proxy.random_archs(space, n, random.Random(k))
        assert len(archs) == n
        assert len({proxy.computation_key(space, a) for a in archs}) == n
        drawn = {space.to_string(a) for a in archs}
        trained = {r["arch"] for r in read_jsonl(ROOT / "benchmarks" / "depth_proxy" / "trainings.jsonl")
                   if r["space"] == name}
        assert trained <= drawn


def test_a_work_path_naming_a_file_or_a_bad_set_is_one_line_not_a_traceback(tmp_path):
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    with pytest.raises(SystemExit, match=f"--work {afile} is a file"):
        build_table.main(["--preset", "cpu", "--v1", "2", "--v2", "0", "--workers", "0",
                          "--work", str(afile), "--out", str(tmp_path / "t.json")])
    with pytest.raises(SystemExit, match=f"--work {afile} is a file"):
        ranking_bench.main(["--table", "unused.json", "--work", str(afile)])
    below = afile / "sub"  # NotADirectoryError at the first write, as a traceback
    with pytest.raises(SystemExit, match=f"--work {below}: {afile} is a file, not a folder"):
        build_table.main(["--preset", "cpu", "--v1", "2", "--v2", "0", "--workers", "0",
                          "--work", str(below), "--out", str(tmp_path / "t.json")])
    with pytest.raises(SystemExit, match=f"--work {below}: {afile} is a file, not a folder"):
        ranking_bench.main(["--table", "unused.json", "--work", str(below)])
    with pytest.raises(SystemExit, match="--set: .*standalone.bogus"):
        build_table.main(["--preset", "cpu", "--set", "standalone.bogus=1",
                          "--work", str(tmp_path / "w")])


def test_one_process_table_build_keeps_to_its_time_budget(tmp_path, monkeypatch):
    """--workers 0 read --time-budget 0 as no budget and trained every job; it started a
    training the median one said would end past the budget too."""
    started = []

    def attempt(cfg, job, splits, dev, work):
        started.append(job["id"])
        return {"arch": job["arch"], "space": job["space"], "seed": job["seed"], "job": job["id"],
                "val_loss": 0.1, "params": 1000, "train_time_s": 10.0, "job_wall_s": 10.0}
    monkeypatch.setattr(build_table, "attempt", attempt)
    monkeypatch.setattr(proxy, "TensorSplits", lambda path, dev: None)
    common = ["--preset", "cpu", "--v1", "3", "--v2", "0", "--workers", "0",
              "--work", str(tmp_path / "w"), "--render-processes", "1"]
    build_table.main([*common, "--time-budget", "0", "--out", str(tmp_path / "t0.json")])
    assert started == []
    # one 10 s training done, 1 s into a 5 s budget: the median says the next would overrun
    build_table.main([*common, "--time-budget", "5", "--out", str(tmp_path / "t5.json")])
    assert len(started) == 1


def test_a_cpu_table_names_the_cpu_model_as_step_time_does():
    """Tables and rankings built on a CPU recorded "cpu (x86_64, 2 cores)"."""
    from depthnas.runtime import cpu_model
    assert proxy.device_name(torch.device("cpu")).startswith(f"cpu ({cpu_model()}, ")
