"""SPOS training: a killed run resumes to the same final weights; checkpoints are atomic."""
import dataclasses
import itertools
import json
import types

import pytest
import torch

from depthnas.config import LandmarkConfig, TrainConfig
from depthnas.landmarks import LandmarkRegularizer
from depthnas.spaces import get_space
from depthnas.task import DepthTask
from depthnas.trainer import Trainer, cosine_factor, make_optimizer
from toys import TINY_MODEL, BlobDepth

SPACE = get_space("v2-sync")
CFG = TrainConfig(epochs=3, lr=2e-3, backbone_lr=1e-3, log_every=1)


def make_trainer(out, regularized=True, cfg=CFG):
    torch.manual_seed(0)
    net = SPACE.build_supernet(**TINY_MODEL)
    reg = None
    if regularized:
        # stand-alone order opposite to the super-net's, so the pair is violated and its
        # hinge trains: the resume tests then replay the penalty's gradients too
        landmarks = [(SPACE.from_string(s), v) for s, v in
                     (("v2-sync:c3,c3,c3,c3,c3+bil", 0.3), ("v2-sync:none,skip,none,c1,ap+ps", 0.1))]
        reg = LandmarkRegularizer(landmarks, BlobDepth(8, seed=5), DepthTask(), LandmarkConfig(),
                                  batch_size=4, device="cpu", total_epochs=3)
    return Trainer(net, DepthTask(), cfg, BlobDepth(8), out_dir=out, total_epochs=3, seed=7,
                   sample_arch=SPACE.sample, regularizer=reg, batch_size=4, progress=False)


def epochs_trained(out) -> list[int]:
    """The epochs a run folder's metrics.jsonl says were trained, in order."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in records if "epoch_time_s" in r]


def test_a_resumed_run_trained_in_stages_keeps_every_step_in_tensorboard(tmp_path, monkeypatch):
    """A resume tells TensorBoard to drop the steps after the checkpoint (purge_step).
    The writer is reopened by each fit() (a search fits once per iteration) and passed
    that purge step again, so TensorBoard dropped the steps this session had logged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.summary.writer import event_file_writer
    # TensorBoard reads a folder's event files in name order: second, host, pid, then a
    # per-process writer count, unpadded. A real resume is another process, later; here
    # all three writers open in one process, often in one second, and a count going
    # from 9 to 10 put the first session's file ("...9") after the resumed one's
    # ("...10"), whose purge then dropped steps 3 and 4. Counts of one width keep
    # name order the order of opening, as the seconds and pids of real runs do.
    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(1000))
    make_trainer(tmp_path / "run", regularized=False).fit(until_epoch=1)
    resumed = make_trainer(tmp_path / "run", regularized=False)
    resumed.fit(until_epoch=2)
    resumed.fit()
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert sorted(e.step for e in events.Scalars("train/loss")) == list(range(1, resumed.state.step + 1))


def test_a_resume_with_other_steps_per_epoch_continues_the_schedules_from_its_epoch(tmp_path,
                                                                                   caplog):
    """Resumed on another number of ranks, an epoch has another number of steps. The
    checkpoint's step count then sat elsewhere in the new schedule: from 1 process to 2
    ranks past its end, so the learning rate fell to its floor (and lambda to its end)
    for the rest of the run. The logs keep counting the steps taken, once each."""
    import dataclasses
    make_trainer(tmp_path / "run").fit(until_epoch=2)  # 2 steps an epoch: 4 of 6
    resumed = make_trainer(tmp_path / "run", cfg=dataclasses.replace(CFG, steps_per_epoch=1))
    with caplog.at_level("WARNING"):
        assert resumed.try_resume()
    assert "2 steps per epoch" in caplog.text and "this run takes 1" in caplog.text
    assert "the learning rate and the landmark schedule go on" in caplog.text
    plain = tmp_path / "plain"  # a stand-alone training has no landmark schedule to name
    make_trainer(plain, regularized=False).fit(until_epoch=2)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert make_trainer(plain, regularized=False,
                            cfg=dataclasses.replace(CFG, steps_per_epoch=1)).try_resume()
    assert "the learning rate goes on" in caplog.text and "landmark" not in caplog.text
    lrs = [g["lr"] for g in resumed.optimizer.param_groups]  # epoch 2 of 3: step 2 of 3
    assert lrs == pytest.approx([CFG.lr * cosine_factor(2, 3), CFG.backbone_lr * cosine_factor(2, 3)])
    resumed.fit()
    assert resumed.scheduler.last_epoch == resumed.total_steps == 3  # the schedule's end
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]  # 4 taken before, 1 after
    assert steps[-1]["lambda"] == pytest.approx(LandmarkConfig().lambda_max)  # its last step


