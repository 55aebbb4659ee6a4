"""Layer-wise learning-rate decay for any model whose backbone knows its layer depths.

BEiT-style fine-tuning scales the learning rate of every parameter by
``decay ** (num_depths - 1 - depth)``: the patch embedding and [CLS] token sit at depth 0, block
``i`` at depth ``i + 1``, and everything after the backbone (final norm, neck, heads) at the top
depth with the full learning rate. mmpretrain's constructor needs ``get_layer_depth`` on the top
model, which only its classifiers have; mmseg's only recognises class names containing "BEiT" or
"MAE" and mmdet's only ConvNeXt. This constructor asks ``model.backbone.get_layer_depth`` instead,
so the same config key works for an mmpretrain ``ImageClassifier``, an mmseg ``EncoderDecoder``
and an mmdet detector. ``conmim_mm`` registers it in mmpretrain; ``conmim_mm.seg`` and
``conmim_mm.det`` register the same class in mmseg and mmdet.

    optim_wrapper = dict(
        optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05),
        constructor='BackboneLayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0., bias_decay_mult=0.,
                           norm_decay_mult=0., custom_keys={'.cls_token': dict(decay_mult=0.)}))

``paramwise_cfg`` takes what mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` takes
(``layer_decay_rate``, ``bias_decay_mult``, ``norm_decay_mult``, ``flat_decay_mult``,
``custom_keys`` with ``decay_mult``). Parameters with ``requires_grad=False`` are left out.
"""
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

KNOWN_KEYS = {'layer_decay_rate', 'bias_decay_mult', 'norm_decay_mult', 'flat_decay_mult',
              'custom_keys'}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """Layer-wise lr decay driven by ``model.backbone.get_layer_depth(name, 'backbone.')``."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - KNOWN_KEYS
        if unknown:
            hint = ''
            if unknown & {'decay_rate', 'num_layers', 'decay_type'}:
                hint = (' These are keys of mmseg/mmdet\'s LearningRateDecayOptimizerConstructor; '
                        'here the rate is `layer_decay_rate` and the depths come from the backbone.')
            raise ValueError(f'BackboneLayerDecayOptimWrapperConstructor got unknown paramwise_cfg '
                             f'keys {sorted(unknown)}; it takes {sorted(KNOWN_KEYS)}.{hint} If a '
                             'base config left them there, add `_delete_=True` to paramwise_cfg.')
        rate = paramwise_cfg.get('layer_decay_rate', 1.0)
        if not 0 < rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {rate}.')
        for key, cfg in paramwise_cfg.get('custom_keys', {}).items():
            if 'lr_mult' in cfg:
                raise ValueError(f'custom_keys[{key!r}] sets lr_mult, which layer-wise decay '
                                 'would silently override; only decay_mult is supported.')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   get_layer_depth: Optional[Callable] = None, **kwargs) -> None:
        if get_layer_depth is None and prefix == '':
            get_layer_depth = self._backbone_depth_fn(module)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth,
                           **kwargs)

    @staticmethod
    def _backbone_depth_fn(model: nn.Module) -> Callable:
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not callable(getattr(backbone, 'get_layer_depth', None)):
            what = ('has no `backbone`' if backbone is None else
                    f'has a backbone {type(backbone).__name__} without `get_layer_depth`')
            raise TypeError(
                f'Layer-wise lr decay needs the layer depth of every backbone parameter, but '
                f'{type(model).__name__} {what}. Use a ViT backbone such as ConMIMViT (or '
                'another mmpretrain backbone with `get_layer_depth(name, prefix)`), or drop '
                '`constructor` from optim_wrapper.')

        def depth(param_name: str):
            return backbone.get_layer_depth(param_name, 'backbone.')

        return depth
