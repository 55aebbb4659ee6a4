"""The small-scale representation benchmark of docs/results.md, in one command.

A ViT-Tiny with 4-px patches on Fashion-MNIST (28x28 grey). The 60k training images are cut in
two (conmim_mm SplitFashionMNIST): the first 50k train everything (pretraining, fine-tuning,
the kNN bank, the linear probe), the last ``--val-images`` (10k) are the validation split on
which every choice is made; the 10k test images are read only by the final evaluations.

Arms: ``random`` (the ViT at its initialisation), ``conmim``
(configs/benchmarks/conmim_vit-t-p4_fashion-mnist_bench.py), ``mae`` (mmpretrain's MAE,
configs/benchmarks/mae_vit-t-p4_fashion-mnist.py) and ``simmim`` (mmpretrain's SimMIM,
configs/benchmarks/simmim_vit-t-p4_fashion-mnist.py). Stages:

1. ``sweep`` (validation split only): per arm, the grids given by ``--sweep`` are searched one
   axis at a time in the order given, each around the values chosen so far (pretraining axes
   scored by kNN top-1 or the linear probe of the frozen encoder on the validation split,
   fine-tuning axes by the fine-tuned model's validation top-1, from the best pretraining).
   Grid and choice go to ``<work-dir>/selection.json``; the final stages use the chosen values.
2. ``pretrain``: each pretrained arm for ``--pretrain-epochs`` epochs per seed (``--seeds``),
   through ``tools/train.py``; its kNN monitor (validation split) logs every epoch.
3. ``frozen``: kNN top-1 (k=20, cosine, exp(cos/0.07) vote) and a linear probe (standardised
   features, L-BFGS logistic regression) on mean-pooled final tokens: bank / probe training
   set = the first ``--bank-images`` training images, queries = the test images.
4. ``finetune``: every arm fine-tuned end to end with the one Fashion-MNIST recipe
   (configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py; MAE's ViT:
   configs/benchmarks/finetune_mae-vit-t-p4_fashion-mnist.py), top-1 on the test images, read
   once at the end of the run.
5. ``budget``: per-iteration wall-clock of each pretraining (median of its logged ``time``,
   seed ``--seeds[0]``, equal-iteration runs) and the epochs that give every arm ConMIM's
   pretraining compute (``--budgets compute`` then reruns 2-4 at those epochs).
6. ``report``: ``results.json`` (``{"arms": {arm: {"knn_top1": [per seed], "linear_top1",
   "finetune_top1"}}, "budget", "selection", ...}``), a Markdown table (mean +- std over
   seeds, both budgets), the sweep tables, the kNN monitor per pretraining epoch and the epoch
   from which the ranking of the arms stops changing, and a PNG plot.

    python tools/benchmarks/fashion_mnist.py --work-dir work_dirs/fashion_mnist_bench \\
        --stages sweep pretrain frozen finetune budget report --seeds 0 1 2 \\
        --sweep conmim:optim_wrapper.optimizer.lr=2.5e-4,5e-4,1e-3 \
                ft:optim_wrapper.optimizer.lr=5e-4,1e-3,2e-3

Every run is a committed config plus ``--cfg-options`` overrides (budget, seed, data root,
split, the chosen values), exactly what ``tools/train.py`` is given; no config source is
written. Stages already done (their checkpoint or json exists) are skipped; ``--force`` redoes
them. ``<work-dir>/reads.json`` lists every split each stage read (the sweep reads no test
image). Wall-clock times are in ``timings.json``.
"""
import argparse
import contextlib
import copy
import fcntl
import functools
import glob
import hashlib
import json
import math
import os
import os.path as osp
import statistics
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
    simmim=osp.join(ROOT, 'configs/benchmarks/simmim_vit-t-p4_fashion-mnist.py'),
    ft_conmim=osp.join(ROOT, 'configs/cls/conmim_vit-t-p4_ft_fashion-mnist.py'),
    ft_mae=osp.join(ROOT, 'configs/benchmarks/finetune_mae-vit-t-p4_fashion-mnist.py'),
)
ARMS = ('random', 'conmim', 'mae', 'simmim')
PRETRAINED = ('conmim', 'mae', 'simmim')
LABELS = dict(random='random init', conmim='ConMIM', mae='MAE', simmim='SimMIM')
# the fine-tuning recipe of each arm (SimMIM pretrains ConMIM's encoder) and where its encoder
# sits in the pretraining checkpoint (ConMIM transfers its teacher)
FINETUNE_CONFIG = dict(random='ft_conmim', conmim='ft_conmim', simmim='ft_conmim', mae='ft_mae')
CKPT_PREFIX = dict(conmim='teacher.module.backbone.', mae='backbone.', simmim='backbone.')
MONITOR = dict(conmim='knn/teacher_top1', mae='knn/top1', simmim='knn/top1')
TRAIN_IMAGES = 60000  # Fashion-MNIST's training images, before the validation split
TEST_IMAGES = 10000
METRICS = (('knn_top1', 'kNN top-1 (k=20)'), ('linear_top1', 'linear probe top-1'),
           ('knn_tokens_top1', 'kNN top-1, tokens kept'),
           ('linear_tokens_top1', 'linear probe top-1, tokens kept'),
           ('finetune_top1', 'fine-tune top-1'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs/fashion_mnist_bench'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data/fashion_mnist'))
    parser.add_argument('--stages', nargs='+',
                        default=['pretrain', 'frozen', 'finetune', 'report'],
                        choices=['sweep', 'pretrain', 'frozen', 'finetune', 'budget', 'report'])
    parser.add_argument('--arms', nargs='+', default=list(ARMS), choices=ARMS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='one final run (pretrain + frozen + finetune) per seed; the sweep '
                        'uses the first')
    parser.add_argument('--budgets', nargs='+', default=['iters'], choices=['iters', 'compute'],
                        help='iters: every arm pretrains --pretrain-epochs; compute: every arm '
                        "gets ConMIM's measured pretraining compute (needs the budget stage)")
    parser.add_argument('--pretrain-epochs', type=int, default=1)
    parser.add_argument('--pretrain-images', type=int, default=None,
                        help='first N images of the training split (default: all of it)')
    parser.add_argument('--finetune-epochs', type=int, default=1)
    parser.add_argument('--finetune-images', type=int, default=None,
                        help='first N images of the training split (default: all of it)')
    parser.add_argument('--val-images', type=int, default=10000,
                        help='the last N of the 60k training images are the validation split')
    parser.add_argument('--val-eval-images', type=int, default=None,
                        help='validation images the sweep scores on (default: all)')
    parser.add_argument('--bank-images', type=int, default=None,
                        help='training images used as kNN bank and linear-probe training set '
                        '(default: the whole training split)')
    parser.add_argument('--test-images', type=int, default=TEST_IMAGES)
    parser.add_argument('--depth', type=int, default=None,
                        help="ViT layers of all arms (default: the configs' 6, "
                        'configs/_base_/models/vit-t-p4.py)')
    parser.add_argument('--proj-hid', type=int, default=None,
                        help="ConMIM projector width (default: the config's 512)")
    parser.add_argument('--monitor-images', type=int, nargs=2, default=[2000, 1000],
                        metavar=('BANK', 'VAL'),
                        help='images of the kNN monitor during pretraining (bank: training '
                        'split, queries: validation split)')
    parser.add_argument('--sweep', nargs='*', default=[], metavar='ARM:KEY=V1,V2,...',
                        help='one grid axis each, searched in the order given: ARM is a '
                        'pretrained arm (a pretraining override), ft (a fine-tuning override '
                        'chosen for every arm) or ft-ARM (for one arm); KEY a --cfg-options '
                        'key of the committed config, values comma-separated')
    parser.add_argument('--select-by', default='knn', choices=['knn', 'linear'],
                        help='validation score of the pretraining sweeps')
    parser.add_argument('--selection', default=None,
                        help='selection json the final stages use (default: '
                        '<work-dir>/selection.json when it exists)')
    parser.add_argument('--pretrain-options', nargs='*', default=[],
                        help='extra --cfg-options for every pretraining run (ablations)')
    parser.add_argument('--conmim-options', nargs='*', default=[],
                        help='extra --cfg-options for the ConMIM pretraining only')
    parser.add_argument('--plot', default=None,
                        help='PNG path (default: <work-dir>/fashion_mnist_benchmark.png)')
    parser.add_argument('--results-md', default=None,
                        help='also write the tables into this Markdown file, between the '
                        'lines <!-- results:begin --> and <!-- results:end -->')
    parser.add_argument('--results-json', default=None,
                        help='also write results.json here (e.g. docs/results.json)')
    parser.add_argument('--num-workers', type=int, default=1,
                        help='dataloader workers of the pretraining and fine-tuning runs')
    parser.add_argument('--batch-size', type=int, default=64,
                        help='batch of every training run (the configs: 64)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=['cpu', 'cuda'],
                        help='cuda: bf16 autocast and torch.compile in the training runs, and '
                        'the frozen stage encodes on the GPU; cpu: fp32, eager')
    parser.add_argument('--force', action='store_true', help='redo stages already done')
    args = parser.parse_args(argv)
    if not 0 < args.val_images < TRAIN_IMAGES:
        parser.error(f'--val-images {args.val_images}: must hold out between 1 and '
                     f'{TRAIN_IMAGES - 1} of the {TRAIN_IMAGES} training images')
    args.sweep_axes = [parse_axis(parser, spec) for spec in args.sweep]
    return args


