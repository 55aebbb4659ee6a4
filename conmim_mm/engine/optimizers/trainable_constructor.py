"""The default optimiser constructor, minus the frozen momentum teacher."""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` that passes over sub-modules with no trainable
    parameter (the EMA teacher) at once, instead of warning once per frozen tensor."""

    def add_params(self, params, module, prefix='', **kwargs) -> None:
        if not any(p.requires_grad for p in module.parameters()):
            return
        super().add_params(params, module, prefix=prefix, **kwargs)
