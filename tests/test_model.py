"""The MiDaS-style model: one path per forward, fixed models share weights by name."""
import itertools
import random

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from depthnas.bn_calibration import batchnorms, recalibrate
from depthnas.spaces import get_space
from depthnas.spaces.base import inherit_weights
from depthnas.spaces.depth import create_backbone
from depthnas.spaces.depth import BlockChoice, is_dead_cell
from depthnas.spaces.depth.space import running_blocks
from depthnas.spaces.depth.model import FusionCell, make_upsample
from depthnas.spaces.ops import EDGE_OPS

KW = dict(backbone="resnet18", features=16)


@pytest.mark.parametrize("name, text", [
    ("v1-sync", "v1-sync:c3,skip,ap,c1,c3"),
    ("v2-sync", "v2-sync:c3,c1,skip,ap,c3+ps"),
    ("v2-nonsync", "v2-nonsync:c3,c1,skip,ap,c3+ps/c1,none,c3,skip,ap+tconv/"
                   "skip,c3,none,c1,c1+bic/none,none,none,none,none+bil"),
])
def test_fixed_model_with_supernet_weights_gives_the_same_output(name, text):
    torch.manual_seed(0)
    space = get_space(name)
    arch = space.from_string(text)
    supernet = space.build_supernet(**KW).eval()
    fixed = space.build_fixed(arch, **KW).eval()
    inherit_weights(fixed, supernet)
    x = torch.randn(2, 3, 64, 96)
    torch.testing.assert_close(fixed(x), supernet(x, arch), rtol=0, atol=0)


def test_fixed_model_holds_only_its_path():
    space = get_space("v2-sync")
    arch = space.from_string("v2-sync:none,skip,ap,none,skip+bil")
    fixed, supernet = space.build_fixed(arch, **KW), space.build_supernet(**KW)
    # no conv on any edge and a parameter-free upsample: the fusion blocks hold nothing
    assert sum(p.numel() for p in fixed.blocks.parameters()) == 0
    assert sum(p.numel() for p in supernet.blocks.parameters()) > 0
    assert set(fixed.state_dict()) < set(supernet.state_dict())


def test_supernet_runs_exactly_one_path():
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,none,none,skip,c3")
    net = space.build_supernet(**KW)
    net(torch.randn(2, 3, 64, 64), arch).mean().backward()
    for name, p in net.named_parameters():
        if ".edges." in name:
            used = ".ops.nor_conv_3x3." in name and (".e20." in name or ".e32." in name)
            assert (p.grad is not None) == used, name


def test_output_is_nonnegative_and_input_sized():
    space = get_space("v2-sync")
    net = space.build_supernet(**KW).eval()
    y = net(torch.randn(1, 3, 96, 128), space.sample(random.Random(0)))
    assert y.shape == (1, 1, 96, 128) and (y >= 0).all()


@pytest.mark.parametrize("h, w", [(70, 64), (64, 70)])  # height, and width too
def test_input_size_must_be_multiple_of_32(h, w):
    space = get_space("v1-sync")
    net = space.build_supernet(**KW)
    with pytest.raises(ValueError, match=rf"multiples of 32, got \[1, 3, {h}, {w}\]"):
        net(torch.randn(1, 3, h, w), space.sample(random.Random(0)))


def test_supernet_requires_an_architecture_and_fixed_rejects_another():
    space = get_space("v1-sync")
    with pytest.raises(ValueError, match="needs an architecture"):
        space.build_supernet(**KW)(torch.randn(1, 3, 64, 64))
    a, b = space.from_string("v1-sync:c3,c3,c3,c3,c3"), space.from_string("v1-sync:c1,c1,c1,c1,c1")
    with pytest.raises(ValueError, match="cannot run"):
        space.build_fixed(a, **KW)(torch.randn(1, 3, 64, 64), b)


def test_first_block_input_is_the_encoder_feature_duplicated_or_zeros():
    """The coarsest block has no predecessor: the paper duplicates the lateral
    feature into node 0 (the default); the authors' code fed zeros."""
    torch.manual_seed(0)
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,c3,c3,c3,c3")
    dup = space.build_fixed(arch, **KW).eval()
    zeros = space.build_fixed(arch, first_block_input="zeros", **KW).eval()
    zeros.load_state_dict(dup.state_dict())
    seen = {}

    def record(name):
        def hook(module, args):  # returns None: the block gets its inputs unchanged
            seen.setdefault(name, args)
        return hook
    for name, net in (("duplicate", dup), ("zeros", zeros)):
        net.blocks[0].register_forward_pre_hook(record(name))
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(dup(x), zeros(x))
    node0, node1 = seen["duplicate"][:2]
    assert node1.abs().sum() > 0 and torch.equal(node0, node1)
    node0, node1 = seen["zeros"][:2]
    assert torch.equal(node0, torch.zeros_like(node1))


