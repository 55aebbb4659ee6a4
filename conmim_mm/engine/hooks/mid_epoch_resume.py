"""Exact resume of an epoch-based run from a checkpoint saved in the middle of an epoch.

mmengine's ``EpochBasedTrainLoop`` resumes at the start of the interrupted epoch and trains all
of its batches again: iterations are repeated and the iteration counter runs past
``max_iters``. As mmengine's ``IterBasedTrainLoop`` does, the batches already trained are
drawn from the dataloader again (same sampler order, same per-worker random draws) and
dropped; the random generators of every process are then set back to their state at the save,
so the remaining iterations see exactly what the uninterrupted run saw.

What an epoch has consumed is stored in the checkpoint (``epoch_progress``: batches, samples,
batch size, process count, dataset size), never derived from the resumed run's loader: a run
restarted with another batch size or GPU count (a preempted job requeued elsewhere) would
otherwise take an epoch checkpoint for a mid-epoch one and skip a whole epoch. When those
settings changed, the run goes on at the same sample position or at the next epoch boundary,
and logs which (``plan_resume``).
"""
import random
import types

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.runner import EpochBasedTrainLoop


def rng_state() -> dict:
    """This process's Python, NumPy, torch (and CUDA) generator states, as plain data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(python=random.getstate(), torch=torch.get_rng_state(),
                 numpy=(kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    python = state['python']
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def gather_rng_states() -> list:
    """Every rank's generator states (call on all ranks)."""
    state = rng_state()
    return all_gather_object(state) if get_world_size() > 1 else [state]


def per_process_batch_size(loader):
    """Samples per batch and process (a batch sampler's size when the loader has one)."""
    size = getattr(loader, 'batch_size', None)
    return size if size is not None else getattr(loader.batch_sampler, 'batch_size', None)


def epoch_progress(loop, epoch: int, batches: int) -> dict:
    """What ``epoch`` has consumed after ``batches`` batches of this run's loader, as plain
    data for the checkpoint: ``samples`` counts the first entries of the sampler's order, which
    every rank draws from in turn (mmengine's ``DefaultSampler``)."""
    loader = loop.dataloader
    batch_size, world_size = per_process_batch_size(loader), get_world_size()
    return dict(epoch=epoch, batches=batches, batch_size=batch_size, world_size=world_size,
                samples=batches * (batch_size or 0) * world_size,
                dataset_size=len(loader.dataset), batches_per_epoch=len(loader))


def legacy_batches_done(loop, rng_states) -> int:
    """Checkpoints written before ``epoch_progress`` was stored: only iteration checkpoints
    (those carrying ``rng_states``) fall in the middle of an epoch, and the batches done can
    only be derived from the loader of this run (right when nothing changed)."""
    if rng_states is None:
        return 0
    return min(max(loop.iter - loop.epoch * len(loop.dataloader), 0), len(loop.dataloader))


def plan_resume(loop, progress, rng_states):
    """(batches of this run's loader to skip, whether the generator states apply, what to log).

    The same batch size, process count and dataset resume exactly. Otherwise, with the same
    dataset (so the same sample order), the run goes on at the same sample position, rounded
    down to a whole batch of this run; with another dataset size the order differs, and the
    run goes on at the next epoch boundary (``skip`` is None)."""
    if progress is None:
        skip = legacy_batches_done(loop, rng_states)
        return skip, True, f'skipping the {skip} batches trained before the checkpoint'
    loader = loop.dataloader
    now = epoch_progress(loop, loop.epoch, 0)
    if progress['epoch'] != loop.epoch or progress['samples'] <= 0:
        return 0, False, ''
    done, total = progress['samples'], progress['dataset_size']
    before = (f"{done} samples of {total} ({progress['batches']} batches of "
              f"{progress['batch_size']} x {progress['world_size']} processes)")
    same = all(progress[k] == now[k] for k in ('batch_size', 'world_size', 'dataset_size'))
    if same:
        skip = progress['batches']
        return skip, True, f'skipping the {skip} batches trained before the checkpoint'
    if progress['dataset_size'] != now['dataset_size'] or \
            type(loader.sampler).__name__ != 'DefaultSampler' or not now['batch_size']:
        return None, False, (
            f'the checkpoint had trained {before} of a dataset of {total} samples; this run has '
            f"{now['dataset_size']} samples (or another sampler), so the sample order differs: "
            'resuming at the next epoch boundary, the rest of this epoch is not trained')
    step = now['batch_size'] * now['world_size']
    skip = min(done // step, len(loader))
    again = done - skip * step
    return skip, False, (
        f'the checkpoint had trained {before}; this run takes {now["batch_size"]} x '
        f'{now["world_size"]} processes per step, so it resumes at the same sample position: '
        f'skipping {skip} batches' + (f' ({again} samples are trained again)' if again else '')
        + '; the random augmentations of the rest of the epoch differ from an uninterrupted '
        'run')


def can_skip_batches(loop) -> bool:
    """The loop is mmengine's epoch loop (its ``run_epoch`` is the one replaced here), or one
    whose epochs differ from it only by their ``batches_per_epoch`` (the recipe loop)."""
    return isinstance(loop, EpochBasedTrainLoop) and (
        type(loop).run_epoch is EpochBasedTrainLoop.run_epoch
        or getattr(loop, 'batches_per_epoch', None) is not None)


def _run_epoch_skipping(loop, skip: int, rng_states) -> None:
    """mmengine's ``EpochBasedTrainLoop.run_epoch``, with the first ``skip`` batches dropped
    (and those past the loop's ``batches_per_epoch``, where it has one)."""
    del loop.run_epoch  # once: the next epochs run the class's own method
    runner = loop.runner
    runner.call_hook('before_train_epoch')
    runner.model.train()
    limit = getattr(loop, 'batches_per_epoch', None) or len(loop.dataloader)
    for idx, data_batch in enumerate(loop.dataloader):
        if idx >= limit:
            break
        if idx < skip:
            if idx == skip - 1 and rng_states:
                set_rng_state(rng_states[get_rank()])
            continue
        loop.run_iter(idx, data_batch)
    runner.call_hook('after_train_epoch')
    loop._epoch += 1


def resume_mid_epoch(runner, rng_states=None, progress=None):
    """Make the next epoch of ``runner.train_loop`` go on where the checkpoint stopped (see
    ``plan_resume``); returns how many batches will be skipped (None: the epoch is ended)."""
    loop = runner.train_loop
    skip, exact, plan = plan_resume(loop, progress, rng_states)
    if skip is None:
        loop._epoch += 1
        runner.logger.warning(f'Resuming in the middle of epoch {loop.epoch}: {plan}.')
        return None
    if not exact and plan:
        rng_states = None
        runner.logger.warning(f'Resuming in the middle of epoch {loop.epoch + 1}: {plan}.')
    if skip <= 0:
        return 0
    if exact and rng_states is not None and len(rng_states) != get_world_size():
        runner.logger.warning(
            f'The checkpoint holds the random generator states of {len(rng_states)} processes, '
            f'this run has {get_world_size()}: the data order is exact, the random draws of the '
            'rest of the epoch are not.')
        rng_states = None
    if exact:
        runner.logger.info(f'Resuming in the middle of epoch {loop.epoch + 1}: {plan}.')
    loop.run_epoch = types.MethodType(
        lambda self: _run_epoch_skipping(self, skip, rng_states), loop)
    return skip
