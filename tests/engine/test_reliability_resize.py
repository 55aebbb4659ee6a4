"""Issue 8 §3: a whole-model checkpoint saved at another image grid loads through load_from,
--resume and tools/test.py (mmpretrain's BEiTViT hook needs SciPy's removed interp2d)."""
import copy
import os

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from conmim_mm.models.utils.relative_position import resize_bias_table
from tests.helpers.paths import ROOT
from tests.helpers.runs import run_logs
from tests.helpers.tools import tool_main

CLS_CONFIG = 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py'
TWO_LAYERS = ['model.backbone.arch.num_layers=2', 'model.backbone.init_cfg=None']


def classifier(img_size, per_layer_tables=None):
    """The Fashion-MNIST classifier of CLS_CONFIG (one shared table) or, with
    ``per_layer_tables=True``, with a table per block as the ImageNet fine-tuning configs."""
    cfg = copy.deepcopy(Config.fromfile(os.path.join(ROOT, CLS_CONFIG)).model)
    cfg.backbone.update(img_size=img_size, init_cfg=None)
    if per_layer_tables:
        cfg.backbone.update(use_rel_pos_bias=True, use_shared_rel_pos_bias=False)
    cfg.backbone.arch.num_layers = 2
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def randomise_tables(model):
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                param.normal_()


def table_key(state):
    return next(k for k in state if k.endswith('relative_position_bias_table'))


@pytest.fixture(scope='module')
def checkpoint_at_32px(tmp_path_factory):
    """A fine-tuned classifier saved at 32x32 (8x8 grid, 15x15 tables); the configs use 28."""
    model = classifier(32)
    randomise_tables(model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'classifier_32px.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.mark.parametrize('per_layer_tables', [False, True])
def test_state_dict_of_another_grid_loads_strictly_with_resized_tables(per_layer_tables):
    saved = classifier(32, per_layer_tables)
    randomise_tables(saved)
    state = saved.state_dict()
    model = classifier(28, per_layer_tables)
    model.load_state_dict(state, strict=True)
    key = table_key(state)
    expected = resize_bias_table(state[key], (8, 8), (7, 7))
    torch.testing.assert_close(model.state_dict()[key], expected)
    index_key = key.replace('relative_position_bias_table', 'relative_position_index')
    own_index = classifier(28, per_layer_tables).state_dict()[index_key]
    assert torch.equal(model.state_dict()[index_key], own_index)


@pytest.mark.slow
def test_tools_test_evaluates_a_checkpoint_of_another_grid(checkpoint_at_32px, tmp_path,
                                                           fashion_mnist, capsys):
    metrics = tool_main(  # in this process: what it prints, and the run's log file
        'tools/test.py', CLS_CONFIG, checkpoint_at_32px, '--work-dir', str(tmp_path),
        '--cfg-options', *TWO_LAYERS, 'test_dataloader.dataset.indices=64',
        'test_dataloader.batch_size=64', 'test_dataloader.num_workers=0')
    log = ''.join(capsys.readouterr()) + run_logs(tmp_path)
    assert 'accuracy/top1' in metrics
    assert 'interp2d' not in log and 'accuracy/top1' in log
    table = table_key(torch.load(checkpoint_at_32px, map_location='cpu')['state_dict'])
    assert f"resized {table[len('backbone.'):]}" in log


@pytest.mark.slow
def test_load_from_a_checkpoint_of_another_grid_trains(checkpoint_at_32px, tmp_path,
                                                       fashion_mnist, capsys):
    tool_main(  # in this process: what it prints, and the run's log file
        'tools/train.py', CLS_CONFIG, '--work-dir', str(tmp_path), '--no-validate',
        '--cfg-options', *TWO_LAYERS, f'load_from={checkpoint_at_32px}',
        'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=32',
        'auto_scale_lr.base_batch_size=32',
        'train_dataloader.num_workers=0', 'train_cfg.max_epochs=2', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1', 'param_scheduler.1.end=2')
    log = ''.join(capsys.readouterr()) + run_logs(tmp_path)
    assert 'Load checkpoint from' in log and 'interp2d' not in log
    assert os.path.isfile(tmp_path / 'epoch_2.pth')