def test_local_backbone_weights(tmp_path, caplog):
    ref = create_backbone("resnet18")
    torch.nn.init.constant_(ref.conv1.weight, 0.125)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    with caplog.at_level("INFO"):  # the CLI shows INFO lines
        loaded = create_backbone("resnet18", path)
    assert torch.all(loaded.conv1.weight == 0.125)
    assert not caplog.text  # timm's "Loaded  from checkpoint" came once per model a search built


def test_weights_of_a_backbone_normalised_otherwise_are_warned_of(caplog):
    """Inputs are normalised with ImageNet's mean and std everywhere; timm's tf_* ports
    expect 0.5 / 0.5, and their pretrained features saw other inputs, without a word."""
    import timm

    from depthnas.run_start import _warn_other_normalisation
    for name, warned in (("tf_mobilenetv3_large_100", True), ("resnet18", False)):
        with torch.device("meta"):
            backbone = timm.create_model(name, features_only=True)
        caplog.clear()
        with caplog.at_level("WARNING"):
            _warn_other_normalisation(name, backbone)
        assert ("expect inputs normalised with mean (0.5, 0.5, 0.5) and std (0.5, 0.5, 0.5); "
                "depthnas normalises with ImageNet's" in caplog.text) == warned, name


def test_backbone_weights_of_another_model_are_refused(tmp_path, caplog):
    """timm loads features_only weights non-strictly: a depthnas model file (or any
    other network's) would silently leave the backbone at random init."""
    other = tmp_path / "other.safetensors"
    save_file({"decoder.conv.weight": torch.ones(4, 4, 3, 3)}, str(other))
    with pytest.raises(ValueError, match=r"none of the \d+ weight tensors of 'resnet18' are in it"):
        create_backbone("resnet18", other)
    ref = create_backbone("resnet18").state_dict()
    partial = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in ref.items() if not k.startswith("layer4")}, str(partial))
    with caplog.at_level("INFO"):  # the CLI shows INFO lines
        create_backbone("resnet18", partial)
    assert "are not in it and stay randomly initialised: layer4." in caplog.text
    # ... in one line: timm's own warning listed every missing key before it
    assert "Missing keys" not in caplog.text


def test_missing_backbone_weights_and_unknown_backbone():
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        create_backbone("resnet18", "nope.safetensors")
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet_does_not_exist'"):
        create_backbone("resnet_does_not_exist")


def test_bn_recalibration_estimates_statistics_of_the_path():
    """SPOS's recalibration: each of the path's BN layers ends with the exact mean of
    its per-batch means and (unbiased) variances over the calibration batches, not a
    momentum average that still remembers the reset (or the super-net's training)."""
    torch.manual_seed(0)
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,c3,c3,c3,c3")
    net = space.build_supernet(**KW).eval()
    batches = [torch.randn(2, 3, 64, 64) * 3 + 1 for _ in range(3)]
    feats = [net.encode(b) for b in batches]
    bns = batchnorms(net.decoder_modules())
    inputs: dict[torch.nn.Module, list[torch.Tensor]] = {}
    hooks = [bn.register_forward_pre_hook(lambda m, x: inputs.setdefault(m, []).append(
        x[0].detach().double())) for bn in bns]
    n = recalibrate(net.decoder_modules(), lambda f: net.decode(f, arch), feats)
    for h in hooks:
        h.remove()
    assert n == 3 and not any(bn.training for bn in bns)
    used = [bn for bn in bns if bn.num_batches_tracked > 0]
    unused = [bn for bn in bns if bn.num_batches_tracked == 0]
    assert used and unused  # only the path's layers saw data
    assert set(inputs) == set(used) and len(used) == 4 * 5  # a 3x3 conv on each edge, 4 blocks
    for bn in used:
        per_batch = inputs[bn]
        assert len(per_batch) == 3
        mean = torch.stack([x.mean((0, 2, 3)) for x in per_batch]).mean(0)
        var = torch.stack([x.var((0, 2, 3)) for x in per_batch]).mean(0)
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=1e-5)
    for bn in unused:
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    assert all(bn.momentum == 0.1 for bn in bns)  # restored


class Payload:
    """A pickle that runs code when loaded: it writes the file named in PAYLOAD_MARK."""

    def __reduce__(self):
        import os
        return (os.system, (f"touch {os.environ['PAYLOAD_MARK']}",))


def test_unreadable_backbone_weights_are_named(tmp_path):
    bad = tmp_path / "resnet18.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match=f"backbone weights {bad}: cannot load"):
        create_backbone("resnet18", bad)


