"""kNN top-1 of saved pretraining checkpoints under a config's kNN monitor protocol.

The protocol is the config's ``knn_monitor`` (configs/_base_/datasets/fashion_mnist.py: bank =
training images, queries = the validation split, k = 20, exp(cos / 0.07) votes, mean pooling);
both encoders are scored, so that a curve at finer steps than the monitor's epochs can be drawn
from iteration checkpoints:

    python tools/train.py configs/pretrain/conmim_vit-t-p4_fashion-mnist_demo.py \\
        --work-dir work_dirs/demo_steps --cfg-options default_hooks.checkpoint.by_epoch=False \\
        default_hooks.checkpoint.interval=25 default_hooks.checkpoint.max_keep_ckpts=30
    python tools/analysis/knn_checkpoints.py configs/pretrain/conmim_vit-t-p4_fashion-mnist_demo.py \\
        work_dirs/demo_steps/iter_*.pth --bank-images 5000 --json work_dirs/demo_steps/knn.json
"""
import argparse
import json
import os.path as osp
import re
import sys

import torch
from mmengine.config import DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoints', nargs='+')
    parser.add_argument('--bank-images', type=int, default=None,
                        help="first N bank images (default: the config's knn_monitor)")
    parser.add_argument('--val-images', type=int, default=None,
                        help="first N validation images (default: the config's knn_monitor)")
    parser.add_argument('--encoders', nargs='+', default=['teacher', 'student'],
                        choices=['teacher', 'student'])
    parser.add_argument('--json', default=None, help='also write the rows here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='the overrides the checkpoints were trained with')
    return parser.parse_args(argv)


def step_of(path, checkpoint):
    """The iteration a checkpoint was saved at (its meta; the file name as a fallback)."""
    meta = checkpoint.get('meta', {})
    if 'iter' in meta:
        return int(meta['iter'])
    match = re.search(r'iter_(\d+)', osp.basename(path))
    return int(match.group(1)) if match else None


def main(argv=None):
    args = parse_args(argv)
    import conmim_mm  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint
    from mmpretrain.registry import MODELS

    from conmim_mm.evaluation import extract_features, knn_top1, make_encoder
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)  # as the Runner does
    monitor = cfg.knn_monitor
    loaders = []
    for key, images in (('bank_dataloader', args.bank_images),
                        ('val_dataloader', args.val_images)):
        loader = dict(monitor[key])
        if images is not None:
            loader['dataset'] = dict(loader['dataset'], indices=images)
        loaders.append(Runner.build_dataloader(loader))
    model = MODELS.build(cfg.model).eval()
    rows = []
    for path in args.checkpoints:
        checkpoint = load_checkpoint(model, path, map_location='cpu', strict=True,
                                     logger='silent')
        row = dict(checkpoint=path, iter=step_of(path, checkpoint))
        for encoder in args.encoders:
            encode = make_encoder(model, encoder, monitor.get('pooling', 'mean'))
            with torch.no_grad():
                bank, query = (extract_features(encode, loader, model.data_preprocessor)
                               for loader in loaders)
            row[f'{encoder}_top1'] = knn_top1(*bank, *query, k=monitor.get('k', 20),
                                              vote_temperature=monitor.get('vote_temperature',
                                                                           0.07))
        rows.append(row)
        print(json.dumps(row))
    rows.sort(key=lambda row: row['iter'] if row['iter'] is not None else -1)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
