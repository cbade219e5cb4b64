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
