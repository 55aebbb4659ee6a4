"""Log values stay on the device until the logger reads them."""
from typing import List, Optional, Tuple

import torch
from mmengine.hooks import CheckpointHook, LoggerHook, RuntimeInfoHook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class DeviceLogRuntimeInfoHook(RuntimeInfoHook):
    """``RuntimeInfoHook`` without a host-device synchronisation in every iteration.

    mmengine's hook hands each logged tensor of every step (loss, accuracy, ...) to the
    ``MessageHub``, which calls ``.item()`` on it: one wait for the device per value and per
    step, so the host can never run ahead of the GPU. This hook keeps the detached tensors and
    moves them to the ``MessageHub`` in one copy, in order, just before they are read: when the
    ``LoggerHook`` logs (its interval, the end of an epoch, the last iteration), before a
    checkpoint is saved (the ``MessageHub`` is part of it), at the end of an epoch and when
    training ends. The logged
    numbers are the same as with ``RuntimeInfoHook``.

    Hooks that read ``train/*`` scalars of the message hub in *every* iteration should call
    :meth:`flush` first (the configs' runtime bases install this hook as
    ``default_hooks.runtime_info``).
    """

    def __init__(self) -> None:
        self._pending: List[Tuple[List[str], torch.Tensor]] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs is not None:
            keys, values = [], []
            for key, value in outputs.items():
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    keys.append(key)
                    values.append(value.detach().reshape(()).to(torch.float64))
                else:
                    runner.message_hub.update_scalar(f'train/{key}', value)
            if keys:  # one copy on the device (outputs of CUDA graphs are reused next step)
                self._pending.append((keys, torch.stack(values)))
        if self._logger_reads_now(runner, batch_idx):
            self.flush(runner)

    def _logger_reads_now(self, runner, batch_idx: int) -> bool:
        interval = next((hook.interval for hook in runner.hooks if isinstance(hook, LoggerHook)),
                        1)
        saves_now = any(  # iteration-based checkpoints hold the MessageHub too
            isinstance(hook, CheckpointHook) and not hook.by_epoch
            and self.every_n_train_iters(runner, hook.interval) for hook in runner.hooks)
        return (saves_now or self.every_n_inner_iters(batch_idx, interval)
                or self.every_n_train_iters(runner, interval)
                or self.end_of_epoch(runner.train_dataloader, batch_idx)
                or self.is_last_train_iter(runner))

    def flush(self, runner) -> None:
        """Copy the pending values to the host at once and log them in step order."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = torch.cat([step for _, step in pending]).tolist()  # the one wait
        keys = [key for step_keys, _ in pending for key in step_keys]
        for key, value in zip(keys, values):
            runner.message_hub.update_scalar(f'train/{key}', value)

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