def test_a_resume_after_a_change_of_steps_per_epoch_warns_only_of_a_change(tmp_path, caplog):
    """After one resume on another number of ranks, every later resume on that same
    number warned "trained 2 steps per epoch, this run takes 2 (another number of
    ranks?)": the steps taken no longer fit epochs x steps of either session."""
    import dataclasses
    one_step = dataclasses.replace(CFG, steps_per_epoch=1)
    make_trainer(tmp_path / "run", regularized=False).fit(until_epoch=1)  # 2 steps an epoch
    make_trainer(tmp_path / "run", regularized=False, cfg=one_step).fit(until_epoch=2)
    caplog.clear()
    with caplog.at_level("WARNING"):
        third = make_trainer(tmp_path / "run", regularized=False, cfg=one_step)
        assert third.try_resume()
    assert "steps per epoch" not in caplog.text
    assert third.state.step == 3 and third._schedule_offset == 1  # aligned all the same


@pytest.mark.parametrize("before, after", [(False, True), (True, False)])
def test_a_resume_in_another_memory_layout_trains_as_if_it_had_not_changed(tmp_path, before, after):
    """--channels-last may change on a resume ("how fast it runs, not what it computes"),
    but Adam's moments came back in the saved layout, beside parameters in the other,
    and the fused update went wrong from the first step: another architecture won."""
    make_trainer(tmp_path / "a", regularized=False,
                 cfg=dataclasses.replace(CFG, channels_last=before)).fit(until_epoch=1)
    import shutil
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    same = make_trainer(tmp_path / "a", regularized=False, cfg=dataclasses.replace(CFG, channels_last=before))
    other = make_trainer(tmp_path / "b", regularized=False, cfg=dataclasses.replace(CFG, channels_last=after))
    for trainer in (same, other):
        trainer.fit(until_epoch=2)
    for (name, a), b in zip(same.model.state_dict().items(), other.model.state_dict().values()):
        # float noise (Adam amplifies it in near-zero parameters) stays under 1e-3; the
        # moments in the wrong layout moved weights by 4e-3 in one epoch
        torch.testing.assert_close(a, b, rtol=0, atol=1e-3, msg=name)


def test_resume_reaches_the_same_final_weights(tmp_path):
    full = make_trainer(tmp_path / "full")
    full.fit()
    killed = make_trainer(tmp_path / "killed")
    killed.fit(until_epoch=2)                # "killed" after epoch 2
    resumed = make_trainer(tmp_path / "killed")
    resumed.fit()                            # a fresh process picks up the checkpoint
    assert resumed.state.epoch == 3 and resumed.state.step == full.state.step
    # it continued from epoch 3 (a deterministic restart would reach the same weights)
    assert epochs_trained(tmp_path / "killed") == [1, 2, 3]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_a_run_killed_after_logging_an_epoch_keeps_one_record_per_step(tmp_path):
    """A kill between an epoch's log lines and its checkpoint: the resumed run trains
    that epoch again and used to log every one of its steps a second time."""
    killed = make_trainer(tmp_path / "run", regularized=False)
    killed.fit(until_epoch=2)
    killed.checkpoints.folder.joinpath("epoch_0002").rename(tmp_path / "moved")  # never saved
    resumed = make_trainer(tmp_path / "run", regularized=False)
    resumed.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, resumed.state.step + 1))
    assert epochs_trained(tmp_path / "run") == [1, 2, 3]


def test_fitting_in_stages_continues_from_memory_without_announcing_a_resume(tmp_path, caplog):
    """The search trains its super-net in T stages on one Trainer. The second stage
    used to reload the checkpoint it had just written and log 'resuming after
    epoch 1' in a run that was never interrupted."""
    staged = make_trainer(tmp_path / "staged")
    staged.fit(until_epoch=1)
    with caplog.at_level("INFO", logger="depthnas.trainer"):
        staged.fit(until_epoch=1)  # nothing left to train (a resumed search's later stages)
        assert staged.checkpoints.latest() is not None  # and nothing deleted
        staged.fit(until_epoch=3)
    assert "resuming" not in caplog.text
    with pytest.raises(ValueError, match=r"fit\(resume=False\) on a Trainer that has trained 3"):
        staged.fit(resume=False)  # it used to delete the checkpoints and keep going
    assert staged.checkpoints.latest() is not None
    full = make_trainer(tmp_path / "full")
    full.fit()
    a, b = full.model.state_dict(), staged.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


POINTER_DAMAGE = {"lost pointer": None, "damaged pointer": b"\xff\xfe\x00junk",
                  # a stop between the epoch's rename and the pointer's write: an epoch lost
                  "lagging pointer": b"epoch_0001\n"}


