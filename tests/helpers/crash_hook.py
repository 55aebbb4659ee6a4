"""Crash injection for the resume and reliability tests: a crash after an epoch, a kill or a
full disk in the middle of a checkpoint write, NaN weights, GradScaler-skipped steps."""
import errno
import os
import signal
from contextlib import contextmanager

import torch
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import HOOKS, OPTIM_WRAPPERS


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


def _after_bytes(fraction: float, action):
    """A ``LocalBackend.put`` that writes ``fraction`` of the bytes to the file, then ``action``."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    real_put = LocalBackend.put

    def put(self, obj, filepath):
        if not str(filepath).endswith(('.pth', '.pth.part')):
            return real_put(self, obj, filepath)
        LocalBackend.put = real_put  # one shot
        with open(filepath, 'wb') as f:
            f.write(obj[:int(len(obj) * fraction)])
            f.flush()
            os.fsync(f.fileno())
            action(filepath)

    LocalBackend.put = put


class _FailDuringSaveHook(Hook):
    """Calls ``fail(path)`` half-way through writing the checkpoint of ``epoch``."""
    priority = 'VERY_HIGH'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def fail(path: str) -> None:
        raise NotImplementedError

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if runner.epoch + 1 == self.epoch:
            _after_bytes(0.5, self.fail)


@HOOKS.register_module()
class KillDuringSaveHook(_FailDuringSaveHook):
    """SIGKILL this process half-way through writing the checkpoint of ``epoch``."""

    @staticmethod
    def fail(path: str) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class FullDiskDuringSaveHook(_FailDuringSaveHook):
    """The disk fills up half-way through writing the checkpoint of ``epoch`` (ENOSPC)."""

    @staticmethod
    def fail(path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@HOOKS.register_module()
class PoisonTeacherHook(Hook):
    """At the end of epoch ``epoch``, before its checkpoint is saved, set one weight of the EMA
    teacher to NaN (the losses so far are finite: only the save-time check can catch it)."""
    priority = 'LOW'  # before CheckpointHook (VERY_LOW)

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            model = runner.model.module if hasattr(runner.model, 'module') else runner.model
            with torch.no_grad():
                next(model.teacher.module.parameters()).view(-1)[0] = float('nan')


@OPTIM_WRAPPERS.register_module()
class CPUGradScalerOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (its real backward/step/GradScaler logic) on the CPU in
    fp32, with torch's CPU ``GradScaler``: with a huge ``loss_scale`` the scaled gradients
    overflow, so the first steps are skipped and the scale halves, as under fp16 on a GPU."""

    def __init__(self, optimizer, loss_scale=2.0 ** 127, **kwargs):
        from unittest import mock
        with mock.patch('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                        return_value=True):
            super().__init__(optimizer=optimizer, loss_scale='dynamic', **kwargs)
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=loss_scale)
        self.skipped_steps = 0

    def step(self, **kwargs):
        scale = self.loss_scaler.get_scale()
        super().step(**kwargs)
        if self.loss_scaler.get_scale() < scale:
            self.skipped_steps += 1

    @contextmanager
    def optim_context(self, model):
        with OptimWrapper.optim_context(self, model):  # fp32: no autocast
            yield


@HOOKS.register_module()
class CrashAfterIterHook(Hook):
    """Kill training after iteration ``iteration`` (1-based), after its checkpoint is saved."""
    priority = 'LOWEST'

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            raise SimulatedCrash(f'simulated crash after iteration {self.iteration}')


@HOOKS.register_module()
class SignalDuringIterHook(Hook):
    """Send ``signal`` to this process during iteration ``iteration`` (1-based), as Slurm does
    on preemption or ``--signal=USR1@120``."""
    priority = 'VERY_HIGH'  # before CheckpointHook: the signal lands before the iteration ends

    def __init__(self, iteration: int, signal: str = 'SIGTERM') -> None:
        self.iteration, self.signal = iteration, signal

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), getattr(signal, self.signal))