def parse_axis(parser, spec):
    """``ARM:KEY=V1,V2`` -> dict(kind, arm, key, values)."""
    head, sep, rest = spec.partition(':')
    key, eq, values = rest.partition('=')
    values = [v for v in values.split(',') if v]
    if not sep or not eq or not key or not values:
        parser.error(f'--sweep {spec!r}: expected ARM:KEY=V1,V2,... (e.g. '
                     'conmim:optim_wrapper.optimizer.lr=5e-4,1e-3,2e-3)')
    if head in PRETRAINED:
        return dict(kind='pretrain', arms=[head], key=key, values=values)
    if head == 'ft':
        return dict(kind='finetune', arms=list(ARMS), key=key, values=values)
    if head.startswith('ft-') and head[3:] in ARMS:
        return dict(kind='finetune', arms=[head[3:]], key=key, values=values)
    parser.error(f'--sweep {spec!r}: {head!r} is none of {", ".join(PRETRAINED)}, ft, '
                 f'ft-<arm> ({", ".join(ARMS)})')


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def load_json(path, default=None):
    if osp.exists(path):
        with open(path) as f:
            return json.load(f)
    return default


def save_json(path, data):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path + '.part', 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(path + '.part', path)


@contextlib.contextmanager
def locked(path):
    """Serialise read-modify-write of ``path`` between runs sharing a work dir (stages and
    arms can run as parallel processes)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
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


def record_read(args, stage, run, dataset):
    """Log which split (and which of its images) a stage read: reads.json."""
    path = osp.join(args.work_dir, 'reads.json')
    with locked(path):
        data = load_json(path, [])
        data.append(dict(stage=stage, run=run, split=dataset.get('split'),
                         indices=dataset.get('indices'),
                         val_images=dataset.get('val_images')))
        save_json(path, data)


def train_images(args):
    return TRAIN_IMAGES - args.val_images


def iters(args, images, epochs):
    return math.ceil(images / args.batch_size) * epochs


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


def cfg_options(options):
    """``{key: value}`` -> the ``key=value`` strings of ``tools/train.py --cfg-options``."""
    return [f'{key}={value}' for key, value in options.items()]


def subset(images, full):
    """``indices`` of a dataset: None for all images, else the first ``images``."""
    return None if images is None or images >= full else images


def hook_index(config, hook_type='KNNMonitorHook'):
    hooks = committed_config(config).get('custom_hooks', [])
    found = [i for i, hook in enumerate(hooks) if hook['type'] == hook_type]
    if not found:
        raise SystemExit(f'{config} has no {hook_type} in custom_hooks.')
    return found[0]


def dataset_options(prefix, args, split, images):
    """Overrides of one SplitFashionMNIST dataset of a committed config."""
    full = dict(train=train_images(args), val=args.val_images, test=TEST_IMAGES)[split]
    options = {f'{prefix}.data_root': args.data_root, f'{prefix}.split': split,
               f'{prefix}.val_images': args.val_images,
               f'{prefix}.indices': subset(images, full)}
    if split != 'train':
        options[f'{prefix}.test_mode'] = split == 'test'
    return options


def device_options(args, arm=None):
    """What a training run changes with the device: batch and workers; on a GPU also bf16
    autocast (DeviceAmpOptimWrapper picks bf16 without a loss scaler) and torch.compile through
    the configs' CompileModelHook: ConMIM's compile_methods, the whole loss of MAE and SimMIM,
    the backbone (extract_feat) of the fine-tuning classifiers (``arm=None``)."""
    options = {
        'train_dataloader.batch_size': args.batch_size,
        'auto_scale_lr.base_batch_size': args.batch_size,  # the protocol's recipe batch
        'train_dataloader.num_workers': args.num_workers,
        'train_dataloader.persistent_workers': args.num_workers > 0,
    }
    if args.device == 'cuda':
        options['optim_wrapper.type'] = 'DeviceAmpOptimWrapper'
        options['train_dataloader.pin_memory'] = True
        options['compile'] = True
        if arm not in (None, 'conmim'):
            options['default_hooks.compile.methods'] = '[loss]'
    return options


def schedule_options(total, warm):
    return {'param_scheduler.0.end': warm, 'param_scheduler.1.begin': warm,
            'param_scheduler.1.end': total}


# ---------------------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------------------
def pretrain_options(args, arm, epochs=None, seed=0, extra=None):
    """The overrides that turn a committed pretraining config into one run."""
    epochs = epochs or args.pretrain_epochs
    images = min(args.pretrain_images or train_images(args), train_images(args))
    total = iters(args, images, epochs)
    interval = max(1, min(50, total // 40))
    hook = f'custom_hooks.{hook_index(CONFIGS[arm])}'
    bank, val = args.monitor_images
    options = {
        'train_cfg.max_epochs': epochs,
        **schedule_options(total, max(1, min(300, total // 4))),
        'default_hooks.logger.interval': interval,
        'log_processor.window_size': interval,
        'randomness.seed': seed,
        **device_options(args, arm),
        **dataset_options('train_dataloader.dataset', args, 'train', args.pretrain_images),
        **dataset_options(f'{hook}.bank_dataloader.dataset', args, 'train', bank),
        **dataset_options(f'{hook}.val_dataloader.dataset', args, 'val', val),
    }
    if args.depth:
        options['model.backbone.arch.num_layers'] = args.depth
    if arm == 'conmim' and args.proj_hid:
        options['model.neck.hid_channels'] = args.proj_hid
    options.update(extra or {})
    return options


def finetune_options(args, arm, checkpoint=None, seed=0, split='test', extra=None):
    """The overrides of the fine-tuning recipe for one run; ``split``: what it evaluates
    (the validation split in sweeps, the test images in final runs)."""
    images = min(args.finetune_images or train_images(args), train_images(args))
    total = iters(args, images, args.finetune_epochs)
    options = {
        'train_cfg.max_epochs': args.finetune_epochs,
        'train_cfg.val_interval': args.finetune_epochs,
        **schedule_options(total, max(1, min(200, total // 5))),
        'randomness.seed': seed,
        **device_options(args),
        **dataset_options('train_dataloader.dataset', args, 'train', args.finetune_images),
    }
    eval_images = args.test_images if split == 'test' else args.val_eval_images
    for loader in ('val_dataloader', 'test_dataloader'):
        options.update(dataset_options(f'{loader}.dataset', args, split, eval_images))
    if arm == 'random':
        options['model.backbone.init_cfg'] = None
    else:
        options['model.backbone.init_cfg.checkpoint'] = checkpoint
        options['model.backbone.init_cfg.prefix'] = CKPT_PREFIX[arm]
    if args.depth:
        options['model.backbone.arch.num_layers'] = args.depth
    options.update(extra or {})
    return options


@functools.lru_cache(maxsize=None)
def committed_config(config):
    """A committed config as read from disk (parsed once; callers get copies)."""
    from mmengine.config import Config
    return Config.fromfile(config)


def load_config(config, options):
    """A committed config with the overrides, as ``tools/train.py`` would build it."""
    from mmengine.config import DictAction
    cfg = copy.deepcopy(committed_config(config))
    # the values exactly as tools/train.py parses them from the command line
    cfg.merge_from_dict({key: DictAction._parse_iterable(value)
                         for key, value in (opt.split('=', 1)
                                            for opt in cfg_options(options))})
    return cfg


def config_datasets(cfg):
    """(where, dataset) of every dataset a config names: its loaders and its hooks' loaders."""
    found = [(key, cfg[key]['dataset']) for key in ('train_dataloader', 'val_dataloader',
                                                    'test_dataloader') if cfg.get(key)]
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        for key, value in hook.items():
            if key.endswith('dataloader') and isinstance(value, dict) and 'dataset' in value:
                found.append((f'custom_hooks.{i}.{key}', value['dataset']))
    return found


