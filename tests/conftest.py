"""Test-wide environment: no hub calls, no update checks, no analytics, no litter."""
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")
# The tests run depthnas as one process: launched under torchrun (or in a CI job that
# sets these), every in-process search would take itself for one rank of several.
for _name in [*("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                "MASTER_ADDR", "MASTER_PORT"), *(v for v in os.environ if v.startswith("TORCHELASTIC_"))]:
    os.environ.pop(_name, None)

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread: the models under test are tiny, and OpenMP threads that
# spin-wait for a busy second core made a training step 50x slower (3 s vs 40 ms)
# whenever anything else ran on the 2-core machines this suite targets.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_pytest_s_folder(tmp_path_factory):
    """What the code under test puts in the system's temporary folder (the demo's and
    Gradio's files, torchrun's error notes, gradio_client's copies) goes in a folder of
    pytest's, in this process and in the ones it starts: each run left some in /tmp."""
    folder = str(tmp_path_factory.mktemp("tmp"))
    before, os.environ["TMPDIR"], tempfile.tempdir = os.environ.get("TMPDIR"), folder, folder
    yield
    tempfile.tempdir = None
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before


# ---- the command-line tests' search run (test_search.py, test_resume.py, test_rank.py ...)
@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A tiny search's run folder, searched once per session and only read after: a test
    that writes in a run takes `run_copy`."""
    from cli_helpers import TINY
    from depthnas.cli import main
    out = tmp_path_factory.mktemp("search") / "run"
    assert main(["search", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(run_dir, tmp_path):
    """A copy of the search run for a test that resumes it: the run stays as its search
    left it, whichever tests ran before."""
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy
