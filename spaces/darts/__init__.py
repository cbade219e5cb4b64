"""DARTS cell search space: `from depthnas.spaces import darts`."""
from depthnas.lazy import exports_on_first_use

from .space import CONCAT, DARTS_OPS, PAIRS, DartsSpace, Genotype

__getattr__, __dir__ = exports_on_first_use(__name__, model=("DartsCell", "DartsNet"))

__all__ = ["CONCAT", "DARTS_OPS", "PAIRS", "DartsCell", "DartsNet", "DartsSpace", "Genotype"]
