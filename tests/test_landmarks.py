"""Landmark regularization (paper section 4): sampling, store, regularizer."""
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

from depthnas.config import LandmarkConfig
from depthnas.landmark_sampler import sample_landmarks
from depthnas.landmark_store import LandmarkStore
from depthnas.landmarks import LandmarkRegularizer, all_pairs
from depthnas.spaces import get_space
from depthnas.task import DepthTask
from toys import TINY_MODEL, BlobDepth


def test_diverse_landmarks_are_far_from_the_root():
    space = get_space("v1-nonsync")
    landmarks = sample_landmarks(space, num=10, tau=10, rng=random.Random(0))
    root, rest = landmarks[0], landmarks[1:]
    assert len(set(landmarks)) == 10  # M = 10 distinct
    assert all(space.hamming(a, root) > 10 for a in rest)
    assert sample_landmarks(space, 10, 10, random.Random(0)) == landmarks  # per seed


def test_tau_beyond_the_encoding_is_an_error():
    with pytest.raises(ValueError, match=r"landmarks.tau=5: expected 0 to 4 for v1-sync"):
        sample_landmarks(get_space("v1-sync"), 3, tau=5, rng=random.Random(0))


def test_the_tau_bound_counts_only_genes_with_a_choice_and_m_must_be_positive():
    darts = get_space("darts")
    assert len(darts.gene_choices()) == 24 and sum(c > 1 for c in darts.gene_choices()) == 22
    with pytest.raises(ValueError, match=r"landmarks.tau=22: expected 0 to 21 for darts"):
        sample_landmarks(darts, 3, tau=22, rng=random.Random(0))  # was 100,000 futile tries
    with pytest.raises(ValueError, match="landmarks.num=0: expected >= 1"):
        sample_landmarks(get_space("v1-sync"), 0, tau=3, rng=random.Random(0))


def test_more_landmarks_than_the_walk_can_reach_are_refused_before_any_work():
    """--num-landmarks 2400 on V1-sync (3,125 architectures) ended in a RuntimeError
    traceback after the data had loaded. The walk changes one gene a step and keeps the
    first architecture beyond tau, so every landmark but the root lies exactly tau + 1
    genes from it: C(5,4) 4^4 = 1,280 of them at tau = 3 (counting all 2,304 beyond
    tau let 25 landmarks at tau = 0 through, where only 20 lie one gene away)."""
    from depthnas.config import Config
    from depthnas.config_checks import validate
    from depthnas.landmark_sampler import landmark_problem
    v1 = get_space("v1-sync")
    assert landmark_problem(v1, 1281, 3) is None
    assert landmark_problem(v1, 1282, 3) == (
        "landmarks.num=1282: only 1,280 v1-sync architectures lie landmarks.tau + 1 = 4 genes "
        "from a root, where the sampler keeps its landmarks, so at most 1,281 landmarks (lower "
        "landmarks.num, or change landmarks.tau)")
    assert landmark_problem(v1, 21, 0) is None
    assert landmark_problem(v1, 22, 0).startswith("landmarks.num=22: only 20 v1-sync")
    assert len(sample_landmarks(v1, 21, 0, random.Random(0))) == 21  # every neighbour reached
    cfg = Config()
    cfg.landmarks.num = 2400
    with pytest.raises(ValueError, match="landmarks.num=2400: only 1,280"):
        validate(cfg)
    cfg.landmarks.num, cfg.landmarks.tau = 10, 99
    with pytest.raises(ValueError, match="landmarks.tau=99: expected 0 to 4 for v1-sync"):
        validate(cfg)
    # a request the count allows may still take longer than the tries given (each try
    # draws a neighbour at random), and says so by field, not by traceback
    with pytest.raises(ValueError, match=r"landmarks.num=1200: found only \d+ landmarks further "
                                         r"than landmarks.tau=3"):
        sample_landmarks(v1, 1200, 3, random.Random(0), max_tries=5000)


def test_landmarks_avoid_excluded_architectures():
    space = get_space("v1-sync")
    exclude = sample_landmarks(space, 5, 3, random.Random(1))
    new = sample_landmarks(space, 5, 3, random.Random(1), exclude=exclude)
    assert not set(new) & set(exclude)


def test_landmarks_are_distinct_models():
    """Two strings that build one model would be one stand-alone training twice and a
    pair with nothing to rank (2 of these 20 draws held such a pair before)."""
    space = get_space("v1-sync")
    for seed in range(20):
        landmarks = sample_landmarks(space, 10, 3, random.Random(seed))
        assert len({space.function_key(a) for a in landmarks}) == 10, seed


def test_store_keeps_provenance_and_matches_recipes(tmp_path):
    store = LandmarkStore(tmp_path / "lm.json")
    recipe = {"data": "synthetic", "image_size": [64, 64], "epochs": 2}
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.25, recipe, params=10)
    reloaded = LandmarkStore(tmp_path / "lm.json")
    entry = reloaded.find("v1-sync:c3,c3,c3,c3,c3", recipe)
    assert entry["val_loss"] == 0.25 and entry["recipe"] == recipe and "date" in entry
    assert reloaded.find("v1-sync:c3,c3,c3,c3,c3", {**recipe, "epochs": 3}) is None

