"""Stops: Ctrl-C, SIGTERM, a closed output pipe or a lost torchrun peer end a run with
one line that says how to go on (or that nothing was kept), no traceback, and the
signal handlers as they were."""

import json
import subprocess
import sys

import pytest

from depthnas.cli import main

from cli_helpers import TINY, TRAIN_TINY


def run_with_closed_stdout(args):
    """`python -m depthnas args` writing into a pipe whose reader is already gone."""
    import os
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "depthnas", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)


def test_a_start_stopped_before_its_config_is_not_resumed_with_a_failed_start_s(tmp_path,
                                                                               monkeypatch, capsys):
    """A start killed after writing config.yaml, then a new start there stopped early:
    "continue with: ... --resume" would have resumed with the first start's seed."""
    import depthnas.pipeline
    out = tmp_path / "r"
    out.mkdir()
    (out / ".depthnas.lock").write_text("1\n")
    (out / "config.yaml").write_text("seed: 0\n")  # the killed start's

    def stopped(self):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "run", stopped)
    assert main(["search", *TINY, "--seed", "7", "--out", str(out)]) == 130
    assert ("interrupted; nothing was kept yet: run the same command again, without --resume"
            in capsys.readouterr().err)
    assert not (out / "config.yaml").exists()


def test_interrupt_says_how_to_resume(monkeypatch, tmp_path, capsys):
    """Once the run has kept its config.yaml, --resume; before, there is nothing to
    resume (`--resume` said "nothing to resume"), so the command is run again."""
    import depthnas.pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "_run", interrupted)  # after its start
    assert main(["search", *TINY, "--out", str(tmp_path / "r")]) == 130
    assert f"continue with: depthnas search --out {tmp_path / 'r'} --resume" in capsys.readouterr().err
    monkeypatch.setattr(depthnas.pipeline.SearchRun, "run", interrupted)  # before
    assert main(["search", *TINY, "--out", str(tmp_path / "s")]) == 130
    assert capsys.readouterr().err.endswith(
        "interrupted; nothing was kept yet: run the same command again, without --resume\n")


def test_a_stopped_search_keeps_the_time_it_spent(tmp_path, monkeypatch):
    """The run's wall time was kept only at stage ends: what a stop cut short was lost
    (the report of a run stopped 15 times said 18 s). Here the super-net's first step
    moves the run's clock on 1000 s, and is stopped."""
    import time
    from types import SimpleNamespace

    import depthnas.run_clock as run_clock
    from depthnas.trainer import Trainer
    skipped = [0.0]
    monkeypatch.setattr(run_clock, "time", SimpleNamespace(time=lambda: time.time() + skipped[0]))
    step = Trainer.train_step

    def long_then_stopped(self, batch, arch):
        if self.name != "supernet":
            return step(self, batch, arch)
        skipped[0] += 1000.0
        raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, "train_step", long_then_stopped)
    out = tmp_path / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 130
    assert json.loads((out / "elapsed.json").read_text())["elapsed_s"] >= 1000


def test_the_signal_handlers_are_restored_when_a_run_ends():
    """`main` called from a script or notebook: its Ctrl-C is its own again afterwards."""
    import signal
    from depthnas.stopping import stop_on_signals
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals([]):
        assert {s: signal.getsignal(s) for s in before} != before
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("code, ignored", [(130, True), (143, True), (0, False), (2, False)])
def test_the_command_ignores_a_second_ctrl_c_once_a_stopped_run_is_ending(monkeypatch, code, ignored):
    """A second Ctrl-C after "interrupted; continue with ..." landed in torch's exit hooks
    as "Exception ignored in atexit callback ... KeyboardInterrupt"."""
    import signal
    import depthnas.cli
    monkeypatch.setattr(depthnas.cli, "main", lambda: code)
    before = signal.getsignal(signal.SIGINT)
    try:
        # as from a terminal (a background job, such as a script's test run, starts with
        # Ctrl-C ignored already)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with pytest.raises(SystemExit) as ended:
            depthnas.cli.console()
        assert ended.value.code == code
        assert (signal.getsignal(signal.SIGINT) == signal.SIG_IGN) == ignored
    finally:
        signal.signal(signal.SIGINT, before)


