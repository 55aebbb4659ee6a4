"""Reference points of the Fashion-MNIST benchmark: what the raw images give under the
benchmark's own frozen protocols, on the same splits (docs/results.md, References).

- ``pixels_knn``: kNN top-1 of the raw grey values (784 per image), the benchmark's kNN (k = 20,
  cosine, exp(cos / 0.07) votes); bank = the first ``bank_images`` training images.
- ``pixels_logistic``: the benchmark's linear probe (standardised features, L-BFGS multinomial
  logistic regression) on the raw grey values, trained on the same images; its L2 weight decay
  is chosen on the validation split (the first ``val_eval_images`` of it).
- ``patch_mean_knn`` / ``patch_mean_logistic``: the same two on the mean of the 49 raw 4x4
  patches (16 values): what a readout that pools tokens without their positions can keep of
  the pixels.

Queries are the test images (``--query-split test``, the default) or the validation split.

    python tools/benchmarks/fashion_mnist_references.py --out work_dirs/fm_references.json \\
        [--results-json docs/results.json]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
PATCH = 4  # the benchmark ViT's patch size (configs/_base_/models/vit-t-p4.py)


def split_images(data_root, split, images, val_images=10000):
    """(uint8 (N, 28, 28), int64 (N,)): the first ``images`` of a SplitFashionMNIST split."""
    from conmim_mm.datasets.split_fashion_mnist import SplitFashionMNIST
    dataset = SplitFashionMNIST(data_root=data_root, split=split, val_images=val_images,
                                indices=images, test_mode=split == 'test', pipeline=[])
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return (torch.stack([torch.as_tensor(info['img']) for info in infos]),
            torch.tensor([int(info['gt_label']) for info in infos]))


def pixels(images):
    return images.flatten(1).float()


def patch_mean(images, patch=PATCH):
    """The mean over an image's patches of each patch's raw pixels: (N, patch * patch)."""
    n, h, w = images.shape
    patches = images.float().unfold(1, patch, patch).unfold(2, patch, patch)
    return patches.reshape(n, (h // patch) * (w // patch), patch * patch).mean(1)


def knn(bank, bank_y, query, query_y):
    from conmim_mm.evaluation import knn_top1
    return knn_top1(bank, bank_y, query, query_y, k=20, vote_temperature=0.07, num_classes=10)


def logistic(bank, bank_y, val, val_y, query, query_y, decays=WEIGHT_DECAYS):
    """Test top-1 of the linear probe whose weight decay scores best on the validation split,
    with every validation score."""
    from conmim_mm.evaluation import linear_probe
    on_val = {str(d): linear_probe(bank, bank_y, val, val_y, weight_decay=d) for d in decays}
    chosen = max(decays, key=lambda d: on_val[str(d)])
    return dict(top1=linear_probe(bank, bank_y, query, query_y, weight_decay=chosen),
                weight_decay=chosen, val_top1=on_val)


def references(data_root, bank_images=10000, val_eval_images=5000, query_images=10000,
               val_images=10000, query_split='test', decays=WEIGHT_DECAYS):
    """Every reference of the module docstring, as plain data."""
    start = time.time()
    bank, bank_y = split_images(data_root, 'train', bank_images, val_images)
    val, val_y = split_images(data_root, 'val', val_eval_images, val_images)
    query, query_y = split_images(data_root, query_split, query_images, val_images)
    result = dict(protocol=dict(bank='first %d training images' % len(bank),
                                choices='first %d validation images' % len(val),
                                queries='first %d %s images' % (len(query), query_split),
                                knn='k=20, cosine, exp(cos/0.07) votes',
                                logistic='standardised features, L-BFGS, weight decay chosen '
                                         'on the validation split'))
    for name, features in (('pixels', pixels), ('patch_mean', patch_mean)):
        b, v, q = features(bank), features(val), features(query)
        result[f'{name}_knn'] = knn(b, bank_y, q, query_y)
        result[f'{name}_logistic'] = logistic(b, bank_y, v, val_y, q, query_y, decays)
    result['seconds'] = round(time.time() - start, 1)
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data/fashion_mnist'))
    parser.add_argument('--bank-images', type=int, default=10000)
    parser.add_argument('--val-eval-images', type=int, default=5000)
    parser.add_argument('--query-images', type=int, default=10000)
    parser.add_argument('--val-images', type=int, default=10000)
    parser.add_argument('--query-split', default='test', choices=['test', 'val'])
    parser.add_argument('--out', required=True, help='where the references json goes')
    parser.add_argument('--results-json', default=None,
                        help="also store them as this results json's `references`")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = references(args.data_root, args.bank_images, args.val_eval_images,
                        args.query_images, args.val_images, args.query_split)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    if args.results_json:
        with open(args.results_json) as f:
            stored = json.load(f)
        stored['references'] = dict(stored.get('references', {}), **result)
        with open(args.results_json + '.tmp', 'w') as f:
            json.dump(stored, f, indent=2)
        os.replace(args.results_json + '.tmp', args.results_json)
    print(json.dumps({k: v for k, v in result.items() if k != 'protocol'}, indent=1))
    return result


if __name__ == '__main__':
    main()
