"""The embedded default data: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package."""
import gzip
import os
import shutil

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
# What mmpretrain's MNIST-style datasets read from data_root, per split.
SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
FILES = SPLIT_FILES['train'] + SPLIT_FILES['test']
SPLIT_FILES['val'] = SPLIT_FILES['train']  # SplitFashionMNIST: the tail of the training images


def prepare_fashion_mnist(dst: str = 'data/fashion_mnist', src: str = DEBIAN_FASHION_MNIST) -> str:
    """Un-gzip the four idx files into ``dst`` (what mmpretrain's ``FashionMNIST`` reads).

    Returns ``dst``. Files already there are kept; several processes may prepare ``dst`` at once.
    """
    os.makedirs(dst, exist_ok=True)
    for name in FILES:
        out = os.path.join(dst, name)
        if os.path.exists(out):
            continue
        gz = os.path.join(src, name + '.gz')
        if not os.path.exists(gz):
            raise FileNotFoundError(
                f'{gz} is missing. Install the data with `apt-get install dataset-fashion-mnist` '
                '(tools/setup_env.sh does), or put the un-gzipped idx files in ' + dst)
        # A part file of this process alone: processes preparing the same folder at once (test
        # workers, one job per node) each write their own copy and rename it in atomically.
        part = f'{out}.{os.getpid()}.part'
        try:
            with gzip.open(gz, 'rb') as fin, open(part, 'wb') as fout:
                shutil.copyfileobj(fin, fout)
            os.replace(part, out)
        finally:
            if os.path.exists(part):
                os.remove(part)
    return dst
