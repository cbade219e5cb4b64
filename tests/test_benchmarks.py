"""benchmarks/step_time.py runs end to end (tiny sizes; no timing assertions: the
targets are checked by the benchmark itself, on the hardware it names), and the
performance options reach the trainer."""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthnas.cli import build_parser
from depthnas.run_config import build_config
from depthnas.spaces import get_space
from depthnas.trainer import compile_model
from toys import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name):
    """A script of benchmarks/ imported as a module (they are scripts, not a package)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_step_time_cpu_preset_prints_the_three_ratios(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "step_time.py"), "--preset", "cpu",
           "--backbone", TINY_MODEL["backbone"], "--features", "16", "--image-size", "64",
           "--batch-size", "2", "--warmup", "0", "--iters", "1", "--calib-batches", "1",
           "--val-batches", "1", "--candidates", "2", "--threads", "1", "--json", str(out)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for part in ("(a)", "(b)", "(c)"):
        assert f"RATIO {part}" in text, text
    assert "CPU" in text  # the device is named
    result = json.loads(out.read_text())
    ratios = result["ratios"]
    for key in ("a_supernet_over_standalone", "b_landmark_shared_over_plain",
                "b_naive_over_plain", "c_full_over_cached"):
        assert ratios[key] is not None and ratios[key] > 0, key
    assert result["meta"]["device"] and result["meta"]["torch"] == torch.__version__
    assert result["score_rel_diff_max"] < 1e-4  # cached and full scoring agree
    assert result["candidates_timed"] == [0, 1]  # every candidate, not those the warm-up skips
    # the regularized variants really ran the landmark passes: more FLOPs than plain
    gflop = {k: v["gflop"] for k, v in result["variants"].items()}
    assert gflop["spos_plain"] < gflop["landmark_shared_satisfied"] < gflop["landmark_shared_violated"]
    assert gflop["landmark_shared_violated"] < gflop["landmark_naive_violated"]
    # each timed step's own verdict on the pair: what (b) says it timed
    assert result["reg_violated_seen"] == {"landmark_shared_violated": [1.0],
                                           "landmark_naive_violated": [1.0],
                                           "landmark_shared_satisfied": [0.0]}


def test_step_time_stopped_by_sigterm_writes_the_rounds_it_measured(tmp_path, monkeypatch, capsys):
    """gpu_check.sh runs each stage under `timeout`, whose SIGTERM killed the script
    before its JSON was written: a stage cut short lost every figure it had measured.
    Short of time, it writes them before any matmul is timed, says its medians are of
    the rounds measured, and keeps the verdicts of (b)'s rounds with them."""
    step_time = _bench_module("step_time")
    real, plain_rounds, matmuls = step_time.interleaved, [], []

    def interleaved(variants, *args):
        if "spos_plain" in variants:  # part (b): stopped as its third round starts
            plain_rounds.append(1)
            if len(plain_rounds) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return real(variants, *args)

    class Unhandled(Exception):
        """SIGTERM reaching the test's own handler: the benchmark set none (by default
        the signal would end pytest itself)."""

    def unhandled(signum, frame):
        raise Unhandled

    monkeypatch.setattr(step_time, "interleaved", interleaved)
    monkeypatch.setattr(step_time, "measured_matmul_peak", lambda *a: matmuls.append(a) or 1.0)
    before = signal.signal(signal.SIGTERM, unhandled)
    out = tmp_path / "stage.json"
    try:
        code = step_time.main([
            "--preset", "cpu", "--backbone", TINY_MODEL["backbone"], "--features", "16",
            "--image-size", "64", "--batch-size", "2", "--warmup", "0", "--iters", "4",
            "--calib-batches", "1", "--val-batches", "1", "--candidates", "1", "--no-flops",
            "--json", str(out)])
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the benchmark's is taken away
    finally:
        signal.signal(signal.SIGTERM, before)
    assert code == 3 and matmuls == []
    result = json.loads(out.read_text())
    assert result["stopped_in_part"] == "b"
    assert result["ratios"]["a_supernet_over_standalone"] > 0  # part (a) whole
    assert result["variants"]["spos_plain"]["n"] == 2  # (b)'s two rounds before the stop
    assert result["ratios"]["b_landmark_shared_over_plain"] > 0
    assert result["ratios"]["c_full_over_cached"] is None and "score_cached" not in result["variants"]
    assert result["meta"]["peak_measured_matmul_tflops"] is None
    seen = result["reg_violated_seen"]
    assert set(seen) == {"landmark_shared_violated", "landmark_naive_violated",
                         "landmark_shared_satisfied"}
    assert all(isinstance(v, list) and v for v in seen.values())
    text = capsys.readouterr().out
    assert "STOPPED in part (b) by SIGTERM" in text
    assert ("part (b) cut short: medians of the rounds measured, supernet_path 8, standalone 8, "
            "spos_plain 2") in text
    # (a)'s verdict is whole; (b)'s is said to rest on the two rounds before the stop
    assert "met on the rounds measured before the stop" not in text.split("RATIO (a)")[1].split("\n")[0]
    assert "met on the rounds measured before the stop)" in text.split("RATIO (b)")[1].split("\n")[0]


