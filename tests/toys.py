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


def own_depth_space():
    """A depth space of a user's own, as README's "A search space of your own"
    describes one: no timm backbone, no MiDaS decoder, but a stem and three layers,
    each a 3x3 convolution or a skip, `width` channels wide (read from model.channels,
    a setting the depth spaces do not take). Its builders take exactly what its
    model_kwargs gives: nothing else may be passed to them."""
    from torch import nn

    from depthnas.spaces.base import ArchitectureError, SearchSpace, resolve_arch
    ops = ("conv3", "skip")

    class Net(nn.Module):
        def __init__(self, space, arch, width):
            super().__init__()
            self.space, self.fixed = space, arch
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
            chosen = [ops] * 3 if arch is None else [(ops[g],) for g in arch.genes]
            self.layers = nn.ModuleList(nn.ModuleDict(
                {op: nn.Conv2d(width, width, 3, padding=1) if op == "conv3" else nn.Identity()
                 for op in names}) for names in chosen)
            self.head = nn.Conv2d(width, 1, 1)

        def forward(self, x, arch=None):
            arch = resolve_arch(self.space, self.fixed, arch)
            x = self.stem(x)
            for layer, g in zip(self.layers, arch.genes):
                x = layer[ops[g]](x)
            return torch.relu(self.head(x))

    class Own(SearchSpace):
        name = "own"
        strings_name_space = True

        def gene_choices(self):
            return (2, 2, 2)

        def to_string(self, arch):
            return "own:" + ",".join(ops[g] for g in self.check(arch).genes)

        def from_string(self, text):
            names = text.removeprefix("own:").split(",")
            if not text.startswith("own:") or len(names) != 3 or not set(names) <= set(ops):
                raise ArchitectureError(f"not an own-space string: {text!r}")
            return self.make([ops.index(n) for n in names])

        def to_json(self, arch):
            return {"space": self.name, "string": self.to_string(arch)}

        def from_json(self, data):
            self.check_json_space(data)
            return self.from_string(data["string"])

        def model_kwargs(self, cfg):
            return {"width": cfg.channels}

        def build_supernet(self, *, width):
            return Net(self, None, width)

        def build_fixed(self, arch, *, width):
            return Net(self, self.check(arch), width)

    return Own()