def record_run_reads(args, stage, config, work_dir, options):
    """Every dataset the run's config (committed config + overrides) is given: reads.json."""
    for where, dataset in config_datasets(load_config(config, options)):
        record_read(args, stage, f'{work_dir}:{where}', dataset)


def pretrain(args, arm, work_dir, options, stage):
    """One pretraining run (skipped when its last checkpoint exists): the checkpoint path."""
    ckpt = osp.join(work_dir, f'epoch_{options["train_cfg.max_epochs"]}.pth')
    if osp.exists(ckpt) and not args.force:
        print(f'[{stage}] {arm}: done ({ckpt})')
        return ckpt
    os.makedirs(work_dir, exist_ok=True)
    extra = list(args.pretrain_options) + (list(args.conmim_options) if arm == 'conmim' else [])
    record_run_reads(args, stage, CONFIGS[arm], work_dir, options)
    seconds = run_train(args, CONFIGS[arm], work_dir, cfg_options(options) + extra)
    record_time(args, osp.relpath(work_dir, args.work_dir), seconds)
    print(f'[{stage}] {arm}: {seconds / 60:.1f} min', flush=True)
    return ckpt


def finetune(args, arm, work_dir, options, stage):
    """One fine-tuning run: its last top-1 on the split it evaluates."""
    os.makedirs(work_dir, exist_ok=True)
    config = CONFIGS[FINETUNE_CONFIG[arm]]
    record_run_reads(args, stage, config, work_dir, options)
    seconds = run_train(args, config, work_dir, cfg_options(options))
    accs = [r['accuracy/top1'] for r in scalars(work_dir) if 'accuracy/top1' in r]
    if not accs:
        raise SystemExit(f'no accuracy/top1 in the logs of {work_dir}')
    record_time(args, osp.relpath(work_dir, args.work_dir), seconds)
    print(f'[{stage}] {arm}: top-1 {accs[-1]:.2f} ({seconds / 60:.1f} min)', flush=True)
    return accs[-1]