def test_a_file_that_is_no_landmark_store_is_said_to_be_none_in_words(tmp_path):
    """An array said "list indices must be integers or slices, not str", a run's
    results.json only "'entries'", and {"entries": {}} was taken as an empty store
    (and written over at the first landmark)."""
    shape = r"\(a landmark store is \{'version': 1, 'entries': \[...\]\}\)"
    cases = {"array.json": ("[1, 2]", rf"array.json: expected a JSON object, found array {shape}"),
             "text.json": ("not json", rf"text.json: not valid JSON \(.*\) {shape}"),
             "results.json": ('{"architectures": [], "best": {}}',
                              rf"results.json holds no 'entries' {shape}; this is a search's "
                              "results.json: its landmarks.json, beside it, is the store"),
             "other.json": ('{"a": 1}', rf"other.json holds no 'entries' {shape}$"),
             "table.json": ('{"architectures": {}}', rf"table.json holds no 'entries' {shape}; this is "
                            r"a benchmark's table: give it as --set search.truth_table=FILE"),
             "mapping.json": ('{"entries": {}}', rf"mapping.json: 'entries' must be a list {shape}")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=rf"^landmark store .*{message}"):
            LandmarkStore(tmp_path / name)
        assert (tmp_path / name).read_text() == text


def make_regularizer(landmarks, pairs=0):
    return LandmarkRegularizer(landmarks, BlobDepth(8, seed=1), DepthTask(), LandmarkConfig(pairs=pairs),
                               batch_size=4, device="cpu")


def supernet_losses(net, reg, archs):
    batch = reg.batch(0)
    with torch.no_grad():
        feats = net.encode(batch["image"])
        return [float(reg.task.loss(net.decode(feats, a), batch)) for a in archs]


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    space = get_space("v1-sync")
    net = space.build_supernet(**TINY_MODEL)
    archs = [space.from_string(s) for s in ("v1-sync:c3,c3,c3,c3,c3", "v1-sync:none,skip,none,c1,ap",
                                            "v1-sync:c1,none,skip,skip,c3")]
    return space, net, archs


def test_regularizer_is_zero_when_orders_agree_and_positive_otherwise(toy):
    space, net, archs = toy
    reg = make_regularizer([(a, 0.0) for a in archs])
    losses = supernet_losses(net, reg, archs)
    agreeing = make_regularizer(list(zip(archs, losses)))         # same order as the super-net
    reversed_ = make_regularizer(list(zip(archs, [-v for v in losses])))
    r_ok, violated_ok = agreeing.penalty(net, agreeing.batch(0), agreeing.pairs)
    r_bad, violated_bad = reversed_.penalty(net, reversed_.batch(0), reversed_.pairs)
    assert float(r_ok.detach()) == 0.0 and violated_ok == 0
    assert float(r_bad.detach()) > 0 and violated_bad == 3


def test_the_penalty_is_lambda_times_the_sum_of_hinges_over_ordered_pairs(toy):
    """Eq. 4: R = sum over pairs (i better than j stand-alone) of max(0, L_i - L_j) in
    the super-net; the step's term is lambda_t * R. A mean instead of a sum, or a
    missing lambda, passed every test of R's sign."""
    space, net, archs = toy
    step, total = 49, 100  # half way: 0 < lambda < lambda_max on the increasing cosine
    probe = make_regularizer([(a, 0.0) for a in archs])
    batch = probe.batch(step)  # the regularizer batch of that step
    with torch.no_grad():
        losses = [float(probe.task.loss(net(batch["image"], a), batch)) for a in archs]
    # claim the reverse of the super-net's order: every one of the 3 pairs is violated
    reg = make_regularizer(list(zip(archs, [-v for v in losses])), pairs=0)
    by_truth = sorted(range(3), key=lambda k: -losses[k])  # best stand-alone first
    expected = sum(max(0.0, losses[i] - losses[j])
                   for n, i in enumerate(by_truth) for j in by_truth[n + 1:])
    r, violated = reg.penalty(net, reg.batch(step), reg.pairs)
    assert violated == 3 and float(r.detach()) == pytest.approx(expected, rel=1e-5)
    term, logs = reg(net, step, total)
    assert logs["lambda"] == pytest.approx(reg.lam(step, total)) and 0 < logs["lambda"] < 10
    assert float(term.detach()) == pytest.approx(logs["lambda"] * expected, rel=1e-5)


