"""The small-scale representation benchmark of docs/results.md, in one command.

A ViT-Tiny with 4-px patches on Fashion-MNIST (28x28 grey, 60k training / 10k test images):

1. ``pretrain``: ConMIM (configs/benchmarks/conmim_vit-t-p4_fashion-mnist_bench.py) and MAE
   as mmpretrain implements it (configs/benchmarks/mae_vit-t-p4_fashion-mnist.py), both for
   ``--pretrain-epochs`` epochs over the 60k training images (same batch, optimiser,
   schedule shape), through ``tools/train.py``;
2. ``frozen``: for random weights, the ConMIM teacher and the MAE encoder, mean-pooled final
   tokens of the training images (the first ``--bank-images``) and of the 10k test images;
   kNN top-1 (k=20, cosine, exp(cos/0.07)-weighted vote) and a linear probe (standardised
   features, multinomial logistic regression by L-BFGS) on those frozen features
   (conmim_mm.evaluation);
3. ``finetune``: the three arms fine-tuned end to end with the one Fashion-MNIST recipe
   (configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py; MAE's ViT:
   configs/benchmarks/finetune_mae-vit-t-p4_fashion-mnist.py) for ``--finetune-epochs`` epochs
   on the first ``--finetune-images`` training images, top-1 on the 10k test images;
4. ``report``: a Markdown table (``<work-dir>/results.md``), ``results.json`` and a PNG plot
   (pretraining loss curves and accuracy bars).

    python tools/benchmarks/fashion_mnist.py --work-dir work_dirs/fashion_mnist_bench

Every run is a committed config plus ``--cfg-options`` overrides of its budget (epochs, images,
scheduler ends, data root, workers), exactly what ``tools/train.py`` is given; the frozen stage
builds the same configs in process and reads the images through mmpretrain's FashionMNIST.
Stages already done (their checkpoint or json exists) are skipped; ``--stages`` picks some.
Budgets are in epochs, so the numbers do not depend on the machine's load; wall-clock times
are recorded in ``timings.json``.
"""
import argparse
import contextlib
import fcntl
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

CONFIGS = dict(  # the committed configs the runs are built from
    conmim=osp.join(ROOT, 'configs/benchmarks/conmim_vit-t-p4_fashion-mnist_bench.py'),
    mae=osp.join(ROOT, 'configs/benchmarks/mae_vit-t-p4_fashion-mnist.py'),
    ft_conmim=osp.join(ROOT, 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py'),
    ft_mae=osp.join(ROOT, 'configs/benchmarks/finetune_mae-vit-t-p4_fashion-mnist.py'),
)
ARMS = ('random', 'conmim', 'mae')
LABELS = dict(random='random init', conmim='ConMIM', mae='MAE')
BATCH = 64


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs/fashion_mnist_bench'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data/fashion_mnist'))
    parser.add_argument('--stages', nargs='+', default=['pretrain', 'frozen', 'finetune',
                                                         'report'],
                        choices=['pretrain', 'frozen', 'finetune', 'report'])
    parser.add_argument('--arms', nargs='+', default=list(ARMS), choices=ARMS)
    parser.add_argument('--pretrain-epochs', type=int, default=1)
    parser.add_argument('--pretrain-images', type=int, default=60000)
    parser.add_argument('--finetune-epochs', type=int, default=1)
    parser.add_argument('--finetune-images', type=int, default=60000)
    parser.add_argument('--bank-images', type=int, default=60000,
                        help='training images used as kNN bank and linear-probe training set')
    parser.add_argument('--test-images', type=int, default=10000)
    parser.add_argument('--depth', type=int, default=None,
                        help="ViT layers of all arms (default: the configs' 6, "
                        'configs/_base_/models/vit-t-p4.py)')
    parser.add_argument('--proj-hid', type=int, default=None,
                        help="ConMIM projector width (default: the config's 512)")
    parser.add_argument('--monitor-images', type=int, nargs=2, default=[2000, 1000],
                        metavar=('BANK', 'VAL'),
                        help='images of the kNN monitor hook during pretraining')
    parser.add_argument('--pretrain-options', nargs='*', default=[],
                        help='extra --cfg-options for both pretraining runs (ablations)')
    parser.add_argument('--conmim-options', nargs='*', default=[],
                        help='extra --cfg-options for the ConMIM pretraining only')
    parser.add_argument('--plot', default=None,
                        help='PNG path (default: <work-dir>/fashion_mnist_benchmark.png)')
    parser.add_argument('--results-md', default=None,
                        help='also write the table into this Markdown file, between the '
                        'lines <!-- results:begin --> and <!-- results:end -->')
    parser.add_argument('--num-workers', type=int, default=1,
                        help='dataloader workers of the pretraining and fine-tuning runs')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='where the frozen stage encodes the images (training runs use '
                        "mmengine's choice: the GPU when there is one)")
    parser.add_argument('--force', action='store_true', help='redo stages already done')
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def load_json(path, default=None):
    if osp.exists(path):
        with open(path) as f:
            return json.load(f)
    return default


