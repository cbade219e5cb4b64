"""MiDaS fusion-block search space: `from depthnas.spaces import depth`."""
from .model import DepthNet, create_backbone
from .space import EDGES, UPSAMPLE_OPS, BlockChoice, DepthSpace, is_dead_cell

__all__ = ["DepthNet", "DepthSpace", "BlockChoice", "EDGES", "UPSAMPLE_OPS",
           "create_backbone", "is_dead_cell"]
