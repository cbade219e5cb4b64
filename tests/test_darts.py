"""DARTS space: encoding and size, Genotype strings, super-net/fixed equivalence."""
import random

import pytest
import torch

from depthnas.cli import main
from depthnas.spaces import ArchitectureError, get_space
from depthnas.spaces.darts import Genotype
from depthnas.spaces.darts.ops import FactorizedReduce, make_darts_op
from toys import assert_paths_equal_fixed_models

SPACE = get_space("darts")
KW = dict(channels=4, layers=3)

# As published in the DARTS repository (cnn/genotypes.py).
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
# The same genotype written canonically (within a node, the lower input first).
DARTS_V2_CANONICAL = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('max_pool_3x3', 1), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])")
DARTS_V1_RANGE = ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
                  "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                  "('skip_connect', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
                  "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
                  "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=range(2, 6))")


def _nodes(edges):
    """Per node, the set of (op, input): what the network computes, order-free."""
    return [frozenset(edges[k:k + 2]) for k in range(0, len(edges), 2)]


def test_encoding_and_size():
    per_node = [(1, 7, 7), (3, 7, 7), (6, 7, 7), (10, 7, 7)]  # C(n, 2) distinct input pairs
    assert SPACE.gene_choices() == tuple(c for node in per_node for c in node) * 2
    assert SPACE.size() == (1 * 3 * 6 * 10 * 7 ** 8) ** 2 == 1_076_746_950_455_072_400


def test_darts_v2_round_trip():
    arch = SPACE.from_string(DARTS_V2)
    assert SPACE.to_string(arch) == DARTS_V2_CANONICAL
    assert SPACE.from_string(DARTS_V2_CANONICAL) == arch
    published = SPACE.genotype(arch)
    theirs = eval_free_genotype(DARTS_V2)
    assert _nodes(published.normal) == _nodes(theirs["normal"])
    assert _nodes(published.reduce) == _nodes(theirs["reduce"])
    assert SPACE.from_json(SPACE.to_json(arch)) == arch


def eval_free_genotype(text):
    import ast
    call = ast.parse(text, mode="eval").body
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg in ("normal", "reduce")}


def test_range_concat_and_positional_fields_parse():
    arch = SPACE.from_string(DARTS_V1_RANGE)
    g = SPACE.genotype(arch)
    assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]
    positional = f"Genotype({g.normal!r}, [2, 3, 4, 5], {g.reduce!r}, [2, 3, 4, 5])"
    assert SPACE.from_string(positional) == arch
    assert isinstance(g, Genotype) and str(g) == SPACE.to_string(arch)


def test_random_genotypes_round_trip():
    rng = random.Random(0)
    for _ in range(300):
        a = SPACE.sample(rng)
        for b in (a, SPACE.mutate(a, rng), SPACE.mutate(a, rng, prob=0.3),
                  SPACE.crossover(a, SPACE.sample(rng), rng)):
            assert SPACE.from_string(SPACE.to_string(b)) == b


def test_mutation_never_touches_the_single_choice_gene():
    rng = random.Random(0)
    a = SPACE.sample(rng)
    for _ in range(200):
        b = SPACE.mutate(a, rng)
        assert SPACE.hamming(a, b) == 1
        assert b.genes[0] == 0 and b.genes[12] == 0  # node 2 can only take inputs (0, 1)


@pytest.mark.parametrize("text,message", [
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('none', 2)"), "'none' is never part"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('skip_connect', 0)", 1), "takes input 0 twice"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "input 5 is out of range"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "concat is not searched"),
    # [2.0, ...] == [2, ...] in Python, but a float names no node
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2.0, 3, 4, 5]"), "concat is not searched"),
    # refused as the range it is: listed, range(10**12) filled the memory (MemoryError)
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(10**12)"), "not a literal"),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(1000000000000)"),
     "concat is not searched"),
    (DARTS_V2.replace("('max_pool_3x3', 1)], reduce_concat", "], reduce_concat"), "must list 8"),
    ("Genotype(normal=__import__('os').system('false'), normal_concat=[2], reduce=[], reduce_concat=[2])",
     "not a literal"),
    ("__import__('os').system('false')", "expected 'Genotype("),
    ("Genotype(normal=[", "not a Genotype"),
])
def test_bad_genotypes_are_refused_without_evaluating(text, message):
    with pytest.raises(ArchitectureError, match=__import__("re").escape(message)):
        SPACE.from_string(text)