@pytest.mark.parametrize("damage", ["truncated state", "empty weights", *POINTER_DAMAGE])
def test_resume_survives_a_damaged_checkpoint(tmp_path, damage, caplog):
    """A checkpoint damaged after it was written (a full disk, a copy cut short) is
    named and skipped: the run resumes from the epoch before and ends as an
    uninterrupted one would; a `latest` pointer lost, damaged or one epoch behind
    finds the newest epoch."""
    full = make_trainer(tmp_path / "full")
    full.fit()
    make_trainer(tmp_path / "killed").fit(until_epoch=2)
    ckpt = tmp_path / "killed" / "checkpoints"
    if damage == "truncated state":
        state = ckpt / "epoch_0002" / "state.pt"
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "empty weights":
        (ckpt / "epoch_0002" / "model.safetensors").write_bytes(b"")
    elif POINTER_DAMAGE[damage] is None:
        (ckpt / "latest").unlink()
    else:
        (ckpt / "latest").write_bytes(POINTER_DAMAGE[damage])
    resumed = make_trainer(tmp_path / "killed")
    with caplog.at_level("WARNING"):
        resumed.fit()
    expected_from = "epoch_0002" if damage in POINTER_DAMAGE else "epoch_0001"
    assert resumed.checkpoints.loaded.name == expected_from
    if damage not in POINTER_DAMAGE:
        assert "epoch_0002" in caplog.text and "unreadable" in caplog.text
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_no_readable_checkpoint_is_a_clear_error(tmp_path):
    make_trainer(tmp_path).fit(until_epoch=1)
    (tmp_path / "checkpoints" / "epoch_0001" / "state.pt").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"no readable checkpoint under .*epoch_0001.*state.pt") as err:
        make_trainer(tmp_path).fit()
    # the way out deletes the checkpoints, not the run folder (hours of landmarks)
    assert f"delete {tmp_path / 'checkpoints'} to train this model from the start" in str(err.value)


def test_the_landmark_penalty_trains_the_super_net(tmp_path):
    """The hinge of a violated pair reaches the optimizer: an op that only a landmark
    uses (off the sampled path) is trained through the penalty, and by nothing else.
    The step minimises L = L_s + lambda * R (paper Eq. 6): added, at lambda's weight."""
    path = SPACE.from_string("v2-sync:c1,c1,c1,c1,c1+bic")  # no 3x3 conv, no pixel shuffle
    batch = {k: torch.stack([b[k] for b in BlobDepth(4).items]) for k in BlobDepth(4).items[0]}
    after = {}
    for regularized in (True, False):
        t = make_trainer(tmp_path / str(regularized), regularized=regularized)
        if regularized:
            t.regularizer.cfg = LandmarkConfig(schedule="constant")  # lambda_max at step 0
        seen = []
        forward = t.step_loss.forward
        t.step_loss.forward = lambda *a, **k: seen.append(forward(*a, **k)) or seen[-1]
        logs = t.train_step(batch, path)
        (total, task_loss, _), = seen
        if regularized:
            assert logs["reg_violated"] == 1.0 and logs["lambda"] == 10.0 and logs["reg"] > 0
            assert total.item() == pytest.approx(task_loss.item() + 10.0 * logs["reg"], rel=1e-6)
        else:
            assert total is task_loss
        after[regularized] = dict(t.model.named_parameters())
    fresh = dict(make_trainer(tmp_path / "fresh", regularized=False).model.named_parameters())
    # (the second landmark ignores node 0, the coarser block: only the last block's
    # upsampling reaches its output)
    landmark_only = [k for k in fresh if "nor_conv_3x3" in k or "3.upsample.pixel_shuffle" in k]
    assert len(landmark_only) == 4 * 5 * 3 + 3
    assert all(not torch.equal(after[True][k], fresh[k]) for k in landmark_only)
    assert all(torch.equal(after[False][k], fresh[k]) for k in landmark_only)


def test_lambda_rises_from_zero_to_lambda_max_over_a_run(tmp_path):
    """The increasing cosine: lambda 0 at the first step, lambda_max at the last step
    of the whole run (across fit() calls and epochs), as in the paper's Eq. 5."""
    t = make_trainer(tmp_path)
    t.fit(until_epoch=1)
    t.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lambdas = [r["lambda"] for r in rows if "loss" in r]
    assert len(lambdas) == t.total_steps == 6
    assert lambdas[0] == 0.0 and lambdas[-1] == pytest.approx(LandmarkConfig().lambda_max)
    assert lambdas == sorted(lambdas)


