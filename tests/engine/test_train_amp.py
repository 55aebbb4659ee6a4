"""tools/train.py's mixed-precision choice and its device-side log values (issue 9 §2, §3)."""
import copy
import os
import sys
from unittest import mock

import pytest
import torch
from mmengine.config import Config

from tests.helpers.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, 'tools'))
import train  # noqa: E402


def choose(wrapper, gpu=True, bf16=True):
    wrapper = Config(dict(w=copy.deepcopy(dict(wrapper)))).w
    asks = gpu and wrapper.get('type') == 'AmpOptimWrapper' and wrapper.get('dtype') is None
    with mock.patch.object(torch.cuda, 'is_available', return_value=gpu), \
            mock.patch.object(torch.cuda, 'is_bf16_supported', return_value=bf16) as query:
        dtype = train.choose_amp_dtype(wrapper)
    if asks:
        query.assert_called_with(including_emulation=False)  # native bf16 only (Ampere+)
    return dtype, wrapper


def test_ampere_or_newer_trains_in_bf16_without_a_loss_scaler(capsys):
    dtype, wrapper = choose(dict(type='AmpOptimWrapper'))
    assert dtype == 'bfloat16' and wrapper.dtype == 'bfloat16'
    assert wrapper.loss_scale == dict(enabled=False)
    assert 'bf16 autocast without a loss scaler' in capsys.readouterr().err


def test_pretraining_configs_own_amp_wrapper_follows_the_same_rule():
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/pretrain/conmim_vit-b.py'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    dtype, wrapper = choose(cfg.optim_wrapper)
    assert dtype == 'bfloat16' and wrapper.loss_scale == dict(enabled=False)
    dtype, wrapper = choose(cfg.optim_wrapper, bf16=False)
    assert dtype == 'float16' and wrapper.loss_scale == 'dynamic'


def test_older_gpus_keep_fp16_with_dynamic_loss_scaling(capsys):
    dtype, wrapper = choose(dict(type='AmpOptimWrapper'), bf16=False)
    assert dtype == 'float16' and wrapper.loss_scale == 'dynamic'
    assert 'float16 autocast with dynamic loss scaling' in capsys.readouterr().err


def test_a_dtype_in_the_config_is_kept():
    dtype, wrapper = choose(dict(type='AmpOptimWrapper', dtype='float16'), bf16=True)
    assert dtype == 'float16' and wrapper.loss_scale == 'dynamic'


def test_no_gpu_means_fp32_and_plain_wrappers_are_left_alone():
    dtype, wrapper = choose(dict(type='AmpOptimWrapper', loss_scale='dynamic'), gpu=False)
    assert dtype is None and wrapper.type == 'OptimWrapper' and 'loss_scale' not in wrapper
    dtype, wrapper = choose(dict(type='OptimWrapper'))
    assert dtype is None and wrapper == dict(type='OptimWrapper')


def test_bf16_wrapper_builds_without_a_grad_scaler():
    from mmengine.optim import AmpOptimWrapper
    model = torch.nn.Linear(2, 2)
    with mock.patch('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                    return_value=True):
        wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                  dtype='bfloat16', loss_scale=dict(enabled=False))
    assert not wrapper.loss_scaler.is_enabled()


def test_log_values_stay_on_the_device_until_the_logger_reads_them():
    """The hook copies them once, when the logger's interval is reached, in step order."""
    from mmengine.hooks import LoggerHook
    from mmengine.logging import MessageHub
    from conmim_mm.engine.hooks import DeviceLogRuntimeInfoHook
    hub = MessageHub('device_log_test')
    runner = mock.MagicMock(message_hub=hub, hooks=[LoggerHook(interval=3)], iter=0,
                            max_iters=100, train_dataloader=list(range(50)))
    hook = DeviceLogRuntimeInfoHook()
    with mock.patch.object(torch.Tensor, 'item', side_effect=AssertionError('synchronised')):
        for i in range(2):
            runner.iter = i
            hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(float(i))))
    assert 'train/loss' not in hub.log_scalars  # nothing read from the device yet
    runner.iter = 2
    hook.after_train_iter(runner, 2, outputs=dict(loss=torch.tensor(2.), acc=torch.tensor(.5)))
    assert hub.log_scalars['train/loss'].data[0].tolist() == [0., 1., 2.]
    assert hub.get_scalar('train/acc').current() == pytest.approx(.5)
