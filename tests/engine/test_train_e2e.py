"""End-to-end runs of the tiny Fashion-MNIST config through the real mmengine Runner."""
import glob
import json
import os

import pytest
import torch

from tests.helpers.crash_hook import SimulatedCrash
from tests.helpers.paths import ROOT
from tests.helpers.runs import (CONFIG, SMALL, config_with_hooks, run_logs, small_cfg,
                                step_losses, train_in_process, train_with_tool)
from tests.helpers.tools import tool_main

pytestmark = pytest.mark.slow  # tools/train.py runs, as processes where the point is the process


def test_runner_trains_and_writes_a_checkpoint(pretrain_reference_run):
    assert os.path.exists(os.path.join(str(pretrain_reference_run), 'epoch_3.pth'))
    losses = step_losses(pretrain_reference_run)
    assert sorted(losses) == list(range(1, 19))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    ckpt = torch.load(os.path.join(str(pretrain_reference_run), 'epoch_3.pth'),
                      map_location='cpu')
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('backbone.layers.0.') for k in keys)
    assert any(k.startswith('teacher.module.backbone.layers.0.') for k in keys)
    assert int(ckpt['state_dict']['teacher.steps']) == 18


def test_resume_continues_exactly(pretrain_reference_run, tmp_path):
    """A run that crashed after epoch 1 (here, in this process), resumed by
    ``tools/train.py --resume``, logs the losses of the uninterrupted run."""
    work_dir = tmp_path / 'work'
    with pytest.raises(SimulatedCrash, match='simulated crash after epoch 1'):
        train_in_process(small_cfg(work_dir, hooks=[dict(type='CrashAfterEpochHook', epoch=1)]))
    assert os.path.exists(os.path.join(str(work_dir), 'epoch_1.pth'))
    assert not os.path.exists(os.path.join(str(work_dir), 'epoch_2.pth'))
    proc = train_with_tool(work_dir, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    expected, got = step_losses(pretrain_reference_run), step_losses(work_dir)
    after = [step for step in expected if step > 6]
    assert after and all(step in got for step in after)
    for step in after:
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step
    a = torch.load(os.path.join(str(pretrain_reference_run), 'epoch_3.pth'),
                   map_location='cpu')
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
    options = ['--cfg-options', *SMALL, 'train_cfg.max_epochs=2', 'param_scheduler.1.end=2']
    # both runs through tools/train.py in this process (the same threads: the same sums)
    tool_main('tools/train.py', config, '--work-dir', tmp_path / 'whole', *options)
    assert 'ConMIMDataPreprocessor' in run_logs(tmp_path / 'whole')
    tool_main('tools/train.py', config, '--work-dir', tmp_path / 'resumed',
              '--resume', tmp_path / 'whole' / 'epoch_1.pth', *options)
    expected, got = step_losses(tmp_path / 'whole'), step_losses(tmp_path / 'resumed')
    assert sorted(expected) == list(range(1, 13)) and sorted(got) == list(range(7, 13))
    for step in range(7, 13):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step


def test_two_process_run_resumes_a_one_process_epoch_checkpoint(tmp_path, fashion_mnist):
    """A job restarted on more GPUs (issue 17 §1): epoch 1 on one process (4 iterations of 16),
    epoch 2 resumed with tools/dist_train.sh on two, where an epoch is 2 iterations; the
    checkpoint used to look 2 batches into epoch 2, which was then skipped whole."""
    options = ['train_cfg.max_epochs=2', 'param_scheduler.1.end=2',
               'train_dataloader.dataset.indices=64']
    with pytest.raises(SimulatedCrash):
        train_in_process(small_cfg(tmp_path, *options,
                                    hooks=[dict(type='CrashAfterEpochHook', epoch=1)]))
    # 2 x 16 is twice the small recipe's batch: --auto-scale-lr trains it at twice the lr
    proc = train_with_tool(tmp_path, *options, nproc=2, args=['--resume', '--auto-scale-lr'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and 'MMDistributedDataParallel' in log
    # 64 images over 2 processes at 16 per process: 2 iterations per epoch, not 4
    assert 'Epoch(train) [2][2/2]' in log and 'skipping' not in log
    a, b = (torch.load(os.path.join(str(tmp_path), f'epoch_{e}.pth'))['state_dict']
            for e in (1, 2))
    assert not torch.equal(a['backbone.layers.0.ffn.layers.1.weight'],
                           b['backbone.layers.0.ffn.layers.1.weight'])


def test_kill_during_checkpoint_save_leaves_a_run_that_resumes(pretrain_reference_run,
                                                              tmp_path):
    """SIGKILL half-way through writing epoch 2's checkpoint with max_keep_ckpts=1 (issue 8 §3):
    epoch 1's checkpoint and last_checkpoint survive, --resume finishes the run exactly."""
    config = config_with_hooks(tmp_path, 'killed', "dict(type='KillDuringSaveHook', epoch=2)")
    work_dir = tmp_path / 'work'
    keep_one = 'default_hooks.checkpoint.max_keep_ckpts=1'
    killed = train_with_tool(work_dir, keep_one, config=config)
    assert killed.returncode == -9, killed.stderr[-3000:]
    last = (work_dir / 'last_checkpoint').read_text()
    assert last.endswith('epoch_1.pth') and os.path.isfile(last)
    assert not os.path.exists(work_dir / 'epoch_2.pth')
    proc = train_with_tool(work_dir, keep_one, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Removing' in proc.stdout + proc.stderr  # the interrupted save's partial file
    files = sorted(f for f in os.listdir(work_dir)
                   if f.endswith(('.pth', '.part', 'last_checkpoint')))
    assert files == ['epoch_3.pth', 'last_checkpoint']
    expected, got = step_losses(pretrain_reference_run), step_losses(work_dir)
    for step in range(7, 19):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step


def test_resume_from_an_iteration_checkpoint_mid_epoch_is_exact(pretrain_reference_run,
                                                                 tmp_path):
    """Iteration checkpoints under the epoch loop (issue 8 §3): a crash after iteration 8 (the
    2nd of 6 in epoch 2) resumes at iteration 9 with the batches and random draws of the
    uninterrupted run, not by replaying epoch 2 (which ran 20 iterations instead of 18). The
    crashing run is in this process, the resumed one is ``tools/train.py --resume``."""
    work_dir = tmp_path / 'work'
    by_iter = ['default_hooks.checkpoint.by_epoch=False', 'default_hooks.checkpoint.interval=4']
    with pytest.raises(SimulatedCrash, match='simulated crash after iteration 8'):
        train_in_process(small_cfg(work_dir, *by_iter,
                                   hooks=[dict(type='CrashAfterIterHook', iteration=8)]))
    assert (work_dir / 'last_checkpoint').read_text().endswith('iter_8.pth')
    proc = train_with_tool(work_dir, *by_iter, args=['--resume'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'skipping the 2 batches trained before the checkpoint' in log
    assert '-1 day' not in log
    logs = glob.glob(os.path.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    resumed_log = sorted(logs)[-1]
    resumed_steps = [json.loads(line)['step'] for line in open(resumed_log)
                     if 'loss' in json.loads(line)]
    assert resumed_steps == list(range(9, 19))
    expected, got = step_losses(pretrain_reference_run), step_losses(work_dir)
    for step in range(9, 19):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step
    a = torch.load(os.path.join(str(pretrain_reference_run), 'epoch_3.pth'),
                   map_location='cpu')
    b = torch.load(os.path.join(str(work_dir), 'iter_18.pth'), map_location='cpu')
    assert int(b['state_dict']['teacher.steps']) == 18
    for key in ('teacher.module.backbone.cls_token', 'backbone.layers.3.ffn.layers.1.weight'):
        torch.testing.assert_close(a['state_dict'][key], b['state_dict'][key])
