from .device_amp import DeviceAmpOptimWrapper
from .layer_decay import BackboneLayerDecayOptimWrapperConstructor
from .trainable_constructor import TrainableOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor', 'DeviceAmpOptimWrapper',
           'TrainableOptimWrapperConstructor']