def test_the_logged_violated_share_counts_each_pair_of_several(toy):
    """reg_violated is the share of the step's pairs the super-net orders against the
    truth: with 3 pairs and the two best swapped, 1 of 3, and the term keeps its
    gradient; a count of hinges clipped at the wrong side would log 0 or 1."""
    space, net, archs = toy
    step, total = 99, 100  # lambda_max: the term is on
    probe = make_regularizer([(a, 0.0) for a in archs])
    batch = probe.batch(step)
    with torch.no_grad():
        losses = [float(probe.task.loss(net(batch["image"], a), batch)) for a in archs]
    best, middle, worst = sorted(range(3), key=lambda k: losses[k])
    truth = {best: 0.2, middle: 0.1, worst: 0.3}  # only the best two in the other order
    reg = make_regularizer([(archs[k], truth[k]) for k in range(3)], pairs=0)
    term, logs = reg(net, step, total)
    assert logs["reg_violated"] == pytest.approx(1 / 3)
    # the one hinge: the truth's better (middle) scores above the super-net's best
    assert logs["reg"] == pytest.approx(losses[middle] - losses[best], rel=1e-5)
    assert term.requires_grad


def test_ops_only_satisfied_pairs_use_get_no_gradient_not_a_zero_one(toy):
    """A satisfied pair's hinge adds 0, and its gradient is 0: summed in, the ops only
    its landmarks use got zero gradients, which AdamW's weight decay and momentum move
    as if they were on the path (without a gradient, AdamW leaves an op alone)."""
    space, net, archs = toy
    probe = make_regularizer([(a, 0.0) for a in archs])
    batch = probe.batch(0)
    losses = supernet_losses(net, probe, archs)
    best, middle, worst = sorted(range(3), key=lambda k: losses[k])
    truth = {best: 0.2, middle: 0.1, worst: 0.3}  # only (middle, best) violated
    reg = make_regularizer([(archs[k], truth[k]) for k in range(3)])
    params = [p for p in net.parameters() if p.requires_grad]

    def reached(pairs):
        r, _ = reg.penalty(net, batch, pairs)
        grads = torch.autograd.grad(r, params, allow_unused=True)
        return {i for i, g in enumerate(grads) if g is not None}
    at = [a for a, _ in reg.landmarks].index  # the regularizer's own order of them
    violated = [(i, j) for i, j in reg.pairs if {i, j} == {at(archs[best]), at(archs[middle])}]
    assert len(reg.pairs) == 3 and len(violated) == 1
    assert reached(reg.pairs) == reached(violated)


def test_a_landmark_loss_gone_nan_reaches_the_trainer_s_check(toy, monkeypatch):
    """Summing the violated hinges alone left a NaN one out ("NaN > 0" is false): the
    step's term was finite, and the trainer's non-finite check never fired."""
    space, net, archs = toy
    probe = make_regularizer([(a, 0.0) for a in archs])
    batch = probe.batch(99)
    with torch.no_grad():
        losses = [float(probe.task.loss(net(batch["image"], a), batch)) for a in archs]
    reg = make_regularizer(list(zip(archs, [-v for v in losses])), pairs=0)  # all 3 violated
    real = reg.task.loss
    calls = iter(range(99))

    def loss(out, batch):  # the first landmark's loss is NaN
        return real(out, batch) * (float("nan") if next(calls) == 0 else 1.0)
    monkeypatch.setattr(reg.task, "loss", loss)
    term, logs = reg(net, 99, 100)
    assert logs["reg_violated"] == 1.0  # the NaN pairs count as violated, beside the third
    assert term.isnan() and logs["reg"] != logs["reg"]


def test_one_step_reduces_a_violated_pairs_hinge(toy):
    space, _, archs = toy
    torch.manual_seed(0)
    net = space.build_supernet(**TINY_MODEL)
    probe = make_regularizer([(a, 0.0) for a in archs[:2]])
    la, lb = supernet_losses(net, probe, archs[:2])
    # claim the super-net's worse architecture is the better one: a violated pair
    worse, better = (archs[0], archs[1]) if la > lb else (archs[1], archs[0])
    reg = make_regularizer([(worse, 0.1), (better, 0.2)])
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)  # a small step: first-order decrease
    batch = reg.batch(0)
    before, _ = reg.penalty(net, batch, reg.pairs)
    assert float(before.detach()) > 0
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = reg.penalty(net, batch, reg.pairs)
    assert float(after.detach()) < float(before.detach())


def test_pairs_are_drawn_uniformly(toy):
    space, _, _ = toy
    landmarks = [(space.sample(random.Random(i)), float(i)) for i in range(6)]
    reg = make_regularizer(landmarks, pairs=1)
    rng = random.Random(0)
    counts = Counter(tuple(reg.draw_pairs(rng)[0]) for _ in range(15_000))
    assert set(counts) == set(all_pairs(6))  # all 15 pairs
    assert max(counts.values()) / min(counts.values()) < 1.25  # ~1000 each


def test_several_pairs_a_step_are_distinct_and_each_as_likely(toy):
    """m = 3 of 5 landmarks' 10 pairs, without replacement: a pair drawn twice would
    count its hinge twice."""
    space, _, _ = toy
    landmarks = [(space.sample(random.Random(i)), float(i)) for i in range(5)]
    reg = make_regularizer(landmarks, pairs=3)
    rng = random.Random(0)
    counts: Counter = Counter()
    for _ in range(5_000):
        drawn = [tuple(p) for p in reg.draw_pairs(rng)]
        assert len(set(drawn)) == 3
        counts.update(drawn)
    assert len(counts) == 10 and all(abs(c / 5_000 - 3 / 10) < 0.03 for c in counts.values())


