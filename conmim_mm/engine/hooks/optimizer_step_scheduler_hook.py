"""Iteration-based schedulers that step once per optimiser step."""
from mmengine.hooks import ParamSchedulerHook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS  # the root registry: found from every default scope


def optimizer_stepped(optim_wrapper) -> bool:
    """Whether the iteration that just ended updated the weights (its backward completed an
    accumulation window: mmengine's ``should_update`` after the count has moved)."""
    wrappers = optim_wrapper.values() if isinstance(optim_wrapper, OptimWrapperDict) \
        else [optim_wrapper]
    return any(wrapper.should_update() for wrapper in wrappers)


@HOOKS.register_module()
class OptimizerStepParamSchedulerHook(ParamSchedulerHook):
    """mmengine's ``ParamSchedulerHook`` whose iteration-based schedulers step only after an
    optimiser step. Without gradient accumulation that is every iteration (the stock hook's
    behaviour); with it, the learning rate of every optimiser step is the one the recipe gives
    that step, as at the recipe's batch. The recipe loops (``loops.py``) install it in place of
    ``ParamSchedulerHook`` when they accumulate."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if optimizer_stepped(runner.optim_wrapper):
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
