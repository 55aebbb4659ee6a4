"""Speed and memory of one detection training step: the model of a det config on synthetic data.

Builds ``model`` of the config (random weights: no checkpoint is read), makes ``--batch-size``
random images of ``--img-size`` squared with ``--boxes`` random boxes and box-shaped masks each,
and times full training steps (data preprocessor with the config's batch augments, backbone,
pyramid, RPN, box and mask heads, losses, backward, the config's optimiser on the CPU as a plain
fp32 ``OptimWrapper``, ``AmpOptimWrapper`` with fp16 on the GPU). Reports the median step time,
images/s and the peak memory: on the GPU ``torch.cuda.max_memory_allocated``, on the CPU the
peak resident set size above the size before the model was built (weights, gradients, optimiser
state, activations). The last line is ``img_per_s=<x> peak_mib=<y>``.

Example (the docs/benchmarks.md line: ViT-B ViTDet at 1024x1024, batch 2, CPU)::

    python tools/analysis/benchmark_det.py \
        configs/det/conmim_vit-b_vitdet_mask-rcnn_lsj-100e_coco.py \
        --img-size 1024 --batch-size 2 --warmup 1 --iters 2
"""
import argparse
import resource
import statistics
import time

import numpy as np
import torch
from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a config of configs/det/')
    parser.add_argument('--img-size', type=int, default=1024)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--boxes', type=int, default=8, help='objects per image')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=2)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--no-checkpoint', action='store_true',
                        help='turn activation checkpointing off (configs turn it on)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config values, as tools/train.py')
    return parser.parse_args(argv)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic_batch(batch_size: int, size: int, boxes: int, seed: int = 0) -> dict:
    """What the LSJ pipeline hands the data preprocessor: uint8 images and packed samples."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=gen))
        xy = torch.rand(boxes, 2, generator=gen) * size * 0.7
        wh = (torch.rand(boxes, 2, generator=gen) * 0.25 + 0.05) * size
        bboxes = torch.cat((xy, (xy + wh).clamp(max=size - 1)), dim=1)
        masks = np.zeros((boxes, size, size), dtype=np.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, bboxes.round().int().tolist()):
            mask[y0:y1, x0:x1] = 1
        gt = InstanceData(bboxes=HorizontalBoxes(bboxes),
                          labels=torch.randint(0, 80, (boxes, ), generator=gen),
                          masks=BitmapMasks(masks, size, size))
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1., 1.), flip=False))
        sample.gt_instances = gt
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    import_modules_from_strings(**cfg.custom_imports)
    from mmdet.registry import MODELS
    device = torch.device(args.device)
    before = peak_rss_mib()
    cfg.model.backbone.init_cfg = None  # random weights: speed and memory do not depend on them
    if args.no_checkpoint:
        cfg.model.backbone.use_checkpoint = False
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.to(device).train()
    optim_cfg = cfg.optim_wrapper.copy()
    if device.type == 'cpu':
        optim_cfg.type = 'OptimWrapper'
        optim_cfg.pop('loss_scale', None)
    else:
        optim_cfg.update(type='AmpOptimWrapper', dtype='float16')
    with DefaultScope.overwrite_default_scope('mmdet'):
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    data = synthetic_batch(args.batch_size, args.img_size, args.boxes)

    times = []
    for step in range(args.warmup + args.iters):
        if device.type == 'cuda':
            torch.cuda.synchronize()
            if step == args.warmup:
                torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        losses = model.train_step(data, optim_wrapper)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        loss = sum(v.item() for k, v in losses.items() if 'loss' in k)
        print(f'step {step}: {elapsed:.2f} s, loss {loss:.3f}'
              + (' (warm-up)' if step < args.warmup else ''), flush=True)
        if step >= args.warmup:
            times.append(elapsed)
    step_time = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == 'cuda'
            else peak_rss_mib() - before)
    backbone = cfg.model.backbone
    print(f'{backbone.type} {backbone.arch} {args.img_size}x{args.img_size}, batch '
          f'{args.batch_size}, {device.type}, checkpointing {bool(backbone.get("use_checkpoint"))}'
          f', {torch.get_num_threads()} threads: {step_time:.2f} s/step')
    print(f'img_per_s={args.batch_size / step_time:.3f} peak_mib={peak:.0f}')


if __name__ == '__main__':
    main()