def test_the_violated_share_is_of_the_step_s_pairs_not_of_all(toy):
    """pairs = 1 and that pair violated: 1.0, not 1 of the 3 pairs there are."""
    space, net, archs = toy
    probe = make_regularizer([(a, 0.0) for a in archs])
    with torch.no_grad():
        batch = probe.batch(99)
        losses = [float(probe.task.loss(net(batch["image"], a), batch)) for a in archs]
    reg = make_regularizer(list(zip(archs, [-v for v in losses])), pairs=1)  # all reversed
    _, logs = reg(net, 99, 100)
    assert logs["reg_violated"] == 1.0


def test_landmarks_of_equal_loss_form_no_pair(toy):
    """R sums over pairs where i is better than j: a tie has no order to enforce."""
    space, net, archs = toy
    reg = make_regularizer([(archs[0], 0.1), (archs[1], 0.1), (archs[2], 0.3)])
    assert sorted(reg.pairs) == [(0, 2), (1, 2)]
    all_tied = make_regularizer([(a, 0.1) for a in archs])
    assert all_tied.pairs == []
    term, logs = all_tied(net, 99, 100)  # lambda is at its maximum, yet nothing to rank
    assert term is None and logs["lambda"] == 10.0


def test_lambda_follows_the_schedule_and_is_zero_in_warmup(toy):
    space, net, archs = toy
    reg = LandmarkRegularizer([(a, float(i)) for i, a in enumerate(archs)], BlobDepth(8), DepthTask(),
                              LandmarkConfig(warmup_epochs=1), batch_size=4, device="cpu",
                              total_epochs=4)
    term, logs = reg(net, 0, 100)
    assert term is None and logs["lambda"] == 0.0
    assert reg.lam(99, 100) == 10.0  # lambda_max at the last step
    assert reg.lam(20, 100) == 0.0  # still inside the 1-of-4-epoch warm-up
    # then the increasing cosine over the remaining 3/4: at progress 60/99, s = 0.4747
    assert reg.lam(60, 100) == pytest.approx(4.6038, abs=1e-4)
    term, logs = reg(net, 60, 100)
    assert term is not None and logs["lambda"] == reg.lam(60, 100)
    ramped = LandmarkRegularizer([(a, float(i)) for i, a in enumerate(archs)], BlobDepth(8), DepthTask(),
                                 LandmarkConfig(schedule="constant", ramp_epochs=2), batch_size=4,
                                 device="cpu", total_epochs=4)
    assert ramped.lam(25, 101) == pytest.approx(5.0)  # halfway up a 2-of-4-epoch ramp
    assert ramped.lam(50, 101) == pytest.approx(10.0) and ramped.lam(100, 101) == 10.0


def test_stand_alone_recipe_covers_what_changes_the_loss():
    """A stored loss is reused only for the same model, data, split and schedule."""
    from depthnas.config import Config
    from depthnas.recipe import recipe
    base = recipe(Config())
    for field, value in (("model.first_block_input", "zeros"), ("data.val_fraction", 0.3),
                         ("data.reg_fraction", 0.3), ("data.augment", False),
                         ("standalone.weight_decay", 0.1), ("standalone.grad_clip", 0.0),
                         ("standalone.precision", "bf16"), ("data.depth_kind", "disparity")):
        cfg = Config()
        section, name = field.split(".")
        setattr(getattr(cfg, section), name, value)
        assert recipe(cfg) != base, field


def test_a_store_from_before_paths_were_recorded_absolute_is_still_reused(tmp_path, monkeypatch):
    """Runs now record --data folder:data/x as an absolute path: a store (or a
    stand-alone result) written before holds it as typed, and every landmark in it was
    retrained as "another recipe"."""
    from depthnas.recipe import recipe_diff, same_recipe
    monkeypatch.chdir(tmp_path)
    old = {"data": "folder:data/x", "backbone_weights": "w/r18.safetensors", "epochs": 2}
    new = {"data": f"folder:{tmp_path / 'data' / 'x'}",
           "backbone_weights": str(tmp_path / "w" / "r18.safetensors"), "epochs": 2}
    store = LandmarkStore(tmp_path / "store.json")
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.25, old)
    assert store.find("v1-sync:c3,c3,c3,c3,c3", new) is not None
    assert same_recipe(old, new) and not same_recipe({**old, "epochs": 3}, new)
    assert recipe_diff({**old, "data": "folder:data/y"}, new) == [
        f"data: stored 'folder:data/y', this run 'folder:{tmp_path / 'data' / 'x'}'"]


def test_runs_sharing_a_store_keep_each_others_entries(tmp_path):
    path = tmp_path / "store.json"
    recipe = {"data": "synthetic", "epochs": 2}
    first, second = LandmarkStore(path), LandmarkStore(path)  # two runs, opened together
    first.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.25, recipe)
    second.add("v1-sync:c1,c1,c1,c1,c1", "v1-sync", 0.30, recipe)
    assert {e["arch"] for e in LandmarkStore(path).entries} == {"v1-sync:c3,c3,c3,c3,c3",
                                                                "v1-sync:c1,c1,c1,c1,c1"}


