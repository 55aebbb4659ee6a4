"""tools/benchmarks/fashion_mnist.py: every run is a committed config with --cfg-options overrides
(no config source is written); the choices are made on the validation split (the last images
of the training set) and never read a test image; the final runs repeat per seed and the report
has the results.json schema of docs/results.json. One end-to-end run through the real
tools/train.py at tiny sizes; the sweep / seeds / budget logic with the training runs replaced
by a recorder (their frozen evaluations are real)."""
import glob
import json
import os
import sys
import time

import pytest

from tests.helpers.paths import ROOT

sys.path.insert(0, os.path.join(ROOT, 'tools', 'benchmarks'))
import fashion_mnist as bench  # noqa: E402

TINY = ['--pretrain-epochs', '1', '--pretrain-images', '128', '--finetune-epochs', '1',
        '--finetune-images', '128', '--bank-images', '200', '--test-images', '100',
        '--val-eval-images', '100', '--monitor-images', '64', '32', '--num-workers', '0',
        '--depth', '2', '--proj-hid', '64']


def flat_keys(cfg, prefix=''):
    keys = set()
    items = cfg.items() if isinstance(cfg, dict) else \
        enumerate(cfg) if isinstance(cfg, (list, tuple)) else ()
    for key, value in items:
        keys.add(f'{prefix}{key}')
        keys |= flat_keys(value, f'{prefix}{key}.')
    return keys


def test_overrides_name_only_keys_of_the_committed_configs():
    """Every override replaces a value the committed config has (a typo would add a key)."""
    from mmengine.config import Config
    args = bench.parse_args(['--work-dir', '/tmp/unused', *TINY])
    for arm in bench.PRETRAINED:
        flat = flat_keys(Config.fromfile(bench.CONFIGS[arm]).to_dict())
        assert set(bench.pretrain_options(args, arm)) <= flat, arm
    for arm in bench.ARMS:
        flat = flat_keys(Config.fromfile(bench.CONFIGS[bench.FINETUNE_CONFIG[arm]]).to_dict())
        for split in ('val', 'test'):
            assert set(bench.finetune_options(args, arm, 'x.pth', split=split)) <= flat, arm
    # --device cuda: bf16 autocast and torch.compile of what each model computes (the keys
    # it adds are the only new ones)
    gpu = bench.parse_args(['--work-dir', '/tmp/unused', *TINY, '--device', 'cuda'])
    added = {'compile', 'default_hooks.compile.methods', 'train_dataloader.pin_memory'}
    for arm, methods in (('conmim', None), ('mae', ['loss']), ('simmim', ['loss'])):
        options = bench.pretrain_options(gpu, arm)
        flat = flat_keys(Config.fromfile(bench.CONFIGS[arm]).to_dict())
        assert set(options) - added <= flat, arm
        cfg = bench.load_config(bench.CONFIGS[arm], options)
        assert cfg.compile is True and cfg.default_hooks.compile.get('methods') == methods, arm
        assert cfg.optim_wrapper.type == 'DeviceAmpOptimWrapper', arm
        assert cfg.train_dataloader.pin_memory is True
    cfg = bench.load_config(bench.CONFIGS['ft_conmim'], bench.finetune_options(gpu, 'conmim'))
    assert cfg.compile is True


def test_sweep_grids_parse_and_reject_bad_specs(capsys):
    args = bench.parse_args(['--sweep', 'conmim:model.base_momentum=0.01,0.004',
                             'ft:optim_wrapper.optimizer.lr=5e-4,1e-3', 'ft-mae:a.b=1,2'])
    assert args.sweep_axes == [
        dict(kind='pretrain', arms=['conmim'], key='model.base_momentum',
             values=['0.01', '0.004']),
        dict(kind='finetune', arms=list(bench.ARMS), key='optim_wrapper.optimizer.lr',
             values=['5e-4', '1e-3']),
        dict(kind='finetune', arms=['mae'], key='a.b', values=['1', '2'])]
    for bad in ('conmim', 'byol:a=1', 'conmim:a=', 'ft-byol:a=1'):
        with pytest.raises(SystemExit):
            bench.parse_args(['--sweep', bad])
        assert '--sweep' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(['--val-images', '0'])
    # keys are checked against the committed configs: a typo would sweep nothing
    bench.check_sweep_keys(bench.parse_args([
        '--sweep', 'conmim:train_dataloader.dataset.pipeline.6.min_num_patches=2,4',
        'simmim:train_dataloader.dataset.pipeline.5.mask_ratio=0.4,0.6',
        'mae:model.backbone.mask_ratio=0.6,0.75', 'ft:optim_wrapper.optimizer.lr=1e-3']))
    for bad in ('conmim:model.base_momentun=0.01', 'ft:optim_wrapper.optimizer.lrr=1',
                'simmim:train_dataloader.dataset.pipeline.9.mask_ratio=0.5'):
        with pytest.raises(SystemExit, match='has no such value'):
            bench.check_sweep_keys(bench.parse_args(['--sweep', bad]))


