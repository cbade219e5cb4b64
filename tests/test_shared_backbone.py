"""The shortcuts that make search cheap compute exactly what the slow way computes.

(i)   the landmark penalty with one shared encoder pass == separate full passes
      (loss and every parameter gradient, BatchNorm in train mode);
(ii)  candidate scores with cached encoder features == a full forward per candidate
      (both: backbone in eval mode, decoder BN recalibrated);
(iii) a super-net path == the stand-alone model holding its weights (copied by name),
      for v1 and v2 spaces, every upsampling op included;
plus the regularizer's prefetched batches and its satisfied-pair shortcut.
"""
import random

import pytest
import torch
from torch.utils.data import default_collate

from depthnas.bn_calibration import batchnorms, recalibrate
from depthnas.config import LandmarkConfig
from depthnas.degenerate import at_constant_level
from depthnas.scoring import PathEvaluator, cache_on_device, constant_score
from depthnas.landmarks import LandmarkRegularizer, step_indices
from depthnas.spaces.base import inherit_weights
from depthnas.spaces import get_space
from depthnas.task import DepthTask
from toys import TINY_MODEL, BlobDepth

TASK = DepthTask()


def regularizer(landmarks, data, share=True, pairs=0, num_workers=0):
    return LandmarkRegularizer(landmarks, data, TASK, LandmarkConfig(pairs=pairs),
                               batch_size=4, device="cpu", share_encoder=share,
                               num_workers=num_workers)


def as_double(batch):
    return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


