"""The random draws of the teacher view's perturbations, made by the data workers.

The pixels of the teacher view are then computed on the training device by
``ConMIMDataPreprocessor`` from the one crop the workers send; what the workers add is a
small float vector per image with every random choice already made, so the draws come from
the workers' seeded random state (mmengine seeds it per worker, ``EpochSeedHook`` per epoch)
and a resumed run draws what the uninterrupted run drew.
"""
from typing import Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

# Positions in the parameter vector (shared with conmim_mm.models.utils.data_preprocessor).
JITTER_OPS = ('brightness', 'contrast', 'saturation', 'hue')  # torchvision's op indices
PARAM_NAMES = (
    'jitter',  # 1: colour jitter applied (else the four ops are skipped)
    'brightness', 'contrast', 'saturation', 'hue',  # the jitter factors
    'order0', 'order1', 'order2', 'order3',  # the jitter ops in the drawn order (JITTER_OPS)
    'hue_on',  # 1 when the hue op is part of the jitter (hue range > 0), as in torchvision
    'grayscale',  # 1: converted to grey (three equal channels)
    'blur', 'blur_sigma',  # 1: Gaussian blur of that sigma
    'solarize', 'solarize_threshold',  # 1: levels >= threshold inverted
)
PARAM_INDEX = {name: i for i, name in enumerate(PARAM_NAMES)}


def _factor_range(value: float, name: str, centre: float = 1.,
                  bound: Tuple[float, float] = (0., float('inf'))) -> Tuple[float, float]:
    """torchvision's ``ColorJitter`` range for a scalar: [centre - value, centre + value]."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f'{name} must be non-negative, got {value}.')
        low, high = centre - value, centre + value
        if centre == 1.:
            low = max(low, 0.)
    elif isinstance(value, Sequence) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    else:
        raise TypeError(f'{name} must be a number or a (min, max) pair, got {value!r}.')
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f'{name} range ({low}, {high}) must be ordered and within {bound}.')
    return low, high


def _probability(value: float, name: str) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f'{name} is a probability, in [0, 1]; got {value}.')
    return float(value)


@TRANSFORMS.register_module()
class DrawTeacherPerturbations(BaseTransform):
    """Draws the teacher view's photometric perturbations; adds ``results['teacher_params']``.

    The official ConMIM teacher view (BYOL's second view): ``RandomApply(ColorJitter(0.4,
    0.4, 0.2, 0.1), p=0.8)`` (the four ops in a random order), ``RandomGrayscale(p=0.2)``,
    Gaussian blur of sigma uniform in [0.1, 2] with p=0.1, solarize (threshold 128) with
    p=0.2. Every choice is drawn here, from numpy's global random state as the other
    transforms do; the image is not touched. Put it after the shared crop and flip and add
    ``'teacher_params'`` to ``PackInputs``'s ``algorithm_keys``: ``ConMIMDataPreprocessor``
    builds both views on the device from the crop and these parameters.

    Each image always takes the same number of draws (also for the ops it skips), so the
    random stream does not depend on earlier outcomes.

    Args:
        jitter_prob (float): Probability of the colour jitter.
        brightness, contrast, saturation (float | tuple): torchvision's ``ColorJitter``
            arguments: a factor in [1 - x, 1 + x] (at least 0), or a (min, max) range.
        hue (float | tuple): A hue factor in [-x, x] (x <= 0.5), or a (min, max) range. 0
            leaves the hue op out, as torchvision does.
        grayscale_prob (float): Probability of the grey conversion.
        blur_prob (float): Probability of the Gaussian blur.
        blur_sigma (tuple): Range of the blur's sigma (Pillow's ``GaussianBlur`` radius), at
            most ``ConMIMDataPreprocessor.max_blur_sigma`` (4 by default).
        solarize_prob (float): Probability of solarization.
        solarize_threshold (float): Levels at or above it are inverted.
    """

    def __init__(self,
                 jitter_prob: float = 0.8,
                 brightness=0.4,
                 contrast=0.4,
                 saturation=0.2,
                 hue=0.1,
                 grayscale_prob: float = 0.2,
                 blur_prob: float = 0.1,
                 blur_sigma: Tuple[float, float] = (0.1, 2.0),
                 solarize_prob: float = 0.2,
                 solarize_threshold: float = 128) -> None:
        self.jitter_prob = _probability(jitter_prob, 'jitter_prob')
        self.brightness = _factor_range(brightness, 'brightness')
        self.contrast = _factor_range(contrast, 'contrast')
        self.saturation = _factor_range(saturation, 'saturation')
        self.hue = _factor_range(hue, 'hue', centre=0., bound=(-0.5, 0.5))
        self.grayscale_prob = _probability(grayscale_prob, 'grayscale_prob')
        self.blur_prob = _probability(blur_prob, 'blur_prob')
        if (not isinstance(blur_sigma, Sequence) or len(blur_sigma) != 2
                or not 0 < blur_sigma[0] <= blur_sigma[1]):
            raise ValueError('blur_sigma is a (min, max) range of positive sigmas, got '
                             f'{blur_sigma!r}.')
        self.blur_sigma = (float(blur_sigma[0]), float(blur_sigma[1]))
        self.solarize_prob = _probability(solarize_prob, 'solarize_prob')
        self.solarize_threshold = float(solarize_threshold)

    def draw(self) -> np.ndarray:
        """One image's parameter vector (float32, laid out as ``PARAM_NAMES``)."""
        rand, uniform, at = np.random.random_sample, np.random.uniform, PARAM_INDEX
        params = np.empty(len(PARAM_NAMES), dtype=np.float32)
        params[at['jitter']] = rand() < self.jitter_prob
        params[at['order0']:at['order3'] + 1] = np.random.permutation(len(JITTER_OPS))
        for name in JITTER_OPS:
            params[at[name]] = uniform(*getattr(self, name))
        params[at['hue_on']] = self.hue != (0., 0.)
        params[at['grayscale']] = rand() < self.grayscale_prob
        params[at['blur']] = rand() < self.blur_prob
        params[at['blur_sigma']] = uniform(*self.blur_sigma)
        params[at['solarize']] = rand() < self.solarize_prob
        params[at['solarize_threshold']] = self.solarize_threshold
        return params

    def transform(self, results: dict) -> dict:
        results['teacher_params'] = self.draw()
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(jitter_prob={self.jitter_prob}, '
                f'brightness={self.brightness}, contrast={self.contrast}, '
                f'saturation={self.saturation}, hue={self.hue}, '
                f'grayscale_prob={self.grayscale_prob}, blur_prob={self.blur_prob}, '
                f'blur_sigma={self.blur_sigma}, solarize_prob={self.solarize_prob}, '
                f'solarize_threshold={self.solarize_threshold})')