def test_the_validation_split_is_the_tail_of_the_training_images(fashion_mnist):
    """SplitFashionMNIST: train = the first 60k - N training images, val = the last N, test =
    the 10k test images; indices select within a split; bad arguments name the fix."""
    import numpy as np
    from conmim_mm.datasets import SplitFashionMNIST
    raw = np.fromfile(os.path.join(fashion_mnist, 'train-images-idx3-ubyte'), np.uint8,
                      offset=16).reshape(-1, 28, 28)
    train = SplitFashionMNIST(data_root=fashion_mnist, split='train', val_images=10000)
    val = SplitFashionMNIST(data_root=fashion_mnist, split='val', val_images=10000, indices=3)
    test = SplitFashionMNIST(data_root=fashion_mnist, split='test', test_mode=True)
    assert (len(train), len(val), len(test)) == (50000, 3, 10000)
    assert np.array_equal(train.get_data_info(49999)['img'], raw[49999])
    for i in range(3):
        assert np.array_equal(val.get_data_info(i)['img'], raw[50000 + i])
    assert test.split == 'test' and val.part == 'val' and val.split == 'train'
    for kwargs, message in ((dict(split='valid'), "'valid' is not one of"),
                            (dict(split='val', val_images=0), 'holds nothing out'),
                            (dict(val_images=60000), 'leaves no training image')):
        with pytest.raises(ValueError, match=message):
            SplitFashionMNIST(data_root=fashion_mnist, **kwargs)


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end(tmp_path, fashion_mnist):
    """The real runs (tools/train.py), as many as before: two pretrainings (ConMIM, SimMIM),
    three fine-tunings (random, ConMIM, SimMIM)."""
    work = tmp_path / 'bench'
    bench.main(['--work-dir', str(work), '--data-root', fashion_mnist, *TINY,
                '--arms', 'random', 'conmim', 'simmim'])
    final = work / 'iters' / 'seed0'
    # each run started from its committed config (the Runner keeps a copy named after it)
    for run, config in (('pretrain_conmim', 'conmim'), ('pretrain_simmim', 'simmim'),
                        ('finetune_random', 'ft_conmim'), ('finetune_conmim', 'ft_conmim'),
                        ('finetune_simmim', 'ft_conmim')):
        assert (final / run / os.path.basename(bench.CONFIGS[config])).exists(), run
    assert not glob.glob(str(work / '**' / 'bench_config.py'), recursive=True)
    for arm in ('conmim', 'simmim'):  # the monitor ran, on the validation split
        assert bench.monitor_curve(str(final / f'pretrain_{arm}'), arm), arm
        assert any('loss' in r for r in bench.scalars(str(final / f'pretrain_{arm}')))
    # the fine-tuning runs loaded what they should: the teacher, the SimMIM encoder, nothing
    ft_log = {arm: open(final / f'finetune_{arm}' / 'train.out').read()
              for arm in ('random', 'conmim', 'simmim')}
    assert 'teacher.module.backbone.' in ft_log['conmim']
    assert 'pretrain_simmim' in ft_log['simmim']
    for loaded in ('pretrain_conmim', 'pretrain_simmim', 'teacher.module.backbone.'):
        assert loaded not in ft_log['random'], loaded  # (its config names pretrain_crop)
    results = json.load(open(work / 'results.json'))
    for arm in ('random', 'conmim', 'simmim'):
        for metric in ('knn_top1', 'linear_top1', 'finetune_top1'):
            assert len(results['arms'][arm][metric]) == 1, (arm, metric)
            assert 0 <= results['arms'][arm][metric][0] <= 100
    reads = json.load(open(work / 'reads.json'))  # the monitor read the validation split
    assert {r['split'] for r in reads if 'custom_hooks' in r['run'] and
            r['run'].endswith('val_dataloader')} == {'val'}
    assert (work / 'results.md').exists() and (work / 'fashion_mnist_benchmark.png').exists()


