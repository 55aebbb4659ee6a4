"""Speed and memory of one ConMIM training step: this package against stock mmpretrain parts.

Both sides run the same algorithm on the same shapes: the student encodes the masked view
(mask token), the teacher (an EMA of backbone + projector) encodes the full view, every token
goes through the 3-layer projector, the intra-image InfoNCE is taken over the masked patches,
then backward, AdamW and the EMA update. What differs is only the implementation:

* ``ours``: ``ConMIM`` + ``ConMIMViT`` (SDPA attention) + ``FusedCosineEMA`` from ``conmim_mm``;
* ``stock``: the same ``ConMIM`` class built from stock mmpretrain parts: ``BEiTPretrainViT``
  (explicit softmax attention) and ``CosineEMA`` (``stock_teacher``), with
  torch's default AdamW; projector and loss are shared, so the maths is the same by
  construction.

``--mode runner`` times the command users run instead: ``tools/train.py``'s path (Runner, the
config's data pipeline on synthetic JPEGs in the ImageNet layout, data preprocessor, optimiser
wrapper, hooks, logging) and reports images/s, data time and MFU with the FLOP count of the
step mode; ``--mode both`` prints the two side by side.

Timing alternates the two models in one process after warm-up, so both see the same machine
load. Peak memory: on the GPU ``torch.cuda.max_memory_allocated`` around the timed steps; on
the CPU each model trains in a fresh subprocess and the peak resident set size
(``ru_maxrss``) above the process's size after the imports is reported (model, gradients,
optimiser state and activations; the interpreter and libraries are excluded).

The last line printed is ``speedup=<x> memory_ratio=<y>`` (ours relative to stock: speedup is
the ratio of images/s, memory_ratio ours / stock).

Examples::

    python tools/analysis/benchmark_pretrain.py --case vit-s-224        # CPU, < 1 minute
    python tools/analysis/benchmark_pretrain.py --case vit-s-512        # CPU, 1024 tokens
    python tools/analysis/benchmark_pretrain.py --case vit-b-224-gpu    # CUDA, bf16, MFU
    python tools/analysis/benchmark_pretrain.py --case vit-b-224-gpu --mode both --compile
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ARCHS = ('tiny', 'small', 'base', 'large')  # sizes of ConMIMViT.arch_zoo
CASES = {
    'vit-s-224': dict(arch='small', img_size=224, batch_size=8, device='cpu', amp=None,
                      warmup=1, iters=3),
    'vit-s-512': dict(arch='small', img_size=512, batch_size=2, device='cpu', amp=None,
                      warmup=1, iters=3),
    'vit-b-224-gpu': dict(arch='base', img_size=224, batch_size=64, device='cuda', amp='bf16',
                          warmup=5, iters=20),
}
# Dense bf16 tensor-core peak (FLOP/s) used for the model FLOP utilisation.
PEAK_FLOPS = {'H100': 989.4e12, 'H200': 989.4e12, 'A100': 312e12}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--case', choices=sorted(CASES), default='vit-s-224')
    parser.add_argument('--arch', choices=sorted(ARCHS), help='override the case')
    parser.add_argument('--num-layers', type=int, help='override the depth')
    parser.add_argument('--img-size', type=int)
    parser.add_argument('--patch-size', type=int, default=16)
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--hid-channels', type=int, default=4096, help='projector width')
    parser.add_argument('--out-channels', type=int, default=256, help='projector output')
    parser.add_argument('--mask-ratio', type=float, default=75 / 196)
    parser.add_argument('--device', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'])
    parser.add_argument('--warmup', type=int, help='untimed steps per model')
    parser.add_argument('--iters', type=int, help='timed steps per model')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')
    parser.add_argument('--checkpoint', action='store_true',
                        help='ours: activation checkpointing (ConMIMViT use_checkpoint)')
    parser.add_argument('--compile', action='store_true',
                        help='ours: torch.compile ConMIM.contrastive_loss (student and teacher '
                        'encoders and the InfoNCE, one graph); runner mode: compile=True')
    parser.add_argument('--compile-backend', default='inductor',
                        help="torch.compile backend ('eager'/'aot_eager' for quick dry runs)")
    parser.add_argument('--fused-adamw', action=argparse.BooleanOptionalAction, default=True,
                        help="ours: AdamW(fused=True), as the pretraining configs set it "
                        "(stock keeps torch's default AdamW); --no-fused-adamw turns it off")
    parser.add_argument('--memory', choices=['auto', 'none'], default='auto',
                        help="'none' skips the peak-memory measurement")
    parser.add_argument('--peak-tflops', type=float, help='accelerator peak for the MFU')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the results to this JSON file')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='after timing, profile 3 steps of ours and print its N most '
                        'expensive operators (self device time on a GPU, self CPU time '
                        'otherwise)')
    parser.add_argument('--mode', choices=['step', 'runner', 'both'], default='step',
                        help="step: the training step alone, ours vs stock; runner: "
                        "tools/train.py's path (a Runner with the config's data pipeline, data "
                        "preprocessor, optimiser wrapper, hooks and logging) on synthetic JPEGs "
                        "in the ImageNet layout; both: the two, side by side")
    parser.add_argument('--config', help='runner mode: the pretraining config (default: '
                        'configs/pretrain/conmim_vit-{s,b,l}.py by --arch)')
    parser.add_argument('--workers', type=int, help='runner mode: dataloader workers '
                        '(default: CPU cores - 2, at most 14)')
    parser.add_argument('--data-root', help='runner mode: where the synthetic JPEGs go '
                        '(default: a temporary folder, removed afterwards)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='runner mode: extra key=value overrides, as for tools/train.py')
    parser.add_argument('--probe', choices=['ours', 'stock'], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key, value in CASES[args.case].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.amp == 'none':
        args.amp = None
    if args.img_size % args.patch_size:
        parser.error('--img-size must be a multiple of --patch-size')
    if args.profile and args.mode == 'runner':
        parser.error('--profile profiles the training step: use --mode step or --mode both')
    if args.json:  # before the run: a folder that is missing would only fail at its end
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    return args


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------
# The two implementations
# ---------------------------------------------------------------------------------------
def arch_settings(args) -> dict:
    """``ConMIMViT.arch_zoo``'s entry for ``--arch``, with ``--num-layers`` applied."""
    from conmim_mm.models import ConMIMViT
    arch = dict(ConMIMViT.arch_zoo[args.arch])
    if args.num_layers:
        arch['num_layers'] = args.num_layers
    return arch


