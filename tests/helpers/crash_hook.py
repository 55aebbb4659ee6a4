"""A hook that kills training after a given epoch's checkpoint, to test resume."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


class SimulatedCrash(RuntimeError):
    pass


@HOOKS.register_module()
class CrashAfterEpochHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook has written the epoch's checkpoint

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:  # runner.epoch counts from 0 until after this hook
            raise SimulatedCrash(f'simulated crash after epoch {self.epoch}')