@pytest.mark.parametrize("score_warmup, timed", [(0, [0]), (1, [])])
def test_step_time_stopped_in_part_c_lists_only_the_candidates_it_timed(tmp_path, monkeypatch,
                                                                        score_warmup, timed):
    """The candidate of the round a stop cut short was listed as timed; after a warm-up
    round, so was the warm-up's."""
    step_time = _bench_module("step_time")
    real, rounds = step_time.interleaved, []

    def interleaved(variants, *args):
        rounds.append(1)
        if len(rounds) == 2:
            raise KeyboardInterrupt  # Ctrl-C inside the second round (timed or not)
        return real(variants, *args)
    monkeypatch.setattr(step_time, "interleaved", interleaved)
    out = tmp_path / "stage.json"
    assert step_time.main([
        "--preset", "cpu", "--backbone", TINY_MODEL["backbone"], "--features", "16",
        "--image-size", "64", "--batch-size", "2", "--warmup", "0", "--iters", "2",
        "--calib-batches", "1", "--val-batches", "1", "--candidates", "2", "--no-flops",
        "--score-warmup", str(score_warmup), "--parts", "c", "--json", str(out)]) == 3
    result = json.loads(out.read_text())
    assert result["stopped_in_part"] == "c"
    assert result["variants"].get("score_cached", {}).get("n", 0) == 1 - score_warmup
    assert result["candidates_timed"] == timed


