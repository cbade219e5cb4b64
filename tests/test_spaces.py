"""The depth search space, as the paper defines it (section 5.3, Table 4)."""
import json
import random
import re

import pytest

from depthnas.spaces import Arch, ArchitectureError, get_space, list_spaces
from depthnas.spaces.depth import EDGES, is_dead_cell
from depthnas.spaces.depth.space import BlockChoice


@pytest.mark.parametrize("name, size", [
    ("v1-sync", 3_125),                       # 5^5
    ("v1-nonsync", 95_367_431_640_625),       # 3,125^4 = 9.5e13
    ("v2-sync", 12_500),                      # 5^5 * 4
    ("v2-nonsync", 24_414_062_500_000_000),   # 12,500^4 = 2.4e16
])
def test_space_sizes_match_the_paper(name, size):
    assert get_space(name).size() == size


def test_paper_rounded_sizes():
    assert f"{get_space('v1-nonsync').size():.1e}" == "9.5e+13"
    assert f"{get_space('v2-nonsync').size():.1e}" == "2.4e+16"


def test_five_edges_per_block():
    assert EDGES == ("2<-0", "2<-1", "3<-0", "3<-1", "3<-2")


@pytest.mark.parametrize("name", ["v1-sync", "v1-nonsync", "v2-sync", "v2-nonsync"])
def test_string_and_json_round_trip(name):
    space = get_space(name)
    rng = random.Random(0)
    for _ in range(50):
        a = space.sample(rng)
        assert space.from_string(space.to_string(a)) == a
        assert space.from_json(json.loads(json.dumps(space.to_json(a)))) == a
        assert space.parse(space.to_string(a)) == a


@pytest.mark.parametrize("name", list_spaces())
def test_json_without_its_space_is_read_as_the_chosen_space_s_and_another_s_is_refused(name):
    """{"edges": {...}} given with --space nb201 was refused as "for space None": a JSON
    with the string alone was read, the spelled-out form not."""
    space = get_space(name)
    arch = space.sample(random.Random(1))
    spelled = {k: v for k, v in space.to_json(arch).items() if k not in ("space", "string")}
    assert space.parse(spelled) == arch and space.from_json(spelled) == arch
    other = next(n for n in list_spaces() if n != name)
    with pytest.raises(ArchitectureError, match=f"architecture JSON is for space '{other}', not '{name}'"):
        space.parse({**spelled, "space": other})


def test_string_form_is_readable():
    space = get_space("v2-sync")
    a = space.from_string("v2-sync:c3,skip,none,c1,ap+ps")
    block = space.blocks(a)[0]
    assert block.edges == ("nor_conv_3x3", "skip_connect", "none", "nor_conv_1x1", "avg_pool_3x3")
    assert block.upsample == "pixel_shuffle"
    # long names are accepted too
    assert space.from_string("v2-sync:nor_conv_3x3,skip_connect,none,nor_conv_1x1,"
                             "avg_pool_3x3+pixel_shuffle") == a


def test_sync_ties_all_four_blocks():
    space = get_space("v1-sync")
    a = space.sample(random.Random(3))
    blocks = space.blocks(a)
    assert len(blocks) == 4 and all(b == blocks[0] for b in blocks)
    data = space.to_json(a)
    data["blocks"][2]["3<-2"] = "none" if data["blocks"][2]["3<-2"] != "none" else "skip_connect"
    with pytest.raises(ArchitectureError, match="block 2 differs"):
        space.from_json(data)