def _stop_signals_as_from_a_terminal() -> None:
    """A test session started by a script's background job inherits SIGINT ignored,
    and a run keeps an ignored Ctrl-C ignored (by design): stop signals as a terminal
    leaves them."""
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_terminated_training_says_how_to_resume(tmp_path, signame):
    """SIGTERM is how a scheduler, `timeout` or `docker stop` ends a run: it used to
    die without the hint (and without removing half-written files). `timeout` signals
    the whole process group, loader workers too, whose deaths printed a traceback;
    and the run folder may be the default one, named only once the run starts. A
    terminal's Ctrl-C signals the group too (SIGINT), with the same tracebacks."""
    import os
    import signal
    import time
    sig = getattr(signal, signame)
    proc = subprocess.Popen(
        [sys.executable, "-m", "depthnas", "train", "--arch", "v1-sync:c3,skip,none,c1,ap",
         *TRAIN_TINY, "--epochs", "200", "--set", "data.num_workers=2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=dict(os.environ, HF_HUB_OFFLINE="1"), start_new_session=True,
        preexec_fn=_stop_signals_as_from_a_terminal)
    try:
        deadline = time.time() + 240  # a readiness wait on a busy machine, not a timing
        while (not list(tmp_path.glob("runs/*/checkpoints/epoch_*")) and time.time() < deadline
               and proc.poll() is None):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]  # still training: stop it
        os.killpg(proc.pid, sig)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == {"SIGTERM": 143, "SIGINT": 130}[signame], err
    [out] = tmp_path.glob("runs/train-*")
    said = {"SIGTERM": "terminated (SIGTERM)", "SIGINT": "interrupted"}[signame]
    assert f"{said}; continue with: depthnas train --out runs/{out.name} --resume" in err
    assert "Traceback" not in err and "killed by signal" not in err, err
    # no half-written file (atomic writes: NAME.tmp..., checkpoints: .epoch_NNNN.xxxx)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.startswith(".epoch_")]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_swallowed_where_it_landed_still_stops_the_run(signame):
    """The group's SIGTERM or Ctrl-C can land in code that cannot raise (a fork hook, a
    __del__), where the stop was swallowed, and torch's SIGCHLD handler then raised the
    loader workers' deaths over it: the run ended in a traceback, or went on training."""
    import os
    import signal
    import time

    from depthnas.stopping import Terminated, stop_on_signals
    sig = getattr(signal, signame)

    class Landing:
        def __del__(self):
            os.kill(os.getpid(), sig)

    signalled: list[int] = []
    child = signal.getsignal(signal.SIGCHLD)
    # as from a terminal (a background job's session inherits SIGINT ignored, and an
    # ignored signal stays ignored)
    before = signal.signal(sig, signal.default_int_handler if signame == "SIGINT" else signal.SIG_DFL)
    try:
        with pytest.raises(KeyboardInterrupt) as stop, stop_on_signals(signalled):
            Landing()  # its __del__ runs at once, and swallows the stop it raises
            for _ in range(100):
                time.sleep(0.05)
    finally:
        signal.signal(sig, before)
    assert isinstance(stop.value, Terminated) == (signame == "SIGTERM")
    assert signalled == [sig, sig]
    after = signal.getsignal(signal.SIGCHLD)  # no worker's death raised over it
    assert callable(after) and after(signal.SIGCHLD, None) is None
    # a run that ends without a signal leaves the SIGCHLD handler torch installed during it
    def torch_s(signum, frame):
        pass
    with stop_on_signals([]):
        signal.signal(signal.SIGCHLD, torch_s)
    assert signal.getsignal(signal.SIGCHLD) is torch_s
    signal.signal(signal.SIGCHLD, child)


def test_a_stopped_torchrun_job_says_once_how_to_relaunch_it(monkeypatch, tmp_path):
    """Every rank printed the hint, and it left out torchrun: followed to the letter,
    an 8-GPU search resumed in one process."""
    from depthnas.cli import build_parser
    from depthnas.exits import stopped_message
    from depthnas.stopping import Terminated
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "config.yaml").write_text("seed: 0\n")  # a run that kept its start
    args = build_parser().parse_args(["search", "--out", "runs/x"])
    assert stopped_message(args, KeyboardInterrupt()) == \
        "\ninterrupted; continue with: depthnas search --out runs/x --resume"
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert stopped_message(args, Terminated()) is None
    monkeypatch.setenv("RANK", "0")
    assert stopped_message(args, Terminated()) == (
        "\nterminated (SIGTERM); continue with: torchrun --nproc_per_node 4 -m depthnas search "
        "--out runs/x --resume (another number of processes resumes it too)")