def test_step_time_takes_a_card_s_peak_from_its_data_sheet_or_none():
    """The fraction of peak is only as good as the peak: an NVL card (lower clocks)
    matched "H100"/"H200" and got the SXM part's figure."""
    spec_peak = _bench_module("step_time").spec_peak
    assert spec_peak("NVIDIA H200", "bf16") == 989.4 and spec_peak("NVIDIA H200", "fp32") == 494.7
    assert spec_peak("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert spec_peak("NVIDIA H100 PCIe", "bf16") == 756.0
    assert spec_peak("NVIDIA A100-SXM4-80GB", "bf16") == 312.0
    assert spec_peak("NVIDIA H100 NVL", "bf16") is None and spec_peak("NVIDIA H200 NVL", "bf16") is None
    assert spec_peak("Tesla T4", "bf16") is None


def test_compile_flag_reaches_both_trainings():
    args = build_parser().parse_args(["search", "--compile", "--channels-last"])
    cfg = build_config(args)
    assert cfg.supernet.compile and cfg.standalone.compile
    assert not build_config(build_parser().parse_args(["search"])).supernet.compile


def test_compile_keeps_parameter_names():
    space = get_space("v1-sync")
    net = space.build_supernet(**TINY_MODEL)
    keys = list(net.state_dict())
    compile_model(net)  # lazily: nothing is compiled until the first call
    assert list(net.state_dict()) == keys
    assert net.backbone._compiled_call_impl is not None


def test_gpu_scripts_refuse_a_fractional_budget_before_spending_any_device_time(tmp_path):
    """Bash arithmetic takes whole numbers only: with BUDGET_S=300.5 every stage of
    gpu_check.sh ran past its budget, and gpu_run.sh stopped before training."""
    for script, var in (("gpu_check.sh", "BUDGET_S"), ("depth_proxy/gpu_run.sh", "TABLE_BUDGET")):
        env = dict(os.environ, **{var: "300.5"}, OUT=str(tmp_path / "out"),
                   WORK=str(tmp_path / "work"))
        proc = subprocess.run(["bash", str(ROOT / "benchmarks" / script)], capture_output=True,
                              text=True, timeout=60, env=env, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{var} must be" in proc.stderr and "300.5" in proc.stderr
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the scripts' GPU path would run in full")
def test_gpu_scripts_stop_at_once_where_torch_sees_no_gpu(tmp_path):
    """gpu_check.sh went on to fail its five stages one by one; gpu_run.sh trained the
    GPU recipe on the CPU (--device auto) into the GPU table's records, and exited 0."""
    for script, expect in (("gpu_check.sh", "torch sees no CUDA GPU: every stage would fail"),
                           ("depth_proxy/gpu_run.sh", "preset gpu: torch sees no CUDA GPU")):
        env = dict(os.environ, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"),
                   PYTHON=sys.executable, SKIP_INSTALL="1", PRESET="gpu")
        proc = subprocess.run(["bash", str(ROOT / "benchmarks" / script)], capture_output=True,
                              text=True, timeout=120, env=env, cwd=ROOT)
        said = proc.stdout + proc.stderr + "".join(p.read_text() for p in (tmp_path / "out").glob("*.log"))
        assert proc.returncode == 1 and expect in said, said
        assert "environment check FAILED" in said and "build_table.py:" not in said
        assert not list((tmp_path / "out").glob("*.json")) and not (tmp_path / "work" / "trainings.jsonl").exists()


def test_gpu_run_reports_a_step_its_timeout_stopped_as_3_not_as_the_tools_timeout(tmp_path):
    """The device tool reads exit 124/137 as "the whole call ran out of time", though
    a step stopped by its own `timeout` leaves its files and the script goes on."""
    script = (ROOT / "benchmarks" / "depth_proxy" / "gpu_run.sh").read_text()
    say = re.search(r"^say\(\).*$", script, re.M).group(0)
    stopped = re.search(r"^stopped_is_3\(\) \{.*?^\}$", script, re.M | re.S).group(0)
    program = (f"START=$(date +%s); LOG={tmp_path}/log\n{say}\n{stopped}\n"
               "for rc in 0 1 124 137; do stopped_is_3 $rc build_table.py; done")
    proc = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["0", "1", "3", "3"], proc.stdout + proc.stderr
    assert "build_table.py overran its own time budget" in (tmp_path / "log").read_text()


def test_gpu_check_leaves_no_earlier_run_s_figures_beside_its_own(tmp_path):
    """Each stage removes its JSON before it runs or is skipped; the dry run's compile
    skip did not, so a CPU check after a GPU run kept the GPU's compile_ab.json."""
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    stages = script[script.index("run_bench() {"):]
    out = tmp_path / "out"
    out.mkdir()
    names = ("bf16_c", "bf16_ab", "fp32_ab", "compile_ab")
    for name in names:
        (out / f"{name}.json").write_text("{}")
    program = (f"START=$(date +%s); BUDGET=0; DRY_RUN=1; OUT={out}; LOG={tmp_path}/log; FAILED=\n"
               'say() { echo "$*"; }\nleft() { echo 0; }\n' + stages)
    proc = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60)
    assert all(f"SKIP {name}" in proc.stdout for name in names), proc.stdout + proc.stderr
    assert not list(out.glob("*.json"))


def test_step_time_records_the_driver_nvidia_smi_reports(tmp_path, monkeypatch):
    step_time = _bench_module("step_time")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert step_time.driver_version() is None  # no nvidia-smi: nothing made up
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '550.54.15'\necho '550.54.15'\n")
    smi.chmod(0o755)
    assert step_time.driver_version() == "550.54.15"  # one line per card: the first
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert step_time.driver_version() is None


def test_step_time_writes_its_rounds_before_the_report_it_may_be_stopped_in(tmp_path, monkeypatch):
    """A stop (the stage's `timeout`) landing in report()'s nvidia-smi call or matmul
    timing killed the process with every measured round unwritten."""
    step_time = _bench_module("step_time")
    monkeypatch.setattr(step_time, "run", lambda args: {"a": {"median_s": 0.5}})

    def stopped(args, results):
        raise KeyboardInterrupt
    monkeypatch.setattr(step_time, "report", stopped)
    out = tmp_path / "st.json"
    with pytest.raises(KeyboardInterrupt):
        step_time.main(["--preset", "cpu", "--json", str(out)])
    assert json.loads(out.read_text()) == {"rounds_only": "report() did not finish", "a": {"median_s": 0.5}}


@pytest.mark.parametrize("flags, says", [
    (["--parts", "xyz"], "--parts 'xyz': letters of 'abc'"),   # ran to an empty table, exit 0
    (["--iters", "0"], "--iters must be >= 1"),
    (["--score-rounds", "0"], "--score-rounds must be >= 1"),  # silently ran --iters rounds
    (["--candidates", "0"], "--candidates must be >= 1"),      # ZeroDivisionError
    (["--candidates", "5", "--score-rounds", "3"], "would time 3 of the 5 --candidates"),
    (["--space", "nb201"], "--space nb201: one of v1-sync"),   # AttributeError
    (["--device", "tpu"], "--device tpu: cpu, cuda or cuda:N"),
    (["--calib-batches", "0"], "--calib-batches must be >= 1"),  # part (c) failed on it
    (["--threads", "-1"], "--threads must be >= 1"),              # a traceback
    (["--image-size", "0"], "--image-size must be a positive multiple of 32, got 0"),
    (["--backbone", "nosuchnet"], "--backbone nosuchnet: no timm model of that name"),
    (["--json", "a-file/x.json"], "--json a-file/x.json: a-file is a file"),  # after the run
])
def test_step_time_names_a_bad_option_before_any_work(flags, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit):
        _bench_module("step_time").parse(["--preset", "cpu", *flags])
    assert says in capsys.readouterr().err


def test_step_time_paper_preset_times_every_candidate_and_warms_up_compiled_scoring():
    """At the paper preset one warm-up and 3 rounds over 5 candidates timed candidates
    1-3 only (the ones FLOPs rank 11.5x, 27.5x, 8.0x; the cheapest, 5.9x, never ran);
    and with --compile the compilation fell into (c)'s first timed round."""
    step_time = _bench_module("step_time")
    args = step_time.parse(["--preset", "paper"])
    assert args.score_rounds >= args.candidates == 5
    assert step_time.parse(["--preset", "paper", "--candidates", "8"]).score_rounds == 8
    step_time.parse(["--preset", "paper", "--parts", "ab", "--score-rounds", "1"])  # no (c)
    compiled = step_time.parse(["--preset", "paper", "--compile"])
    assert compiled.warmup >= 2 and compiled.score_warmup >= 2


def test_step_time_refuses_a_folder_as_json_before_the_run(tmp_path, capsys):
    """The results were computed, then lost to IsADirectoryError."""
    with pytest.raises(SystemExit):
        _bench_module("step_time").parse(["--preset", "cpu", "--json", str(tmp_path)])
    assert "is a folder; name the file to write" in capsys.readouterr().err


@pytest.mark.parametrize("flags, says", [
    (["--pairs", "0"], "--pairs must be >= 1"),   # a "landmarks" arm without a penalty
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--schedule", "bogus"], "--schedule bogus: one of constant"),
    (["--set", "foo=1"], "--set: unknown config key 'foo'"),
    (["--table", "/nonexistent/table.json"], "--table: "),
])
def test_ranking_names_a_bad_option_before_any_run(flags, says):
    sys.path.insert(0, str(ROOT / "benchmarks" / "depth_proxy"))
    try:
        ranking = _bench_module("ranking")
    finally:
        sys.path.remove(str(ROOT / "benchmarks" / "depth_proxy"))
    with pytest.raises(SystemExit, match=re.escape(says)):
        ranking.main(flags)


def test_cli_startup_prints_its_ratios(tmp_path):
    """benchmarks/cli_startup.py times fresh processes and prints the old cost over help,
    spaces, a refused config, a missing model, a missing run for rank and an unknown data
    kind (no timing asserted: the figures are the benchmark's to print). --json's folder
    is made (a missing one was a traceback after all the timings), a folder refused."""
    with pytest.raises(SystemExit):
        _bench_module("cli_startup").main(["--rounds", "1", "--json", str(tmp_path)])
    out = tmp_path / "new" / "startup.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cli_startup.py"), "--rounds", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("help", "spaces", "refused", "no_model", "no_run", "bad_kind"):
        assert re.search(rf"old cost / {name}:\s+[\d.]+x", proc.stdout), name
    result = json.loads(out.read_text())
    assert set(result["median_s"]) == {"help", "spaces", "refused", "no_model", "no_run", "bad_kind",
                                       "old_cost"}
    assert result["rounds"] == 1
    assert result["old_cost_over_help"] == pytest.approx(
        result["median_s"]["old_cost"] / result["median_s"]["help"])


def test_gpu_run_never_ranks_an_earlier_run_s_table(tmp_path):
    """A build_table.py that failed before writing left the last run's table.json in
    $OUT, which passed the script's "no table" check and was ranked as this run's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.json").write_text('{"stale": true}')
    env = {**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"), "PYTHON": sys.executable,
           "PRESET": "cpu", "SKIP_INSTALL": "1", "RANK_BUDGET": "0",
           "TABLE_ARGS": "--set standalone.bogus=1"}  # refused before any training
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "depth_proxy" / "gpu_run.sh")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no table: stopping" in proc.stdout and not (out / "table.json").exists()