def build_model(args, arm, checkpoint=None, seed=0, overrides=None):
    """The pretraining model of an arm with its weights (random: the ConMIM model at its
    initialisation for ``seed``), built with the run's ``overrides`` (a sweep point or the
    selection: the projector width changes the model); the frozen stage reads its unpooled
    tokens."""
    import conmim_mm  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = pretrain_config(args, 'conmim' if arm == 'random' else arm,
                          None if arm == 'random' else overrides)
    if arm == 'simmim':  # tokens, not the decoder's feature map: same weights
        cfg.model.backbone.out_type = 'raw'
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if arm != 'random':
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    return model.to(args.device).eval(), cfg


def pretrain_config(args, arm, overrides=None):
    """The pretraining config of an arm with the overrides; its model takes the config's
    data_preprocessor (normalisation) as the Runner would give it."""
    cfg = load_config(CONFIGS[arm], pretrain_options(args, arm, extra=overrides))
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg


def split_loader(args, cfg, split, images):
    """A test-time loader over the first ``images`` of a split, from the config's dataset
    pieces (configs/_base_/datasets/fashion_mnist.py)."""
    from mmengine.runner import Runner
    base = dict(train=cfg.train_set, val=cfg.val_set, test=cfg.test_set)[split]
    full = dict(train=train_images(args), val=args.val_images, test=TEST_IMAGES)[split]
    dataset = dict(base, data_root=args.data_root, val_images=args.val_images,
                   indices=subset(images, full), pipeline=cfg.test_pipeline)
    return Runner.build_dataloader(dict(cfg.eval_loader, batch_size=1000, dataset=dataset))


def frozen_scores(args, arm, checkpoint, seed, query_split, stage, run, overrides=None):
    """kNN and linear-probe top-1 of an arm's frozen encoder: bank = training split, queries =
    ``query_split`` ('val' in sweeps, 'test' in final runs)."""
    from conmim_mm.evaluation import extract_features, knn_top1, linear_probe, make_encoder
    model, cfg = build_model(args, arm, checkpoint, seed, overrides)
    # the ConMIM recipe transfers the teacher; random = the student at its initialisation
    encode = make_encoder(model, 'teacher' if arm == 'conmim' else 'student', 'cls+mean+tokens')
    feats = {}
    query_images = args.test_images if query_split == 'test' else args.val_eval_images
    for split, images in (('train', args.bank_images), (query_split, query_images)):
        loader = split_loader(args, cfg, split, images)
        record_read(args, stage, run, dict(split=split, indices=loader.dataset._indices,
                                           val_images=args.val_images))
        feats[split] = extract_features(encode, loader, model.data_preprocessor)
    (train_f, train_y), (query_f, query_y) = feats['train'], feats[query_split]
    dim = model.backbone.embed_dims  # [cls, mean, every patch token in grid order]
    res = {}
    for pooling, part in (('mean', slice(dim, 2 * dim)), ('cls', slice(0, dim)),
                          ('tokens', slice(2 * dim, None))):
        res[f'knn_{pooling}'] = knn_top1(train_f[:, part], train_y, query_f[:, part], query_y,
                                         k=20, vote_temperature=0.07, num_classes=10)
        res[f'linear_{pooling}'] = linear_probe(train_f[:, part], train_y, query_f[:, part],
                                                query_y)
    return res


# ---------------------------------------------------------------------------------------
# selection (validation split only)
# ---------------------------------------------------------------------------------------
def short_hash(text):
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def point_tag(overrides):
    return ','.join(f'{k}={v}' for k, v in sorted(overrides.items())) or 'config'


def config_value(config, key):
    """The value at the dotted ``key`` of a committed config (KeyError when it has none)."""
    value = committed_config(config).to_dict()
    for part in key.split('.'):
        if isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(part)
    return value


def changed(config, overrides):
    """The overrides that change the committed config: a grid value equal to the config's
    is the config's own point, so coordinate search does not train it once per axis."""
    from mmengine.config import DictAction
    out = {}
    for key, value in overrides.items():
        try:
            same = DictAction._parse_iterable(value) == config_value(config, key)
        except KeyError:
            same = False
        if not same:
            out[key] = value
    return out


def budget_signature(args):
    keys = ('pretrain_epochs', 'pretrain_images', 'finetune_epochs', 'finetune_images',
            'val_images', 'val_eval_images', 'bank_images', 'depth', 'proj_hid',
            'monitor_images', 'batch_size', 'device', 'pretrain_options', 'conmim_options')
    return {key: getattr(args, key) for key in keys}