def test_a_checkpoint_whose_save_fails_leaves_the_last_one_intact(tmp_path, monkeypatch):
    """Checkpoints are built under a temporary name and renamed into place: a save that
    fails half-way (disk full, a kill) leaves the previous epoch as the one to resume."""
    import depthnas.checkpoint as ckpt
    make_trainer(tmp_path).fit(until_epoch=1)
    real = ckpt.torch.save

    def disk_full(obj, f, *a, **k):
        real(obj, f, *a, **k)  # part of the files is written ...
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(ckpt.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        make_trainer(tmp_path).fit(until_epoch=2)
    monkeypatch.undo()
    folder = tmp_path / "checkpoints"
    assert (folder / "latest").read_text().strip() == "epoch_0001"
    assert not (folder / "epoch_0002").exists() and not list(folder.glob(".*"))
    resumed = make_trainer(tmp_path)
    assert resumed.try_resume() and resumed.state.epoch == 1


def test_clipping_caps_each_step_and_the_logged_norm_is_the_unclipped_one(tmp_path, monkeypatch):
    """grad_clip caps the gradient norm an update uses; 0 turns clipping off (the quick
    preset's super-net). Either way the log holds the norm before clipping."""
    import torch.nn as nn
    used = []
    clip = nn.utils.clip_grads_with_norm_

    def spy(params, max_norm, total_norm, *a, **k):
        clip(params, max_norm, total_norm, *a, **k)
        used.append(float(nn.utils.get_total_norm([p.grad for p in params])))
    monkeypatch.setattr(nn.utils, "clip_grads_with_norm_", spy)
    logged = {}
    for grad_clip in (1e-3, 0.0):
        out = tmp_path / str(grad_clip)
        make_trainer(out, cfg=dataclasses.replace(CFG, grad_clip=grad_clip)).fit(until_epoch=1)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        logged[grad_clip] = [r["grad_norm"] for r in records if "loss" in r]
    assert used and all(n == pytest.approx(1e-3, rel=1e-3) for n in used)  # capped, while on only
    assert len(used) == 2 and len(logged[0.0]) == len(logged[1e-3]) == 2  # 8 samples, batch 4
    assert all(n > 1e-3 for n in logged[1e-3] + logged[0.0])


def test_the_update_itself_is_clipped_not_only_the_gradients_left_after_it(tmp_path):
    """Clipped after optimizer.step(), grad_clip would cap only the leftover .grad and
    change no update. With a cap far below the gradient norm, AdamW's first step
    (about g / (|g| + eps)) all but vanishes."""
    from torch.utils.data import default_collate
    batch = default_collate([BlobDepth(8)[i] for i in range(4)])
    path = SPACE.from_string("v2-sync:c3,c3,c3,c3,c3+bil")
    moved = {}
    for grad_clip in (0.0, 1e-9):
        t = make_trainer(tmp_path / str(grad_clip), regularized=False,
                         cfg=dataclasses.replace(CFG, grad_clip=grad_clip, weight_decay=0.0))
        before = {k: v.detach().clone() for k, v in t.model.named_parameters()}
        t.train_step(batch, path)
        moved[grad_clip] = sum(float((v.detach() - before[k]).abs().sum())
                               for k, v in t.model.named_parameters())
    assert moved[0.0] > 0 and moved[1e-9] < 0.1 * moved[0.0]


def test_each_epoch_samples_its_own_paths(tmp_path, monkeypatch):
    """SPOS trains a fresh uniform path each step: a path stream seeded once per run,
    not per epoch, repeats every epoch (here the super-net would train 2 paths in all)."""
    monkeypatch.setattr(Trainer, "train_step", lambda self, batch, arch: {"loss": 0.0})
    drawn = []
    t = make_trainer(tmp_path, regularized=False)
    t.sample_arch = lambda rng: drawn.append(SPACE.sample(rng)) or drawn[-1]
    t.fit(until_epoch=2)
    assert len(drawn) == 4  # 8 samples, batch 4: 2 steps an epoch
    assert drawn[:2] != drawn[2:] and len(set(drawn)) > 2


def test_logs_and_checkpoints(tmp_path):
    t = make_trainer(tmp_path)
    t.fit(until_epoch=1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert steps and all({"lambda", "lr", "grad_norm"} <= set(r) for r in steps)
    # each step's own rate: the first takes the schedule's start, not the next step's
    assert steps[0]["lr"] == pytest.approx(t.cfg.lr)
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "epoch_0001"
    assert (tmp_path / "checkpoints" / "epoch_0001" / "model.safetensors").is_file()
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporaries left behind
    # nor from a save that a kill cut short, which the next save clears away
    (tmp_path / "checkpoints" / ".epoch_0002.killed").mkdir()
    t.fit(until_epoch=2)
    assert not list((tmp_path / "checkpoints").glob(".*"))
    assert list((tmp_path / "tb").iterdir())  # TensorBoard events


def test_training_reduces_the_loss(tmp_path):
    net = SPACE.build_fixed(SPACE.from_string("v2-sync:c3,c3,c3,c3,c3+bil"), **TINY_MODEL)
    t = Trainer(net, DepthTask(), TrainConfig(epochs=6, lr=3e-3, backbone_lr=3e-3, log_every=1),
                BlobDepth(16), out_dir=tmp_path, total_epochs=6, batch_size=4, progress=False)
    t.fit()
    losses = [json.loads(line)["train_loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if "train_loss" in line]
    assert losses[-1] < 0.7 * losses[0]


def test_nonfinite_loss_is_reported(tmp_path):
    t = make_trainer(tmp_path, regularized=False)
    batch = BlobDepth(4).items
    bad = {k: torch.stack([b[k] for b in batch]) for k in batch[0]}
    bad["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss at step 0"):
        t.train_step(bad, SPACE.sample(__import__("random").Random(0)))


def test_a_finite_loss_with_non_finite_gradients_changes_no_weight(tmp_path):
    """sqrt at zero: the loss is finite, its gradient is not. The step used to apply
    the NaN gradient, checkpoint NaN weights, and make every resume fail."""
    class SqrtTask(DepthTask):
        def loss(self, output, batch):
            return output.abs().sqrt().mean() * 0.0 + (output * 0.0).abs().sqrt().sum()
    torch.manual_seed(0)
    net = SPACE.build_fixed(SPACE.from_string("v2-sync:c3,c3,c3,c3,c3+bil"), **TINY_MODEL)
    t = Trainer(net, SqrtTask(), CFG, BlobDepth(8), out_dir=tmp_path, total_epochs=1,
                batch_size=4, progress=False)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    batch = {k: torch.stack([b[k] for b in BlobDepth(4).items]) for k in BlobDepth(4).items[0]}
    with pytest.raises(FloatingPointError, match="non-finite gradient at step 0"):
        t.train_step(batch, None)
    for k, v in net.named_parameters():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)


def test_cosine_learning_rate_schedule():
    assert cosine_factor(0, 100) == 1.0
    assert cosine_factor(100, 100) == pytest.approx(0.01)
    assert cosine_factor(50, 100) == pytest.approx(0.505)


def test_optimizer_is_fused_adamw_with_a_backbone_group_and_matches_the_loop():
    """The fused kernel is a speed choice only: same updates as AdamW's per-tensor loop."""
    torch.manual_seed(0)
    net = SPACE.build_supernet(**TINY_MODEL)
    opt = make_optimizer(net, CFG)
    assert opt.defaults["fused"]
    backbone = {id(p) for p in net.backbone.parameters()}
    assert [g["lr"] for g in opt.param_groups] == [CFG.lr, CFG.backbone_lr]
    assert all(id(p) in backbone for p in opt.param_groups[1]["params"])
    ref = [p.detach().clone().requires_grad_() for g in opt.param_groups for p in g["params"]]
    n_rest = len(opt.param_groups[0]["params"])
    loop = torch.optim.AdamW([{"params": ref[:n_rest], "lr": CFG.lr},
                              {"params": ref[n_rest:], "lr": CFG.backbone_lr}],
                             weight_decay=CFG.weight_decay, foreach=False)
    live = [p for g in opt.param_groups for p in g["params"]]
    start = [p.detach().clone() for p in live]
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        for a, b in zip(live, ref):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        loop.step()
    moved = min((a.detach() - s).abs().max().item() for a, s in zip(live, start))
    apart = max((a.detach() - b.detach()).abs().max().item() for a, b in zip(live, ref))
    assert moved > 1e-5 and apart < 1e-6


def _resume_matches(make, tmp_path) -> None:
    full = make(tmp_path / "full")
    full.fit()
    make(tmp_path / "killed").fit(until_epoch=1)
    resumed = make(tmp_path / "killed")  # new objects, as in a fresh process
    resumed.fit()
    assert epochs_trained(tmp_path / "killed") == [1, 2]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_resume_replays_the_augmentations(tmp_path):
    """Random crops and flips of epoch k depend on (seed, k) alone, not on what the
    process did before (albumentations keeps generators of its own)."""
    from depthnas.datasets import SyntheticDepth
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, lr=2e-3, backbone_lr=1e-3, log_every=100)

    def make(out):
        torch.manual_seed(0)
        net = SPACE.build_supernet(**TINY_MODEL)
        data = SyntheticDepth(8, (64, 64), seed=0, augment=True)
        return Trainer(net, DepthTask(), cfg, data, out_dir=out, total_epochs=2, seed=3,
                       sample_arch=SPACE.sample, batch_size=4, progress=False)
    _resume_matches(make, tmp_path)


def test_resume_with_the_regularizer_replays_the_training_augmentations(tmp_path):
    """Re-creating the regularizer's loader on resume must not draw from torch's global
    generator, which the digits training split augments with."""
    from depthnas.config import Config
    from depthnas.datasets.classification import build_classification_splits
    from depthnas.models import model_kwargs
    from depthnas.task import make_task
    space = get_space("nb201")
    cfg = Config(space="nb201")
    cfg.model.cells_per_stage, cfg.model.channels = 1, 8
    tcfg = TrainConfig(epochs=2, steps_per_epoch=3, lr=2e-3, backbone_lr=1e-3, log_every=100)
    splits = build_classification_splits("digits", seed=0)
    task = make_task(space, "ce")

    def make(out):
        torch.manual_seed(0)
        net = space.build_supernet(**model_kwargs(cfg.model, space))
        landmarks = [(space.sample(__import__("random").Random(i)), float(i)) for i in range(3)]
        reg = LandmarkRegularizer(landmarks, splits.reg, task, LandmarkConfig(schedule="constant"),
                                  batch_size=8, device="cpu", total_epochs=2)
        return Trainer(net, task, tcfg, splits.train, out_dir=out, total_epochs=2, seed=7,
                       sample_arch=space.sample, regularizer=reg, batch_size=8, progress=False)
    _resume_matches(make, tmp_path)


def test_a_write_that_fails_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path,
                                                                           monkeypatch):
    """safetensors said "No space left on device (os error 28)" and torch.save
    "unexpected pos", neither naming the file, in a 40-line traceback."""
    import errno
    import shutil
    from depthnas import io
    target = tmp_path / "state.pt"

    def disk_full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(io.WriteError, match=r"cannot write .*state\.pt \(No space left on device\)"):
        io.atomic_write(target, disk_full)

    def torch_on_a_full_disk(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: usage._replace(free=4096))
    with pytest.raises(io.WriteError, match=r"state\.pt \(no space left on the device: 4096 bytes"):
        io.atomic_write(target, torch_on_a_full_disk)
    # room on the disk, none in a quota or under `ulimit -f`: a traceback, no resume hint
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: usage._replace(free=2**30))
    with pytest.raises(io.WriteError, match=r"state\.pt \(the write stopped short: a quota or a "
                                            r"file-size limit reached\?\)"):
        io.atomic_write(target, torch_on_a_full_disk)

    def safetensors_over_a_limit(tmp):
        raise RuntimeError('Error while serializing: IoError(Os { code: 27, kind: FileTooLarge, '
                           'message: "File too large" })')
    with pytest.raises(io.WriteError, match=r"state\.pt \(File too large\)"):
        io.atomic_write(target, safetensors_over_a_limit)

    def another_fault(tmp):
        raise RuntimeError("a writer's own fault")
    with pytest.raises(RuntimeError, match="a writer's own fault"):
        io.atomic_write(target, another_fault)
    assert not any(tmp_path.iterdir())  # no temporary file left behind


