"""Throughput of the ConMIM pretraining data pipeline on the CPU, per transform and per worker.

Writes ``--num-images`` synthetic photo-like JPEGs (about 500x375, in a temporary folder),
then, for each pipeline:

1. runs it in this process over every image, timing each transform, the transforms nested
   in ``MultiView`` and ``RandomApply`` too (CPU time of this process, one thread: what one
   worker core spends), and the collation of the batches; the pipelines take turns image by
   image, so that other load on the machine weighs on all of them alike;
2. iterates a DataLoader built as the Runner builds it (no model) with each ``--workers``
   count, and reports images/s and images/s per worker (wall clock).

The pipelines:

* ``before``: the training pipeline of ``configs/_base_/datasets/imagenet_conmim.py`` before
  issue 15, both views built by the workers with mmpretrain's transforms;
* ``cpu_views``: the config's ``cpu_views_pipeline`` (the same views on the CPU, the switch
  that stays available);
* ``device_views``: the config's ``train_pipeline``: one crop, its mask and the teacher's
  drawn parameters; ``ConMIMDataPreprocessor`` builds the two views on the device. Its
  device-side cost (eager, on this CPU) is timed separately, per batch.

The last line printed is ``speedup=<device_views img/s per core / before img/s per core>``
at ``--img-size`` (224 by default), both measured in this run.

Example::

    python tools/analysis/benchmark_data.py                       # 300 images, 0/1/2 workers
    python tools/analysis/benchmark_data.py --workers 4 8 14 --num-images 2000   # a big host
"""
import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

CONFIG = os.path.join(ROOT, 'configs/_base_/datasets/imagenet_conmim.py')

# The training pipeline of imagenet_conmim.py before issue 15 (commit 766b3ef).
BEFORE = [
    dict(type='LoadImageFromFileOrSkip', max_unreadable_share=0.01),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0),
         aspect_ratio_range=(3. / 4., 4. / 3.), interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiView', num_views=[1, 1], transforms=[[], [
        dict(type='RandomApply', transforms=[dict(type='ColorJitter', brightness=0.4,
                                                  contrast=0.4, saturation=0.2, hue=0.1)],
             prob=0.8),
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
             channel_weights=(0.114, 0.587, 0.2989)),
        dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.1),
        dict(type='Solarize', thr=128, prob=0.2),
    ]]),
    dict(type='ConMIMMaskGenerator', patch_size=16, strategy='block', mask_ratio=75 / 196,
         min_num_patches=16, input_size=224),
    dict(type='PackInputs'),
]


