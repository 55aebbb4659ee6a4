"""Relative position bias for BEiT-style ViTs, on any token grid.

The bias table of a BEiT layer holds one learnable value per head for every 2-D offset between
two patches of a ``window`` (the pretraining grid, e.g. 14x14), plus three entries for the
[CLS] token (cls->patch, patch->cls, cls->cls). On a grid of another size (a 512x512 crop, a
detection image of any shape) the patch part of the table is resized bicubically and indexed
with the offsets of that grid, so one set of weights serves every input size.
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

NUM_CLS_ENTRIES = 3


def num_relative_distances(window: Tuple[int, int]) -> int:
    """Rows of a bias table for ``window``: all patch offsets plus the [CLS] entries."""
    return (2 * window[0] - 1) * (2 * window[1] - 1) + NUM_CLS_ENTRIES


def _build_index(grid: Tuple[int, int], device: torch.device) -> torch.Tensor:
    """The index of ``relative_position_index``, built on ``device``."""
    h, w = grid
    # Offset (dy, dx) of patches i and j has row (dy + h - 1) * (2w - 1) + (dx + w - 1), which
    # is key(i) - key(j) + const with key = row * (2w - 1) + col: one (N, N) subtraction.
    patches = torch.arange(h * w, device=device)
    key = (patches // w) * (2 * w - 1) + patches % w
    patch_index = key[:, None] - key[None, :] + ((h - 1) * (2 * w - 1) + w - 1)
    num_distances = num_relative_distances(grid)
    index = torch.empty((h * w + 1, ) * 2, dtype=torch.long, device=device)
    index[1:, 1:] = patch_index
    index[0, :] = num_distances - 3  # cls -> token
    index[:, 0] = num_distances - 2  # token -> cls
    index[0, 0] = num_distances - 1  # cls -> cls
    return index


_cached_index = lru_cache(maxsize=32)(_build_index)


def relative_position_index(grid: Tuple[int, int],
                            device: Optional[torch.device] = None) -> torch.Tensor:
    """(N+1, N+1) table row for every token pair of ``grid`` (N = h*w, token 0 is [CLS]).

    The layout is BEiT's, so the same table rows are read as in mmpretrain's ``BEiTAttention``.
    Eager, it is cached per grid and device: a forward pass on a GPU finds its index there,
    instead of copying it from host memory (a copy that waits for the GPU) in every layer.
    Inside ``torch.compile`` it is built on ``device`` by the graph itself: dynamo does not
    honour Python-side caches (it traces the cached function's body), so the index is a few
    integer ops of the compiled graph rather than a host tensor copied in every step.
    """
    grid = (int(grid[0]), int(grid[1]))
    device = torch.device('cpu') if device is None else torch.device(device)
    if torch.compiler.is_compiling():
        return _build_index(grid, device)
    return _cached_index(grid, device)


def resize_bias_table(table: torch.Tensor, window: Tuple[int, int],
                      grid: Tuple[int, int]) -> torch.Tensor:
    """Resize a (num_distances(window), heads) table to ``grid`` (bicubic, differentiable)."""
    if tuple(window) == tuple(grid):
        return table
    patch_part, cls_part = table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]
    src = (2 * window[0] - 1, 2 * window[1] - 1)
    dst = (2 * grid[0] - 1, 2 * grid[1] - 1)
    patch_part = patch_part.t().reshape(1, -1, *src)
    patch_part = F.interpolate(patch_part, size=dst, mode='bicubic', align_corners=False)
    return torch.cat([patch_part.reshape(-1, dst[0] * dst[1]).t(), cls_part], dim=0)


def relative_position_bias(table: torch.Tensor, window: Tuple[int, int],
                           grid: Tuple[int, int]) -> torch.Tensor:
    """The (heads, N+1, N+1) additive attention bias of ``table`` on a token ``grid``."""
    grid = tuple(int(g) for g in grid)
    table = resize_bias_table(table, tuple(window), grid)
    index = relative_position_index(grid, table.device)
    num_tokens = grid[0] * grid[1] + 1
    # Read per head from the (heads, rows) table: the result comes out (heads, N+1, N+1)
    # without a permuted copy (a 64x64 grid: 3x faster on a CPU, one 800 MB tensor fewer).
    bias = torch.index_select(table.t().contiguous(), 1, index.view(-1))
    return bias.view(-1, num_tokens, num_tokens)