def test_a_log_line_torn_by_a_kill_is_skipped_and_the_next_record_starts_its_own_line(tmp_path, caplog):
    from depthnas.io import append_jsonl, read_jsonl
    from depthnas.report_plots import _log, _records
    log = tmp_path / "metrics.jsonl"
    append_jsonl(log, {"phase": "supernet", "step": 1, "loss": 0.5})
    with open(log, "a") as fh:
        fh.write('{"phase": "supernet", "step": 2, "lo')  # kill -9 mid-write
    append_jsonl(log, {"phase": "supernet", "step": 3, "loss": 0.3})
    with caplog.at_level("WARNING"):
        records = read_jsonl(log)
    assert [r["step"] for r in records] == [1, 3]
    assert log.read_text().count("\n") == 3  # no blank line after a whole one
    assert "metrics.jsonl line 2: skipped" in caplog.text
    assert [r["step"] for r in _records(_log(tmp_path), "supernet")[0]] == [1, 3]  # report.md still renders


def test_the_training_data_is_the_same_for_any_number_of_loader_workers(tmp_path):
    """data.num_workers may change on --resume: with workers, torch drew their seeds
    from the loader's generator and the crops, flips and jitter differed from a run
    without workers, so the resumed run trained on other data."""
    from depthnas.datasets import build_splits
    train = build_splits("synthetic", (32, 32), seed=0, synthetic_samples=16, augment=True).train

    def first_batches(workers):
        torch.manual_seed(0)
        net = SPACE.build_supernet(**TINY_MODEL)
        t = Trainer(net, DepthTask(), CFG, train, out_dir=tmp_path / f"w{workers}", total_epochs=1,
                    seed=7, batch_size=4, progress=False, num_workers=workers)
        return [b["image"] for _, b in zip(range(2), t._batches(0))]
    base = first_batches(0)
    for workers in (1, 2):
        for a, b in zip(base, first_batches(workers)):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{workers} workers")


