"""mmsegmentation glue: ``ConMIMViT``, the layer-decay constructor and the loaders that skip
unreadable files (``LoadImageFromFileOrSkip``, ``LoadAnnotationsOrSkip``) in mmseg's registries.

Imported by the segmentation configs through ``custom_imports`` (importing mmseg checks the mmcv
version, so plain ``import conmim_mm`` does not do it). The configs use mmseg's own
``Feature2Pyramid`` to turn the stride-16 ViT maps into strides 4-32.
"""
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS

from ..datasets import LoadImageFromFileOrSkip
from ..engine.optimizers import BackboneLayerDecayOptimWrapperConstructor
from ..models.backbones import ConMIMViT
from .loading import LoadAnnotationsOrSkip

for registry, cls in ((MODELS, ConMIMViT),
                      (OPTIM_WRAPPER_CONSTRUCTORS, BackboneLayerDecayOptimWrapperConstructor),
                      (TRANSFORMS, LoadImageFromFileOrSkip), (TRANSFORMS, LoadAnnotationsOrSkip)):
    if cls.__name__ not in registry.module_dict:
        registry.register_module(module=cls)

__all__ = ['ConMIMViT', 'BackboneLayerDecayOptimWrapperConstructor', 'LoadImageFromFileOrSkip',
           'LoadAnnotationsOrSkip']
