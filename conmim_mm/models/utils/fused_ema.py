"""mmpretrain's ``CosineEMA`` with the update fused over all tensors at once."""
from math import cos, pi

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS

# MessageHub runtime info that the recipe loops (conmim_mm/engine/loops.py) publish: how many
# micro-batches make one optimiser step under gradient accumulation (absent: 1).
ACCUMULATION_INFO = 'accumulative_counts'


def accumulative_counts() -> int:
    """Micro-batches per optimiser step of the running training loop (1 outside one)."""
    return int(MessageHub.get_current_instance().get_info(ACCUMULATION_INFO, 1) or 1)


def optimizer_step_begins() -> bool:
    """Whether the current training iteration (``runner.iter``, as the ``RuntimeInfoHook``
    publishes it) is the first micro-batch of an optimiser step: always without accumulation,
    and outside a Runner."""
    counts = accumulative_counts()
    if counts == 1:
        return True
    iteration = MessageHub.get_current_instance().get_info('iter')
    return iteration is None or iteration % counts == 0


@MODELS.register_module()
class FusedCosineEMA(CosineEMA):
    """``CosineEMA`` (same arguments, state and schedule) updated with ``torch._foreach_*``.

    The stock update walks the parameters in Python and asks the ``MessageHub`` for
    ``max_iters`` once per tensor; here the momentum is computed once per step and all
    parameters move in one fused ``lerp``. As in mmengine, ``momentum`` is the weight of the
    *new* value: ``avg = (1 - m) * avg + m * src``; the paper's teacher coefficient is ``1 - m``.
    The first update copies the source, so the average starts equal to it.

    Args:
        keep_buffers (bool): What happens to the buffers (BatchNorm running statistics) at the
            updates after the first. False (mmengine's ``update_buffers=False``): copied from
            the source at every update. True: left alone, so the average keeps its own, which
            only its own forward passes in train mode change; the official ConMIM teacher
            (only its parameters are averaged). Ignored with ``update_buffers=True``
            (buffers averaged like parameters). Defaults to False.
        Other arguments: as ``CosineEMA``.
    """

    def __init__(self, model: nn.Module, *args, keep_buffers: bool = False, **kwargs) -> None:
        super().__init__(model, *args, **kwargs)
        self.keep_buffers = keep_buffers
        self.last_momentum = 1.0
        # Names of the averaged floating-point tensors: fixed for the life of the model.
        self._names = [k for k, v in self.avg_parameters.items() if v.dtype.is_floating_point]
        # Host copy of the ``steps`` buffer, so that a step does not wait for the device to
        # read it; re-read after a checkpoint is loaded.
        self._host_steps = None

    def _load_from_state_dict(self, *args, **kwargs):
        self._host_steps = None
        super()._load_from_state_dict(*args, **kwargs)

    def momentum_at(self, steps: int) -> float:
        """Weight of the new value at update number ``steps`` (cosine from momentum to end).

        The cosine spans the run's optimiser steps: ``max_iters`` (micro-batches) over the
        micro-batches of one step, for a teacher updated once per optimiser step under gradient
        accumulation. Held at ``end_momentum`` from the last step on: updates past the schedule
        (a resume that repeats iterations, a run extended without a new schedule) must not run
        the cosine back towards the starting momentum."""
        max_iters = MessageHub.get_current_instance().get_info('max_iters')
        if max_iters is None:
            raise RuntimeError(
                'FusedCosineEMA needs the total number of iterations for its cosine schedule: run '
                'it inside an mmengine Runner, or call MessageHub.get_current_instance()'
                '.update_info("max_iters", N) first.')
        max_iters = max(max_iters // accumulative_counts(), 1)
        annealing = (cos(pi * min(steps, max_iters) / float(max_iters)) + 1) / 2
        return self.end_momentum - (self.end_momentum - self.momentum) * annealing

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        src = dict(model.state_dict(keep_vars=True)) if self.update_buffers \
            else dict(model.named_parameters())
        # ``.data`` at call time: ``module.to()`` swaps the storage behind each parameter.
        averaged = [self.avg_parameters[k].data for k in self._names]
        source = [src[k].data for k in self._names]
        if self._host_steps is None:
            self._host_steps = int(self.steps)
        steps = self._host_steps
        if steps == 0:
            torch._foreach_copy_(averaged, source)
            self.last_momentum = 1.0
        elif steps % self.interval == 0:
            self.last_momentum = self.momentum_at(steps)
            torch._foreach_lerp_(averaged, source, self.last_momentum)
        copy_buffers = not self.update_buffers and (steps == 0 or not self.keep_buffers)
        if copy_buffers:  # BatchNorm statistics: copied, not averaged
            buffers = [b.data for b in self.module.buffers()]
            if buffers:
                torch._foreach_copy_(buffers, [b.data for b in model.buffers()])
        self.steps += 1
        self._host_steps += 1