def test_a_store_that_cannot_be_written_mid_run_is_a_write_error_naming_it(tmp_path):
    """A bare "[Errno 30] Read-only file system: '.landmarks.json.lock'" ended the run
    without the resume hint other write errors get (the CLI adds it to a WriteError)."""
    from depthnas.io import WriteError
    path = tmp_path / "store.json"
    (tmp_path / ".store.json.lock").mkdir()  # what open() cannot append to
    with pytest.raises(WriteError, match=r"cannot write .*\.store\.json\.lock \(the landmark store's lock: "):
        LandmarkStore(path).add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.25, {"epochs": 2})


def test_merging_keeps_every_ranks_entries_identical(tmp_path):
    """Under DDP rank 0 writes the store and the others keep it in memory: an entry
    another run wrote meanwhile goes to the file, not into one rank's memory only."""
    path = tmp_path / "store.json"
    recipe = {"data": "synthetic", "epochs": 2}
    rank0, rank1 = LandmarkStore(path), LandmarkStore(path, persist=False)
    LandmarkStore(path).add("v1-sync:c1,c1,c1,c1,c1", "v1-sync", 0.3, recipe)  # another run
    for store in (rank0, rank1):
        store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.25, recipe)
    assert [e["arch"] for e in rank0.entries] == [e["arch"] for e in rank1.entries]
    assert len(LandmarkStore(path).entries) == 2


def test_a_hand_written_store_entry_without_its_space_is_named(tmp_path):
    path = tmp_path / "store.json"
    path.write_text(json.dumps({"entries": [{"arch": "v1-sync:c3,c3,c3,c3,c3", "space": "v1-sync",
                                             "val_loss": 0.2},
                                            {"arch": "v1-sync:c1,c1,c1,c1,c1", "val_loss": 0.3}]}))
    with pytest.raises(ValueError, match=r"store.json: entry 1 lacks or mistypes space"):
        LandmarkStore(path)


def test_two_losses_of_one_landmark_under_one_recipe_are_refused_not_one_dropped(tmp_path):
    """The last entry was taken without a word, and the next write of the store lost the
    other; written in another spelling, the same architecture hid from read_table's
    duplicate check too."""
    path = tmp_path / "store.json"
    entry = {"space": "v1-sync", "recipe": {"epochs": 2}}
    entries = [{**entry, "arch": "v1-sync:c3,skip,none,c1,ap", "val_loss": 0.1},
               {**entry, "arch": "v1-sync:c1,c1,c1,c1,c1", "val_loss": 0.3},
               {**entry, "arch": "v1-sync:nor_conv_3x3,skip_connect,none,nor_conv_1x1,avg_pool_3x3",
                "val_loss": 0.9}]
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    with pytest.raises(ValueError, match=r"store.json: entry 2 \('v1-sync:nor_conv_3x3,.*', val_loss 0.9\) "
                                         r"is entry 0's architecture under the same recipe, with val_loss 0.1"):
        LandmarkStore(path)
    entries[2]["val_loss"] = 0.1  # the same result twice: nothing to choose between
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    assert len(LandmarkStore(path).entries) == 2
    path.write_text('{"version": 1, "entries": [], "entries": []}')  # a key written twice by hand
    with pytest.raises(ValueError, match="entries"):
        LandmarkStore(path)


def test_a_non_finite_result_is_not_stored_where_every_later_read_would_refuse_it(tmp_path):
    path = tmp_path / "store.json"
    store = LandmarkStore(path)
    store.add("v1-sync:c1,c1,c1,c1,c1", "v1-sync", 0.3, {"epochs": 2})
    with pytest.raises(ValueError, match=r"store.json: the result of v1-sync:c3,c3,c3,c3,c3 has val_loss "
                                         r"nan; a stand-alone loss is finite and >= 0; not stored"):
        store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", float("nan"), {"epochs": 2})
    assert [e["arch"] for e in LandmarkStore(path).entries] == ["v1-sync:c1,c1,c1,c1,c1"]


def test_truth_table_values_in_an_older_store_are_not_taken_for_trained_results(tmp_path):
    """Before 2026-11-29 a search copied its truth table's values into the store, marked
    with their source; a later run of the same recipe reused them as trained."""
    path = tmp_path / "store.json"
    recipe = {"epochs": 3}
    path.write_text(json.dumps({"version": 1, "entries": [
        {"arch": "v1-sync:c3,c3,c3,c3,c3", "space": "v1-sync", "val_loss": 0.1, "recipe": recipe,
         "source": "table.json"},
        {"arch": "v1-sync:c1,c1,c1,c1,c1", "space": "v1-sync", "val_loss": 0.2, "recipe": recipe}]}))
    store = LandmarkStore(path)
    assert store.find("v1-sync:c3,c3,c3,c3,c3", recipe) is None
    assert [e["arch"] for e in store.matching("v1-sync", recipe)] == ["v1-sync:c1,c1,c1,c1,c1"]


