"""mmengine's training loops, keeping the config's recipe on any cluster (see ``recipe.py``).

When a run starts, the loop compares the recipe's total batch (``auto_scale_lr.base_batch_size``)
with ``processes x per-process batch`` and applies ``total_batch_policy``; it logs one line that
begins ``total batch:``. It then makes the parameter schedulers end with the run
(``rescale_schedule``). Under gradient accumulation over ``k`` micro-batches:

- an iteration of the Runner (``runner.iter``, logger intervals) is a micro-batch;
- the schedules, the teacher's EMA and its cosine count optimiser steps: iteration-based
  schedulers step once per optimiser step (``OptimizerStepParamSchedulerHook`` takes the place of
  mmengine's ``ParamSchedulerHook``), ``epoch_length`` is the optimiser steps of an epoch;
- an epoch trains ``k x (batches // k)`` batches, so that no optimiser step spans two epochs
  (the up to ``k - 1`` batches left over are dropped, as ``drop_last`` drops a short batch);
- the iteration loop's ``max_iters`` / ``val_interval`` and the iteration-based checkpoint
  interval are counted in optimiser steps, as the recipe states them.
"""
import logging
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import CheckpointHook, ParamSchedulerHook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from ..models.utils.fused_ema import ACCUMULATION_INFO
from .hooks.mid_epoch_resume import per_process_batch_size
from .hooks.optimizer_step_scheduler_hook import OptimizerStepParamSchedulerHook
from .recipe import TotalBatch, TotalBatchError, resolve_schedule, resolve_total_batch


def _set_accumulation(runner, counts: int) -> None:
    wrapper = runner.optim_wrapper
    if isinstance(wrapper, OptimWrapper):
        wrapper._accumulative_counts = counts
        return
    if not isinstance(wrapper, dict) or not ('type' in wrapper or 'optimizer' in wrapper):
        if counts == 1:
            return
        raise TotalBatchError('total batch: gradient accumulation needs one optimiser wrapper '
                              '(optim_wrapper with an `optimizer`); use --auto-scale-lr.')
    configured = wrapper.get('accumulative_counts', 1)
    if configured != counts:
        if configured != 1:
            print_log(f'optim_wrapper.accumulative_counts={configured} replaced by {counts}, '
                      'what the recipe total batch needs on this cluster.', logger='current',
                      level=logging.WARNING)
        wrapper['accumulative_counts'] = counts


def _swap_hooks(runner, counts: int) -> None:
    """Schedulers step once per optimiser step; iteration checkpoints fall between steps."""
    for index, hook in enumerate(runner._hooks):
        if type(hook) is ParamSchedulerHook:
            replacement = OptimizerStepParamSchedulerHook()
            replacement.priority = hook.priority
            runner._hooks[index] = replacement
        elif isinstance(hook, CheckpointHook) and not hook.by_epoch:
            hook.interval *= counts


class RecipeLoopMixin:
    """What both loops add: the recipe's total batch and a schedule that ends with the run."""

    def _apply_recipe(self, policy: str, rescale_schedule: bool, by_epoch: bool,
                      length: int) -> TotalBatch:
        runner = self.runner
        # mmengine's FlexibleRunner has no auto_scale_lr: the recipe batch comes from its config
        scale_cfg = dict(getattr(runner, 'auto_scale_lr', None)
                         or runner.cfg.get('auto_scale_lr') or {})
        if scale_cfg.get('enable'):  # --auto-scale-lr / auto_scale_lr.enable=True
            policy = 'scale_lr'
        self.total_batch = resolve_total_batch(scale_cfg.get('base_batch_size'),
                                               get_world_size(),
                                               per_process_batch_size(self.dataloader), policy)
        counts = self.total_batch.accumulation
        if hasattr(runner, 'auto_scale_lr'):  # mmengine's scale_lr applies the linear rule
            runner.auto_scale_lr = dict(scale_cfg, enable=self.total_batch.lr_scale != 1.0) \
                if scale_cfg else None
        elif self.total_batch.lr_scale != 1.0:
            raise TotalBatchError(f'total batch: {type(runner).__name__} cannot scale the '
                                  'learning rate (no auto_scale_lr); use the accumulate policy.')
        _set_accumulation(runner, counts)
        if counts > 1:
            _swap_hooks(runner, counts)
        self.steps_per_epoch = len(self.dataloader) // counts
        if by_epoch and self.steps_per_epoch < 1:
            raise TotalBatchError(
                f'total batch: an epoch has {len(self.dataloader)} batches, fewer than the '
                f'{counts} micro-batches of one optimiser step; use more data or '
                '--auto-scale-lr.')
        self.steps_per_epoch = max(self.steps_per_epoch, 1)
        total_steps = length * self.steps_per_epoch if by_epoch else length
        schedulers = runner.param_schedulers
        if isinstance(schedulers, dict) and 'type' in schedulers:
            schedulers = [schedulers]
        if isinstance(schedulers, (list, tuple)) and all(isinstance(s, dict)
                                                         for s in schedulers):
            schedulers, changed = resolve_schedule(schedulers, total_steps,
                                                   self.steps_per_epoch, by_epoch,
                                                   rescale_schedule)
            runner.param_schedulers = schedulers
            if changed:
                print_log(changed, logger='current', level=logging.WARNING)
        print_log(self.total_batch.describe(), logger='current')
        return self.total_batch

    def run(self):
        # published here, after a resume, whose MessageHub state holds the saved run's value
        self.runner.message_hub.update_info(ACCUMULATION_INFO, self.total_batch.accumulation)
        return super().run()


