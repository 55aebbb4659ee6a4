"""A config runs the same through every OpenMMLab launcher (issue 18 §1): our tools/train.py,
mmpretrain's shipped tools/train.py and ``Runner.from_cfg(cfg).train()`` log the same losses,
and ``compile`` works through all of them. The runs are in this process (no interpreter
start-up): a few iterations of the Fashion-MNIST recipe."""
import argparse
import glob
import importlib.util
import os
import sys
from unittest import mock

import mmpretrain
import pytest
from mmengine.config import Config

from tests.helpers.paths import ROOT
from tests.helpers.runs import CONFIG, step_losses

# 32 images at batch 16, 2 epochs: 4 iterations of a 2-layer ViT, every loss logged
TINY = ['train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=16',
        'auto_scale_lr.base_batch_size=16',
        'train_dataloader.num_workers=0', 'train_cfg.max_epochs=2', 'param_scheduler.1.end=2',
        'model.backbone.arch.num_layers=2', 'default_hooks.logger.interval=1',
        'log_processor.window_size=1']
MMPRETRAIN_TRAIN = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'tools',
                                'train.py')


def load_script(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def options(work_dir, data_root, *extra):
    # a MessageHub and logger of its own per run (they are named by the experiment)
    return [*TINY, f'train_dataloader.dataset.data_root={data_root}',
            f'experiment_name={os.path.basename(work_dir)}', *extra]


def ours(work_dir, data_root, *extra):
    tool = load_script(os.path.join(ROOT, 'tools', 'train.py'), 'conmim_train')
    tool.main([CONFIG_PATH, '--work-dir', str(work_dir), '--cfg-options',
               *options(work_dir, data_root, *extra)])


def mmpretrains(work_dir, data_root, *extra):
    tool = load_script(MMPRETRAIN_TRAIN, 'mmpretrain_train')
    argv = ['train.py', CONFIG_PATH, '--work-dir', str(work_dir), '--cfg-options',
            *options(work_dir, data_root, *extra)]
    with mock.patch.object(sys, 'argv', argv):
        tool.main()


def from_cfg(work_dir, data_root, *extra):
    from mmengine.config import DictAction
    from mmengine.runner import Runner
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg = Config.fromfile(CONFIG_PATH)
    cfg.merge_from_dict(parser.parse_args(['--options', *options(work_dir, data_root,
                                                                 *extra)]).options)
    cfg.work_dir = str(work_dir)
    Runner.from_cfg(cfg).train()


CONFIG_PATH = os.path.join(ROOT, CONFIG)
LAUNCHERS = dict(ours=ours, mmpretrain=mmpretrains, from_cfg=from_cfg)


def test_the_same_seed_gives_the_same_losses_through_every_launcher(tmp_path, fashion_mnist):
    losses = {}
    for name, launch in LAUNCHERS.items():
        launch(tmp_path / name, fashion_mnist)
        losses[name] = step_losses(tmp_path / name)
    assert sorted(losses['ours']) == [1, 2, 3, 4]
    assert losses['mmpretrain'] == losses['ours'] == losses['from_cfg'], losses


@pytest.mark.parametrize('launcher', ['ours', 'mmpretrain'])
def test_compile_true_through_the_launchers(tmp_path, fashion_mnist, launcher, caplog):
    """mmengine's ``compile`` switch (a dict of torch.compile options; ``aot_eager`` runs
    dynamo and the autograd graph, not inductor's minutes of code generation on 2 cores).
    mmengine alone compiles the whole train_step and dynamo fails in the optimiser update; the
    config's CompileModelHook compiles the loss only."""
    work_dir = tmp_path / launcher
    LAUNCHERS[launcher](work_dir, fashion_mnist, 'compile._delete_=True',
                        'compile.backend=aot_eager')
    log = open(next((work_dir).glob('*/*.log'))).read()
    assert 'torch.compile(contrastive_loss) of ConMIM' in log
    losses = step_losses(work_dir)
    assert sorted(losses) == [1, 2, 3, 4]


MMPRETRAIN_SCOPE_CONFIGS = sorted(
    os.path.relpath(path, ROOT) for folder in ('pretrain', 'cls', 'benchmarks')
    for path in glob.glob(os.path.join(ROOT, 'configs', folder, '*.py')))


@pytest.mark.parametrize('config', MMPRETRAIN_SCOPE_CONFIGS)
def test_mmpretrains_launcher_adds_nothing_to_the_dataloaders(config):
    """mmpretrain's tools/train.py fills in ``pin_memory``, ``persistent_workers`` and
    ``collate_fn`` where a dataloader leaves them out: every such config states them, so that
    launcher, ours and ``Runner.from_cfg`` load the data the same way."""
    tool = load_script(MMPRETRAIN_TRAIN, 'mmpretrain_train')
    path = os.path.join(ROOT, config)
    with mock.patch.object(sys, 'argv', ['train.py', path]):
        args = tool.parse_args()
    stated = Config.fromfile(path)
    launched = tool.merge_args(Config.fromfile(path), args)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if stated.get(loader) is not None:
            assert launched[loader].to_dict() == stated[loader].to_dict(), loader