def test_backbones_whose_levels_start_at_stride_4():
    """ResNets number stride 4 as level 1, ConvNeXt as level 0: both must work."""
    space = get_space("v1-sync")
    net = space.build_fixed(space.sample(random.Random(0)), backbone="convnext_atto",
                            features=8)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="channels-last"):
        space.build_supernet(backbone="swin_tiny_patch4_window7_224", features=8)
    with pytest.raises(ValueError, match=r"strides \(16, 16, 16\)"):
        space.build_supernet(backbone="vit_small_patch16_224", features=8)


def test_pth_backbone_weights_are_read_without_running_pickles(tmp_path, monkeypatch):
    ref = create_backbone("resnet18")
    torch.nn.init.constant_(ref.conv1.weight, 0.25)
    good = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), good)
    assert torch.all(create_backbone("resnet18", good).conv1.weight == 0.25)
    evil, mark = tmp_path / "evil.pth", tmp_path / "the-payload-ran"
    monkeypatch.setenv("PAYLOAD_MARK", str(mark))
    torch.save({"conv1.weight": Payload()}, evil)
    with pytest.raises(ValueError, match=f"backbone weights {evil}: not a file of plain tensors"):
        create_backbone("resnet18", evil)
    assert not mark.exists()
    # a whole pickled model, or a file that is not PyTorch's: named, and torch's advice
    # (weights_only=False: run the pickle) is not passed on
    whole, garbage = tmp_path / "whole.pth", tmp_path / "garbage.pth"
    torch.save(ref, whole)
    garbage.write_bytes(b"0123456789abcdef")
    for path in (whole, garbage):
        with pytest.raises(ValueError, match="save the backbone's state_dict") as err:
            create_backbone("resnet18", path)
        assert "weights_only=False" not in str(err.value)


def test_inherit_weights_names_a_mismatch():
    v2 = get_space("v2-sync")
    fixed = v2.build_fixed(v2.from_string("v2-sync:c3,c3,c3,c3,c3+ps"), **KW)
    with pytest.raises(ValueError, match="super-net lacks"):
        inherit_weights(fixed, get_space("v1-sync").build_supernet(**KW))


def test_v1_upsamples_bilinearly_with_aligned_corners():
    """REFERENCE fixes V1's upsampling: bilinear, align_corners=True, which samples
    the input on a grid stretched corner to corner (MiDaS' fusion blocks)."""
    assert get_space("v1-sync").upsample_ops == ("bilinear",)
    up = make_upsample("bilinear", 8)
    x = torch.randn(2, 8, 5, 7)
    y = up(x)

    def bilinear(align_corners):
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear",
                                               align_corners=align_corners)
    torch.testing.assert_close(y, bilinear(True))
    assert not torch.allclose(y, bilinear(False))


def test_v2_interpolating_upsamplings_are_what_they_are_named():
    """bilinear and bicubic are two of V2's four choices (align_corners=True, as V1's
    bilinear): built alike, the space would hold one choice twice."""
    import torch.nn.functional as F
    x = torch.randn(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    for mode in ("bilinear", "bicubic"):
        torch.testing.assert_close(make_upsample(mode, 3)(x),
                                   F.interpolate(x, scale_factor=2, mode=mode, align_corners=True))
    assert not torch.allclose(make_upsample("bicubic", 3)(x), make_upsample("bilinear", 3)(x))


def test_decoder_parameters_counted_by_hand_from_the_reference():
    """Laterals: 3x3, no bias; edges: nor_conv = ReLU -> Conv(no bias) -> BN; head:
    conv f->f/2 3x3, x2, conv f/2->32 3x3, ReLU, conv 32->1 1x1, ReLU. With f = 16
    and resnet18's levels (64, 128, 256, 512 channels), for c3,c1,skip,ap,c3:"""
    f = 16
    laterals = 3 * 3 * (64 + 128 + 256 + 512) * f                  # 138,240
    conv3, conv1 = 3 * 3 * f * f + 2 * f, f * f + 2 * f            # + BN weight and bias
    blocks = 4 * (conv3 + conv1 + 0 + 0 + conv3)                    # skip, avg_pool: none
    head = (9 * f * f // 2 + f // 2) + (9 * f // 2 * 32 + 32) + (32 + 1)
    assert (laterals, blocks, head) == (138_240, 19_840, 3_529)
    net = get_space("v1-sync").build_fixed(get_space("v1-sync").from_string("v1-sync:c3,c1,skip,ap,c3"),
                                           backbone="resnet18", features=f)

    def count(module):
        return sum(p.numel() for p in module.parameters())
    assert (count(net.laterals), count(net.blocks), count(net.head)) == (laterals, blocks, head)
    assert count(net) - count(net.backbone) == laterals + blocks + head
    assert isinstance(net.head[-1], torch.nn.ReLU)  # non-negative inverse depth


def test_pixel_shuffle_upsampling_starts_as_nearest_neighbour():
    # ICNR: the four sub-pixels of each output pixel start equal (no checkerboard)
    up = make_upsample("pixel_shuffle", 16)
    x = torch.randn(2, 16, 5, 6)
    for mode in (up.train, up.eval):
        mode()
        y = up(x)
        assert y.shape == (2, 16, 10, 12)
        for i, j in ((0, 1), (1, 0), (1, 1)):
            torch.testing.assert_close(y[..., i::2, j::2], y[..., 0::2, 0::2])
    # i.e. nearest-neighbour upsampling of one C -> C ReLU-conv-BN
    nearest = torch.nn.functional.interpolate(up[0](x)[:, ::4], scale_factor=2, mode="nearest")
    torch.testing.assert_close(y, nearest)


def test_transposed_conv_upsampling_starts_as_bilinear():
    # away from the border, the FCN init is exactly bilinear x2 upsampling
    up = make_upsample("transposed_conv", 16)
    x = torch.randn(2, 16, 6, 7)
    bilinear = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x)[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1])


