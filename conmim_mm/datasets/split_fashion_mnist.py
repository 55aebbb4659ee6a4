"""Fashion-MNIST with a validation split carved from the training images."""
from mmpretrain.datasets import FashionMNIST
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class SplitFashionMNIST(FashionMNIST):
    """mmpretrain's ``FashionMNIST`` with three splits, so that choices never read the test set.

    * ``split='train'``: the first ``60,000 - val_images`` training images (50k by default);
    * ``split='val'``: the last ``val_images`` training images, the held-out validation split;
    * ``split='test'``: the 10k test images.

    ``indices`` (first N, or a list) then selects within the split, as in every mmengine
    dataset. The split asked for is kept in ``part``; ``split`` is the idx file pair that
    mmpretrain reads ('train' for both 'train' and 'val').

    Args:
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        val_images (int): Training images held out as the validation split (0: none, then
            'train' is all 60k and 'val' is an error). Defaults to 10000.
        **kwargs: Everything else mmpretrain's ``FashionMNIST`` takes.
    """
    PARTS = ('train', 'val', 'test')

    def __init__(self, *args, split: str = 'train', val_images: int = 10000, **kwargs) -> None:
        if split not in self.PARTS:
            raise ValueError(f'SplitFashionMNIST: split={split!r} is not one of {self.PARTS}.')
        if not isinstance(val_images, int) or val_images < 0:
            raise ValueError(f'SplitFashionMNIST: val_images={val_images!r} must be an int >= 0 '
                             '(the number of training images held out for validation).')
        if split == 'val' and val_images == 0:
            raise ValueError("SplitFashionMNIST: split='val' with val_images=0 holds nothing out; "
                             'set val_images to the size of the validation split, e.g. 10000.')
        self.part = split
        self.val_images = val_images
        super().__init__(*args, split='test' if split == 'test' else 'train', **kwargs)

    def load_data_list(self):
        data_list = super().load_data_list()
        if self.part == 'test':
            return data_list
        if self.val_images >= len(data_list):
            raise ValueError(f'SplitFashionMNIST: val_images={self.val_images} leaves no training '
                             f'image of the {len(data_list)}.')
        cut = len(data_list) - self.val_images
        return data_list[:cut] if self.part == 'train' else data_list[cut:]