def save_json(path, data):
    with open(path + '.part', 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(path + '.part', path)


@contextlib.contextmanager
def locked(path):
    """Serialise read-modify-write of ``path`` between runs sharing a work dir (stages and
    arms can run as parallel processes)."""
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_json(path, key, value):
    with locked(path):
        data = load_json(path, {})
        data[key] = value
        save_json(path, data)


def record_time(args, key, seconds):
    update_json(osp.join(args.work_dir, 'timings.json'), key, round(seconds, 1))


def iters(images, epochs):
    return math.ceil(images / BATCH) * epochs


def run_train(args, config, work_dir, options=()):
    cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir]
    if options:
        cmd += ['--cfg-options', *options]
    paths = [ROOT, os.environ.get('PYTHONPATH')]  # no empty entry: it means the cwd
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
    print('$', ' '.join(cmd), flush=True)
    start = time.time()
    with open(osp.join(work_dir, 'train.out'), 'w') as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f'training failed, see {osp.join(work_dir, "train.out")}')
    return time.time() - start


def scalars(work_dir):
    """All records of the newest vis_data/scalars.json of a run."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        return []
    return [json.loads(line) for line in open(logs[-1]) if line.strip()]


# ---------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------
def pretrain_dir(args, arm):
    return osp.join(args.work_dir, f'pretrain_{arm}')


def pretrain_ckpt(args, arm):
    return osp.join(pretrain_dir(args, arm), f'epoch_{args.pretrain_epochs}.pth')


def cfg_options(options):
    """``{key: value}`` -> the ``key=value`` strings of ``tools/train.py --cfg-options``."""
    return [f'{key}={value}' for key, value in options.items()]


def knn_hook_index(config):
    from mmengine.config import Config
    hooks = Config.fromfile(config).get('custom_hooks', [])
    found = [i for i, hook in enumerate(hooks) if hook['type'] == 'KNNMonitorHook']
    if not found:
        raise SystemExit(f'{config} has no KNNMonitorHook in custom_hooks.')
    return found[0]


def pretrain_options(args, arm):
    """The overrides that turn a committed pretraining config into this run's budget."""
    total = iters(args.pretrain_images, args.pretrain_epochs)
    warm = max(1, min(300, total // 4))
    interval = max(1, min(50, total // 40))
    hook = f'custom_hooks.{knn_hook_index(CONFIGS[arm])}'
    bank, val = args.monitor_images
    options = {
        'train_cfg.max_epochs': args.pretrain_epochs,
        'param_scheduler.0.end': warm,
        'param_scheduler.1.begin': warm,
        'param_scheduler.1.end': total,
        'default_hooks.logger.interval': interval,
        'log_processor.window_size': interval,
        'train_dataloader.num_workers': args.num_workers,
        'train_dataloader.persistent_workers': args.num_workers > 0,
        'train_dataloader.dataset.data_root': args.data_root,
        'train_dataloader.dataset.indices': subset(args.pretrain_images, 60000),
        f'{hook}.bank_dataloader.dataset.data_root': args.data_root,
        f'{hook}.bank_dataloader.dataset.indices': bank,
        f'{hook}.val_dataloader.dataset.data_root': args.data_root,
        f'{hook}.val_dataloader.dataset.indices': val,
    }
    if args.depth:
        options['model.backbone.arch.num_layers'] = args.depth
    if arm == 'conmim' and args.proj_hid:
        options['model.neck.hid_channels'] = args.proj_hid
    return options


def finetune_options(args, arm):
    """The overrides of the fine-tuning recipe for this arm and budget."""
    total = iters(args.finetune_images, args.finetune_epochs)
    warm = max(1, min(200, total // 5))
    options = {
        'train_cfg.max_epochs': args.finetune_epochs,
        'train_cfg.val_interval': args.finetune_epochs,
        'param_scheduler.0.end': warm,
        'param_scheduler.1.begin': warm,
        'param_scheduler.1.end': total,
        'train_dataloader.num_workers': args.num_workers,
        'train_dataloader.persistent_workers': args.num_workers > 0,
        'train_dataloader.dataset.data_root': args.data_root,
        'train_dataloader.dataset.indices': subset(args.finetune_images, 60000),
    }
    for loader in ('val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = args.data_root
        options[f'{loader}.dataset.indices'] = subset(args.test_images, 10000)
    if arm == 'random':
        options['model.backbone.init_cfg'] = None
    else:  # the pretraining checkpoint itself: ConMIM's teacher, MAE's encoder
        options['model.backbone.init_cfg.checkpoint'] = pretrain_ckpt(args, arm)
        options['model.backbone.init_cfg.prefix'] = \
            'teacher.module.backbone.' if arm == 'conmim' else 'backbone.'
    if args.depth:
        options['model.backbone.arch.num_layers'] = args.depth
    return options


def subset(images, full):
    """``indices`` of a dataset: None for all images, else the first ``images``."""
    return None if images >= full else images


def load_config(config, options):
    """A committed config with the overrides, as ``tools/train.py`` would build it."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config)
    # the values exactly as tools/train.py parses them from the command line
    cfg.merge_from_dict({key: DictAction._parse_iterable(value)
                         for key, value in (opt.split('=', 1)
                                            for opt in cfg_options(options))})
    return cfg


def stage_pretrain(args):
    for arm in ('conmim', 'mae'):
        if arm not in args.arms:
            continue
        if osp.exists(pretrain_ckpt(args, arm)) and not args.force:
            print(f'[pretrain] {arm}: done ({pretrain_ckpt(args, arm)})')
            continue
        os.makedirs(pretrain_dir(args, arm), exist_ok=True)
        options = cfg_options(pretrain_options(args, arm)) + list(args.pretrain_options)
        if arm == 'conmim':
            options += list(args.conmim_options)
        seconds = run_train(args, CONFIGS[arm], pretrain_dir(args, arm), options)
        record_time(args, f'pretrain_{arm}', seconds)
        print(f'[pretrain] {arm}: {seconds / 60:.1f} min', flush=True)


def pretrain_config(args, arm):
    """The pretraining config of an arm with this run's overrides; its model takes the
    config's data_preprocessor (normalisation) as the Runner would give it."""
    cfg = load_config(CONFIGS[arm], pretrain_options(args, arm))
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg


def build_model(args, arm):
    """The pretraining model of an arm with its weights (random: the ConMIM model at its
    initialisation, seed 0)."""
    import conmim_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = pretrain_config(args, 'mae' if arm == 'mae' else 'conmim')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if arm != 'random':
        load_checkpoint(model, pretrain_ckpt(args, arm), map_location='cpu', strict=True,
                        logger='silent')
    return model.to(args.device).eval(), cfg


def split_loader(cfg, split, images, data_root):
    """A test-time loader over the first ``images`` of a split, from the config's dataset
    pieces (configs/_base_/datasets/fashion_mnist.py)."""
    from mmengine.runner import Runner
    dataset = dict(cfg.train_set if split == 'train' else cfg.test_set, data_root=data_root,
                   indices=images, pipeline=cfg.test_pipeline)
    return Runner.build_dataloader(dict(cfg.eval_loader, batch_size=1000, dataset=dataset))


def stage_frozen(args):
    from conmim_mm.evaluation import extract_features, knn_top1, linear_probe, make_encoder
    path = osp.join(args.work_dir, 'frozen.json')
    results = load_json(path, {})
    for arm in args.arms:
        if arm in results and not args.force:
            print(f'[frozen] {arm}: done {results[arm]}')
            continue
        start = time.time()
        model, cfg = build_model(args, arm)
        # the ConMIM recipe transfers the teacher; random = the student at its initialisation
        encode = make_encoder(model, 'teacher' if arm == 'conmim' else 'student', 'cls+mean')
        feats = {}
        for split, images in (('train', args.bank_images), ('test', args.test_images)):
            loader = split_loader(cfg, split, images, args.data_root)
            feats[split] = extract_features(encode, loader, model.data_preprocessor)
        (train_f, train_y), (test_f, test_y) = feats['train'], feats['test']
        dim = train_f.shape[1] // 2  # [cls, mean]
        res = {}
        for pooling, part in (('mean', slice(dim, None)), ('cls', slice(0, dim))):
            res[f'knn_{pooling}'] = knn_top1(train_f[:, part], train_y, test_f[:, part], test_y,
                                             k=20, temperature=0.07, num_classes=10)
            res[f'linear_{pooling}'] = linear_probe(train_f[:, part], train_y, test_f[:, part],
                                                    test_y)
        results[arm] = res
        update_json(path, arm, res)
        record_time(args, f'frozen_{arm}', time.time() - start)
        print(f'[frozen] {arm}: {res} ({time.time() - start:.0f} s)', flush=True)


def stage_finetune(args):
    path = osp.join(args.work_dir, 'finetune.json')
    results = load_json(path, {})
    for arm in args.arms:
        if arm in results and not args.force:
            print(f'[finetune] {arm}: done {results[arm]}')
            continue
        work_dir = osp.join(args.work_dir, f'finetune_{arm}')
        os.makedirs(work_dir, exist_ok=True)
        config = CONFIGS['ft_mae' if arm == 'mae' else 'ft_conmim']
        seconds = run_train(args, config, work_dir, cfg_options(finetune_options(args, arm)))
        accs = [r['accuracy/top1'] for r in scalars(work_dir) if 'accuracy/top1' in r]
        if not accs:
            raise SystemExit(f'no accuracy/top1 in the logs of {work_dir}')
        results[arm] = dict(top1=accs[-1])
        update_json(path, arm, results[arm])
        record_time(args, f'finetune_{arm}', seconds)
        print(f'[finetune] {arm}: top-1 {accs[-1]:.2f} ({seconds / 60:.1f} min)', flush=True)


def stage_report(args):
    frozen = load_json(osp.join(args.work_dir, 'frozen.json'), {})
    finetune = load_json(osp.join(args.work_dir, 'finetune.json'), {})
    timings = load_json(osp.join(args.work_dir, 'timings.json'), {})
    rows, table = [], {}
    header = ('| weights | kNN top-1 (k=20) | linear probe top-1 | fine-tune top-1 |\n'
              '| --- | ---: | ---: | ---: |')
    for arm in ARMS:
        f, t = frozen.get(arm, {}), finetune.get(arm, {})
        table[arm] = dict(knn=f.get('knn_mean'), linear=f.get('linear_mean'),
                          finetune=t.get('top1'), knn_cls=f.get('knn_cls'),
                          linear_cls=f.get('linear_cls'))

        def fmt(v):
            return '-' if v is None else f'{v:.2f}'
        rows.append(f'| {LABELS[arm]} | {fmt(table[arm]["knn"])} | {fmt(table[arm]["linear"])} '
                    f'| {fmt(table[arm]["finetune"])} |')
    md = '\n'.join([header] + rows)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(md + '\n')
    curves = {}
    for arm in ('conmim', 'mae'):
        recs = scalars(pretrain_dir(args, arm))
        curves[arm] = dict(
            loss=[(r['step'], r['loss']) for r in recs if 'loss' in r],
            knn=[(r['step'], r[k]) for r in recs for k in ('knn/top1', 'knn/teacher_top1')
                 if k in r])
    save_json(osp.join(args.work_dir, 'results.json'),
              dict(table=table, timings=timings, curves=curves, args=vars(args)))
    plot(args, table, curves)
    if args.results_md:
        update_markdown(args.results_md, md, timings)
    print(md)
    print('timings (s):', json.dumps(timings))


def update_markdown(path, table_md, timings):
    begin, end = '<!-- results:begin -->', '<!-- results:end -->'
    text = open(path).read() if osp.exists(path) else f'{begin}\n{end}\n'
    if begin not in text or end not in text:
        raise SystemExit(f'{path} has no {begin} ... {end} block to fill.')
    minutes = ', '.join(f'{k} {v / 60:.1f} min' for k, v in timings.items())
    block = f'{begin}\n{table_md}\n\nWall-clock: {minutes}.\n{end}'
    head, rest = text.split(begin, 1)
    with open(path, 'w') as f:
        f.write(head + block + rest.split(end, 1)[1])
    print('updated', path)


def plot(args, table, curves):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    colors = dict(random='#999999', conmim='#d62728', mae='#1f77b4')
    for arm, ax in (('conmim', axes[0]), ('mae', axes[1])):
        loss = curves.get(arm, {}).get('loss', [])
        if loss:
            steps, values = zip(*loss)
            ax.plot(steps, values, color=colors[arm], marker='.', label='loss')
        knn = curves.get(arm, {}).get('knn', [])
        if knn:  # the KNNMonitorHook points, on a second axis
            twin = ax.twinx()
            steps, values = zip(*knn)
            twin.plot(steps, values, color='black', marker='o', linestyle='--',
                      label='kNN top-1 (monitor)')
            twin.set_ylabel('kNN top-1 (%)')
            twin.legend(fontsize=7, loc='upper right')
        ax.set_title(f'{LABELS[arm]} pretraining loss')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    metrics = [('knn', 'kNN'), ('linear', 'linear probe'), ('finetune', 'fine-tune')]
    width = 0.26
    for i, arm in enumerate(ARMS):
        values = [table[arm][m] or 0 for m, _ in metrics]
        xs = np.arange(len(metrics)) + (i - 1) * width
        bars = axes[2].bar(xs, values, width, label=LABELS[arm], color=colors[arm])
        for bar, v in zip(bars, values):
            if v:
                axes[2].text(bar.get_x() + bar.get_width() / 2, v + 0.5, f'{v:.1f}',
                             ha='center', fontsize=7)
    axes[2].set_xticks(np.arange(len(metrics)))
    axes[2].set_xticklabels([name for _, name in metrics])
    low = min([v for arm in ARMS for m, _ in metrics for v in [table[arm][m]] if v] or [0])
    axes[2].set_ylim(max(0, low - 10), 100)
    axes[2].set_ylabel('top-1 on the test images (%)')
    axes[2].legend(fontsize=8, loc='upper left')
    axes[2].set_title('Fashion-MNIST, ViT-T/4')
    fig.tight_layout()
    out = args.plot or osp.join(args.work_dir, 'fashion_mnist_benchmark.png')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print('wrote', out)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    from conmim_mm.datasets import prepare_fashion_mnist
    prepare_fashion_mnist(args.data_root)
    # one entry per (stages, arms) invocation: parallel runs may share the work dir
    update_json(osp.join(args.work_dir, 'command.json'),
                f"{'+'.join(args.stages)}:{'+'.join(args.arms)}",
                dict(argv=sys.argv, args=vars(args)))
    stages = dict(pretrain=stage_pretrain, frozen=stage_frozen, finetune=stage_finetune,
                  report=stage_report)
    for name in args.stages:
        start = time.time()
        stages[name](args)
        print(f'== stage {name}: {time.time() - start:.0f} s', flush=True)


if __name__ == '__main__':
    main()