class Recorder:
    """Stands in for tools/train.py: builds the run's config from the committed config and
    the overrides exactly as the tool passes them, saves the model's initial weights as the
    checkpoint, and logs what the score functions read (kNN monitor, s/iter, top-1).
    ``frozen_scores`` stands in for the frozen evaluation: it records the split it is asked
    to classify, and ConMIM's kNN grows with the teacher momentum the run was given."""

    SPEED = dict(conmim=0.3, mae=0.1, simmim=0.15)

    def __init__(self):
        self.runs = []
        self.frozen = []

    def frozen_scores(self, args, arm, checkpoint, seed, query_split, stage, run,
                      overrides=None):
        bench.record_read(args, stage, run, dict(split='train'))
        bench.record_read(args, stage, run, dict(split=query_split))
        self.frozen.append(dict(arm=arm, split=query_split, stage=stage, seed=seed))
        cfg = next((r['cfg'] for r in self.runs
                    if checkpoint and r['work_dir'] == os.path.dirname(checkpoint)), None)
        knn = 50 + 1000 * float(cfg.model.get('base_momentum', 0) if cfg else 0)
        return dict(knn_mean=knn, linear_mean=knn + 1, knn_cls=knn, linear_cls=knn,
                    knn_tokens=knn + 2, linear_tokens=knn + 3)

    def __call__(self, args, config, work_dir, options=()):
        import torch
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import MODELS
        opts = dict(opt.split('=', 1) for opt in options)
        cfg = bench.load_config(config, opts)
        arm = next((a for a in bench.PRETRAINED if bench.CONFIGS[a] == config), None)
        self.runs.append(dict(config=config, work_dir=work_dir, options=opts, cfg=cfg, arm=arm))
        log = os.path.join(work_dir, time.strftime('%Y%m%d_%H%M%S'), 'vis_data')
        os.makedirs(log, exist_ok=True)
        if arm:
            init_default_scope('mmpretrain')
            cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
            model = MODELS.build(cfg.model)
            epochs = cfg.train_cfg.max_epochs
            torch.save(dict(state_dict=model.state_dict()),
                       os.path.join(work_dir, f'epoch_{epochs}.pth'))
            records = [dict(step=i, loss=1.0, time=self.SPEED[arm]) for i in range(3)]
            records += [{'epoch': e, 'step': 2 * e, bench.MONITOR[arm]: 10.0 * e + len(arm)}
                        for e in range(1, epochs + 1)]
        else:  # fine-tuning: top-1 grows with the lr, so the sweep must pick the largest
            lr = float(opts.get('optim_wrapper.optimizer.lr', 1e-3))
            records = [dict(step=1, **{'accuracy/top1': 50 + 1e4 * lr})]
        with open(os.path.join(log, 'scalars.json'), 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in records)
        return 0.0


def datasets_of(run):
    return bench.config_datasets(run['cfg'])