def test_with_loader_workers_the_synthetic_scenes_are_rendered_once_not_every_epoch(tmp_path):
    """Each epoch's loader forks new workers: scenes a worker rendered died with it,
    so every epoch rendered its scenes again (at 2 workers, 15x the loading time
    of an epoch without workers)."""
    from depthnas.datasets import build_splits
    train = build_splits("synthetic", (32, 32), seed=0, synthetic_samples=16, augment=True).train
    net = SPACE.build_supernet(**TINY_MODEL)
    t = Trainer(net, DepthTask(), CFG, train, out_dir=tmp_path, total_epochs=1, seed=7,
                batch_size=4, progress=False, num_workers=1)
    next(t._batches(0))
    assert sorted(train._cache) == list(range(len(train)))  # in this process, for every epoch


def test_a_state_holding_other_objects_is_refused_without_torchs_advice_to_run_it(tmp_path):
    """torch's message for such a file advises weights_only=False: running its pickle."""
    import pickle
    make_trainer(tmp_path).fit(until_epoch=1)
    state = tmp_path / "checkpoints" / "epoch_0001" / "state.pt"
    torch.save({"step": 1, "note": pickle.PickleError("not a plain value")}, state)
    with pytest.raises(ValueError) as err:
        make_trainer(tmp_path).fit()
    assert "holds objects a training state does not: it is not loaded" in str(err.value)
    assert "weights_only" not in str(err.value)


