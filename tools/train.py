"""Train any conmim_mm config: pretraining (mmpretrain), classification, segmentation
(mmseg) or detection (mmdet). The library follows the config's ``default_scope``.

    python tools/train.py configs/pretrain/conmim_vit-b.py [--work-dir DIR] [--amp]
        [--resume [auto|PATH]] [--cfg-options k=v ...] [--launcher pytorch|slurm]
"""
import argparse
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from conmim_mm.datasets import DatasetNotFoundError, check_dataset_paths  # noqa: E402
from conmim_mm.engine import CheckpointLoadError  # noqa: E402
from conmim_mm.engine.runner_loading import (  # noqa: E402
    CheckpointMismatchError, guard_checkpoint_loading)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a conmim_mm config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--amp', action='store_true', help='mixed precision training')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from PATH, or from the latest checkpoint in the work dir '
                        'if no PATH is given')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.init_cfg.checkpoint=X')
    parser.add_argument('--non-strict', action='store_true',
                        help='load_from/--resume: load what fits and only log the keys that do '
                        'not (default: stop)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg, args):
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
    choose_amp_dtype(cfg.optim_wrapper)
    # Log values stay on the device until the logger reads them (no wait for the GPU per step).
    default_hooks = cfg.setdefault('default_hooks', {})
    if 'runtime_info' not in default_hooks:
        default_hooks['runtime_info'] = dict(type='DeviceLogRuntimeInfoHook')
    compile_model(cfg)

    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    if args.launcher != 'none' and not torch.cuda.is_available():
        use_cpu_processes(cfg)

    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if cfg.get('train_dataloader') and cfg.get('default_scope', 'mmpretrain') == 'mmpretrain':
        cfg.train_dataloader.setdefault('collate_fn', dict(type='default_collate'))
    return cfg


def choose_amp_dtype(wrapper):
    """Mixed precision by what the GPU can do, for ``--amp`` and configs' AmpOptimWrapper.

    bf16 without a loss scaler on GPUs with native bf16 (Ampere and newer): bf16 has fp32's
    exponent range, so gradients do not underflow and a scaler only costs a check of every
    gradient per step. Older GPUs get fp16 with dynamic loss scaling. A ``dtype`` set in the
    config is kept. Returns the dtype that will run (None: fp32).
    """
    if wrapper.get('type') != 'AmpOptimWrapper':
        return None
    if not torch.cuda.is_available():
        print('No GPU: AMP needs one, so this run trains in fp32 on the CPU.', file=sys.stderr)
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            wrapper.pop(key, None)
        return None
    if wrapper.get('dtype') is None:
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        wrapper.dtype = 'bfloat16' if native_bf16 else 'float16'
    if wrapper.dtype in ('bfloat16', torch.bfloat16):
        wrapper.loss_scale = dict(enabled=False)  # a disabled GradScaler: a no-op
        print('AMP: bf16 autocast without a loss scaler.', file=sys.stderr)
    else:
        wrapper.setdefault('loss_scale', 'dynamic')
        print(f'AMP: {wrapper.dtype} autocast with {wrapper.loss_scale} loss scaling '
              '(this GPU has no native bf16).', file=sys.stderr)
    return wrapper.dtype


def compile_model(cfg):
    """``compile=True`` or ``compile=dict(...)`` (mmengine's switch; ``compile=False`` turns a
    config's default off): compile the model's computation through ``CompileModelHook``
    instead of mmengine's compile of the whole ``train_step``, which crashes dynamo inside the
    optimiser update (see the hook)."""
    compile_cfg = cfg.pop('compile', None)
    if not compile_cfg:
        return
    compile_cfg = {} if compile_cfg is True else dict(compile_cfg)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='CompileModelHook', **compile_cfg)]


def use_cpu_processes(cfg):
    """Distributed training without GPUs: gloo, DDP on CPU modules, plain BatchNorm.

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


def main():
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    try:
        for split in ('train_dataloader', 'val_dataloader'):
            if cfg.get(split):
                check_dataset_paths(cfg[split]['dataset'])
    except DatasetNotFoundError as err:
        sys.exit(f'error: {err}')
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    guard_checkpoint_loading(runner, strict=not args.non_strict)
    try:
        runner.train()
    except (CheckpointMismatchError, CheckpointLoadError) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