def sweep_point_tag(args, arm, overrides, seed):
    """The key of a pretraining point in sweep.json: arm, what it changes in the committed
    config, budget and seed (runs at another budget, data or architecture are other points)."""
    budget = f'{short_hash(json.dumps(budget_signature(args)))}:seed{seed}'
    return f'pretrain:{arm}:{point_tag(changed(CONFIGS[arm], overrides))}:{budget}'


def check_sweep_keys(args):
    """Every --sweep key must name a value of the committed config it overrides (a typo would
    silently add a key and sweep nothing)."""
    for axis in args.sweep_axes:
        configs = [CONFIGS[axis['arms'][0]]] if axis['kind'] == 'pretrain' else \
            sorted({CONFIGS[FINETUNE_CONFIG[arm]] for arm in axis['arms'] if arm in args.arms})
        for config in configs:
            try:
                config_value(config, axis['key'])
            except KeyError as missing:
                raise SystemExit(
                    f'--sweep {axis["key"]}: {osp.relpath(config, ROOT)} has no such value '
                    f'(no {missing}); name a key of the config, e.g. '
                    'optim_wrapper.optimizer.lr or train_dataloader.dataset.pipeline.<i>.'
                    'mask_ratio.') from None


def stage_sweep(args):
    """Coordinate search of the ``--sweep`` axes on the validation split."""
    check_sweep_keys(args)
    seed = args.seeds[0]
    path = osp.join(args.work_dir, 'sweep', 'sweep.json')
    done = load_json(path, {}) if not args.force else {}
    selection = dict(pretrain={}, finetune={}, grid=[], select_by=args.select_by,
                     seed=seed, val_images=args.val_images, budget=budget_signature(args))
    best_ckpt = {}

    # runs at another budget, data or architecture are other points
    budget = f'{short_hash(json.dumps(budget_signature(args)))}:seed{seed}'

    def pretrain_point(arm, overrides):
        overrides = changed(CONFIGS[arm], overrides)
        tag = sweep_point_tag(args, arm, overrides, seed)
        work_dir = osp.join(args.work_dir, 'sweep', f'pretrain_{arm}_{short_hash(tag)}')
        if not args.force:  # points that sweeps running in parallel have recorded since
            done.update(load_json(path, {}))
        if tag in done:
            return done[tag]
        options = pretrain_options(args, arm, seed=seed, extra=overrides)
        ckpt = pretrain(args, arm, work_dir, options, 'sweep')
        res = frozen_scores(args, arm, ckpt, seed, 'val', 'sweep', work_dir, overrides)
        done[tag] = dict(arm=arm, overrides=overrides, checkpoint=ckpt, run=work_dir,
                         knn=res['knn_mean'], linear=res['linear_mean'],
                         monitor=monitor_curve(work_dir, arm))
        update_json(path, tag, done[tag])
        return done[tag]

    for arm in PRETRAINED:
        if arm not in args.arms:
            continue
        chosen = {}
        for axis in [a for a in args.sweep_axes if a['kind'] == 'pretrain' and arm in a['arms']]:
            points = [pretrain_point(arm, dict(chosen, **{axis['key']: v}))
                      for v in axis['values']]
            scores = [p[args.select_by] for p in points]
            best = axis['values'][int(np.argmax(scores))]
            chosen[axis['key']] = best
            selection['grid'].append(dict(kind='pretrain', arm=arm, key=axis['key'],
                                          values=axis['values'], knn=[p['knn'] for p in points],
                                          linear=[p['linear'] for p in points], chosen=best))
        selection['pretrain'][arm] = chosen
        if any(a['kind'] == 'finetune' and arm in a['arms'] for a in args.sweep_axes):
            best_ckpt[arm] = pretrain_point(arm, chosen)['checkpoint']

    for arm in args.arms:
        chosen = {}
        for axis in [a for a in args.sweep_axes if a['kind'] == 'finetune' and arm in a['arms']]:
            accs = []
            for value in axis['values']:
                overrides = changed(CONFIGS[FINETUNE_CONFIG[arm]],
                                    dict(chosen, **{axis['key']: value}))
                pretrained = changed(CONFIGS[arm], selection['pretrain'][arm]) \
                    if selection['pretrain'].get(arm) else {}
                tag = f'finetune:{arm}:{point_tag(overrides)}:{point_tag(pretrained)}:{budget}'
                if not args.force:
                    done.update(load_json(path, {}))
                if tag not in done:
                    work_dir = osp.join(args.work_dir, 'sweep',
                                        f'finetune_{arm}_{short_hash(tag)}')
                    options = finetune_options(args, arm, best_ckpt.get(arm), seed, 'val',
                                               overrides)
                    done[tag] = dict(arm=arm, overrides=overrides, run=work_dir,
                                     top1=finetune(args, arm, work_dir, options, 'sweep'))
                    update_json(path, tag, done[tag])
                accs.append(done[tag]['top1'])
            best = axis['values'][int(np.argmax(accs))]
            chosen[axis['key']] = best
            selection['grid'].append(dict(kind='finetune', arm=arm, key=axis['key'],
                                          values=axis['values'], top1=accs, chosen=best))
        selection['finetune'][arm] = chosen
    save_json(osp.join(args.work_dir, 'selection.json'), selection)
    print('[sweep] selection:', json.dumps({k: selection[k] for k in ('pretrain', 'finetune')}))


def load_selection(args):
    path = args.selection or osp.join(args.work_dir, 'selection.json')
    if args.selection and not osp.exists(path):
        raise SystemExit(f'--selection {path} does not exist; run the sweep stage first.')
    return load_json(path, dict(pretrain={}, finetune={}, grid=[]))


# ---------------------------------------------------------------------------------------
# final runs (test images)
# ---------------------------------------------------------------------------------------
def final_dir(args, budget, seed):
    return osp.join(args.work_dir, budget, f'seed{seed}')