@LOOPS.register_module()
class RecipeEpochBasedTrainLoop(RecipeLoopMixin, EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` with the recipe's total batch and schedule (module docstring).

    Args:
        total_batch_policy (str): ``'accumulate'``, ``'scale_lr'`` or ``'error'`` (``recipe.py``);
            ``auto_scale_lr.enable=True`` (``--auto-scale-lr``) selects ``'scale_lr'``.
        rescale_schedule (bool): Rescale a schedule written for another number of epochs
            (True), or stop with ``ScheduleLengthError`` (False).
        by_epoch: Accepted for configs that inherit mmengine's ``train_cfg=dict(by_epoch=True)``.
        Other arguments: as ``EpochBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_epochs: int, val_begin: int = 1,
                 val_interval: int = 1, dynamic_intervals=None,
                 total_batch_policy: str = 'accumulate', rescale_schedule: bool = True,
                 by_epoch: Optional[bool] = True) -> None:
        if by_epoch is False:
            raise ValueError('RecipeEpochBasedTrainLoop got by_epoch=False: use '
                             'RecipeIterBasedTrainLoop for an iteration-based schedule.')
        super().__init__(runner, dataloader, max_epochs, val_begin, val_interval,
                         dynamic_intervals)
        self._apply_recipe(total_batch_policy, rescale_schedule, True, self._max_epochs)
        self.batches_per_epoch = self.steps_per_epoch * self.total_batch.accumulation
        self._max_iters = self._max_epochs * self.batches_per_epoch

    def run_epoch(self) -> None:
        """mmengine's epoch, ending after ``batches_per_epoch`` batches."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        for idx, data_batch in enumerate(self.dataloader):
            if idx >= self.batches_per_epoch:
                break
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class RecipeIterBasedTrainLoop(RecipeLoopMixin, IterBasedTrainLoop):
    """``IterBasedTrainLoop`` with the recipe's total batch and schedule; ``max_iters``,
    ``val_begin`` and ``val_interval`` count optimiser steps (module docstring).

    Args: as ``RecipeEpochBasedTrainLoop``, and ``IterBasedTrainLoop``'s.
    """

    def __init__(self, runner, dataloader, max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000, dynamic_intervals=None,
                 total_batch_policy: str = 'accumulate', rescale_schedule: bool = True,
                 by_epoch: Optional[bool] = False) -> None:
        if by_epoch:
            raise ValueError('RecipeIterBasedTrainLoop got by_epoch=True: use '
                             'RecipeEpochBasedTrainLoop for an epoch-based schedule.')
        super().__init__(runner, dataloader, max_iters, val_begin, val_interval,
                         dynamic_intervals)
        counts = self._apply_recipe(total_batch_policy, rescale_schedule, False,
                                    self._max_iters).accumulation
        if counts > 1:
            if dynamic_intervals:
                raise TotalBatchError('total batch: dynamic_intervals with gradient '
                                      'accumulation are not supported; use --auto-scale-lr.')
            self._max_iters *= counts
            self.val_begin *= counts
            self.val_interval *= counts
            self.dynamic_intervals = [self.val_interval]

