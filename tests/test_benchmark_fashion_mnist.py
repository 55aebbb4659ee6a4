"""tools/benchmarks/fashion_mnist.py end to end at tiny sizes: every run is a committed config
with --cfg-options overrides (no config source is written), the pretraining runs carry their
kNN monitor, the frozen stage reads mmpretrain's FashionMNIST, and the report is filled."""
import glob
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'benchmarks'))
import fashion_mnist as bench  # noqa: E402

TINY = ['--pretrain-epochs', '1', '--pretrain-images', '128', '--finetune-epochs', '1',
        '--finetune-images', '128', '--bank-images', '200', '--test-images', '100',
        '--monitor-images', '64', '32', '--num-workers', '0', '--depth', '2',
        '--proj-hid', '64']


def test_overrides_name_only_keys_of_the_committed_configs():
    """Every override replaces a value the committed config has (a typo would add a key)."""
    from mmengine.config import Config
    args = bench.parse_args(['--work-dir', '/tmp/unused', *TINY])
    for arm in ('conmim', 'mae'):
        flat = flat_keys(Config.fromfile(bench.CONFIGS[arm]).to_dict())
        assert set(bench.pretrain_options(args, arm)) <= flat, arm
    for arm, config in (('conmim', 'ft_conmim'), ('mae', 'ft_mae'), ('random', 'ft_conmim')):
        flat = flat_keys(Config.fromfile(bench.CONFIGS[config]).to_dict())
        assert set(bench.finetune_options(args, arm)) <= flat, arm


def flat_keys(cfg, prefix=''):
    keys = set()
    items = cfg.items() if isinstance(cfg, dict) else \
        enumerate(cfg) if isinstance(cfg, (list, tuple)) else ()
    for key, value in items:
        keys.add(f'{prefix}{key}')
        keys |= flat_keys(value, f'{prefix}{key}.')
    return keys


def test_the_benchmark_runs_end_to_end(tmp_path, fashion_mnist):
    work = tmp_path / 'bench'
    bench.main(['--work-dir', str(work), '--data-root', fashion_mnist, *TINY])
    # each run started from its committed config (the Runner keeps a copy named after it)
    for run, config in (('pretrain_conmim', 'conmim'), ('pretrain_mae', 'mae'),
                        ('finetune_random', 'ft_conmim'), ('finetune_conmim', 'ft_conmim'),
                        ('finetune_mae', 'ft_mae')):
        assert (work / run / os.path.basename(bench.CONFIGS[config])).exists(), run
    assert not glob.glob(str(work / '**' / 'bench_config.py'), recursive=True)
    for arm, name in (('conmim', 'knn/teacher_top1'), ('mae', 'knn/top1')):
        records = bench.scalars(str(work / f'pretrain_{arm}'))
        assert any(name in r for r in records), f'the {arm} kNN monitor did not run'
    frozen = json.load(open(work / 'frozen.json'))
    finetune = json.load(open(work / 'finetune.json'))
    for arm in bench.ARMS:
        assert 0 <= frozen[arm]['knn_mean'] <= 100 and 0 <= frozen[arm]['linear_mean'] <= 100
        assert 0 <= finetune[arm]['top1'] <= 100
    # the fine-tuning runs loaded what they should: the teacher, the MAE encoder, nothing
    ft_log = {arm: open(work / f'finetune_{arm}' / 'train.out').read() for arm in bench.ARMS}
    assert 'teacher.module.backbone.' in ft_log['conmim']
    assert 'pretrain_mae' in ft_log['mae']
    assert 'pretrain_' not in ft_log['random']
    assert (work / 'results.md').exists() and (work / 'fashion_mnist_benchmark.png').exists()


@pytest.mark.parametrize('arm', ['conmim', 'mae'])
def test_frozen_stage_reads_the_same_images_as_the_idx_files(arm, fashion_mnist):
    """The frozen stage's loader and model preprocessing give the normalised grey images,
    3 equal channels (what the tool computed from the idx files before it used the configs)."""
    import numpy as np
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    args = bench.parse_args(['--work-dir', '/tmp/unused', '--data-root', fashion_mnist, *TINY])
    cfg = bench.pretrain_config(args, arm)
    init_default_scope('mmpretrain')
    preprocessor = MODELS.build(cfg.model).data_preprocessor
    loader = bench.split_loader(cfg, 'test', 5, fashion_mnist)
    data = preprocessor(next(iter(loader)), False)
    raw = np.fromfile(os.path.join(fashion_mnist, 't10k-images-idx3-ubyte'), np.uint8,
                      offset=16)[:5 * 784].reshape(5, 1, 28, 28)
    expected = ((torch.from_numpy(raw.copy()).float() - 72.94) / 90.02).expand(-1, 3, -1, -1)
    torch.testing.assert_close(data['inputs'], expected, rtol=0, atol=0)
