"""Stop a diverged run instead of training (and saving) NaN weights to the end."""
from collections import deque
from typing import Deque, Iterator, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


class TrainingDivergedError(RuntimeError):
    """The loss stayed non-finite: the run diverged."""


class NonFiniteCheckpointError(RuntimeError):
    """A checkpoint about to be written holds NaN/Inf tensors."""


def _floating_tensors(obj, name: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
    if torch.is_tensor(obj):
        if obj.is_floating_point() or obj.is_complex():
            yield name, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _floating_tensors(value, f'{name}.{key}' if name else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _floating_tensors(value, f'{name}.{i}' if name else str(i))


def non_finite_tensors(state) -> List[str]:
    """Names of the floating-point tensors holding a NaN or Inf anywhere in ``state``
    (nested dicts/lists of tensors: a state dict, an optimizer state, a whole checkpoint)."""
    named = list(_floating_tensors(state))
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t).all().cpu() for _, t in named])  # one sync per device
    return [name for (name, _), ok in zip(named, finite.tolist()) if not ok]


def start_host_copy(values: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.cuda.Event]]:
    """Start copying ``values`` to the host without waiting for the device.

    On CUDA: a non-blocking copy into pinned memory and an event that completes with it (read
    the copy after ``event.synchronize()``). Elsewhere the values are returned as they are, with
    no event: on the CPU they are already on the host."""
    if values.device.type != 'cuda':
        return values, None
    host = torch.empty(values.shape, dtype=values.dtype, device='cpu', pin_memory=True)
    host.copy_(values, non_blocking=True)
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(values.device))
    return host, event


HINTS = ('lower the learning rate (optim_wrapper.optimizer.lr), clip gradients '
         '(optim_wrapper.clip_grad=dict(max_norm=3.0)), lengthen the warm-up, train in fp32 or '
         'bf16 instead of fp16 (AmpOptimWrapper dtype=\'bfloat16\'), and check the data')


