"""Constants and helpers shared by the command-line tests (test_search.py,
test_resume.py, test_train_cli.py, test_rank.py, test_run_folders.py, test_stopping.py,
test_cli.py): a plain module, imported by name. Fixtures are in conftest.py."""

import json


TINY = ["--preset", "quick", "--image-size", "64", "--no-progress",
        "--set", "data.synthetic_samples=40", "--set", "supernet.steps_per_epoch=2",
        "--set", "standalone.steps_per_epoch=2", "--epochs", "1", "--standalone-epochs", "1",
        "--num-landmarks", "3", "--iterations", "2", "--top-k", "1",
        "--set", "search.rank_samples=2", "--set", "search.population=4",
        "--set", "search.generations=2", "--set", "search.parents=2",
        "--set", "search.mutations=1", "--set", "search.crossovers=1",
        "--set", "search.calib_batches=1", "--set", "search.val_batches=1"]


# `depthnas train` with the same stand-alone recipe as TINY's search
TRAIN_TINY = ["--preset", "quick", "--image-size", "64", "--no-progress",
              "--set", "data.synthetic_samples=40", "--set", "standalone.steps_per_epoch=2",
              "--epochs", "1"]


def truth_of(run_dir, path):
    """The run's own stand-alone results as a truth table."""
    results = json.loads((run_dir / "results.json").read_text())["architectures"]
    path.write_text(json.dumps({a["arch"]: a["val_loss"] for a in results}))
    return path


class LockHolder:
    """Another process, as a run in `folder` is to this one: a python (run from a
    folder named depthnas, as a checkout's is, but no depthnas command) that takes the
    folder's run lock, with `args` on its command line. `release()` lets the lock go
    and keeps the process alive, as a notebook that ran a search lives on."""

    _SCRIPT = ("import fcntl, sys, time\n"
               "f = open(sys.argv[1], 'a+')\n"
               "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
               "print(flush=True)\n"
               "sys.stdin.readline()\n"
               "f.close()\n"
               "print(flush=True)\n"
               "time.sleep(120)\n")

    def __init__(self, folder, work, *args: str, lock: bool = True):
        import subprocess
        import sys
        from pathlib import Path
        python = Path(work) / "depthnas" / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            python.symlink_to(sys.executable)
        script = self._SCRIPT if lock else "import time; print(flush=True); time.sleep(120)"
        target = Path(folder) / ".depthnas.lock" if lock else "-"
        self.proc = subprocess.Popen([str(python), "-c", script, str(target), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        self.proc.stdout.readline()  # started (its command line is its own) and locked

    def release(self) -> None:
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def __enter__(self) -> "LockHolder":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()
