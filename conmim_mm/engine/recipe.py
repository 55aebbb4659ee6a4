"""A config's recipe on any cluster: its total batch and the length of its schedule.

A config states its recipe's total batch once, as ``auto_scale_lr.base_batch_size`` (OpenMMLab's
place for it). A run has ``processes x per-process batch`` images per step; when the two differ,
``resolve_total_batch`` applies the config's policy (``train_cfg.total_batch_policy``):

- ``'accumulate'``: keep the recipe by gradient accumulation over ``recipe / run`` micro-batches
  (mmengine's ``accumulative_counts``). Learning rate, schedule and teacher move per optimiser
  step, exactly as at the recipe's batch; BatchNorm statistics are per micro-batch, as they are
  per GPU in the recipe.
- ``'scale_lr'``: train at the run's batch with the learning rate scaled by ``run / recipe``
  (the linear rule, mmengine's ``auto_scale_lr``). ``--auto-scale-lr`` selects it.
- ``'error'``: stop, naming both ways.

``resolve_schedule`` makes the parameter schedulers follow the run's length: a schedule written
for 800 epochs in a run of 300 (``--cfg-options train_cfg.max_epochs=300``) is rescaled to end at
300, its warm-up kept in its own units. Both are pure functions of config values, so that a test
can check them without a Runner; ``loops.py`` applies them when a run starts.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

POLICIES = ('accumulate', 'scale_lr', 'error')

# Schedulers that begin a schedule by warming up: kept in their own units when the run's length
# changes (the paper's 10 warm-up epochs stay 10 in a 300-epoch run).
WARMUP_SCHEDULERS = ('LinearLR', 'ConstantLR', 'LinearMomentum', 'ConstantMomentum',
                     'LinearParamScheduler', 'ConstantParamScheduler')
# Arguments measured in steps or epochs other than begin / end / milestones: a scheduler that
# has one cannot be rescaled by moving its ends.
LENGTH_ARGUMENTS = ('T_max', 'step_size', 'total_steps', 'periods', 'T_0')


class TotalBatchError(ValueError):
    """The run's total batch is not the recipe's and the policy cannot (or may not) fix it."""


class ScheduleLengthError(ValueError):
    """The schedule does not end where the run does and cannot be rescaled."""


@dataclass(frozen=True)
class TotalBatch:
    """What a run trains with: ``processes x per_process x accumulation`` images per optimiser
    step, against the recipe's ``recipe`` (None: the config states none)."""
    recipe: Optional[int]
    processes: int
    per_process: int
    accumulation: int
    policy: str
    lr_scale: float = 1.0

    @property
    def run(self) -> int:
        return self.processes * self.per_process * self.accumulation

    def describe(self) -> str:
        """The one ``total batch:`` line of the log."""
        recipe = 'not stated (auto_scale_lr.base_batch_size)' if self.recipe is None \
            else str(self.recipe)
        line = (f'total batch: recipe {recipe}, run {self.processes} processes x '
                f'{self.per_process} per process x {self.accumulation} accumulation = '
                f'{self.run}: ')
        if self.recipe is None:
            return line + 'trained as configured'
        if self.lr_scale != 1.0:
            return line + (f'learning rate scaled by {self.run}/{self.recipe} = '
                           f'{self.lr_scale:g} (linear rule, policy scale_lr)')
        if self.accumulation > 1:
            return line + (f'the recipe kept by accumulating the gradients of '
                           f'{self.accumulation} micro-batches per optimiser step '
                           f'(policy accumulate)')
        return line + "the recipe's"


def _fixes(recipe: int, processes: int, per_process: int) -> str:
    """How to reach the recipe's batch from this cluster, for the error messages."""
    hints = []
    if recipe % processes == 0:
        per_rank = recipe // processes
        fits = [b for b in range(min(per_process, per_rank), 0, -1) if per_rank % b == 0]
        if fits:
            hints.append(f'`--cfg-options train_dataloader.batch_size={fits[0]}` '
                         f'({processes} x {fits[0]} x {per_rank // fits[0]} accumulation = '
                         f'{recipe})')
    hints.append(f'`--auto-scale-lr` (train at {processes * per_process} with the learning rate '
                 f'scaled by {processes * per_process}/{recipe})')
    return ' or '.join(hints)