def pretrain_epochs(args, budget, arm):
    if budget == 'iters':
        return args.pretrain_epochs
    plan = load_json(osp.join(args.work_dir, 'budget.json'))
    if not plan or arm not in plan.get('compute', {}):
        raise SystemExit('--budgets compute needs the measured budget: run the iters budget '
                         'and the budget stage first (--stages pretrain budget).')
    return plan['compute'][arm]['epochs']


def run_budget(args, budget, arm):
    """The budget whose runs an arm's results under ``budget`` are: 'iters' for the random
    arm and for arms the compute budget gives the same epochs (the same runs), else
    ``budget``."""
    if budget == 'iters' or arm == 'random' or \
            pretrain_epochs(args, budget, arm) == args.pretrain_epochs:
        return 'iters'
    return budget


def final_pretrain(args, budget, seed, arm, selection):
    budget = run_budget(args, budget, arm)
    options = pretrain_options(args, arm, pretrain_epochs(args, budget, arm), seed,
                               selection['pretrain'].get(arm))
    work_dir = osp.join(final_dir(args, budget, seed), f'pretrain_{arm}')
    if budget == 'iters' and not args.force and not osp.lexists(work_dir):
        # the sweep's run of the chosen point at this budget and seed is this run: the final
        # run directory links to it (its logs, monitor and checkpoint)
        tag = sweep_point_tag(args, arm, selection['pretrain'].get(arm, {}), seed)
        point = load_json(osp.join(args.work_dir, 'sweep', 'sweep.json'), {}).get(tag)
        if point and osp.exists(point['checkpoint']):
            os.makedirs(final_dir(args, budget, seed), exist_ok=True)
            os.symlink(osp.relpath(point['run'], final_dir(args, budget, seed)), work_dir)
            print(f'[pretrain] {arm} seed {seed}: the sweep trained this run ({point["run"]})')
    return pretrain(args, arm, work_dir, options, 'pretrain')


def final_budgets(args):
    for budget in args.budgets:
        for seed in args.seeds:
            yield budget, seed


def stage_pretrain(args):
    selection = load_selection(args)
    for budget, seed in final_budgets(args):
        for arm in PRETRAINED:
            if arm in args.arms:
                final_pretrain(args, budget, seed, arm, selection)


def final_runs_to_do(args, stage, selection):
    """(budget, seed, arm, pretrained checkpoint, results path) of each final run of a stage
    that has no result yet (all with ``--force``); an arm whose budget equals another's is
    skipped: the same runs as under the iteration budget."""
    for budget, seed in final_budgets(args):
        path = osp.join(final_dir(args, budget, seed), f'{stage}.json')
        done = load_json(path, {})
        for arm in args.arms:
            if arm in done and not args.force:
                print(f'[{stage}] {budget} seed {seed} {arm}: done {done[arm]}')
                continue
            if run_budget(args, budget, arm) != budget:
                continue
            ckpt = None if arm == 'random' else final_pretrain(args, budget, seed, arm,
                                                               selection)
            yield budget, seed, arm, ckpt, path


def stage_frozen(args):
    selection = load_selection(args)
    for budget, seed, arm, ckpt, path in final_runs_to_do(args, 'frozen', selection):
        start = time.time()
        scores = frozen_scores(args, arm, ckpt, seed, 'test', 'frozen', path,
                               selection['pretrain'].get(arm))
        update_json(path, arm, scores)
        record_time(args, f'{budget}/seed{seed}/frozen_{arm}', time.time() - start)
        print(f'[frozen] {budget} seed {seed} {arm}: {scores}', flush=True)


def stage_finetune(args):
    selection = load_selection(args)
    for budget, seed, arm, ckpt, path in final_runs_to_do(args, 'finetune', selection):
        options = finetune_options(args, arm, ckpt, seed, 'test',
                                   selection['finetune'].get(arm))
        work_dir = osp.join(final_dir(args, budget, seed), f'finetune_{arm}')
        update_json(path, arm, dict(top1=finetune(args, arm, work_dir, options, 'finetune')))


def seconds_per_iter(work_dir):
    """Median logged ``time`` (s per training iteration) of a run, first window dropped."""
    times = [r['time'] for r in scalars(work_dir) if 'time' in r and 'loss' in r]
    if not times:
        raise SystemExit(f'no per-iteration time in the logs of {work_dir}: run its '
                         'pretraining first.')
    return statistics.median(times[1:] or times)


def stage_budget(args):
    """Equal measured compute: every arm pretrains as long as ConMIM (or the dearest arm)."""
    seed = args.seeds[0]
    arms = [arm for arm in PRETRAINED if arm in args.arms]
    speed = {arm: seconds_per_iter(osp.join(final_dir(args, 'iters', seed), f'pretrain_{arm}'))
             for arm in arms}
    reference = 'conmim' if 'conmim' in speed else max(speed, key=speed.get)
    images = min(args.pretrain_images or train_images(args), train_images(args))
    per_epoch = iters(args, images, 1)
    target = speed[reference] * per_epoch * args.pretrain_epochs
    plan = dict(reference=reference, device=args.device, seed=seed,
                measured='median logged s/iter of the equal-iteration pretraining runs',
                iters={}, compute={})
    for arm in arms:
        epochs = max(1, round(target / (speed[arm] * per_epoch)))
        plan['iters'][arm] = dict(epochs=args.pretrain_epochs,
                                  iters=per_epoch * args.pretrain_epochs,
                                  s_per_iter=round(speed[arm], 5),
                                  seconds=round(speed[arm] * per_epoch * args.pretrain_epochs,
                                                1))
        plan['compute'][arm] = dict(epochs=epochs, iters=per_epoch * epochs,
                                    s_per_iter=round(speed[arm], 5),
                                    seconds=round(speed[arm] * per_epoch * epochs, 1))
    save_json(osp.join(args.work_dir, 'budget.json'), plan)
    print('[budget]', json.dumps(plan['compute']))


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def monitor_curve(work_dir, arm):
    """[(epoch, kNN top-1 on the validation split)] of a pretraining run's monitor."""
    return [(r['epoch'], r[MONITOR[arm]]) for r in scalars(work_dir)
            if MONITOR[arm] in r and 'epoch' in r]