@pytest.mark.parametrize("upsample", ["bilinear", "transposed_conv", "pixel_shuffle"])
def test_a_dead_cell_outputs_zeros_whatever_its_biases(upsample):
    """REFERENCE: when no path reaches node 3 from node 0 or 1 the block outputs zeros.
    Here node 2 is dead and only it feeds node 3, through a 3x3 convolution whose
    BatchNorm (and the upsampling's bias) would otherwise add a constant."""
    torch.manual_seed(0)
    edges = {e: EDGE_OPS for e in ("2<-0", "2<-1", "3<-0", "3<-1", "3<-2")}
    cell = FusionCell(8, edges, (upsample,)).eval()
    for m in cell.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.bias.data.fill_(0.3)
            m.running_mean.fill_(0.5)
        elif isinstance(m, torch.nn.ConvTranspose2d):
            m.bias.data.fill_(0.2)
    choice = BlockChoice(("none", "none", "none", "none", "nor_conv_3x3"), upsample)
    assert is_dead_cell(choice)
    x0, x1 = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    assert cell(x0, x1, running_blocks([choice])[0]) is None  # nothing, not a constant
    alive = BlockChoice(("none", "none", "nor_conv_3x3", "none", "none"), upsample)
    assert cell(x0, x1, running_blocks([alive])[0]).shape == (2, 8, 12, 10)


def test_a_dead_finest_block_gives_the_head_zeros():
    torch.manual_seed(0)
    space = get_space("v2-nonsync")
    dead = "none,none,none,none,c3+tconv"
    arch = space.from_string(f"v2-nonsync:c3,c1,skip,ap,c3+ps/c1,none,c3,skip,ap+tconv/"
                             f"skip,c3,none,c1,c1+bic/{dead}")
    net = space.build_supernet(**KW).eval()
    x = torch.randn(2, 3, 64, 64)
    zeros = torch.zeros(2, KW["features"], 32, 32)
    torch.testing.assert_close(net(x, arch), net.head(zeros), rtol=0, atol=0)


def test_an_edge_from_a_node_no_input_reaches_adds_nothing():
    """Node 2 without inputs is zero, and its 3x3 conv edge to node 3 ran on those
    zeros: out came BatchNorm's shift, a constant no input path explains (as a dead
    cell's would be). The block equals the same block without that edge."""
    torch.manual_seed(0)
    edges = {e: EDGE_OPS for e in ("2<-0", "2<-1", "3<-0", "3<-1", "3<-2")}
    cell = FusionCell(8, edges, ("bilinear",)).eval()
    for m in cell.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.bias.data.fill_(0.5)  # a trained shift
    x0, x1 = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    with_edge = BlockChoice(("none", "none", "skip_connect", "none", "nor_conv_3x3"), "bilinear")
    without = BlockChoice(("none", "none", "skip_connect", "none", "none"), "bilinear")
    assert not is_dead_cell(with_edge)
    torch.testing.assert_close(cell(x0, x1, *running_blocks([with_edge])),
                               cell(x0, x1, *running_blocks([without])))


def test_running_blocks_drop_edges_that_see_nothing_or_feed_nothing():
    def run(*blocks):
        return [",".join(b.edges) for b in running_blocks(
            [BlockChoice(tuple(b.split(",")), "bilinear") for b in blocks])]
    live = "c3,c1,skip,ap,c3"
    assert run(live) == [live]  # 2<-0 2<-1 3<-0 3<-1 3<-2
    # node 2 empty: its edge to node 3 sees nothing
    assert run("none,none,ap,none,c3") == ["none,none,ap,none,none"]
    # 3<-2 none: nothing reads node 2, so its edges are work thrown away
    assert run("c3,c1,ap,c1,none") == ["none,none,ap,c1,none"]
    # a dead block outputs nothing: the next block's edges from node 0 see nothing,
    # and the block before it feeds nothing
    assert run(live, "none,none,none,none,c3", "c3,c1,c3,c1,c1", live) == [
        "none,none,none,none,none", "none,none,none,none,none",
        "none,c1,none,c1,c1", live]
    # a block that does not read node 0 leaves the block before it unread
    assert run(live, "none,c1,none,c1,c1") == ["none,none,none,none,none", "none,c1,none,c1,c1"]


