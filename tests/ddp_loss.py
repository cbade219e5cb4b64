"""One plain super-net training step under torchrun (2 ranks), each rank on its own
batch, as DDP shards the data. Rank 0 saves what it logged and every rank's own loss
on its batch; with "nan", rank 1's loss is NaN and rank 0 saves the error it raised.
Run by tests/test_distributed.py."""
import sys
from pathlib import Path

import torch
from torch.utils.data import default_collate

from depthnas import distributed as dist
from depthnas.config import TrainConfig
from depthnas.spaces import get_space
from depthnas.task import DepthTask
from depthnas.trainer import Trainer
from toys import TINY_MODEL, BlobDepth

out, mode = Path(sys.argv[1]), sys.argv[2]
dist.init(torch.device("cpu"))
space, task = get_space("v1-sync"), DepthTask()
torch.manual_seed(0)
net = space.build_supernet(**TINY_MODEL)
arch = space.from_string("v1-sync:c3,skip,c1,ap,c3")
data = BlobDepth(8)
batch = default_collate([data[i] for i in range(4 * dist.rank(), 4 * dist.rank() + 4)])
with torch.no_grad():  # this rank's loss on its shard, as the step computes it (train mode)
    net.train()
    own = float(task.loss(net(batch["image"], arch), batch))
if mode == "nan" and dist.rank() == 1:
    real = task.loss
    task.loss = lambda pred, b: real(pred, b) * float("nan")
trainer = Trainer(net, task, TrainConfig(lr=1e-2, backbone_lr=1e-2), data, out_dir=out,
                  total_epochs=1, batch_size=4, progress=False, distributed=True,
                  sample_arch=space.sample)
try:
    logs, error = trainer.train_step(batch, arch), None
except FloatingPointError as err:
    logs, error = None, str(err)
losses = dist.gather_objects(own)
if dist.is_main():
    torch.save({"logs": logs, "error": error, "losses": losses}, out / "step.pt")
dist.cleanup(finished=True)
