"""MiDaS fusion-block search space: `from depthnas.spaces import depth`."""
from depthnas.lazy import exports_on_first_use

from .space import EDGES, UPSAMPLE_OPS, BlockChoice, DepthSpace, is_dead_cell

__getattr__, __dir__ = exports_on_first_use(__name__, model=("DepthNet",), backbone=("create_backbone",))

__all__ = ["DepthNet", "DepthSpace", "BlockChoice", "EDGES", "UPSAMPLE_OPS",
           "create_backbone", "is_dead_cell"]
