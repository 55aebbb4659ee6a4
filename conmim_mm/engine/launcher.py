"""What ``tools/train.py`` and ``tools/test.py`` share: the arguments both take, and the config
and Runner they build from them.

Only argument handling and the launch environment live here. What a run does is its config's
(the runtime bases in ``configs/_base_``, registered hooks and optimiser wrappers), so that a
config runs the same through ``tools/train.py``, the host library's ``tools/train.py`` and
``Runner.from_cfg``. What the tools add on top: a readable error for a missing dataset, strict
checkpoint loading (``runner_loading.py``, ``--non-strict`` to relax it), and distributed runs on
CPU-only machines (``--launcher`` without GPUs, which mmengine's launcher cannot start).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Callable, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..datasets import DatasetNotFoundError, check_dataset_paths
from .checkpoint_loaders import CheckpointLoadError
from .runner_loading import CheckpointMismatchError, guard_checkpoint_loading


def add_common_arguments(parser: argparse.ArgumentParser, work_dir_help: str,
                         cfg_options_example: str) -> argparse.ArgumentParser:
    """The config, where its outputs go, overrides, loading strictness and the launcher."""
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help=f'override config entries, e.g. {cfg_options_example}')
    parser.add_argument('--non-strict', action='store_true',
                        help='checkpoints (load_from, --resume, the tested one): load what fits '
                        'and only log the keys that do not (default: stop)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None):
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(args) -> Config:
    """The config file with the launcher, ``--cfg-options`` and the work dir (``--work-dir``,
    else the config's, else ``./work_dirs/<config name>``)."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def use_cpu_processes(cfg: Config) -> Config:
    """Distributed runs without GPUs: gloo, DDP on CPU modules, plain BatchNorm.

    mmengine's launcher always selects a CUDA device, so the gloo process group is started
    here; DDP takes no device ids for CPU modules; torch's SyncBatchNorm needs GPUs.
    """
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.update(device_ids=None, broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    if cfg.get('sync_bn'):
        print('CPU processes: SyncBN needs GPUs, the projector keeps per-process BatchNorm.',
              file=sys.stderr)
        cfg.sync_bn = None
    return cfg


def build_runner(cfg: Config, args, splits: Sequence[str]) -> Runner:
    """The Runner of ``cfg`` (its ``runner_type`` if it names one), after checking that the
    datasets of ``splits`` exist; its checkpoint loads are strict unless ``--non-strict``."""
    try:
        for split in splits:
            if cfg.get(split):
                check_dataset_paths(cfg[split]['dataset'])
    except DatasetNotFoundError as err:
        sys.exit(f'error: {err}')
    if args.launcher != 'none' and not torch.cuda.is_available():
        use_cpu_processes(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    return guard_checkpoint_loading(runner, strict=not args.non_strict)


def run(step: Callable):
    """``runner.train`` / ``runner.test``, with a checkpoint that does not fit or cannot be
    read ending the process with its message instead of a traceback."""
    try:
        return step()
    except (CheckpointMismatchError, CheckpointLoadError) as err:
        sys.exit(f'error: {err}')
