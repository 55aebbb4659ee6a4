"""Issue 8 §2: a diverged run stops with a clear message; no checkpoint holds NaN weights."""
import glob
import os
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from torch.utils._pytree import tree_flatten

from conmim_mm.engine.hooks import divergence_guard_hook
from conmim_mm.engine.hooks import (DivergenceGuardHook, NonFiniteCheckpointError,
                                    TrainingDivergedError, non_finite_tensors)
from tests.helpers.paths import ROOT
from tests.helpers.runs import CONFIG, SMALL, config_with_hooks, step_losses
from tests.helpers.tools import tool_fails, tool_main

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


HOST_READS = {'item', '__float__', '__int__', '__bool__', '__index__', 'tolist', 'numpy', 'cpu'}


class StepTensor(torch.Tensor):
    """A loss that remembers the training step that computed it, as does every tensor derived
    from it; reading one on the host is recorded as (its step, the step being trained)."""
    host_reads = []
    current_step = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        steps = [t.step for t in tree_flatten((args, kwargs))[0] if isinstance(t, StepTensor)]
        name = getattr(func, '__name__', '')
        if name in HOST_READS or (name == 'to' and 'cpu' in f'{args[1:]}{kwargs}'):
            cls.host_reads.append((max(steps), cls.current_step))
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
            if isinstance(out, torch.Tensor) and steps:
                out = out.as_subclass(cls)
                out.step = max(steps)
        return out


def step_loss(step, value):
    loss = torch.tensor(value).as_subclass(StepTensor)
    loss.step = step
    return loss


class FakeCudaEvent:
    """Stands for the CUDA event of the host copy that the hook starts on a GPU."""
    waits = []

    def __init__(self, step):
        self.step = step

    def synchronize(self):
        FakeCudaEvent.waits.append((self.step, StepTensor.current_step))


@pytest.fixture
def gpu_like(monkeypatch):
    """The hook's host copies behave as on CUDA (done only after their event); host reads,
    event waits and device synchronisations are recorded."""
    StepTensor.host_reads, FakeCudaEvent.waits = [], []
    device_syncs = []
    monkeypatch.setattr(divergence_guard_hook, 'start_host_copy',
                        lambda values: (values, FakeCudaEvent(values.step)), raising=False)
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda *a, **k: device_syncs.append(a))
    return device_syncs


@pytest.mark.parametrize('world_size', [1, 2])
def test_guard_never_waits_for_the_step_it_checks(gpu_like, monkeypatch, world_size):
    """Issue 9 §3: no host-device synchronisation in the step. At iteration k the guard reads
    (on the host) only values of iteration k-1, whose copy finished while step k was queued;
    the old guard read float(loss) of iteration k (and flag.item() after the all_reduce)."""
    reduced = []
    monkeypatch.setattr(divergence_guard_hook, 'get_world_size', lambda: world_size)
    monkeypatch.setattr(divergence_guard_hook, 'all_reduce',
                        lambda data, op: reduced.append((getattr(data, 'step', None), op)))
    hook = DivergenceGuardHook(patience=3)
    runner = fake_runner()
    for i, value in enumerate([1.0, float('nan'), 2.0, float('inf'), 3.0, 4.0]):
        runner.iter, StepTensor.current_step = i, i + 1
        hook.after_train_iter(runner, i, outputs=dict(loss=step_loss(i + 1, value)))
    assert StepTensor.host_reads, 'the flags are read on the host'
    assert all(step < current for step, current in StepTensor.host_reads), \
        f'(step read, step being trained): {StepTensor.host_reads}'
    assert FakeCudaEvent.waits, 'a flag is read only once its copy is done'
    assert all(step < current for step, current in FakeCudaEvent.waits), FakeCudaEvent.waits
    assert gpu_like == []
    assert reduced == ([(i, 'max') for i in range(1, 7)] if world_size > 1 else [])
    assert [call.args[0].split(':')[0] for call in runner.logger.warning.call_args_list] == \
        ['Iteration 2', 'Iteration 4']


@pytest.mark.parametrize('flush_at', ['next_iteration', 'before_save_checkpoint',
                                      'after_train_epoch', 'after_train'])