def backbone_kwargs(args):
    return dict(
        arch=arch_settings(args),
        img_size=args.img_size, patch_size=args.patch_size, out_type='raw', final_norm=True,
        layer_scale_init_value=0.1, use_abs_pos_emb=False, use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True)


def neck_cfg(args):
    return dict(type='NonLinearNeck', in_channels=arch_settings(args)['embed_dims'],
                hid_channels=args.hid_channels, out_channels=args.out_channels, num_layers=3,
                with_bias=False, with_last_bn=True, with_last_bn_affine=False,
                with_avg_pool=False, norm_cfg=dict(type='BN1d'))


def build_ours(args):
    import conmim_mm  # noqa: F401  (registers ConMIM)
    from mmpretrain.registry import MODELS
    model = MODELS.build(dict(
        type='ConMIM',
        backbone=dict(type='ConMIMViT', use_checkpoint=args.checkpoint, **backbone_kwargs(args)),
        neck=neck_cfg(args),
        head=dict(type='ConMIMHead', temperature=0.1),
        base_momentum=0.004, end_momentum=0.))
    model.init_weights()
    if args.compile:  # student + teacher encoders + InfoNCE as one graph
        import torch
        model.contrastive_loss = torch.compile(model.contrastive_loss, fullgraph=True,
                                               backend=args.compile_backend)
    return model


def stock_teacher(model):
    """mmpretrain's ``CosineEMA`` (per-tensor loop) in place of ``model``'s ``FusedCosineEMA``
    teacher: same schedule, state and checkpoint keys (it copies the student's BatchNorm
    statistics at every update, ``FusedCosineEMA(keep_buffers=False)``)."""
    from mmpretrain.models.utils import CosineEMA
    fused = model.teacher
    model.teacher = CosineEMA(model._student(), momentum=fused.momentum,
                              end_momentum=fused.end_momentum)
    return model


