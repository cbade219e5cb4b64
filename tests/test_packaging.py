"""The wheel holds every package: an editable install finds missing subpackages in the
source tree, so only a check of the package list catches them before users do."""
from pathlib import Path

import pytest

try:  # Python 3.11+; 3.10 (which depthnas supports) has the tomli package, if any
    import tomllib
except ModuleNotFoundError:
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed_under_depthnas():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(cfg["packages"]), cfg["package-dir"]
    found = set()
    for package, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}"
    # never top-level packages named like common libraries (datasets, app)
    assert all(p == "depthnas" or p.startswith("depthnas.") for p in listed)


def test_the_cli_and_the_report_import_without_side_effects():
    """`depthnas --help` answers without importing torch (seconds on a cold start), and
    importing the report module leaves a program's matplotlib backend as it was (it set
    Agg for the whole process)."""
    import subprocess
    import sys
    code = ("import sys, matplotlib; matplotlib.use('svg'); import depthnas.cli; "
            "assert 'torch' not in sys.modules, 'depthnas.cli imported torch'; "
            "import depthnas.report; assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
