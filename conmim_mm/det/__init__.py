"""mmdetection glue: ``ConMIMViT``, the layer-decay constructor, ``ViTFeaturePyramid`` and the
loaders that skip unreadable files (``LoadImageFromFileOrSkip``, ``LoadAnnotationsOrSkip``) in
mmdet's registries.

Imported by the detection configs through ``custom_imports`` (importing mmdet checks the mmcv
version, so plain ``import conmim_mm`` does not do it).
"""
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS

from ..datasets import LoadImageFromFileOrSkip
from ..engine.optimizers import BackboneLayerDecayOptimWrapperConstructor
from ..models.backbones import ConMIMViT
from .loading import LoadAnnotationsOrSkip
from .vit_pyramid import ViTFeaturePyramid

for registry, cls in ((MODELS, ConMIMViT), (MODELS, ViTFeaturePyramid),
                      (OPTIM_WRAPPER_CONSTRUCTORS, BackboneLayerDecayOptimWrapperConstructor),
                      (TRANSFORMS, LoadImageFromFileOrSkip), (TRANSFORMS, LoadAnnotationsOrSkip)):
    if cls.__name__ not in registry.module_dict:
        registry.register_module(module=cls)

__all__ = ['ConMIMViT', 'ViTFeaturePyramid', 'BackboneLayerDecayOptimWrapperConstructor',
           'LoadImageFromFileOrSkip', 'LoadAnnotationsOrSkip']
