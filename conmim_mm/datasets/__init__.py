from .mask_generator import ConMIMMaskGenerator

__all__ = ['ConMIMMaskGenerator']
from .fashion_mnist import prepare_fashion_mnist
from .split_fashion_mnist import SplitFashionMNIST

__all__ += ['prepare_fashion_mnist', 'SplitFashionMNIST']
from .checks import DatasetNotFoundError, check_dataset_paths

__all__ += ['DatasetNotFoundError', 'check_dataset_paths']
from .block_mask import BlockMaskGenerator
from .loading import (LoadImageFromFileOrSkip, SkipsUnreadableAnnotations,
                      TooManyUnreadableFilesError, TooManyUnreadableImagesError,
                      UnreadableImageError, loggable, unreadable_annotation_reason,
                      unreadable_reason)

__all__ += ['BlockMaskGenerator', 'LoadImageFromFileOrSkip', 'SkipsUnreadableAnnotations',
            'TooManyUnreadableFilesError', 'TooManyUnreadableImagesError', 'UnreadableImageError',
            'loggable', 'unreadable_annotation_reason', 'unreadable_reason']
from .teacher_perturbations import DrawTeacherPerturbations

__all__ += ['DrawTeacherPerturbations']
from .torch_crop import TorchRandomResizedCrop

__all__ += ['TorchRandomResizedCrop']