def test_batches_copy_asynchronously_only_onto_the_gpu(monkeypatch):
    """A non-blocking copy to the host returns before the data lands: the constant
    level (scored on the CPU from GPU-resident batches) read unfinished targets."""
    from depthnas.task import move

    calls = []
    monkeypatch.setattr(torch.Tensor, "to", lambda self, device, **kw: calls.append(
        (torch.device(device).type, kw.get("non_blocking", False))) or self)
    batch = {"image": torch.zeros(1), "target": torch.zeros(1), "name": "x"}
    move(batch, torch.device("cpu"))
    move(batch, torch.device("cuda", 0))
    assert calls == [("cpu", False)] * 2 + [("cuda", True)] * 2


def _epochs_saved(folder, n, keep=2):
    from depthnas.checkpoint import Checkpointer
    checkpoints = Checkpointer(folder, keep=keep)
    for epoch in range(1, n + 1):
        checkpoints.save(epoch, torch.nn.Linear(2, 2), {"epoch": epoch}, {"arch": f"a{epoch}"})
    return checkpoints


def test_keep_n_keeps_exactly_the_newest_n_epochs(tmp_path):
    """Each checkpoint holds the optimizer state too (~1 GB at the paper's size)."""
    _epochs_saved(tmp_path, 4, keep=2)
    assert sorted(p.name for p in tmp_path.glob("epoch_*")) == ["epoch_0003", "epoch_0004"]


def test_a_damaged_newest_epoch_falls_back_to_the_one_before(tmp_path):
    """For its metadata too (the architecture a training folder holds), and a pointer to
    an epoch missing a file is not followed."""
    checkpoints = _epochs_saved(tmp_path / "cut", 2)
    (tmp_path / "cut" / "epoch_0002" / "model.safetensors").write_bytes(b"cut short")
    assert checkpoints.latest_metadata()["arch"] == "a1"
    checkpoints = _epochs_saved(tmp_path / "half", 2)
    (tmp_path / "half" / "epoch_0002" / "state.pt").unlink()
    assert checkpoints.latest().name == "epoch_0001"


def test_dropping_log_records_keeps_lines_that_are_no_records(tmp_path):
    """A torn line (a killed write) is no record of the steps being dropped: kept."""
    from depthnas.io import drop_jsonl_records
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"k": "a"}\n{"k": "tor\n{"k": "b"}\n')
    assert drop_jsonl_records(log, lambda r: r.get("k") == "a") == 1
    assert log.read_text() == '{"k": "tor\n{"k": "b"}\n'


def _step_rows(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r]


def test_steps_per_epoch_above_the_batches_there_are_keeps_the_schedules_to_the_run(tmp_path):
    """train.steps_per_epoch caps an epoch. Set above the batches the split holds, the
    epoch still has only those: the schedules must be laid out over the steps that are
    taken, so the learning rate reaches its floor and lambda its maximum at the end."""
    t = make_trainer(tmp_path, cfg=dataclasses.replace(CFG, steps_per_epoch=100))
    assert t.steps_per_epoch == 2 and t.total_steps == 6  # 8 samples, batches of 4
    t.fit()
    assert t.state.step == 6 and t.scheduler.last_epoch == t.total_steps
    assert _step_rows(tmp_path)[-1]["lambda"] == pytest.approx(LandmarkConfig().lambda_max)


def test_a_resume_with_more_steps_per_epoch_takes_lambda_from_its_epoch_s_place(tmp_path):
    """The reverse of 1 process -> 2 ranks: a checkpoint of 1 step an epoch resumed at
    2. Epoch 1 ends at step 2 of this run's 6: lambda (and the regularizer's batches)
    go on from there, not from the 1 step taken."""
    make_trainer(tmp_path / "run", cfg=dataclasses.replace(CFG, steps_per_epoch=1)).fit(until_epoch=1)
    resumed = make_trainer(tmp_path / "run")
    resumed.fit()
    steps = _step_rows(tmp_path / "run")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5]  # 1 taken before, 4 after
    expected = [resumed.regularizer.lam(p, resumed.total_steps) for p in range(2, 6)]
    assert [r["lambda"] for r in steps[1:]] == pytest.approx(expected)
    assert steps[-1]["lambda"] == pytest.approx(LandmarkConfig().lambda_max)


def test_a_fresh_start_over_a_longer_training_keeps_and_resumes_its_own_epochs(tmp_path):
    """fit(resume=False) in a folder holding another training's epochs 2 and 3: pruning
    to the newest two by name removed the new epoch 1 as soon as it was saved, and a
    resume then continued the other training from its epoch 3."""
    make_trainer(tmp_path / "run", regularized=False).fit()
    again = make_trainer(tmp_path / "run", regularized=False)
    again.fit(until_epoch=1, resume=False)
    assert sorted(p.name for p in again.checkpoints.folder.glob("epoch_*")) == ["epoch_0001"]
    resumed = make_trainer(tmp_path / "run", regularized=False)
    assert resumed.try_resume() and resumed.state.epoch == 1 and resumed.state.step == 2