@pytest.mark.parametrize("space, text, fragment", [
    ("v1-sync", "v1-sync:c3,skip,none,c1,conv7", "edge 3<-2: unknown edge op 'conv7'"),
    ("v1-sync", "v1-sync:c3,skip,none,c1", "expected 5 edge ops"),
    ("v1-sync", "v1-sync:c3,skip,none,c1,ap+bil", "V1 fixes bilinear"),
    ("v1-sync", "v1-sync:c3,skip,none,c1,ap/c3,skip,none,c1,ap", "expected 1 block"),
    ("v1-sync", "v2-sync:c3,skip,none,c1,ap+bil", "space 'v2-sync', not 'v1-sync'"),
    ("v1-sync", "c3,skip,none,c1,ap", "lacks the space prefix"),
    ("v2-sync", "v2-sync:c3,skip,none,c1,ap", "missing '\\+<upsample>'"),
    ("v2-sync", "v2-sync:c3,skip,none,c1,ap+nearest", "unknown upsample op 'nearest'"),
])
def test_bad_strings_name_the_offending_part(space, text, fragment):
    with pytest.raises(ArchitectureError, match=fragment):
        get_space(space).from_string(text)


def test_nonsync_needs_four_blocks():
    with pytest.raises(ArchitectureError, match="expected 4 block"):
        get_space("v1-nonsync").from_string("v1-nonsync:c3,skip,none,c1,ap")


def test_wrong_edge_set_in_json():
    space = get_space("v1-sync")
    data = space.to_json(space.sample(random.Random(0)))
    for block in data["blocks"]:
        block["2<-3"] = block.pop("3<-2")
    with pytest.raises(ArchitectureError, match=r"wrong edge set \(missing \['3<-2'\], unexpected \['2<-3'\]\)"):
        space.from_json(data)


def test_architecture_from_another_space_is_rejected():
    a = get_space("v2-sync").sample(random.Random(0))
    with pytest.raises(ArchitectureError, match="belongs to space 'v2-sync'"):
        get_space("v1-sync").to_string(a)
    with pytest.raises(ArchitectureError, match="gene 0 = 7"):
        get_space("v1-sync").make([7, 0, 0, 0, 0])


def test_unknown_space():
    with pytest.raises(ValueError, match="unknown search space 'v3-sync'"):
        get_space("v3-sync")
    assert {"v1-sync", "v1-nonsync", "v2-sync", "v2-nonsync"} <= set(list_spaces())


def test_edge_ops_compute_what_nas_bench_201_s_do():
    """nor_conv = ReLU -> Conv(no bias, stride 1) -> BN, and the 3x3 average pool leaves
    its zero padding out of the mean; a parameter count cannot see either."""
    import torch
    from depthnas.spaces.ops import make_edge_op
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    for name, k in (("nor_conv_1x1", 1), ("nor_conv_3x3", 3)):
        relu, conv, bn = op = make_edge_op(name, 4).eval()
        assert conv.kernel_size == (k, k) and conv.stride == (1, 1) and conv.bias is None
        torch.nn.init.normal_(bn.running_mean)  # so the order of the three shows
        torch.testing.assert_close(op(x), bn(conv(torch.relu(x))))
    ones = torch.ones(1, 4, 5, 5)
    torch.testing.assert_close(make_edge_op("avg_pool_3x3", 4)(ones), ones)  # corners 1, not 4/9
    torch.testing.assert_close(make_edge_op("skip_connect", 4)(x), x)
    assert not make_edge_op("none", 4)(x).any()


def test_uniform_sampling_covers_every_op():
    space = get_space("v1-sync")
    rng = random.Random(1)
    counts = [0] * 5
    for _ in range(5000):
        counts[space.sample(rng).genes[0]] += 1
    assert all(900 < c < 1100 for c in counts), counts


def test_single_element_mutation_and_hamming():
    space = get_space("v2-nonsync")
    rng = random.Random(2)
    a = space.sample(rng)
    for _ in range(100):
        b = space.mutate(a, rng)
        assert space.hamming(a, b) == 1
    c = space.mutate(a, rng, prob=0.5)
    assert space.hamming(a, c) >= 1


