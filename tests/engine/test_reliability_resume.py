"""Issue 17: resume after a change of batch size, process count or dataset (§1), auto-resume
from a broken ``last_checkpoint`` and one run per work dir (§4), preemption (§5).

Runs go through ``Runner.from_cfg`` in this process (what ``tools/train.py`` calls), on the
Fashion-MNIST config with a 2-layer ViT and 32 to 64 images: a second or two each.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
import torch

from conmim_mm.engine.hooks.auto_resume import NoCheckpointToResumeError, checkpoint_to_resume
from conmim_mm.engine.hooks.mid_epoch_resume import plan_resume
from conmim_mm.engine.hooks.preemption import EXIT_PREEMPTED
from conmim_mm.engine.hooks.work_dir_lock import LOCK_NAME, WorkDirLock, WorkDirLockedError
from tests.helpers.paths import ROOT
from tests.helpers.runs import CONFIG, copy_run, log_of, tensors, tiny_cfg, train_in_process

slow = pytest.mark.slow  # tiny training runs in this process


# --------------------------------------------------------------------------- §1
@slow
def test_resume_of_an_epoch_checkpoint_at_a_larger_batch_trains_the_next_epoch(
        tiny_reference_run, tmp_path):
    """Epoch 1 at batch 16 (4 iterations), resumed at batch 32: epoch 2 trains its 2 batches
    (it used to be taken for a mid-epoch checkpoint and skipped whole)."""
    work_dir = copy_run(tiny_reference_run, tmp_path / 'work', 'epoch_1.pth')
    runner = train_in_process(tiny_cfg(work_dir, batch=32, resume=True))
    assert runner.iter == 4 + 2
    assert 'skipping' not in log_of(runner)
    before, after = tensors(work_dir / 'epoch_1.pth'), tensors(work_dir / 'epoch_2.pth')
    assert not all(torch.equal(before[k], after[k]) for k in before)
    progress = torch.load(str(work_dir / 'epoch_2.pth'))['epoch_progress']
    assert progress == dict(epoch=2, batches=0, batch_size=32, world_size=1, samples=0,
                            dataset_size=64, batches_per_epoch=2)


@slow
def test_mid_epoch_checkpoint_resumed_at_another_batch_goes_on_at_the_same_sample(
        tiny_preempted_run, tmp_path):
    """Saved after 2 batches of 16 in epoch 2 (iteration 6); at batch 32 the run skips the one
    batch holding those 32 samples and trains the other one."""
    work_dir = copy_run(tiny_preempted_run[0], tmp_path / 'work', 'iter_6.pth')
    runner = train_in_process(tiny_cfg(work_dir, batch=32, resume=True))
    assert runner.iter == 6 + 1
    assert 'resumes at the same sample position: skipping 1 batches' in log_of(runner)


def fake_loop(epoch, iteration, batch=16, dataset=64, world=1):
    from mmengine.dataset import DefaultSampler
    sampler = DefaultSampler.__new__(DefaultSampler)
    loader = type('Loader', (), dict(batch_size=batch, dataset=range(dataset), sampler=sampler,
                                     __len__=lambda self: -(-dataset // (batch * world))))()
    return SimpleNamespace(dataloader=loader, epoch=epoch, iter=iteration)


@pytest.mark.parametrize('now,expected', [
    (dict(), (3, True)),  # unchanged: exact, with the generator states
    (dict(batch=8), (6, False)),  # same samples, smaller batches
    (dict(batch=32), (1, False)),  # 48 samples: one batch of 32, 16 samples trained again
    (dict(dataset=80), (None, False)),  # another sample order: next epoch boundary
])
def test_resume_plan(now, expected):
    saved = dict(epoch=1, batches=3, batch_size=16, world_size=1, samples=48, dataset_size=64,
                 batches_per_epoch=4)
    skip, exact, text = plan_resume(fake_loop(1, 7, **now), saved, rng_states=[{}])
    assert (skip, exact) == expected
    assert text
    assert plan_resume(fake_loop(2, 8, batch=32), dict(saved, epoch=2, batches=0, samples=0),
                       None)[0] == 0


# --------------------------------------------------------------------------- §4 auto-resume
@slow
def test_auto_resume_falls_back_to_the_newest_whole_checkpoint(tiny_reference_run, tmp_path):
    """last_checkpoint names a truncated epoch_2.pth: the run resumes from epoch_1.pth."""
    work_dir = copy_run(tiny_reference_run, tmp_path / 'work', 'epoch_2.pth')
    shutil.copy(tiny_reference_run / 'epoch_1.pth', work_dir / 'epoch_1.pth')
    last = work_dir / 'epoch_2.pth'
    last.write_bytes(last.read_bytes()[:len(last.read_bytes()) // 2])
    runner = train_in_process(tiny_cfg(work_dir, resume=True))
    assert runner.iter == 4 + 4  # epoch 2 trained again after epoch 1
    log = log_of(runner)
    assert f'the checkpoint it names, {last}, cannot be loaded: it is truncated' in log
    assert f'resuming from {work_dir / "epoch_1.pth"}, the newest whole checkpoint' in log


@pytest.mark.parametrize('broken', ['empty record', 'empty file', 'missing file'])
def test_auto_resume_choice_for_each_broken_record(tmp_path, broken):
    older, newer = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_2.pth'
    torch.save({'state_dict': {}}, str(older))
    record = tmp_path / 'last_checkpoint'
    record.write_text('' if broken == 'empty record' else str(newer))
    if broken == 'empty file':
        newer.write_bytes(b'')
    logger = SimpleNamespace(warning=lambda text: warnings.append(text))
    warnings = []
    assert checkpoint_to_resume(str(tmp_path), logger) == str(older)
    assert str(older) in warnings[0] and str(record) in warnings[0]
    older.unlink()
    with pytest.raises(NoCheckpointToResumeError, match='delete .*last_checkpoint'):
        checkpoint_to_resume(str(tmp_path), logger)
    record.unlink()
    assert checkpoint_to_resume(str(tmp_path), logger) is None  # a new run


# --------------------------------------------------------------------------- §4 lock
def write_lock(work_dir, **owner):
    import json
    work_dir.mkdir(exist_ok=True)
    record = dict(host=socket.gethostname(), pid=os.getppid(), slurm_job=None,
                  slurm_restart='0', started=time.time())
    record.update(owner)
    (work_dir / LOCK_NAME).write_text(json.dumps(record))


@slow
def test_second_run_in_the_same_work_dir_is_refused(tmp_path):
    write_lock(tmp_path)  # held by a live process on this host: the test's parent
    with pytest.raises(WorkDirLockedError) as err:
        train_in_process(tiny_cfg(tmp_path, images=32))
    assert f'host {socket.gethostname()}, pid {os.getppid()}' in str(err.value)
    assert not list(tmp_path.glob('*.pth'))


def test_stale_locks_are_detected(tmp_path, monkeypatch):
    gone = subprocess.Popen(['true'])
    gone.wait()
    write_lock(tmp_path, pid=gone.pid)  # this host, a process that ended
    lock = WorkDirLock(str(tmp_path))
    lock.acquire()
    assert f'process {gone.pid} no longer runs' in lock.taken_over[1]
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    # another host: alive while refreshed, stale once it has not been for stale_after seconds
    write_lock(tmp_path, host='node-17', pid=1)
    with pytest.raises(WorkDirLockedError, match='host node-17, pid 1'):
        WorkDirLock(str(tmp_path)).acquire()
    old = time.time() - 3600
    os.utime(tmp_path / LOCK_NAME, (old, old))
    WorkDirLock(str(tmp_path)).acquire()
    # a requeued Slurm job: the same job id, another restart count
    write_lock(tmp_path, host='node-17', pid=1, slurm_job='4242', slurm_restart='0')
    monkeypatch.setenv('SLURM_JOB_ID', '4242')
    monkeypatch.setenv('SLURM_RESTART_COUNT', '1')
    lock = WorkDirLock(str(tmp_path))
    lock.acquire()
    assert 'requeued Slurm job 4242' in lock.taken_over[1]
    lock.release()


# --------------------------------------------------------------------------- §5 preemption
@slow
def test_preemption_signal_saves_an_exact_checkpoint_and_exits_75(tiny_preempted_run,
                                                                   tiny_reference_run, tmp_path):
    """SIGUSR1 during iteration 6 (batch 2 of epoch 2): the iteration finishes, iter_6.pth is
    written and named in last_checkpoint, the run exits with 75; resumed, it ends with the
    weights of the uninterrupted run."""
    source, status = tiny_preempted_run
    assert status == EXIT_PREEMPTED
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
    assert (source / 'last_checkpoint').read_text() == str(source / 'iter_6.pth')
    assert not (source / LOCK_NAME).exists()
    checkpoint = torch.load(str(source / 'iter_6.pth'))
    assert checkpoint['meta']['iter'] == 6 and checkpoint['epoch_progress']['batches'] == 2
    assert len(checkpoint['rng_states']) == 1
    log = open(next(source.glob('*/*.log'))).read()
    assert (f'Received SIGUSR1: saved {source / "iter_6.pth"} after iteration 6 (epoch 2, '
            'batch 2 of 4); stopping with exit status 75') in log
    work_dir = copy_run(source, tmp_path / 'work', 'iter_6.pth')
    runner = train_in_process(tiny_cfg(work_dir, resume=True))
    assert runner.iter == 8
    assert 'skipping the 2 batches trained before the checkpoint' in log_of(runner)
    assert not (work_dir / 'iter_6.pth').exists()  # removed once epoch_2.pth was written
    expected = tensors(tiny_reference_run / 'epoch_2.pth')
    got = tensors(work_dir / 'epoch_2.pth')
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_preemption_under_accumulation_saves_at_the_end_of_the_optimiser_step(tmp_path,
                                                                           fashion_mnist):
    """Batch 8 with a recipe of 16: 2 micro-batches per optimiser step. SIGUSR1 during
    iteration 5, the first micro-batch of step 3: the save waits for iteration 6, which ends
    the step, so no accumulated gradient is lost; resumed, the run ends with the weights of
    an uninterrupted one."""
    options = {'auto_scale_lr.base_batch_size': 16}
    reference = train_in_process(tiny_cfg(tmp_path / 'reference', batch=8, **options))
    assert reference.iter == 16 and int(tensors(tmp_path / 'reference' / 'epoch_2.pth')[
        'teacher.steps']) == 8
    work_dir = tmp_path / 'work'
    hooks = [dict(type='SignalDuringIterHook', iteration=5, signal='SIGUSR1')]
    with pytest.raises(SystemExit) as stop:
        train_in_process(tiny_cfg(work_dir, batch=8, hooks=hooks, **options))
    assert stop.value.code == EXIT_PREEMPTED
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_6.pth')
    runner = train_in_process(tiny_cfg(work_dir, batch=8, resume=True, **options))
    assert runner.iter == 16
    expected, got = tensors(tmp_path / 'reference' / 'epoch_2.pth'), \
        tensors(work_dir / 'epoch_2.pth')
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_slurm_launcher_requeues_a_preempted_job(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, body in (('srun', f'exit {EXIT_PREEMPTED}'),
                       ('scontrol', f'echo "$@" > {tmp_path}/scontrol_args')):
        (bin_dir / name).write_text(f'#!/usr/bin/env bash\n{body}\n')
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', SLURM_JOB_ID='4242')
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'job', CONFIG], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_PREEMPTED
    assert (tmp_path / 'scontrol_args').read_text().split() == ['requeue', '4242']
    assert 'requeue' in proc.stderr