def resolve_total_batch(recipe: Optional[int], processes: int, per_process: int,
                        policy: str = 'accumulate') -> TotalBatch:
    """The accumulation (or learning-rate scale) that brings ``processes x per_process`` to
    the recipe's total batch under ``policy``; raises ``TotalBatchError`` where it cannot."""
    if policy not in POLICIES:
        raise TotalBatchError(f'train_cfg.total_batch_policy={policy!r}: choose one of '
                              f'{POLICIES}.')
    if processes < 1 or per_process < 1:
        raise TotalBatchError(f'a run of {processes} processes x {per_process} images per '
                              'process trains nothing: set train_dataloader.batch_size >= 1.')
    run = processes * per_process
    if recipe is None or recipe == run:
        return TotalBatch(recipe, processes, per_process, 1, policy)
    if recipe < 1:
        raise TotalBatchError(f'auto_scale_lr.base_batch_size={recipe}: the recipe total '
                              'batch must be a positive number of images.')
    if policy == 'scale_lr':
        return TotalBatch(recipe, processes, per_process, 1, policy, lr_scale=run / recipe)
    mismatch = (f'total batch: the recipe trains {recipe} images per optimiser step '
                f'(auto_scale_lr.base_batch_size), this run {processes} processes x '
                f'{per_process} per process = {run}')
    if policy == 'error':
        raise TotalBatchError(f'{mismatch}, and train_cfg.total_batch_policy is "error". '
                              f'Use {_fixes(recipe, processes, per_process)}.')
    if recipe % run:
        why = 'more than the recipe' if run > recipe else \
            f'{recipe} is no whole multiple of {run}'
        raise TotalBatchError(f'{mismatch}: gradient accumulation cannot make it up ({why}). '
                              f'Use {_fixes(recipe, processes, per_process)}.')
    return TotalBatch(recipe, processes, per_process, recipe // run, policy)


@dataclass
class _Span:
    """One scheduler's begin / end in optimiser steps, and its unit in steps."""
    index: int
    unit: float  # steps per unit of its begin / end (1, or steps per epoch)
    begin: float
    end: float
    explicit_end: bool


def _unit(scheduler: dict, steps_per_epoch: int) -> float:
    """Optimiser steps per unit of the scheduler's begin / end."""
    return float(steps_per_epoch) if scheduler.get('by_epoch', True) else 1.0


def describe_length(steps: float, steps_per_epoch: int, by_epoch: bool) -> str:
    if by_epoch:
        return f'{steps / steps_per_epoch:g} epochs ({steps:g} optimiser steps)'
    return f'{steps:g} optimiser steps'


def resolve_schedule(schedulers: Sequence[dict], total_steps: int, steps_per_epoch: int,
                     by_epoch: bool = True,
                     rescale: bool = True) -> Tuple[List[dict], Optional[str]]:
    """``schedulers`` (mmengine scheduler configs) for a run of ``total_steps`` optimiser
    steps, ``steps_per_epoch`` per epoch: (the configs to build, what was changed or None).

    Epoch-based schedulers converted to iterations get ``epoch_length=steps_per_epoch`` (an
    iteration is an optimiser step, also under gradient accumulation). When the latest ``end``
    is not the run's end, the schedule is rescaled to it (``rescale``; else
    ``ScheduleLengthError``): warm-ups (``WARMUP_SCHEDULERS`` starting at 0) keep their length
    where the run is longer than them, every other begin, end and milestone is moved by
    ``new / old length``; what was rescaled is stated in steps (``by_epoch=False``).
    """
    schedulers = [dict(s) for s in schedulers]
    spans = []
    for index, scheduler in enumerate(schedulers):
        unit = _unit(scheduler, steps_per_epoch)
        explicit = scheduler.get('end') is not None
        end = scheduler['end'] * unit if explicit else float(total_steps)
        spans.append(_Span(index, unit, scheduler.get('begin', 0) * unit, end, explicit))
        if scheduler.get('convert_to_iter_based'):
            scheduler['epoch_length'] = steps_per_epoch
        elif not explicit and not scheduler.get('by_epoch', True):
            scheduler['end'] = total_steps  # mmengine's default would count micro-batches
    written = max((s.end for s in spans if s.explicit_end), default=None)
    if written is None or abs(written - total_steps) < 0.5:
        return schedulers, None
    old = describe_length(written, steps_per_epoch, by_epoch)
    new = describe_length(total_steps, steps_per_epoch, by_epoch)
    names = ', '.join(s['type'] for s in schedulers)
    if not rescale:
        raise ScheduleLengthError(
            f'param_scheduler ({names}) ends after {old}, the run after {new}; '
            'train_cfg.rescale_schedule=False forbids moving it. Restate param_scheduler for '
            'the new length, or drop rescale_schedule=False to rescale it.')
    for span in spans:
        bad = [k for k in LENGTH_ARGUMENTS if schedulers[span.index].get(k) is not None]
        if bad:
            raise ScheduleLengthError(
                f'param_scheduler {schedulers[span.index]["type"]} has {bad[0]}, a length that '
                f'was written for {old}; the run has {new}. Restate param_scheduler for the new '
                'length (its begin / end / milestones are rescaled, this argument is not).')

    ratio = total_steps / written
    warmups = [s for s in spans if s.begin == 0 and s.end < written
               and schedulers[s.index]['type'] in WARMUP_SCHEDULERS]
    kept_ends = {s.end for s in warmups if s.end < total_steps}
    kept = [s for s in warmups if s.end in kept_ends]

    def move(steps: float) -> int:
        return int(round(steps * ratio))

    for span in spans:
        scheduler = schedulers[span.index]
        if span in kept:
            continue
        begin = int(span.begin) if span.begin in kept_ends else move(span.begin)
        end = total_steps if abs(span.end - written) < 0.5 else move(span.end)
        begin = min(begin, max(total_steps - 1, 0))
        scheduler.update(begin=begin, end=max(end, begin + 1), by_epoch=False)
        if 'milestones' in scheduler:
            scheduler['milestones'] = [max(move(m * span.unit), 1)
                                       for m in scheduler['milestones']]
        for key in ('convert_to_iter_based', 'epoch_length'):
            scheduler.pop(key, None)
    warmup = ''
    if kept:
        lengths = ', '.join(describe_length(s.end, steps_per_epoch,
                                            schedulers[s.index].get('by_epoch', True))
                            for s in kept)
        warmup = f'; the warm-up keeps its {lengths}'
    return schedulers, (f'schedule: param_scheduler ({names}) was written for {old}, the run '
                        f'has {new}: rescaled to end with the run{warmup}')
