"""Tiny ConMIM pretraining runs of the Fashion-MNIST demo config, through ``tools/train.py`` as a
process (``train_with_tool``) or through ``Runner.from_cfg`` in this process
(``train_in_process``), and what the tests read back from their work dirs."""
import argparse
import glob
import itertools
import json
import os
import shutil
import subprocess
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from . import crash_hook  # noqa: F401  (registers the crash hooks)
from .paths import ROOT

CONFIG = 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py'
# A smaller run of the same recipe: 96 images, 3 epochs of 6 iterations, a 4-layer ViT.
SMALL = [
    'train_dataloader.dataset.indices=96', 'train_dataloader.batch_size=16',
    'auto_scale_lr.base_batch_size=16',  # the small run's recipe: its batch, no accumulation
    'train_dataloader.num_workers=0', 'train_cfg.max_epochs=3',
    'param_scheduler.1.end=3', 'model.backbone.arch.num_layers=4',
    'default_hooks.logger.interval=1', 'log_processor.window_size=1',
]
RUNS = itertools.count()


def train_with_tool(work_dir, *extra, nproc=1, env_extra=None, config=CONFIG, args=(),
                    small=True):
    """``python tools/train.py config`` (or ``tools/dist_train.sh`` on ``nproc`` processes) with
    ``SMALL`` and ``extra`` as --cfg-options; the finished process."""
    options = (SMALL if small else []) + list(extra)
    if nproc == 1:
        cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir)]
    else:
        cmd = ['bash', 'tools/dist_train.sh', str(config), str(nproc), '--work-dir', str(work_dir)]
    cmd += [*args, '--cfg-options', *options]
    # one thread, as train_in_process: runs of both kinds compute the same sums (losses that
    # tests compare to 1e-5), and tiny steps are faster on one thread
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               **(env_extra or {}))
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


def step_losses(work_dir):
    """{iteration: loss} from every run logged in ``work_dir``."""
    logs = sorted(glob.glob(os.path.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    losses = {}
    for log in logs:
        for line in open(log):
            record = json.loads(line)
            if 'loss' in record:
                losses[record['step']] = record['loss']
    return losses


def config_with_hooks(tmp_path, name, hooks):
    """The demo config with EpochSeedHook and ``hooks`` (text) as its custom hooks, the crash
    hooks of tests/helpers/crash_hook.py importable."""
    config = tmp_path / f'{name}.py'
    config.write_text(
        f"_base_ = ['{os.path.join(ROOT, CONFIG)}']\n"
        "custom_imports = dict(imports=['conmim_mm', 'tests.helpers.crash_hook'],\n"
        "                      allow_failed_imports=False)\n"
        f"custom_hooks = [dict(type='EpochSeedHook'), {hooks}]\n")
    return config


def small_cfg(work_dir, *extra, hooks=()):
    """The config of ``train_with_tool(work_dir, *extra)``, for ``train_in_process``."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg = Config.fromfile(os.path.join(ROOT, CONFIG))
    cfg.merge_from_dict(parser.parse_args(['--options', *SMALL, *extra]).options)
    cfg.custom_hooks = [*cfg.custom_hooks, *hooks]
    cfg.work_dir, cfg.experiment_name = str(work_dir), f'in_process_{os.path.basename(work_dir)}'
    return cfg


def tiny_cfg(work_dir, epochs=2, batch=16, images=64, hooks=(), **options):
    """The demo config with a 2-layer ViT on ``images`` images: a second or two per epoch."""
    cfg = Config.fromfile(os.path.join(ROOT, CONFIG))
    cfg.merge_from_dict({
        'model.backbone.arch.num_layers': 2, 'train_dataloader.dataset.indices': images,
        'train_dataloader.batch_size': batch, 'train_dataloader.num_workers': 0,
        'auto_scale_lr.base_batch_size': batch,
        'train_cfg.max_epochs': epochs, 'param_scheduler.1.end': epochs,
        'default_hooks.logger.interval': 1, 'log_processor.window_size': 1, **options})
    cfg.custom_hooks = [*cfg.custom_hooks, *hooks]
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'tiny_{os.getpid()}_{next(RUNS)}'  # fresh logger and message hub
    return cfg


def train_in_process(cfg, build=Runner.from_cfg):
    """Train ``cfg`` in this process, as ``tools/train.py`` does (``Runner.from_cfg``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: 4x faster than 2 threads on a busy 2-core machine
    runner = build(cfg)
    try:
        runner.train()
    finally:  # as when the process ends, however it ends: the lock and signal handlers go
        torch.set_num_threads(threads)
        for hook in runner.hooks:
            if hasattr(hook, 'release'):
                hook.release()
    return runner


def log_of(runner):
    with open(os.path.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def run_logs(work_dir):
    """The log files of every run in ``work_dir``, oldest first, as one text."""
    return ''.join(open(path, encoding='utf-8').read() for path in
                   sorted(glob.glob(os.path.join(str(work_dir), '*', '*.log'))))


def tensors(path):
    return torch.load(str(path), map_location='cpu')['state_dict']


def copy_run(source, target, checkpoint):
    """A work dir holding ``checkpoint`` of ``source``, named in its last_checkpoint."""
    target.mkdir()
    shutil.copy(source / checkpoint, target / checkpoint)
    (target / 'last_checkpoint').write_text(str(target / checkpoint))
    return target