def test_a_search_reuses_stored_landmarks_only_of_its_own_seed(tmp_path, capsys):
    """The seed draws the validation split: a landmark scored on seed 0's validation
    images is not comparable with this run's losses on seed 1's, so it is not reused."""
    from depthnas.config import Config
    from depthnas.pipeline import SearchRun
    from depthnas.recipe import recipe
    store_path = tmp_path / "store.json"
    seed0 = Config(space="v1-sync", seed=0)
    stored = ["v1-sync:c3,c3,c3,c3,c3", "v1-sync:c1,skip,ap,c1,none"]
    store = LandmarkStore(store_path)
    for loss, arch in enumerate(stored):
        store.add(arch, "v1-sync", 0.1 + loss, recipe(seed0))
    for seed, reused in ((0, True), (1, False)):
        cfg = Config(space="v1-sync", seed=seed, out=str(tmp_path / f"run{seed}"))
        cfg.landmarks.store, cfg.landmarks.num = str(store_path), 3
        landmarks = SearchRun(cfg, say=print)._initial_landmarks()
        printed = capsys.readouterr().out
        assert (landmarks[:2] == stored) == reused, seed
        if not reused:
            assert "seed: stored 0, this run 1" in printed


def test_a_store_of_other_spaces_only_is_said_not_ignored(tmp_path, capsys):
    """A darts search given an nb201 run's store drew and trained every landmark
    without a word; a store of the same space and another recipe was said."""
    from depthnas.config import Config
    from depthnas.pipeline import SearchRun
    from depthnas.recipe import recipe
    store_path = tmp_path / "store.json"
    nb201 = Config(space="nb201", seed=0)
    LandmarkStore(store_path).add(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "nb201", 0.1, recipe(nb201))
    cfg = Config(space="v1-sync", seed=0, out=str(tmp_path / "run"))
    cfg.landmarks.store, cfg.landmarks.num = str(store_path), 2
    assert len(SearchRun(cfg, say=print)._initial_landmarks()) == 2
    assert (f"{store_path} holds results of nb201 only, none of v1-sync: no landmark is "
            "reused from it") in capsys.readouterr().out


def test_stored_landmarks_are_reused_one_per_model(tmp_path):
    """A store filled by an older depthnas may hold two strings of one model (it could
    pick both): a new run reuses one of them, and draws the rest anew."""
    from depthnas.config import Config
    from depthnas.pipeline import SearchRun
    from depthnas.recipe import recipe
    space, store_path = get_space("v1-sync"), tmp_path / "store.json"
    cfg = Config(space="v1-sync", seed=0, out=str(tmp_path / "run"))
    store = LandmarkStore(store_path)
    stored = ["v1-sync:c3,c3,ap,c1,none", "v1-sync:skip,c1,ap,c1,none", "v1-sync:c3,c3,c3,c3,c3"]
    for loss, arch in enumerate(stored):  # the first two: 3<-2 none, node 2 idle
        store.add(arch, "v1-sync", 0.1 + loss, recipe(cfg))
    cfg.landmarks.store, cfg.landmarks.num = str(store_path), 4
    landmarks = SearchRun(cfg, say=lambda _: None)._initial_landmarks()
    assert landmarks[:2] == [stored[0], stored[2]] and len(landmarks) == 4
    assert len({space.function_key(space.parse(a)) for a in landmarks}) == 4


def test_a_hand_written_store_is_read_in_the_space_s_spelling_and_checked_whole(tmp_path):
    """Full op names were announced as reused and trained again (the lookup compared
    raw strings), one landmark could be drawn twice; a bad optional field failed at
    the report of a finished search, NaN became the best architecture, a folder was
    taken for a new store, and a string no space reads did not name the store."""
    path = tmp_path / "store.json"
    recipe = {"epochs": 1}
    entry = {"space": "v1-sync", "val_loss": 0.2, "recipe": recipe}
    path.write_text(json.dumps({"entries": [
        {**entry, "arch": "v1-sync:nor_conv_3x3,skip_connect,none,nor_conv_1x1,avg_pool_3x3"},
        {**entry, "arch": "v1-sync:c3, skip, none, c1, ap"}]}))
    store = LandmarkStore(path)
    assert [(e["arch"], e["val_loss"]) for e in store.entries] == [("v1-sync:c3,skip,none,c1,ap", 0.2)]
    assert store.find("v1-sync:c3,skip,none,c1,ap", recipe)["val_loss"] == 0.2
    for bad, says in (({"val_loss": float("nan")}, "has val_loss nan; a stand-alone loss is finite"),
                      ({"val_loss": -0.1}, "has val_loss -0.1"),
                      ({"params": "428k"}, "has params '428k'; expected a whole number"),
                      ({"model": 123}, "has model 123; expected the path of a model file"),
                      ({"arch": "v1-sync:foo,bar"}, "entry 0 ('v1-sync:foo,bar', space 'v1-sync'): "),
                      ({"arch": "v2-sync:c3,c3,c3,c3,c3,bil"}, "entry 0 ('v2-sync:c3,c3,c3,c3,c3,bil'")):
        path.write_text(json.dumps({"entries": [{**entry, "arch": "v1-sync:c3,c3,c3,c3,c3", **bad}]}))
        with pytest.raises(ValueError, match=re.escape(f"landmark store {path}: entry 0 ") + ".*"
                           + re.escape(says.split("entry 0 ")[-1])):
            LandmarkStore(path)
    with pytest.raises(ValueError, match=re.escape(f"landmark store {tmp_path} is a folder; name a JSON file")):
        LandmarkStore(tmp_path)


