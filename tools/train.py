"""Train any conmim_mm config: pretraining (mmpretrain), classification, segmentation
(mmseg) or detection (mmdet). The library follows the config's ``default_scope``; what the run
does is the config's, as with mmpretrain's tools/train.py or ``Runner.from_cfg(cfg).train()``.

    python tools/train.py configs/pretrain/conmim_vit-b.py [--work-dir DIR] [--amp]
        [--resume [auto|PATH]] [--auto-scale-lr] [--cfg-options k=v ...]
        [--launcher pytorch|slurm]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from conmim_mm.engine.launcher import (add_common_arguments, build_runner,  # noqa: E402
                                       load_config, parse, run)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a conmim_mm config')
    add_common_arguments(parser, work_dir_help='where logs and checkpoints go',
                         cfg_options_example='model.backbone.init_cfg.checkpoint=X')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bf16 on GPUs that have it, else fp16 with loss '
                        'scaling; fp32 without a GPU (DeviceAmpOptimWrapper)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from PATH, or from the latest checkpoint in the work dir '
                        'if no PATH is given')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="train at this cluster's total batch with the learning rate scaled "
                        "linearly from the recipe's (auto_scale_lr.base_batch_size), instead of "
                        "the config's total_batch_policy (default: gradient accumulation)")
    return parse(parser, argv)


def merge_args(cfg, args):
    if args.amp:
        cfg.optim_wrapper.type = 'DeviceAmpOptimWrapper'
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            sys.exit(f'error: --auto-scale-lr: {args.config} states no recipe total batch '
                     '(auto_scale_lr.base_batch_size) to scale from.')
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(load_config(args), args)
    runner = build_runner(cfg, args, splits=('train_dataloader', 'val_dataloader'))
    run(runner.train)


if __name__ == '__main__':
    main()
