from .layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor']
from .trainable_constructor import TrainableOptimWrapperConstructor  # noqa: E402

__all__ += ['TrainableOptimWrapperConstructor']