def test_a_block_after_a_dead_one_adds_nothing_from_it():
    """A dead block's zeros used to run through the next block's node-0 edges,
    adding their BatchNorm shifts: the edge changed the output."""
    torch.manual_seed(0)
    space = get_space("v1-nonsync")
    net = space.build_supernet(**KW).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.bias.data.fill_(0.5)  # a trained shift
    body = "v1-nonsync:c3,c1,skip,ap,c3/none,none,none,none,c3/{}/c1,c3,skip,ap,c1"
    with_edge = space.from_string(body.format("none,c1,c3,c1,c1"))
    without = space.from_string(body.format("none,c1,none,c1,c1"))
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(net(x, with_edge), net(x, without), rtol=0, atol=0)


def test_strings_with_one_function_key_build_one_model():
    """3,125 V1-sync strings build 2,425 models: strings that differ only in edges that
    do not run share a key, and give the same super-net output and the same fixed
    model, so a search scores and trains one of them."""
    space = get_space("v1-sync")
    groups: dict = {}
    for genes in itertools.product(*map(range, space.gene_choices())):
        arch = space.make(genes)
        groups.setdefault(space.function_key(arch), []).append(arch)
    assert space.size() == 3125 and len(groups) == 2425
    torch.manual_seed(0)
    net = space.build_supernet(backbone="resnet18", features=8).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # trained shifts: an idle conv would show
            m.bias.data.uniform_(-1, 1)
    with torch.no_grad():
        features = net.encode(torch.randn(1, 3, 64, 64))
        shared = [g for g in groups.values() if len(g) > 1]
        assert sum(map(len, shared)) - len(shared) == 700
        for group in shared:
            first = net.decode(features, group[0])
            for arch in group[1:]:
                assert torch.equal(net.decode(features, arch), first), space.to_string(arch)
    a, b = space.from_string("v1-sync:c3,c3,ap,c1,none"), space.from_string("v1-sync:skip,c1,ap,c1,none")
    assert space.function_key(a) == space.function_key(b)  # 3<-2 none: node 2's edges idle
    shapes = [{k: v.shape for k, v in space.build_fixed(x, **KW).state_dict().items()}
              for x in (a, b)]
    assert shapes[0] == shapes[1]
    # a live edge changes the model
    assert space.function_key(a) != space.function_key(space.from_string("v1-sync:c3,c3,ap,c1,skip"))


def test_a_block_that_outputs_nothing_upsamples_nothing():
    """V2: the upsampling op of a block without output is not part of the model."""
    torch.manual_seed(0)
    space = get_space("v2-nonsync")
    body = "v2-nonsync:c3,c1,skip,ap,c3+ps/none,none,none,none,c3+{}/c1,c3,skip,ap,c1+bil/c1,none,c3,skip,ap+bic"
    archs = [space.from_string(body.format(up)) for up in ("bil", "bic", "tconv", "ps")]
    assert len({space.function_key(a) for a in archs}) == 1
    net = space.build_supernet(**KW).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outputs = [net(x, a) for a in archs]
    assert all(torch.equal(o, outputs[0]) for o in outputs[1:])
    live = body.replace("none,none,none,none,c3", "none,c1,none,c1,c3")
    assert len({space.function_key(space.from_string(live.format(up))) for up in ("bil", "bic")}) == 2


def test_a_backbone_s_levels_are_probed_once_per_name(monkeypatch):
    """Each build probed timm's feature levels on a meta-device copy first: 35-65 ms of
    every stand-alone training's model, a dozen per quick search."""
    import timm
    from depthnas.spaces.depth.backbone import _stride_levels
    space, built, real = get_space("v1-sync"), [], timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: built.append(k) or real(*a, **k))
    _stride_levels.cache_clear()
    for s in ("v1-sync:c3,c1,skip,c3,ap", "v1-sync:c1,c1,c1,c1,c1"):
        space.build_fixed(space.from_string(s), backbone="resnet18", features=16)
    assert ["out_indices" in k for k in built] == [False, True, True]  # one probe, two models