@HOOKS.register_module()
class DivergenceGuardHook(Hook):
    """Stop training when the loss stays NaN/Inf; never let a non-finite checkpoint be written.

    * After every training iteration the optimised ``loss`` is checked. ``patience``
      consecutive non-finite losses raise :class:`TrainingDivergedError` (the run exits with a
      non-zero status) with the iteration, the loss and what to try. Under fp16
      ``AmpOptimWrapper`` an overflow that dynamic loss scaling absorbs shows up in the scaled
      *gradients* (the ``GradScaler`` skips that step and lowers the scale) while the loss stays
      finite, so such skipped steps never count; a single non-finite loss is tolerated up to
      ``patience``.
    * Before any checkpoint is written (``before_save_checkpoint``, whichever hook saves), the
      model weights (student and EMA teacher, buffers included) and the optimizer state are
      checked; a non-finite tensor raises :class:`NonFiniteCheckpointError` before the file is
      created, so the last good checkpoint stays the latest one on disk.

    In distributed runs the ranks agree on the decision (one scalar ``all_reduce`` per
    iteration), so they stop together instead of leaving some waiting in a collective.

    No host-device synchronisation in the step: the flag of iteration ``k`` (NaN/Inf loss,
    computed and all-reduced on the device) is copied to pinned host memory without blocking,
    and read at iteration ``k + 1`` after that copy's CUDA event, which waits for step ``k``
    only, never for step ``k + 1``. So on CUDA a run stops one iteration after the
    ``patience``-th non-finite loss, naming that loss's iteration; pending flags are read
    before every checkpoint save and at the end of each epoch and of training, so a divergence
    in the last iterations is caught and never saved. On the CPU the flag is read at once.

    Args:
        patience (int): Consecutive non-finite losses that stop the run. Defaults to 3.
        check_checkpoints (bool): Check tensors before each save. Defaults to True.
    """
    priority = 'NORMAL'  # after RuntimeInfoHook, before CheckpointHook (iteration checkpoints)

    def __init__(self, patience: int = 3, check_checkpoints: bool = True) -> None:
        if int(patience) < 1:
            raise ValueError(f'DivergenceGuardHook: patience must be >= 1, got {patience}.')
        self.patience = int(patience)
        self.check_checkpoints = check_checkpoints
        self.streak = 0
        self.first_bad_iter: Optional[int] = None
        self.last_loss = float('nan')
        # (iteration, [non-finite flag, loss] on the host or on its way there, CUDA event)
        self.pending: Deque[Tuple[int, torch.Tensor, Optional[torch.cuda.Event]]] = deque()

    def before_train(self, runner) -> None:
        self.streak, self.first_bad_iter = 0, None
        self.pending.clear()

    @staticmethod
    def _loss_of(outputs) -> Optional[torch.Tensor]:
        if not isinstance(outputs, dict) or outputs.get('loss') is None:
            return None
        loss = outputs['loss']
        return loss.detach() if torch.is_tensor(loss) else torch.tensor(float(loss), device='cpu')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = self._loss_of(outputs)
        if loss is not None:
            loss = loss.float().mean()
            bad = (~torch.isfinite(loss)).float()
            if get_world_size() > 1:  # same decision on every rank (NCCL: asynchronous)
                all_reduce(bad, op='max')
            self.pending.append((runner.iter + 1, *start_host_copy(torch.stack([bad, loss]))))
        # Read the flags whose copy is done without waiting for this step: on the CPU that is
        # this step's; on CUDA the previous step's (its event has normally completed already).
        while self.pending and (self.pending[0][2] is None or len(self.pending) > 1):
            self._check(runner, *self.pending.popleft())

    def flush(self, runner) -> None:
        """Read every pending flag (waits for the GPU): before a save and at the end."""
        while self.pending:
            self._check(runner, *self.pending.popleft())

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)

    def _check(self, runner, iteration: int, values: torch.Tensor, event) -> None:
        """Count iteration ``iteration``'s flag into the streak; stop at ``patience``."""
        if event is not None:
            event.synchronize()  # waits for that step's copy only
        bad, value = values.tolist()
        if not bad:
            self.streak, self.first_bad_iter = 0, None
            return
        self.streak += 1
        self.last_loss = value
        if self.first_bad_iter is None:
            self.first_bad_iter = iteration
        runner.logger.warning(
            f'Iteration {iteration}: the loss is {value} (non-finite {self.streak} of '
            f'{self.patience} times in a row before the run is stopped).')
        if self.streak >= self.patience:
            self._stop(runner, value, iteration)

    def _stop(self, runner, loss: float, iteration: int, note: str = '') -> None:
        lrs = runner.optim_wrapper.get_lr() if hasattr(runner.optim_wrapper, 'get_lr') else {}
        lr = ', '.join(f'{k}={max(v):.3g}' for k, v in lrs.items()) if lrs else 'lr unknown'
        message = (
            f'Training diverged: the loss is {loss} at iteration {iteration} '
            f'(epoch {runner.epoch + 1}) and has been non-finite since iteration '
            f'{self.first_bad_iter} ({self.streak} iterations in a row; DivergenceGuardHook '
            f'patience={self.patience}); current {lr}.{note} The run stops here and no '
            'checkpoint of the diverged weights is written; the last checkpoint on disk is the '
            f'last good one. Try: {HINTS}.')
        runner.logger.error(message)
        raise TrainingDivergedError(message)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self.flush(runner)  # a divergence in the last iterations stops the run before the save
        if not self.check_checkpoints:
            return
        bad = non_finite_tensors({k: checkpoint[k] for k in ('state_dict', 'optimizer')
                                  if k in checkpoint})
        if not bad:
            return
        examples = ', '.join(bad[:5])
        done = checkpoint.get('meta', {}).get('iter', runner.iter)  # iterations trained
        if self.streak > 0:  # the loss already told: stop now rather than save
            self._stop(runner, self.last_loss, done,
                       f' A checkpoint was due: {len(bad)} of its tensors hold NaN/Inf '
                       f'(e.g. {examples}).')
        message = (
            f'Refusing to save a checkpoint at iteration {done}: {len(bad)} '
            f'tensors hold NaN/Inf (e.g. {examples}). Training has diverged; the last '
            f'checkpoint on disk is the last good one. Try: {HINTS}.')
        runner.logger.error(message)
        raise NonFiniteCheckpointError(message)