def test_evolution_mutation_resamples_genes_as_spos_does():
    """SPOS resamples each gene with probability p from all its values, its own
    included: at p = 1 a gene with n values changes with probability 1 - 1/n."""
    space = get_space("v1-nonsync")
    rng = random.Random(5)
    expected = sum(1 - 1 / n for n in space.gene_choices() if n > 1)
    parents = [space.sample(rng) for _ in range(2000)]
    mean = sum(space.hamming(a, space.mutate(a, rng, prob=1.0)) for a in parents) / len(parents)
    assert abs(mean - expected) < 0.3, (mean, expected)
    assert all(space.mutate(a, rng, prob=0.0) != a for a in parents[:100])  # never the parent
    assert all(space.mutate(a, rng, prob=0.02) != a for a in parents)  # drawn again till it differs
    # A mutant equal to its parent is drawn again, not forced to one change: at p = 0.1
    # (v1-sync: 5 genes of 5 values, q = 0.08 per gene) two-gene mutants are
    # C(5,2)/C(5,1) * q/(1-q) = 0.174 as many as one-gene ones (forcing gave 0.05).
    small = get_space("v1-sync")
    parent = small.sample(rng)
    dist = [small.hamming(parent, small.mutate(parent, rng, prob=0.1)) for _ in range(20000)]
    assert 0.15 < dist.count(2) / dist.count(1) < 0.20, (dist.count(1), dist.count(2))


def test_crossover_takes_every_gene_from_a_parent():
    space = get_space("v2-nonsync")
    rng = random.Random(4)
    a, b = space.sample(rng), space.sample(rng)
    child = space.crossover(a, b, rng)
    assert all(g in (x, y) for g, x, y in zip(child.genes, a.genes, b.genes))
    # uniform: where the parents differ, each gene comes from either parent with
    # probability 1/2, independently (not one cut point, not a whole parent at a time)
    differ = [i for i, (x, y) in enumerate(zip(a.genes, b.genes)) if x != y]
    assert len(differ) >= 10
    children = [space.crossover(a, b, rng) for _ in range(2000)]
    for i in differ:
        assert abs(sum(c.genes[i] == a.genes[i] for c in children) / 2000 - 0.5) < 0.05, i
    first, last = differ[0], differ[-1]  # independent: the two ends agree half the time
    same = sum((c.genes[first] == a.genes[first]) == (c.genes[last] == a.genes[last]) for c in children)
    assert abs(same / 2000 - 0.5) < 0.05


def test_dead_cells_stay_in_the_space_and_are_detected():
    dead = BlockChoice(("skip_connect", "skip_connect", "none", "none", "none"), "bilinear")
    alive = BlockChoice(("none", "none", "none", "skip_connect", "none"), "bilinear")
    assert is_dead_cell(dead) and not is_dead_cell(alive)
    space = get_space("v1-sync")
    assert space.has_dead_cell(space.from_string("v1-sync:none,none,none,none,none"))
    assert not space.has_dead_cell(space.from_string("v1-sync:none,c1,none,none,skip"))
    assert isinstance(space.from_string("v1-sync:none,none,none,none,none"), Arch)


@pytest.mark.parametrize("space,given,fragment", [
    ("darts", "Genotype(normal=[], normal_concat=5, reduce=[], reduce_concat=[2])", "normal_concat = 5; this space always"),
    ("darts", "Genotype(normal={[]: 1}, normal_concat=[2], reduce=[], reduce_concat=[2])", "not a literal"),
    ("v1-sync", '{"space": "v1-sync", "blocks": [1, 2, 3, 4]}', "block 0: expected an object"),
    ("v1-sync", ["x"], "not list"),
    ("v1-sync", "{bad json", "not valid JSON"),
])
def test_malformed_input_raises_architecture_error(space, given, fragment):
    with pytest.raises(ArchitectureError, match=fragment):
        get_space(space).parse(given)


def test_json_forms_the_readme_promises():
    v1 = get_space("v1-sync")
    arch = v1.from_string("v1-sync:c3,skip,none,c1,ap")
    assert v1.parse({"space": "v1-sync", "string": "v1-sync:c3,skip,none,c1,ap"}) == arch
    one_block = {"space": "v1-sync", "blocks": [dict(zip(EDGES, ("c3", "skip", "none", "c1", "ap")))]}
    assert v1.parse(one_block) == arch  # a sync space: one block says it all
    nb = get_space("nb201")
    spaced = "| nor_conv_3x3 ~ 0 |+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert nb.to_string(nb.parse(spaced)) == spaced.replace(" ", "")