@pytest.mark.parametrize("name", ["v2-nonsync", "v1-sync"])
def test_a_fixed_model_holds_exactly_the_fusion_ops_its_path_trains(name):
    """The super-net's gradients name the ops a path runs; the fixed model of that
    path holds those and no others, so its parameter count (search.max_params) is
    what runs."""
    space = get_space(name)
    rng = random.Random(0)
    x = torch.randn(1, 3, 64, 64)
    net = space.build_supernet(backbone="resnet18", features=8)
    for _ in range(12):
        arch = space.sample(rng)
        net.zero_grad(set_to_none=True)
        net(x, arch).mean().backward()
        trained = {n for n, p in net.named_parameters() if n.startswith("blocks.") and p.grad is not None}
        fixed = space.build_fixed(arch, backbone="resnet18", features=8)
        held = {n for n, _ in fixed.named_parameters() if n.startswith("blocks.")}
        assert held == trained, space.to_string(arch)


def test_path_parameters_match_the_built_models_and_build_the_backbone_once(monkeypatch):
    from depthnas.config import ModelConfig
    from depthnas.models import PathParameters
    from depthnas.spaces.depth.backbone import _stride_levels
    import timm
    space, cfg = get_space("v2-nonsync"), ModelConfig(backbone="resnet18", features=16)
    archs = [space.sample(random.Random(seed)) for seed in range(3)]
    archs.append(space.from_string("v2-nonsync:none,none,none,none,none+ps/c3,c1,skip,ap,c3+tconv/"
                                   "c1,c1,c1,c1,c1+bic/none,none,none,none,none+bil"))  # dead cells
    assert any(space.has_dead_cell(a) for a in archs)
    built = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: built.append(a) or real(*a, **k))
    _stride_levels.cache_clear()  # probed once per backbone name and process
    count = PathParameters(space, cfg)
    counts = [count(a) for a in archs]
    # one backbone (a probe of its levels, then the model) for every count: the
    # backbone is most of a build's time
    assert len(built) == 2
    monkeypatch.setattr(timm, "create_model", real)
    for arch, n in zip(archs, counts):
        model = space.build_fixed(arch, backbone="resnet18", features=16)
        assert n == sum(p.numel() for p in model.parameters()), space.to_string(arch)


def test_a_backbone_given_as_a_module():
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,skip,ap,c1,c3")
    backbone = create_backbone("resnet18")
    net = space.build_fixed(arch, backbone=backbone, features=16)
    assert net.backbone is backbone
    with pytest.raises(ValueError, match="given as a module"):
        space.build_fixed(arch, backbone=backbone, backbone_weights="w.safetensors", features=16)
    with pytest.raises(ValueError, match=r"'Conv2d' has no feature_info"):
        space.build_fixed(arch, backbone=torch.nn.Conv2d(3, 8, 3), features=16)


def test_backbone_weights_of_a_larger_model_of_the_family_are_named(tmp_path, caplog):
    """resnet34's file holds every tensor name of resnet18, so it loaded in part
    without a word."""
    import timm
    with torch.device("meta"):
        names = set(timm.create_model("resnet18").state_dict())
    big = timm.create_model("resnet34").state_dict()
    assert names < set(big)
    path = tmp_path / "r34.safetensors"
    save_file({k: v.contiguous() for k, v in big.items()}, str(path))
    with caplog.at_level("WARNING"):
        create_backbone("resnet18", path)
    assert "tensor(s) have no place in 'resnet18' (layer1.2." in caplog.text
    # its own full checkpoint, head included, in the wrappings timm unwraps: nothing to say
    own = {k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}
    wrapped = {"state_dict.pth": {"state_dict": {f"module.{k}": v for k, v in own.items()}},
               "ema.pth": {"model_ema": own, "epoch": 3},
               "compiled.pth": {f"_orig_mod.{k}": v for k, v in own.items()}}
    save_file({f"module.{k}": v for k, v in own.items()}, str(tmp_path / "ddp.safetensors"))
    for name in [*wrapped, "ddp.safetensors"]:
        if name in wrapped:
            torch.save(wrapped[name], tmp_path / name)
        caplog.clear()
        with caplog.at_level("WARNING"):
            create_backbone("resnet18", tmp_path / name)
        assert "no place" not in caplog.text, name


