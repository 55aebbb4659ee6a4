"""Issue 8 §3: checkpoints survive full disks; iteration checkpoints under an epoch loop that
cannot skip batches are refused; the teacher schedule stops at its end."""
import os
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.logging import MessageHub

from conmim_mm.models.utils.fused_ema import FusedCosineEMA
from tests.helpers.runs import SMALL, config_with_hooks, run_logs
from tests.helpers.tools import tool_fails, tool_main


@pytest.mark.slow
def test_full_disk_during_save_leaves_no_partial_file_and_a_valid_last_checkpoint(
        tmp_path, fashion_mnist):
    config = config_with_hooks(tmp_path, 'full', "dict(type='FullDiskDuringSaveHook', epoch=2)")
    work_dir = tmp_path / 'work'
    # tools/train.py in this process: the traceback it ends with, and the run's log file
    log = tool_fails('tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *SMALL,
                     'default_hooks.checkpoint.max_keep_ckpts=1') + run_logs(work_dir)
    assert 'No space left on device' in log and 'Saving the checkpoint' in log, log[-3000:]
    assert 'Free disk space' in log
    files = sorted(f for f in os.listdir(work_dir)
                   if f.endswith(('.pth', '.part', 'last_checkpoint')))
    assert files == ['epoch_1.pth', 'last_checkpoint']
    last = (work_dir / 'last_checkpoint').read_text()
    assert last.endswith('epoch_1.pth')
    torch.load(last, map_location='cpu')  # whole


def test_iteration_checkpoints_under_a_custom_epoch_loop_are_refused_at_start():
    """An epoch loop with its own run_epoch cannot skip the trained batches: refused."""
    from mmengine.runner import EpochBasedTrainLoop

    from conmim_mm.engine.hooks import AtomicCheckpointHook

    class CustomLoop(EpochBasedTrainLoop):
        def __init__(self):  # no dataloader needed before training
            self._epoch, self._iter = 0, 0

        def run_epoch(self):
            pass

    runner = SimpleNamespace(train_loop=CustomLoop(), logger=mock.MagicMock())
    with pytest.raises(ValueError, match='cannot be resumed exactly'):
        AtomicCheckpointHook(interval=4, by_epoch=False).before_train(runner)


def test_teacher_schedule_is_clamped_at_its_end():
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 100)
    try:
        ema = FusedCosineEMA(torch.nn.Linear(2, 2), momentum=0.004, end_momentum=0.)
        assert ema.momentum_at(0) == pytest.approx(0.004)
        assert ema.momentum_at(50) == pytest.approx(0.002)
        for steps in (100, 101, 105, 150, 199, 200, 1000):
            assert ema.momentum_at(steps) == 0.  # teacher coefficient stays 1.0
    finally:
        hub.runtime_info.pop('max_iters', None)


@pytest.mark.slow
def test_save_best_out_dir_and_max_keep_ckpts_still_work(tmp_path, fashion_mnist):
    out_dir = tmp_path / 'out'
    tool_main(  # in this process
        'tools/train.py', 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py', '--work-dir',
        tmp_path / 'work', '--cfg-options', 'model.backbone.arch.num_layers=2',
        'model.backbone.init_cfg=None', 'train_dataloader.dataset.indices=32',
        'train_dataloader.batch_size=32', 'train_dataloader.num_workers=0',
        'auto_scale_lr.base_batch_size=32', 'val_dataloader.dataset.indices=32', 'val_dataloader.num_workers=0',
        'train_cfg.max_epochs=3', 'train_cfg.val_interval=1', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1', 'param_scheduler.1.end=3',
        'default_hooks.checkpoint.save_best=auto', f'default_hooks.checkpoint.out_dir={out_dir}')
    files = sorted(os.listdir(out_dir / 'work'))
    assert 'epoch_3.pth' in files and 'epoch_2.pth' not in files  # max_keep_ckpts=1
    assert sum(f.startswith('best_accuracy_top1_epoch_') for f in files) == 1
    assert not any(f.endswith('.part') for f in files)
    last = (tmp_path / 'work' / 'last_checkpoint').read_text()
    assert last == str(out_dir / 'work' / 'epoch_3.pth')
