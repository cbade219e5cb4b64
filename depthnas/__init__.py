"""depthnas: depth-decoder architecture search with landmark regularization."""
__version__ = "0.1.0"
