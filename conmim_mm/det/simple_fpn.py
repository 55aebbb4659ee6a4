"""ViTDet's simple feature pyramid: strides 4 to 64 from the last stride-16 map of a plain ViT.

Li et al. (ECCV 2022) build the pyramid from one map instead of an FPN over several blocks: x4 by
two stride-2 transposed convolutions (channels halved by each, norm and GELU between them), x2 by
one, x1 unchanged, x0.5 by 2x2 max pooling; each level then goes through a 1x1 and a 3x3
convolution, each followed by a LayerNorm over channels and no activation; P6 subsamples P5 by
stride-2 max pooling with a 1x1 kernel (the extra level the RPN uses).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule

SCALES = (4, 2, 1, 0.5)


class SimpleFPN(BaseModule):
    """Pyramid from one ViT feature map.

    Args:
        in_channels (int): Channels of the ViT map (its ``embed_dims``).
        out_channels (int): Channels of every pyramid level.
        scale_factors (Sequence[float]): Rescaling of the map for each level, from
            {4, 2, 1, 0.5}; the default makes strides 4/8/16/32 out of a stride-16 map.
        num_outs (int): Levels returned; those beyond ``scale_factors`` subsample the last one
            by 2 (P6 for the RPN with the default 5).
        norm_cfg (dict): Norm in the x4 branch and after every convolution; ViTDet uses
            LayerNorm over channels (``dict(type='LN2d')``, registered by ``conmim_mm.det``).
        init_cfg (dict | list, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = SCALES,
                 num_outs: int = 5,
                 norm_cfg: dict = dict(type='LN2d', requires_grad=True),
                 init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform')):
        super().__init__(init_cfg=init_cfg)
        bad = [s for s in scale_factors if s not in SCALES]
        if bad or not scale_factors:
            raise ValueError(f'SimpleFPN supports scale_factors from {SCALES}, got '
                             f'{tuple(scale_factors)}.')
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs={num_outs} is fewer than the {len(scale_factors)} '
                             f'levels of scale_factors {tuple(scale_factors)}.')
        if in_channels % 4:
            raise ValueError(f'in_channels must be divisible by 4 (the x4 branch quarters it), '
                             f'got {in_channels}.')
        self.in_channels = in_channels
        self.scale_factors = tuple(scale_factors)
        self.num_outs = num_outs
        self.rescales = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for scale in self.scale_factors:
            rescale, channels = self._rescale(scale, in_channels, norm_cfg)
            self.rescales.append(rescale)
            self.lateral_convs.append(ConvModule(channels, out_channels, 1, norm_cfg=norm_cfg,
                                                 act_cfg=None))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1,
                                             norm_cfg=norm_cfg, act_cfg=None))

    @staticmethod
    def _rescale(scale: float, channels: int, norm_cfg: dict) -> Tuple[nn.Module, int]:
        """The branch for one level and the channels it outputs."""
        if scale == 4:
            return nn.Sequential(
                nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2),
                build_norm_layer(norm_cfg, channels // 2)[1],
                nn.GELU(),
                nn.ConvTranspose2d(channels // 2, channels // 4, kernel_size=2, stride=2),
            ), channels // 4
        if scale == 2:
            return nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2), \
                channels // 2
        if scale == 1:
            return nn.Identity(), channels
        return nn.MaxPool2d(kernel_size=2, stride=2), channels

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        if len(inputs) != 1:
            raise ValueError(f'SimpleFPN builds the pyramid from one feature map but got '
                             f'{len(inputs)}: set the backbone\'s out_indices to its last block '
                             'only, e.g. out_indices=(11, ) for ViT-B.')
        x = inputs[0]
        if x.shape[1] != self.in_channels:
            raise ValueError(f'SimpleFPN was built for {self.in_channels} input channels but got '
                             f'a map with {x.shape[1]}; set in_channels to the ViT width.')
        outs = [fpn(lateral(rescale(x))) for rescale, lateral, fpn in
                zip(self.rescales, self.lateral_convs, self.fpn_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)