def test_train_finds_the_space_of_an_unprefixed_architecture():
    from depthnas.arch_arg import space_of
    darts = get_space("darts")
    genotype = darts.to_string(darts.sample(random.Random(0)))
    nb = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert space_of(nb, None, "v1-sync") == "nb201"
    assert space_of(genotype, None, "v1-sync") == "darts"
    assert space_of("v2-sync:c3,skip,none,c1,ap+ps", None, "v1-sync") == "v2-sync"
    assert space_of(nb, "nb201", "v1-sync") == "nb201"
    # spelled out, naming no space: the one space that reads it (it was read as the
    # preset's, and said to lack a 'blocks' list)
    for name in ("nb201", "darts"):  # (a depth one is read by the sync and non-sync spaces alike)
        space = get_space(name)
        spelled = {k: v for k, v in space.to_json(space.sample(random.Random(2))).items()
                   if k not in ("space", "string")}
        assert space_of(json.dumps(spelled), None, "v1-sync") == name


def test_an_architecture_of_another_space_is_named_as_such():
    """A valid NB201 string under --space v1-sync, one missing its leading '|', or a
    genotype(...) in lower case were all told they lacked a depth prefix like
    'v1-sync:c3,...'; "nb201:|...|" was a broken node group."""
    from depthnas.arch_arg import space_of
    nb = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    with pytest.raises(ArchitectureError, match="is one of space nb201, not of --space v1-sync"):
        space_of(nb, "v1-sync", "v1-sync")
    with pytest.raises(ArchitectureError, match="is one of space v1-sync, not of --space nb201"):
        space_of("v1-sync:c3,skip,none,c1,ap", "nb201", "v1-sync")
    # a long one is cut visibly, not into what reads as a whole string an edge short
    with pytest.raises(ArchitectureError, match=re.escape(f"architecture {nb[:77] + '...'!r} is one "
                                                          "of space nb201, not of --space darts")):
        space_of(nb, "darts", "darts")
    assert space_of(nb[1:], None, "v1-sync") == "nb201"  # its own parser says what is wrong
    with pytest.raises(ArchitectureError, match="must start and end with '|'"):
        get_space("nb201").parse(nb[1:])
    assert space_of("genotype(normal=[])", None, "v1-sync") == "darts"
    assert space_of(f"nb201:{nb}", None, "v1-sync") == "nb201"
    assert get_space("nb201").parse(f"nb201:{nb}") == get_space("nb201").parse(nb)
    # a depth string keeps its prefix: a broken one is not read without it
    with pytest.raises(ArchitectureError, match="unknown edge op 'c9'"):
        get_space("v1-sync").parse("v1-sync:c9,skip,none,c1,ap")


def test_arch_files_a_run_writes_are_read_or_pointed_to_best_arch_json(tmp_path):
    """A training's result.json names its architecture; a search's results.json and
    search_N.json and a landmark store hold many. All were "needs a 'blocks' list"."""
    from depthnas.arch_arg import read_arch_arg, space_of
    arch = "v2-sync:c3,skip,none,c1,ap+ps"
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"arch": arch, "space": "v2-sync", "val_loss": 0.2}))
    assert read_arch_arg(str(result)) == (arch, str(result))
    for name, data, says in (
            ("results.json", {"best": {"string": arch}, "architectures": []}, "its best is in"),
            ("search_1.json", {"space": "v2-sync", "scores": []}, "its best is in"),
            ("landmarks.json", {"version": 1, "entries": [{"arch": arch}]},
             "a landmark store of 1 architectures")):
        (tmp_path / name).write_text(json.dumps(data))
        with pytest.raises(ArchitectureError, match=says):
            read_arch_arg(str(tmp_path / name))
    # the string names its space: not parsed as the preset's
    assert space_of(json.dumps({"string": arch}), None, "v1-sync") == "v2-sync"


