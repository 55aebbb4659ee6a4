"""Issue 8 §2: a diverged run stops with a clear message; no checkpoint holds NaN weights."""
import glob
import os
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.config import Config

from conmim_mm.engine.hooks import (DivergenceGuardHook, NonFiniteCheckpointError,
                                    TrainingDivergedError, non_finite_tensors)
from tests.test_train_e2e import ROOT, _config_with_hooks, step_losses, train

CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', '*', '*.py')))
TRAINING_CONFIGS = [c for c in CONFIGS
                    if os.sep + '_base_' + os.sep not in c and 'fashion-mnist_base' not in c]


def all_finite(path):
    ckpt = torch.load(path, map_location='cpu')
    return not non_finite_tensors({k: ckpt[k] for k in ('state_dict', 'optimizer') if k in ckpt})


def fake_runner(iteration=0):
    logger = mock.MagicMock()
    return SimpleNamespace(iter=iteration, epoch=0, logger=logger,
                           optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [1e3]}))


def test_guard_tolerates_a_transient_non_finite_loss_and_stops_a_lasting_one():
    hook = DivergenceGuardHook(patience=3)
    runner = fake_runner()
    for i, loss in enumerate([1.0, float('nan'), float('inf'), 2.0, float('nan'), float('nan')]):
        runner.iter = i
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(loss)))
    runner.iter = 6
    with pytest.raises(TrainingDivergedError) as err:
        hook.after_train_iter(runner, 6, outputs=dict(loss=torch.tensor(float('nan'))))
    message = str(err.value)
    assert 'iteration 7' in message and 'nan' in message and 'since iteration 5' in message
    assert 'lower the learning rate' in message and 'clip' in message and 'bf16' in message


def test_guard_refuses_to_save_non_finite_weights_or_optimizer_state():
    hook = DivergenceGuardHook()
    good = dict(state_dict={'w': torch.ones(3), 'teacher.module.w': torch.ones(3),
                            'steps': torch.tensor(3)},
                optimizer={'state': {0: {'exp_avg': torch.zeros(3)}}, 'param_groups': []})
    hook.before_save_checkpoint(fake_runner(), good)
    for key in ('teacher.module.w', 'optimizer'):
        bad = {**good, 'state_dict': dict(good['state_dict'])}
        if key == 'optimizer':
            bad['optimizer'] = {'state': {0: {'exp_avg': torch.tensor([0., float('inf')])}}}
        else:
            bad['state_dict'][key] = torch.tensor([float('nan')])
        with pytest.raises(NonFiniteCheckpointError, match='Refusing to save'):
            hook.before_save_checkpoint(fake_runner(), bad)


@pytest.mark.parametrize('config', TRAINING_CONFIGS, ids=os.path.basename)
def test_every_training_config_guards_divergence_and_saves_atomically(config):
    hooks = Config.fromfile(config).default_hooks
    assert hooks.divergence.type == 'DivergenceGuardHook'
    assert hooks.checkpoint.type == 'AtomicCheckpointHook'


def test_lr_1e3_demo_stops_non_zero_and_writes_no_non_finite_checkpoint(tmp_path, fashion_mnist):
    proc = train(tmp_path, 'optim_wrapper.optimizer.lr=1000.0')
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'Training diverged: the loss is nan at iteration' in log, log[-3000:]
    assert 'lower the learning rate' in log
    for path in glob.glob(str(tmp_path / '*.pth')):
        assert all_finite(path), path


def test_non_finite_teacher_is_never_saved_and_the_good_checkpoint_is_kept(tmp_path,
                                                                           fashion_mnist):
    """A NaN in the EMA teacher at the end of epoch 2 (the losses are all finite): the save-time
    check refuses epoch 2's checkpoint, and epoch 1's (max_keep_ckpts=1) is not rotated away."""
    config = _config_with_hooks(tmp_path, 'poisoned', "dict(type='PoisonTeacherHook', epoch=2)")
    work_dir = tmp_path / 'work'
    proc = train(work_dir, 'default_hooks.checkpoint.max_keep_ckpts=1', config=config)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'NonFiniteCheckpointError: Refusing to save a checkpoint at iteration 12' in log, \
        log[-3000:]
    assert 'teacher.module.backbone' in log
    files = sorted(f for f in os.listdir(work_dir)
                   if f.endswith(('.pth', '.part', 'last_checkpoint')))
    assert files == ['epoch_1.pth', 'last_checkpoint']
    assert (work_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    assert all_finite(work_dir / 'epoch_1.pth')


def test_gradscaler_skipped_steps_do_not_stop_the_run(tmp_path, fashion_mnist):
    """Under fp16 dynamic loss scaling an overflow is in the scaled gradients, not in the loss:
    GradScaler skips the step and halves the scale. Simulated on the CPU with mmengine's
    AmpOptimWrapper logic and torch's CPU GradScaler starting at 2**127 (overflows at once)."""
    config = _config_with_hooks(tmp_path, 'scaled', '')
    work_dir = tmp_path / 'work'
    proc = train(work_dir, 'optim_wrapper.type=CPUGradScalerOptimWrapper',
                 'train_cfg.max_epochs=2', 'param_scheduler.1.end=2', config=config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(str(work_dir / 'epoch_2.pth'), map_location='cpu')
    assert ckpt['optimizer']['loss_scaler']['scale'] < 2.0 ** 127  # steps were skipped
    losses = step_losses(work_dir)
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert all_finite(str(work_dir / 'epoch_2.pth'))


@pytest.mark.parametrize('config,scope', [
    ('configs/seg/conmim_vit-b_upernet_ade20k.py', 'mmseg'),
    ('configs/det/conmim_vit-b_mask-rcnn_coco.py', 'mmdet')])
def test_seg_and_det_configs_build_the_hooks_in_their_scope(config, scope):
    import importlib

    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(os.path.join(ROOT, config))
    for module in cfg.custom_imports['imports']:
        importlib.import_module(module)
    registry = importlib.import_module(f'{scope}.registry').HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        checkpoint = registry.build(dict(cfg.default_hooks.checkpoint))
        guard = registry.build(dict(cfg.default_hooks.divergence))
    assert type(checkpoint).__name__ == 'AtomicCheckpointHook'
    assert checkpoint.max_keep_ckpts == 2
    assert isinstance(guard, DivergenceGuardHook)
