"""NAS-Bench-201 cell search space: `from depthnas.spaces import nb201`."""
from depthnas.lazy import exports_on_first_use

from .space import EDGE_NAMES, EDGES, NB201Space

__getattr__, __dir__ = exports_on_first_use(__name__, model=("NB201Cell", "NB201Net", "ResNetBasicBlock"))

__all__ = ["EDGES", "EDGE_NAMES", "NB201Cell", "NB201Net", "NB201Space", "ResNetBasicBlock"]