def test_a_store_finds_its_models_from_any_working_folder(tmp_path, monkeypatch):
    """Model paths were kept relative to where the run started: a search reusing the
    store from another folder (the README's --landmarks workflow) lost the best model."""
    run = tmp_path / "runs" / "a"
    model = run / "standalone" / "x" / "model.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    store = LandmarkStore(Path("runs/a/landmarks.json"))
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.2, {"epochs": 1},
              model=Path("runs/a/standalone/x/model.safetensors"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = LandmarkStore(Path("../runs/a/landmarks.json"))
    assert again.model_file(again.entries[0]).read_bytes() == b"weights"
    copy = tmp_path / "shared" / "store.json"  # a copy of the store, kept elsewhere
    copy.parent.mkdir()
    copy.write_text((tmp_path / "runs" / "a" / "landmarks.json").read_text())
    assert LandmarkStore(copy).model_file(LandmarkStore(copy).entries[0]).read_bytes() == b"weights"
    moved = tmp_path / "moved"
    (tmp_path / "runs" / "a").rename(moved)
    assert LandmarkStore(moved / "landmarks.json").model_file(
        LandmarkStore(moved / "landmarks.json").entries[0]).read_bytes() == b"weights"
    # gone everywhere: named where the store means it, beside the store, not relative
    # to whatever folder the reader is in
    (moved / "standalone" / "x" / "model.safetensors").unlink()
    gone = LandmarkStore(moved / "landmarks.json")
    assert gone.model_file(gone.entries[0]) == moved / "standalone" / "x" / "model.safetensors"


def test_stored_losses_of_a_data_folder_that_changed_since_are_not_reused(tmp_path):
    """A folder: data set with files added keeps its spec: its stored losses, scored on
    other validation images, were reused as comparable."""
    from depthnas.config import Config
    from depthnas.data import load_splits
    from depthnas.recipe import recipe, recipe_diff, same_recipe
    from test_datasets import make_folder
    cfg = Config()
    cfg.data.spec, cfg.data.image_size = f"folder:{make_folder(tmp_path / 'mine', n=8)}", (64, 64)
    before = recipe(cfg, load_splits(cfg))
    assert same_recipe(recipe(cfg, load_splits(cfg)), before)  # read again: the same samples
    store = LandmarkStore(tmp_path / "store.json")
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.2, before)
    make_folder(tmp_path / "mine", n=12)  # four more images
    after = recipe(cfg, load_splits(cfg))
    assert store.find("v1-sync:c3,c3,c3,c3,c3", after) is None
    assert any(d.startswith("samples: stored") and d.endswith("(the data's files, or how they split, changed)")
               for d in recipe_diff(before, after))
    # records from before the digest, and checks made before the data is read, go by
    # the settings alone
    assert same_recipe({k: v for k, v in before.items() if k != "samples"}, after)
    assert same_recipe(before, recipe(cfg))


def test_the_samples_digest_is_of_ids_not_of_the_messages_of_skipped_files():
    """Skipped samples are recorded as messages (paths, a library's wording): an update
    that rewords one changed the digest, and stored landmarks were trained again."""
    from depthnas.recipe import samples_digest

    class Splits:
        def __init__(self, skipped, val):
            self.m = {"train": ["a", "b"], "reg": ["c"], "val": val, "skipped": skipped}

        def manifest(self):
            return self.m
    one = samples_digest(Splits(["x.png: cannot read (libpng 1.6)"], ["d"]))
    assert samples_digest(Splits(["x.png: cannot read (libpng 1.7)"], ["d"])) == one
    assert samples_digest(Splits([], ["d", "e"])) != one


def test_every_landmark_but_the_root_lies_exactly_tau_plus_one_genes_away():
    """Algorithm 1's walk restarts at the root after every architecture beyond tau,
    kept or not (a duplicate too): so landmark_problem's count of those tau + 1 away
    is what the sampler can reach."""
    v1 = get_space("v1-sync")
    for seed in range(5):
        root, *rest = sample_landmarks(v1, 12, 0, random.Random(seed))
        assert [v1.hamming(a, root) for a in rest] == [1] * 11, seed
        root, *rest = sample_landmarks(v1, 60, 2, random.Random(seed))
        assert {v1.hamming(a, root) for a in rest} == {3}, seed