def test_sweep_selects_on_the_validation_split_and_the_final_runs_use_it(
        tmp_path, fashion_mnist, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(bench, 'run_train', recorder)
    monkeypatch.setattr(bench, 'frozen_scores', recorder.frozen_scores)
    work = tmp_path / 'bench'
    md = tmp_path / 'results_page.md'
    md.write_text('# Results\n<!-- results:begin -->\nold\n<!-- results:end -->\ntail\n')
    common = ['--work-dir', str(work), '--data-root', fashion_mnist, *TINY,
              '--val-images', '5000', '--seeds', '0', '1']
    bench.main(common + ['--stages', 'sweep', '--sweep',
                         'conmim:model.base_momentum=0.01,0.004',
                         'ft:optim_wrapper.optimizer.lr=5e-4,2e-3'])
    sweep_runs = list(recorder.runs)
    # pretraining sweep: 2 ConMIM points; fine-tuning sweep: 2 lrs per arm (4 arms); the
    # best ConMIM point is reused, MAE and SimMIM pretrain once with their config's values
    assert len([r for r in sweep_runs if r['arm']]) == 4
    assert len([r for r in sweep_runs if not r['arm']]) == 8
    for run in sweep_runs:  # no sweep run is given a test image
        assert int(run['options']['randomness.seed']) == 0
        for where, dataset in datasets_of(run):
            assert dataset['split'] in ('train', 'val'), (run['work_dir'], where)
            assert dataset['val_images'] == 5000
    ft = [r for r in sweep_runs if not r['arm']]
    assert all(r['cfg'].val_dataloader.dataset.split == 'val' for r in ft)
    reads = json.load(open(work / 'reads.json'))
    assert reads and {r['split'] for r in reads if r['stage'] == 'sweep'} == {'train', 'val'}
    assert {f['split'] for f in recorder.frozen} == {'val'}
    selection = json.load(open(work / 'selection.json'))
    axis = selection['grid'][0]
    assert axis['key'] == 'model.base_momentum' and axis['knn'] == [60.0, 54.0]
    assert axis['chosen'] == '0.01'
    assert selection['pretrain']['conmim'] == {'model.base_momentum': axis['chosen']}
    assert all(selection['finetune'][arm] == {'optim_wrapper.optimizer.lr': '2e-3'}
               for arm in bench.ARMS)

    recorder.runs.clear()
    recorder.frozen.clear()
    bench.main(common + ['--stages', 'pretrain', 'frozen', 'finetune', 'budget', 'report',
                         '--results-md', str(md), '--results-json', str(tmp_path / 'r.json')])
    bench.main(common + ['--stages', 'pretrain', 'frozen', 'finetune', 'report',
                         '--budgets', 'iters', 'compute', '--results-md', str(md),
                         '--results-json', str(tmp_path / 'r.json')])
    pre = [r for r in recorder.runs if r['arm']]
    ft = [r for r in recorder.runs if not r['arm']]
    # iters: 3 arms x seed 1 (the sweep trained the chosen points of seed 0 at this budget:
    # reused); compute: MAE and SimMIM get more epochs, seeds 0 and 1 (ConMIM's and the
    # random arm's runs are the same and not redone)
    assert len(pre) == 3 + 4 and len(ft) == 4 * 2 + 2 * 2
    for run in pre:
        if run['arm'] == 'conmim':
            assert run['options']['model.base_momentum'] == axis['chosen']
    epochs = {(r['arm'], r['work_dir'].split(os.sep)[-3]): r['cfg'].train_cfg.max_epochs
              for r in pre}
    assert epochs[('mae', 'iters')] == 1 and epochs[('mae', 'compute')] == 3
    assert epochs[('simmim', 'compute')] == 2  # 0.3 / 0.15
    # the frozen evaluations of the final runs classify the test images, per seed
    assert {(f['split'], f['stage']) for f in recorder.frozen} == {('test', 'frozen')}
    assert len(recorder.frozen) == 4 * 2 + 2 * 2
    for run in ft:  # the final fine-tunings evaluate the test images, at the chosen lr
        assert run['cfg'].val_dataloader.dataset.split == 'test'
        assert run['options']['optim_wrapper.optimizer.lr'] == '2e-3'
    assert {r['options']['randomness.seed'] for r in recorder.runs} == {'0', '1'}

    results = json.load(open(tmp_path / 'r.json'))
    assert set(results) >= {'arms', 'budget', 'selection'}
    assert set(results['arms']) == set(bench.ARMS)
    for arm, row in results['arms'].items():
        assert set(row) == {'knn_top1', 'linear_top1', 'knn_tokens_top1', 'linear_tokens_top1',
                            'finetune_top1'}
        assert all(len(values) == 2 for values in row.values()), arm
    gains = results['finetune_gain_over_random']['iters']
    assert set(gains) == {'conmim', 'mae', 'simmim'}
    assert gains['conmim'] == [a - r for a, r in zip(results['arms']['conmim']['finetune_top1'],
                                                     results['arms']['random']['finetune_top1'])]
    assert results['budget']['compute']['mae']['epochs'] == 3
    assert results['budget']['iters']['conmim']['epochs'] == 1
    assert set(results['budgets']) == {'iters', 'compute'}
    assert results['selection']['pretrain']['conmim'] == selection['pretrain']['conmim']
    # the monitor per epoch and the epoch from which the ranking no longer changes
    compute = results['epochs']['compute']
    assert compute['curves']['mae'] == {'1': 13.0, '2': 23.0, '3': 33.0}
    assert compute['stable_from_epoch'] == 1
    page = md.read_text()
    assert page.startswith('# Results\n<!-- results:begin -->\n') and page.endswith('tail\n')
    assert 'old' not in page and '±' in page and 'model.base_momentum' in page
    assert 'Sweeps on the validation split' in page and 'paired by seed' in page


def test_sweep_trains_the_configs_own_point_once(tmp_path, fashion_mnist, monkeypatch):
    """Coordinate search over two axes whose grids both hold the config's value: the point
    where every value is the config's is one run, not one per axis (and a value written
    another way, 1e-3 for 0.001, is the same point)."""
    recorder = Recorder()
    monkeypatch.setattr(bench, 'run_train', recorder)
    monkeypatch.setattr(bench, 'frozen_scores', recorder.frozen_scores)
    bench.main(['--work-dir', str(tmp_path / 'bench'), '--data-root', fashion_mnist, *TINY,
                '--arms', 'conmim', '--stages', 'sweep', '--sweep',
                'conmim:optim_wrapper.optimizer.lr=5e-4,1e-3',
                'conmim:model.base_momentum=0.004,0.01',
                'conmim:model.neck.hid_channels=512,256'])
    points = [{k: v for k, v in r['options'].items()
               if k in ('optim_wrapper.optimizer.lr', 'model.base_momentum',
                        'model.neck.hid_channels')} for r in recorder.runs]
    # lr 5e-4 (chosen: the first of a tie), the config, then momentum 0.004 and width 256
    # each at lr 5e-4; the runs are given only what they change
    lr, momentum, width = ('optim_wrapper.optimizer.lr', 'model.base_momentum',
                           'model.neck.hid_channels')
    assert points == [{lr: '5e-4', width: '64'}, {width: '64'},  # TINY's --proj-hid 64
                      {lr: '5e-4', momentum: '0.004', width: '64'}, {lr: '5e-4', width: '256'}]
    selection = json.load(open(tmp_path / 'bench' / 'selection.json'))
    assert [axis['knn'] for axis in selection['grid']] == [[60.0, 60.0], [54.0, 60.0],
                                                           [60.0, 60.0]]


def test_parallel_sweeps_share_their_points(tmp_path, fashion_mnist, monkeypatch):
    """A point another sweep process records while this one runs (the same work dir, budget
    and seed) is taken from sweep.json, not trained again."""
    recorder = Recorder()
    argv = ['--work-dir', str(tmp_path / 'bench'), '--data-root', fashion_mnist, *TINY,
            '--arms', 'conmim', '--stages', 'sweep',
            '--sweep', 'conmim:optim_wrapper.optimizer.lr=5e-4,2e-3']
    args = bench.parse_args(argv)
    other = bench.sweep_point_tag(args, 'conmim', {'optim_wrapper.optimizer.lr': '2e-3'}, 0)

    def train_while_another_process_records(*a, **k):
        seconds = recorder(*a, **k)
        bench.update_json(str(tmp_path / 'bench' / 'sweep' / 'sweep.json'), other, dict(
            arm='conmim', overrides={}, checkpoint='elsewhere.pth', run='elsewhere',
            knn=99.0, linear=99.0, monitor=[]))
        return seconds

    monkeypatch.setattr(bench, 'run_train', train_while_another_process_records)
    monkeypatch.setattr(bench, 'frozen_scores', recorder.frozen_scores)
    bench.main(argv)
    assert [r['options']['optim_wrapper.optimizer.lr'] for r in recorder.runs] == ['5e-4']
    selection = json.load(open(tmp_path / 'bench' / 'selection.json'))
    assert selection['grid'][0]['knn'] == [60.0, 99.0] and selection['grid'][0]['chosen'] == '2e-3'


def test_frozen_evaluation_builds_the_model_of_the_point(tmp_path, fashion_mnist):
    """A sweep point or selection that changes the architecture (the projector width) is
    evaluated with that architecture: the strict load of its checkpoint fits."""
    import torch
    args = bench.parse_args(['--work-dir', str(tmp_path), '--data-root', fashion_mnist, *TINY])
    point = {'model.neck.hid_channels': '32'}
    model, _ = bench.build_model(args, 'random', seed=0)  # TINY's --proj-hid 64
    cfg = bench.pretrain_config(args, 'conmim', point)
    assert cfg.model.neck.hid_channels == 32 and model.neck.fc1.weight.shape[0] == 64
    from mmpretrain.registry import MODELS
    narrow = MODELS.build(cfg.model)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=narrow.state_dict()), ckpt)
    with pytest.raises(RuntimeError, match='size mismatch'):
        bench.build_model(args, 'conmim', str(ckpt))
    loaded, _ = bench.build_model(args, 'conmim', str(ckpt), overrides=point)
    torch.testing.assert_close(loaded.neck.fc1.weight, narrow.neck.fc1.weight)