@pytest.mark.parametrize("name", ["v1-sync", "v2-nonsync", "nb201", "darts"])
def test_a_json_whose_string_disagrees_with_its_structure_is_refused(name):
    """best_arch.json holds the one-line string beside the structured form. A user
    who edits one of them must not get the other one silently."""
    space = get_space(name)
    a, b = space.sample(random.Random(1)), space.sample(random.Random(2))
    assert a != b
    data = space.to_json(a)
    assert space.parse(data) == a
    assert space.parse({**data, "string": space.to_string(a)}) == a
    edited = {**data, "string": space.to_string(b)}
    with pytest.raises(ArchitectureError, match="'string' .* disagrees with the rest of it"):
        space.parse(edited)
    with pytest.raises(ArchitectureError, match="disagrees"):
        space.parse(json.dumps(edited))
    # what the message asks for: with the structured part deleted, the string is read
    structured = {"blocks", "edges", "normal", "reduce"}
    kept = {k: v for k, v in edited.items() if k not in structured}
    assert space.parse({**kept, "val_loss": 0.12}) == b


def test_mutation_crossover_and_distance_refuse_another_spaces_architecture():
    """v2-sync and nb201 both have 6 genes: v2-sync's mutate relabelled an nb201
    architecture as its own, with a gene out of its range."""
    v2, nb = get_space("v2-sync"), get_space("nb201")
    a, b = nb.sample(random.Random(0)), v2.sample(random.Random(0))
    with pytest.raises(ArchitectureError, match="belongs to space 'nb201'"):
        v2.mutate(a, random.Random(0))
    with pytest.raises(ArchitectureError, match="belongs to space 'nb201'"):
        v2.crossover(b, a, random.Random(0))
    with pytest.raises(ArchitectureError, match="one space, got 'nb201' and 'v2-sync'"):
        v2.hamming(a, b)


@pytest.mark.parametrize("name", ["v1-sync", "v2-nonsync", "nb201", "darts"])
def test_strings_name_space_says_whether_a_spaces_strings_carry_its_name(name):
    space = get_space(name)
    text = space.to_string(space.sample(random.Random(0)))
    assert text.startswith(f"{name}:") == space.strings_name_space
    assert space.parse(f"{name}:{text}" if not space.strings_name_space else text) == space.from_string(text)


@pytest.mark.parametrize("name", ["v1-sync", "v2-nonsync", "nb201", "darts"])
def test_genes_outside_the_space_are_refused_at_the_boundary(name):
    """make/check are the guard every Arch from a file passes: a gene equal to its
    number of choices, or a gene list one short or one long, is not an architecture
    of the space (it failed later as an IndexError/KeyError, or was read in part)."""
    space = get_space(name)
    choices = space.gene_choices()
    genes = list(space.sample(random.Random(0)).genes)
    too_big = genes.copy()
    too_big[-1] = choices[-1]
    with pytest.raises(ArchitectureError, match=rf"gene {len(genes) - 1} = {choices[-1]} is outside"):
        space.make(too_big)
    with pytest.raises(ArchitectureError, match=rf"gene {len(genes) - 1} = {choices[-1]} is outside"):
        space.check(Arch(name, tuple(too_big)))
    for wrong in (genes[:-1], genes + [0]):
        with pytest.raises(ArchitectureError, match=rf"expected {len(choices)} genes, got {len(wrong)}"):
            space.make(wrong)
        with pytest.raises(ArchitectureError, match="expected"):
            space.to_string(Arch(name, tuple(wrong)))


def test_sync_ties_the_upsampling_of_all_four_blocks_too():
    """V2-sync shares the upsampling choice as well: a JSON whose block 2 upsamples
    otherwise is refused, not read as block 0's choice."""
    space = get_space("v2-sync")
    arch = space.from_string("v2-sync:c3,skip,none,c1,ap+ps")
    data = space.to_json(arch)
    del data["string"]
    assert space.from_json(data) == arch
    data["blocks"][2]["upsample"] = "bicubic"
    with pytest.raises(ArchitectureError, match="block 2 differs"):
        space.from_json(data)


