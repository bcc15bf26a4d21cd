"""Training the LFM2 backbone into a ColBERT encoder (`lfm2-search train CONFIG`)."""

from .config import TrainConfig

__all__ = ["TrainConfig"]