def test_a_result_added_again_replaces_the_one_before(tmp_path):
    store = LandmarkStore(tmp_path / "landmarks.json")
    recipe = {"space": "v1-sync", "epochs": 1}
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.5, recipe)
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.2, recipe)
    assert len(store.entries) == 1 and store.find("v1-sync:c3,c3,c3,c3,c3", recipe)["val_loss"] == 0.2
    assert len(json.loads((tmp_path / "landmarks.json").read_text())["entries"]) == 1


def test_the_stochastic_pairs_are_drawn_again_every_step(monkeypatch):
    """Eq. 6 with m = 1 pair a step: drawn from one fixed seed, every step penalised the
    same pair, and the other landmarks' order was never trained."""
    space = get_space("v1-sync")
    landmarks = [(space.sample(random.Random(i)), float(i)) for i in range(5)]
    reg = LandmarkRegularizer(landmarks, BlobDepth(4, seed=1), DepthTask(), LandmarkConfig(pairs=1),
                              batch_size=4, device="cpu")
    seen = []

    def penalty(model, batch, pairs):
        seen.append(tuple(pairs[0]))
        return torch.tensor(0.0), 0
    monkeypatch.setattr(reg, "penalty", penalty)
    monkeypatch.setattr(reg, "batch", lambda step: {})
    for step in range(50, 80):
        reg(None, step, 100)
    assert len(seen) == 30 and len(set(seen)) >= 5  # of the 10 pairs


def test_the_regularizer_split_is_shuffled_again_every_pass():
    from depthnas.landmarks import step_indices
    first = [step_indices(8, 4, 0, step) for step in (0, 1)]  # batch 4 of 8: two steps a pass
    second = [step_indices(8, 4, 0, step) for step in (2, 3)]
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(8))
    assert first != second


def test_more_pairs_asked_for_than_there_are_means_all_pairs(toy):
    """landmarks.pairs = m >= #pairs takes every pair (the docstring's rule), for any
    m past the count: random.sample of more than the population raises."""
    space, _, archs = toy
    reg = make_regularizer([(a, float(i)) for i, a in enumerate(archs)], pairs=4)  # 3 pairs
    assert len(reg.pairs) == 3
    for m in (3, 4, 100):
        reg.cfg.pairs = m
        assert sorted(reg.draw_pairs(random.Random(0))) == sorted(reg.pairs)


def test_the_root_is_drawn_again_until_it_is_not_excluded():
    space = get_space("v1-sync")
    key = space.function_key
    rng = random.Random(3)
    first, second = space.sample(rng), space.sample(rng)
    assert key(first) != key(second)
    root = sample_landmarks(space, 2, 3, random.Random(3), exclude=[first, second])[0]
    assert key(root) not in {key(first), key(second)}


def test_a_store_that_holds_this_space_too_is_not_called_another_space_s(tmp_path, capsys):
    """A store shared by an nb201 and a v1-sync search: its v1-sync results are this
    search's to reuse, so "holds results of nb201 only, none of v1-sync" would be false."""
    from depthnas.config import Config
    from depthnas.landmark_store import LandmarkStore
    from depthnas.pipeline import SearchRun
    from depthnas.recipe import recipe
    store_path = tmp_path / "store.json"
    store = LandmarkStore(store_path)
    store.add("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
              "nb201", 0.1, recipe(Config(space="nb201", seed=0)))
    cfg = Config(space="v1-sync", seed=0, out=str(tmp_path / "run"))
    cfg.landmarks.store, cfg.landmarks.num = str(store_path), 2
    store.add("v1-sync:c3,c3,c3,c3,c3", "v1-sync", 0.2, recipe(cfg))
    SearchRun(cfg, say=print)._initial_landmarks()
    printed = capsys.readouterr().out
    assert "reusing 1 of 1 stored landmark(s)" in printed
    assert "holds results of" not in printed


# Settings a depth stand-alone loss does not depend on, and why. A field added to the
# config must be put in the recipe or here: left out silently, stored losses trained
# with another value of it would be reused as comparable.
NOT_IN_DEPTH_RECIPE = {
    "data.num_workers": "loader processes: the same batches either way",
    "data.skip_bad": "which samples were kept is in the recipe's samples digest",
    "model.channels": "classification spaces only", "model.cells_per_stage": "classification",
    "model.darts_layers": "classification", "model.num_classes": "classification",
    "standalone.channels_last": "memory layout: the same arithmetic",
    "standalone.compile": "the same model, compiled", "standalone.log_every": "logging",
}


def _another(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, (list, tuple)):
        return type(value)(_another(v) for v in value)
    return f"{value}-other" if value else "other"


def test_every_setting_is_in_the_stand_alone_recipe_or_said_why_not():
    import dataclasses
    from depthnas.config import Config
    from depthnas.recipe import recipe
    base = recipe(Config())
    for section in ("data", "model", "standalone"):
        for f in dataclasses.fields(getattr(Config(), section)):
            name = f"{section}.{f.name}"
            cfg = Config()
            part = getattr(cfg, section)
            setattr(part, f.name, _another(getattr(part, f.name)))
            assert (recipe(cfg) == base) == (name in NOT_IN_DEPTH_RECIPE), name
