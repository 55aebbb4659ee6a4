"""``ConMIMViT`` with ViTDet's windowed attention (Li et al., "Exploring Plain Vision Transformer
Backbones for Object Detection", ECCV 2022).

Most blocks attend within non-overlapping ``window_size`` x ``window_size`` windows of the token
grid (the grid is padded with zeros after the block's first norm to a multiple of the window, the
padding dropped after attention); a few evenly spaced blocks attend globally (ViT-S/B: 2, 5, 8,
11; ViT-L: 5, 11, 17, 23). Parameters are ``ConMIMViT``'s, so a ConMIM checkpoint loads whole:

* every block gets its own copy of the pretrained relative position table; windowed blocks build
  theirs for the window (14x14 = the pretraining grid: the table is used as it was learned),
  global blocks for the full ``img_size`` grid (the pretrained table resized by the package's
  bicubic resize when the checkpoint loads, and again on the fly for other input sizes);
* ViTDet drops the [CLS] token; here it is kept so that each window sees what pretraining
  showed the model (a 14x14 grid plus [CLS], biased by the table as is, its [CLS] entries
  included): every window attends with a copy of the [CLS] token and the token's new value is
  the mean over windows. Global blocks treat it as ``ConMIMViT`` does.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..models.backbones import ConMIMViT
from ..models.utils.relative_position import relative_position_bias


def partition_windows(tokens: torch.Tensor, grid: Tuple[int, int],
                      window: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Split patch tokens (B, h*w, C) into windows (B * nh * nw, wh*ww, C), batch-major, after
    padding the grid with zeros to (nh*wh, nw*ww); also returns that padded grid."""
    B, _, C = tokens.shape
    (h, w), (wh, ww) = grid, window
    x = tokens.view(B, h, w, C)
    pad_h, pad_w = -h % wh, -w % ww
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded = (h + pad_h, w + pad_w)
    x = x.view(B, padded[0] // wh, wh, padded[1] // ww, ww, C).transpose(2, 3)
    return x.reshape(-1, wh * ww, C), padded


def merge_windows(windows: torch.Tensor, batch: int, grid: Tuple[int, int],
                  padded: Tuple[int, int], window: Tuple[int, int]) -> torch.Tensor:
    """Inverse of ``partition_windows``: (B * nh * nw, wh*ww, C) back to (B, h*w, C)."""
    (h, w), (wh, ww) = grid, window
    C = windows.shape[-1]
    x = windows.view(batch, padded[0] // wh, padded[1] // ww, wh, ww, C).transpose(2, 3)
    x = x.reshape(batch, padded[0], padded[1], C)[:, :h, :w]
    return x.reshape(batch, h * w, C)


def evenly_spaced_global_blocks(num_layers: int, num_global: int = 4) -> Tuple[int, ...]:
    """The last block of each of ``num_global`` equal stages: ViTDet's global blocks (2, 5, 8, 11
    of 12; 5, 11, 17, 23 of 24)."""
    if num_layers % num_global:
        raise ValueError(f'Cannot place {num_global} global attention blocks evenly in '
                         f'{num_layers} blocks; set global_attn_indices explicitly.')
    step = num_layers // num_global
    return tuple(range(step - 1, num_layers, step))


class ConMIMViTDet(ConMIMViT):
    """``ConMIMViT`` with windowed attention in all blocks except ``global_attn_indices``.

    Args:
        arch (str | dict): As ``ConMIMViT``.
        img_size (int | tuple): The (padded) detection input the global blocks' relative
            position tables are built for; ViTDet trains and tests at 1024x1024.
        window_size (int): Side of the attention windows, in tokens (ViTDet: 14).
        global_attn_indices (Sequence[int], optional): Blocks with global attention; by default
            the last block of each quarter of the network.
        pad_to_img_size (bool): Pad smaller inputs with zeros (the mean colour after
            normalisation) to ``img_size`` and crop the feature maps back, so that the global
            blocks always attend over the grid their tables were built for, as detectron2's
            ``square_pad`` does for test images. Needs ``out_type='featmap'``.
        **kwargs: Everything else ``ConMIMViT`` takes (``out_indices``, ``drop_path_rate``,
            ``use_checkpoint``, ``init_cfg``, ...). Relative position tables are per block
            (``use_rel_pos_bias=True``), ``layer_cfgs`` is set here.
    """

    def __init__(self,
                 arch='base',
                 img_size=1024,
                 window_size: int = 14,
                 global_attn_indices: Optional[Sequence[int]] = None,
                 pad_to_img_size: bool = False,
                 use_rel_pos_bias: bool = True,
                 use_shared_rel_pos_bias: bool = False,
                 **kwargs):
        if not use_rel_pos_bias or use_shared_rel_pos_bias:
            raise ValueError('ConMIMViTDet needs one relative position table per block (windowed '
                             'and global blocks use it on different grids): set '
                             'use_rel_pos_bias=True, use_shared_rel_pos_bias=False.')
        if 'layer_cfgs' in kwargs:
            raise ValueError('ConMIMViTDet sets layer_cfgs itself (the window of each block); '
                             'choose the blocks with global_attn_indices.')
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f'window_size must be a positive int (tokens), got {window_size!r}.')
        settings = arch if isinstance(arch, dict) else self.arch_zoo.get(str(arch).lower())
        if not settings or 'num_layers' not in settings:
            raise ValueError(f'Unknown arch {arch!r}: use one of {sorted(self.arch_zoo)} or a '
                             'dict with embed_dims, num_layers, num_heads, feedforward_channels.')
        num_layers = settings['num_layers']
        if global_attn_indices is None:
            global_attn_indices = evenly_spaced_global_blocks(num_layers)
        global_attn_indices = sorted({i % num_layers if -num_layers <= i < num_layers else i
                                      for i in global_attn_indices})
        bad = [i for i in global_attn_indices if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f'global_attn_indices {bad} are not blocks of this {num_layers}-block '
                             'ViT.')
        window = (window_size, window_size)
        layer_cfgs = [dict() if i in global_attn_indices else
                      dict(attn_cfg=dict(window_size=window)) for i in range(num_layers)]
        super().__init__(arch=arch, img_size=img_size, use_rel_pos_bias=True,
                         use_shared_rel_pos_bias=False, layer_cfgs=layer_cfgs, **kwargs)
        if pad_to_img_size and self.out_type != 'featmap':
            raise ValueError("pad_to_img_size crops feature maps: it needs out_type='featmap'.")
        self.pad_to_img_size = pad_to_img_size
        self.window_size = window
        self.global_attn_indices = tuple(global_attn_indices)
        for i, layer in enumerate(self.layers):
            # read by _run_layer (an attribute of the block, so it survives deepcopy and EMA)
            layer.attn_window = None if i in global_attn_indices else window

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor]:
        if not self.pad_to_img_size:
            return super().forward(x, mask)
        self._check_input(x)
        h, w = x.shape[-2:]
        pad_h, pad_w = max(self.img_size[0] - h, 0), max(self.img_size[1] - w, 0)
        if mask is not None and (pad_h or pad_w):
            raise ValueError('A patch mask needs an input of img_size when pad_to_img_size=True.')
        outs = super().forward(F.pad(x, (0, pad_w, 0, pad_h)), mask)
        return tuple(out[..., :h // self.patch_size, :w // self.patch_size] for out in outs)

    def _run_layer(self, layer, x: torch.Tensor, grid: Tuple[int, int],
                   shared_bias: Optional[torch.Tensor]) -> torch.Tensor:
        window = getattr(layer, 'attn_window', None)
        if window is None:
            return super()._run_layer(layer, x, grid, shared_bias)
        B, _, C = x.shape
        normed = layer.ln1(x)
        windows, padded = partition_windows(normed[:, 1:], grid, window)
        per_image = windows.shape[0] // B
        cls = normed[:, :1].repeat_interleave(per_image, dim=0)
        bias = relative_position_bias(layer.attn.relative_position_bias_table,
                                      layer.attn.window_size, window)
        out = layer.attn(torch.cat((cls, windows), dim=1), rel_pos_bias=bias)
        cls = out[:, :1].view(B, per_image, 1, C).mean(dim=1)
        attended = torch.cat((cls, merge_windows(out[:, 1:], B, grid, padded, window)), dim=1)
        # the residual branches of BEiTTransformerEncoderLayer.forward, with windowed attention
        if layer.gamma_1 is not None:
            attended = layer.gamma_1 * attended
        x = x + layer.drop_path(attended)
        mlp = layer.ffn(layer.ln2(x))
        if layer.gamma_2 is not None:
            mlp = layer.gamma_2 * mlp
        return x + layer.drop_path(mlp)
