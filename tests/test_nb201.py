"""NAS-Bench-201 space: size, benchmark strings, super-net/fixed equivalence, model files."""
import random

import pytest
import torch
import torch.nn.functional as F

from depthnas.checkpoint import save_model
from depthnas.config import ModelConfig
from depthnas.landmark_sampler import default_tau, sample_landmarks
from depthnas.models import load_model, model_kwargs, model_metadata, path_parameters
from depthnas.spaces import ArchitectureError, get_space
from toys import assert_paths_equal_fixed_models

SPACE = get_space("nb201")
KW = dict(channels=8, cells_per_stage=1)

# Written by hand in the benchmark's own notation.
BENCH_STRINGS = {
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|":
        (3, 3, 4, 1, 3, 1),
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|":
        (4, 2, 1, 2, 1, 1),
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": (0, 0, 0, 0, 0, 0),
}


def test_size_and_settings():
    assert SPACE.size() == 15625
    assert SPACE.gene_choices() == (5,) * 6
    assert SPACE.task_kind == "classification"
    assert default_tau(SPACE) == 5  # the paper's NAS-Bench-201 setting


@pytest.mark.parametrize("text,genes", BENCH_STRINGS.items())
def test_benchmark_strings_round_trip(text, genes):
    arch = SPACE.from_string(text)
    assert arch.genes == genes
    assert SPACE.to_string(arch) == text
    assert SPACE.from_json(SPACE.to_json(arch)) == arch
    assert SPACE.parse(text) == arch


def test_edge_meaning():
    text = next(iter(BENCH_STRINGS))
    ops = SPACE.edge_ops(SPACE.from_string(text))
    assert ops == {(1, 0): "nor_conv_3x3", (2, 0): "nor_conv_3x3", (2, 1): "avg_pool_3x3",
                   (3, 0): "skip_connect", (3, 1): "nor_conv_3x3", (3, 2): "skip_connect"}


def test_every_architecture_has_a_distinct_string():
    rng = random.Random(0)
    archs = {SPACE.sample(rng) for _ in range(2000)}
    strings = {SPACE.to_string(a) for a in archs}
    assert len(strings) == len(archs)
    assert all(SPACE.from_string(s) in archs for s in strings)


def test_inputs_in_any_order_parse_to_the_canonical_string():
    shuffled = "|nor_conv_3x3~0|+|avg_pool_3x3~1|nor_conv_3x3~0|+|skip_connect~2|skip_connect~0|nor_conv_3x3~1|"
    assert SPACE.to_string(SPACE.from_string(shuffled)) == next(iter(BENCH_STRINGS))


