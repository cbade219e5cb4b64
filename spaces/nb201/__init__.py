"""NAS-Bench-201 cell search space: `from depthnas.spaces import nb201`."""
from .model import NB201Cell, NB201Net, ResNetBasicBlock
from .space import EDGE_NAMES, EDGES, NB201Space

__all__ = ["EDGES", "EDGE_NAMES", "NB201Cell", "NB201Net", "NB201Space", "ResNetBasicBlock"]
