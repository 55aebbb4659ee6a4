from .epoch_seed_hook import EpochSeedHook
from .knn_hook import KNNMonitorHook  # noqa: F401

__all__ = ["EpochSeedHook"]
