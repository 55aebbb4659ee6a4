"""Block-wise patch masking exactly as the official ConMIM code does it (BEiT's generator)."""
import math
from typing import Optional, Tuple

import numpy as np


class BlockMaskGenerator:
    """Masks ``num_masking_patches`` of a ``(height, width)`` patch grid with random blocks.

    The official ConMIM (BEiT) algorithm: each block gets an area drawn uniformly from
    ``[min_num_patches, still to mask]`` (at most ``max_num_patches``) and a log-uniform aspect
    ratio in ``[min_aspect, 1 / min_aspect]``; it is smaller than the grid on each side and its
    top-left corner is drawn uniformly over *every* position where it fits, so every patch,
    the last row and column included, can be masked. A block is kept when it adds between one
    patch and what is still to mask; a block gets up to ``max_tries`` draws. Masking stops when
    the count is reached or when no draw adds anything (the mask then holds a few patches less,
    as in the official code): it never loops forever.

    Where the official code can return an empty mask (the first block fitting nowhere in its
    ``max_tries`` draws: 39 % of the masks with 40 of 7x7 patches and blocks of at least 36),
    the mask is drawn again, so that every mask holds at least one patch; a draw that masks
    something is the official one, so the distribution of settings that never give empty
    masks is unchanged. Settings where no first block can fit are refused at construction.

    mmpretrain's ``BEiTMaskGenerator`` differs on both points (exclusive upper bound for the
    corner, so the last row and column are never masked; no stop, so high ratios hang).

    Draws come from numpy's global random state, like the rest of the data pipeline, which
    mmengine seeds per dataloader worker and ``EpochSeedHook`` re-seeds per epoch.

    All its arguments are checked here, and nowhere else: the grid-free ones by
    ``check_arguments``, the others against the grid at construction.

    Raises:
        ValueError: at construction, when the arguments are invalid or do not fit the grid.
    """
    max_tries = 10
    max_draws = 10000  # redraws of an empty mask; at least 1 in 4225 draws fits (see _check)

    def __init__(self,
                 grid: Tuple[int, int],
                 num_masking_patches: int,
                 min_num_patches: int = 4,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3) -> None:
        self.check_arguments(min_num_patches, max_num_patches, min_aspect)
        self.height, self.width = grid
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        self.log_aspect_range = (math.log(min_aspect), -math.log(min_aspect))
        self._check(min_aspect)

    @staticmethod
    def check_arguments(min_num_patches: int, max_num_patches: Optional[int],
                        min_aspect: float) -> None:
        """The checks that need no grid (``ConMIMMaskGenerator`` runs them when it is built,
        before it knows the image size)."""
        if min_num_patches < 1:
            raise ValueError(f'min_num_patches must be at least 1, got {min_num_patches}.')
        if max_num_patches is not None and max_num_patches < min_num_patches:
            raise ValueError(f'max_num_patches={max_num_patches} is below '
                             f'min_num_patches={min_num_patches}.')
        if not 0 < min_aspect <= 1:
            raise ValueError(f'min_aspect must lie in (0, 1] (blocks have aspect ratios '
                             f'from min_aspect to 1/min_aspect), got {min_aspect}.')

    def _check(self, min_aspect: float) -> None:
        h, w, n = self.height, self.width, self.num_masking_patches
        where = f'on the {h}x{w} patch grid'
        if h < 2 or w < 2:
            raise ValueError(f'Block masking needs a patch grid of at least 2x2 (blocks are '
                             f'smaller than the grid on each side), got {h}x{w}: use a larger '
                             "image or strategy='random'.")
        if not 0 < n < h * w:
            raise ValueError(f'{n} patches to mask {where} ({h * w} patches): choose a '
                             'mask_ratio that masks at least one patch and leaves one visible.')
        if self.min_num_patches > n:
            raise ValueError(f'min_num_patches={self.min_num_patches} is more than the {n} '
                             f'patches to mask {where}: lower min_num_patches or raise mask_ratio.')
        if self._first_block_fit_share() == 0:
            raise ValueError(
                f'No block of {self.min_num_patches} to {min(n, self.max_num_patches)} patches '
                f'with an aspect ratio in [{min_aspect:g}, {1 / min_aspect:g}] fits {where} '
                '(blocks are smaller than the grid on each side): lower min_num_patches, '
                'lower min_aspect or use a larger image.')

    def _block_shape(self, area: float, log_aspect: float) -> Tuple[int, int]:
        aspect = math.exp(log_aspect)
        return int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))

    def _first_block_fit_share(self) -> float:
        """The share of first-block draws that fit the empty grid, on a fine deterministic
        sweep of the (uniform) area and log-aspect draws: 0 when no first block can fit."""
        largest = min(self.num_masking_patches, self.max_num_patches)
        fits = [0 < bh * bw <= largest and bh < self.height and bw < self.width
                for area in np.linspace(self.min_num_patches, largest, 65)
                for bh, bw in (self._block_shape(area, log_aspect)
                               for log_aspect in np.linspace(*self.log_aspect_range, 65))]
        return float(np.mean(fits))

    def _add_block(self, mask: np.ndarray, max_new: int) -> int:
        """Mask one more block adding 1..max_new patches; return how many it added (0: none fit)."""
        for _ in range(self.max_tries):
            area = np.random.uniform(self.min_num_patches, max_new)
            bh, bw = self._block_shape(area, np.random.uniform(*self.log_aspect_range))
            if bh >= self.height or bw >= self.width:
                continue
            top = np.random.randint(0, self.height - bh + 1)  # inclusive: the last row fits
            left = np.random.randint(0, self.width - bw + 1)
            block = mask[top:top + bh, left:left + bw]
            new = bh * bw - int(block.sum())
            if 0 < new <= max_new:
                block[...] = 1
                return new
        return 0

    def _draw(self) -> np.ndarray:
        """One mask of the official algorithm (may be empty, see the class notes)."""
        mask = np.zeros((self.height, self.width), dtype=int)
        count = 0
        while count < self.num_masking_patches:
            added = self._add_block(
                mask, min(self.num_masking_patches - count, self.max_num_patches))
            if added == 0:
                break
            count += added
        return mask

    def __call__(self) -> np.ndarray:
        """A new ``(height, width)`` int mask, 1 on masked patches, at least one of them."""
        for _ in range(self.max_draws):
            mask = self._draw()
            if mask.any():
                return mask
        raise RuntimeError(f'{self!r} placed no block in {self.max_draws} draws: lower '
                           'min_num_patches or min_aspect, or use a larger image.')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(grid=({self.height}, {self.width}), '
                f'num_masking_patches={self.num_masking_patches}, '
                f'min_num_patches={self.min_num_patches}, max_num_patches={self.max_num_patches})')
