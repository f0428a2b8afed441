"""jmrn: pose heatmaps (PoTion) and the Joint Motion Reasoning Network, reproducibly."""

__version__ = "0.1.0"