def write_jpegs(folder: str, num: int, seed: int = 0) -> None:
    """Photo-like JPEGs of about 500x375: smooth colour fields with edges, texture and noise
    (quality 90, ~50-80 KiB each, decoding costs what a real photo of that size costs)."""
    from PIL import Image
    os.makedirs(os.path.join(folder, 'train', 'n0'), exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(num):
        w, h = int(rng.integers(460, 541)), int(rng.integers(340, 411))
        coarse = rng.integers(0, 256, (h // 24 + 2, w // 24 + 2, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.int16)
        yy, xx = np.mgrid[:h, :w]
        stripes = (np.sin(xx / rng.uniform(2, 9) + yy / rng.uniform(3, 11)) * 18)[..., None]
        noise = rng.normal(0, 6, (h, w, 3))
        img = np.clip(field + stripes + noise, 0, 255).astype(np.uint8)
        name = f'n0/img_{i:05d}.JPEG'
        Image.fromarray(img).save(os.path.join(folder, 'train', name), quality=90)
        lines.append(f'{name} 0')
    os.makedirs(os.path.join(folder, 'meta'), exist_ok=True)
    with open(os.path.join(folder, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def resized(pipeline, img_size: int):
    """The pipeline at another crop size (crop and mask grid follow)."""
    pipeline = copy.deepcopy(pipeline)
    for step in pipeline:
        if step['type'].endswith('RandomResizedCrop'):
            step['scale'] = img_size
        if step['type'] == 'ConMIMMaskGenerator':
            step['input_size'] = img_size
    return pipeline


def build_dataset(pipeline, data_root: str):
    from mmpretrain.registry import DATASETS
    return DATASETS.build(dict(type='ImageNet', data_root=data_root, split='train',
                               pipeline=pipeline))


def _label(transform) -> str:
    name = type(transform).__name__
    inner = getattr(transform, 'transforms', None)  # RandomApply: name what it applies
    if name == 'RandomApply' and inner is not None:
        name += '(' + ', '.join(type(t).__name__ for t in getattr(inner, 'transforms', [])) + ')'
    return name


def _instrument(transform, label: str, spent: dict, clock) -> None:
    """Time ``transform`` (and the transforms it wraps, under ``label > ...``) into
    ``spent``: its ``transform`` method is shadowed by a timing one (once)."""
    if 'transform' in vars(transform):  # reachable twice (MultiView keeps two references)
        return
    method = transform.transform
    spent[label] += 0.  # printed in pipeline order, a wrapper before what it wraps

    def timed(results):
        start = clock()
        out = method(results)
        spent[label] += clock() - start
        return out

    transform.transform = timed
    for attr in ('pipelines', 'transforms'):  # MultiView's views, RandomApply's Compose
        inner = getattr(transform, attr, None)
        for sub in ([inner] if hasattr(inner, 'transforms') else inner or []):
            for step in getattr(sub, 'transforms', [sub]):
                if hasattr(step, 'transform'):
                    _instrument(step, f'{label} > {_label(step)}', spent, clock)


def time_transforms(datasets: dict, batch_size: int, rounds: int):
    """CPU seconds per image of every transform (nested ones too, under ``parent > child``)
    and of the collation, in this process, one dict per pipeline. The pipelines take turns
    image by image, so that the load of the machine weighs on all of them alike."""
    from mmengine.dataset import default_collate
    clock = time.process_time
    spent = {name: defaultdict(float) for name in datasets}
    tops = {}
    for name, dataset in datasets.items():
        tops[name] = [_label(t) for t in dataset.pipeline.transforms]
        for transform, label in zip(dataset.pipeline.transforms, tops[name]):
            _instrument(transform, label, spent[name], clock)
    num = min(len(dataset) for dataset in datasets.values())
    batches = {name: [] for name in datasets}
    for _ in range(rounds):
        for index in range(num):
            for name, dataset in datasets.items():
                results = dataset.get_data_info(index)
                for transform in dataset.pipeline.transforms:
                    results = transform(results)
                batches[name].append(results)
                if len(batches[name]) == batch_size or index == num - 1:
                    start = clock()
                    default_collate(batches[name])
                    spent[name]['collate'] += clock() - start
                    batches[name] = []
    costs = {}
    for name in datasets:
        costs[name] = {label: seconds / (num * rounds) for label, seconds in spent[name].items()}
        costs[name]['total'] = sum(costs[name][label] for label in tops[name] + ['collate'])
    return costs


def time_loader(dataset, batch_size: int, num_workers: int, epochs: int):
    """Images/s of a DataLoader built like the Runner's, after its first batch."""
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(dict(
        batch_size=batch_size, num_workers=num_workers, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'), dataset=dataset), seed=0)
    images, elapsed = 0, 0.
    for _ in range(epochs):
        start = None
        for batch in loader:
            if start is None:  # workers start and fill their queues: not steady state
                start = time.perf_counter()
                continue
            images += len(batch['data_samples'])
        elapsed += time.perf_counter() - start
    return images / elapsed


def time_device_views(dataset, batch_size: int, repeats: int = 3):
    """Seconds per image ConMIMDataPreprocessor spends on this CPU (eager), per batch."""
    import torch
    from mmengine.dataset import default_collate
    from mmpretrain.registry import MODELS
    preprocessor = MODELS.build(dict(type='ConMIMDataPreprocessor', mean=[123.675, 116.28,
                                     103.53], std=[58.395, 57.12, 57.375], to_rgb=True))
    batch = [dataset[i % len(dataset)] for i in range(batch_size)]
    best = float('inf')
    for _ in range(repeats):
        data = default_collate(copy.deepcopy(batch))
        start = time.process_time()
        with torch.no_grad():
            preprocessor(data, training=True)
        best = min(best, time.process_time() - start)
    return best / batch_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num-images', type=int, default=300)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, nargs='*', default=[0, 1, 2],
                        help='DataLoader worker counts to time (0: in this process)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='passes over the images when timing the transforms')
    parser.add_argument('--loader-epochs', type=int, default=1)
    parser.add_argument('--data-root', help='reuse (or keep) the JPEGs in this folder')
    parser.add_argument('--json', help='write every number to this file')
    args = parser.parse_args()

    import cv2
    import torch
    cv2.setNumThreads(1)  # one core per worker, as the Runner sets it (opencv_num_threads)
    torch.set_num_threads(1)
    import conmim_mm  # noqa: F401  (registers the transforms)
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('benchmark_data', scope_name='mmpretrain')

    cfg = Config.fromfile(CONFIG)
    pipelines = dict(before=BEFORE, cpu_views=cfg.cpu_views_pipeline,
                     device_views=cfg.train_pipeline)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root or tmp
        if not os.path.exists(os.path.join(data_root, 'meta', 'train.txt')):
            start = time.perf_counter()
            write_jpegs(data_root, args.num_images)
            print(f'wrote {args.num_images} JPEGs in {time.perf_counter() - start:.1f} s')
        sizes = [os.path.getsize(os.path.join(data_root, 'train', 'n0', name))
                 for name in sorted(os.listdir(os.path.join(data_root, 'train', 'n0')))]
        print(f'{len(sizes)} JPEGs, mean {np.mean(sizes) / 1024:.0f} KiB; crops at '
              f'{args.img_size}x{args.img_size}, batch {args.batch_size}')

        report = dict(args=vars(args), transforms={}, loader={}, per_core={})
        datasets = {name: build_dataset(resized(pipeline, args.img_size), data_root)
                    for name, pipeline in pipelines.items()}
        np.random.seed(0)
        costs = time_transforms(datasets, args.batch_size, args.rounds)
        for name, dataset in datasets.items():
            total = costs[name].pop('total')
            report['transforms'][name] = costs[name]
            report['per_core'][name] = 1 / total
            print(f'\n[{name}] one core: {1 / total:.0f} img/s ({total * 1e3:.2f} ms/img)')
            for step, seconds in costs[name].items():
                indent = '    ' * step.count(' > ')
                label = indent + step.split(' > ')[-1]
                print(f'  {label:<44} {seconds * 1e3:7.3f} ms/img {1 / seconds:9.0f} img/s '
                      f'{100 * seconds / total:5.1f} %')
            if name == 'device_views':
                device = time_device_views(dataset, args.batch_size)
                report['device_views_preprocessor_cpu_s_per_img'] = device
                print(f'  (ConMIMDataPreprocessor on this CPU, eager, batch {args.batch_size}:'
                      f' {device * 1e3:.2f} ms/img in the main process, not in the workers)')
        for name, pipeline in pipelines.items():
            dataset = build_dataset(resized(pipeline, args.img_size), data_root)
            for workers in args.workers:
                rate = time_loader(dataset, args.batch_size, workers, args.loader_epochs)
                report['loader'][f'{name}/{workers}'] = rate
                print(f'[{name}] DataLoader, {workers} worker(s): {rate:7.0f} img/s, '
                      f'{rate / max(workers, 1):6.0f} img/s per worker')
    speedup = report['per_core']['device_views'] / report['per_core']['before']
    report['speedup'] = speedup
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    print(f'\nimg/s per core at {args.img_size}^2: before {report["per_core"]["before"]:.0f}, '
          f'cpu_views {report["per_core"]["cpu_views"]:.0f}, '
          f'device_views {report["per_core"]["device_views"]:.0f}')
    print(f'speedup={speedup:.2f}')


if __name__ == '__main__':
    main()