@pytest.mark.parametrize('arm', ['conmim', 'simmim'])
def test_frozen_stage_reads_the_same_images_as_the_idx_files(arm, fashion_mnist):
    """The frozen stage's loader and model preprocessing give the normalised grey images,
    3 equal channels (what the tool computed from the idx files before it used the configs);
    the validation split is the tail of the training file."""
    import numpy as np
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    args = bench.parse_args(['--work-dir', '/tmp/unused', '--data-root', fashion_mnist, *TINY])
    cfg = bench.pretrain_config(args, arm)
    init_default_scope('mmpretrain')
    preprocessor = MODELS.build(cfg.model).data_preprocessor
    for split, name, offset in (('test', 't10k', 0), ('val', 'train', 50000)):
        loader = bench.split_loader(args, cfg, split, 5)
        data = preprocessor(next(iter(loader)), False)
        raw = np.fromfile(os.path.join(fashion_mnist, f'{name}-images-idx3-ubyte'), np.uint8,
                          offset=16)[offset * 784:(offset + 5) * 784].reshape(5, 1, 28, 28)
        expected = ((torch.from_numpy(raw.copy()).float() - 72.94) / 90.02).expand(-1, 3, -1, -1)
        torch.testing.assert_close(data['inputs'], expected, rtol=0, atol=0)