@pytest.mark.parametrize("train", [False, True])
def test_supernet_path_equals_fixed_network(train):
    torch.manual_seed(0)
    supernet = SPACE.build_supernet(**KW).train(train)
    x = torch.randn(2, 3, 32, 32)
    rng = random.Random(2)
    archs = [SPACE.from_string(DARTS_V2)] + [SPACE.sample(rng) for _ in range(2)]
    assert_paths_equal_fixed_models(SPACE, supernet, archs, x, KW, train)


def test_network_layout_and_published_parameter_count():
    net = SPACE.build_fixed(SPACE.from_string(DARTS_V2), **KW)
    assert [c.reduction for c in net.cells] == [False, True, True]
    assert SPACE.build_fixed(SPACE.from_string(DARTS_V2)).reduction_at == (1, 3)  # default 5 layers
    # DARTS V2 at its CIFAR-10 evaluation size (C=36, 20 cells, no auxiliary head):
    # "param size = 3.349342MB" in the DARTS logs.
    with torch.device("meta"):
        big = SPACE.build_fixed(SPACE.from_string(DARTS_V2), channels=36, layers=20)
    assert sum(p.numel() for p in big.parameters()) == 3_349_342


def test_spaces_command_prints_the_sizes(capsys):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "1,076,746,950,455,072,400" in out and "15,625" in out


def test_run_folder_names_fit_the_file_system():
    from depthnas.standalone import arch_slug
    rng = random.Random(0)
    slugs = {arch_slug(SPACE.to_string(SPACE.sample(rng))) for _ in range(200)}
    assert len(slugs) == 200 and max(map(len, slugs)) <= 200
    nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert arch_slug(nb201) == ("nor_conv_3x3_0_nor_conv_3x3_0_avg_pool_3x3_1_"
                                "skip_connect_0_nor_conv_3x3_1_skip_connect_2")  # unchanged by the cap


def test_a_json_genotype_with_another_concat_is_refused_as_its_string_is():
    arch = SPACE.sample(random.Random(0))
    data = SPACE.to_json(arch)
    del data["string"]
    assert SPACE.parse({**data, "normal_concat": [2, 3, 4, 5]}) == arch
    with pytest.raises(ArchitectureError, match=r"normal_concat = \[4, 5\]; this space always"):
        SPACE.parse({**data, "normal_concat": [4, 5]})


def test_darts_ops_compute_what_the_darts_paper_s_do():
    """DARTS' operations.py: avg_pool_3x3 leaves its padding out of the mean, the
    dilated convs have dilation 2 (3x3: padding 2, 5x5: padding 4), and
    FactorizedReduce's second conv sees the input shifted by one pixel. Parameter
    counts and super-net/fixed equivalence see none of these."""
    ones = torch.ones(1, 4, 6, 6)
    torch.testing.assert_close(make_darts_op("avg_pool_3x3", 4, 1)(ones), ones)
    torch.testing.assert_close(make_darts_op("avg_pool_3x3", 4, 2)(ones), torch.ones(1, 4, 3, 3))
    for name, k, pad in (("dil_conv_3x3", 3, 2), ("dil_conv_5x5", 5, 4)):
        for stride in (1, 2):
            depthwise = make_darts_op(name, 4, stride)[1]
            assert depthwise.kernel_size == (k, k) and depthwise.dilation == (2, 2)
            assert depthwise.padding == (pad, pad) and depthwise.stride == (stride, stride)
    torch.manual_seed(0)
    fr = FactorizedReduce(4, 6).eval()
    x = torch.randn(2, 4, 8, 10)
    r = torch.relu(x)
    with torch.no_grad():
        expected = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
        torch.testing.assert_close(fr(x), expected)


@pytest.mark.parametrize("channels, layers", [(5, 3), (3, 5), (7, 8)])
def test_odd_channels_build_and_run(channels, layers):
    """Odd model.channels were refused after --print-config passed them; the factorized
    reductions that halve channels run at 2x and 4x the base width, always even."""
    import random
    x = torch.rand(2, 3, 16, 16)
    supernet = SPACE.build_supernet(channels=channels, layers=layers, num_classes=10)
    arch = SPACE.parse(DARTS_V2)  # skip_connect in the reduction cell: a factorized reduce
    assert supernet(x, arch).shape == (2, 10)
    fixed = SPACE.build_fixed(SPACE.sample(random.Random(0)), channels=channels, layers=layers,
                              num_classes=10)
    assert fixed(x).shape == (2, 10)
