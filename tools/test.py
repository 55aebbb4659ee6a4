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
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from conmim_mm.datasets import DatasetNotFoundError, check_dataset_paths  # noqa: E402
from conmim_mm.engine import CheckpointLoadError  # noqa: E402
from conmim_mm.engine.runner_loading import (  # noqa: E402
    CheckpointMismatchError, guard_checkpoint_loading)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a conmim_mm downstream config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint of the whole model (tools/train.py output, '
                        'or tools/model_converters/beit_to_conmim.py output)')
    parser.add_argument('--work-dir', help='where logs and metrics go')
    parser.add_argument('--out', help='also dump the predictions to this pickle file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.batch_size=1')
    parser.add_argument('--non-strict', action='store_true',
                        help='load what fits and only log the keys that do not (default: stop)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if not cfg.get('test_dataloader') or not cfg.get('test_evaluator'):
        raise SystemExit(f'error: {args.config} has no test_dataloader/test_evaluator to test with '
                         '(pretraining configs are evaluated through the downstream configs).')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
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
    cfg = build_cfg(args)
    try:
        check_dataset_paths(cfg.test_dataloader['dataset'])
    except DatasetNotFoundError as err:
        sys.exit(f'error: {err}')
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    guard_checkpoint_loading(runner, strict=not args.non_strict)
    try:
        return runner.test()
    except (CheckpointMismatchError, CheckpointLoadError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
