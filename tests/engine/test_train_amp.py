"""Mixed precision by what the device has (DeviceAmpOptimWrapper, the configs' and --amp's
wrapper) and the device-side log values (issue 9 §2, §3)."""
import os
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper

from tests.helpers.paths import ROOT


def build(wrapper, gpu=True, bf16=True):
    """The wrapper mmengine builds from ``wrapper`` on a machine with(out) a (bf16) GPU, and
    what it logged."""
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance()  # made here: under the mock it would look for the GPU
    cfg = dict(wrapper, optimizer=dict(type='SGD', lr=0.1))
    with mock.patch.object(torch.cuda, 'is_available', return_value=gpu), \
            mock.patch.object(torch.cuda, 'is_bf16_supported', return_value=bf16) as query, \
            mock.patch('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                       return_value=gpu), \
            mock.patch('conmim_mm.engine.optimizers.device_amp.print_log') as log:
        built = build_optim_wrapper(torch.nn.Linear(2, 2), cfg)
    if gpu and wrapper.get('dtype') is None:
        query.assert_called_with(including_emulation=False)  # native bf16 only (Ampere+)
    return built, ' '.join(call.args[0] for call in log.call_args_list)


def test_ampere_or_newer_trains_in_bf16_without_a_loss_scaler():
    wrapper, log = build(dict(type='DeviceAmpOptimWrapper', loss_scale='dynamic'))
    assert type(wrapper) is AmpOptimWrapper and wrapper.cast_dtype == torch.bfloat16
    assert not wrapper.loss_scaler.is_enabled()  # a disabled GradScaler
    assert 'bf16 autocast without a loss scaler' in log


def test_pretraining_and_downstream_configs_name_the_device_wrapper():
    for config in ('configs/pretrain/conmim_vit-b.py', 'configs/cls/conmim_vit-b_ft_in1k.py',
                   'configs/cls/conmim_vit-b_linear_in1k.py'):
        wrapper = Config.fromfile(os.path.join(ROOT, config)).optim_wrapper
        assert wrapper.type == 'DeviceAmpOptimWrapper', config
    wrapper = dict(type='DeviceAmpOptimWrapper', loss_scale='dynamic')
    built, _ = build(wrapper, bf16=False)
    assert built.cast_dtype == torch.float16 and built.loss_scaler.is_enabled()


def test_older_gpus_keep_fp16_with_dynamic_loss_scaling():
    wrapper, log = build(dict(type='DeviceAmpOptimWrapper'), bf16=False)
    assert wrapper.cast_dtype == torch.float16 and wrapper.loss_scaler.is_enabled()
    assert 'float16 autocast with dynamic loss scaling' in log


def test_a_dtype_in_the_config_is_kept():
    wrapper, _ = build(dict(type='DeviceAmpOptimWrapper', dtype='float16'), bf16=True)
    assert wrapper.cast_dtype == torch.float16 and wrapper.loss_scaler.is_enabled()


def test_no_gpu_means_fp32_with_a_plain_wrapper():
    wrapper, log = build(dict(type='DeviceAmpOptimWrapper', loss_scale='dynamic'), gpu=False)
    assert type(wrapper) is OptimWrapper and 'trains in fp32' in log


def test_train_py_amp_selects_the_device_wrapper():
    import importlib.util
    spec = importlib.util.spec_from_file_location('train_tool',
                                                  os.path.join(ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(['some_config.py', '--amp'])
    cfg = tool.merge_args(Config(dict(optim_wrapper=dict(type='OptimWrapper'))), args)
    assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper'


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