def test_lagged_check_names_the_diverged_iteration_and_stops_before_any_save(gpu_like,
                                                                             flush_at):
    """One step late on a GPU, the stop still names the iteration of the non-finite loss; the
    last iterations' flags are read before a checkpoint is written and when training ends."""
    hook = DivergenceGuardHook(patience=3)
    runner = fake_runner()
    for i, value in enumerate([1.0, float('nan'), float('nan'), float('nan')]):
        runner.iter = i
        hook.after_train_iter(runner, i, outputs=dict(loss=step_loss(i + 1, value)))
    runner.iter = 4
    flush = {
        'next_iteration': lambda: hook.after_train_iter(
            runner, 4, outputs=dict(loss=step_loss(5, 1.0))),
        'before_save_checkpoint': lambda: hook.before_save_checkpoint(
            runner, dict(meta=dict(iter=4), state_dict={'w': torch.ones(1)})),
        'after_train_epoch': lambda: hook.after_train_epoch(runner),
        'after_train': lambda: hook.after_train(runner)}[flush_at]
    with pytest.raises(TrainingDivergedError) as err:
        flush()
    assert 'the loss is nan at iteration 4 ' in str(err.value)
    assert 'since iteration 2 (3 iterations in a row' in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_guard_on_cuda_makes_no_synchronising_call_in_the_step():
    """On a GPU: torch's sync debug mode raises on any synchronising CUDA call (the old
    guard's float(loss) did); the run still stops, naming the first iteration of the streak."""
    hook = DivergenceGuardHook(patience=2)
    runner = fake_runner()
    losses = [torch.tensor(v, device='cuda') for v in (1.0, float('nan'), float('nan'), 2.0)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for i in range(3):
            runner.iter = i
            hook.after_train_iter(runner, i, outputs=dict(loss=losses[i]))
    finally:
        torch.cuda.set_sync_debug_mode('default')
    runner.iter = 3
    with pytest.raises(TrainingDivergedError, match='at iteration 3 .* since iteration 2 '):
        hook.after_train_iter(runner, 3, outputs=dict(loss=losses[3]))


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


@pytest.mark.slow
def test_lr_1e3_demo_stops_non_zero_and_writes_no_non_finite_checkpoint(tmp_path, fashion_mnist):
    log = tool_fails('tools/train.py', CONFIG, '--work-dir', tmp_path, '--cfg-options', *SMALL,
                     'optim_wrapper.optimizer.lr=1000.0')  # in this process
    assert 'Training diverged: the loss is nan at iteration' in log, log[-3000:]
    assert 'lower the learning rate' in log
    for path in glob.glob(str(tmp_path / '*.pth')):
        assert all_finite(path), path


@pytest.mark.slow
def test_non_finite_teacher_is_never_saved_and_the_good_checkpoint_is_kept(tmp_path,
                                                                           fashion_mnist):
    """A NaN in the EMA teacher at the end of epoch 2 (the losses are all finite): the save-time
    check refuses epoch 2's checkpoint, and epoch 1's (max_keep_ckpts=1) is not rotated away."""
    config = config_with_hooks(tmp_path, 'poisoned', "dict(type='PoisonTeacherHook', epoch=2)")
    work_dir = tmp_path / 'work'
    log = tool_fails('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *SMALL,
                     'default_hooks.checkpoint.max_keep_ckpts=1')  # in this process
    assert 'NonFiniteCheckpointError: Refusing to save a checkpoint at iteration 12' in log, \
        log[-3000:]
    assert 'teacher.module.backbone' in log
    files = sorted(f for f in os.listdir(work_dir)
                   if f.endswith(('.pth', '.part', 'last_checkpoint')))
    assert files == ['epoch_1.pth', 'last_checkpoint']
    assert (work_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')
    assert all_finite(work_dir / 'epoch_1.pth')


@pytest.mark.slow
def test_gradscaler_skipped_steps_do_not_stop_the_run(tmp_path, fashion_mnist):
    """Under fp16 dynamic loss scaling an overflow is in the scaled gradients, not in the loss:
    GradScaler skips the step and halves the scale. Simulated on the CPU with mmengine's
    AmpOptimWrapper logic and torch's CPU GradScaler starting at 2**127 (overflows at once)."""
    config = config_with_hooks(tmp_path, 'scaled', '')
    work_dir = tmp_path / 'work'
    tool_main('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *SMALL,
              'optim_wrapper.type=CPUGradScalerOptimWrapper', 'train_cfg.max_epochs=2',
              'param_scheduler.1.end=2')  # in this process
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


def test_one_hook_registry():
    """The package's hooks live in mmpretrain's HOOKS (as other OpenMMLab plugins' do), not in
    mmengine's root registry; conmim_mm.seg / conmim_mm.det add them to mmseg's and mmdet's."""
    from mmengine.registry import HOOKS as ROOT_HOOKS
    from mmpretrain.registry import HOOKS

    from conmim_mm.engine.hooks import RUNTIME_HOOKS
    for hook in RUNTIME_HOOKS:
        assert HOOKS.module_dict[hook.__name__] is hook
        assert hook.__name__ not in ROOT_HOOKS.module_dict