def test_a_resume_command_for_a_folder_with_a_space_in_its_name_pastes_whole(monkeypatch, tmp_path):
    """`--out sp ace/run 1 --resume`, pasted, named three folders."""
    import shlex
    from depthnas.cli import build_parser
    from depthnas.exits import stopped_message
    from depthnas.runs import check_kind
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sp ace" / "run 1"
    out.mkdir(parents=True)
    (out / "config.yaml").write_text("seed: 0\n")
    args = build_parser().parse_args(["search", "--out", str(out)])
    command = stopped_message(args, KeyboardInterrupt()).split("continue with: ", 1)[1]
    assert shlex.split(command) == ["depthnas", "search", "--out", str(out), "--resume"]
    (out / "results.json").write_text("{}")
    with pytest.raises(Exception, match="continue it with `depthnas search --out (.*)`") as refused:
        check_kind(out, "train", resume=True)
    said = str(refused.value).split("continue it with `", 1)[1].split("`")[0]
    assert shlex.split(said) == ["depthnas", "search", "--out", str(out), "--resume"]


def test_a_rank_that_loses_its_peers_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    """When one rank fails, the others' collectives break: each printed a 35-line gloo
    traceback after the failing rank's clear error. Rank 0 then says how to go on,
    as after a Ctrl-C."""
    import depthnas.cli

    def peer_gone(args):
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection "
                           "closed by peer [127.0.0.1]:29500\nException raised from ...")
    monkeypatch.setattr(depthnas.cli, "cmd_search", peer_gone)
    with pytest.raises(RuntimeError):  # one process: not a lost peer, a bug to show whole
        main(["search", "--out", "x"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--out", "x"]) == 2
    lost, hint = capsys.readouterr().err.strip().splitlines()
    assert lost.startswith("error: rank 0: the ranks lost contact ([../third_party/gloo") and \
        "Connection closed by peer" in lost
    assert hint == "nothing was kept yet: run the same command again, without --resume"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.yaml").write_text("seed: 0\n")  # a run that has started
    assert main(["search", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[1] == (
        "continue with: torchrun --nproc_per_node 2 -m depthnas search --out x --resume "
        "(another number of processes resumes it too)")
    monkeypatch.setenv("RANK", "1")  # one hint, from rank 0
    assert main(["search", "--out", "x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_output_piped_into_a_reader_that_leaves_early_is_not_an_error():
    """`depthnas spaces | head -1` ended with 'error: [Errno 32] Broken pipe'."""
    done = run_with_closed_stdout(["spaces"])
    assert done.returncode == 0 and "Broken pipe" not in done.stderr and "Error" not in done.stderr


def test_a_search_whose_output_pipe_closes_says_how_to_continue(tmp_path):
    """Work stopped half-way is not a success: exit 141 (SIGPIPE's), with what to do.
    Here the pipe is closed at the first line, before any work: the folder holding only
    its start is removed, so the command is run again (--resume found nothing)."""
    out = tmp_path / "run"
    done = run_with_closed_stdout(["search", *TINY, "--out", str(out)])
    assert done.returncode == 141, done.stderr[-500:]
    assert "output pipe closed; nothing was kept yet: run the same command again, without " \
           "--resume" in done.stderr
    assert not out.exists()


def test_a_child_exiting_as_the_stop_lands_is_not_reported(monkeypatch):
    """A loader worker's SIGCHLD pending when the SIGTERM handler ran: the handler set
    SIGCHLD to SIG_DFL, and Python then reported "OSError: Signal 17 ignored due to
    race condition" under the resume hint (1 run in 40 of a stress test)."""
    import signal
    import threading

    from depthnas.stopping import Terminated, stop_on_signals
    seen: list = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)  # where Python reports it
    both = {signal.SIGTERM, signal.SIGCHLD}
    child = signal.signal(signal.SIGCHLD, lambda *_: None)  # as torch's loaders set one
    try:
        with pytest.raises(Terminated), stop_on_signals([]):
            signal.pthread_sigmask(signal.SIG_BLOCK, both)
            # to this thread: signals to the process may reach another thread at once
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            signal.pthread_kill(threading.get_ident(), signal.SIGCHLD)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, both)  # both arrive at once
            sum(range(1000))  # (the handlers run here)
        sum(range(1000))
    finally:
        signal.signal(signal.SIGCHLD, child)
    assert [str(u.exc_value) for u in seen] == []


def test_after_a_stop_logging_s_fork_hook_failing_is_not_reported(monkeypatch):
    """The stop raised in logging's before-fork hook, before it took its lock; its
    after-fork hook then failed to release it, printed as "Exception ignored in
    _releaseLock ... cannot release un-acquired lock" under the resume hint."""
    import logging
    from types import SimpleNamespace

    from depthnas.stopping import stop_on_signals

    def reported(hook_owner, signalled) -> bool:
        seen: list = []
        monkeypatch.setattr(sys, "unraisablehook", seen.append)
        with stop_on_signals(signalled):
            sys.unraisablehook(SimpleNamespace(
                exc_type=RuntimeError, exc_value=RuntimeError("cannot release un-acquired lock"),
                exc_traceback=None, err_msg=None, object=hook_owner))
        return bool(seen)
    assert not reported(logging.getLogger, [15])
    assert reported(logging.getLogger, [])  # no stop: reported
    assert reported(print, [15])  # another owner: reported


def test_a_signal_ignored_at_the_start_stays_ignored():
    """A script without job control starts `depthnas search &` with SIGINT ignored, so
    that its own Ctrl-C spares the job; the run's handler took SIGINT over regardless."""
    import signal

    from depthnas.stopping import stop_on_signals
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals([]):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_run_stopped_before_it_kept_anything_is_not_told_to_resume(tmp_path):
    """Stopped before its config.yaml, `depthnas train` said `--resume`, which then
    failed with "nothing to resume"."""
    import argparse

    from depthnas.exits import resume_hint
    args = argparse.Namespace(command="train", resolved_out=str(tmp_path))
    assert resume_hint(args) == "nothing was kept yet: run the same command again, without --resume"
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    assert resume_hint(args) == f"continue with: depthnas train --out {tmp_path} --resume"


def test_a_search_stopped_as_it_writes_its_report_is_told_to_resume(tmp_path, monkeypatch, capsys):
    """results.json came before report.md and its plots: a stop between them left a
    run without its report, and (results.json being new) no hint how to finish it."""
    import depthnas.report

    def stopped_writing(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(depthnas.report, "write_report", stopped_writing)
    out = tmp_path / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 130
    assert f"continue with: depthnas search --out {out} --resume" in capsys.readouterr().err
    assert not (out / "results.json").exists()


def test_a_resume_redoing_a_finished_run_is_told_to_resume_when_stopped(tmp_path):
    """A resume of a finished search whose checkpoints were removed trains again with
    the old results.json beside it: stopped, it printed no hint, and with its reader
    gone (`| head`) it exited 0 as if done. Its own new results.json ends the work."""
    import argparse
    import os

    from depthnas.exits import result_stamp, resume_hint
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "results.json").write_text("{}")
    args = argparse.Namespace(command="search", resolved_out=str(tmp_path),
                              result_at_start=result_stamp("search", tmp_path))
    assert resume_hint(args) == f"continue with: depthnas search --out {tmp_path} --resume"
    (tmp_path / "results.json").write_text('{"best": 1}')
    os.utime(tmp_path / "results.json", ns=(1, 1))  # written by this run: any other stamp
    assert resume_hint(args) == ""
    args.result_at_start = result_stamp("search", tmp_path)  # found finished, and kept
    args.work_finished = True
    assert resume_hint(args) == ""


def test_a_loader_worker_forked_with_the_stop_handler_ends_quietly():
    """A worker forked while the run's SIGTERM handler was set, and signalled before
    torch set its own, raised the stop inside its start-up: a traceback under the
    resume hint (the SIGTERM test failed so in a clean-clone run)."""
    import os
    import signal

    from depthnas.stopping import stop_on_signals
    signalled: list[int] = []
    with stop_on_signals(signalled):
        ask_r, ask_w = os.pipe()
        answer_r, answer_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "worker": never returns into pytest
            try:
                os.close(ask_w)
                os.close(answer_r)
                os.write(answer_w, b"x")  # ready
                while os.read(ask_r, 1):  # answers each question, until the parent leaves
                    os.write(answer_w, b"x")
            finally:
                os._exit(3)  # (a Terminated raised in it ends here, at once)
        os.close(ask_r)
        os.close(answer_w)
        os.read(answer_r, 1)
        os.kill(pid, signal.SIGTERM)
        # asked after the signal, it answers only if the signal let it live (else the
        # pipe ends: empty read), however slowly a loaded machine schedules it
        os.write(ask_w, b"?")
        alive = os.read(answer_r, 1) == b"x"
        os.kill(pid, signal.SIGKILL)  # as the run's shutdown would end it
        os.waitpid(pid, 0)
        os.close(ask_w)
        os.close(answer_r)
    assert alive and signalled == []  # the run itself was not stopped


def test_the_work_kept_hint_needs_work_in_the_folder(tmp_path):
    """A bad sample met before anything trained (config.yaml written, no run marker):
    no "the work done so far is kept"; once work is there, it is said."""
    import argparse
    from depthnas.exits import fixed_then
    from depthnas.datasets.io import DatasetError
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("seed: 0\n")
    args = argparse.Namespace(command="search", out=str(out), resolved_out=str(out))
    assert fixed_then(args, DatasetError("bad.png: truncated")) == ""
    (out / "metrics.jsonl").write_text("{}\n")
    assert "the work done so far is kept" in fixed_then(args, DatasetError("bad.png: truncated"))


def test_the_work_kept_hint_is_only_for_bad_data_or_a_failed_write(tmp_path):
    """Any other error in a folder that holds work (a refused --resume, a bug) is not
    one that "once the file can be written" goes away."""
    import argparse
    from depthnas.exits import fixed_then
    from depthnas.config import ConfigError
    from depthnas.datasets.io import DatasetError
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("seed: 0\n")
    (out / "metrics.jsonl").write_text("{}\n")
    args = argparse.Namespace(command="search", out=str(out), resolved_out=str(out))
    assert "the work done so far is kept" in fixed_then(args, DatasetError("bad.png: truncated"))
    for err in (ValueError("x"), ConfigError("--arch must name it"), RuntimeError("y")):
        assert fixed_then(args, err) == "", err


def test_a_timeout_between_ranks_names_the_setting_that_sets_it(monkeypatch):
    """gloo says "Timed out waiting ...", NCCL "... timed out": either is a wait the
    user can lengthen, and the line says with what."""
    from depthnas.exits import lost_peers
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for text in ("[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:81] Timed out "
                 "waiting 1800000ms for recv operation to complete",
                 "[Rank 1] Watchdog caught collective operation timeout: NCCL op timed out"):
        said = lost_peers(RuntimeError(text))
        assert said is not None and "DEPTHNAS_DIST_TIMEOUT_S sets how long ranks wait" in said, text
    said = lost_peers(RuntimeError("[../third_party/gloo] Connection closed by peer"))
    assert said is not None and "DEPTHNAS_DIST_TIMEOUT_S" not in said


def test_a_finished_training_or_a_printed_config_whose_reader_left_is_not_a_stop(tmp_path):
    """`depthnas train ... | head -1` ended 141 with "continue with: ... --resume" for a
    training that had finished (its result and model written), and `search
    --print-config | true` 141 with "nothing was kept yet" for a command that starts
    nothing. (The reader leaves as the last lines are printed.)"""
    program = ("import sys, depthnas.cli as cli, depthnas.train_cli as train\n"
               "def reader_left(*args, **kwargs):\n    raise BrokenPipeError\n"
               "train._say_trained = cli.print_config = reader_left\n"
               "sys.exit(cli.main(sys.argv[1:]))\n")
    out = tmp_path / "t"
    train = ["train", "--arch", "v1-sync:c3,skip,none,c1,ap", *TRAIN_TINY, "--out", str(out)]
    for argv in (train, ["search", *TINY, "--print-config", "--out", str(tmp_path / "s")],
                 [*train, "--resume"]):  # finished before: its result is read back
        done = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0 and "output pipe closed" not in done.stderr, done.stderr[-500:]
    assert (out / "result.json").is_file()


@pytest.mark.parametrize("name", ["RANK", "WORLD_SIZE"])
@pytest.mark.parametrize("value, code", [("", 0), ("x", 2)])
def test_an_empty_or_unreadable_rank_variable(monkeypatch, capsys, name, value, code):
    """RANK= (a scheduler script's unset $SLURM_PROCID) was a traceback in every command,
    and WORLD_SIZE=x one raised again by the error handler's own check."""
    monkeypatch.setenv(name, value)
    assert main(["spaces"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code:
        assert err == (f"error: environment variable {name}='x' is not a whole number (torchrun "
                       "sets it; unset it to run as a single process)\n")


def test_a_data_check_with_bad_samples_keeps_its_status_when_the_reader_leaves(tmp_path):
    """`depthnas data ... | head -2` exited 0 for a data set with bad samples: the
    documented status 1 was lost to the closed pipe."""
    import numpy as np
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    import cv2
    for i in range(6):
        cv2.imwrite(str(root / "images" / f"s{i}.png"), np.full((32, 32, 3), 60 * (i % 4), np.uint8))
        np.save(root / "depth" / f"s{i}.npy", np.full((32, 32), 2.0 + i, np.float32))
    (root / "images" / "s0.png").write_bytes(b"not an image")
    done = run_with_closed_stdout(["data", "--data", f"folder:{root}", "--no-progress"])
    assert done.returncode == 1, done.stderr[-500:]
    assert "Traceback" not in done.stderr
