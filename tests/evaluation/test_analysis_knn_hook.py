"""The kNN monitor: its maths, and the hook inside a real (tiny) mmengine Runner."""
import glob
import json
import os

import pytest
import torch

from conmim_mm.engine.hooks.knn_hook import KNNMonitorHook
from conmim_mm.evaluation import knn_top1, pool_tokens
from tests.helpers.paths import ROOT

CONFIG = os.path.join(ROOT, 'configs/pretrain/conmim_vit-t-p4_fashion-mnist.py')


def test_knn_votes_by_cosine_neighbours():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    bank_y = torch.arange(4).repeat_interleave(30)
    bank = centres[bank_y] + torch.randn(120, 16, generator=g)
    query_y = torch.arange(4).repeat_interleave(10)
    query = centres[query_y] + torch.randn(40, 16, generator=g)
    assert knn_top1(bank, bank_y, query, query_y, k=20) == 100.0
    assert knn_top1(bank, bank_y, query, query_y, k=5, vote_temperature=0) == 100.0
    # scale does not matter (cosine), labels do
    assert knn_top1(bank * 7, bank_y, query, query_y, k=20) == 100.0
    assert knn_top1(bank, (bank_y + 1) % 4, query, query_y, k=20) == 0.0
    # k larger than the bank is clipped
    assert knn_top1(bank[:3], bank_y[:3], query[:1], query_y[:1], k=20) >= 0


def test_the_vote_temperature_has_its_own_name():
    """`temperature` is ConMIMHead's InfoNCE temperature; the kNN vote's is `vote_temperature`,
    and the hook's old argument name says so."""
    loaders = dict(bank_dataloader={}, val_dataloader={})
    assert KNNMonitorHook(**loaders, vote_temperature=0.1).vote_temperature == 0.1
    with pytest.raises(TypeError, match='`temperature` is now `vote_temperature`'):
        KNNMonitorHook(**loaders, temperature=0.1)


def test_pool_tokens():
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float).view(2, 5, 3)
    assert torch.equal(pool_tokens(tokens, 'cls'), tokens[:, 0])
    assert torch.equal(pool_tokens(tokens, 'mean'), tokens[:, 1:].mean(1))
    assert pool_tokens(tokens, 'cls+mean').shape == (2, 6)
    # the layout-keeping readout: every patch token, in grid order
    assert torch.equal(pool_tokens(tokens, 'tokens'), tokens[:, 1:].reshape(2, 12))
    assert torch.equal(pool_tokens(tokens, 'cls+mean+tokens'), torch.cat(
        [tokens[:, 0], tokens[:, 1:].mean(1), tokens[:, 1:].reshape(2, 12)], dim=1))
    assert pool_tokens(torch.ones(2, 3, 4, 4)).shape == (2, 3)
    assert pool_tokens(torch.ones(2, 3)).shape == (2, 3)
    with pytest.raises(ValueError):
        pool_tokens(tokens, 'max')


def test_hook_rejects_bad_arguments():
    with pytest.raises(ValueError):
        KNNMonitorHook({}, {}, encoder='ema')
    with pytest.raises(ValueError):
        KNNMonitorHook({}, {}, k=0)


@pytest.mark.slow
def test_hook_logs_knn_accuracy_in_a_runner(tmp_path, fashion_mnist):
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(CONFIG)
    test_pipeline = [
        dict(type='NumpyToPIL', to_rgb=False),
        dict(type='torchvision/Grayscale', num_output_channels=3),
        dict(type='PILToNumpy', to_bgr=False),
        dict(type='PackInputs'),
    ]

    def loader(test_mode, n):
        return dict(batch_size=100, num_workers=0, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=False),
                    collate_fn=dict(type='default_collate'),
                    dataset=dict(type='FashionMNIST', data_root=fashion_mnist,
                                 split='test' if test_mode else 'train', test_mode=test_mode,
                                 indices=n, pipeline=test_pipeline))

    cfg.merge_from_dict({
        'work_dir': str(tmp_path),
        'train_dataloader.dataset.indices': 32, 'train_dataloader.dataset.data_root': fashion_mnist,
        'train_dataloader.batch_size': 16, 'train_dataloader.num_workers': 0,
        'auto_scale_lr.base_batch_size': 16,
        'train_cfg.max_epochs': 2, 'param_scheduler.1.end': 2,
        'model.backbone.arch.num_layers': 2,
        'model.neck.hid_channels': 64,
        'default_hooks.logger.interval': 1, 'log_processor.window_size': 1,
        'resume': False,
    })
    cfg.custom_hooks = [
        dict(type='KNNMonitorHook', interval=1, k=20, before_train=True,
             bank_dataloader=loader(False, 200), val_dataloader=loader(True, 100)),
        dict(type='KNNMonitorHook', interval=2, k=5, encoder='teacher', pooling='cls+mean',
             bank_dataloader=loader(False, 200), val_dataloader=loader(True, 100)),
    ]
    runner = Runner.from_cfg(cfg)
    runner.train()

    logs = glob.glob(os.path.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    records = [json.loads(line) for line in open(logs[0])]
    student = [r for r in records if 'knn/top1' in r]
    teacher = [r for r in records if 'knn/teacher_top1' in r]
    # before training, after epoch 1 and after epoch 2 (student); after epoch 2 (teacher)
    assert [r['epoch'] for r in student] == [0, 1, 2]
    assert [r['step'] for r in student] == [0, 2, 4]
    assert [r['epoch'] for r in teacher] == [2]
    for r in student + teacher:
        value = r.get('knn/top1', r.get('knn/teacher_top1'))
        assert 10.0 <= value <= 100.0  # 10 classes: far above chance even untrained
    assert runner.message_hub.get_info('knn_top1') == student[-1]['knn/top1']
    # training itself still ran and logged its loss
    assert any('loss' in r for r in records)