@pytest.mark.parametrize("text,token", [
    ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_3x3~0"),
    ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "none~2"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "none~0"),
    ("|none~0|+|none~0|none1|+|none~0|none~1|none~2|", "none1"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|", "|none~0|none~1|"),
    ("|none~0|+|none~0|none~1|", "2 node group"),
    # a doubled or stray '|' was skipped as if it were not there
    ("|none~0||+|none~0|none~1|+|none~0|none~1|none~2|", "empty edge"),
    ("||none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "empty edge"),
    ("|none~0|+|none~0|none~01|+|none~0|none~1|none~2|", "none~01"),   # int('01') read it
    ("|none~0|+|none~0|none~\u00b2|+|none~0|none~1|none~2|", "not 'op~input'"),  # '²'.isdigit()
])
def test_bad_strings_name_the_offending_token(text, token):
    with pytest.raises(ArchitectureError, match=r"(?s).*" + __import__("re").escape(token)):
        SPACE.from_string(text)


@pytest.mark.parametrize("train", [False, True])
def test_supernet_path_equals_fixed_network(train):
    torch.manual_seed(0)
    supernet = SPACE.build_supernet(**KW)
    supernet.train(train)
    x = torch.randn(4, 3, 32, 32)
    rng = random.Random(1)
    archs = [SPACE.from_string(s) for s in BENCH_STRINGS] + [SPACE.sample(rng) for _ in range(4)]
    assert_paths_equal_fixed_models(SPACE, supernet, archs, x, KW, train)


def test_macro_network_matches_the_benchmark_parameter_counts():
    # NAS-Bench-201 (C=16, N=5, CIFAR-10) ranges from 0.073306 MB (all none) to
    # 1.531546 MB (all nor_conv_3x3) of parameters.
    all_conv = SPACE.make((3,) * 6)
    assert path_parameters(SPACE, all_conv, ModelConfig()) == 1_531_546
    assert path_parameters(SPACE, SPACE.make((0,) * 6), ModelConfig()) == 73_306


def test_network_shape_and_errors():
    net = SPACE.build_supernet(**KW, num_classes=7)
    arch = SPACE.sample(random.Random(0))
    assert net(torch.randn(2, 3, 32, 32), arch).shape == (2, 7)
    with pytest.raises(ValueError, match="needs an architecture"):
        net(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"multiples of 4 .*got \[1, 3, 30, 32\]"):
        net(torch.randn(1, 3, 30, 32), arch)  # a tensor size mismatch deep inside, before
    other = SPACE.mutate(arch, random.Random(0))
    with pytest.raises(ValueError, match="cannot run"):
        SPACE.build_fixed(arch, **KW)(torch.randn(1, 3, 32, 32), other)
    with pytest.raises(ValueError, match="no backbone"):
        SPACE.build_supernet(backbone_weights="x.pth")


def test_landmarks_with_the_paper_tau():
    archs = sample_landmarks(SPACE, 5, tau=5, rng=random.Random(0))
    assert all(SPACE.hamming(a, archs[0]) == 6 for a in archs[1:])


def test_model_kwargs_and_model_file_round_trip(tmp_path):
    cfg = ModelConfig(channels=8, cells_per_stage=1)
    assert model_kwargs(cfg, SPACE) == {"channels": 8, "cells_per_stage": 1, "num_classes": 10}
    arch = SPACE.from_string(next(iter(BENCH_STRINGS)))
    model = SPACE.build_fixed(arch, **model_kwargs(cfg, SPACE)).eval()
    meta = model_metadata(SPACE, arch, cfg, (256, 256), "classification")
    assert meta["image_size"] == [32, 32]
    save_model(tmp_path / "model.safetensors", model, meta)
    loaded, meta2 = load_model(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert meta2["arch"] == SPACE.to_string(arch)


@pytest.mark.parametrize(("arch", "cut_off"), [
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", True),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|", True),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|", True),   # node 2 unreached
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|", False),  # 0 -> 1 -> 3
    ("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|", False),
])
def test_a_cell_with_no_path_from_input_to_output_makes_a_network_that_ignores_its_input(arch, cut_off):
    space = get_space("nb201")
    a = space.parse(arch)
    assert space.ignores_input(a) == cut_off
    model = space.build_fixed(a, channels=4, cells_per_stage=1).eval()
    with torch.no_grad():
        first, second = (model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(s)))
                         for s in (0, 1))
    assert torch.equal(first, second) == cut_off


def test_macro_network_computes_what_the_benchmark_s_does():
    """Parameter counts cannot see the forward pass: the reduction block is
    conv_b(conv_a(x)) + conv1x1(avgpool2x2(x)), and the network ends in BN -> ReLU ->
    global average pool -> linear (NAS-Bench-201's ResNetBasicblock and lastact)."""
    torch.manual_seed(0)
    net = SPACE.build_fixed(SPACE.sample(random.Random(0)), channels=4, cells_per_stage=1).eval()
    with torch.no_grad():
        for m in net.modules():  # non-trivial statistics, so a missing ReLU shows
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
    x = torch.randn(2, 3, 32, 32)
    ops = SPACE.edge_ops(net.arch)
    h = net.stem(x)
    with torch.no_grad():
        for layer in net.cells:
            if hasattr(layer, "conv_a"):  # reduction block
                shortcut = F.conv2d(F.avg_pool2d(h, 2, 2), layer.downsample[-1].weight)
                h = layer.conv_b(layer.conv_a(h)) + shortcut
            else:
                h = layer(h, ops)
        bn = next(m for m in net.lastact if isinstance(m, torch.nn.BatchNorm2d))
        logits = net.classifier(F.relu(bn(h)).mean((2, 3)))
        torch.testing.assert_close(net(x), logits)
