"""mmsegmentation glue: ``ConMIMViT``, the layer-decay constructor, the loaders that skip
unreadable files (``LoadImageFromFileOrSkip``, ``LoadAnnotationsOrSkip``) and the package's hooks
(registered in mmpretrain's ``HOOKS``) in mmseg's registries.

Imported by the segmentation configs through ``custom_imports`` (importing mmseg checks the mmcv
version, so plain ``import conmim_mm`` does not do it). The configs use mmseg's own
``Feature2Pyramid`` to turn the stride-16 ViT maps into strides 4-32.
"""
from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS

from ..datasets import LoadImageFromFileOrSkip
from ..engine.hooks import RUNTIME_HOOKS
from ..engine.optimizers import BackboneLayerDecayOptimWrapperConstructor
from ..models.backbones import ConMIMViT
from .loading import LoadAnnotationsOrSkip

for registry, cls in ((MODELS, ConMIMViT),
                      (OPTIM_WRAPPER_CONSTRUCTORS, BackboneLayerDecayOptimWrapperConstructor),
                      (TRANSFORMS, LoadImageFromFileOrSkip), (TRANSFORMS, LoadAnnotationsOrSkip),
                      *((HOOKS, hook) for hook in RUNTIME_HOOKS)):
    if cls.__name__ not in registry.module_dict:
        registry.register_module(module=cls)

__all__ = ['ConMIMViT', 'BackboneLayerDecayOptimWrapperConstructor', 'LoadImageFromFileOrSkip',
           'LoadAnnotationsOrSkip']
