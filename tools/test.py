"""Evaluate a trained checkpoint with any conmim_mm downstream config: classification
(mmpretrain), segmentation (mmseg) or detection (mmdet). The library follows the config's
``default_scope``; the metrics are the config's ``test_evaluator``.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
        [--cfg-options k=v ...] [--launcher pytorch|slurm] [--non-strict]

Loading is strict: a checkpoint that does not fit the config's model (a backbone-only extract, a
raw pretraining checkpoint, another depth) stops with the keys that did not fit, instead of
evaluating random weights. Checkpoints are unpickled weights-only (see conmim_mm.engine).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from conmim_mm.engine.launcher import (add_common_arguments, build_runner,  # noqa: E402
                                       load_config, parse, run)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a conmim_mm downstream config')
    add_common_arguments(parser, work_dir_help='where logs and metrics go',
                         cfg_options_example='test_dataloader.batch_size=1')
    parser.add_argument('checkpoint', help='checkpoint of the whole model (tools/train.py output, '
                        'or tools/model_converters/beit_to_conmim.py output)')
    parser.add_argument('--out', help='also dump the predictions to this pickle file')
    return parse(parser, argv)


def build_cfg(args) -> Config:
    cfg = load_config(args)
    if not cfg.get('test_dataloader') or not cfg.get('test_evaluator'):
        raise SystemExit(f'error: {args.config} has no test_dataloader/test_evaluator to test with '
                         '(pretraining configs are evaluated through the downstream configs).')
    cfg.load_from = args.checkpoint
    # Weights come from the checkpoint: never fetch or re-check the pretraining file.
    backbone = cfg.model.get('backbone') or {}
    if isinstance(backbone.get('init_cfg'), dict) and backbone.init_cfg.get('type') == 'Pretrained':
        backbone.init_cfg = None
    if args.out:
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluators = cfg.test_evaluator
        cfg.test_evaluator = ([*evaluators, dump] if isinstance(evaluators, list)
                              else [evaluators, dump])
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        sys.exit(f'error: checkpoint {args.checkpoint} does not exist')
    runner = build_runner(build_cfg(args), args, splits=('test_dataloader', ))
    return run(runner.test)


if __name__ == '__main__':
    main()
