"""The BEiT-style ViT that ConMIM pretrains, with a mask token and fused attention.

Parameter names are those of mmpretrain's ``BEiTViT`` (``layers.i.attn.qkv``, ``q_bias``,
``v_bias``, ``gamma_1``, ``rel_pos_bias.relative_position_bias_table``, ...), so a ConMIM
checkpoint loads into ``BEiTViT`` and into this class in mmpretrain, mmseg and mmdet alike.
Differences from ``BEiTViT``:

* attention runs through ``F.scaled_dot_product_attention`` with the relative position bias as
  an additive mask, which never materialises the N x N attention matrix for backward;
* any input whose sides are multiples of the patch size works: the relative position tables
  are resized on the fly when the token grid differs from the one they were built for;
* ``forward(x, mask)`` replaces the embeddings of masked patches by a learnable mask token;
* ``arch='small'`` is the paper's ViT-S (384 wide, 12 layers, 6 heads), not mmpretrain's
  768-wide, 8-layer BEiT-small;
* the official BEiT / ConMIM initialisation is the default (truncated normal, std 0.02, cut at
  +-0.02 = one standard deviation, as their ``trunc_normal_`` does; mmpretrain's BEiTViT cuts
  at +-2, i.e. not at all), and activation checkpointing is a switch.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.drop import DropPath
from mmengine.logging import MMLogger
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.beit import BEiTViT
from mmpretrain.models.utils import BEiTAttention
from mmpretrain.registry import MODELS

from ..utils.pretrained import _adapt_tables, load_pretrained_backbone
from ..utils.relative_position import (num_relative_distances, relative_position_bias,
                                       relative_position_index)

# Official modeling_pretrain.py: trunc_normal_(t, std=.02) draws with a=-std, b=std.
INIT_STD = 0.02


class SDPABEiTAttention(BEiTAttention):
    """``BEiTAttention`` (same parameters) computed by ``scaled_dot_product_attention``.

    ``rel_pos_bias`` is the (heads, N, N) bias to add to the attention logits; the backbone
    computes it for the current token grid (from this layer's own table or the shared one).
    """

    def _init_rel_pos_embedding(self) -> None:
        """``BEiTAttention``'s table and ``relative_position_index`` buffer, the index copied
        from the package's cached one: mmpretrain computes it anew in every layer, about a
        second per layer on a 64x64 grid (a detection backbone at 1024)."""
        if not self.use_rel_pos_bias:
            return super()._init_rel_pos_embedding()
        self.num_relative_distance = num_relative_distances(self.window_size)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(self.num_relative_distance, self.num_heads))
        self.register_buffer('relative_position_index',
                             relative_position_index(tuple(self.window_size)).clone())

    def forward(self, x: torch.Tensor, rel_pos_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.query_key_value(x)
        if rel_pos_bias is None and self.relative_position_bias_table is not None:
            grid = self.window_size
            if grid[0] * grid[1] + 1 != N:
                raise ValueError(f'This attention layer was built for a {grid[0]}x{grid[1]} token '
                                 f'grid but got {N - 1} patch tokens; pass the bias for the '
                                 'current grid (ConMIMViT does so).')
            rel_pos_bias = relative_position_bias(self.relative_position_bias_table, grid, grid)
        attn_mask = None if rel_pos_bias is None else rel_pos_bias.unsqueeze(0).to(q.dtype)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0., scale=self.scale)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, C)))

    def query_key_value(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of shape (B, heads, N, head_dims) for input tokens ``x`` (B, N, C), as
        ``forward`` computes them."""
        B, N, _ = x.shape
        qkv_bias = None
        if self.bias == 'qv_bias':
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        elif self.bias:
            qkv_bias = self.qkv.bias
        qkv = F.linear(x, self.qkv.weight, qkv_bias)
        q, k, v = qkv.view(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v


@MODELS.register_module()
class ConMIMViT(BEiTViT):
    """BEiT-style ViT for ConMIM pretraining and transfer.

    Args:
        arch (str | dict): ``'tiny'``/``'small'``/``'base'``/``'large'`` (192/384/768/1024 wide,
            12/12/12/24 layers, 3/6/12/16 heads) or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads`` and ``feedforward_channels``.
        img_size (int | tuple): Image size the relative position tables are built for.
            Other sizes work as long as both sides are multiples of ``patch_size``.
        patch_size (int): Side of a square patch in pixels.
        with_mask_token (bool): Create the learnable mask token (pretraining). Downstream
            models set it False; a checkpoint's ``mask_token`` is then ignored on load.
        use_checkpoint (bool): Recompute each layer's activations in backward (saves memory).
        **kwargs: Everything else ``BEiTViT`` takes (``out_indices``, ``out_type``,
            ``final_norm``, ``drop_path_rate``, ``layer_scale_init_value``,
            ``use_rel_pos_bias``, ``use_shared_rel_pos_bias``, ``frozen_stages``, ...).
    """
    arch_zoo = {
        **BEiTViT.arch_zoo,
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=192, num_layers=12, num_heads=3,
                                            feedforward_channels=768)),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=384, num_layers=12, num_heads=6,
                                             feedforward_channels=1536)),
    }

    def __init__(self,
                 arch='base',
                 img_size=224,
                 patch_size=16,
                 with_mask_token: bool = True,
                 use_checkpoint: bool = False,
                 init_cfg=None,
                 **kwargs):
        if init_cfg is None:  # the official BEiT / ConMIM initialisation
            init_cfg = [
                dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=INIT_STD, a=-INIT_STD,
                     b=INIT_STD, bias=0.),
                dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
            ]
        # BEiTViT builds mmpretrain's BEiTAttention in every layer, replaced below by the
        # same parameters computed with the fused attention kernel; it is built without its
        # relative position table and index (seconds per layer on a large grid), which the
        # replacement gets.
        layer_cfgs, tables = self._layer_cfgs_without_tables(arch, kwargs)
        super().__init__(arch=arch, img_size=img_size, patch_size=patch_size, init_cfg=init_cfg,
                         layer_cfgs=layer_cfgs, **kwargs)
        self.patch_size = patch_size
        self.use_checkpoint = use_checkpoint
        for layer, (use_table, window) in zip(self.layers, tables):
            old = layer.attn
            layer.attn = SDPABEiTAttention(
                embed_dims=old.embed_dims, num_heads=old.num_heads,
                window_size=(window or self.patch_resolution) if use_table else None,
                use_rel_pos_bias=use_table, bias=old.bias, qk_scale=old.scale,
                attn_drop_rate=old.attn_drop.p, proj_drop_rate=old.proj_drop.p)
        # BEiTViT hands each block's DropPaths a numpy scalar rate; as a Python float it no
        # longer breaks the torch.compile graph twice per block.
        for module in self.modules():
            if isinstance(module, DropPath):
                module.drop_prob = float(module.drop_prob)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) if with_mask_token else None
        self._register_load_state_dict_pre_hook(self._drop_unused_mask_token)
        if self.frozen_stages > 0:  # again: the attention modules above are new
            self._freeze_stages()

    def _layer_cfgs_without_tables(self, arch, kwargs):
        """``layer_cfgs`` (popped from ``kwargs``) with each attention built without its
        relative position table, and per layer what the table should be: (use it, window or
        None for the patch grid), as ``BEiTViT`` would read them from the configs."""
        layer_cfgs = kwargs.pop('layer_cfgs', dict())
        settings = arch if isinstance(arch, dict) else self.arch_zoo.get(str(arch).lower(), {})
        num_layers = settings.get('num_layers')
        if num_layers is None:  # BEiTViT names the problem
            return layer_cfgs, []
        if isinstance(layer_cfgs, dict):
            layer_cfgs = [layer_cfgs] * num_layers
        use_table = kwargs.get('use_rel_pos_bias', True)
        tables, stripped = [], []
        for cfg in layer_cfgs:
            attn_cfg = dict(cfg.get('attn_cfg', {}))
            tables.append((attn_cfg.get('use_rel_pos_bias', cfg.get('use_rel_pos_bias', use_table)),
                           attn_cfg.get('window_size', cfg.get('window_size'))))
            stripped.append(dict(cfg, attn_cfg=dict(attn_cfg, use_rel_pos_bias=False)))
        return stripped, tables

    # ------------------------------------------------------------------ init & loading
    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            # Unlike mmengine's PretrainedInit (strict=False, only logs), keys that do not fit
            # raise; tables are expanded per layer and resized (see utils/pretrained.py).
            load_pretrained_backbone(self, self.init_cfg.get('checkpoint'),
                                     prefix=self.init_cfg.get('prefix', ''),
                                     map_location=self.init_cfg.get('map_location', 'cpu'))
            self._is_init = True
            return
        super().init_weights()
        # mmpretrain's TransformerEncoderLayer.init_weights re-draws the FFN Linear layers with
        # Xavier after the init_cfg above; the official code draws them like every Linear.
        for layer in self.layers:
            for module in layer.ffn.modules():
                if isinstance(module, nn.Linear):
                    trunc_normal_(module.weight, std=INIT_STD, a=-INIT_STD, b=INIT_STD)
                    nn.init.zeros_(module.bias)
        trunc_normal_(self.cls_token, std=INIT_STD, a=-INIT_STD, b=INIT_STD)
        if self.mask_token is not None:
            trunc_normal_(self.mask_token, std=INIT_STD, a=-INIT_STD, b=INIT_STD)
        # BEiT rescales each residual branch's output projection by 1/sqrt(2 * depth).
        for depth, layer in enumerate(self.layers, start=1):
            layer.attn.proj.weight.data.div_(math.sqrt(2.0 * depth))
            layer.ffn.layers[1].weight.data.div_(math.sqrt(2.0 * depth))

    def _drop_unused_mask_token(self, state_dict, prefix, *args, **kwargs):
        if self.mask_token is None:
            state_dict.pop(prefix + 'mask_token', None)

    def _prepare_relative_position_bias_table(self, state_dict, prefix, *args, **kwargs):
        """Replaces ``BEiTViT``'s load pre-hook (its SciPy ``interp2d`` resize is gone in SciPy
        1.14): relative position tables of a checkpoint saved at another image/patch grid are
        resized with the package's own resize, as ``init_cfg`` loading does, and the
        ``relative_position_index`` buffers are this model's own (they depend on the grid)."""
        keys = [k for k in state_dict if k.startswith(prefix)]
        if not any('relative_position' in k for k in keys):
            return
        state = {k[len(prefix):]: state_dict.pop(k) for k in keys}
        notes = _adapt_tables(self, state)  # drops the checkpoint's index buffers
        state.update({k: v for k, v in self.state_dict().items()
                      if k.endswith('relative_position_index')})
        state_dict.update({prefix + k: v for k, v in state.items()})
        if notes:
            MMLogger.get_current_instance().info(f'{prefix or "backbone "}: ' + '; '.join(notes))

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f'ConMIMViT expects images of shape (B, C, H, W), got {tuple(x.shape)}.')
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f'ConMIMViT got a {h}x{w} image, but both sides must be multiples of the patch '
                f'size {self.patch_size}. Resize, crop or pad the input (e.g. to '
                f'{math.ceil(h / self.patch_size) * self.patch_size}x'
                f'{math.ceil(w / self.patch_size) * self.patch_size}).')

    def _run_layer(self, layer, x: torch.Tensor, grid: Tuple[int, int],
                   shared_bias: Optional[torch.Tensor]) -> torch.Tensor:
        """One block; its own relative position bias is built here, so that activation
        checkpointing recomputes it instead of keeping an N x N tensor per block."""
        bias = shared_bias
        if bias is None and layer.attn.relative_position_bias_table is not None:
            bias = relative_position_bias(layer.attn.relative_position_bias_table,
                                          layer.attn.window_size, grid)
        return layer(x, bias)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor]:
        """Encode images; with a patch ``mask`` (B, h, w) or (B, h*w), True/1 = masked,
        the embeddings of masked patches are replaced by the mask token."""
        self._check_input(x)
        B = x.shape[0]
        x, grid = self.patch_embed(x)
        if mask is not None:
            if self.mask_token is None:
                raise RuntimeError('This ConMIMViT was built with with_mask_token=False, so it '
                                   'cannot take a mask.')
            mask = mask.reshape(B, -1)
            if mask.shape[1] != x.shape[1]:
                raise ValueError(f'The mask has {mask.shape[1]} patches but the image has '
                                 f'{grid[0]}x{grid[1]} = {x.shape[1]}; build the mask for image '
                                 f'size / patch size {self.patch_size}.')
            x = torch.where(mask.bool().unsqueeze(-1), self.mask_token.to(x.dtype), x)

        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + self.resize_pos_embed(self.pos_embed, self.patch_resolution, grid,
                                          mode=self.interpolate_mode,
                                          num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)

        shared_bias = None
        if self.rel_pos_bias is not None:  # one table for all layers (pretraining)
            shared_bias = relative_position_bias(self.rel_pos_bias.relative_position_bias_table,
                                                 self.rel_pos_bias.window_size, grid)
        outs = []
        for i, layer in enumerate(self.layers):
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = cp.checkpoint(self._run_layer, layer, x, grid, shared_bias,
                                  use_reentrant=False)
            else:
                x = self._run_layer(layer, x, grid, shared_bias)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, grid))
        return tuple(outs)