def test_frozen_scores_classify_the_split_they_are_asked(tmp_path, fashion_mnist, monkeypatch):
    """The sweep's frozen evaluation: bank = the head of the training split, queries = the
    validation split; reads.json says so. (The L-BFGS probe itself runs in the end-to-end
    test; here a nearest-class-mean stand-in keeps the test fast.)"""
    import torch
    import conmim_mm.evaluation

    def class_means(train_x, train_y, test_x, test_y):
        means = torch.stack([train_x[train_y == c].mean(0) for c in train_y.unique()])
        guess = train_y.unique()[torch.cdist(test_x, means).argmin(1)]
        return 100.0 * (guess == test_y).float().mean().item()

    monkeypatch.setattr(conmim_mm.evaluation, 'linear_probe', class_means)
    args = bench.parse_args(['--work-dir', str(tmp_path), '--data-root', fashion_mnist, *TINY])
    res = bench.frozen_scores(args, 'random', None, 0, 'val', 'sweep', 'probe')
    assert set(res) == {'knn_mean', 'knn_cls', 'linear_mean', 'linear_cls', 'knn_tokens',
                        'linear_tokens'}
    assert all(0 <= v <= 100 for v in res.values())
    reads = json.load(open(tmp_path / 'reads.json'))
    assert [(r['split'], r['indices'], r['val_images']) for r in reads] == \
        [('train', 200, 10000), ('val', 100, 10000)]


def test_references_are_the_raw_images_under_the_benchmark_protocols(tmp_path, fashion_mnist):
    """Pixels and the position-free patch mean, kNN and logistic regression, on the benchmark's
    splits: the weight decay is chosen on validation images, the test images are only queried,
    and each number is what the benchmark's own functions give on those features."""
    import torch
    import fashion_mnist_references as refs
    from conmim_mm.evaluation import knn_top1
    out, results = tmp_path / 'refs.json', tmp_path / 'results.json'
    results.write_text(json.dumps({'arms': {}}))
    got = refs.main(['--data-root', fashion_mnist, '--bank-images', '300', '--val-eval-images',
                     '100', '--query-images', '100', '--out', str(out),
                     '--results-json', str(results)])
    assert json.loads(out.read_text()) == got and json.loads(results.read_text()) == \
        {'arms': {}, 'references': got}
    bank, bank_y = refs.split_images(fashion_mnist, 'train', 300)
    test, test_y = refs.split_images(fashion_mnist, 'test', 100)
    assert got['pixels_knn'] == knn_top1(bank.flatten(1).float(), bank_y,
                                         test.flatten(1).float(), test_y, k=20,
                                         vote_temperature=0.07, num_classes=10)
    # the patch mean of an image whose patches are all the same patch is that patch
    tile = torch.arange(16, dtype=torch.uint8).view(4, 4)
    assert torch.equal(refs.patch_mean(tile.repeat(7, 7)[None]), tile.flatten()[None].float())
    for name in ('pixels', 'patch_mean'):
        chosen = got[f'{name}_logistic']
        assert set(chosen['val_top1']) == {str(d) for d in refs.WEIGHT_DECAYS}
        assert chosen['val_top1'][str(chosen['weight_decay'])] == max(chosen['val_top1'].values())
    assert got['pixels_knn'] > got['patch_mean_knn'] > 10  # layout matters; both above chance