@pytest.mark.parametrize(("arch", "first", "cut_off"), [
    ("v1-sync:none,none,none,none,c3", "duplicate", True),  # node 2 unreached, node 3 only from it
    ("v1-sync:c3,c3,none,none,none", "duplicate", True),
    ("v1-nonsync:c3,c3,none,none,none/c3,skip,c1,c1,ap/c3,skip,c1,c1,ap/c3,skip,c1,c1,ap",
     "duplicate", False),
    ("v1-nonsync:c3,skip,c1,c1,ap/c3,skip,c1,c1,ap/c3,skip,c1,c1,ap/c3,c3,none,none,none",
     "duplicate", True),
    # the finest block hears only from node 0, and the block before it is dead
    ("v1-nonsync:c3,c3,c3,c3,c3/c3,c3,c3,c3,c3/none,none,none,none,none/none,none,skip,none,none",
     "duplicate", True),
    # node 3 only from node 0: the encoder feature again, or (the authors' code) zeros
    ("v1-sync:none,none,c3,none,none", "duplicate", False),
    ("v1-sync:none,none,c3,none,none", "zeros", True),
])
def test_a_model_that_ignores_its_input_is_known_by_its_architecture(arch, first, cut_off):
    """A coarser dead block outputs zeros, but the finer blocks still take lateral
    features; a finest block cut off from them (dead, or fed only by a block that
    carries nothing) leaves the head nothing of the image."""
    space = get_space(arch.split(":")[0])
    a = space.parse(arch)
    assert space.ignores_input(a, first_block_input=first) == cut_off
    model = space.build_fixed(a, backbone="resnet18", features=16, first_block_input=first).eval()
    with torch.no_grad():
        first, second = (model(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(s)))
                         for s in (0, 1))
    assert torch.equal(first, second) == cut_off


def test_a_model_file_from_before_pruning_loads_without_its_idle_ops(tmp_path, caplog):
    """Model files written before fixed models left out the ops their path never runs
    hold those ops' weights too (here node 2's edges, unread when 3<-2 is none): they
    load, the idle tensors left out and said; a tensor the model needs stays an error."""
    import logging
    from depthnas.checkpoint import save_model
    from depthnas.config import ModelConfig
    from depthnas.models import load_model, model_metadata
    space, cfg = get_space("v1-sync"), ModelConfig(backbone="resnet18", features=16)
    arch = space.from_string("v1-sync:c3,c1,ap,c1,none")
    older = space.build_fixed(space.from_string("v1-sync:c3,c1,ap,c1,c1"), **KW)  # holds e20, e21
    path = save_model(tmp_path / "model.safetensors", older, model_metadata(space, arch, cfg, (64, 64)))
    with caplog.at_level(logging.INFO, logger="depthnas.models"):
        model, _ = load_model(path)
    assert "fusion ops this architecture never runs (e.g. blocks.0.edges.e20.ops.nor_conv_3x3" in caplog.text
    x = torch.randn(1, 3, 64, 64)
    inherit_weights(fixed := space.build_fixed(arch, **KW), older)
    torch.testing.assert_close(model(x), fixed.eval()(x), rtol=0, atol=0)
    # a file that lacks what the architecture runs is still refused, naming the tensors
    path = save_model(tmp_path / "other.safetensors", space.build_fixed(
        space.from_string("v1-sync:none,none,ap,ap,none"), **KW), model_metadata(space, arch, cfg, (64, 64)))
    with pytest.raises(ValueError, match=r"other.safetensors: weights do not match the model its "
                                         r"metadata describes \(missing \d+: blocks\.0\.edges\.e31"):
        load_model(path)


def test_head_computes_conv_upsample_conv_relu_conv_relu():
    """REFERENCE: head = conv f->f/2 3x3, x2 bilinear upsample, conv f/2->32 3x3, ReLU,
    conv 32->1 1x1, ReLU. Convolving before or after the upsampling holds the same
    parameters but computes another function (at 4x the cost)."""
    torch.manual_seed(0)
    space = get_space("v1-sync")
    net = space.build_fixed(space.from_string("v1-sync:c3,c1,skip,ap,c3"), **KW).eval()
    convs = [m for m in net.head if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (16, 8, (3, 3)), (8, 32, (3, 3)), (32, 1, (1, 1))]
    x = torch.randn(2, 16, 5, 6)
    y = F.conv2d(x, convs[0].weight, convs[0].bias, padding=1)
    y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
    y = F.relu(F.conv2d(y, convs[1].weight, convs[1].bias, padding=1))
    y = F.relu(F.conv2d(y, convs[2].weight, convs[2].bias))
    with torch.no_grad():
        torch.testing.assert_close(net.head(x), y)


def test_the_readme_s_python_api_example_runs():
    """The README's first Python API example, as printed: spaces, models, loss, metrics."""
    import re
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    api = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", api, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["depth"].shape == (2, 1, 256, 320) and scope["path"].shape == (2, 1, 256, 256)


def test_a_batchnorm_run_twice_per_forward_is_stopped_after_its_last_run():
    """stop_after_last_bn counts how often the last BN layer runs in one forward: a
    layer applied twice stopped after its first run gave other statistics."""
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3)
    net = torch.nn.ModuleList([conv, bn])

    def forward(x):
        return bn(conv(bn(x)) * 2 + 1)
    batches = [torch.randn(2, 3, 8, 8) * (i + 1) for i in range(3)]
    stats = {}
    for stop in (False, True):
        n = recalibrate([net], forward, batches, stop_after_last_bn=stop)
        stats[stop] = (n, bn.running_mean.clone(), bn.running_var.clone())
    assert stats[True][0] == stats[False][0] == 3
    torch.testing.assert_close(stats[True][1], stats[False][1], rtol=0, atol=0)
    torch.testing.assert_close(stats[True][2], stats[False][2], rtol=0, atol=0)
    assert batchnorms([net]) == [bn] and not bn.training


