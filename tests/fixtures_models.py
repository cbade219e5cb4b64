"""Session fixtures for the export / predict / demo tests: a small model, its ONNX
export, photos, and one running demo server.

Loaded as a plugin (`pytest_plugins = ["fixtures_models"]` in the test modules) so
that each session fixture is built once for the whole run; importing the fixture
functions into several modules would build them once per module instead.

The model has random weights: these tests check plumbing (shapes, files, parity,
the app), not depth quality, so no training is needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

# A v2 non-sync architecture whose four blocks use all four upsampling ops,
# including bilinear and bicubic with align_corners=True, which must export.
ARCH = ("v2-nonsync:c3,skip,none,c1,ap+bic/c1,c3,skip,none,c3+bil/"
        "skip,c1,c3,ap,skip+tconv/c3,c3,c1,skip,none+ps")
BACKBONE = "mobilenetv3_small_050"
FEATURES = 32
IMAGE_SIZE = (64, 64)


def make_model_file(path: Path, seed: int = 0, arch: str = ARCH, *, dead_head: bool = False) -> Path:
    """A stand-alone model file as `depthnas search`/`train` write it. `dead_head`: its
    final ReLU never fires, so it outputs 0 everywhere, as a model that learned nothing
    can for photos unlike its training images."""
    from depthnas.checkpoint import save_model
    from depthnas.config import ModelConfig
    from depthnas.models import model_metadata
    from depthnas.spaces import get_space
    torch.manual_seed(seed)
    space = get_space(arch.split(":", 1)[0])
    parsed = space.parse(arch)
    cfg = ModelConfig(backbone=BACKBONE, features=FEATURES)
    model = space.build_fixed(parsed, backbone=BACKBONE, features=FEATURES)
    with torch.no_grad():  # non-trivial BN statistics, so normalisation errors would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        if dead_head:
            [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1].bias.fill_(-1e4)
    save_model(path, model, model_metadata(space, parsed, cfg, IMAGE_SIZE))
    return path


def make_classification_model_file(path: Path) -> Path:
    """An NB201 model file as a classification search writes it."""
    import random
    from depthnas.checkpoint import save_model
    from depthnas.config import ModelConfig
    from depthnas.models import model_metadata
    from depthnas.spaces import get_space
    space = get_space("nb201")
    arch = space.sample(random.Random(0))
    meta = model_metadata(space, arch, ModelConfig(cells_per_stage=1, channels=4), (32, 32),
                          task="classification")
    return save_model(path, space.build_fixed(arch, **meta["model"]), meta)


@pytest.fixture(scope="session")
def arch() -> str:
    return ARCH


@pytest.fixture(scope="session")
def make_model():
    """make_model(path, seed=0) -> path: another model file of the same architecture."""
    return make_model_file


@pytest.fixture(scope="session")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding best/model.safetensors, as a search leaves its best model
    (not a search: conftest's `run_dir` is one)."""
    run = tmp_path_factory.mktemp("run")
    make_model_file(run / "best" / "model.safetensors")
    return run


@pytest.fixture(scope="session")
def model_file(model_run: Path) -> Path:
    return model_run / "best" / "model.safetensors"


@pytest.fixture(scope="session")
def onnx_file(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depthnas.export.onnx_export import export_onnx
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    # The legacy exporter: ~1 s instead of ~40 s; the dynamo path has its own test.
    return export_onnx(model_file, out, exporter="legacy").path


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of photos of odd sizes and modes, one corrupt file and one non-image."""
    from skimage import data
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.coffee()[::3, ::3]).save(folder / "coffee.jpg", quality=90)   # 134x200
    astro = data.astronaut()[::4, ::4]
    rgba = np.dstack([astro[:100, :77], np.full((100, 77), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "astro.png")                              # 100x77
    grey16 = (np.linspace(0, 65535, 50 * 90).reshape(50, 90)).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "ramp16.png")                                    # 50x90
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (folder / "README.txt").write_text("not an image; ignored by predict\n")
    return folder


class DemoServer:
    def __init__(self, url: str, demo, blocks, examples_dir: Path):
        self.url, self.demo, self.blocks, self.examples_dir = url, demo, blocks, examples_dir


@pytest.fixture(scope="session")
def demo_server(onnx_file: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[DemoServer]:
    """The demo app on 127.0.0.1 and a free port, in this process."""
    from depthnas.app.demo import DepthDemo, launch
    from depthnas.export.inference import load_estimator
    examples = tmp_path_factory.mktemp("examples")
    demo = DepthDemo(load_estimator(onnx_file), examples_dir=examples, latency_runs=2)
    # port None: gradio binds the first free port from 7860 itself, so no other process
    # can take a probed port before the server binds it
    blocks = launch(demo, "127.0.0.1", None, block=False)
    try:
        yield DemoServer(f"http://127.0.0.1:{blocks.server_port}/", demo, blocks, examples)
    finally:
        blocks.close()
        demo.close()