def mean_std(values):
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def fmt(values):
    mean, std = mean_std(values)
    if mean is None:
        return '-'
    return f'{mean:.2f} ± {std:.2f}' if len(values) > 1 else f'{mean:.2f}'


def collect_arms(args, budget):
    """{arm: {metric: [per seed]}} of one budget (``run_budget``: whose runs they are)."""
    arms = {}
    for arm in ARMS:
        source = run_budget(args, budget, arm) if arm in args.arms else budget
        row = {metric: [] for metric, _ in METRICS}
        for seed in args.seeds:
            frozen = load_json(osp.join(final_dir(args, source, seed), 'frozen.json'), {})
            tuned = load_json(osp.join(final_dir(args, source, seed), 'finetune.json'), {})
            if arm in frozen:
                row['knn_top1'].append(frozen[arm]['knn_mean'])
                row['linear_top1'].append(frozen[arm]['linear_mean'])
                if 'knn_tokens' in frozen[arm]:  # the layout-keeping readout
                    row['knn_tokens_top1'].append(frozen[arm]['knn_tokens'])
                    row['linear_tokens_top1'].append(frozen[arm]['linear_tokens'])
            if arm in tuned:
                row['finetune_top1'].append(tuned[arm]['top1'])
        if any(row.values()):
            arms[arm] = row
    return arms


def paired_gains(args, budget):
    """{arm: [per seed: fine-tune top-1 - random's]} for the pretrained arms, over the seeds
    both have: the random arm of the same seed shares the fine-tuning recipe, its seed and its
    data order (a seed missing in either arm is left out, never paired with another seed)."""
    gains = {}
    for seed in args.seeds:
        random = load_json(osp.join(final_dir(args, run_budget(args, budget, 'random'), seed),
                                    'finetune.json'), {}).get('random')
        for arm in PRETRAINED:
            if arm not in args.arms or random is None:
                continue
            tuned = load_json(osp.join(final_dir(args, run_budget(args, budget, arm), seed),
                                       'finetune.json'), {}).get(arm)
            if tuned is not None:
                gains.setdefault(arm, []).append(tuned['top1'] - random['top1'])
    return gains


def epoch_ranking(args, budget):
    """Per arm, the mean monitor kNN per pretraining epoch, and the first epoch from which
    the ranking of the arms no longer changes."""
    curves = {}
    for arm in PRETRAINED:
        if arm not in args.arms:
            continue
        source = run_budget(args, budget, arm)
        per_seed = [dict(monitor_curve(osp.join(final_dir(args, source, seed),
                                                f'pretrain_{arm}'), arm))
                    for seed in args.seeds]
        per_seed = [c for c in per_seed if c]
        if per_seed:
            epochs = sorted(set.intersection(*[set(c) for c in per_seed]))
            curves[arm] = {int(e): float(np.mean([c[e] for c in per_seed])) for e in epochs}
    common = sorted(set.intersection(*[set(c) for c in curves.values()])) if curves else []
    ranks = {e: sorted(curves, key=lambda a: -curves[a][e]) for e in common}
    stable = None
    for e in reversed(common):
        if ranks[e] != ranks[common[-1]]:
            break
        stable = e
    return dict(curves=curves, ranking={str(e): r for e, r in ranks.items()},
                stable_from_epoch=stable)


def stage_report(args):
    timings = load_json(osp.join(args.work_dir, 'timings.json'), {})
    selection = load_selection(args)
    plan = load_json(osp.join(args.work_dir, 'budget.json'), {})
    budgets = {b: collect_arms(args, b) for b in args.budgets}
    epochs = {b: epoch_ranking(args, b) for b in args.budgets}
    primary = args.budgets[0]
    budget = dict(plan, primary=primary, pretrain_epochs=args.pretrain_epochs,
                  finetune_epochs=args.finetune_epochs, batch_size=args.batch_size)
    if 'iters' not in plan:
        images = min(args.pretrain_images or train_images(args), train_images(args))
        budget['iters'] = {arm: dict(epochs=args.pretrain_epochs,
                                     iters=iters(args, images, args.pretrain_epochs))
                           for arm in PRETRAINED if arm in args.arms}
    results = dict(arms=budgets[primary], budget=budget, selection=selection,
                   budgets=budgets, seeds=args.seeds, epochs=epochs,
                   finetune_gain_over_random={b: paired_gains(args, b) for b in budgets},
                   splits=dict(train=train_images(args), val=args.val_images, test=TEST_IMAGES),
                   timings=timings, curves=loss_curves(args),
                   args={k: v for k, v in vars(args).items() if k != 'sweep_axes'})
    md = report_markdown(args, budgets, selection, epochs, budget)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(md + '\n')
    save_json(osp.join(args.work_dir, 'results.json'), results)
    if args.results_json:
        save_json(args.results_json, results)
    plot(args, budgets[primary], results['curves'])
    if args.results_md:
        update_markdown(args.results_md, md)
    print(md)


def loss_curves(args):
    curves = {}
    for arm in PRETRAINED:
        recs = scalars(osp.join(final_dir(args, 'iters', args.seeds[0]), f'pretrain_{arm}'))
        curves[arm] = dict(loss=[(r['step'], r['loss']) for r in recs if 'loss' in r],
                           knn=[(r['step'], r[MONITOR[arm]]) for r in recs if MONITOR[arm] in r])
    return curves