def build_stock(args):
    """The same ``ConMIM`` built from stock mmpretrain parts: ``BEiTPretrainViT`` (explicit
    softmax attention) and ``CosineEMA`` (per-tensor loop); projector and loss are shared, so
    the maths is the same by construction."""
    import conmim_mm  # noqa: F401
    from mmpretrain.registry import MODELS
    model = stock_teacher(MODELS.build(dict(
        type='ConMIM',
        backbone=dict(type='BEiTPretrainViT', **backbone_kwargs(args)),
        neck=neck_cfg(args),
        head=dict(type='ConMIMHead', temperature=0.1),
        base_momentum=0.004, end_momentum=0.)))
    model.init_weights()
    return model


def make_batch(args, device):
    import torch
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(args.seed)
    B, S, P = args.batch_size, args.img_size, args.patch_size
    student = torch.randn(B, 3, S, S, generator=g).to(device)
    teacher = torch.randn(B, 3, S, S, generator=g).to(device)
    L = (S // P) ** 2
    n_mask = max(1, round(args.mask_ratio * L))
    samples = []
    for _ in range(B):
        mask = torch.zeros(L, dtype=torch.bool)
        mask[torch.randperm(L, generator=g)[:n_mask]] = True
        samples.append(DataSample().set_mask(mask.view(S // P, S // P).to(device)))
    return [student, teacher], samples


class Trainer:
    """One model, its AdamW and a ``step()`` that runs a full training iteration."""

    def __init__(self, name, args, device):
        import torch
        self.name, self.args, self.device = name, args, device
        self.model = (build_ours if name == 'ours' else build_stock)(args).to(device).train()
        kwargs = dict(lr=1e-4, betas=(0.9, 0.98), weight_decay=0.05)
        if name == 'ours' and args.fused_adamw:
            kwargs['fused'] = True
        params = [p for n, p in self.model.named_parameters()
                  if p.requires_grad and not n.startswith('teacher.')]
        self.optimizer = torch.optim.AdamW(params, **kwargs)
        self.inputs, self.samples = make_batch(args, device)
        self.amp_dtype = dict(bf16=torch.bfloat16, fp16=torch.float16).get(args.amp)
        self.scaler = torch.amp.GradScaler('cuda') if args.amp == 'fp16' else None
        self.last_loss = None

    def step(self):
        import torch
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            loss = self.model.loss(self.inputs, self.samples)['loss']
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.last_loss = loss.detach()

    def state_bytes(self):
        """Bytes this trainer holds between steps: weights, buffers, gradients, AdamW state,
        the batch."""
        tensors = list(self.model.parameters()) + list(self.model.buffers()) + self.inputs
        tensors += [p.grad for p in self.model.parameters() if p.grad is not None]
        tensors += [v for state in self.optimizer.state.values() for v in state.values()
                    if hasattr(v, 'nbytes')]
        seen, total = set(), 0
        for t in tensors:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.nbytes
        return total


def setup(args):
    import torch
    from mmengine.logging import MessageHub
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    MessageHub.get_current_instance().update_info('max_iters', 10000)  # the EMA schedule
    device = torch.device(args.device)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise SystemExit('This case needs a CUDA device; none is available.')
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def sync(device):
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------
def probe_memory(args):
    """(Subprocess) peak RSS of two training steps above the post-import baseline."""
    import torch  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import conmim_mm  # noqa: F401
    device = setup(args)
    base = rss_bytes()
    trainer = Trainer(args.probe, args, device)
    for _ in range(2):  # the second step holds AdamW state and activations at once
        trainer.step()
    print(json.dumps(dict(peak_bytes=peak_rss_bytes() - base,
                          loss=float(trainer.last_loss))))


def cpu_peak_memory(args, argv):
    """Run the two probes (one per implementation) side by side in fresh interpreters."""
    procs = {}
    for name in ('ours', 'stock'):
        paths = [ROOT, os.environ.get('PYTHONPATH')]  # no empty entry: it means the cwd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
        procs[name] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *argv, '--probe', name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    peaks = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f'memory probe for {name} failed:\n{err[-3000:]}')
        peaks[name] = json.loads(out.strip().splitlines()[-1])['peak_bytes']
    return peaks


def count_flops(trainer):
    """FLOPs of one training step (forward + backward; the optimiser and EMA are ignored)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step()
    return counter.get_total_flops()


def profile_steps(trainer, device, top):
    """Where one of our training steps spends its time, operator by operator."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for _ in range(3):
            trainer.step()
        sync(device)
    key = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(f'--- profile of 3 steps of {trainer.name} (top {top} by {key}) ---')
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=60))


def peak_flops(args, device):
    import torch
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_FLOPS.items():
        if key in name:
            return value
    return None


def step_benchmark(args, argv):
    """Ours against stock, training step alone, alternating in one process."""
    import torch
    device = setup(args)
    peaks = None
    if args.memory != 'none' and device.type == 'cpu':
        peaks = cpu_peak_memory(args, argv)  # before timing, so it does not load the cores

    trainers = [Trainer(name, args, device) for name in ('ours', 'stock')]
    for trainer in trainers:
        for _ in range(args.warmup):
            trainer.step()
    sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    times = {t.name: [] for t in trainers}
    gpu_peaks = {}
    for i in range(args.iters):
        order = trainers if i % 2 == 0 else trainers[::-1]  # alternate who goes first
        for trainer in order:
            if device.type == 'cuda':
                sync(device)
                before = torch.cuda.memory_allocated(device)
                own = trainer.state_bytes()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            trainer.step()
            sync(device)
            times[trainer.name].append(time.perf_counter() - start)
            if device.type == 'cuda':
                # This model's own peak: what it holds plus its step's transient memory (the
                # other model, resident in the same process, is left out).
                gpu_peaks[trainer.name] = max(
                    gpu_peaks.get(trainer.name, 0),
                    torch.cuda.max_memory_allocated(device) - before + own)
    if device.type == 'cuda':
        peaks = gpu_peaks

    results = dict(case=args.case, device=str(device), arch=args.arch,
                   num_layers=arch_settings(args)['num_layers'], img_size=args.img_size,
                   batch_size=args.batch_size, amp=args.amp, iters=args.iters,
                   torch=torch.__version__, threads=torch.get_num_threads(),
                   checkpoint=args.checkpoint, compile=args.compile,
                   fused_adamw=args.fused_adamw)
    for trainer in trainers:
        step = sorted(times[trainer.name])[len(times[trainer.name]) // 2]  # median
        results[trainer.name] = dict(
            step_s=step, img_per_s=args.batch_size / step,
            loss=float(trainer.last_loss),
            peak_mib=None if peaks is None else peaks[trainer.name] / 2**20)
        print(f'{trainer.name:>5}: {args.batch_size / step:8.2f} img/s  '
              f'(median step {step * 1000:.0f} ms over {args.iters})'
              + ('' if peaks is None else f'  peak memory {peaks[trainer.name] / 2**20:.0f} MiB'))

    if device.type == 'cuda':
        flops = count_flops(trainers[1])  # stock: the same maths, never compiled
        peak = peak_flops(args, device)
        for trainer in trainers:
            achieved = flops / results[trainer.name]['step_s']
            results[trainer.name]['tflops'] = achieved / 1e12
            results[trainer.name]['mfu'] = None if peak is None else achieved / peak
            print(f'{trainer.name:>5}: {achieved / 1e12:.1f} TFLOP/s'
                  + ('' if peak is None else f'  MFU {100 * achieved / peak:.1f}%'))
        results['flops_per_step'] = flops
        results['gpu'] = torch.cuda.get_device_name(device)

    if args.profile:
        profile_steps(trainers[0], device, args.profile)

    speedup = results['ours']['img_per_s'] / results['stock']['img_per_s']
    ratio = None if peaks is None else peaks['ours'] / peaks['stock']
    results.update(speedup=speedup, memory_ratio=ratio)
    print(f'speedup={speedup:.2f} memory_ratio=' + ('nan' if ratio is None else f'{ratio:.2f}'))
    return results


# ---------------------------------------------------------------------------------------
# Runner mode: the command users run
# ---------------------------------------------------------------------------------------
def _one_jpeg(job):
    """A photo-like JPEG (smooth colour blobs plus grain, 280-520 px sides, ~55 KiB at 400 px)
    in the ImageNet layout; returns its line of meta/train.txt."""
    import numpy as np
    from PIL import Image
    root, i, n_classes = job
    rng = np.random.default_rng(i)
    w, h = int(rng.integers(320, 520)), int(rng.integers(280, 460))
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC)).astype(np.int16)
    img = np.clip(img + rng.integers(-12, 12, (h, w, 3), dtype=np.int16), 0, 255)
    rel = f'n{i % n_classes:08d}/img_{i:06d}.JPEG'
    Image.fromarray(img.astype(np.uint8)).save(os.path.join(root, 'train', rel), quality=90)
    return f'{rel} {i % n_classes}'


