"""Unpack Fashion-MNIST (Debian's ``dataset-fashion-mnist``) where the configs read it.

    python tools/data/prepare_fashion_mnist.py [--out data/fashion_mnist] [--src DIR]

The four idx files are un-gzipped into ``--out``; files already there are kept.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from conmim_mm.datasets.fashion_mnist import DEBIAN_FASHION_MNIST, prepare_fashion_mnist  # noqa


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/fashion_mnist', help='destination folder')
    parser.add_argument('--src', default=DEBIAN_FASHION_MNIST,
                        help='folder with the four *-ubyte.gz files')
    args = parser.parse_args(argv)
    try:
        out = prepare_fashion_mnist(args.out, args.src)
    except FileNotFoundError as err:
        raise SystemExit(str(err))
    print(f'Fashion-MNIST ready in {out}')


if __name__ == '__main__':
    main()
