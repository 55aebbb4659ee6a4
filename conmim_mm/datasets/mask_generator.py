"""Patch masks for the student view, sized from the image and the ViT's patch size."""
from functools import partial
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import SimMIMMaskGenerator
from mmpretrain.registry import TRANSFORMS

from .block_mask import BlockMaskGenerator


def _simmim_mask(generator: SimMIMMaskGenerator) -> np.ndarray:
    return generator({})['mask']


@TRANSFORMS.register_module()
class ConMIMMaskGenerator(BaseTransform):
    """Adds ``results['mask']``, an (H/p, W/p) int array with 1 on masked patches.

    The grid comes from the image in ``results['img']`` (the first view when there are
    several) and ``patch_size``, so one config serves every resolution. The two strategies of
    the ConMIM code:

    * ``'block'`` (the code default): the official BEiT block-wise masking
      (:class:`BlockMaskGenerator`) of ``round(mask_ratio * num_patches)`` patches, blocks of
      at least ``min_num_patches`` (75 of 196 patches with min 16 at 224/16 by default); every
      patch can be masked, a ratio the blocks cannot reach stops with a few patches less, and
      no mask is empty;
    * ``'random'`` (the ViT-L recipe): mmpretrain's SimMIM random masking of
      ``mask_unit_size``-pixel units, ``ceil(mask_ratio * num_units)`` of them (148 of 196
      patches at 224/16, ratio 0.75).

    The arguments are checked against the patch grid when the transform is built if
    ``input_size`` is given (the configs do), otherwise at the first image of each size.

    Args:
        patch_size (int): The ViT's patch size in pixels.
        strategy (str): ``'block'`` or ``'random'``.
        mask_ratio (float): Fraction of patches (block) or units (random) to mask.
        min_num_patches (int): Smallest block (block strategy).
        max_num_patches (int, optional): Largest block (block strategy).
        min_aspect (float): Smallest block aspect ratio (block strategy).
        mask_unit_size (int): Side of a random-masking unit in pixels (random strategy).
        input_size (int | tuple, optional): The (height, width) of the images to mask, to
            check the arguments against their grid at build time.
    """

    def __init__(self,
                 patch_size: int = 16,
                 strategy: str = 'block',
                 mask_ratio: float = 75 / 196,
                 min_num_patches: int = 16,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3,
                 mask_unit_size: int = 32,
                 input_size: Union[int, Tuple[int, int], None] = None) -> None:
        if strategy not in ('block', 'random'):
            raise ValueError(f"strategy must be 'block' or 'random', got {strategy!r}.")
        if not 0 < mask_ratio < 1:
            raise ValueError(f'mask_ratio must lie in (0, 1), got {mask_ratio}.')
        if strategy == 'block':  # the block generator's own checks, before any image
            BlockMaskGenerator.check_arguments(min_num_patches, max_num_patches, min_aspect)
        if strategy == 'random' and mask_unit_size % patch_size:
            raise ValueError(f'mask_unit_size ({mask_unit_size}) must be a multiple of '
                             f'patch_size ({patch_size}).')
        self.patch_size = patch_size
        self.strategy = strategy
        self.mask_ratio = mask_ratio
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches
        self.min_aspect = min_aspect
        self.mask_unit_size = mask_unit_size
        self._generators: Dict[Tuple[int, int], Callable[[], np.ndarray]] = {}
        if input_size is not None:
            self._generator(*((input_size, ) * 2 if isinstance(input_size, int) else input_size))

    def _generator(self, height: int, width: int) -> Callable[[], np.ndarray]:
        if (height, width) in self._generators:
            return self._generators[(height, width)]
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f'The {height}x{width} image is not a multiple of the patch size '
                             f'{p}; crop or resize it to a multiple of {p} before masking.')
        if self.strategy == 'block':
            grid = (height // p, width // p)
            generator = BlockMaskGenerator(
                grid,
                num_masking_patches=int(round(self.mask_ratio * grid[0] * grid[1])),
                min_num_patches=self.min_num_patches,
                max_num_patches=self.max_num_patches,
                min_aspect=self.min_aspect)
        else:
            if height != width or height % self.mask_unit_size:
                raise ValueError(
                    f'Random unit masking needs a square image whose side is a multiple of '
                    f'mask_unit_size={self.mask_unit_size}, got {height}x{width}.')
            simmim = SimMIMMaskGenerator(
                input_size=height, mask_patch_size=self.mask_unit_size,
                model_patch_size=p, mask_ratio=self.mask_ratio)
            generator = partial(_simmim_mask, simmim)
        self._generators[(height, width)] = generator
        return generator

    def transform(self, results: dict) -> dict:
        img = results['img'][0] if isinstance(results['img'], (list, tuple)) else results['img']
        height, width = img.shape[:2]
        results['mask'] = np.asarray(self._generator(height, width)(), dtype=int)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(patch_size={self.patch_size}, '
                f'strategy={self.strategy!r}, mask_ratio={self.mask_ratio})')