def write_jpegs(root: str, count: int, n_classes: int = 100) -> None:
    """``count`` synthetic JPEGs under ``root`` in mmpretrain's ImageNet layout
    (``train/<class>/<name>.JPEG`` and ``meta/train.txt``); kept if already there."""
    from multiprocessing import Pool
    meta = os.path.join(root, 'meta', 'train.txt')
    if os.path.exists(meta):
        with open(meta) as f:
            if sum(1 for _ in f) >= count:
                return
    for c in range(n_classes):
        os.makedirs(os.path.join(root, 'train', f'n{c:08d}'), exist_ok=True)
    os.makedirs(os.path.dirname(meta), exist_ok=True)
    jobs = [(root, i, n_classes) for i in range(count)]
    with Pool(max(1, min(16, os.cpu_count() or 1))) as pool:
        lines = pool.map(_one_jpeg, jobs, chunksize=16)
    with open(meta, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def runner_config(args, data_root: str, work_dir: str):
    """The pretraining config at the benchmark's sizes, as tools/train.py would run it
    (``--amp`` for --amp bf16/fp16, ``compile=True`` for --compile), one epoch over the
    synthetic JPEGs, no checkpoints, a timing hook."""
    from mmengine.config import Config, ConfigDict
    config = args.config or os.path.join(
        ROOT, 'configs', 'pretrain', f"conmim_vit-{dict(tiny='s').get(args.arch, args.arch[0])}.py")
    cfg = Config.fromfile(config)
    arch = arch_settings(args)
    cfg.model.backbone.update(arch=arch, img_size=args.img_size, patch_size=args.patch_size)
    cfg.model.neck.update(in_channels=arch['embed_dims'], hid_channels=args.hid_channels,
                          out_channels=args.out_channels)
    num_patches = (args.img_size // args.patch_size)**2
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'].endswith('RandomResizedCrop'):  # mmpretrain's or TorchRandomResizedCrop
            step['scale'] = args.img_size
        elif step['type'] == 'ConMIMMaskGenerator':
            num_masked = round(step.get('mask_ratio', 75 / 196) * num_patches)
            step.update(patch_size=args.patch_size,
                        min_num_patches=min(step.get('min_num_patches', 16),
                                            max(1, num_masked // 2)))
    cfg.train_dataloader.update(
        batch_size=args.batch_size, num_workers=args.workers,
        persistent_workers=False, pin_memory=args.device == 'cuda')
    cfg.train_dataloader.dataset.update(data_root=data_root, split='train')
    # the loop users run, its recipe batch this benchmark's (no gradient accumulation)
    cfg.train_cfg = ConfigDict(type='RecipeEpochBasedTrainLoop', max_epochs=1)
    cfg.auto_scale_lr = ConfigDict(base_batch_size=args.batch_size)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = ConfigDict(type='LoggerHook', interval=10)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='StepTimerHook', warmup=args.warmup)]
    cfg.resume = False
    cfg.load_from = None
    cfg.compile = False  # the config's own switch (on in the GPU recipes) follows --compile
    if args.compile:
        cfg.compile = True if args.compile_backend == 'inductor' else dict(
            backend=args.compile_backend)
    if args.amp == 'fp16':
        cfg.optim_wrapper.dtype = 'float16'
    if args.device == 'cpu':
        cfg.env_cfg = ConfigDict(dist_cfg=dict(backend='gloo'))
        cfg.pop('sync_bn', None)
    if args.cfg_options:
        from mmengine.config import DictAction
        overrides = {}
        for item in args.cfg_options:
            key, value = item.split('=', 1)
            overrides[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(overrides)
    cfg.launcher, cfg.work_dir = 'none', work_dir
    if args.amp is not None:  # what tools/train.py --amp selects
        cfg.optim_wrapper.type = 'DeviceAmpOptimWrapper'
    return cfg, config


def register_timer_hook():
    import torch
    from mmengine.hooks import Hook
    from mmpretrain.registry import HOOKS

    @HOOKS.register_module(force=True)
    class StepTimerHook(Hook):
        """Wall-clock time of the iterations after ``warmup`` (device synchronised only at
        both ends, so the host may run ahead as in a normal run) and their data time."""
        priority = 'LOWEST'

        def __init__(self, warmup=0):
            self.warmup, self.start, self.end, self.data_times = warmup, None, None, []

        def _now(self):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

        def before_train(self, runner):
            if self.warmup == 0:
                self.start = self._now()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter >= self.warmup:
                self.data_times.append(runner.message_hub.get_scalar('train/data_time').current())
            if runner.iter + 1 == self.warmup:
                self.start = self._now()
            if runner.iter + 1 == runner.max_iters:
                self.end = self._now()

    return StepTimerHook


def runner_benchmark(args, flops=None, hooks=()):
    """Time tools/train.py's path (Runner) on synthetic JPEGs; img/s, data time and MFU.
    ``hooks``: more hook objects to register on the runner (they keep their own results)."""
    import shutil
    import tempfile
    import torch
    from mmengine.runner import Runner
    import conmim_mm  # noqa: F401
    device = setup(args)
    if args.workers is None:
        args.workers = max(1, min(14, (os.cpu_count() or 2) - 2))
    scratch = tempfile.mkdtemp(prefix='conmim_bench_')
    data_root = args.data_root or os.path.join(scratch, 'imagenet')
    total_iters = args.warmup + args.iters
    try:
        write_jpegs(data_root, total_iters * args.batch_size)
        register_timer_hook()
        cfg, config = runner_config(args, data_root, os.path.join(scratch, 'work_dir'))
        runner = Runner.from_cfg(cfg)
        for hook in hooks:
            runner.register_hook(hook)
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        runner.train()
        timer = next(h for h in runner.hooks if type(h).__name__ == 'StepTimerHook')
        if timer.end is None or timer.start is None:
            raise RuntimeError(f'The runner did {runner.iter} iterations, fewer than '
                               f'--warmup {args.warmup} + --iters {args.iters}.')
        step = (timer.end - timer.start) / (runner.iter - args.warmup)
        wrapper = runner.optim_wrapper
        result = dict(
            config=os.path.relpath(config, ROOT), step_s=step, img_per_s=args.batch_size / step,
            data_time_s=sorted(timer.data_times)[len(timer.data_times) // 2],
            iters_timed=runner.iter - args.warmup, workers=args.workers,
            optim_wrapper=type(wrapper).__name__,
            amp_dtype=str(getattr(wrapper, 'cast_dtype', None)),
            loss_scaler=bool(getattr(getattr(wrapper, 'loss_scaler', None), 'is_enabled',
                                     lambda: False)()),
            compile=bool(cfg.get('compile')),
            peak_mib=(torch.cuda.max_memory_allocated(device) / 2**20
                      if device.type == 'cuda' else None))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if flops is not None:
        result['tflops'] = flops / step / 1e12
        peak = peak_flops(args, device) if device.type == 'cuda' else None
        result['mfu'] = None if peak is None else flops / step / peak
    print(f'runner: {result["img_per_s"]:8.2f} img/s  (step {step * 1000:.0f} ms over '
          f'{result["iters_timed"]} iterations, median data_time {result["data_time_s"]:.4f} s'
          + ('' if result.get('mfu') is None else f', MFU {100 * result["mfu"]:.1f}%')
          + f', {result["optim_wrapper"]} {result["amp_dtype"]}'
          + (', loss scaler' if result['loss_scaler'] else '') + ')')
    return result


def flops_per_step(args):
    """FLOPs of one training step as the step mode counts them (stock assembly, autocast)."""
    trainer = Trainer('stock', args, setup(args))
    flops = count_flops(trainer)
    del trainer
    return flops


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.probe:
        return probe_memory(args)
    results = {}
    if args.mode in ('step', 'both'):
        results = step_benchmark(args, argv)
    if args.mode in ('runner', 'both'):
        flops = results.get('flops_per_step') or flops_per_step(args)
        results.setdefault('flops_per_step', flops)
        results['runner'] = runner_benchmark(args, flops)
        if 'ours' in results:
            gap = results['runner']['img_per_s'] / results['ours']['img_per_s']
            results['runner']['vs_step'] = gap
            print(f'runner / step (ours) = {gap:.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    sys.path.insert(0, ROOT)
    main()
