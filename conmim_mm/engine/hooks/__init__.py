from .epoch_seed_hook import EpochSeedHook

__all__ = ["EpochSeedHook"]
