"""ConMIM (Masked Image Modeling with Denoising Contrast, ICLR 2023) for OpenMMLab.

Importing the package registers the pretraining pieces in mmpretrain's registries. The
mmsegmentation and mmdetection glue lives in ``conmim_mm.seg`` and ``conmim_mm.det`` and is
imported only by the downstream configs.
"""
from . import datasets, engine, models  # noqa: F401

__version__ = '0.1.0'