def test_the_training_time_of_a_resumed_run_counts_every_session(tmp_path, monkeypatch):
    """train_s sums the epochs of every session (a fake clock: each epoch takes 1 s)."""
    import depthnas.trainer as trainer
    clock = itertools.count()
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(time=lambda: float(next(clock))))
    first = make_trainer(tmp_path / "run", regularized=False)
    first.fit(until_epoch=2)
    assert first.state.train_s == 2.0
    resumed = make_trainer(tmp_path / "run", regularized=False)
    assert resumed.fit().train_s == 3.0


def test_bf16_precision_runs_the_training_step_under_autocast(tmp_path):
    """train.precision=bf16 must reach the step's forward pass: ignored, a bf16 run
    trained in float32 and said nothing."""
    seen = []
    for precision in ("bf16", "fp32"):
        t = make_trainer(tmp_path / precision, regularized=False,
                         cfg=dataclasses.replace(CFG, precision=precision))
        hook = t.model.register_forward_hook(
            lambda m, i, o: seen.append((precision, torch.is_autocast_enabled("cpu"))))
        batch = {k: torch.stack([b[k] for b in BlobDepth(4).items]) for k in BlobDepth(4).items[0]}
        t.train_step(batch, SPACE.from_string("v2-sync:c1,c1,c1,c1,c1+bic"))
        hook.remove()
    assert ("bf16", True) in seen and ("bf16", False) not in seen
    assert ("fp32", True) not in seen


def test_written_files_and_folders_get_exactly_the_umask_permissions(tmp_path):
    """Atomic writes go through owner-only temporaries (mode 0600/0700): a model another
    user serves must still be readable, and not writable by all either. Files and
    folders get the modes open() and mkdir() would give, the umask taken off 0666/0777."""
    import os
    import stat
    from depthnas.checkpoint import Checkpointer
    from depthnas.io import _UMASK, atomic_write_json
    if not _UMASK:
        pytest.skip("umask 000: every mode is the full one anyway")
    f = atomic_write_json(tmp_path / "a.json", {"x": 1})
    ckpt = Checkpointer(tmp_path / "checkpoints").save(1, torch.nn.Linear(2, 2), {"epoch": 1})
    for path, full in ((f, 0o666), (ckpt, 0o777), (ckpt / "model.safetensors", 0o666),
                       (ckpt / "state.pt", 0o666)):
        assert stat.S_IMODE(os.stat(path).st_mode) == full & ~_UMASK, (path, oct(os.stat(path).st_mode))


def test_a_run_killed_in_its_first_epoch_keeps_one_record_per_step(tmp_path):
    """Killed before its first checkpoint, a run has logged steps no checkpoint holds:
    the resume trains them again from step 0 and must not log them a second time."""
    import shutil
    killed = make_trainer(tmp_path / "run", regularized=False)
    killed.fit(until_epoch=1)
    shutil.rmtree(killed.checkpoints.folder)  # the kill came before the epoch's save
    resumed = make_trainer(tmp_path / "run", regularized=False)
    resumed.fit()
    assert [r["step"] for r in _step_rows(tmp_path / "run")] == list(range(1, resumed.state.step + 1))


def test_autocast_refuses_a_precision_it_does_not_know():
    from depthnas.runtime import autocast
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        autocast(torch.device("cpu"), "fp16")


def test_keeping_the_latest_checkpoint_alone_keeps_the_one_that_reads(tmp_path):
    """A finished search prunes its super-net's checkpoints to the latest: by position in
    the sorted folders it kept an incomplete higher epoch and deleted the only whole one."""
    import shutil

    from depthnas.checkpoint import Checkpointer
    checkpoints = Checkpointer(tmp_path / "checkpoints")
    for epoch in (1, 2):
        checkpoints.save(epoch, torch.nn.Linear(2, 2), {"epoch": epoch})
    broken = tmp_path / "checkpoints" / "epoch_0003"  # a model file, no training state
    broken.mkdir()
    shutil.copy(tmp_path / "checkpoints" / "epoch_0002" / "model.safetensors", broken)
    checkpoints.keep_latest_only()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch_*")) == ["epoch_0002"]


@pytest.mark.parametrize("name", ["mps", "xpu", "meta"])
def test_a_device_torch_knows_and_depthnas_does_not_run_on_is_named(name):
    """predict, evaluate, rank and the demo take --device without the config check:
    mps was torch's RuntimeError traceback, xpu an AssertionError, meta a
    NotImplementedError, deep in the first model call."""
    from depthnas.runtime import resolve_device
    with pytest.raises(ValueError, match=f"device '{name}': depthnas runs on auto, cpu, cuda or cuda:N"):
        resolve_device(name)