@pytest.mark.parametrize("space, text", [
    ("v1-sync", "v1-sync:c3,skip,none,c1,ap,c3"),
    ("v2-sync", "v2-sync:c3,skip,none,c1,ap,c3+bil"),
    ("v1-nonsync", "v1-nonsync:c3,skip,none,c1,ap/c3,skip,none,c1,ap/c3,skip,none,c1,ap,skip/"
                   "c3,skip,none,c1,ap"),
])
def test_an_extra_edge_op_is_refused_not_dropped(space, text):
    with pytest.raises(ArchitectureError, match="expected 5 edge ops .*got 6"):
        get_space(space).from_string(text)


def test_genes_that_are_not_whole_numbers_are_refused_not_truncated():
    """make([1.5, ...]) built the architecture of genes (1, ...): another one."""
    space = get_space("v1-sync")
    for genes in ([1.5, 2, 0, 0, 0], ["1", 2, 0, 0, 0], [True, 2, 0, 0, 0]):
        with pytest.raises(ArchitectureError, match="genes must be whole numbers"):
            space.make(genes)
    import numpy as np
    assert space.make(np.array([1, 2, 0, 0, 0])) == space.make([1, 2, 0, 0, 0])


@pytest.mark.parametrize("other", ["darts", "v1-sync"])
def test_json_with_only_a_string_of_another_space_is_refused(other):
    """An NB-201 string carries no space prefix: {"space": "darts", "string": "|...|"}
    (a best_arch.json edited by hand, or another run's) is refused by its space name,
    the only thing that says which space it is for, not read as an nb201 cell."""
    from depthnas.spaces import ArchitectureError, get_space
    nb201 = get_space("nb201")
    cell = "|skip_connect~0|+|avg_pool_3x3~0|none~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    assert nb201.parse({"space": "nb201", "string": cell}) == nb201.from_string(cell)
    assert nb201.parse({"string": cell}) == nb201.from_string(cell)
    with pytest.raises(ArchitectureError, match=f"architecture JSON is for space '{other}', not 'nb201'"):
        nb201.parse({"space": other, "string": cell})


def test_the_space_api_names_what_it_got_in_place_of_an_architecture_or_a_generator():
    """A string where an architecture belongs, a seed where a random.Random does, a
    list as JSON: each failed as an AttributeError deep inside ('str' object has no
    attribute 'space'); a probability of 1.5 and a task kind of a typo passed."""
    space = get_space("v1-sync")
    arch = space.sample(random.Random(0))
    with pytest.raises(ArchitectureError, match="expected an architecture of space v1-sync, got str "
                                                "'v1-sync:c3,c3,c3,c3,c3' \\(space.parse reads one"):
        space.check("v1-sync:c3,c3,c3,c3,c3")
    with pytest.raises(ArchitectureError, match="got str"):
        space.crossover(arch, "v1-sync:c3,c3,c3,c3,c3", random.Random(0))
    with pytest.raises(TypeError, match="rng must be a random.Random .*got Generator"):
        space.sample(__import__("numpy").random.default_rng(0))  # a NumPy generator's draws differ
    for draw in (lambda: space.sample(0), lambda: space.mutate(arch, 0),
                 lambda: space.crossover(arch, arch, 0)):
        with pytest.raises(TypeError, match=r"rng must be a random.Random \(e.g. random.Random\(0\)\), got int 0"):
            draw()
    with pytest.raises(ArchitectureError, match="v1-sync: architecture JSON is an object, got list"):
        space.from_json([1, 2])
    for prob in (1.5, -0.1):
        with pytest.raises(ValueError, match=f"mutate: prob={prob} is no probability"):
            space.mutate(arch, random.Random(0), prob=prob)
    assert space.mutate(arch, random.Random(0), prob=1.0) != arch
    with pytest.raises(ValueError, match="unknown task kind 'detph'; available: classification, depth"):
        list_spaces("detph")
    assert list_spaces("classification") == ["nb201", "darts"]
