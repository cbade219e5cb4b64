"""One super-net training step with the landmark regularizer, the same batch on every
rank; rank 0 saves the weights after it. Run by tests/test_distributed.py under
torchrun (2 ranks) and as a plain process: the two must agree."""
import sys
from pathlib import Path

import torch
from torch.utils.data import default_collate

from depthnas import distributed as dist
from depthnas.config import LandmarkConfig, TrainConfig
from depthnas.landmarks import LandmarkRegularizer
from depthnas.spaces import get_space
from depthnas.task import DepthTask
from depthnas.trainer import Trainer
from toys import TINY_MODEL, BlobDepth

out = Path(sys.argv[1])
dist.init(torch.device("cpu"))
space, task = get_space("v2-sync"), DepthTask()
torch.manual_seed(0)
net = space.build_supernet(**TINY_MODEL)
archs = [space.from_string(s) for s in ("v2-sync:c3,c3,c3,c3,c3+bil", "v2-sync:none,skip,c1,c1,ap+ps",
                                        "v2-sync:c1,c3,skip,c3,c1+bic")]
reg_set = BlobDepth(8, seed=5)
reg = LandmarkRegularizer([(a, 0.0) for a in archs], reg_set, task,
                          LandmarkConfig(schedule="constant", pairs=0), batch_size=4,
                          device="cpu", total_epochs=1)
with torch.no_grad():  # stand-alone order opposite to the super-net's: every pair violated
    net.train()
    batch = reg.batch(0)
    losses = [float(task.loss(net(batch["image"], a), batch)) for a in archs]
reg = LandmarkRegularizer([(a, -v) for a, v in zip(archs, losses)], reg_set, task,
                          LandmarkConfig(schedule="constant", pairs=0), batch_size=4,
                          device="cpu", total_epochs=1)
trainer = Trainer(net, task, TrainConfig(lr=1e-2, backbone_lr=1e-2), BlobDepth(8), out_dir=out,
                  total_epochs=1, regularizer=reg, batch_size=4, progress=False, distributed=True)
train_batch = default_collate([BlobDepth(8)[i] for i in range(4)])
logs = trainer.train_step(train_batch, space.from_string("v2-sync:c1,skip,c3,ap,c3+bic"))
if dist.is_main():
    torch.save({"weights": net.state_dict(), "logs": logs,
                "ranks": dist.world_size()}, out / "step.pt")
dist.cleanup(finished=True)