def test_a_backbone_module_with_a_stride_2_level_is_refused():
    """timm.create_model(name, features_only=True) without out_indices gives five levels
    (strides 2..32): the decoder needs exactly 4..32, or it fuses the wrong maps."""
    import timm
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,skip,ap,c1,c3")
    five = timm.create_model("resnet18", features_only=True)
    assert tuple(five.feature_info.reduction()) == (2, 4, 8, 16, 32)
    with pytest.raises(ValueError, match=r"gives feature strides \(2, 4, 8, 16, 32\); the depth "
                                         r"decoder needs \(4, 8, 16, 32\)"):
        space.build_fixed(arch, backbone=five, features=16)


def test_a_model_s_width_and_device_are_checked_by_name(tmp_path):
    """features=1 built a head of 0 channels that failed in torch's convolution at the
    first forward; load_model's device="tpu" failed in torch's device parsing."""
    from depthnas.checkpoint import save_model
    from depthnas.config import ModelConfig
    from depthnas.models import load_model, model_metadata
    space = get_space("v1-sync")
    arch = space.from_string("v1-sync:c3,c1,skip,ap,c3")
    for features in (1, 0, 2.5):
        with pytest.raises(ValueError, match=rf"features must be a whole number >= 2 \(the head "
                                             rf"halves it\), got {features}"):
            space.build_fixed(arch, **{**KW, "features": features})
    from depthnas.spaces import ArchitectureError
    with pytest.raises(ArchitectureError, match="got str 'v1-sync:c3"):  # before any backbone is built
        space.build_fixed("v1-sync:c3,c1,skip,ap,c3", backbone="no_such_backbone", features=16)
    path = save_model(tmp_path / "m.safetensors", space.build_fixed(arch, **KW), model_metadata(
        space, arch, ModelConfig(**KW), (64, 64)))
    with pytest.raises(ValueError, match="unknown device 'tpu'; use auto, cpu, cuda or cuda:N"):
        load_model(path, device="tpu")
    model, _ = load_model(path, device="cpu")
    assert next(model.parameters()).device.type == "cpu"


def _older_model_file(tmp_path, **fields):
    """A depth model file as written before `model` (and first_block_input) were
    recorded: the decoder's settings at the top level only."""
    from depthnas.checkpoint import save_model
    from depthnas.models import FORMAT
    space = get_space("v1-sync")
    arch = space.parse("v1-sync:c3,c3,c3,c3,c3")  # every edge runs: node 0's input counts
    model = space.build_fixed(arch, backbone="resnet18", features=16).eval()
    meta = {"format": FORMAT, "task": "depth", "space": "v1-sync", "arch": space.to_string(arch),
            "image_size": [64, 64], **fields}
    return save_model(tmp_path / "older.safetensors", model, meta), model


def test_a_safetensors_file_not_written_by_depthnas_is_named_as_such(tmp_path):
    """A timm checkpoint given to predict/export was said to hold "a super-net".
    [models.py:154]"""
    from safetensors.torch import save_file

    from depthnas.models import load_model
    path = tmp_path / "resnet18.safetensors"
    save_file({"conv1.weight": torch.zeros(1)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="is not a depthnas model file"):
        load_model(path)


def test_load_model_names_a_super_net_file_as_such(tmp_path):
    """A search's supernet.safetensors given to load_model. [models.py:158]"""
    from safetensors.torch import save_file

    from depthnas.models import FORMAT, load_model
    path = tmp_path / "supernet.safetensors"
    save_file({"w": torch.zeros(1)}, str(path),
              metadata={"format": FORMAT, "task": "depth", "space": "v1-sync", "arch": ""})
    with pytest.raises(ValueError, match="holds a super-net, not one architecture"):
        load_model(path)


def test_an_older_model_file_is_rebuilt_with_the_paper_s_first_block_input(tmp_path):
    """[models.py:169]"""
    from depthnas.models import load_model
    path, model = _older_model_file(tmp_path, backbone="resnet18", features=16)
    loaded, _ = load_model(path)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_an_older_model_file_without_its_decoder_settings_is_a_value_error(tmp_path):
    """A KeyError traceback, not the CLI's one error line. [models.py:171]"""
    from depthnas.models import load_model
    path, _ = _older_model_file(tmp_path, features=16)  # no backbone
    with pytest.raises(ValueError, match=r"metadata does not describe a model \(KeyError"):
        load_model(path)
