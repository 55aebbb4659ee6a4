"""End-to-end runs of the tiny Fashion-MNIST config through the real mmengine Runner."""
import argparse
import glob
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py'
# A smaller run of the same recipe: 96 images, 3 epochs of 6 iterations, a 4-layer ViT.
SMALL = [
    'train_dataloader.dataset.indices=96', 'train_dataloader.batch_size=16',
    'train_dataloader.num_workers=0', 'train_cfg.max_epochs=3',
    'param_scheduler.1.end=3', 'model.backbone.arch.num_layers=4',
    'default_hooks.logger.interval=1', 'log_processor.window_size=1',
]


def train(work_dir, *extra, nproc=1, env_extra=None, config=CONFIG, args=(), small=True):
    options = (SMALL if small else []) + list(extra)
    if nproc == 1:
        cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir)]
    else:
        cmd = ['bash', 'tools/dist_train.sh', str(config), str(nproc), '--work-dir', str(work_dir)]
    cmd += [*args, '--cfg-options', *options]
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable, OMP_NUM_THREADS='1'
               if nproc > 1 else os.environ.get('OMP_NUM_THREADS', '2'), **(env_extra or {}))
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


def step_losses(work_dir):
    logs = sorted(glob.glob(os.path.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    losses = {}
    for log in logs:
        for line in open(log):
            record = json.loads(line)
            if 'loss' in record:
                losses[record['step']] = record['loss']
    return losses


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, fashion_mnist):
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    proc = train(work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


def test_runner_trains_and_writes_a_checkpoint(uninterrupted):
    assert os.path.exists(os.path.join(str(uninterrupted), 'epoch_3.pth'))
    losses = step_losses(uninterrupted)
    assert sorted(losses) == list(range(1, 19))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    ckpt = torch.load(os.path.join(str(uninterrupted), 'epoch_3.pth'), map_location='cpu')
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('backbone.layers.0.') for k in keys)
    assert any(k.startswith('teacher.module.backbone.layers.0.') for k in keys)
    assert int(ckpt['state_dict']['teacher.steps']) == 18


def test_resume_continues_exactly(uninterrupted, tmp_path):
    crashing = tmp_path / 'crashing_config.py'
    crashing.write_text(
        f"_base_ = ['{os.path.join(ROOT, CONFIG)}']\n"
        "custom_imports = dict(imports=['conmim_mm', 'tests.helpers.crash_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='EpochSeedHook'), dict(type='CrashAfterEpochHook', epoch=1)]\n")
    work_dir = tmp_path / 'work'
    crashed = train(work_dir, config=crashing)
    assert crashed.returncode != 0 and 'simulated crash after epoch 1' in crashed.stderr
    assert os.path.exists(os.path.join(str(work_dir), 'epoch_1.pth'))
    assert not os.path.exists(os.path.join(str(work_dir), 'epoch_2.pth'))
    proc = train(work_dir, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    expected, got = step_losses(uninterrupted), step_losses(work_dir)
    after = [step for step in expected if step > 6]
    assert after and all(step in got for step in after)
    for step in after:
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step
    a = torch.load(os.path.join(str(uninterrupted), 'epoch_3.pth'), map_location='cpu')
    b = torch.load(os.path.join(str(work_dir), 'epoch_3.pth'), map_location='cpu')
    for key in ('teacher.module.backbone.cls_token', 'backbone.layers.3.ffn.layers.1.weight'):
        torch.testing.assert_close(a['state_dict'][key], b['state_dict'][key])


# The same recipe with the teacher view built by the data preprocessor (issue 15): the loader
# sends one crop and the drawn parameters (the Fashion-MNIST config itself keeps its views on
# the CPU).
DEVICE_VIEWS = """_base_ = ['{config}']
data_preprocessor = dict(type='ConMIMDataPreprocessor')
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='DrawTeacherPerturbations', saturation=0., hue=0.) if step['type'] == 'MultiView'
    else dict(step, algorithm_keys=['teacher_params']) if step['type'] == 'PackInputs' else step
    for step in _base_.train_pipeline]))
"""


def test_resume_with_views_built_on_the_device_continues_exactly(tmp_path, fashion_mnist):
    """Two epochs in one run; a second process resumes from the first run's epoch-1
    checkpoint (what a run killed after epoch 1 leaves) and must log the same losses in
    epoch 2: the workers' draws of the teacher perturbations follow EpochSeedHook's seeds."""
    config = tmp_path / 'device_views.py'
    config.write_text(DEVICE_VIEWS.format(config=os.path.join(ROOT, CONFIG)))
    two_epochs = ['train_cfg.max_epochs=2', 'param_scheduler.1.end=2']
    whole = train(tmp_path / 'whole', *two_epochs, config=config)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert 'ConMIMDataPreprocessor' in whole.stdout + whole.stderr
    resumed = train(tmp_path / 'resumed', *two_epochs, config=config,
                    args=['--resume', str(tmp_path / 'whole' / 'epoch_1.pth')])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = step_losses(tmp_path / 'whole'), step_losses(tmp_path / 'resumed')
    assert sorted(expected) == list(range(1, 13)) and sorted(got) == list(range(7, 13))
    for step in range(7, 13):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step


def train_in_process(work_dir, *extra, hooks=()):
    """The same run as ``train(work_dir, *extra)``, through ``Runner.from_cfg`` in this process
    (no interpreter start-up); returns the runner after training."""
    from mmengine.config import Config, DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg = Config.fromfile(os.path.join(ROOT, CONFIG))
    cfg.merge_from_dict(parser.parse_args(['--options', *SMALL, *extra]).options)
    cfg.custom_hooks = [*cfg.custom_hooks, *hooks]
    cfg.work_dir, cfg.experiment_name = str(work_dir), f'in_process_{os.path.basename(work_dir)}'
    from tests.test_reliability_resume import train as train_runner
    return train_runner(cfg)


def test_two_process_run_resumes_a_one_process_epoch_checkpoint(tmp_path, fashion_mnist):
    """A job restarted on more GPUs (issue 17 §1): epoch 1 on one process (4 iterations of 16),
    epoch 2 resumed with tools/dist_train.sh on two, where an epoch is 2 iterations; the
    checkpoint used to look 2 batches into epoch 2, which was then skipped whole."""
    from tests.helpers.crash_hook import SimulatedCrash
    options = ['train_cfg.max_epochs=2', 'param_scheduler.1.end=2',
               'train_dataloader.dataset.indices=64']
    with pytest.raises(SimulatedCrash):
        train_in_process(tmp_path, *options, hooks=[dict(type='CrashAfterEpochHook', epoch=1)])
    proc = train(tmp_path, *options, nproc=2, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and 'MMDistributedDataParallel' in log
    # 64 images over 2 processes at 16 per process: 2 iterations per epoch, not 4
    assert 'Epoch(train) [2][2/2]' in log and 'skipping' not in log
    a, b = (torch.load(os.path.join(str(tmp_path), f'epoch_{e}.pth'))['state_dict']
            for e in (1, 2))
    assert not torch.equal(a['backbone.layers.0.ffn.layers.1.weight'],
                           b['backbone.layers.0.ffn.layers.1.weight'])


def _config_with_hooks(tmp_path, name, hooks):
    config = tmp_path / f'{name}.py'
    config.write_text(
        f"_base_ = ['{os.path.join(ROOT, CONFIG)}']\n"
        "custom_imports = dict(imports=['conmim_mm', 'tests.helpers.crash_hook'],\n"
        "                      allow_failed_imports=False)\n"
        f"custom_hooks = [dict(type='EpochSeedHook'), {hooks}]\n")
    return config


def test_kill_during_checkpoint_save_leaves_a_run_that_resumes(uninterrupted, tmp_path):
    """SIGKILL half-way through writing epoch 2's checkpoint with max_keep_ckpts=1 (issue 8 §3):
    epoch 1's checkpoint and last_checkpoint survive, --resume finishes the run exactly."""
    config = _config_with_hooks(tmp_path, 'killed', "dict(type='KillDuringSaveHook', epoch=2)")
    work_dir = tmp_path / 'work'
    keep_one = 'default_hooks.checkpoint.max_keep_ckpts=1'
    killed = train(work_dir, keep_one, config=config)
    assert killed.returncode == -9, killed.stderr[-3000:]
    last = (work_dir / 'last_checkpoint').read_text()
    assert last.endswith('epoch_1.pth') and os.path.isfile(last)
    assert not os.path.exists(work_dir / 'epoch_2.pth')
    proc = train(work_dir, keep_one, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Removing' in proc.stdout + proc.stderr  # the interrupted save's partial file
    files = sorted(f for f in os.listdir(work_dir)
                   if f.endswith(('.pth', '.part', 'last_checkpoint')))
    assert files == ['epoch_3.pth', 'last_checkpoint']
    expected, got = step_losses(uninterrupted), step_losses(work_dir)
    for step in range(7, 19):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step


def test_resume_from_an_iteration_checkpoint_mid_epoch_is_exact(uninterrupted, tmp_path):
    """Iteration checkpoints under the epoch loop (issue 8 §3): a crash after iteration 8 (the
    2nd of 6 in epoch 2) resumes at iteration 9 with the batches and random draws of the
    uninterrupted run, not by replaying epoch 2 (which ran 20 iterations instead of 18)."""
    config = _config_with_hooks(tmp_path, 'crash8', "dict(type='CrashAfterIterHook', iteration=8)")
    work_dir = tmp_path / 'work'
    by_iter = ['default_hooks.checkpoint.by_epoch=False', 'default_hooks.checkpoint.interval=4']
    crashed = train(work_dir, *by_iter, config=config)
    assert crashed.returncode != 0 and 'simulated crash after iteration 8' in crashed.stderr
    assert (work_dir / 'last_checkpoint').read_text().endswith('iter_8.pth')
    proc = train(work_dir, *by_iter, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'skipping the 2 batches trained before the checkpoint' in log
    assert '-1 day' not in log
    logs = glob.glob(os.path.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    resumed_log = sorted(logs)[-1]
    resumed_steps = [json.loads(line)['step'] for line in open(resumed_log)
                     if 'loss' in json.loads(line)]
    assert resumed_steps == list(range(9, 19))
    expected, got = step_losses(uninterrupted), step_losses(work_dir)
    for step in range(9, 19):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step
    a = torch.load(os.path.join(str(uninterrupted), 'epoch_3.pth'), map_location='cpu')
    b = torch.load(os.path.join(str(work_dir), 'iter_18.pth'), map_location='cpu')
    assert int(b['state_dict']['teacher.steps']) == 18
    for key in ('teacher.module.backbone.cls_token', 'backbone.layers.3.ffn.layers.1.weight'):
        torch.testing.assert_close(a['state_dict'][key], b['state_dict'][key])
