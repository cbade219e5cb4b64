"""Tiny in-memory data and model settings shared by the core tests."""
import torch
from torch.utils.data import Dataset

TINY_MODEL = dict(backbone="mobilenetv3_small_050", features=16)


class BlobDepth(Dataset):
    """Images whose brightness encodes disparity: learnable in a few steps."""

    def __init__(self, n: int = 16, size: int = 64, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        self.items = []
        for _ in range(n):
            cx, cy = torch.rand(2, generator=g)
            target = (yy * 0.5 + torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * 20)).clamp(0, 1)
            image = target.expand(3, -1, -1) * 2 - 1 + 0.05 * torch.randn(3, size, size, generator=g)
            mask = torch.ones(1, size, size, dtype=torch.bool)
            self.items.append({"image": image, "target": target[None], "mask": mask})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def assert_paths_equal_fixed_models(space, supernet, archs, x, model_kw, train: bool) -> None:
    """Each architecture's super-net path computes exactly what its fixed model does
    once the fixed model inherits the super-net's weights (names are a subset)."""
    from depthnas.spaces.base import inherit_weights
    state = supernet.state_dict()
    for arch in archs:
        fixed = space.build_fixed(arch, **model_kw).train(train)
        assert set(fixed.state_dict()) <= set(state)
        inherit_weights(fixed, supernet)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, arch), fixed(x), rtol=0, atol=0)
