"""Turn same-stride ViT feature maps into a pyramid for FPN.

A plain ViT keeps stride 16 in every block. Like BEiT, iBOT and CAE did for detection, the maps of
four blocks are rescaled to strides 4, 8, 16 and 32: x4 by two stride-2 transposed convolutions
(norm and GELU between them), x2 by one, x1 unchanged, x0.5 by 2x2 max pooling. The result feeds a
standard mmdet ``FPN`` (``neck=[dict(type='ViTFeaturePyramid', ...), dict(type='FPN', ...)]``).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

SUPPORTED = (4, 2, 1, 0.5, 0.25)


class ViTFeaturePyramid(BaseModule):
    """Rescale one ViT feature map per entry of ``rescales``.

    Args:
        in_channels (int): Channels of the ViT feature maps (its ``embed_dims``).
        rescales (Sequence[float]): Scale factor for each input map, from {4, 2, 1, 0.5, 0.25};
            the default makes strides 4/8/16/32 out of stride-16 maps.
        norm_cfg (dict): Norm between the two transposed convolutions of the x4 branch.
        init_cfg (dict | list, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 rescales: Sequence[float] = (4, 2, 1, 0.5),
                 norm_cfg: dict = dict(type='SyncBN', requires_grad=True),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        bad = [r for r in rescales if r not in SUPPORTED]
        if bad:
            raise ValueError(f'ViTFeaturePyramid supports rescales {SUPPORTED}, got {bad}.')
        self.in_channels = in_channels
        self.rescales = tuple(rescales)
        self.branches = nn.ModuleList([self._branch(r, in_channels, norm_cfg)
                                       for r in self.rescales])

    @staticmethod
    def _branch(rescale: float, channels: int, norm_cfg: dict) -> nn.Module:
        def up():
            return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)

        if rescale == 4:
            return nn.Sequential(up(), build_norm_layer(norm_cfg, channels)[1], nn.GELU(), up())
        if rescale == 2:
            return up()
        if rescale == 1:
            return nn.Identity()
        return nn.MaxPool2d(kernel_size=int(1 / rescale), stride=int(1 / rescale))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.rescales):
            raise ValueError(
                f'ViTFeaturePyramid got {len(inputs)} feature maps but has {len(self.rescales)} '
                f'rescales {self.rescales}: make the backbone\'s out_indices as long as rescales.')
        return tuple(branch(x) for branch, x in zip(self.branches, inputs))
