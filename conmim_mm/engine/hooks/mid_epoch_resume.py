"""Exact resume of an epoch-based run from a checkpoint saved in the middle of an epoch.

mmengine's ``EpochBasedTrainLoop`` resumes at the start of the interrupted epoch and trains all
of its batches again: iterations are repeated and the iteration counter runs past
``max_iters``. As mmengine's ``IterBasedTrainLoop`` does, the batches already trained are
drawn from the dataloader again (same sampler order, same per-worker random draws) and
dropped; the random generators of every process are then set back to their state at the save,
so the remaining iterations see exactly what the uninterrupted run saw.
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


def batches_done_in_epoch(loop) -> int:
    """Batches of the current epoch already trained (0 at an epoch boundary)."""
    return loop.iter - loop.epoch * len(loop.dataloader)


def can_skip_batches(loop) -> bool:
    """The loop is mmengine's epoch loop (its ``run_epoch`` is the one replaced here)."""
    return isinstance(loop, EpochBasedTrainLoop) \
        and type(loop).run_epoch is EpochBasedTrainLoop.run_epoch


def _run_epoch_skipping(loop, skip: int, rng_states) -> None:
    """mmengine's ``EpochBasedTrainLoop.run_epoch``, with the first ``skip`` batches dropped."""
    del loop.run_epoch  # once: the next epochs run the class's own method
    runner = loop.runner
    runner.call_hook('before_train_epoch')
    runner.model.train()
    for idx, data_batch in enumerate(loop.dataloader):
        if idx < skip:
            if idx == skip - 1 and rng_states:
                set_rng_state(rng_states[get_rank()])
            continue
        loop.run_iter(idx, data_batch)
    runner.call_hook('after_train_epoch')
    loop._epoch += 1


def resume_mid_epoch(runner, rng_states=None) -> int:
    """Make the next epoch of ``runner.train_loop`` skip the batches trained before the
    checkpoint; returns how many batches will be skipped."""
    loop = runner.train_loop
    skip = batches_done_in_epoch(loop)
    if skip <= 0:
        return 0
    if rng_states is not None and len(rng_states) != get_world_size():
        runner.logger.warning(
            f'The checkpoint holds the random generator states of {len(rng_states)} processes, '
            f'this run has {get_world_size()}: the data order is exact, the random draws of the '
            'rest of the epoch are not.')
        rng_states = None
    loop.run_epoch = types.MethodType(
        lambda self: _run_epoch_skipping(self, skip, rng_states), loop)
    runner.logger.info(f'Resuming in the middle of epoch {loop.epoch + 1}: skipping the {skip} '
                       'batches trained before the checkpoint.')
    return skip
