"""mmdetection glue: ``ConMIMViT``, the layer-decay constructor, ``ViTFeaturePyramid`` (the
BEiT-style neck), the ViTDet parts (``ConMIMViTDet``, ``SimpleFPN``, LayerNorm over the
channels of NCHW maps as ``LN2d``) and the loaders that skip unreadable files
(``LoadImageFromFileOrSkip``, ``LoadAnnotationsOrSkip``) and the package's hooks (registered in
mmpretrain's ``HOOKS``) in mmdet's registries.

Imported by the detection configs through ``custom_imports`` (importing mmdet checks the mmcv
version, so plain ``import conmim_mm`` does not do it).
"""
from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS
from mmpretrain.models.utils.norm import LayerNorm2d

from ..datasets import LoadImageFromFileOrSkip
from ..engine.hooks import RUNTIME_HOOKS
from ..engine.optimizers import BackboneLayerDecayOptimWrapperConstructor
from ..models.backbones import ConMIMViT
from .loading import LoadAnnotationsOrSkip
from .simple_fpn import SimpleFPN
from .vit_pyramid import ViTFeaturePyramid
from .windowed_vit import ConMIMViTDet

for registry, cls, name in (
        (MODELS, ConMIMViT, 'ConMIMViT'), (MODELS, ConMIMViTDet, 'ConMIMViTDet'),
        (MODELS, ViTFeaturePyramid, 'ViTFeaturePyramid'), (MODELS, SimpleFPN, 'SimpleFPN'),
        (MODELS, LayerNorm2d, 'LN2d'),  # mmpretrain's, which mmdet 3.3 does not have
        (OPTIM_WRAPPER_CONSTRUCTORS, BackboneLayerDecayOptimWrapperConstructor,
         'BackboneLayerDecayOptimWrapperConstructor'),
        (TRANSFORMS, LoadImageFromFileOrSkip, 'LoadImageFromFileOrSkip'),
        (TRANSFORMS, LoadAnnotationsOrSkip, 'LoadAnnotationsOrSkip'),
        *((HOOKS, hook, hook.__name__) for hook in RUNTIME_HOOKS)):
    if name not in registry.module_dict:
        registry.register_module(name=name, module=cls)

__all__ = ['ConMIMViT', 'ConMIMViTDet', 'SimpleFPN', 'ViTFeaturePyramid',
           'BackboneLayerDecayOptimWrapperConstructor', 'LoadImageFromFileOrSkip',
           'LoadAnnotationsOrSkip']
