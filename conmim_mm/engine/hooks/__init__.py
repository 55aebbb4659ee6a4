from .atomic_checkpoint_hook import AtomicCheckpointHook
from .compile_hook import CompileModelHook
from .device_log_hook import DeviceLogRuntimeInfoHook
from .divergence_guard_hook import (DivergenceGuardHook, NonFiniteCheckpointError,
                                    TrainingDivergedError, non_finite_tensors)
from .epoch_seed_hook import EpochSeedHook
from .knn_hook import KNNMonitorHook  # noqa: F401
from .optimizer_step_scheduler_hook import OptimizerStepParamSchedulerHook  # noqa: F401

# Registered in mmpretrain's HOOKS; conmim_mm.seg and conmim_mm.det add them to mmseg's and
# mmdet's, for the downstream configs (their default scopes).
RUNTIME_HOOKS = (AtomicCheckpointHook, CompileModelHook, DeviceLogRuntimeInfoHook,
                 DivergenceGuardHook, EpochSeedHook, KNNMonitorHook)

__all__ = ["RUNTIME_HOOKS", "AtomicCheckpointHook", "CompileModelHook", "DeviceLogRuntimeInfoHook",
           "DivergenceGuardHook", "EpochSeedHook", "NonFiniteCheckpointError",
           "TrainingDivergedError", "non_finite_tensors"]
