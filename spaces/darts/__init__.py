"""DARTS cell search space: `from depthnas.spaces import darts`."""
from .model import DartsCell, DartsNet
from .space import CONCAT, DARTS_OPS, PAIRS, DartsSpace, Genotype

__all__ = ["CONCAT", "DARTS_OPS", "PAIRS", "DartsCell", "DartsNet", "DartsSpace", "Genotype"]
