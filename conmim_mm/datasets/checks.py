"""Fail early, with the expected layout, when a config's dataset is not on disk."""
import os.path as osp
from typing import List

from .fashion_mnist import SPLIT_FILES

LAYOUTS = {
    'ImageNet': """data/imagenet/
├── train/n01440764/*.JPEG ...      (1000 class folders)
├── val/...
└── meta/train.txt, val.txt          (optional: "relative/path label" lines)""",
    'FashionMNIST': """data/fashion_mnist/
├── train-images-idx3-ubyte, train-labels-idx1-ubyte
└── t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
(run `python tools/data/prepare_fashion_mnist.py`)""",
    'ADE20KDataset': """data/ade/ADEChallengeData2016/
├── images/{training,validation}/*.jpg
└── annotations/{training,validation}/*.png""",
    'CocoDataset': """data/coco/
├── annotations/instances_{train,val}2017.json
└── {train,val}2017/*.jpg""",
}

LAYOUTS['SplitFashionMNIST'] = LAYOUTS['FashionMNIST']


class DatasetNotFoundError(FileNotFoundError):
    """A dataset path of a config does not exist."""


def _dataset_paths(dataset: dict) -> List[str]:
    root = dataset.get('data_root') or ''
    paths = [root] if root else []
    if str(dataset.get('type', '')).split('.')[-1] in ('MNIST', 'FashionMNIST',
                                                       'SplitFashionMNIST'):
        files = SPLIT_FILES.get(dataset.get('split') or 'train', ())
        return paths + [osp.join(root, name) for name in files]
    ann_file = dataset.get('ann_file') or ''
    if ann_file:
        paths.append(osp.join(root, ann_file))
    if dataset.get('split') and not ann_file:
        paths.append(osp.join(root, dataset['split']))
    prefix = dataset.get('data_prefix') or {}
    if isinstance(prefix, str):
        prefix = dict(root=prefix)
    for value in prefix.values():
        if isinstance(value, str) and value:
            paths.append(osp.join(root, value))
    return paths


def check_dataset_paths(dataset: dict) -> None:
    """Raise ``DatasetNotFoundError`` naming the missing path and the layout expected."""
    if 'dataset' in dataset:  # wrappers such as RepeatDataset
        return check_dataset_paths(dataset['dataset'])
    if 'datasets' in dataset:  # ConcatDataset
        for sub in dataset['datasets']:
            check_dataset_paths(sub)
        return
    for path in _dataset_paths(dataset):
        if not osp.exists(path):
            kind = str(dataset.get('type', 'dataset')).split('.')[-1]
            layout = LAYOUTS.get(kind, '')
            raise DatasetNotFoundError(
                f'The {kind} data of this config is missing: {path!r} does not exist.\n'
                + (f'Expected layout:\n{layout}\n' if layout else '')
                + 'Put the data there (a symlink is fine) or point the config at it, e.g. '
                "--cfg-options train_dataloader.dataset.data_root=/path/to/data/")