# ---- (i) shared encoder --------------------------------------------------------------
def test_shared_encoder_penalty_equals_separate_passes_loss_and_gradients():
    space = get_space("v2-nonsync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL).double().train()
    rng = random.Random(3)
    archs = [space.sample_live(rng) for _ in range(3)]
    data = BlobDepth(8, size=32, seed=2)
    batch = as_double(default_collate([data[i] for i in range(4)]))
    with torch.no_grad():
        feats = net.encode(batch["image"])
        losses = [float(TASK.loss(net.decode(feats, a), batch)) for a in archs]
    # stand-alone order opposite to the super-net's: every pair is violated
    landmarks = list(zip(archs, [-v for v in losses]))

    def grads():
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    results = {}
    for share in (True, False):
        net.zero_grad(set_to_none=True)
        reg = regularizer(landmarks, data, share=share)
        r, violated = reg.penalty(net, batch, reg.pairs)
        r.backward()
        results[share] = (r.detach(), violated, grads())
    # The reference, written out here (not the regularizer with its flag off, which a
    # flag that stopped working would turn into the shared path compared with itself):
    # one whole forward pass of the super-net per landmark, the hinge sum of the paper.
    net.zero_grad(set_to_none=True)
    losses = {k: TASK.loss(net(batch["image"], reg.landmarks[k][0]), batch)
              for k in {k for pair in reg.pairs for k in pair}}
    r = torch.stack([torch.relu(losses[i] - losses[j]) for i, j in reg.pairs]).sum()
    r.backward()
    reference = (r.detach(), grads())
    for r_x, v_x, g_x in results.values():
        assert v_x == 3 and float(r_x) > 0
        torch.testing.assert_close(r_x, reference[0], rtol=1e-10, atol=1e-12)
        assert g_x.keys() == reference[1].keys()
        assert any(n.startswith("backbone.") for n in g_x)  # the penalty reaches the backbone
        for n in g_x:
            torch.testing.assert_close(g_x[n], reference[1][n], rtol=1e-7, atol=1e-10, msg=n)


def test_satisfied_pairs_are_cut_from_the_graph():
    space = get_space("v1-sync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL).train()
    a, b = space.from_string("v1-sync:c3,c3,c3,c3,c3"), space.from_string("v1-sync:none,skip,none,c1,ap")
    data = BlobDepth(8, seed=1)
    probe = regularizer([(a, 0.0), (b, 1.0)], data)
    r, violated = probe.penalty(net, probe.batch(0), probe.pairs)
    ordered = [(a, 0.0), (b, 1.0)] if violated else [(b, 0.0), (a, 1.0)]  # now violated
    lcfg = LandmarkConfig(schedule="constant", pairs=1)
    swapped = [(ordered[0][0], 1.0), (ordered[1][0], 0.0)]           # satisfied
    for landmarks, expect_grad in ((ordered, True), (swapped, False)):
        reg = LandmarkRegularizer(landmarks, data, TASK, lcfg, batch_size=4, device="cpu")
        term, logs = reg(net, 0, 10)
        assert term is not None and logs["lambda"] == 10.0
        assert term.requires_grad is expect_grad
        assert (logs["reg_violated"] == 1.0) is expect_grad


# ---- regularizer batches ---------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 2])
def test_regularizer_batches_are_a_function_of_the_step(num_workers):
    data = BlobDepth(10, size=32, seed=4)
    reg = regularizer([], data, num_workers=num_workers)
    reg.set_landmarks([])

    def expected(step):
        return default_collate([data[i] for i in step_indices(len(data), 4, 0, step)])

    for step in [0, 1, 2, 3, 7, 8, 2]:  # in order, a jump ahead, a jump back
        got = reg.batch(step)
        for k, v in expected(step).items():
            assert torch.equal(got[k], v), (step, k)


# ---- (ii) cached features ----------------------------------------------------------------
def test_cached_and_full_forward_scores_agree():
    space = get_space("v2-nonsync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL)
    # give the backbone's BN running statistics a life of their own, so eval-mode
    # and train-mode backbones differ
    with torch.no_grad():
        for bn in batchnorms([net.backbone]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    backbone_before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    calib, val = BlobDepth(12, size=32, seed=5), BlobDepth(8, size=32, seed=6)
    kw = dict(batch_size=4, calib_batches=3, device="cpu")
    cached = PathEvaluator(net, TASK, calib, val, cache_features=True, **kw)
    full = PathEvaluator(net, TASK, calib, val, cache_features=False, **kw)
    archs = [space.from_string(s) for s in (
        "v2-nonsync:c3,c1,skip,c3,ap+ps/c1,c3,ap,skip,c3+tconv/c3,c3,c3,c3,c3+bic/skip,c1,ap,c3,none+bil",
        "v2-nonsync:c1,c1,c1,c1,c1+ps/c1,c1,c1,c1,c1+ps/c1,c1,c1,c1,c1+ps/c1,c1,c1,c1,c1+ps")]
    runs = []  # backbone passes: the reference must be a full forward, not the cache again
    hook = net.backbone.register_forward_hook(lambda *a: runs.append(1))
    for i, arch in enumerate(archs):
        before = len(runs)
        s_cached = cached.score(arch)
        between = len(runs)
        s_full = full.score(arch)
        assert s_cached == pytest.approx(s_full, rel=1e-5, abs=1e-7), space.to_string(arch)
        assert len(runs) - between == 3 + 2  # 3 calibration and 2 validation batches, again
        if i:
            assert between == before  # the cache, filled once, serves every later score
    hook.remove()
    # scoring recalibrates the decoder only: the backbone's statistics are untouched
    for k, v in net.backbone.state_dict().items():
        assert torch.equal(v, backbone_before[k]), k
    assert not batchnorms([net.head])  # why recalibration may skip the head


@pytest.mark.parametrize("cache_features", [True, False])
def test_a_score_starts_from_recalibrated_decoder_statistics(cache_features):
    """SPOS fitness: BN statistics of the scored path are re-estimated every time, so
    whatever the decoder's running statistics held before cannot change a score."""
    space = get_space("v1-sync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL)
    ev = PathEvaluator(net, TASK, BlobDepth(12, size=32, seed=5), BlobDepth(8, size=32, seed=6),
                       batch_size=4, calib_batches=3, device="cpu", cache_features=cache_features)
    arch = space.from_string("v1-sync:c3,c1,skip,c3,ap")
    first = ev.score(arch)
    with torch.no_grad():
        for bn in batchnorms([net.blocks]):
            bn.running_mean.uniform_(-3.0, 3.0)
            bn.running_var.uniform_(5.0, 9.0)
    assert ev.score(arch) == first


def _trained_supernet():
    """A v1-sync super-net whose decoder BN layers hold statistics as training leaves
    them, unlike the reset ones a score starts from."""
    space = get_space("v1-sync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL)
    with torch.no_grad():
        for bn in batchnorms([net.blocks]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.num_batches_tracked.fill_(40)
    return space, net


def _scoring(net, task, cache_features):
    return PathEvaluator(net, task, BlobDepth(12, size=32, seed=5), BlobDepth(8, size=32, seed=6),
                         batch_size=4, calib_batches=3, device="cpu", cache_features=cache_features)


@pytest.mark.parametrize("cache_features", [True, False])
def test_scoring_leaves_the_super_net_as_training_left_it(cache_features):
    """A score left the decoder's BN layers calibrated for the scored path. The super-net
    then trained on from the last path a search scored, but a run resumed after that
    search (read back, nothing scored) from training's own statistics: the two runs'
    checkpoints differed in every decoder BN layer."""
    space, net = _trained_supernet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ev = _scoring(net, TASK, cache_features)
    first = ev.score(space.from_string("v1-sync:c3,c1,skip,c3,ap"))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert ev.score(space.from_string("v1-sync:c3,c1,skip,c3,ap")) == first


class _Failing(DepthTask):
    def score(self, out, batch):  # after the recalibration, as an OOM in validation would
        raise RuntimeError("validation failed")


def test_a_score_that_fails_still_leaves_the_super_net_s_statistics():
    """Put back on every exit, an error's too (`statistics_kept`)."""
    space, net = _trained_supernet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ev = _scoring(net, _Failing(), cache_features=True)
    with pytest.raises(RuntimeError, match="validation failed"):
        ev.score(space.from_string("v1-sync:c3,c1,skip,c3,ap"))
    assert [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])] == []


@pytest.mark.parametrize("cache_features", [True, False])
def test_validation_passes_use_the_recalibrated_statistics_not_batch_statistics(cache_features):
    """The authors' code forced BN into train mode at evaluation, so a score depended
    on which images shared a batch. Here BN runs in train mode only to re-estimate
    (3 calibration batches), then in eval mode for both validation batches."""
    space = get_space("v1-sync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL)
    ev = PathEvaluator(net, TASK, BlobDepth(12, size=32, seed=5), BlobDepth(8, size=32, seed=6),
                       batch_size=4, calib_batches=3, device="cpu", cache_features=cache_features)
    modes = []
    hooks = [bn.register_forward_pre_hook(lambda m, _: modes.append(m.training))
             for bn in batchnorms([net.blocks])]
    ev.score(space.from_string("v1-sync:c3,c1,skip,c3,ap"))
    for h in hooks:
        h.remove()
    calibration = modes.index(False)
    assert calibration > 0 and all(modes[:calibration])
    validation = modes[calibration:]
    assert not any(validation)
    assert len(validation) * 3 == calibration * 2  # per pass, each of the path's BN layers once


def test_a_collapsed_path_is_at_the_constant_level_of_the_batches_it_is_scored_on():
    """With search.val_batches set, paths are scored on part of the validation split:
    a collapsed path (one value everywhere) scores that part's target variance, which
    the whole split's constant level missed by far more than the 0.1% tolerance, so
    the search took dead paths for good ones."""
    space = get_space("v1-sync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL)
    last_conv = [m for m in net.head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.zero_()  # the output is relu(bias) everywhere: collapsed
    val = BlobDepth(12, size=32, seed=6)
    arch = space.from_string("v1-sync:c3,c1,skip,c3,ap")
    whole = constant_score(TASK, val, batch_size=4)
    for val_batches in (None, 1):
        ev = PathEvaluator(net, TASK, BlobDepth(8, size=32, seed=5), val, batch_size=4,
                           calib_batches=2, val_batches=val_batches, device="cpu")
        assert at_constant_level(ev.score(arch), ev.constant_level())
    assert not at_constant_level(ev.score(arch), whole)  # one batch of three: another level


def test_feature_cache_stays_on_the_gpu_only_while_it_fits_in_half_the_free_memory():
    mib = 2**20
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    # the paper's size: 50 MiB of features per batch, 200 + 40 batches = 12 GiB
    assert cache_on_device(50 * mib, 240, cuda, free_bytes=100 * 1024 * mib)
    assert not cache_on_device(50 * mib, 240, cuda, free_bytes=20 * 1024 * mib)
    assert cache_on_device(50 * mib, 240, cpu, free_bytes=0)  # on a CPU it is host memory anyway


def test_host_cached_scores_equal_device_cached_ones():
    """Features too large for the GPU wait in host memory; scores do not change.
    (On a CPU-only machine both caches are host memory: the check is that the
    option is taken; the comparison means something on a GPU.)"""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    space = get_space("v2-nonsync")
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL).to(device)
    calib, val = BlobDepth(8, size=32, seed=5), BlobDepth(8, size=32, seed=6)
    kw = dict(batch_size=4, calib_batches=2, device=device)
    on_device = PathEvaluator(net, TASK, calib, val, cache_device="device", **kw)
    on_host = PathEvaluator(net, TASK, calib, val, cache_device="host", **kw)
    arch = space.sample(random.Random(3))
    assert on_host.score(arch) == pytest.approx(on_device.score(arch), rel=1e-6)
    assert on_host.cached_on == torch.device("cpu")
    assert on_device.cached_on.type == device
    with pytest.raises(ValueError, match="cache_device"):
        PathEvaluator(net, TASK, calib, val, cache_device="gpu", **kw)


@pytest.mark.parametrize("text", [
    "v2-nonsync:c3,c1,skip,c3,ap+ps/c1,c3,ap,skip,c3+tconv/c3,c3,c3,c3,c3+bic/skip,c1,ap,c3,none+ps",
    "v2-nonsync:c3,c1,skip,c3,ap+bil/c1,c3,ap,skip,c3+bic/c3,c3,c3,c3,c3+ps/c3,c1,ap,skip,none+tconv",
    "v2-sync:skip,ap,none,skip,ap+bil",  # no BatchNorm on the path at all
])
def test_recalibration_stopped_at_the_last_bn_gives_the_same_statistics(text):
    space = get_space(text.split(":")[0])
    arch = space.from_string(text)
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL).eval()
    with torch.no_grad():
        feats = [net.encode(torch.randn(2, 3, 64, 64)) for _ in range(3)]
    stats = {}
    for stop in (False, True):
        n = recalibrate(net.decoder_modules(), lambda f: net.decode_for_calibration(f, arch),
                        feats, stop_after_last_bn=stop)
        stats[stop] = (n, {k: v.clone() for k, v in net.state_dict().items() if "running" in k})
    (n_full, full), (n_stop, stopped) = stats[False], stats[True]
    assert n_full == 3 and n_stop == (1 if text.startswith("v2-sync") else 3)
    for k in full:
        torch.testing.assert_close(stopped[k], full[k], rtol=0, atol=0, msg=k)
    assert all(not bn.training for bn in batchnorms([net]))


# ---- (iii) super-net path == stand-alone model ---------------------------------------------
ARCHS = [
    "v1-sync:c3,skip,ap,c1,c3",
    "v1-nonsync:c3,c1,none,skip,ap/c1,c1,c1,c1,c1/skip,ap,c3,none,c3/c3,c3,c3,c3,c3",
    "v2-sync:c3,skip,ap,c1,c3+ps",
    "v2-sync:c1,c3,skip,c3,ap+tconv",
    "v2-nonsync:c3,c1,none,skip,ap+ps/c1,c1,c1,c1,c1+tconv/skip,ap,c3,none,c3+bic/c3,ap,skip,c1,c3+bil",
]


@pytest.mark.parametrize("text", ARCHS)
def test_supernet_path_equals_standalone_model(text):
    space = get_space(text.split(":")[0])
    arch = space.from_string(text)
    torch.manual_seed(0)
    sup = space.build_supernet(**TINY_MODEL)
    fixed = space.build_fixed(arch, **TINY_MODEL)
    # random affine BN parameters, so every BN layer's weights matter
    with torch.no_grad():
        for bn in batchnorms([sup]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    inherit_weights(fixed, sup)
    x = torch.randn(2, 3, 32, 32)

    sup.train(), fixed.train()
    out_s, out_f = sup(x, arch), fixed(x)
    torch.testing.assert_close(out_s, out_f, rtol=1e-5, atol=1e-6)
    out_s.square().mean().backward()
    out_f.square().mean().backward()
    sup_params = dict(sup.named_parameters())
    for name, p in fixed.named_parameters():
        g_s = sup_params[name].grad
        if p.grad is None:
            assert g_s is None, name
        else:
            torch.testing.assert_close(g_s, p.grad, rtol=1e-4, atol=1e-7, msg=name)

    sup.eval(), fixed.eval()  # running statistics were updated identically above
    with torch.no_grad():
        torch.testing.assert_close(sup(x, arch), fixed(x), rtol=1e-5, atol=1e-6)


def test_the_evaluator_takes_exactly_the_batches_it_is_told():
    from depthnas.scoring import fixed_batches
    assert len(fixed_batches(BlobDepth(12, size=16, seed=1), 2, 3, 0, shuffle=False)) == 3


def test_a_constant_level_is_0_1_percent_and_learning_nothing_1_percent_both_inclusive():
    from depthnas.degenerate import learned_nothing
    assert at_constant_level(1.001, 1.0) and not at_constant_level(1.005, 1.0)
    assert learned_nothing(0.99, 1.0) and not learned_nothing(0.989, 1.0)


def test_an_empty_validation_split_is_named_not_a_division_by_zero():
    class Net(torch.nn.Module):
        def forward(self, x, arch=None):
            return x[:, :1]
    evaluator = PathEvaluator(Net(), TASK, BlobDepth(4, size=16, seed=1), BlobDepth(0, size=16, seed=2),
                              batch_size=2, calib_batches=1, cache_features=False)
    with pytest.raises(ValueError, match="nothing to score"):
        evaluator.score(None)


def test_a_run_s_evaluator_takes_its_batch_counts_and_seed():
    """`rank` must score as the search did: the same calibration and validation batches."""
    from depthnas.config import Config
    cfg = Config()
    cfg.data.batch_size, cfg.search.calib_batches, cfg.search.val_batches, cfg.seed = 2, 1, 1, 5
    seen = {}

    class Spy(PathEvaluator):
        def __init__(self, *a, **k):
            seen.update(k)
    Spy.for_run(torch.nn.Identity(), TASK, None, None, cfg, "cpu")
    assert (seen["batch_size"], seen["calib_batches"], seen["val_batches"], seen["seed"]) == (2, 1, 1, 5)


def test_a_score_exactly_0_1_percent_from_the_constant_is_at_its_level():
    """Inclusive, as the name of the test above says (1.001 against 1.0 is not exactly
    0.1% in floating point; 8008 against 8000 is)."""
    assert at_constant_level(8008.0, 8000.0) and at_constant_level(7992.0, 8000.0)
    assert not at_constant_level(8008.5, 8000.0)


def test_calibration_draws_its_batches_from_the_whole_split_and_validation_keeps_order():
    """calib_batches * batch_size items of a split ordered by scene: the first ones
    would recalibrate BN on a few scenes. Drawn with the run's seed, the same every
    call (a path's score never depends on luck); validation takes its order as is."""
    class Indexed(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return {"index": i}
    kw = dict(batch_size=4, calib_batches=2, val_batches=2, seed=3)
    def indices(batches):
        return [int(i) for b in batches for i in b["index"]]
    ev = PathEvaluator(torch.nn.Identity(), TASK, Indexed(), Indexed(), **kw)
    calib = indices(ev.calib)
    assert len(set(calib)) == 8 and calib != list(range(8)) and max(calib) >= 8
    assert calib == indices(PathEvaluator(torch.nn.Identity(), TASK, Indexed(), Indexed(), **kw).calib)
    assert indices(ev.val) == list(range(8))
