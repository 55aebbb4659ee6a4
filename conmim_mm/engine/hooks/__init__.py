from .compile_hook import CompileModelHook
from .device_log_hook import DeviceLogRuntimeInfoHook
from .epoch_seed_hook import EpochSeedHook
from .knn_hook import KNNMonitorHook  # noqa: F401

__all__ = ["CompileModelHook", "DeviceLogRuntimeInfoHook", "EpochSeedHook"]