def report_markdown(args, budgets, selection, epochs, budget):
    seeds = ', '.join(map(str, args.seeds))
    lines = []
    for name, arms in budgets.items():
        title = dict(iters=f'equal iterations ({args.pretrain_epochs} pretraining epochs)',
                     compute='equal measured pretraining compute (wall-clock per iteration '
                     f'x iterations of {budget.get("reference", "conmim")})')[name]
        lines += [f'**Test split, {title}; mean ± std over seeds {seeds}.**', '',
                  '| weights | pretraining epochs | ' + ' | '.join(m for _, m in METRICS) + ' |',
                  '| --- | ---: |' + ' ---: |' * len(METRICS)]
        for arm, row in arms.items():
            ep = '-' if arm == 'random' else budget.get(name, {}).get(arm, {}).get('epochs', '-')
            lines.append(f'| {LABELS[arm]} | {ep} | '
                         + ' | '.join(fmt(row[m]) for m, _ in METRICS) + ' |')
        gains = paired_gains(args, name)
        if gains:
            lines += ['', 'Fine-tune top-1 minus random init, paired by seed (same recipe, seed '
                      'and data order): ' + '; '.join(f'{LABELS[arm]} {fmt(g)}'
                                                      for arm, g in gains.items()) + '.']
        lines.append('')
    if selection.get('grid'):
        lines += ['**Sweeps on the validation split** (one axis at a time, in order; seed '
                  f'{selection.get("seed", 0)}; pretraining scored by validation '
                  f'{selection.get("select_by", "knn")}, fine-tuning by validation top-1).', '',
                  '| arm | stage | key | value: score | chosen |',
                  '| --- | --- | --- | --- | --- |']
        for axis in selection['grid']:
            score = axis.get('top1') or axis[selection.get('select_by', 'knn')]
            cells = ', '.join(f'{v}: {s:.2f}' for v, s in zip(axis['values'], score))
            lines.append(f'| {LABELS[axis["arm"]]} | {axis["kind"]} | `{axis["key"]}` | '
                         f'{cells} | {axis["chosen"]} |')
        lines.append('')
    for name, found in epochs.items():
        if not found['curves']:
            continue
        common = sorted({e for c in found['curves'].values() for e in c})
        lines += [f'**kNN monitor on the validation split per pretraining epoch ({name} '
                  'budget, mean over seeds)**; ranking stable from epoch '
                  f'{found["stable_from_epoch"]}.', '',
                  '| arm | ' + ' | '.join(f'epoch {e}' for e in common) + ' |',
                  '| --- |' + ' ---: |' * len(common)]
        for arm, curve in found['curves'].items():
            lines.append(f'| {LABELS[arm]} | ' + ' | '.join(
                f'{curve[e]:.2f}' if e in curve else '-' for e in common) + ' |')
        lines.append('')
    return '\n'.join(lines).rstrip()


def update_markdown(path, table_md):
    begin, end = '<!-- results:begin -->', '<!-- results:end -->'
    text = open(path).read() if osp.exists(path) else f'{begin}\n{end}\n'
    if begin not in text or end not in text:
        raise SystemExit(f'{path} has no {begin} ... {end} block to fill.')
    head, rest = text.split(begin, 1)
    with open(path, 'w') as f:
        f.write(head + f'{begin}\n{table_md}\n{end}' + rest.split(end, 1)[1])
    print('updated', path)


def plot(args, arms, curves):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    pretrained = [arm for arm in PRETRAINED if arm in args.arms]
    fig, axes = plt.subplots(1, len(pretrained) + 1, figsize=(4.6 * (len(pretrained) + 1), 3.8))
    axes = np.atleast_1d(axes)
    colors = dict(random='#999999', conmim='#d62728', mae='#1f77b4', simmim='#2ca02c')
    for arm, ax in zip(pretrained, axes):
        loss = curves.get(arm, {}).get('loss', [])
        if loss:
            steps, values = zip(*loss)
            ax.plot(steps, values, color=colors[arm], marker='.', label='loss')
        knn = curves.get(arm, {}).get('knn', [])
        if knn:  # the KNNMonitorHook points, on a second axis
            twin = ax.twinx()
            steps, values = zip(*knn)
            twin.plot(steps, values, color='black', marker='o', linestyle='--',
                      label='kNN top-1 (monitor, val)')
            twin.set_ylabel('kNN top-1 (%)')
            twin.legend(fontsize=7, loc='upper right')
        ax.set_title(f'{LABELS[arm]} pretraining loss (seed {args.seeds[0]})')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    bars_ax = axes[-1]
    width = 0.8 / max(1, len(arms))
    for i, (arm, row) in enumerate(arms.items()):
        stats = [mean_std(row[m]) for m, _ in METRICS]
        means = [s[0] or 0 for s in stats]
        stds = [s[1] or 0 for s in stats]
        xs = np.arange(len(METRICS)) + (i - (len(arms) - 1) / 2) * width
        bars = bars_ax.bar(xs, means, width, yerr=stds, capsize=2, label=LABELS[arm],
                           color=colors[arm])
        for bar, v in zip(bars, means):
            if v:
                bars_ax.text(bar.get_x() + bar.get_width() / 2, v + 0.5, f'{v:.1f}',
                             ha='center', fontsize=6)
    bars_ax.set_xticks(np.arange(len(METRICS)))
    bars_ax.set_xticklabels(['kNN', 'linear probe', 'kNN, tokens', 'linear, tokens',
                             'fine-tune'], fontsize=7)
    low = min([v for row in arms.values() for m, _ in METRICS for v in row[m]] or [0])
    bars_ax.set_ylim(max(0, low - 10), 100)
    bars_ax.set_ylabel('top-1 on the test images (%)')
    bars_ax.legend(fontsize=7, loc='upper left')
    bars_ax.set_title(f'Fashion-MNIST, ViT-T/4, {len(args.seeds)} seed(s)')
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
                dict(argv=sys.argv if argv is None else argv,
                     args={k: v for k, v in vars(args).items() if k != 'sweep_axes'}))
    stages = dict(sweep=stage_sweep, pretrain=stage_pretrain, frozen=stage_frozen,
                  finetune=stage_finetune, budget=stage_budget, report=stage_report)
    for name in args.stages:
        start = time.time()
        stages[name](args)
        print(f'== stage {name}: {time.time() - start:.0f} s', flush=True)


if __name__ == '__main__':
    main()
